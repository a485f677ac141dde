#!/usr/bin/env python3
"""Soak of `flowtrail serve` (issue #18): minutes at half the measured capacity with a mix of
ingest, list, search, journey, stats and SSE clients, checking that the server's memory, its
latencies and its ingest queue stay flat.

Usage:
    python3 bench/soak.py <flowtrail-binary> [--minutes 10] [--capacity-seconds 20] [--out FILE]

Python 3 standard library only. It starts `<binary> serve` on the embedded default profile
(SQLite + payload directory) in a fresh temporary data directory on a free loopback port
(`--otlp-grpc-addr 0`), makes an API key of scope `all` with `<binary> admin create-api-key`,
and stops the server and removes the directory at exit (also on failure and Ctrl-C).

Flows look like the product's pipelines: keyword generation (an LLM boundary), retrieval,
a price/rating filter whose observations are kept or rejected with varying reasons, an LLM
judge with scores, and a rank step that selects one (5 steps, about 80–380 observations,
15–60 KB of JSON); one in sixteen fails in the judge (4 steps). Pipelines, tags and sizes vary
over 64 pre-built templates; every flow gets a fresh UUIDv7 id and current timestamps.

Phase 1, capacity (`--capacity-seconds`): CAPACITY_SENDERS threads, each with its own
keep-alive connection, post flows back to back. When they have all stopped, the queue depth
D is read from `flowtrail_queue_depth` in /metrics (jobs queued or being processed). The
capacity is the number of flows that became durable *and processed* per second:
(acknowledged − D) / (seconds from the first send to that reading) — flows that were only
queued do not count. The queue is then left to drain before phase 2. Capacity is measured with
ingest alone (no readers), by the same binary, on the same machine.

Phase 2, soak (`--minutes`): ingest at half the capacity, paced on a clock (open loop: each of
the paced sender threads (SOAK_SENDERS_MIN to _MAX, see below) sends at its scheduled times and does not wait for a slower server
beyond its own in-flight request; a 503/429 is retried after `Retry-After`), plus at the same
time, each on its own connection at READS_PER_SECOND: a list client (`GET /api/v1/flows` with
rotating filters: pipeline, status, tag, since, step_kind + min_eliminated, a second page),
a search client (`q=`), a journey client (`GET /api/v1/flows/{id}/candidates/{candidate}` of
flows known to be stored) and a stats client (`GET /api/v1/stats/reasons`), and one SSE
client on `GET /api/v1/events` the whole time (it counts `flow` events, reconnects if the
stream drops and counts the reconnects).

One row per minute (Markdown, printed as each minute ends): flows acknowledged (202) that
minute; ingest ack latency p50/p99 (ms, request sent → 202 read; measured from the actual
send, so a late send is not charged to the server); p99 of each read kind; errors (non-2xx
answers other than 503/429, and requests that got no answer) and 503s (with 429s); the
server's RSS (VmRSS of /proc/<pid>/status, sampled every second; the minute's max); queue depth
at the end of the minute and the minute's max (sampled every second); queue lag (every
LAG_SAMPLE_SECONDS one acknowledged flow is polled with `GET /api/v1/flows/{id}` every
LAG_POLL_SECONDS until it answers 200: 202 → queryable, p99 and max of the lags resolved that
minute, where a sample still unresolved counts with its age so far); SSE `flow` events
received that minute; CPU cores used that minute by the server and by this script (on a small
machine the load generator competes with the server; it stays well under 0.2 core).

At the end the senders stop, the queue is left to drain (at most DRAIN_TIMEOUT_SECONDS), the
ledger is checked: every flow id acknowledged in either phase must be listed exactly once by
`GET /api/v1/flows` (paged) and, after the server has stopped, be in `flowtrail.db` (opened
read-only) with all the steps it was sent with; no ingest job may be dead. Then it prints
`soak: capacity=… rate=… …` and judges (minute 1 is warm-up and never a baseline):

  - any 5xx other than 503 (CONTRACT.md: a bug), any other error (this client only sends
    valid requests, so any refusal is a bug of one side), a lost, duplicated or damaged flow,
    a dead job, a queue that did not drain — fail;
  - RSS: last minute's max > RSS_GROWTH_FACTOR × the second minute's + RSS_SLACK_MB;
  - throughput: last minute's acknowledged flows < ACKED_FLOOR_SHARE × the median minute's (the
    paced senders fell behind: ingest no longer keeps the rate);
  - ack p99: last minute's > ACK_P99_FACTOR × the median minute's + ACK_P99_SLACK_MS;
  - queue depth: at the end of every minute of the second half higher than the minute before,
    and above DEPTH_NOISE_SECONDS of ingest (a backlog that grows without bound);
  - lag p99: last minute's > LAG_P99_FACTOR × the median minute's + LAG_P99_SLACK_MS.

The summary also gives the rate achieved (mean flows/s acknowledged over the judged minutes):
with ack latencies above senders / rate seconds the senders cannot keep the schedule and it
falls below the target. A read kind whose last-minute p99 grew past READ_P99_NOTE_FACTOR ×
its median minute is reported as a note, not judged.

Exit 0 when it passes, 1 when a check fails (saying which), 2 when the soak could not run.
`--out FILE` writes the table, the summary line and the verdict as Markdown (scripts/verify.sh
pastes it into bench/RELIABILITY.md).
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode

# --- Load ---------------------------------------------------------------------------------
CAPACITY_SENDERS = 6  # back-to-back senders of phase 1: enough to keep 2 ingest workers busy
# Paced senders of phase 2: by Little's law the rate needs rate × ack latency requests in
# flight; acks under the mixed load take about twice phase 1's p99, hence
# ceil(rate × 2 × p99 of phase 1), within these bounds.
SOAK_SENDERS_MIN = 4
SOAK_SENDERS_MAX = 12
READS_PER_SECOND = 2.0  # per read kind (list, search, journey, stats): a few dashboard users
SOAK_RATE_SHARE = 0.5  # the soak ingests at this share of the measured capacity
LAG_SAMPLE_SECONDS = 3.0  # one acknowledged flow is followed to queryable this often
LAG_POLL_SECONDS = 0.02  # poll interval of a followed flow (the lag's resolution)
HTTP_TIMEOUT_SECONDS = 60.0  # a request without an answer this long counts as an error
SSE_READ_TIMEOUT_SECONDS = 45.0  # the server sends a keep-alive comment every 15 s
TEMPLATES = 64  # distinct pre-built flows (pipelines, tags, sizes); ids and times are fresh
FAILING_EVERY = 16  # one template in 16 is a flow that failed in its judge step

# --- Timing -------------------------------------------------------------------------------
MINUTE_SECONDS = 60.0
READY_TIMEOUT_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 300.0  # the backlog left at half capacity must drain well within this
STOP_TIMEOUT_SECONDS = 20.0  # SIGTERM, then SIGKILL

# --- Flatness thresholds (minute 1 is warm-up: never a baseline) -----------------------------
# RSS: allocators keep freed memory and caches (the payload cache is 64 MiB by default) fill in
# the first minutes, so some growth is normal; 1.5× the second minute plus 16 MB allows that
# and still catches a leak growing steadily over ten minutes.
RSS_GROWTH_FACTOR = 1.5
RSS_SLACK_MB = 16.0
# Ack p99: one slow fsync or a SQLite checkpoint can triple a p99 for a minute; more than 3×
# the median minute (+ 50 ms so millisecond-scale p99s do not flap) in the last minute means
# ingest is slowing down as data accumulates.
ACK_P99_FACTOR = 3.0
ACK_P99_SLACK_MS = 50.0
# Queue lag: same reasoning; the 500 ms slack covers a worker's batch and poll interval.
LAG_P99_FACTOR = 3.0
LAG_P99_SLACK_MS = 500.0
# Throughput: the paced senders fall behind when ingest slows down (the backlog then moves into
# this script rather than the queue), so the last minute acknowledging less than 80% of the
# median minute means ingest can no longer keep the rate.
ACKED_FLOOR_SHARE = 0.8
# Reads are not judged (the dashboard's queries may legitimately cost more as data accumulates,
# e.g. the reason statistics read the current partial hour from the raw steps), but a read kind
# whose last-minute p99 exceeds this factor × its median minute + this slack is reported.
READ_P99_NOTE_FACTOR = 3.0
READ_P99_NOTE_SLACK_MS = 500.0
# Queue depth: a snapshot at the end of a minute is a handful of flows in flight even when the
# workers keep up, so a rise only counts as a growing backlog above this many seconds of ingest.
DEPTH_NOISE_SECONDS = 10.0


# ===========================================================================================
# Small helpers
# ===========================================================================================


def log(message: str) -> None:
    """Progress on stderr (the table and the summary go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def now_iso(at: datetime | None = None) -> str:
    """RFC 3339 UTC with milliseconds, as the API takes it."""
    at = at or datetime.now(timezone.utc)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value &= ~(0xF << 76)
    value |= 0x7 << 76  # version 7
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def fmt_mb(kb: float | None) -> str:
    return "–" if kb is None else f"{kb / 1024:.0f}"


# ===========================================================================================
# Flows
# ===========================================================================================

CATALOG_KINDS = [
    ("Laptop Stands", "LAP", ["Adjustable Aluminium Laptop Stand", "Ergonomic Laptop Riser",
                              "Foldable Laptop Stand for Desk", "Ventilated Notebook Stand"], 42.0),
    ("Cell Phone Cases", "CEL", ["Phone Case with Kickstand", "Rugged Phone Stand Case",
                                 "Slim Phone Case Stand Grip"], 12.0),
    ("Phone Stands", "PHO", ["Adjustable Phone Stand", "Desk Phone Holder Stand"], 18.0),
    ("Monitor Arms", "MON", ["Single Monitor Arm Stand", "Gas Spring Monitor Mount"], 75.0),
    ("Desk Lamps", "LAM", ["LED Desk Lamp with Clamp", "Architect Task Lamp"], 35.0),
]
PIPELINES = ["competitor_selection", "competitor_selection", "competitor_selection_v2",
             "similar_items"]
SEARCH_WORDS = ["price_out_of_range", "rating_too_low", "out_of_stock", "not_relevant",
                "drifted", "laptop", "judge", "B0LAP0007", "category_mismatch"]
TIME_MARK = "@@T{}@@"
ID_MARK = "@@FLOW_ID@@"


@dataclass
class Product:
    id: str
    title: str
    category: str
    price: float
    rating: float
    in_stock: bool


@dataclass
class Template:
    """A flow body with placeholders for its id and its times (offsets from its start)."""
    body: bytes
    time_offsets_ms: list[int]
    step_count: int
    candidates: list[str]  # observed in the filter step: what the journey client asks about


def make_catalog(rng: random.Random) -> list[Product]:
    products = []
    for category, code, titles, price in CATALOG_KINDS:
        for n in range(80):
            products.append(Product(
                id=f"B0{code}{n:04d}", title=titles[n % len(titles)], category=category,
                price=round(price * rng.uniform(0.4, 1.8), 2), rating=round(rng.uniform(2.5, 5.0), 1),
                in_stock=rng.random() > 0.08))
    return products


class Clock:
    """Hands out time placeholders for a template, in order, with their offsets."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.elapsed_ms = 0

    def mark(self, advance_ms: int = 0) -> str:
        self.elapsed_ms += advance_ms
        self.offsets.append(self.elapsed_ms)
        return TIME_MARK.format(len(self.offsets) - 1)


def keyword_step(clock: Clock, seq: int, title: str, drift: bool) -> tuple[dict, list[str]]:
    keywords = ["stand", "phone"] if drift else ["laptop stand", "laptop riser"]
    step = {
        "seq": seq, "name": "keywords", "kind": "generate", "status": "succeeded",
        "started_at": clock.mark(), "ended_at": clock.mark(180 + 40 * seq),
        "input": {"title": title}, "output": {"keywords": keywords},
        "reasoning": "keywords from the title" + (" (drifted to 'stand')" if drift else ""),
        "boundaries": [{"name": "llm.keywords", "input": {"title": title, "model": "small"},
                        "output": keywords}],
    }
    return step, keywords


def retrieval_step(clock: Clock, seq: int, keywords: list[str], found: list[Product],
                   catalog_size: int, rng: random.Random) -> dict:
    observations = [{"candidate_id": p.id, "verdict": "kept", "score": round(rng.uniform(0.3, 1.0), 3),
                     "attributes": {"title": p.title, "category": p.category}} for p in found]
    return {
        "seq": seq, "name": "search", "kind": "retrieve", "status": "succeeded",
        "started_at": clock.mark(5), "ended_at": clock.mark(60),
        "input": {"keywords": keywords, "index": "catalog-v3"}, "output": {"found": len(found)},
        "candidates_in": catalog_size, "candidates_out": len(found), "capture": "full",
        "observations": observations,
    }


def filter_reasons(product: Product, low: float, high: float) -> list[dict]:
    reasons = []
    if not low <= product.price <= high:
        reasons.append({"code": "price_out_of_range", "text": f"{product.price:.2f} not in {low:.2f}-{high:.2f}"})
    if product.rating < 3.5:
        reasons.append({"code": "rating_too_low", "text": f"{product.rating} < 3.5"})
    if not product.in_stock:
        reasons.append({"code": "out_of_stock", "text": "no offer in stock"})
    return reasons


def filter_step(clock: Clock, seq: int, found: list[Product], price: float) -> tuple[dict, list[Product]]:
    low, high = price * 0.5, price * 2
    observations, kept, histogram = [], [], defaultdict(int)
    for product in found:
        reasons = filter_reasons(product, low, high)
        for reason in reasons:
            histogram[reason["code"]] += 1
        observations.append({
            "candidate_id": product.id, "verdict": "rejected" if reasons else "kept",
            "reasons": reasons,
            "attributes": {"price": product.price, "rating": product.rating, "title": product.title},
        })
        if not reasons:
            kept.append(product)
    step = {
        "seq": seq, "name": "price_rating_filter", "kind": "filter", "status": "succeeded",
        "started_at": clock.mark(2), "ended_at": clock.mark(15),
        "input": {"min_price": low, "max_price": high, "min_rating": 3.5},
        "output": {"kept": len(kept)},
        "reasoning": "kept 0.5x-2x of the seller's price, rating >= 3.5, in stock",
        "candidates_in": len(found), "candidates_out": len(kept), "reasons": dict(histogram),
        "capture": "full", "observations": observations,
    }
    return step, kept


def judge_step(clock: Clock, seq: int, kept: list[Product], rng: random.Random,
               fails: bool) -> tuple[dict, list[tuple[float, Product]]]:
    observations, judged = [], []
    for product in kept:
        score = 0.9 if "Laptop" in product.title else (0.75 if "Stand" in product.title else 0.2)
        score = round(score + rng.uniform(-0.2, 0.15), 3)
        relevant = score >= 0.5
        observations.append({
            "candidate_id": product.id, "verdict": "kept" if relevant else "rejected", "score": score,
            "reasons": [] if relevant else [{"code": "not_relevant", "text": f"score {score:.2f} < 0.5"}],
            "attributes": {"category": product.category},
        })
        if relevant:
            judged.append((score, product))
    step = {
        "seq": seq, "name": "relevance", "kind": "judge", "status": "failed" if fails else "succeeded",
        "started_at": clock.mark(3), "ended_at": clock.mark(900 + 10 * len(kept)),
        "input": {"model": "judge-large", "candidates": len(kept)},
        "output": None if fails else {"relevant": len(judged)},
        "reasoning": "LLM judge: is this the same kind of product as the seller's?",
        "candidates_in": len(kept), "candidates_out": 0 if fails else len(judged),
        "reasons": {} if fails else {"not_relevant": len(kept) - len(judged)},
        "capture": "full", "observations": [] if fails else observations,
    }
    return step, judged


def rank_step(clock: Clock, seq: int, judged: list[tuple[float, Product]]) -> tuple[dict, Product | None]:
    ranked = sorted(judged, key=lambda pair: (-pair[0], pair[1].id))
    observations = []
    for place, (score, product) in enumerate(ranked):
        observations.append({
            "candidate_id": product.id, "verdict": "selected" if place == 0 else "rejected",
            "score": score,
            "reasons": [] if place == 0 else [{"code": "lower_rank", "text": f"rank {place + 1}"}],
        })
    best = ranked[0][1] if ranked else None
    step = {
        "seq": seq, "name": "rank", "kind": "rank", "status": "succeeded",
        "started_at": clock.mark(1), "ended_at": clock.mark(4),
        "input": {"by": "score"}, "output": {"selected": best.id if best else None},
        "candidates_in": len(ranked), "candidates_out": 1 if best else 0,
        "reasons": {"lower_rank": max(0, len(ranked) - 1)}, "capture": "full",
        "observations": observations,
    }
    return step, best


def make_template(rng: random.Random, catalog: list[Product], fails: bool) -> Template:
    """One realistic flow, with placeholders for its id and times; `fails`: in the judge."""
    clock = Clock()
    started = clock.mark()
    title, price = "Adjustable Aluminium Laptop Stand", round(rng.uniform(30, 60), 2)
    drift = rng.random() < 0.3
    steps = []
    step, keywords = keyword_step(clock, 0, title, drift)
    steps.append(step)
    pool = [p for p in catalog if any(k.split()[0].lower() in p.title.lower() for k in keywords)]
    found = rng.sample(pool, min(len(pool), rng.randint(30, 150)))
    steps.append(retrieval_step(clock, 1, keywords, found, len(catalog), rng))
    step, kept = filter_step(clock, 2, found, price)
    steps.append(step)
    step, judged = judge_step(clock, 3, kept, rng, fails)
    steps.append(step)
    best = None
    if not fails:
        step, best = rank_step(clock, 4, judged)
        steps.append(step)
    record = {
        "id": ID_MARK, "version": 1, "pipeline": rng.choice(PIPELINES),
        "status": "failed" if fails else "succeeded",
        "started_at": started, "ended_at": clock.mark(20),
        "input": {"title": title, "price": price, "category": "Laptop Stands"},
        "output": None if fails else {"selected": best.id if best else None,
                                      "category": best.category if best else None},
        "tags": {"seller": f"s-{rng.randrange(40):02d}", "env": rng.choice(["prod", "prod", "staging"]),
                 "region": rng.choice(["eu", "us"])},
        "error": "llm.judge timed out after 30 s" if fails else None,
        "sdk": {"name": "soak", "version": "1"},
        "steps": steps,
    }
    return Template(json.dumps(record, separators=(",", ":")).encode(), clock.offsets,
                    len(steps), [p.id for p in found])


class FlowFactory:
    """Fresh flows from pre-built templates: a new UUIDv7 and the current times."""

    def __init__(self, seed: int = 18) -> None:
        rng = random.Random(seed)
        catalog = make_catalog(rng)
        self.templates = [make_template(rng, catalog, fails=n % FAILING_EVERY == 0) for n in range(TEMPLATES)]
        self.rng = random.Random(seed + 1)
        self.lock = threading.Lock()

    def make(self) -> tuple[str, bytes, Template]:
        with self.lock:
            template = self.rng.choice(self.templates)
        flow_id = uuid7()
        start = datetime.now(timezone.utc) - timedelta(milliseconds=template.time_offsets_ms[-1])
        body = template.body.replace(ID_MARK.encode(), flow_id.encode())
        for index, offset in enumerate(template.time_offsets_ms):
            body = body.replace(TIME_MARK.format(index).encode(),
                                now_iso(start + timedelta(milliseconds=offset)).encode())
        return flow_id, body, template


# ===========================================================================================
# HTTP
# ===========================================================================================


@dataclass
class Answer:
    status: int  # 0: no answer (connection failed or timed out)
    body: bytes
    seconds: float
    retry_after: float = 0.0


class Api:
    """One keep-alive connection to the server (use one per thread)."""

    def __init__(self, port: int, key: str, timeout: float = HTTP_TIMEOUT_SECONDS) -> None:
        self.port, self.key, self.timeout = port, key, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> Answer:
        """The answer; a dropped keep-alive connection is reopened and the request sent once
        more (ingest is idempotent by flow id + version, the rest are reads)."""
        for attempt in range(2):
            started = time.monotonic()
            try:
                return self._send(method, path, body, started)
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if attempt == 1:
                    return Answer(0, str(error).encode(), time.monotonic() - started)
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, body: bytes | None, started: float) -> Answer:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Authorization": f"Bearer {self.key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.monotonic() - started
        retry_after = float(response.getheader("Retry-After") or 0) if response.status in (429, 503) else 0.0
        if response.will_close:
            self.close()
        return Answer(response.status, data, elapsed, retry_after)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def queue_depth(api: Api) -> int | None:
    """`flowtrail_queue_depth` from /metrics; None when it cannot be read."""
    answer = api.request("GET", "/metrics")
    if answer.status != 200:
        return None
    for line in answer.body.decode(errors="replace").splitlines():
        if line.startswith("flowtrail_queue_depth "):
            return int(float(line.split()[1]))
    return None


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of process `pid`, or of this script (all its threads)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0.0


class CpuMeter:
    """Cores used by the server and by this script since the last reading."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.last = (time.monotonic(), cpu_seconds(server_pid), cpu_seconds())

    def cores(self) -> tuple[float, float]:
        now = (time.monotonic(), cpu_seconds(self.pid), cpu_seconds())
        elapsed = max(now[0] - self.last[0], 1e-9)
        server, client = (now[1] - self.last[1]) / elapsed, (now[2] - self.last[2]) / elapsed
        self.last = now
        return server, client


def rss_kb(pid: int) -> int | None:
    """VmRSS of `pid` in kB; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ===========================================================================================
# Measurements
# ===========================================================================================


@dataclass
class Minute:
    """What happened in one bucket of time (a minute of the soak, or all of phase 1)."""
    acked: int = 0
    ack_ms: list[float] = field(default_factory=list)
    read_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0  # non-2xx other than 503/429, and requests without an answer
    server_errors: int = 0  # 5xx other than 503 (counted in errors too)
    unavailable: int = 0  # 503 and 429
    rss_kb: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    sse_events: int = 0


class Recorder:
    """Thread-safe per-minute buckets, by the time something happened."""

    def __init__(self, bucket_seconds: float) -> None:
        self.start = time.monotonic()
        self.bucket_seconds = bucket_seconds
        self.lock = threading.Lock()
        self.buckets: dict[int, Minute] = defaultdict(Minute)
        self.error_samples: list[str] = []

    def index(self) -> int:
        return int((time.monotonic() - self.start) // self.bucket_seconds)

    def _now(self) -> Minute:
        return self.buckets[self.index()]  # call with the lock held

    def ack(self, seconds: float) -> None:
        with self.lock:
            minute = self._now()
            minute.acked += 1
            minute.ack_ms.append(seconds * 1000)

    def read(self, kind: str, seconds: float) -> None:
        with self.lock:
            self._now().read_ms[kind].append(seconds * 1000)

    def lag(self, ms: float) -> None:
        with self.lock:
            self._now().lag_ms.append(ms)

    def sample(self, rss: int | None, depth: int | None) -> None:
        with self.lock:
            minute = self._now()
            if rss is not None:
                minute.rss_kb.append(rss)
            if depth is not None:
                minute.depth.append(depth)

    def sse_event(self) -> None:
        with self.lock:
            self._now().sse_events += 1

    def answer(self, kind: str, method: str, path: str, answer: Answer, expected: tuple[int, ...]) -> bool:
        """Records a request's outcome; True when its status is one of `expected`."""
        if answer.status in expected:
            return True
        with self.lock:
            minute = self._now()
            if answer.status in (429, 503):
                minute.unavailable += 1
                return False
            minute.errors += 1
            if answer.status >= 500:
                minute.server_errors += 1
            if len(self.error_samples) < 20:
                self.error_samples.append(
                    f"{kind}: {method} {path[:120]} -> {answer.status or 'no answer'} "
                    f"{answer.body[:300].decode(errors='replace')}")
        return False

    def bucket(self, index: int) -> Minute:
        with self.lock:
            return self.buckets[index]

    def total(self, attribute: str) -> int:
        with self.lock:
            return sum(getattr(m, attribute) for m in self.buckets.values())


class Ledger:
    """Every acknowledged flow id, with how many steps it was sent with."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.steps: dict[str, int] = {}

    def add(self, flow_id: str, step_count: int) -> None:
        with self.lock:
            self.steps[flow_id] = step_count

    def __len__(self) -> int:
        with self.lock:
            return len(self.steps)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.steps)


@dataclass
class Run:
    """What every thread shares."""
    port: int
    key: str
    factory: FlowFactory
    ledger: Ledger
    recorder: Recorder
    stop: threading.Event = field(default_factory=threading.Event)
    known_flows: deque = field(default_factory=lambda: deque(maxlen=200))  # (id, candidates) stored


# ===========================================================================================
# Clients
# ===========================================================================================


def send_flow(run: Run, api: Api, lag: LagSampler | None) -> bool:
    """Posts one fresh flow until it is acknowledged (retrying 503/429/409 with the same body);
    False when it was refused for good."""
    flow_id, body, template = run.factory.make()
    while True:
        answer = api.request("POST", "/api/v1/flows", body)
        if answer.status == 202:
            run.ledger.add(flow_id, template.step_count)
            run.recorder.ack(answer.seconds)
            if lag is not None:
                lag.offer(flow_id, template.candidates)
            return True
        if answer.status == 409:  # our own retry of a request still being accepted
            if run.stop.wait(0.05):
                return False
            continue
        run.recorder.answer("ingest", "POST", "/api/v1/flows", answer, (202,))
        if answer.status not in (429, 503):
            return False
        if run.stop.wait(min(max(answer.retry_after, 0.05), 1.0)):
            return False


def capacity_sender(run: Run, until: float) -> None:
    api = Api(run.port, run.key)
    while time.monotonic() < until and not run.stop.is_set():
        send_flow(run, api, None)
    api.close()


def paced_sender(run: Run, lag: LagSampler, index: int, senders: int, rate: float,
                 start: float, until: float) -> None:
    """Sends flow number k·senders + index at start + (k·senders + index) / rate."""
    api = Api(run.port, run.key)
    k = 0
    while not run.stop.is_set():
        due = start + (k * senders + index) / rate
        if due >= until:
            break
        if run.stop.wait(max(0.0, due - time.monotonic())):
            break
        send_flow(run, api, lag)
        k += 1
    api.close()


class LagSampler(threading.Thread):
    """Follows one acknowledged flow every LAG_SAMPLE_SECONDS to queryable (GET until 200)."""

    def __init__(self, run: Run) -> None:
        super().__init__(daemon=True, name="lag")
        self.run_state = run
        self.lock = threading.Lock()
        self.last_offer = 0.0
        self.pending: dict[str, tuple[float, list[str]]] = {}  # id -> (acked at, candidates)
        self.finish = threading.Event()  # set once no sender can offer a sample any more

    def offer(self, flow_id: str, candidates: list[str]) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last_offer < LAG_SAMPLE_SECONDS:
                return
            self.last_offer = now
            self.pending[flow_id] = (now, candidates)

    def oldest_pending_ms(self) -> float | None:
        with self.lock:
            if not self.pending:
                return None
            return (time.monotonic() - min(at for at, _ in self.pending.values())) * 1000

    def run(self) -> None:
        api = Api(self.run_state.port, self.run_state.key)
        while True:
            with self.lock:
                pending = list(self.pending.items())
            if not pending and self.finish.is_set():
                break
            for flow_id, (acked_at, candidates) in pending:
                self.poll(api, flow_id, acked_at, candidates)
            time.sleep(LAG_POLL_SECONDS)
        api.close()

    def poll(self, api: Api, flow_id: str, acked_at: float, candidates: list[str]) -> None:
        path = f"/api/v1/flows/{flow_id}"
        answer = api.request("GET", path)
        if answer.status == 404:
            return
        with self.lock:
            self.pending.pop(flow_id, None)
        if self.run_state.recorder.answer("lag", "GET", path, answer, (200,)):
            self.run_state.recorder.lag((time.monotonic() - acked_at) * 1000)
            self.run_state.known_flows.append((flow_id, candidates))

    def wait_resolved(self, seconds: float) -> int:
        """Waits for the pending samples; returns how many are still pending."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if not self.pending:
                    return 0
            time.sleep(0.1)
        with self.lock:
            return len(self.pending)


def list_paths(rng: random.Random) -> list[str]:
    """The list client's rotation of filters."""
    since = now_iso(datetime.now(timezone.utc) - timedelta(minutes=5))
    return [
        "/api/v1/flows?" + urlencode({"limit": 50}),
        "/api/v1/flows?" + urlencode({"pipeline": rng.choice(PIPELINES), "limit": 50}),
        "/api/v1/flows?" + urlencode({"status": "failed", "limit": 20}),
        "/api/v1/flows?" + urlencode({"tag": f"seller:s-{rng.randrange(40):02d}", "limit": 50}),
        "/api/v1/flows?" + urlencode([("tag", "env:prod"), ("tag", f"region:{rng.choice(['eu', 'us'])}")]),
        "/api/v1/flows?" + urlencode({"since": since, "limit": 100}),
        "/api/v1/flows?" + urlencode({"step_kind": "filter", "min_eliminated": "0.5", "limit": 50}),
    ]


def read_list(run: Run, api: Api, rng: random.Random) -> None:
    path = rng.choice(list_paths(rng))
    answer = timed_read(run, api, "list", path)
    if answer is not None and rng.random() < 0.3:  # the next page, as a user scrolling
        cursor = json.loads(answer.body).get("next_cursor")
        if cursor:
            timed_read(run, api, "list", path + "&" + urlencode({"cursor": cursor}))


def read_search(run: Run, api: Api, rng: random.Random) -> None:
    query = {"q": rng.choice(SEARCH_WORDS), "limit": 50}
    if rng.random() < 0.3:
        query["pipeline"] = rng.choice(PIPELINES)
    timed_read(run, api, "search", "/api/v1/flows?" + urlencode(query))


def read_journey(run: Run, api: Api, rng: random.Random) -> None:
    if not run.known_flows:
        return
    flow_id, candidates = rng.choice(list(run.known_flows))
    candidate = quote(rng.choice(candidates), safe="")
    timed_read(run, api, "journey", f"/api/v1/flows/{flow_id}/candidates/{candidate}")


def read_stats(run: Run, api: Api, rng: random.Random) -> None:
    since = now_iso(datetime.now(timezone.utc) - timedelta(hours=rng.choice([1, 24])))
    query = rng.choice([
        {},
        {"pipeline": rng.choice(PIPELINES)},
        {"pipeline": rng.choice(PIPELINES), "step": "price_rating_filter", "bucket": "hour", "since": since},
        {"bucket": "hour", "since": since},
    ])
    timed_read(run, api, "stats", "/api/v1/stats/reasons" + ("?" + urlencode(query) if query else ""))


def timed_read(run: Run, api: Api, kind: str, path: str) -> Answer | None:
    """GET `path`; records its latency (200) or its error. The answer when 200."""
    answer = api.request("GET", path)
    if run.recorder.answer(kind, "GET", path, answer, (200,)):
        run.recorder.read(kind, answer.seconds)
        return answer
    return None


READERS = {"list": read_list, "search": read_search, "journey": read_journey, "stats": read_stats}


def reader(run: Run, kind: str, seed: int) -> None:
    """One read kind at READS_PER_SECOND, paced (a slow answer delays, never bursts)."""
    api, rng = Api(run.port, run.key), random.Random(seed)
    interval, due = 1.0 / READS_PER_SECOND, time.monotonic()
    while not run.stop.is_set():
        READERS[kind](run, api, rng)
        due = max(due + interval, time.monotonic())
        if run.stop.wait(max(0.0, due - time.monotonic())):
            break
    api.close()


class SseClient(threading.Thread):
    """Stays on `GET /api/v1/events`, counting `flow` events; reconnects when it drops."""

    def __init__(self, run: Run) -> None:
        super().__init__(daemon=True, name="sse")
        self.run_state = run
        self.closing = threading.Event()
        self.sock: socket.socket | None = None
        self.connects = 0
        self.flow_events = 0
        self.lagged_missed = 0

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def run(self) -> None:
        while not self.closing.is_set():
            try:
                self.listen()
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if not self.closing.is_set():
                time.sleep(0.5)

    def listen(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.run_state.port, timeout=SSE_READ_TIMEOUT_SECONDS)
        conn.connect()
        self.sock = conn.sock
        try:
            conn.request("GET", "/api/v1/events", headers={
                "Authorization": f"Bearer {self.run_state.key}", "Accept": "text/event-stream"})
            response = conn.getresponse()
            self.connects += 1
            if response.status != 200:
                self.run_state.recorder.answer("sse", "GET", "/api/v1/events",
                                               Answer(response.status, response.read(), 0), (200,))
                return
            self.read_events(response)
        finally:
            conn.close()

    def read_events(self, response: http.client.HTTPResponse) -> None:
        event, data = "message", []
        while not self.closing.is_set():
            line = response.readline()
            if not line:
                return  # the stream ended
            line = line.rstrip(b"\r\n").decode(errors="replace")
            if line == "":
                self.dispatch(event, "\n".join(data))
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())

    def dispatch(self, event: str, data: str) -> None:
        if event == "flow":
            self.flow_events += 1
            self.run_state.recorder.sse_event()
        elif event == "lagged":
            self.lagged_missed += int(data or 0)

    def close(self) -> None:
        self.closing.set()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Monitor(threading.Thread):
    """Every second: the server's RSS and the queue depth, into the current minute."""

    def __init__(self, run: Run, server_pid: int) -> None:
        super().__init__(daemon=True, name="monitor")
        self.run_state, self.pid = run, server_pid
        self.closing = threading.Event()

    def run(self) -> None:
        api = Api(self.run_state.port, self.run_state.key)
        while not self.closing.wait(1.0):
            self.run_state.recorder.sample(rss_kb(self.pid), queue_depth(api))
        api.close()


def sleep_until(deadline: float) -> None:
    """Sleeps in short steps: a signal (Ctrl-C, SIGTERM) is handled by the main thread only
    when it runs, and the kernel may deliver it to another thread."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))


def join_all(threads: list[threading.Thread]) -> None:
    """Joins in short steps (see `sleep_until`)."""
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)


def start_thread(target, *args, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True, name=name)
    thread.start()
    return thread


# ===========================================================================================
# The server
# ===========================================================================================


def die_with_parent() -> None:
    """In the child: SIGKILL when this script dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def log_kind(line: str) -> str:
    """`LEVEL target: message` of a log line (no timestamp, no `key=value` fields), with the
    statement's start for sqlx's slow-statement warnings."""
    match = re.match(r"\S+\s+(?P<text>[A-Z]+\s+.*?)(?=\s+[\w.]+=|$)", line.strip())
    kind = match["text"] if match else line.strip()
    summary = re.search(r'summary="([^"]{0,60})', line)
    return (kind + (f' [{summary[1]}]' if summary else ""))[:200]


class Server:
    """`flowtrail serve` on the embedded profile in a fresh temporary directory."""

    def __init__(self, binary: str) -> None:
        self.binary = os.path.abspath(binary)
        self.dir = tempfile.mkdtemp(prefix="flowtrail-soak-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.key = ""

    def start(self) -> None:
        self.key = subprocess.run(
            [self.binary, "admin", "create-api-key", "--data-dir", self.data, "--name", "soak",
             "--scope", "all"],
            check=True, capture_output=True, text=True, env=self.env()).stdout.strip()
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [self.binary, "serve", "--data-dir", self.data, "--addr", f"127.0.0.1:{self.port}",
                 "--otlp-grpc-addr", "0"],
                stdout=log_file, stderr=subprocess.STDOUT, env=self.env(), preexec_fn=die_with_parent)
        self.wait_ready()

    def env(self) -> dict[str, str]:
        """The embedded default: no engine URLs inherited from the caller's environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWTRAIL_")}
        env.setdefault("RUST_LOG", "warn")
        return env

    def wait_ready(self) -> None:
        api = Api(self.port, self.key, timeout=5)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flowtrail serve exited with {self.process.returncode}")
            if api.request("GET", "/readyz").status == 200:
                api.close()
                return
            time.sleep(0.1)
        raise RuntimeError("flowtrail serve did not become ready")

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_SECONDS; the exit status and how long it
        took. (`serve` shuts down gracefully: it waits for open connections, so stop the
        clients, the SSE client above all, first.)"""
        if self.process is None or self.process.poll() is not None:
            return (None if self.process is None else self.process.returncode), 0.0
        started = time.monotonic()
        self.process.terminate()
        try:
            status = self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        return status, time.monotonic() - started

    def log_kinds(self, *words: str) -> Counter:
        """Log lines holding one of `words`, counted by kind: the line without its timestamp
        and its structured fields."""
        kinds: Counter = Counter()
        try:
            with open(self.log_path, errors="replace") as log_file:
                for line in log_file:
                    if any(word in line for word in words):
                        kinds[log_kind(line)] += 1
        except OSError:
            pass
        return kinds

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as log_file:
                return "".join(deque(log_file, maxlen=lines))
        except OSError:
            return ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ===========================================================================================
# Phases
# ===========================================================================================


def wait_drained(run: Run, seconds: float) -> float | None:
    """Seconds until the queue depth reads 0; None when it did not within `seconds`."""
    api, started = Api(run.port, run.key), time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            if queue_depth(api) == 0:
                return time.monotonic() - started
            time.sleep(0.2)
        return None
    finally:
        api.close()


def measure_capacity(run: Run, seconds: float, server_pid: int) -> tuple[float, float]:
    """Flows per second acknowledged and processed with senders back to back, and the ack p99
    in seconds."""
    run.recorder = Recorder(bucket_seconds=1e9)
    cpu = CpuMeter(server_pid)
    started = time.monotonic()
    until = started + seconds
    threads = [start_thread(capacity_sender, run, until, name=f"capacity-{i}") for i in range(CAPACITY_SENDERS)]
    join_all(threads)
    api = Api(run.port, run.key)
    depth = queue_depth(api)
    elapsed = time.monotonic() - started
    server_cores, client_cores = cpu.cores()
    api.close()
    if depth is None:
        raise RuntimeError("could not read flowtrail_queue_depth from /metrics")
    acknowledged = len(run.ledger)
    capacity = (acknowledged - depth) / elapsed
    minute = run.recorder.bucket(0)
    drained = wait_drained(run, DRAIN_TIMEOUT_SECONDS)
    print(f"capacity: {acknowledged} flows acknowledged in {elapsed:.1f} s by {CAPACITY_SENDERS} senders, "
        f"{depth} still queued at the end -> {acknowledged - depth} processed = {capacity:.1f} flows/s; "
        f"ack p50/p99 {fmt_ms(percentile(minute.ack_ms, 0.5))}/{fmt_ms(percentile(minute.ack_ms, 0.99))} ms; "
        f"503/429: {minute.unavailable}; errors: {minute.errors}; CPU cores used: server {server_cores:.2f}, "
        f"this script {client_cores:.2f} (of {os.cpu_count()}); backlog drained in "
        + (f"{drained:.1f} s" if drained is not None else f"more than {DRAIN_TIMEOUT_SECONDS:.0f} s"), flush=True)
    if drained is None:
        raise RuntimeError("the capacity phase's backlog did not drain")
    return capacity, (percentile(minute.ack_ms, 0.99) or 0.0) / 1000


@dataclass
class Row:
    minute: int
    acked: int
    ack_p50: float | None
    ack_p99: float | None
    read_p99: dict[str, float | None]
    errors: int
    server_errors: int
    unavailable: int
    rss_max_kb: int | None
    depth_end: int | None
    depth_max: int | None
    lag_p99: float | None
    lag_max: float | None
    sse_events: int
    cpu_server: float
    cpu_client: float

    HEADER = ("| min | acked | ack p50 ms | ack p99 ms | list p99 ms | search p99 ms | journey p99 ms "
              "| stats p99 ms | errors | 503/429 | RSS max MB | depth end/max | lag p99 ms | lag max ms "
              "| SSE events | CPU server/soak |\n|" + "---:|" * 16)

    def markdown(self) -> str:
        reads = [fmt_ms(self.read_p99.get(kind)) for kind in READERS]
        cells = [str(self.minute), str(self.acked), fmt_ms(self.ack_p50), fmt_ms(self.ack_p99), *reads,
                 str(self.errors), str(self.unavailable), fmt_mb(self.rss_max_kb),
                 f"{'–' if self.depth_end is None else self.depth_end}/{'–' if self.depth_max is None else self.depth_max}",
                 fmt_ms(self.lag_p99), fmt_ms(self.lag_max), str(self.sse_events),
                 f"{self.cpu_server:.2f}/{self.cpu_client:.2f}"]
        return "| " + " | ".join(cells) + " |"


def minute_row(index: int, minute: Minute, depth_end: int | None, lag_pending_ms: float | None,
               cores: tuple[float, float]) -> Row:
    lags = minute.lag_ms + ([lag_pending_ms] if lag_pending_ms is not None else [])
    return Row(
        minute=index + 1, acked=minute.acked,
        ack_p50=percentile(minute.ack_ms, 0.5), ack_p99=percentile(minute.ack_ms, 0.99),
        read_p99={kind: percentile(minute.read_ms.get(kind, []), 0.99) for kind in READERS},
        errors=minute.errors, server_errors=minute.server_errors, unavailable=minute.unavailable,
        rss_max_kb=max(minute.rss_kb) if minute.rss_kb else None,
        depth_end=depth_end, depth_max=max(minute.depth + ([depth_end] if depth_end is not None else []), default=None),
        lag_p99=percentile(lags, 0.99), lag_max=max(lags) if lags else None,
        sse_events=minute.sse_events, cpu_server=cores[0], cpu_client=cores[1])


def soak(run: Run, rate: float, sender_count: int, minutes: int, server_pid: int) -> tuple[list[Row], LagSampler]:
    """Phase 2; the rows, one per minute, printed as they end."""
    run.recorder = Recorder(bucket_seconds=MINUTE_SECONDS)
    cpu = CpuMeter(server_pid)
    start = run.recorder.start
    until = start + minutes * MINUTE_SECONDS
    lag = LagSampler(run)
    lag.start()
    senders = [start_thread(paced_sender, run, lag, i, sender_count, rate, start, until, name=f"sender-{i}")
               for i in range(sender_count)]
    readers = [start_thread(reader, run, kind, n, name=f"read-{kind}") for n, kind in enumerate(READERS)]
    print(Row.HEADER, flush=True)
    api, rows = Api(run.port, run.key), []
    for index in range(minutes):
        sleep_until(start + (index + 1) * MINUTE_SECONDS)
        depth_end = queue_depth(api)
        row = minute_row(index, run.recorder.bucket(index), depth_end, lag.oldest_pending_ms(), cpu.cores())
        rows.append(row)
        print(row.markdown(), flush=True)
    run.stop.set()
    join_all(senders + readers)
    lag.finish.set()
    api.close()
    return rows, lag


# ===========================================================================================
# Ledger check and verdict
# ===========================================================================================


def listed_ids(run: Run) -> list[str] | None:
    """Every flow id the API lists, page by page (repeats kept); None if a page failed."""
    api, ids, cursor = Api(run.port, run.key), [], None
    try:
        while True:
            query = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            answer = api.request("GET", "/api/v1/flows?" + urlencode(query))
            if answer.status != 200:
                log(f"listing the flows failed: {answer.status} {answer.body[:200]!r}")
                return None
            page = json.loads(answer.body)
            ids += [str(uuid.UUID(f["id"])) for f in page["flows"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return ids
    finally:
        api.close()


@dataclass
class LedgerCheck:
    acknowledged: int
    stored: int
    lost: int
    duplicated: int
    damaged: int  # stored with another number of steps than sent
    dead_jobs: int
    unacknowledged_stored: int  # stored without a 202 (an answer lost on the way): allowed


def check_database(db_path: str, ledger: dict[str, int], listed: list[str]) -> LedgerCheck:
    """Compares the ledger with `flowtrail.db` (read-only, server stopped) and the API list:
    an acknowledged flow counts as stored when it is in both."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id, COUNT(*) FROM flows GROUP BY id").fetchall()
        steps = dict(db.execute("SELECT flow_id, COUNT(*) FROM steps GROUP BY flow_id").fetchall())
        dead = db.execute("SELECT COUNT(*) FROM ingest_jobs WHERE state = 'dead'").fetchone()[0]
    finally:
        db.close()
    stored = {str(uuid.UUID(flow_id)): count for flow_id, count in rows}
    steps = {str(uuid.UUID(flow_id)): count for flow_id, count in steps.items()}
    listed_set = set(listed)
    acknowledged = set(ledger)
    in_both = acknowledged & set(stored) & listed_set
    duplicated = (len(listed) - len(listed_set)) + sum(count - 1 for count in stored.values())
    damaged = sum(1 for flow_id in in_both if steps.get(flow_id, 0) != ledger[flow_id])
    return LedgerCheck(
        acknowledged=len(acknowledged), stored=len(in_both), lost=len(acknowledged - in_both),
        duplicated=duplicated, damaged=damaged, dead_jobs=dead,
        unacknowledged_stored=len(set(stored) - acknowledged))


def judged_rows(rows: list[Row]) -> list[Row]:
    """The rows that count for baselines: all but the warm-up minute."""
    return rows[1:]


def flatness_failures(rows: list[Row], rate: float) -> list[str]:
    """The flatness checks that fail (see the module docstring)."""
    judged = judged_rows(rows)
    if not judged:
        return []
    return (rss_failure(judged)
            + throughput_failure(judged)
            + p99_failure("ack p99", [r.ack_p99 for r in judged], ACK_P99_FACTOR, ACK_P99_SLACK_MS)
            + p99_failure("lag p99", [r.lag_p99 for r in judged], LAG_P99_FACTOR, LAG_P99_SLACK_MS)
            + backlog_failure(rows, rate))


def rss_failure(judged: list[Row]) -> list[str]:
    baseline, last = judged[0].rss_max_kb, judged[-1].rss_max_kb
    if baseline is None or last is None:
        return ["RSS: no samples"]
    if last / 1024 > RSS_GROWTH_FACTOR * baseline / 1024 + RSS_SLACK_MB:
        return [f"RSS grew: last minute {fmt_mb(last)} MB > {RSS_GROWTH_FACTOR} × minute 2's "
                f"{fmt_mb(baseline)} MB + {RSS_SLACK_MB:.0f} MB"]
    return []


def throughput_failure(judged: list[Row]) -> list[str]:
    median = statistics.median(r.acked for r in judged)
    if judged[-1].acked < ACKED_FLOOR_SHARE * median:
        return [f"ingest fell behind: {judged[-1].acked} flows acknowledged in the last minute < "
                f"{ACKED_FLOOR_SHARE} × the median minute's {median:.0f}"]
    return []


def read_growth_notes(rows: list[Row]) -> list[str]:
    """Read kinds whose p99 grew (reported, not judged)."""
    notes = []
    for kind in READERS:
        values = [r.read_p99.get(kind) for r in judged_rows(rows)]
        notes += [f"note: {kind} {text}" for text in
                  p99_failure("p99", values, READ_P99_NOTE_FACTOR, READ_P99_NOTE_SLACK_MS)]
    return notes


def p99_failure(name: str, values: list[float | None], factor: float, slack_ms: float) -> list[str]:
    """The last minute's p99 against the median minute's."""
    known = [v for v in values if v is not None]
    if not values or values[-1] is None:
        return [f"{name}: no samples in the last minute"] if values else []
    median = statistics.median(known)
    if values[-1] > factor * median + slack_ms:
        return [f"{name} grew: last minute {fmt_ms(values[-1])} ms > {factor} × median minute "
                f"{fmt_ms(median)} ms + {slack_ms:.0f} ms"]
    return []


def backlog_failure(rows: list[Row], rate: float) -> list[str]:
    """Queue depth at the end of each minute of the second half higher than the minute before,
    ending above DEPTH_NOISE_SECONDS of ingest."""
    half = max(1, len(rows) // 2)
    depths = [r.depth_end for r in rows[-half - 1:]]  # the second half and the minute before it
    if any(d is None for d in depths):
        return ["queue depth: unreadable at the end of a minute"]
    rising = all(later > earlier for earlier, later in zip(depths, depths[1:]))
    if rising and depths[-1] > DEPTH_NOISE_SECONDS * rate:
        return [f"queue backlog grows every minute of the second half: {depths} "
                f"(ending above {DEPTH_NOISE_SECONDS:.0f} s of ingest = {DEPTH_NOISE_SECONDS * rate:.0f} flows)"]
    return []


def summary_line(capacity: float, rate: float, rows: list[Row], check: LedgerCheck, errors: int,
                 sse: SseClient) -> str:
    rss = [r.rss_max_kb for r in rows if r.rss_max_kb is not None]
    first, last = rows[0], rows[-1]
    achieved = statistics.mean(r.acked for r in (judged_rows(rows) or rows)) / MINUTE_SECONDS
    return (f"soak: capacity={capacity:.1f} flows/s, rate={rate:.1f} flows/s (achieved {achieved:.1f}), "
            f"minutes={len(rows)}, "
            f"acknowledged={check.acknowledged}, stored={check.stored}, lost={check.lost}, "
            f"duplicated={check.duplicated}, damaged={check.damaged}, dead_jobs={check.dead_jobs}, "
            f"rss_mb first/last/max={fmt_mb(rss[0] if rss else None)}/{fmt_mb(rss[-1] if rss else None)}/"
            f"{fmt_mb(max(rss) if rss else None)}, "
            f"ack_p99 first/last={fmt_ms(first.ack_p99)}/{fmt_ms(last.ack_p99)} ms, "
            f"lag_p99 first/last={fmt_ms(first.lag_p99)}/{fmt_ms(last.lag_p99)} ms, "
            f"sse_events={sse.flow_events} (reconnects={sse.reconnects}, missed={sse.lagged_missed}), "
            f"errors={errors}")


def write_out(path: str, rows: list[Row], summary: str, verdict: str) -> None:
    with open(path, "w") as out:
        out.write(Row.HEADER + "\n")
        out.writelines(row.markdown() + "\n" for row in rows)
        out.write(f"\n{summary}\n\n{verdict}\n")


# ===========================================================================================
# Main
# ===========================================================================================


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", help="the flowtrail binary")
    parser.add_argument("--minutes", type=int, default=10, help="length of the soak (default 10)")
    parser.add_argument("--capacity-seconds", type=float, default=20,
                        help="length of the capacity measurement (default 20)")
    parser.add_argument("--out", help="also write the table and the summary as Markdown to this file")
    args = parser.parse_args()
    if args.minutes < 1 or args.capacity_seconds <= 0:
        parser.error("--minutes must be at least 1 and --capacity-seconds positive")
    return args


def soak_and_judge(args: argparse.Namespace, server: Server, closers: list) -> int:
    run = Run(port=server.port, key=server.key, factory=FlowFactory(), ledger=Ledger(),
              recorder=Recorder(1e9))
    closers.append(run.stop.set)
    monitor = Monitor(run, server.process.pid)
    monitor.start()
    closers.append(monitor.closing.set)
    log(f"phase 1: capacity, {args.capacity_seconds:.0f} s of back-to-back ingest")
    capacity, ack_p99_seconds = measure_capacity(run, args.capacity_seconds, server.process.pid)
    capacity_recorder = run.recorder
    rate = capacity * SOAK_RATE_SHARE
    if rate <= 0:
        raise RuntimeError("measured capacity is 0 flows/s")
    senders = min(SOAK_SENDERS_MAX, max(SOAK_SENDERS_MIN, math.ceil(rate * 2 * ack_p99_seconds)))
    log(f"phase 2: soak, {args.minutes} min at {rate:.1f} flows/s from {senders} senders, with list, "
        f"search, journey and stats clients at {READS_PER_SECOND:g}/s each and one SSE client")
    sse = SseClient(run)
    sse.start()
    closers.append(sse.close)
    rows, lag = soak(run, rate, senders, args.minutes, server.process.pid)

    drained = wait_drained(run, DRAIN_TIMEOUT_SECONDS)
    unresolved = lag.wait_resolved(10)
    sleep_until(time.monotonic() + 1.0)  # the last SSE events
    sse.close()
    monitor.closing.set()
    listed = listed_ids(run)
    server_status, stop_seconds = server.stop()
    check = check_database(os.path.join(server.data, "flowtrail.db"), run.ledger.snapshot(), listed or [])

    recorders = [capacity_recorder, run.recorder]
    errors = sum(r.total("errors") for r in recorders)
    failures = (run_failures(recorders, check, listed is not None, drained, unresolved)
                + flatness_failures(rows, rate))
    log_diagnostics(recorders, rows, server, server_status, stop_seconds, check, drained)
    summary = summary_line(capacity, rate, rows, check, errors, sse)
    note = "" if judged_rows(rows) else " (one minute: too short to judge flatness)"
    verdict = ("soak: PASS" + note) if not failures else "soak: FAIL: " + "; ".join(failures)
    print(f"\n{summary}\n{verdict}", flush=True)
    if args.out:
        write_out(args.out, rows, summary, verdict)
    return 1 if failures else 0


def run_failures(recorders: list[Recorder], check: LedgerCheck, listed: bool,
                 drained: float | None, unresolved: int) -> list[str]:
    """Errors and ledger: what fails the soak whatever the figures' trend."""
    failures = []
    server_errors = sum(r.total("server_errors") for r in recorders)
    other_errors = sum(r.total("errors") for r in recorders) - server_errors
    if server_errors:
        failures.append(f"{server_errors} answers were 5xx other than 503")
    if other_errors:
        failures.append(f"{other_errors} other errors (see above)")
    if not listed:
        failures.append("the flows list could not be read to the end")
    if check.lost or check.duplicated or check.damaged:
        failures.append(f"ledger: lost={check.lost} duplicated={check.duplicated} damaged={check.damaged}")
    if check.dead_jobs:
        failures.append(f"{check.dead_jobs} ingest jobs dead")
    if drained is None:
        failures.append(f"the queue did not drain within {DRAIN_TIMEOUT_SECONDS:.0f} s after the soak")
    if unresolved:
        failures.append(f"{unresolved} sampled flows never became queryable")
    return failures


def log_diagnostics(recorders: list[Recorder], rows: list[Row], server: Server, status: int | None,
                    stop_seconds: float, check: LedgerCheck, drained: float | None) -> None:
    """Error samples, read notes, how the server stopped and what it logged (on stderr)."""
    for recorder in recorders:
        for sample in recorder.error_samples:
            log(f"error: {sample}")
    for note in read_growth_notes(rows):
        log(note)
    if drained is not None:
        log(f"queue drained {drained:.1f} s after the soak's last send")
    if check.unacknowledged_stored:
        log(f"note: {check.unacknowledged_stored} flows stored without a 202 received (answer lost)")
    log(f"server: exit status {status} {stop_seconds:.1f} s after SIGTERM"
        + (" (did not stop: SIGKILLed)" if status == -signal.SIGKILL else ""))
    kinds = server.log_kinds("WARN", "ERROR", "panicked")
    log(f"server log: {sum(kinds.values())} WARN/ERROR lines"
        + "".join(f"\n  {count} × {kind}" for kind, count in kinds.most_common(10)))


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # runs the `finally` below
    server, closers = Server(args.binary), []
    try:
        server.start()
        log(f"flowtrail serve on 127.0.0.1:{server.port} (pid {server.process.pid}), data in {server.data}")
        return soak_and_judge(args, server, closers)
    except KeyboardInterrupt:
        log("interrupted: stopping the server")
        return 130
    except (RuntimeError, OSError, subprocess.CalledProcessError, sqlite3.Error) as error:
        log(f"soak could not run: {error}\n--- server log (tail) ---\n{server.log_tail()}")
        return 2
    finally:
        for close in closers:  # the clients first: open connections delay the server's exit
            close()
        server.remove()


if __name__ == "__main__":
    sys.exit(main())
