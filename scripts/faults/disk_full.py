"""Disk-full fault (issue #18), run by scripts/verify.sh as root: `flowtrail serve` on the
embedded profile with its data directory on a small tmpfs. Flows are sent until the disk is
full; then ingest must answer 503 `unavailable` (never a 500, never a 202 it cannot keep) while
reads keep answering; the tmpfs is then grown and ingest must recover. The ledger: every flow
acknowledged (202) is stored exactly once.

Usage: python3 disk_full.py <flowtrail binary> <mount point (an empty directory)>
Prints `disk full: acknowledged=… stored=… lost=… duplicated=… refused_503=… errors_5xx=…
reads_while_full=…` and exits non-zero when a promise is broken.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ledger import check_ledger, create_key, free_port, request, serve, wait_ready
from ledger import flow as ledger_flow


def flow(n: int) -> tuple[str, bytes]:
    return ledger_flow(n, "disk_full")


def mount(point: str, size: str, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", point], check=True)


def main() -> int:
    binary, point = sys.argv[1], sys.argv[2]
    mount(point, "24m")
    server = None
    try:
        data = os.path.join(point, "data")
        key = create_key(binary, data, "disk")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = os.path.join(os.path.dirname(point.rstrip("/")) or "/tmp", "disk_full_server.log")
        open(log_path, "w").close()
        server = serve(binary, data, port, log_path)
        wait_ready(base, key)
        ledger: dict[str, int] = {}
        statuses: dict[int, int] = {}
        errors: list[str] = []

        def send(n: int) -> int:
            flow_id, body = flow(n)
            status, answer = request("POST", f"{base}/api/v1/flows", key, body)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 202:
                ledger[flow_id] = ledger.get(flow_id, 0) + 1
            elif status >= 500 and status != 503:
                errors.append(f"{status} {answer[:300]!r}")
            return status

        # Fill the disk: until ingest has refused 30 times in a row (or 20,000 flows).
        refused_in_a_row, n = 0, 0
        while refused_in_a_row < 30 and n < 20_000:
            status = send(n)
            n += 1
            refused_in_a_row = refused_in_a_row + 1 if status != 202 else 0
            if status != 202:
                time.sleep(0.05)
        full = refused_in_a_row >= 30
        # Reads while full.
        reads = [request("GET", f"{base}/api/v1/flows?limit=5", key)[0] for _ in range(5)]
        reads_ok = sum(1 for status in reads if status == 200)
        # Free space: grow the tmpfs; ingest must recover.
        mount(point, "256m", remount=True)
        recovered = 0
        deadline = time.monotonic() + 60
        while recovered < 50 and time.monotonic() < deadline:
            if send(n) == 202:
                recovered += 1
            else:
                time.sleep(0.2)
            n += 1
        # Every acknowledged flow stored, once.
        acknowledged = set(ledger)
        stored, lost, duplicated = check_ledger(base, key, "disk_full", acknowledged)
        print(
            f"disk full: acknowledged={len(acknowledged)} stored={stored} "
            f"lost={lost} duplicated={duplicated} refused_503={statuses.get(503, 0)} "
            f"errors_5xx={len(errors)} reads_while_full={reads_ok}/5 "
            f"recovered={recovered}/50 statuses={dict(sorted(statuses.items()))}"
        )
        for error in errors[:5]:
            print(f"  unexpected: {error}")
        ok = (full and lost == 0 and duplicated == 0 and not errors and reads_ok == 5
              and recovered == 50)
        if not full:
            print("  the disk never filled up")
        if not ok:
            with open(log_path) as server_log:
                print("  the server's log ends:", *server_log.readlines()[-20:], sep="\n    ")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["umount", point], check=False)


if __name__ == "__main__":
    sys.exit(main())
