"""Inputs a pipeline really produces that the happy path does not: values beyond the server's
limits (the flow still arrives, changed, and the change is logged), refusals logged on the
`flowtrail` logger, steps left open, generators as steps, a flow inside another flow's step,
NumPy values, tag keys holding `:`, reading back what was recorded, incremental pushes, a
slow mask at interpreter exit, Ctrl-C during a long flush."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import flowtrail
from conftest import stored_flow, wait_for
from test_faults import Failing, Hung, serve


def test_values_beyond_the_limits_are_cut_not_the_flow(client, read, pipeline, caplog):
    loop = {"name": "loop"}
    loop["self"] = loop
    with pytest.raises(ValueError):
        with client.flow(pipeline, tags={"k" * 300: "v", "env": "x" * 70_000}) as flow:
            with flow.step("s" * 400, kind="filter") as step:
                step.observe("i" * 300, "kept", score=1e20, attributes={"loop": loop})
                step.observe("", "rejected", reasons=[("", "empty code")])
                step.observe("ok", "rejected", score=float("nan"), reasons=["price"])
            raise ValueError("e" * 100_000)
    with caplog.at_level(logging.WARNING, logger="flowtrail"):
        assert client.flush(10.0)
        # Notices of the sender are logged on the caller's side, by the next call.
        client.stats()
    stored = stored_flow(read, flow.id, status="failed")
    assert len(stored["error"].encode()) <= 64 * 1024 and "cut" in stored["error"]
    assert stored["tags"]["env"].endswith("bytes]")
    assert any(len(key) <= 256 and key.startswith("kkk") for key in stored["tags"])
    step = stored["steps"][0]
    assert len(step["name"].encode()) <= 256
    assert (step["candidates_in"], step["candidates_out"]) == (3, 1)
    assert step["reasons"] == {"(empty)": 1, "price": 1}
    observations = {o["candidate_id"]: o for o in read.observations(flow.id, step["seq"])}
    long_id = next(i for i in observations if i.startswith("iii"))
    assert len(long_id.encode()) <= 256
    assert observations[long_id].get("score") is None
    assert observations[long_id]["attributes"]["score_out_of_range"] == "100000000000000000000"
    assert "(empty)" in observations
    assert client.stats()["adjusted"] >= 1
    assert any("changed to fit the server's limits" in r.getMessage() for r in caplog.records)


def test_a_refused_flow_is_logged_with_the_server_answer(pipeline, caplog):
    refusing = serve(type("F", (Failing,), {"status": 400}))
    try:
        client = flowtrail.Client(f"http://127.0.0.1:{refusing.server_port}", "k")
        with client.flow(pipeline):
            pass
        with caplog.at_level(logging.WARNING, logger="flowtrail"):
            assert client.flush(5.0)
        assert client.stats()["failed"] == 1
        assert any("refused flow" in r.getMessage() and "400" in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]
        client.shutdown(1.0)
    finally:
        refusing.shutdown()


def test_a_step_open_when_its_flow_ends_is_kept_as_failed(client, read, pipeline):
    with client.flow(pipeline) as flow:
        open_step = flow.step("never_finished", kind="rank")
        open_step.observe("A", "kept")
        with flow.step("done", kind="filter"):
            pass
    assert client.flush(10.0)
    stored = stored_flow(read, flow.id)
    steps = {s["name"]: s for s in stored["steps"]}
    assert steps["never_finished"]["status"] == "failed"
    assert "flow ended" in steps["never_finished"]["reasoning"]
    assert steps["never_finished"]["candidates_in"] == 1
    assert steps["done"]["status"] == "succeeded"
    open_step.observe("B", "kept")  # after the flow: ignored, never raises
    open_step.finish()


def test_generators_are_steps_until_exhausted(client, read, pipeline):
    @flowtrail.step(kind="retrieve")
    def retrieve(n):
        for i in range(n):
            step = flowtrail.current_step()
            if step is not None:
                step.observe(f"R{i}", "kept")
            yield i

    @flowtrail.step(kind="generate")
    async def generate(n):
        for i in range(n):
            flowtrail.current_step().observe(f"G{i}", "kept")
            yield i
            await asyncio.sleep(0)

    async def collect():
        return [i async for i in generate(4)]

    with client.flow(pipeline) as flow:
        assert list(retrieve(3)) == [0, 1, 2]
        assert asyncio.run(collect()) == [0, 1, 2, 3]
    assert list(retrieve(2)) == [0, 1], "outside a flow it runs as it is"
    assert client.flush(10.0)
    steps = {s["name"]: s for s in stored_flow(read, flow.id)["steps"]}
    assert steps["retrieve"]["candidates_in"] == 3
    assert steps["generate"]["candidates_in"] == 4


def test_a_flow_inside_another_flows_step_starts_with_no_current_step(client, read, pipeline):
    with client.flow(pipeline) as outer:
        with outer.step("outer_step") as outer_step:
            with client.flow(pipeline + "_inner") as inner:
                assert flowtrail.current_flow() is inner
                assert flowtrail.current_step() is None
                with inner.step("inner_step"):
                    pass
            assert flowtrail.current_step() is outer_step
            assert flowtrail.current_flow() is outer
    assert client.flush(10.0)
    stored = stored_flow(read, inner.id)
    assert "parent_seq" not in stored["steps"][0] or stored["steps"][0]["parent_seq"] is None


def test_what_was_recorded_reads_back(client):
    with client.flow("p", input={"q": 1}, tags={"env": "dev"}) as flow:
        flow.output = {"selected": ("A", 2)}
        assert flow.output == {"selected": ["A", 2]}
        assert flow.input == {"q": 1}
        assert flow.tags == {"env": "dev"}
        with flow.step("s") as step:
            assert step.reasoning is None and step.candidates_in is None
            step.reasoning = "because"
            step.candidates_in = 10
            step.output = {"kept": 3}
            assert (step.reasoning, step.candidates_in, step.output) == ("because", 10, {"kept": 3})
    assert flow.output == {"selected": ["A", 2]}, "a sent flow answers with what it held"


def test_numpy_values_are_numbers_and_tag_keys_may_hold_colons(client, read, pipeline):
    np = pytest.importorskip("numpy")
    with client.flow(pipeline, tags={"k8s:ns\\x": "prod"}) as flow:
        with flow.step("rank", kind="rank") as step:
            step.observe("A", "selected", score=np.float32(0.5),
                         attributes={"rank": np.int64(3), "ok": np.bool_(True),
                                     "vec": np.array([1.5, 2.5]), "price": np.float64(9.99)})
    assert client.flush(10.0)
    stored_flow(read, flow.id)
    observation = read.observations(flow.id, 0)[0]
    assert observation["score"] == 0.5
    assert observation["attributes"] == {"rank": 3, "ok": True, "vec": [1.5, 2.5], "price": 9.99}
    found = read.flows(pipeline=pipeline, tags={"k8s:ns\\x": "prod"})
    assert [f["id"] for f in found] == [flow.id]
    with pytest.raises(flowtrail.ReadError) as error:
        read.flow(flow.id, version=99)
    assert error.value.code == "not_found"


def test_pushed_steps_are_stored_while_the_flow_runs(server, read, pipeline):
    client = flowtrail.Client(server["url"], server["key"], push_steps=True)
    try:
        with client.flow(pipeline) as flow:
            with flow.step("first", kind="retrieve") as step:
                step.observe("A", "kept")
            running = wait_for(lambda: read.flow(flow.id),
                               lambda f: f["status"] == "running" and len(f["steps"]) == 1)
            assert running["steps"][0]["name"] == "first"
            with flow.step("second", kind="filter"):
                pass
        done = stored_flow(read, flow.id)
        assert [s["name"] for s in done["steps"]] == ["first", "second"]
    finally:
        client.shutdown(5.0)


def run_script(code: str, env: dict, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def test_a_slow_mask_at_exit_does_not_abort_the_process(server, pipeline):
    done = run_script(f"""
        import time, flowtrail
        def mask(key, value):
            time.sleep(0.05)
            return value
        ft = flowtrail.Client({server['url']!r}, {server['key']!r}, mask=mask)
        for i in range(5):
            with ft.flow({pipeline!r}, input={{"a": 1, "b": 2, "c": 3, "d": 4}}):
                pass
        print("recorded")
    """, {"FLOWTRAIL_SHUTDOWN_TIMEOUT": "0.2"})
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "recorded" in done.stdout


def test_ctrl_c_interrupts_a_long_flush(pipeline):
    hung = serve(Hung)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import flowtrail
                ft = flowtrail.Client("http://127.0.0.1:{hung.server_port}", "k")
                with ft.flow({pipeline!r}):
                    pass
                print("flushing", flush=True)
                ft.flush(60.0)
            """)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "FLOWTRAIL_SHUTDOWN_TIMEOUT": "0.5"},
        )
        assert process.stdout.readline().strip() == "flushing"
        time.sleep(0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert time.monotonic() - started < 5, "the flush was not interrupted"
        assert "KeyboardInterrupt" in stderr, stderr[-2000:]
    finally:
        hung.shutdown()


def test_the_mask_sees_every_value_and_no_secret_reaches_the_server(server, read, pipeline):
    secret = "sk-live-SECRET"

    def mask(key, value):
        return "[masked]" if isinstance(value, str) and "SECRET" in value else value

    client = flowtrail.Client(server["url"], server["key"], capture="full", mask=mask,
                              redact_fields=["reasoning"])
    try:
        with pytest.raises(ValueError):
            with client.flow(pipeline, input=f"prompt {secret}", tags={"t": secret}) as flow:
                with flow.step("llm", "generate", input=f"prompt {secret}") as step:
                    step.boundary("llm.keywords", f"prompt {secret}", lambda: f"answer {secret}")
                    step.boundary("llm.list", [secret], lambda: [secret])
                    step.observe(f"cand-{secret}", "rejected", reasons=[("leak", f"text {secret}")],
                                 attributes={"a": [secret], "b": {"c": secret}})
                    step.reasoning = "why: a public reason"
                    step.output = secret
                flow.output = secret
                raise ValueError(f"password={secret}")
        assert client.flush(10.0)
        stored = stored_flow(read, flow.id, status="failed")
        observations = read.observations(flow.id, stored["steps"][0]["seq"])
        everything = repr(stored) + repr(observations)
        assert "SECRET" not in everything, everything
        assert stored["steps"][0]["reasoning"] == "[redacted]"
        assert stored["input"] == "[masked]"
        assert observations[0]["candidate_id"] == "[masked]"
    finally:
        client.shutdown(5.0)


def test_a_mask_that_raises_or_is_not_callable_fails_closed_and_logs_no_value(server, read, pipeline,
                                                                             caplog):
    def broken(key, value):
        raise RuntimeError(f"cannot mask {value}")

    with caplog.at_level(logging.WARNING, logger="flowtrail"):
        for mask in (broken, 5):
            client = flowtrail.Client(server["url"], server["key"], mask=mask)
            with client.flow(pipeline, input={"password": "hunter2"}) as flow:
                pass
            assert client.flush(10.0)
            assert stored_flow(read, flow.id)["input"] == "[redacted]"
            client.shutdown(1.0)
    assert not any("hunter2" in r.getMessage() for r in caplog.records)


def test_odd_arguments_never_raise_and_are_logged(server, read, pipeline, caplog):
    with caplog.at_level(logging.WARNING, logger="flowtrail"):
        client = flowtrail.Client(server["url"], server["key"], queue_capacity=-1,
                                  max_attempts="x", request_timeout=float("nan"),
                                  capture="full")
        before = client.stats()["sdk_errors"]

        def bad_reasons():
            yield ("first", "read")
            raise ZeroDivisionError("in a generator")

        with client.flow(pipeline) as flow:
            with flow.step("s", "filter") as step:
                step.observe("a", " KEPT ", 0.5)  # verdicts without case; score positional
                step.observe("b", "rejected", reasons=bad_reasons())
                step.observe("c", "rejected", reasons=[(7, None), {"code": 8, "text": 9}])
                step.observe("d\ud800e", "kept", attributes={"x": float("nan"),
                                                             "y": float("-inf")})
                step.candidates_in = None  # "not set": no error
        step.observe("late", "kept")
        step.observe("later", "kept")
        flow.output = "late"
        assert client.flush("soon") in (True, False)
        # The reasons that raised, the step and the flow used after they ended, the timeout.
        assert client.stats()["sdk_errors"] - before == 4, [r.getMessage() for r in caplog.records]
    stored = stored_flow(read, flow.id)
    step = stored["steps"][0]
    assert (step["candidates_in"], step["candidates_out"]) == (4, 2)
    assert step["reasons"] == {"first": 1, "7": 1, "8": 1}
    observations = {o["candidate_id"]: o for o in read.observations(flow.id, step["seq"])}
    assert observations["a"]["score"] == 0.5
    assert observations["d\ufffde"]["attributes"] == {"x": "NaN", "y": "-Infinity"}
    assert {"code": "8", "text": "9"} in observations["c"]["reasons"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("has ended" in m for m in messages) == 2, messages  # once per step, per flow
    assert any("ZeroDivisionError" in m for m in messages)
    client.shutdown(1.0)


def test_getters_answer_after_the_block_and_a_closed_generator_is_no_failure(client, read, pipeline):
    @flowtrail.step(kind="retrieve")
    def stream():
        yield 1
        yield 2

    with client.flow(pipeline, input={"q": 1}, tags={"env": "dev"}) as flow:
        with flow.step("s", "filter") as step:
            step.observe("A", "kept")
            step.reasoning = "because"
        for _ in stream():
            break
        flow.output = {"selected": "A"}
    assert (step.reasoning, step.candidates_in, step.candidates_out) == ("because", 1, 1)
    assert (flow.output, flow.input, flow.tags) == ({"selected": "A"}, {"q": 1}, {"env": "dev"})
    assert client.flush(10.0)
    steps = {s["name"]: s for s in stored_flow(read, flow.id)["steps"]}
    assert steps["stream"]["status"] == "succeeded"


def test_an_async_generator_left_by_break_is_no_failure(client, read, pipeline):
    @flowtrail.step(kind="generate")
    async def stream():
        for i in range(5):
            yield i
            await asyncio.sleep(0)

    async def first():
        async for item in stream():
            return item

    with client.flow(pipeline) as flow:
        # asyncio.run closes the generator left open as the loop ends.
        assert asyncio.run(first()) == 0
    assert client.flush(10.0)
    steps = {s["name"]: s for s in stored_flow(read, flow.id)["steps"]}
    assert steps["stream"]["status"] == "succeeded", steps["stream"]


def test_odd_arguments_to_boundary_replay_and_sampled_never_raise(client, pipeline, caplog):
    assert flowtrail.sampled("x") == "sampled:50"
    assert flowtrail.sampled(float("nan")) == "sampled:50"
    assert flowtrail.sampled(-3) == "sampled:50"
    assert flowtrail.sampled(7.9) == "sampled:7"
    with client.flow(pipeline) as flow:
        with flow.step("call") as step:
            assert step.boundary(None, {"q": 1}, lambda: 3) == 3
    assert client.flush(10.0)
    replayed = client.replay(flow.id, pipeline, timeout="x")
    with replayed:
        with replayed.step("call") as step:
            assert step.boundary(None, {"q": 1}, lambda: 4) == 3
    assert any("sampled" in r.getMessage() for r in caplog.records)


def test_replay_right_after_recording_and_exceptions_pickle(client, pipeline):
    import pickle

    with client.flow(pipeline) as flow:
        with flow.step("call") as step:
            step.boundary("llm", {"q": 1}, lambda: {"a": 2})
    assert client.flush(10.0)
    with client.replay(flow.id, pipeline) as again:
        with again.step("call") as step:
            assert step.boundary("llm", {"q": 1}, lambda: pytest.fail("called out")) == {"a": 2}
    error = pickle.loads(pickle.dumps(flowtrail.ReplayMismatch("x")))
    assert isinstance(error, flowtrail.ReplayMismatch)
    assert flowtrail.ReplayMismatch.__module__ == "flowtrail"


def test_shutdown_says_false_for_a_flow_lost_earlier_and_a_flow_after_shutdown_is_told(
    server, pipeline, caplog
):
    refused = flowtrail.Client(server["url"], "ftk_wrong", max_attempts=1)
    with refused.flow(pipeline):
        pass
    wait_for(refused.stats, lambda s: s["failed"] == 1, timeout=10.0)
    time.sleep(0.2)
    assert not refused.shutdown(2.0), "a flow was refused (401): not everything arrived"

    fine = flowtrail.Client(server["url"], server["key"])
    with fine.flow(pipeline):
        pass
    assert fine.shutdown(5.0), "every flow arrived"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flowtrail"):
        for _ in range(3):
            with fine.flow(pipeline):
                pass
        fine.flush(1.0)
    told = [r.getMessage() for r in caplog.records if "shut down" in r.getMessage()]
    assert len(told) == 1, told
    assert fine.stats()["dropped"] == 3


def test_reasons_given_as_one_mapping_and_a_failed_steps_error_is_masked(server, read, pipeline):
    client = flowtrail.Client(server["url"], server["key"], capture="full",
                              redact_fields=["error"])
    with client.flow(pipeline) as flow:
        with flow.step("filter", "filter") as step:
            step.observe("A", "rejected", reasons={"code": "price", "text": "too cheap"})
            step.observe("B", "rejected", reasons={"stock": "none left", "price": "too dear"})
            step.observe("C", "rejected", reasons=[("a", "b", "c")])
        try:
            with flow.step("judge"):
                raise RuntimeError("sk-secret-from-exception")
        except RuntimeError:
            pass
    assert client.shutdown(10.0)
    stored = stored_flow(read, flow.id)
    assert "sk-secret" not in str(stored)
    steps = {s["name"]: s for s in stored["steps"]}
    assert steps["judge"]["status"] == "failed"
    assert steps["filter"]["reasons"] == {"price": 2, "stock": 1, "a": 1}
    observations = {o["candidate_id"]: o for o in read.observations(flow.id, 0)}
    assert observations["A"]["reasons"] == [{"code": "price", "text": "too cheap"}]
    assert observations["C"]["reasons"] == [{"code": "a", "text": "b"}]


def test_the_read_client_raises_only_read_errors():
    for url in ["not a url", "file:///etc/passwd", "ftp://example.com"]:
        with pytest.raises(flowtrail.ReadError):
            flowtrail.ReadClient(url, "k").flows()
    # An answer that is not HTTP.
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def garbage():
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"garbage\r\n\r\n")
        connection.close()

    threading.Thread(target=garbage, daemon=True).start()
    port = listener.getsockname()[1]
    with pytest.raises(flowtrail.ReadError):
        flowtrail.ReadClient(f"http://127.0.0.1:{port}", "k", timeout=5).flows()
    listener.close()


def test_tag_pairs_a_bad_spool_dir_and_a_replay_that_skips_calls(server, read, pipeline, caplog):
    with caplog.at_level(logging.WARNING, logger="flowtrail"):
        client = flowtrail.Client(server["url"], server["key"], spool_dir="/dev/null/spool")
    assert client.enabled, "a spool that cannot be made costs the spool, not the client"
    assert any("without a spool" in r.getMessage() for r in caplog.records)
    with client.flow(pipeline, tags=[("env", "dev"), ("seller", 7)]) as flow:
        with flow.step("call") as step:
            step.boundary("llm", 1, lambda: "a")
            step.boundary("llm", 2, lambda: "b")
    assert client.flush(10.0)
    assert stored_flow(read, flow.id)["tags"] == {"env": "dev", "seller": "7"}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flowtrail"):
        with client.replay(flow.id, pipeline) as replayed:
            with replayed.step("call") as step:
                assert step.boundary("llm", 1, lambda: "x") == "a"
        client.flush(10.0)
    assert any("1 recorded call(s) not made" in r.getMessage() for r in caplog.records)
    client.shutdown(5.0)


def test_an_empty_flows_frame_has_the_summary_columns(read):
    pytest.importorskip("pandas")
    frame = read.flows_df(pipeline="no_such_pipeline_anywhere")
    assert len(frame) == 0
    assert {"id", "pipeline", "status", "started_at"} <= set(frame.columns)


def test_a_generator_step_is_current_only_while_its_own_code_runs(client, read, pipeline):
    @flowtrail.step
    def produce():
        for i in range(3):
            flowtrail.current_step().observe(f"P{i}", "kept")
            yield i

    @flowtrail.step(name="agen")
    async def agen(n):
        for i in range(n):
            flowtrail.current_step().observe(f"A{i}", "kept")
            yield i

    async def take_one(consumer_step):
        async for _ in agen(5):
            break
        return flowtrail.current_step() is consumer_step

    with client.flow(pipeline) as flow:
        with flow.step("consume") as consume:
            for x in produce():
                flowtrail.current_step().observe(f"C{x}", "kept")
            assert asyncio.run(take_one(consume)), "after break the consumer's step is current"
        assert flowtrail.current_step() is None
    assert client.flush(10.0)
    steps = {s["name"]: s for s in stored_flow(read, flow.id)["steps"]}
    assert steps["consume"]["candidates_in"] == 3
    assert steps["produce"]["candidates_in"] == 3
    assert steps["produce"]["status"] == "succeeded"
    assert steps["agen"]["status"] == "succeeded"


def test_a_flow_open_when_the_program_dies_arrives_failed_with_its_exception(
    server, read, pipeline
):
    done = run_script(f"""
        import flowtrail
        ft = flowtrail.Client({server["url"]!r}, {server["key"]!r})
        flow = ft.flow({pipeline!r}, input={{"q": 1}})
        print(flow.id, flush=True)
        step = flow.step("parse")
        step.observe("a", "kept")
        raise RuntimeError("pipeline crashed")
    """, {})
    assert done.returncode == 1 and "pipeline crashed" in done.stderr
    flow_id = done.stdout.strip()
    stored = stored_flow(read, flow_id, "failed")
    assert stored["status"] == "failed", stored
    assert "RuntimeError: pipeline crashed" in stored["error"], stored
    assert [s["status"] for s in stored["steps"]] == ["failed"]


def test_the_read_client_refuses_odd_arguments_with_read_errors(server):
    read = flowtrail.ReadClient(server["url"], server["key"] + "\n")
    assert isinstance(read.flows(limit=1), list), "a key read from a file works"
    for call in [
        lambda: flowtrail.ReadClient("http://[::1").flows(),
        lambda: flowtrail.ReadClient(server["url"], "k", timeout="x"),
        lambda: read.flows(tags="abc"),
        lambda: read.flows(max_flows=-1),
        lambda: read.flow("0193a000-0000-7000-8000-000000000001", version="x"),
        lambda: read.observations("0193a000-0000-7000-8000-000000000001", "x"),
    ]:
        with pytest.raises(flowtrail.ReadError):
            call()


def test_odd_callables_repeated_reports_and_lone_surrogates_in_reads(client, read, pipeline, caplog):
    import functools

    def scale(factor, x):
        return factor * x

    stepped = flowtrail.step(functools.partial(scale, 3))
    with caplog.at_level(logging.WARNING, logger="flowtrail"):
        with client.flow(pipeline) as flow:
            assert stepped(2) == 6
            with flow.step("s") as step:
                for i in range(150):
                    step.observe(str(i), "nope")
    told = [r.getMessage() for r in caplog.records if "nope" in r.getMessage()]
    assert len(told) == 3, told  # the 1st, 10th and 100th time
    assert "100 times" in told[-1]
    with pytest.raises(flowtrail.ReadError):
        read.flows(q="\ud800")
    with pytest.raises(flowtrail.ReadError):
        read.flow("\ud800")
    with pytest.raises(flowtrail.ReadError):
        read.flows(limit=0)


def test_a_boundary_that_raised_is_recorded_and_its_replay_raises_again(client, read, pipeline):
    class LocalError(Exception):
        pass

    def run(flow):
        answers = []
        with flow.step("call") as step:
            for name, fail in [("llm", ZeroDivisionError), ("tool", LocalError)]:
                try:
                    step.boundary(name, {"q": 1}, lambda: (_ for _ in ()).throw(fail("sk-down")))
                except (ZeroDivisionError, LocalError, flowtrail.ReplayedError) as error:
                    answers.append(type(error).__name__)
            answers.append(step.boundary("fallback", 2, lambda: "ok"))
        return answers

    with client.flow(pipeline) as flow:
        assert run(flow) == ["ZeroDivisionError", "LocalError", "ok"]
    assert client.flush(10.0)
    stored = stored_flow(read, flow.id)
    boundaries = stored["steps"][0]["boundaries"]
    assert boundaries[0]["error"] == {"type": "builtins.ZeroDivisionError", "message": "sk-down"}
    assert "error" not in boundaries[2]
    with client.replay(flow.id, pipeline) as replayed:
        # Builtins raise again as themselves; a type that cannot be imported as ReplayedError.
        assert run(replayed) == ["ZeroDivisionError", "ReplayedError", "ok"]


def test_callable_objects_with_async_call_are_steps_and_a_replaced_excepthook_still_names(
    client, read, server, pipeline
):
    class Ranker:
        async def __call__(self, candidates):
            await asyncio.sleep(0)
            for c in candidates:
                flowtrail.current_step().observe(c, "kept")
            return candidates

    ranker = flowtrail.step(kind="rank")(Ranker())

    async def main(flow):
        with flow.step("outer"):
            return await ranker(["a", "b"])

    with client.flow(pipeline) as flow:
        assert asyncio.run(main(flow)) == ["a", "b"]
    assert client.flush(10.0)
    steps = {s["name"]: s for s in stored_flow(read, flow.id)["steps"]}
    assert steps["Ranker"]["candidates_in"] == 2
    assert steps["outer"].get("candidates_in") in (0, None), steps["outer"]

    done = run_script(f"""
        import sys, flowtrail
        ft = flowtrail.Client({server["url"]!r}, {server["key"]!r})
        sys.excepthook = lambda *exc: sys.__excepthook__(*exc)
        flow = ft.flow({pipeline!r})
        print(flow.id, flush=True)
        raise ValueError("after another hook")
    """, {})
    stored = stored_flow(read, done.stdout.strip(), "failed")
    assert "ValueError: after another hook" in stored["error"], stored
