"""Injected write and fsync errors (issue #18): `flowtrail serve` on the embedded profile runs
under libfiu's `fiu-run -x` (Debian's fiu-utils: an LD_PRELOAD library whose failure points
make POSIX calls fail with an error their manual allows, e.g. EIO or ENOSPC). While four
clients send flows, `fiu-ctrl` turns failure points on and off in the running server, one after
the other, each for a few seconds with clean seconds between:

- `posix/io/sync/fsync`: fsync of the SQLite database, its write-ahead log and payload files;
- `posix/io/rw/pwrite`: the SQLite pages and write-ahead log;
- `posix/io/dir/rename`: a payload file moved into place;
- `posix/io/rw/ftruncate`: the write-ahead log reset after a checkpoint;
- all of them at once, at a lower rate.

Plain `write(2)` (payload file contents) is not injected: libfiu's own control channel answers
fiu-ctrl with write(2), so a failing write makes the fault impossible to switch off (seen:
fiu-ctrl hangs). Payload files still take the fsync and rename faults.

Every payload is written to the payload directory (FLOWTRAIL_PAYLOAD_INLINE_MAX_BYTES=0), so
both the SQLite file and the payload directory take the faults.

Promises checked: no answer is a 5xx other than 503; the server never dies or panics; once the
faults stop, ingest recovers; every acknowledged flow (202) is stored exactly once (a flow is
sent again, same body, until it gets its 202 — the idempotency key makes that safe); the SQLite
file passes `PRAGMA integrity_check` and `flowtrail admin check-storage` finds no row whose
object is missing.

Usage: python3 write_errors.py <flowtrail binary>
Prints `write errors: acknowledged=… stored=… lost=… duplicated=… …` and exits non-zero when a
promise is broken (or when fiu-run is not installed: run scripts/setup.sh test).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from ledger import check_ledger, create_key, flow, free_port, queue_depth, request, serve
from ledger import wait_ready

PIPELINE = "write_errors"
# (label, fiu-ctrl commands): each phase's failure points, enabled for PHASE_SECONDS.
PHASES = [
    ("fsync", ["enable_random name=posix/io/sync/fsync,probability=0.3"]),
    ("pwrite", ["enable_random name=posix/io/rw/pwrite,probability=0.05"]),
    ("rename", ["enable_random name=posix/io/dir/rename,probability=0.3"]),
    ("ftruncate", ["enable_random name=posix/io/rw/ftruncate,probability=0.3"]),
    ("all", ["enable_random name=posix/io/sync/fsync,probability=0.1",
             "enable_random name=posix/io/rw/pwrite,probability=0.02",
             "enable_random name=posix/io/dir/rename,probability=0.1",
             "enable_random name=posix/io/rw/ftruncate,probability=0.1"]),
]
PHASE_SECONDS = 6
CLEAN_SECONDS = 3
CLIENTS = 4


def fiu_ctrl(fifo: str, pid: int, commands: list[str]) -> None:
    args = ["fiu-ctrl", "-f", fifo]
    for command in commands:
        args += ["-c", command]
    subprocess.run([*args, str(pid)], check=True, timeout=30)


class Load:
    """Clients sending flows until stopped; each flow is sent again until its 202."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.lock = threading.Lock()
        self.ledger: dict[str, int] = {}
        self.statuses: dict[str, dict[int, int]] = {}
        self.errors: list[str] = []
        self.phase = "clean"
        self.stop = threading.Event()
        self.given_up = 0
        self.threads = [threading.Thread(target=self.client, args=(c,)) for c in range(CLIENTS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def client(self, number: int) -> None:
        n = number * 1_000_000
        while not self.stop.is_set():
            flow_id, body = flow(n, PIPELINE)
            n += 1
            deadline = time.monotonic() + 60
            while True:
                status, answer = request("POST", f"{self.base}/api/v1/flows", self.key, body)
                with self.lock:
                    counts = self.statuses.setdefault(self.phase, {})
                    counts[status] = counts.get(status, 0) + 1
                    if status == 202:
                        self.ledger[flow_id] = self.ledger.get(flow_id, 0) + 1
                    elif status >= 500 and status != 503:
                        self.errors.append(f"{self.phase}: {status} {answer[:300]!r}")
                if status == 202:
                    break
                if time.monotonic() > deadline:
                    with self.lock:
                        self.given_up += 1
                    break
                time.sleep(0.1)
            time.sleep(0.02)


def integrity(data: str) -> str:
    with sqlite3.connect(f"file:{os.path.join(data, 'flowtrail.db')}?mode=ro", uri=True) as db:
        return ";".join(row[0] for row in db.execute("PRAGMA integrity_check"))


def main() -> int:
    binary = sys.argv[1]
    if shutil.which("fiu-run") is None or shutil.which("fiu-ctrl") is None:
        print("write errors: fiu-run/fiu-ctrl are not installed (scripts/setup.sh test)")
        return 1
    work = tempfile.mkdtemp(prefix="flowtrail-fiu.")
    data = os.path.join(work, "data")
    log_path = os.path.join(work, "server.log")
    fifo = os.path.join(work, "fiu-ctrl")
    env = {"FLOWTRAIL_PAYLOAD_INLINE_MAX_BYTES": "0", "RUST_LOG": "warn"}
    server = None
    ok = False
    try:
        key = create_key(binary, data, "fiu")
        admin_key = create_key(binary, data, "fiu-admin", "admin")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = serve(binary, data, port, log_path, prefix=["fiu-run", "-x", "-f", fifo], env=env)
        if not wait_ready(base, key):
            print("write errors: the server did not start under fiu-run")
            return 1
        load = Load(base, key)
        load.start()
        time.sleep(CLEAN_SECONDS)
        reads: dict[int, int] = {}
        for label, commands in PHASES:
            load.phase = label
            fiu_ctrl(fifo, server.pid, commands)
            until = time.monotonic() + PHASE_SECONDS
            while time.monotonic() < until:
                status = request("GET", f"{base}/api/v1/flows?pipeline={PIPELINE}&limit=5", key)[0]
                reads[status] = reads.get(status, 0) + 1
                time.sleep(0.5)
            enabled = [c.split("name=")[1].split(",")[0] for c in commands]
            fiu_ctrl(fifo, server.pid, [f"disable name={point}" for point in enabled])
            load.phase = "clean"
            time.sleep(CLEAN_SECONDS)
        alive = server.poll() is None
        # Recovery: with the faults off, every flow gets its 202 at the first try.
        load.phase = "after"
        time.sleep(CLEAN_SECONDS)
        load.finish()
        after = load.statuses.get("after", {})
        recovered = after.get(202, 0) > 0 and set(after) == {202}
        # Drained, then the ledger.
        deadline = time.monotonic() + 120
        while queue_depth(base, key) != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        acknowledged = set(load.ledger)
        stored, lost, duplicated = check_ledger(base, key, PIPELINE, acknowledged)
        acked_twice = sum(1 for count in load.ledger.values() if count > 1)
        dead = request("GET", f"{base}/api/v1/admin/dead-letters", admin_key)
        server.terminate()
        server.wait(timeout=30)
        check = subprocess.run([binary, "admin", "check-storage", "--data-dir", data],
                               capture_output=True, text=True, env={**os.environ, **env})
        checked = integrity(data)
        with open(log_path) as log:
            server_log = log.read()
        panicked = "panicked" in server_log
        faults = {label: dict(sorted(load.statuses.get(label, {}).items())) for label, _ in PHASES}
        print(
            f"write errors: acknowledged={len(acknowledged)} stored={stored} lost={lost} "
            f"duplicated={duplicated} errors_5xx={len(load.errors)} given_up={load.given_up} "
            f"alive={alive} recovered={recovered} integrity={checked} "
            f"check_storage_exit={check.returncode} reads={dict(sorted(reads.items()))} "
            f"statuses_by_fault={faults}"
        )
        for error in load.errors[:5]:
            print(f"  unexpected: {error}")
        if check.returncode != 0:
            print(f"  check-storage: {check.stdout.strip()[:500]} {check.stderr.strip()[:500]}")
        if dead[0] == 200 and b'"dead_letters":[]' not in dead[1].replace(b" ", b""):
            print(f"  dead letters: {dead[1][:500]!r}")
        ok = (alive and recovered and lost == 0 and duplicated == 0 and acked_twice == 0
              and not load.errors and load.given_up == 0 and checked == "ok"
              and check.returncode == 0 and not panicked and 500 not in reads)
        if not ok:
            print("  the server's log ends:", *server_log.splitlines()[-20:], sep="\n    ")
        return 0 if ok else 1
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"  kept for a look: {work}")


if __name__ == "__main__":
    sys.exit(main())
