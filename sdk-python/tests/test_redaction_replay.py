"""Redaction leaves no secret in what the server received; replay answers boundaries from the
recording and raises (the only place recording raises) when the run does not fit."""

from __future__ import annotations

import json

import pytest

import flowtrail
from conftest import stored_flow


def test_redaction_by_field_and_mask(server, read, pipeline):
    def mask(key, value):
        if isinstance(value, str) and "sk-" in value:
            return value.replace("sk-", "[key]-")
        if key == "raises":
            raise ValueError("a bad mask")
        return value

    client = flowtrail.Client(
        server["url"], server["key"], capture="full",
        redact_fields=["Password", "api_key"], mask=mask,
    )
    try:
        with client.flow(pipeline, input={"user": {"password": "hunter2"}, "note": "token sk-abc"}) as flow:
            with flow.step("s", input={"API_KEY": "AKIA123", "raises": "hunter3"}) as step:
                step.observe("c", "kept", attributes={"password": "hunter4", "q": "sk-def"})
        assert client.flush(10.0)
    finally:
        client.shutdown(5.0)
    stored = stored_flow(read, flow.id)
    observations = read.observations(flow.id, stored["steps"][0]["seq"])
    text = json.dumps([stored, observations])
    for secret in ("hunter2", "hunter3", "hunter4", "AKIA123", "sk-abc", "sk-def"):
        assert secret not in text, secret
    assert stored["input"]["user"]["password"] == "[redacted]"
    assert stored["input"]["note"] == "token [key]-abc"
    assert stored["steps"][0]["input"]["raises"] == "[redacted]"  # the mask raised: fail closed


def test_replay_answers_from_the_recording_and_refuses_a_changed_input(client, read, pipeline):
    calls = []

    def llm(prompt):
        calls.append(prompt)
        return {"keywords": ["laptop stand", prompt]}

    with client.flow(pipeline) as flow:
        with flow.step("keywords", kind="generate") as step:
            first = step.boundary("llm.keywords", {"prompt": "a"}, lambda: llm("a"))
            second = step.boundary("llm.keywords", {"prompt": "b"}, lambda: llm("b"))
    assert client.flush(10.0)
    stored_flow(read, flow.id)
    assert calls == ["a", "b"]

    def never():
        raise AssertionError("a replayed boundary must not call out")

    with client.replay(flow.id, pipeline) as again:
        with again.step("keywords", kind="generate") as step:
            assert step.boundary("llm.keywords", {"prompt": "a"}, never) == first
            assert step.boundary("llm.keywords", {"prompt": "b"}, never) == second
            with pytest.raises(flowtrail.ReplayMissing):
                step.boundary("llm.keywords", {"prompt": "c"}, never)
    with client.replay(flow.id, pipeline) as changed:
        with changed.step("keywords", kind="generate") as step:
            with pytest.raises(flowtrail.ReplayMismatch) as raised:
                step.boundary("llm.keywords", {"prompt": "CHANGED"}, never)
            assert "llm.keywords" in str(raised.value)
    assert client.flush(10.0)
    replayed = stored_flow(read, again.id, status="succeeded")
    assert replayed["tags"]["replay_of"] == flow.id
    with pytest.raises(flowtrail.ReplayError):
        client.replay("not-a-uuid", pipeline)
    with pytest.raises(flowtrail.ReplayError):
        client.replay("01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11", pipeline)  # not stored


def test_boundaries_and_tags_are_redacted_and_still_replay(server, read, pipeline):
    client = flowtrail.Client(server["url"], server["key"], redact_fields=["api_key", "password"])
    try:
        with client.flow(pipeline, tags={"password": "hunter5"}) as flow:
            with flow.step("call", kind="generate") as step:
                answer = step.boundary(
                    "llm", {"api_key": "AKIA999", "prompt": "hi"}, lambda: {"text": "hello"}
                )
        assert answer == {"text": "hello"}
        assert client.flush(10.0)
        stored = stored_flow(read, flow.id)
        text = json.dumps(stored)
        assert "AKIA999" not in text and "hunter5" not in text
        assert stored["tags"]["password"] == "[redacted]"
        # A replay with the same (real) input matches the masked recording.
        with client.replay(flow.id, pipeline) as again:
            with again.step("call", kind="generate") as step:
                assert step.boundary(
                    "llm", {"api_key": "AKIA999", "prompt": "hi"}, lambda: 1 / 0
                ) == {"text": "hello"}
    finally:
        client.shutdown(5.0)
