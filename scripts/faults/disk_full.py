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

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method: str, url: str, key: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error).encode()


def flow(n: int) -> tuple[str, bytes]:
    flow_id = str(uuid.uuid4())
    # Observations with attributes that do not compress to nothing: the disk fills in time.
    observations = [
        {
            "candidate_id": f"C{n}-{i}",
            "verdict": "rejected" if i % 3 else "kept",
            "score": (i * 7919 % 1000) / 1000,
            "reasons": [{"code": "price_out_of_range", "text": os.urandom(16).hex()}],
            "attributes": {"title": os.urandom(48).hex()},
        }
        for i in range(60)
    ]
    record = {
        "id": flow_id,
        "pipeline": "disk_full",
        "status": "succeeded",
        "started_at": "2026-12-01T10:00:00Z",
        "ended_at": "2026-12-01T10:00:01Z",
        "steps": [{"seq": 0, "name": "filter", "kind": "filter", "observations": observations}],
    }
    return flow_id, json.dumps(record).encode()


def mount(point: str, size: str, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", point], check=True)


def main() -> int:
    binary, point = sys.argv[1], sys.argv[2]
    mount(point, "24m")
    server = None
    try:
        data = os.path.join(point, "data")
        key = subprocess.run(
            [binary, "admin", "create-api-key", "--name", "disk", "--data-dir", data],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = os.path.join(os.path.dirname(point.rstrip("/")) or "/tmp", "disk_full_server.log")
        log = open(log_path, "w")
        server = subprocess.Popen(
            [binary, "serve", "--addr", f"127.0.0.1:{port}", "--otlp-grpc-addr", "0",
             "--data-dir", data],
            stdout=log, stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            if request("GET", f"{base}/readyz", key)[0] == 200:
                break
            time.sleep(0.1)
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
        stored: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stored, cursor = [], None
            while True:
                url = f"{base}/api/v1/flows?pipeline=disk_full&limit=500"
                if cursor:
                    url += f"&cursor={cursor}"
                status, page = request("GET", url, key)
                if status != 200:
                    break
                page = json.loads(page)
                stored += [f["id"] for f in page["flows"]]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            if len(set(stored)) >= len(ledger):
                break
            time.sleep(0.5)
        acknowledged = set(ledger)
        unique = set(stored)
        lost = len(acknowledged - unique)
        duplicated = len(stored) - len(unique)
        print(
            f"disk full: acknowledged={len(acknowledged)} stored={len(unique & acknowledged)} "
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
