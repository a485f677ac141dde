"""The three example scenarios run against the live server, and each goes wrong its way."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import stored_flow

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(server, name, *args):
    env = dict(os.environ, FLOWTRAIL_URL=server["url"], FLOWTRAIL_API_KEY=server["key"])
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    ids = re.findall(r"^flow ([0-9a-f-]{36})", done.stdout, re.MULTILINE)
    assert ids, done.stdout
    return ids


@pytest.mark.parametrize("name", ["competitor_selection", "listing_optimisation", "product_categorisation"])
def test_each_example_records_its_flows(server, read, name):
    ids = run_example(server, name, "--runs", "2")
    for flow_id in ids:
        flow = stored_flow(read, flow_id)
        assert flow["pipeline"] == name
        assert len(flow["steps"]) == 5
        assert flow["sdk"]["name"] == "flowtrail-python"


def test_categorisation_goes_wrong_in_the_rules_step(server, read):
    (good,) = run_example(server, "product_categorisation", "--seed", "3", "--runs", "1")
    (bad,) = run_example(server, "product_categorisation", "--drift", "--runs", "1")
    assert stored_flow(read, good)["output"] == {"category": "Laptop Stands"}
    drifted = stored_flow(read, bad)
    assert drifted["output"] == {"category": "Phone Stands"}
    rules = next(s for s in drifted["steps"] if s["name"] == "attribute_rules")
    laptop = next(
        o for o in read.observations(bad, rules["seq"])
        if o["attributes"]["category"] == "Laptop Stands"
    )
    assert laptop["verdict"] == "rejected"
    assert laptop["reasons"][0]["code"] == "missing_attribute"
