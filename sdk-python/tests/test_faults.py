"""Never hurts the host: with the server refusing, hung or failing, a loop of 200 flows does
not wait on the network, the counters account for every flow, spooled flows arrive later,
`shutdown(1.0)` returns within about a second; fork and asyncio are safe."""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import threading
import time

import pytest

import flowtrail
from conftest import flows_of


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(client: flowtrail.Client, pipeline: str, n: int) -> float:
    """Records n small flows; the seconds it took on this thread."""
    start = time.perf_counter()
    for i in range(n):
        with client.flow(pipeline, input={"i": i}) as flow:
            with flow.step("filter", kind="filter") as step:
                step.observe(f"A{i}", "kept")
                step.observe(f"B{i}", "rejected", reasons=[("price", "too cheap")])
            flow.output = i
    return time.perf_counter() - start


def balanced(stats) -> bool:
    return stats["queued"] + stats["unspooled"] == (
        stats["sent"] + stats["failed"] + stats["dropped"] + stats["spooled"] + stats["pending"]
    )


class Hung(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        time.sleep(30)

    def log_message(self, *args):
        pass


class Failing(http.server.BaseHTTPRequestHandler):
    status = 500

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.send_response(self.status)
        if self.status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(handler) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("kind", ["refused", "hung", "500", "429"])
def test_a_bad_backend_never_holds_the_loop_and_is_accounted_for(kind, pipeline):
    server = None
    if kind == "refused":
        url = f"http://127.0.0.1:{free_port()}"
    else:
        handler = Hung if kind == "hung" else type("F", (Failing,), {"status": int(kind)})
        server = serve(handler)
        url = f"http://127.0.0.1:{server.server_address[1]}"
    client = flowtrail.Client(url, "key", request_timeout=0.5, max_attempts=2, backoff_base=0.05)
    try:
        took = record(client, pipeline, 200)
        # 200 flows recorded without waiting on the network (generous: a loaded CI box).
        assert took < 2.0, took
        start = time.monotonic()
        client.shutdown(1.0)
        assert time.monotonic() - start < 1.5
        stats = client.stats()
        assert stats["queued"] == 200
        assert balanced(stats), stats
        assert stats["sent"] == 0
    finally:
        if server is not None:
            server.shutdown()


def test_spooled_flows_arrive_after_recovery(server, read, pipeline, tmp_path):
    down = flowtrail.Client(
        f"http://127.0.0.1:{free_port()}", server["key"], spool_dir=str(tmp_path),
        request_timeout=0.3, max_attempts=1,
    )
    record(down, pipeline, 20)
    down.shutdown(5.0)
    stats = down.stats()
    assert stats["spooled"] == 20, stats
    assert list(tmp_path.iterdir()), "flows are in the spool"
    # The next process (here: a client on the same spool) sends them to the server, up now.
    up = flowtrail.Client(server["url"], server["key"], spool_dir=str(tmp_path))
    try:
        flows_of(read, pipeline, 20)
        assert up.flush(10.0)
    finally:
        up.shutdown(5.0)
    assert up.stats()["unspooled"] == 20


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_sends_its_own_flows(client, read, pipeline):
    with client.flow(pipeline, tags={"who": "parent-open"}) as parent_flow:
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                record(client, pipeline, 5)
                code = 0 if client.flush(10.0) and client.stats()["sent"] >= 5 else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the child hung"
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
    assert client.flush(10.0)
    flows = flows_of(read, pipeline, 6)
    # The child's 5 and the parent's one: the flow open at the fork is sent once, by the parent.
    assert len(flows) == 6
    assert sum(1 for f in flows if f["tags"].get("who") == "parent-open") == 1


def test_multiprocessing_workers_send_their_flows_without_flushing(server, read, pipeline):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    processes = [
        ctx.Process(target=_process_flows, args=(server["url"], server["key"], pipeline, 5))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    pool = ctx.Pool(2)
    pool.map(_worker_flow, [(server["url"], server["key"], pipeline, i) for i in range(6)])
    pool.close()
    pool.join()
    # Nobody flushed: each process's exit finalizer did.
    assert len(flows_of(read, pipeline, 16)) == 16


def _process_flows(url, key, pipeline, n):
    client = flowtrail.Client(url, key)
    record(client, pipeline, n)


_worker_client = None


def _worker_flow(args):
    global _worker_client
    url, key, pipeline, i = args
    if _worker_client is None:
        _worker_client = flowtrail.Client(url, key)
    with _worker_client.flow(pipeline, input={"i": i}):
        pass


def test_recording_does_not_block_the_event_loop(client, read, pipeline):
    async def main():
        lags = []
        stop = asyncio.Event()

        async def ticker():
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                start = loop.time()
                await asyncio.sleep(0.001)
                lags.append(loop.time() - start - 0.001)

        async def pipeline_run(i):
            with client.flow(pipeline, input={"i": i}) as flow:
                with flow.step("filter", kind="filter") as step:
                    for j in range(50):
                        step.observe(f"C{j}", "rejected" if j % 2 else "kept",
                                     reasons=[("r", "t")] if j % 2 else None)
                    await asyncio.sleep(0)
            return flow.id

        tick = asyncio.create_task(ticker())
        ids = await asyncio.gather(*(pipeline_run(i) for i in range(100)))
        await flowtrail.aflush(client, 10.0)
        stop.set()
        await tick
        return ids, lags

    ids, lags = asyncio.run(main())
    assert len(set(ids)) == 100
    lags.sort()
    p99 = lags[int(len(lags) * 0.99) - 1] if lags else 0
    assert p99 < 0.005, f"event-loop lag p99 {p99 * 1000:.1f} ms"
    flows_of(read, pipeline, 100)
