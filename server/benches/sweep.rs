//! Retention benchmark (`cargo bench -p flowtrail-server --bench sweep`), embedded profile:
//! SWEEP_FLOWS expired flows (default 100,000; 3 steps, 5 observations each) are written,
//! then the release `flowtrail serve` takes paced ingest (BENCH_RATE flows/s, default 100)
//! while idle and while `flowtrail admin sweep` deletes them.
//!
//! Prints: flows deleted per second by the sweep; the 202's p50/p99 idle and during the sweep.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtrail_domain::flows::{FlowWrite, StepPayloads, WriteMode};
use flowtrail_domain::{Services, StorageConfig};
use flowtrail_types::FlowRecord;
use flowtrail_types::admin::RetentionPolicy;
use serde_json::json;
use uuid::Uuid;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flow(days_ago: i64) -> serde_json::Value {
    let started = time::OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    let started = started
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let step = |seq: u32, kind: &str| {
        json!({
            "seq": seq, "name": format!("{kind}_{seq}"), "kind": kind,
            "reasoning": "kept what fits the seller's price band",
            "candidates_in": 50, "candidates_out": 5,
            "reasons": {"price_out_of_range": 30, "off_topic": 15},
            "observations": (0..5).map(|i| json!({
                "candidate_id": format!("B0{seq}{i:06}"), "verdict": "rejected",
                "reasons": [{"code": "price_out_of_range", "text": "too cheap"}]
            })).collect::<Vec<_>>()
        })
    };
    json!({
        "id": Uuid::now_v7(), "version": 1, "pipeline": "bench", "status": "succeeded",
        "started_at": started,
        "steps": [step(1, "retrieve"), step(2, "filter"), step(3, "rank")]
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Sends BENCH_RATE flows/s until `until` says stop; the 202 latencies in ms.
async fn paced(
    url: String,
    key: String,
    until: Arc<std::sync::atomic::AtomicBool>,
    rate: u64,
) -> Vec<f64> {
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut inflight = tokio::task::JoinSet::new();
    while !until.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        let body = serde_json::to_vec(&flow(0)).unwrap();
        inflight.spawn(async move {
            let started = Instant::now();
            let response = http
                .post(format!("{url}/api/v1/flows"))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match response {
                Ok(r) if r.status() == 202 => Some(started.elapsed().as_secs_f64() * 1000.0),
                _ => None,
            }
        });
    }
    while let Some(done) = inflight.join_next().await {
        if let Ok(Some(ms)) = done {
            latencies.push(ms);
        }
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

#[tokio::main]
async fn main() {
    let total = env_or("SWEEP_FLOWS", 100_000) as usize;
    let rate = env_or("BENCH_RATE", 100);
    let dir = tempfile::tempdir().unwrap();
    let services = Services::open(&StorageConfig::embedded(dir.path()))
        .await
        .unwrap();
    let team = services.bootstrap(None).await.unwrap();
    let written = Instant::now();
    for chunk in 0..total.div_ceil(500) {
        let n = 500.min(total - chunk * 500);
        let records: Vec<FlowRecord> = (0..n)
            .map(|_| serde_json::from_value(flow(30)).unwrap())
            .collect();
        let payloads: Vec<StepPayloads> = records
            .iter()
            .map(|record| {
                let mut payloads = StepPayloads::new();
                for step in &record.steps {
                    let encoded = flowtrail_domain::payloads::PayloadStore::encode(
                        team.id,
                        record.id,
                        1,
                        step.seq,
                        &step.observations,
                    )
                    .unwrap();
                    let mut reference = encoded.reference;
                    reference.inline = Some(encoded.data);
                    payloads.insert(step.seq, reference);
                }
                payloads
            })
            .collect();
        let writes: Vec<FlowWrite<'_>> = records
            .iter()
            .zip(&payloads)
            .map(|(flow, payloads)| FlowWrite {
                team_id: team.id,
                flow,
                payloads,
                mode: WriteMode::Replace,
                imported: false,
            })
            .collect();
        services.metadata.upsert_flows(&writes).await.unwrap();
    }
    println!(
        "wrote {total} expired flows (3 steps, 15 observations each) in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    services
        .set_retention_policy(
            team.id,
            &RetentionPolicy {
                default_days: Some(7),
                ..RetentionPolicy::default()
            },
        )
        .await
        .unwrap();
    let key = services
        .create_api_key(
            "default",
            "bench",
            flowtrail_domain::accounts::Scope::Ingest,
        )
        .await
        .unwrap();
    drop(services);

    let bin = env!("CARGO_BIN_EXE_flowtrail");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(bin)
        .args([
            "serve",
            "--otlp-grpc-addr",
            "0",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http.get(format!("{url}/readyz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Idle: 10 s of paced ingest.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let idle = tokio::spawn(paced(url.clone(), key.clone(), stop.clone(), rate));
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let idle = idle.await.unwrap();

    // During the sweep.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let during = tokio::spawn(paced(url.clone(), key.clone(), stop.clone(), rate));
    let started = Instant::now();
    let sweep = Command::new(bin)
        .args(["admin", "sweep", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = during.await.unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(sweep.status.success(), "{sweep:?}");
    let report: serde_json::Value = serde_json::from_slice(&sweep.stdout).unwrap();
    let deleted = report["flows"].as_u64().unwrap();
    println!(
        "sweep: {deleted} flows deleted in {seconds:.1} s = {:.0} flows/s (batches of at most 500, each holding the write lock at most ~50 ms)",
        deleted as f64 / seconds
    );
    for (name, latencies) in [("idle", &idle), ("during the sweep", &during)] {
        println!(
            "ingest at {rate} flows/s, {name}: {} acks, 202 p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
    }
}
