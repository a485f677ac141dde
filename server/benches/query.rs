//! Query engine at scale: generates a million flows (five million steps) of three pipelines
//! into an embedded data directory through the real write path, then prints p50/p95 of the
//! walkthrough's questions asked through the HTTP router.
//!
//! `cargo bench -p flowtrail-server --bench query`
//!
//! Then it exports (`flowtrail export`, as a user runs it) every flow and smaller selections
//! at each level and format, printing rows, flows/s and the export's peak RSS — memory that
//! stays the same whether 100,000 or 1,000,000 flows are exported is the streaming's proof
//! (`FLOWTRAIL_BENCH_SKIP_EXPORT=1` skips it).
//!
//! - `FLOWTRAIL_BENCH_FLOWS` (default 1000000): how many flows to generate.
//! - `FLOWTRAIL_BENCH_DIR`: keep the data directory there and reuse it on the next run (the
//!   generator only tops it up to the wanted count), instead of a temporary one.
//!
//! The data has a known shape: 5 % of flows have a filter that eliminates more than 99 % of
//! its candidates; 2 % mention "phone case" in a judge's reasons; each candidate id of a pool
//! of 100,000 appears in about 100 flows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::accounts::Scope;
use flowtrail_domain::flows::{FlowWrite, StepPayloads, WriteMode};
use flowtrail_domain::payloads::PayloadStore;
use flowtrail_domain::{Services, StorageConfig};
use flowtrail_server::{HttpConfig, build_app};
use flowtrail_types::{
    Capture, FlowRecord, FlowStatus, Observation, Reason, StepKind, StepRecord, Verdict,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;
use uuid::Uuid;

const PIPELINES: [&str; 3] = [
    "competitor_selection",
    "listing_optimisation",
    "product_categorisation",
];
const CANDIDATE_POOL: u64 = 100_000;
/// The newest flow starts here; the others spread over the 30 days before.
const END_S: i64 = 1_795_000_000;
const SPAN_S: i64 = 30 * 86_400;
const BATCH: usize = 500;

fn candidate(rng: &mut StdRng) -> String {
    format!("B0{:08}", rng.random_range(0..CANDIDATE_POOL))
}

/// Flow number `n`, the same on every run: five steps, the judge's sample observed.
fn generate(n: u64, total: u64) -> FlowRecord {
    let mut rng = StdRng::seed_from_u64(n);
    let pipeline = PIPELINES[(n % 3) as usize];
    let started_s = END_S - SPAN_S + (n as i64 * SPAN_S) / total.max(1) as i64;
    let started = OffsetDateTime::from_unix_timestamp(started_s).unwrap();
    let id = Uuid::from_u64_pair(0x0193_0000_0000_7000 | (n >> 32), n);
    let retrieved: u64 = rng.random_range(2_000..6_000);
    let drastic = rng.random_bool(0.05);
    let kept: u64 = if drastic {
        rng.random_range(1..(retrieved / 100).max(2))
    } else {
        rng.random_range(retrieved / 10..retrieved / 2)
    };
    let eliminated = retrieved - kept;
    let price = eliminated * rng.random_range(40..70) / 100;
    let rating = eliminated - price;
    let judged: u64 = kept.min(30);
    let phone = rng.random_bool(0.02);
    let step = |seq: u32, name: &str, kind: StepKind, counts: Option<(u64, u64)>| {
        let mut step = StepRecord::new(seq, name, kind);
        step.status = FlowStatus::Succeeded;
        step.started_at = Some(started + Duration::from_millis(seq as u64 * 300));
        step.ended_at = Some(started + Duration::from_millis(seq as u64 * 300 + 250));
        step.capture = Capture::CountsOnly;
        if let Some((input, output)) = counts {
            step.candidates_in = Some(input);
            step.candidates_out = Some(output);
        }
        step
    };
    let mut keywords = step(0, "keyword_generation", StepKind::Generate, None);
    keywords.output = json!({"keywords": ["laptop stand", "aluminium stand", "desk riser"]});
    keywords.reasoning = Some("Extracted the product type and material from the title".into());
    let mut retrieve = step(
        1,
        "catalogue_search",
        StepKind::Retrieve,
        Some((0, retrieved)),
    );
    retrieve.candidates_in = None;
    let mut filter = step(
        2,
        "price_and_rating_filter",
        StepKind::Filter,
        Some((retrieved, kept)),
    );
    filter.reasons = [
        ("price_out_of_range", price),
        ("rating_below_threshold", rating),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(c, n)| (c.to_string(), n))
    .collect();
    filter.reasoning =
        Some("Kept candidates within 0.5x-2x of the seller's price, rating >= 4".into());
    let mut judge = step(3, "relevance_judge", StepKind::Judge, Some((kept, judged)));
    judge.capture = Capture::Sampled;
    judge.reasoning =
        Some("An LLM judged whether each candidate is the same kind of product".into());
    let mut reasons = std::collections::BTreeMap::new();
    for i in 0..10u32 {
        let rejected = i >= 3;
        let text = if phone && i == 3 {
            "a phone case, not a laptop stand".to_string()
        } else {
            format!("accessory of another category (score {})", 30 + i)
        };
        judge.observations.push(Observation {
            candidate_id: candidate(&mut rng),
            verdict: if rejected {
                Verdict::Rejected
            } else {
                Verdict::Kept
            },
            score: Some(if rejected { 0.2 } else { 0.8 }),
            reasons: if rejected {
                vec![Reason {
                    code: "not_same_product".into(),
                    text: Some(text),
                }]
            } else {
                Vec::new()
            },
            attributes: serde_json::Map::from_iter([("price".to_string(), json!(40 + i))]),
        });
    }
    reasons.insert("not_same_product".to_string(), kept - judged);
    judge.reasons = reasons;
    let mut select = step(4, "final_selection", StepKind::Select, Some((judged, 1)));
    select.output = json!({"selected": judge.observations[0].candidate_id});
    let failed = rng.random_bool(0.03);
    FlowRecord {
        id,
        version: 1,
        pipeline: pipeline.into(),
        status: if failed {
            FlowStatus::Failed
        } else {
            FlowStatus::Succeeded
        },
        started_at: started,
        ended_at: Some(started + Duration::from_millis(1_600)),
        input: json!({"title": "Adjustable aluminium laptop stand", "n": n}),
        output: select.output.clone(),
        tags: [
            (
                "env".to_string(),
                if n.is_multiple_of(10) { "dev" } else { "prod" }.to_string(),
            ),
            ("seller".to_string(), format!("S{}", n % 1_000)),
        ]
        .into(),
        error: failed.then(|| "judge timed out after 30 s".to_string()),
        sdk: None,
        steps: vec![keywords, retrieve, filter, judge, select],
    }
}

/// Flows already in the data directory (the API has no count; ask SQLite directly).
async fn stored_count() -> u64 {
    let url = format!("sqlite://{}", services_db_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flows")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count as u64
}

fn data_dir() -> std::path::PathBuf {
    std::env::var_os("FLOWTRAIL_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("flowtrail-query-bench-{}", std::process::id()))
        })
}

fn services_db_path() -> std::path::PathBuf {
    data_dir().join("flowtrail.db")
}

async fn load(services: &Services, team: i64, from: u64, total: u64) {
    let started = Instant::now();
    let mut n = from;
    while n < total {
        let end = (n + BATCH as u64).min(total);
        let records: Vec<FlowRecord> = (n..end).map(|i| generate(i, total)).collect();
        let mut payloads = Vec::with_capacity(records.len());
        for record in &records {
            let mut map = StepPayloads::new();
            for step in record.steps.iter().filter(|s| !s.observations.is_empty()) {
                let encoded =
                    PayloadStore::encode(team, record.id, 1, step.seq, &step.observations).unwrap();
                map.insert(step.seq, services.payloads.put(&encoded).await.unwrap());
            }
            payloads.push(map);
        }
        let writes: Vec<FlowWrite<'_>> = records
            .iter()
            .zip(&payloads)
            .map(|(flow, payloads)| FlowWrite {
                team_id: team,
                flow,
                payloads,
                mode: WriteMode::Replace,
                imported: false,
            })
            .collect();
        services.metadata.upsert_flows(&writes).await.unwrap();
        n = end;
        if n % 50_000 < BATCH as u64 || n == total {
            let rate = (n - from) as f64 / started.elapsed().as_secs_f64();
            eprintln!("  generated {n} / {total} flows ({rate:.0} flows/s)");
        }
    }
}

struct Bench {
    router: Router,
    key: String,
}

impl Bench {
    /// The status and the whole body, as an HTTP client has them at the last byte.
    async fn get(&self, uri: &str) -> (StatusCode, Bytes) {
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        (
            status,
            to_bytes(response.into_body(), usize::MAX).await.unwrap(),
        )
    }

    /// Asks `uris` in turn, `rounds` times over, and prints p50 / p95 / max of the time to the
    /// body's last byte (parsing it for `check` is the client's cost, not counted).
    async fn measure(&self, label: &str, uris: &[String], rounds: usize, check: impl Fn(&Value)) {
        let mut times = Vec::with_capacity(uris.len() * rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            for uri in uris {
                let start = Instant::now();
                let (status, body) = self.get(uri).await;
                times.push(start.elapsed());
                bytes = bytes.max(body.len());
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                assert_eq!(status, StatusCode::OK, "{uri}: {body}");
                check(&body);
            }
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "{label:<58} p50 {:>7.2} ms   p95 {:>7.2} ms   max {:>7.2} ms   (n={}, ≤ {} KB)",
            at(0.50).as_secs_f64() * 1e3,
            at(0.95).as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            times.len(),
            bytes.div_ceil(1000)
        );
    }
}

/// Runs `ask(i)` for i in `0..rounds` and prints p50 / p95 / max of its time, as
/// [`Bench::measure`] does for HTTP.
async fn timed<F, Fut>(label: &str, rounds: usize, mut ask: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let start = Instant::now();
        ask(i).await;
        times.push(start.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{label:<58} p50 {:>7.2} ms   p95 {:>7.2} ms   max {:>7.2} ms   (n={})",
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len(),
    );
}

#[tokio::main]
async fn main() {
    let total: u64 = std::env::var("FLOWTRAIL_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = data_dir();
    let keep = std::env::var_os("FLOWTRAIL_BENCH_DIR").is_some();
    std::fs::create_dir_all(&dir).unwrap();
    let storage = StorageConfig::embedded(&dir);
    let services = Arc::new(Services::open(&storage).await.unwrap());
    let team = services.bootstrap(None).await.unwrap().id;
    let have = stored_count().await;
    println!(
        "query benchmark: {total} flows ({} steps) in {}",
        total * 5,
        dir.display()
    );
    if have < total {
        eprintln!("generating flows {have}..{total} through the write path");
        let started = Instant::now();
        load(&services, team, have, total).await;
        println!(
            "generated {} flows in {:.1} s ({:.0} flows/s, {:.0} steps/s)",
            total - have,
            started.elapsed().as_secs_f64(),
            (total - have) as f64 / started.elapsed().as_secs_f64(),
            ((total - have) * 5) as f64 / started.elapsed().as_secs_f64()
        );
        let url = format!("sqlite://{}", services_db_path().display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("PRAGMA optimize").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let key = services
        .create_api_key("default", "bench", Scope::Read)
        .await
        .unwrap();
    let config = HttpConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("site"));
    let router = build_app(services.clone(), &config).await.unwrap();
    let bench = Bench { router, key };
    let mut rng = StdRng::seed_from_u64(7);
    let rounds = 5;

    let pipelines: Vec<String> = PIPELINES
        .iter()
        .map(|p| format!("/api/v1/flows?pipeline={p}&limit=50"))
        .collect();
    bench
        .measure(
            "list: newest 50 of a pipeline",
            &pipelines,
            rounds * 4,
            |b| assert_eq!(b["flows"].as_array().unwrap().len(), 50),
        )
        .await;
    // A cursor deep in the list (the pages an export or a long scroll reaches): a page must
    // cost the same at the millionth flow as at the first.
    let deep: Vec<String> = (1..=10)
        .map(|i| {
            let cursor = flowtrail_types::FlowCursor {
                started_at_ms: (END_S - i * 2 * 86_400) * 1000,
                id: uuid::Uuid::max(),
            };
            format!("/api/v1/flows?limit=200&cursor={}", cursor.encode())
        })
        .collect();
    bench
        .measure(
            "list: 200 flows at a cursor deep in the list",
            &deep,
            rounds,
            |b| assert_eq!(b["flows"].as_array().unwrap().len(), 200),
        )
        .await;
    let drastic: Vec<String> = (0..10)
        .map(|i| {
            let since = END_S - SPAN_S + i * 3 * 86_400;
            let since = OffsetDateTime::from_unix_timestamp(since).unwrap();
            let since = since
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            format!("/api/v1/flows?step_kind=filter&min_eliminated=0.99&since={since}&limit=50")
        })
        .collect();
    bench
        .measure(
            "cross-pipeline: a filter eliminated > 99 % (5 % of flows)",
            &drastic,
            rounds,
            |b| {
                for flow in b["flows"].as_array().unwrap() {
                    assert!(flow["largest_elimination"]["share"].as_f64().unwrap() >= 0.99);
                }
            },
        )
        .await;
    let combined: Vec<String> = (0..10)
        .map(|i| {
            format!(
                "/api/v1/flows?pipeline={}&status=failed&tag=env:prod&step_kind=filter&min_eliminated=0.5&limit=50",
                PIPELINES[i % 3]
            )
        })
        .collect();
    bench
        .measure(
            "combined: pipeline + failed + tag + elimination",
            &combined,
            rounds,
            |_| {},
        )
        .await;
    let phone = vec!["/api/v1/flows?q=phone%20case&limit=50".to_string()];
    bench
        .measure(
            "text: \"phone case\" in reason texts (2 % of flows)",
            &phone,
            rounds * 10,
            |b| assert_eq!(b["flows"].as_array().unwrap().len(), 50),
        )
        .await;
    let ids: Vec<String> = (0..20)
        .map(|_| format!("/api/v1/flows?q={}&limit=50", candidate(&mut rng)))
        .collect();
    bench
        .measure(
            "text: a candidate id (~100 flows each)",
            &ids,
            rounds,
            |_| {},
        )
        .await;
    let common = vec!["/api/v1/flows?q=price_out_of_range&limit=50".to_string(); 3];
    bench
        .measure(
            "text: a reason code in every flow (worst case)",
            &common,
            1,
            |b| assert_eq!(b["flows"].as_array().unwrap().len(), 50),
        )
        .await;
    let journeys: Vec<String> = (0..50)
        .map(|_| {
            let n = rng.random_range(0..total);
            let record = generate(n, total);
            format!(
                "/api/v1/flows/{}/candidates/{}",
                record.id, record.steps[3].observations[5].candidate_id
            )
        })
        .collect();
    bench
        .measure("journey of a candidate", &journeys, rounds, |b| {
            assert_eq!(b["eliminated_at"]["step"], "relevance_judge")
        })
        .await;
    let diffs: Vec<String> = (0..50)
        .map(|_| {
            let a = generate(rng.random_range(0..total), total);
            let b = generate(rng.random_range(0..total), total);
            format!("/api/v1/flows/{}/diff/{}", a.id, b.id)
        })
        .collect();
    bench
        .measure("diff of two flows", &diffs, rounds, |_| {})
        .await;
    let end = OffsetDateTime::from_unix_timestamp(END_S + 60).unwrap();
    let fmt = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let stats: Vec<String> = PIPELINES
        .iter()
        .map(|p| {
            format!(
                "/api/v1/stats/reasons?pipeline={p}&since={}&until={}",
                fmt(end - time::Duration::days(7)),
                fmt(end)
            )
        })
        .collect();
    bench
        .measure(
            "stats: a pipeline's reasons per day + funnel, 7 days",
            &stats,
            rounds * 2,
            |b| assert!(!b["totals"].as_array().unwrap().is_empty()),
        )
        .await;
    let all = vec![format!(
        "/api/v1/stats/reasons?since={}&until={}&bucket=hour",
        fmt(end - time::Duration::days(30)),
        fmt(end)
    )];
    bench
        .measure(
            "stats: every pipeline per hour, 30 days",
            &all,
            rounds * 2,
            |b| assert_eq!(b["funnels"].as_array().unwrap().len(), 3),
        )
        .await;
    // The pipeline pages (issue #19): their data, as the server computes it before rendering
    // (the pages are HTML of these figures), and one drift rule's measurement over a day
    // against the 7 days before (what an evaluation costs per rule, deliveries aside).
    {
        use flowtrail_domain::analysis::insights::{InsightQuery, Side, overview, pipeline};
        let services = &services;
        timed(
            "pipelines page: every pipeline at a glance",
            rounds * 2,
            |_| async move {
                let page = overview(services, team, end).await.unwrap();
                assert_eq!(page.pipelines.len(), 3);
            },
        )
        .await;
        let side = |from: i64, to: i64| Side {
            since: end - time::Duration::days(from),
            until: end - time::Duration::days(to),
            tag: None,
        };
        for (label, range, versus, bucket) in [
            (
                "pipeline page: 7 days by day, beside the 7 before",
                side(7, 0),
                Some(side(14, 7)),
                flowtrail_types::StatsBucket::Day,
            ),
            (
                "pipeline page: 48 hours by hour",
                Side {
                    since: end - time::Duration::hours(48),
                    until: end,
                    tag: None,
                },
                None,
                flowtrail_types::StatsBucket::Hour,
            ),
        ] {
            let queries: Vec<InsightQuery> = PIPELINES
                .iter()
                .map(|p| InsightQuery {
                    pipeline: (*p).to_string(),
                    range: range.clone(),
                    versus: versus.clone(),
                    bucket,
                })
                .collect();
            let queries = &queries;
            timed(label, rounds * 2 * queries.len(), |i| async move {
                let page = pipeline(services, team, &queries[i % queries.len()])
                    .await
                    .unwrap()
                    .unwrap();
                assert!(page.range.flows > 0);
            })
            .await;
        }
        let rule = flowtrail_types::alerts::AlertRuleInput {
            name: "price share shift".into(),
            pipeline: PIPELINES[0].into(),
            step: Some("price_and_rating_filter".into()),
            metric: flowtrail_types::alerts::AlertMetric::ReasonShare,
            reason: Some("price_out_of_range".into()),
            comparison: flowtrail_types::alerts::AlertComparison::Shift,
            threshold: 0.2,
            window_minutes: 24 * 60,
            interval_minutes: 1,
            baseline_days: Some(7),
            min_flows: 20,
            webhook_url: None,
            secret: None,
        };
        let rule = &rule;
        let end_ms = end.unix_timestamp() * 1000;
        for (label, metric) in [
            (
                "one drift rule: reason share, a day vs 7 days",
                flowtrail_types::alerts::AlertMetric::ReasonShare,
            ),
            (
                "one drift rule: median elimination share, the same",
                flowtrail_types::alerts::AlertMetric::EliminationShare,
            ),
        ] {
            let rule = flowtrail_types::alerts::AlertRuleInput {
                metric,
                ..rule.clone()
            };
            let rule = &rule;
            timed(label, rounds * 2, |_| async move {
                let day = flowtrail_domain::alerts::measure(
                    services,
                    team,
                    rule,
                    end_ms - 86_400_000,
                    end_ms,
                );
                let week = flowtrail_domain::alerts::measure(
                    services,
                    team,
                    rule,
                    end_ms - 8 * 86_400_000,
                    end_ms - 86_400_000,
                );
                let (day, week) = futures::try_join!(day, week).unwrap();
                // The elimination share counts the newest flows up to a cap: both may hold it.
                assert!(day.flows > 0 && week.flows >= day.flows);
            })
            .await;
        }
    }
    if std::env::var_os("FLOWTRAIL_BENCH_SKIP_EXPORT").is_none() {
        let since = |days: i64| fmt(end - time::Duration::days(days));
        for (label, filters, format, level) in [
            ("every flow, JSON Lines", String::new(), "jsonl", "flows"),
            ("every flow, CSV", String::new(), "csv", "flows"),
            ("every flow, Parquet", String::new(), "parquet", "flows"),
            (
                "the last 3 days' flows (1/10), Parquet",
                format!("since={}", since(3)),
                "parquet",
                "flows",
            ),
            (
                "the last 3 days' steps, Parquet",
                format!("since={}", since(3)),
                "parquet",
                "steps",
            ),
            (
                "the last day's observations of a pipeline, CSV",
                format!("pipeline={}&since={}", PIPELINES[0], since(1)),
                "csv",
                "observations",
            ),
        ] {
            export(&dir, label, &filters, format, level);
        }
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Runs `flowtrail export` on the data directory as a user would (`> file`; here its bytes
/// are counted and dropped) and prints its rate and peak RSS (VmHWM, sampled every 10 ms
/// while it runs; the high-water mark only grows, so the last sample is the peak within 10 ms
/// of the end).
fn export(dir: &std::path::Path, label: &str, filters: &str, format: &str, level: &str) {
    use std::io::Read;
    let start = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flowtrail"))
        .args([
            "export",
            filters,
            "--format",
            format,
            "--level",
            level,
            "--data-dir",
        ])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut bytes, mut buffer) = (0u64, vec![0u8; 1 << 16]);
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) | Err(_) => return bytes,
                Ok(n) => bytes += n as u64,
            }
        }
    });
    let mut peak_kb = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_path)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kb = peak_kb.max(
                line.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse().ok())
                    .unwrap_or(0),
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let bytes = reader.join().unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{label}: {stderr}");
    // "exported N flows, M rows"
    let totals = stderr.lines().last().unwrap_or_default().to_string();
    let flows: f64 = totals
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    println!(
        "export {label:<48} {totals:<40} {:>7.1} s {:>8.0} flows/s {:>8.1} MB out  peak RSS {:>6.1} MB",
        seconds,
        flows / seconds,
        bytes as f64 / 1e6,
        peak_kb as f64 / 1024.0
    );
}
