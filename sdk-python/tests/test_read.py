"""The read client returns what the API has, as dicts and as DataFrames."""

from __future__ import annotations

import sys

import pytest

import flowtrail
from conftest import flows_of, stored_flow


def test_list_flow_observations_journey_diff(client, read, pipeline):
    ids = []
    for n in range(3):
        with client.flow(pipeline, tags={"n": str(n)}) as flow:
            with flow.step("filter", kind="filter") as step:
                step.observe("KEEP", "kept")
                step.observe(f"DROP{n}", "rejected", reasons=[("price", "too cheap")])
            flow.output = {"n": n}
        ids.append(flow.id)
    assert client.flush(10.0)
    flows = flows_of(read, pipeline, 3)
    assert {f["id"] for f in flows} == set(ids)
    assert [f["id"] for f in read.flows(pipeline=pipeline, tags={"n": "1"})] == [ids[1]]
    assert len(read.flows(pipeline=pipeline, limit=1, max_flows=2)) == 2
    flow = stored_flow(read, ids[0])
    assert flow["output"] == {"n": 0}
    observations = read.observations(ids[0], flow["steps"][0]["seq"])
    assert {o["candidate_id"] for o in observations} == {"KEEP", "DROP0"}
    journey = read.journey(ids[0], "DROP0")
    assert journey["steps"], journey
    diff = read.diff(ids[0], ids[1])
    assert diff["steps"], diff
    with pytest.raises(flowtrail.ReadError) as missing:
        read.flow("01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    with pytest.raises(flowtrail.ReadError) as refused:
        read.flows(status="sideways")
    assert refused.value.code == "validation_failed" and refused.value.field == "status"
    # An id with / and ? is one path segment: an unknown candidate, not another route.
    with pytest.raises(flowtrail.ReadError) as unknown:
        read.journey(ids[0], "a/b?c")
    assert unknown.value.code == "not_found"


def test_dataframes(client, read, pipeline):
    pandas = pytest.importorskip("pandas")
    with client.flow(pipeline) as flow:
        with flow.step("filter", kind="filter") as step:
            step.observe("A", "kept", attributes={"price": 1.5})
            step.observe("B", "rejected", reasons=[("price", "x")])
    assert client.flush(10.0)
    stored = stored_flow(read, flow.id)
    frame = read.observations_df(flow.id, stored["steps"][0]["seq"])
    assert isinstance(frame, pandas.DataFrame)
    assert sorted(frame["candidate_id"]) == ["A", "B"]
    assert "attr.price" in frame.columns
    assert len(read.flows_df(pipeline=pipeline)) == 1


def test_dataframes_without_pandas(read, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pandas"):
        read.flows_df()
