"""Cost of ``step.observe()`` on the caller's thread, per capture policy, against a plain-Python
loop that only builds the same dicts. A benchmark, not a test: it prints its figures.

    target/py-test-venv/bin/python sdk-python/bench/observe.py [--quick]

A typical candidate: an id, a verdict, a score, one reason and three attributes; 3 in 4
candidates rejected (two reason codes). Each figure is the median over batches of 1,000 calls
of the time per call, in nanoseconds. The client points at a closed port: what is measured is
recording, not sending (which happens on the sender's own thread).
"""

from __future__ import annotations

import statistics
import sys
import time

import flowtrail

QUICK = "--quick" in sys.argv
BATCHES = 30 if QUICK else 300
BATCH = 1_000


def candidates():
    out = []
    for i in range(BATCH):
        rejected = i % 4 != 0
        out.append((
            f"B0{i:08d}",
            "rejected" if rejected else "kept",
            0.5 + (i % 100) / 200,
            [("price_out_of_range" if i % 2 else "off_category", "9.99 < 22.50")] if rejected else None,
            {"price": 9.99 + i % 7, "rating": 4.1, "category": "Laptop Stands"},
        ))
    return out


def per_call_ns(run) -> float:
    samples = []
    for _ in range(BATCHES):
        start = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - start) / BATCH)
    return statistics.median(samples)


def main() -> None:
    pool = candidates()
    client = flowtrail.Client("http://127.0.0.1:9", "bench", queue_capacity=10)
    rows = []

    def plain():
        kept = []
        for cid, verdict, score, reasons, attributes in pool:
            kept.append({"candidate_id": cid, "verdict": verdict, "score": score,
                         "reasons": [{"code": c, "text": t} for c, t in reasons or ()],
                         "attributes": dict(attributes)})
        return kept

    rows.append(("plain Python: build the same dicts", per_call_ns(plain)))
    for label, policy in [
        ("observe(), full", flowtrail.FULL),
        ("observe(), sampled (50 per reason)", flowtrail.sampled(50)),
        ("observe(), counts_only", flowtrail.COUNTS_ONLY),
    ]:
        with client.flow("bench") as flow:
            def run():
                with flow.step("filter", kind="filter", capture=policy) as step:
                    observe = step.observe
                    for cid, verdict, score, reasons, attributes in pool:
                        observe(cid, verdict, score=score, reasons=reasons, attributes=attributes)
            rows.append((label, per_call_ns(run)))
    client.shutdown(0.5)
    print(f"observe() on the caller's thread, p50 per call over {BATCHES} batches of {BATCH}:")
    for label, ns in rows:
        print(f"  {label:<40} {ns:8.0f} ns")


if __name__ == "__main__":
    main()
