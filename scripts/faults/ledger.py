"""What the fault scripts share (issue #18): a free port, an HTTP request that never raises,
a flow of realistic size, a server process on the embedded profile, and the ledger check —
every flow acknowledged with 202 is stored exactly once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method: str, url: str, key: str, body: bytes | None = None,
            timeout: float = 30) -> tuple[int, bytes]:
    """(HTTP status, body); status 0 with the error's text when no answer came."""
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error).encode()


def flow(n: int, pipeline: str) -> tuple[str, bytes]:
    """(id, JSON body) of a one-step flow of 60 observations (about 10 KB; attributes that do
    not compress to nothing)."""
    flow_id = str(uuid.uuid4())
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
        "pipeline": pipeline,
        "status": "succeeded",
        "started_at": "2026-12-01T10:00:00Z",
        "ended_at": "2026-12-01T10:00:01Z",
        "steps": [{"seq": 0, "name": "filter", "kind": "filter", "observations": observations}],
    }
    return flow_id, json.dumps(record).encode()


def create_key(binary: str, data: str, name: str, scope: str = "all") -> str:
    """An API key of `scope` made by `flowtrail admin create-api-key` on `data`."""
    return subprocess.run(
        [binary, "admin", "create-api-key", "--name", name, "--scope", scope, "--data-dir", data],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def serve(binary: str, data: str, port: int, log_path: str, prefix: list[str] | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """`flowtrail serve` on the embedded profile (`prefix` runs it under e.g. fiu-run), its
    output appended to `log_path`."""
    log = open(log_path, "a")
    return subprocess.Popen(
        [*(prefix or []), binary, "serve", "--addr", f"127.0.0.1:{port}",
         "--otlp-grpc-addr", "0", "--data-dir", data],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )


def wait_ready(base: str, key: str, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if request("GET", f"{base}/readyz", key)[0] == 200:
            return True
        time.sleep(0.1)
    return False


def queue_depth(base: str, key: str) -> int | None:
    """`flowtrail_queue_depth` from /metrics, None when it cannot be read."""
    status, text = request("GET", f"{base}/metrics", key)
    if status != 200:
        return None
    for line in text.decode().splitlines():
        if line.startswith("flowtrail_queue_depth "):
            return int(float(line.split()[1]))
    return None


def stored_ids(base: str, key: str, pipeline: str) -> list[str] | None:
    """Every flow id of `pipeline`, page by page (repeats kept, so duplicates show); None when a
    page could not be read."""
    stored, cursor = [], None
    while True:
        url = f"{base}/api/v1/flows?pipeline={pipeline}&limit=500"
        if cursor:
            url += f"&cursor={cursor}"
        status, page = request("GET", url, key)
        if status != 200:
            return None
        page = json.loads(page)
        stored += [f["id"] for f in page["flows"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return stored


def check_ledger(base: str, key: str, pipeline: str, acknowledged: set[str],
                 seconds: float = 120) -> tuple[int, int, int]:
    """Waits (at most `seconds`) until every acknowledged flow is listed; returns (stored of
    the acknowledged, lost, duplicated)."""
    deadline = time.monotonic() + seconds
    stored: list[str] = []
    while time.monotonic() < deadline:
        stored = stored_ids(base, key, pipeline) or stored
        if acknowledged <= set(stored):
            break
        time.sleep(0.5)
    unique = set(stored)
    return len(unique & acknowledged), len(acknowledged - unique), len(stored) - len(unique)
