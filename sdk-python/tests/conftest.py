"""Fixtures: the live server `scripts/test-python-sdk.sh` started (FLOWTRAIL_URL,
FLOWTRAIL_API_KEY with scope `all`), a unique pipeline per test, and a poller that waits for
a flow to be stored (never sleep-and-hope)."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Callable, Dict, List

import pytest

import flowtrail


@pytest.fixture(scope="session")
def server() -> Dict[str, str]:
    url, key = os.environ.get("FLOWTRAIL_URL"), os.environ.get("FLOWTRAIL_API_KEY")
    if not url or not key:
        pytest.fail("run through scripts/test-python-sdk.sh (FLOWTRAIL_URL, FLOWTRAIL_API_KEY)")
    return {"url": url, "key": key}


@pytest.fixture()
def pipeline() -> str:
    return f"py_{uuid.uuid4().hex[:12]}"


@pytest.fixture()
def client(server: Dict[str, str]) -> flowtrail.Client:
    c = flowtrail.Client(server["url"], server["key"], capture="full")
    yield c
    c.shutdown(5.0)


@pytest.fixture()
def read(server: Dict[str, str]) -> flowtrail.ReadClient:
    return flowtrail.ReadClient(server["url"], server["key"])


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    """Calls ``fetch`` until ``done(answer)``, at most ``timeout`` seconds; fails otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fetch()
            if done(last):
                return last
        except flowtrail.ReadError as error:
            last = error
        time.sleep(0.05)
    pytest.fail(f"not there within {timeout} s: {last!r}")


def stored_flow(read: flowtrail.ReadClient, flow_id: str, status: str = "succeeded") -> Dict[str, Any]:
    return wait_for(lambda: read.flow(flow_id), lambda f: f.get("status") == status)


def flows_of(read: flowtrail.ReadClient, pipeline: str, count: int) -> List[Dict[str, Any]]:
    return wait_for(
        lambda: read.flows(pipeline=pipeline, limit=500, max_flows=100_000),
        lambda flows: len(flows) >= count,
        timeout=60.0,
    )
