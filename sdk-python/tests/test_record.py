"""Recording through the native module arrives at the server as recorded: steps, exact
counts under every capture policy, reasons, attributes, nested steps, decorators, failures."""

from __future__ import annotations

import asyncio

import pytest

import flowtrail
from conftest import stored_flow


def observe_pool(step: flowtrail.Step) -> None:
    # 1 kept, 120 rejected for price, 30 for category: 151 in, 1 out.
    step.observe("K1", "kept", score=0.9, attributes={"price": 25.0, "rating": 4.5, "tags": ["a"]})
    for i in range(120):
        step.observe(
            f"P{i}", "rejected", score=0.1,
            reasons=[("price_out_of_range", "9.99 < 22.50")], attributes={"price": 9.99},
        )
    for i in range(30):
        step.observe(f"C{i}", "rejected", reasons=["off_category"])


def test_policies_arrive_with_exact_counts(client, read, pipeline):
    with client.flow(pipeline, input={"title": "laptop stand"}, tags={"seller": "s-42"}) as flow:
        with flow.step("full", kind="filter") as step:
            observe_pool(step)
        with flow.step("sampled", kind="filter", capture=flowtrail.sampled(per_reason=5)) as step:
            observe_pool(step)
        with flow.step("counts", kind="filter", capture=flowtrail.COUNTS_ONLY) as step:
            observe_pool(step)
            step.reasoning = "kept 0.5x-2x of the seller's price"
        flow.output = {"selected": "K1"}
    assert client.flush(10.0)
    stored = stored_flow(read, flow.id)
    assert stored["pipeline"] == pipeline
    assert stored["tags"] == {"seller": "s-42"}
    assert stored["output"] == {"selected": "K1"}
    assert stored["sdk"]["name"] == "flowtrail-python"
    steps = {s["name"]: s for s in stored["steps"]}
    for name in ("full", "sampled", "counts"):
        assert steps[name]["candidates_in"] == 151, steps[name]
        assert steps[name]["candidates_out"] == 1
        assert steps[name]["reasons"] == {"price_out_of_range": 120, "off_category": 30}
    assert steps["counts"]["reasoning"] == "kept 0.5x-2x of the seller's price"
    full = read.observations(flow.id, steps["full"]["seq"])
    assert len(full) == 151
    kept = next(o for o in full if o["candidate_id"] == "K1")
    assert kept["attributes"] == {"price": 25.0, "rating": 4.5, "tags": ["a"]}
    assert kept["score"] == 0.9
    sampled = read.observations(flow.id, steps["sampled"]["seq"])
    assert len(sampled) == 1 + 5 + 5
    assert steps["counts"]["observation_count"] == 0


def test_an_exception_fails_the_step_and_the_flow_and_propagates(client, read, pipeline):
    with pytest.raises(ZeroDivisionError):
        with client.flow(pipeline) as flow:
            with flow.step("judge", kind="judge"):
                1 / 0
    client.flush(10.0)
    stored = stored_flow(read, flow.id, status="failed")
    assert "ZeroDivisionError" in stored["error"]
    assert stored["steps"][0]["status"] == "failed"


def test_nested_steps_and_decorators(client, read, pipeline):
    @flowtrail.step(kind="rank")
    def rank(ids):
        step = flowtrail.current_step()
        if step is not None:  # None outside a flow
            step.observe(ids[0], "selected", score=1.0)
        return ids[0]

    @flowtrail.step(name="judge_async", kind="judge")
    async def judge(x):
        await asyncio.sleep(0)
        flowtrail.current_step().observe(x, "kept")
        return x

    assert rank(["outside"]) == "outside"  # no flow: runs as it is
    assert flowtrail.current_flow() is None and flowtrail.current_step() is None
    with client.flow(pipeline) as flow:
        with flow.step("outer", kind="custom") as outer:
            best = rank(["B1", "B2"])
        asyncio.run(judge(best))
        flow.output = best
    client.flush(10.0)
    stored = stored_flow(read, flow.id)
    steps = {s["name"]: s for s in stored["steps"]}
    assert steps["rank"]["parent_seq"] == outer.seq
    assert steps["rank"]["kind"] == "rank"
    assert steps["judge_async"]["candidates_in"] == 1
    assert stored["output"] == "B1"


def test_odd_values_never_raise(client, read, pipeline):
    import datetime
    import decimal

    class Weird:
        def __str__(self):
            raise RuntimeError("no str")

    before = client.stats()["sdk_errors"]
    with client.flow(pipeline, input={"when": datetime.date(2026, 1, 2), 1: {2, 3}}) as flow:
        with flow.step("s", kind="not-a-kind", capture="bogus") as step:
            step.observe("a", "maybe")  # unknown verdict: reported, not observed
            step.observe(Weird(), "kept", attributes={"d": decimal.Decimal("1.5"), "n": float("nan"),
                                                      "big": 10**30, "w": Weird()})
            step.observe("b", "rejected", reasons=[42, {"text": "no code"}])
        flow.output = Weird()
    client.flush(10.0)
    assert client.stats()["sdk_errors"] >= before + 4
    stored = stored_flow(read, flow.id)
    assert stored["input"] == {"when": "2026-01-02", "1": [2, 3]}
    step = stored["steps"][0]
    assert step["kind"] == "custom"
    assert step["candidates_in"] == 2
    observations = read.observations(flow.id, step["seq"])
    weird = next(o for o in observations if o["verdict"] == "kept")
    assert weird["candidate_id"] == "<unprintable>"
    assert weird["attributes"]["d"] == "1.5"
    assert weird["attributes"]["n"] == "NaN"
    assert weird["attributes"]["big"] == str(10**30)


def test_a_client_made_in_a_function_is_flushed_at_exit(server, read, pipeline, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "main.py"
    script.write_text(
        "import flowtrail\n"
        "def main():\n"
        f"    ft = flowtrail.Client({server['url']!r}, {server['key']!r})\n"
        "    for i in range(20):\n"
        f"        with ft.flow({pipeline!r}, input={{'i': i}}) as flow:\n"
        "            with flow.step('s', kind='generate') as step:\n"
        "                step.observe('a', 'kept')\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, str(script)], timeout=60)
    assert done.returncode == 0
    from conftest import flows_of

    assert len(flows_of(read, pipeline, 20)) == 20


def test_wrong_argument_types_never_raise(client, read, pipeline):
    import uuid

    before = client.stats()["sdk_errors"]
    with client.flow(uuid.UUID(int=7)) as flow:  # a pipeline that is not text: str() of it
        with flow.step(None, kind=5) as step:
            step.observe("a", None)  # no verdict: reported, not observed
            step.observe("b", "rejected", score="0.25", reasons="price_out_of_range")
            step.observe("c", "kept", score="high")  # not a number: no score
            step.candidates_in = -1  # not a count: reported
    client.flush(10.0)
    assert client.stats()["sdk_errors"] >= before + 4
    stored = stored_flow(read, flow.id)
    assert stored["pipeline"] == str(uuid.UUID(int=7))
    step = stored["steps"][0]
    assert (step["name"], step["kind"]) == ("None", "custom")
    assert step["reasons"] == {"price_out_of_range": 1}
    observations = {o["candidate_id"]: o for o in read.observations(flow.id, step["seq"])}
    assert observations["b"]["score"] == 0.25
    assert "score" not in observations["c"] or observations["c"]["score"] is None
    with pytest.raises(flowtrail.ReplayError):
        client.replay(uuid.UUID(int=8), "p")  # a UUID object is read as its text: not stored


def test_python_code_run_while_converting_can_record_again(client, read, pipeline):
    with client.flow(pipeline) as flow:
        with flow.step("s", kind="filter") as step:

            class Chatty:
                def __str__(self):
                    step.observe("inner", "kept")  # re-enters the step: must not deadlock
                    return "chatty"

            step.observe("outer", "kept", attributes={"x": Chatty()})
    client.flush(10.0)
    stored = stored_flow(read, flow.id)
    assert stored["steps"][0]["candidates_in"] == 2
    observations = {o["candidate_id"]: o for o in read.observations(flow.id, 0)}
    assert observations["outer"]["attributes"] == {"x": "chatty"}


def test_a_disabled_client_records_nothing_and_never_raises(monkeypatch):
    monkeypatch.delenv("FLOWTRAIL_URL", raising=False)
    monkeypatch.delenv("FLOWTRAIL_API_KEY", raising=False)
    client = flowtrail.Client()
    assert not client.enabled
    with client.flow("p", input={"x": 1}) as flow:
        with flow.step("s") as step:
            step.observe("a", "kept")
        flow.output = 1
    assert client.flush(0.1), "nothing is pending"
    assert not client.shutdown(0.1), "a disabled client sent nothing: not every flow arrived"
    assert client.stats()["queued"] == 0
