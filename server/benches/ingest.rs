//! Ingest benchmark (`cargo bench -p flowtrail-server --bench ingest`): the release binary on
//! loopback, fed the standard flow mix — 5 steps, ~300 observations, ~80 KB of JSON, half of the
//! requests gzip-compressed — by a load generator in this process (it shares the machine's
//! cores with the server, as a real co-located client would).
//!
//! Prints: accepted flows/s and MB/s at saturation; p50/p99 of the 202 at half that rate;
//! the lag from 202 to queryable (the client's clock at the 202 against the flow's
//! `ingested_at`). Every ack is durable (SQLite WAL, synchronous=FULL, group commit; or Redis
//! with `appendfsync always`).
//!
//! Then the same flows as OpenTelemetry traces (`POST /v1/traces`, protobuf: a root span and
//! one span per step, every observation a `flowtrail.candidate` event): end-to-end flows/s,
//! and the 200's latency and 200 → queryable at C's rate — native and OTLP side by side.
//!
//! Knobs (environment): BENCH_SECONDS (10), BENCH_CONNECTIONS (32).
//!
//! Profiles: the embedded default; or, run through `scripts/with-postgres.sh
//! scripts/with-s3.sh scripts/with-redis.sh` (see `bench/scale_out.sh`), the scale-out profile:
//! PostgreSQL metadata, the Redis Streams queue, S3 payloads — each phase on a fresh database,
//! Redis prefix and bucket prefix.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use uuid::Uuid;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One flow of the standard mix, with a placeholder id to be overwritten per request.
fn template() -> Vec<u8> {
    let step = |seq: u32, name: &str, kind: &str, n: usize, kept_every: usize| {
        let observations: Vec<Value> = (0..n)
            .map(|i| {
                let kept = i % kept_every == 0;
                json!({
                    "candidate_id": format!("B0{:08}", seq as usize * 1000 + i),
                    "verdict": if kept { "kept" } else { "rejected" },
                    "score": (i % 100) as f64 / 100.0,
                    "reasons": if kept { json!([]) } else {
                        json!([{"code": "price_out_of_range", "text": format!("{i}.99 is below 0.5x of 45.00")}])
                    },
                    "attributes": {
                        "price": i as f64 + 0.99, "rating": 4.1, "category": "Laptop Stands",
                        "title": format!("Adjustable Aluminium Laptop Stand, model {i}, for 13-16 inch notebooks"),
                        "seller": "B0SELLER0042"
                    }
                })
            })
            .collect();
        json!({
            "seq": seq, "name": name, "kind": kind, "status": "succeeded",
            "started_at": "2026-11-21T10:00:01Z", "ended_at": "2026-11-21T10:00:01.020Z",
            "input": {"max_price": 80, "min_rating": 4.0}, "output": {"kept": n / kept_every},
            "reasoning": "Kept candidates within 0.5x-2x of the seller's price with rating >= 4.0",
            "observations": observations
        })
    };
    let flow = json!({
        "id": Uuid::nil(), "version": 1, "pipeline": "competitor_selection", "status": "succeeded",
        "started_at": "2026-11-21T10:00:00Z", "ended_at": "2026-11-21T10:00:02Z",
        "input": {"title": "Adjustable aluminium laptop stand"}, "output": {"selected": "B0STAND42"},
        "tags": {"env": "bench"},
        "steps": [
            step(0, "keyword_generation", "generate", 0, 1),
            step(1, "catalog_search", "retrieve", 120, 1),
            step(2, "price_and_rating_filter", "filter", 120, 4),
            step(3, "llm_relevance", "judge", 30, 2),
            step(4, "rank_and_select", "rank", 30, 1),
        ]
    });
    serde_json::to_vec(&flow).unwrap()
}

struct Body {
    bytes: Vec<u8>,
    gzip: bool,
}

/// Request bodies: a fresh flow id in the template for each; every other body gzip, taken from
/// a pool compressed before the clock starts (so the load generator spends little CPU).
struct Bodies {
    template: Vec<u8>,
    id_at: usize,
    gzip: Vec<Vec<u8>>,
    next_gzip: AtomicU64,
}

impl Bodies {
    fn new(template: Vec<u8>, gzip_pool: usize) -> Self {
        let id_at = template
            .windows(36)
            .position(|w| w == Uuid::nil().hyphenated().to_string().as_bytes())
            .unwrap();
        let mut bodies = Bodies {
            template,
            id_at,
            gzip: Vec::new(),
            next_gzip: AtomicU64::new(0),
        };
        bodies.gzip = (0..gzip_pool).map(|_| gzip(&bodies.plain())).collect();
        bodies
    }

    fn plain(&self) -> Vec<u8> {
        let mut bytes = self.template.clone();
        let id = Uuid::now_v7().hyphenated().to_string();
        bytes[self.id_at..self.id_at + 36].copy_from_slice(id.as_bytes());
        bytes
    }

    fn get(&self, n: u64) -> Body {
        if n.is_multiple_of(2) {
            let i = self.next_gzip.fetch_add(1, Ordering::Relaxed) as usize;
            let bytes = match self.gzip.get(i) {
                Some(bytes) => bytes.clone(),
                None => gzip(&self.plain()),
            };
            Body { bytes, gzip: true }
        } else {
            Body {
                bytes: self.plain(),
                gzip: false,
            }
        }
    }
}

/// The template flow as one OTLP export: a root span (the flow) and a span per step, each
/// observation a `flowtrail.candidate` event; `TRACE_PLACEHOLDER` as its trace id.
fn otlp_template(template: &[u8]) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Event};
    use prost::Message;
    let flow: Value = serde_json::from_slice(template).unwrap();
    let kv = |key: &str, value: any_value::Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let text = |key: &str, value: &Value| {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        kv(key, any_value::Value::StringValue(text))
    };
    let t0 = 1_764_000_000_000_000_000u64;
    let span = |n: u8, parent: Option<u8>, name: &str, attributes, events| Span {
        trace_id: TRACE_PLACEHOLDER.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0xb0, n],
        parent_span_id: parent
            .map(|p| vec![0, 0, 0, 0, 0, 0, 0xb0, p])
            .unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: t0 + u64::from(n) * 1_000_000,
        end_time_unix_nano: t0
            + (u64::from(n) + 1) * 1_000_000
            + if parent.is_none() { 100_000_000 } else { 0 },
        attributes,
        events,
        ..Default::default()
    };
    let json = |key: &str| text(key, &Value::String("application/json".into()));
    let mut spans = vec![span(
        1,
        None,
        flow["pipeline"].as_str().unwrap(),
        vec![
            text("input.value", &Value::String(flow["input"].to_string())),
            json("input.mime_type"),
            text("flowtrail.tag.env", &flow["tags"]["env"]),
        ],
        vec![],
    )];
    for (i, step) in flow["steps"].as_array().unwrap().iter().enumerate() {
        let events = step["observations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let mut attributes = vec![
                    text("candidate_id", &o["candidate_id"]),
                    text("verdict", &o["verdict"]),
                    kv(
                        "score",
                        any_value::Value::DoubleValue(o["score"].as_f64().unwrap()),
                    ),
                ];
                if let Some(reason) = o["reasons"].as_array().and_then(|r| r.first()) {
                    attributes.push(text("reason.code", &reason["code"]));
                    attributes.push(text("reason.text", &reason["text"]));
                }
                for (key, value) in o["attributes"].as_object().unwrap() {
                    attributes.push(match value {
                        Value::Number(n) => kv(
                            &format!("attr.{key}"),
                            any_value::Value::DoubleValue(n.as_f64().unwrap()),
                        ),
                        other => text(&format!("attr.{key}"), other),
                    });
                }
                Event {
                    name: "flowtrail.candidate".into(),
                    attributes,
                    ..Default::default()
                }
            })
            .collect();
        spans.push(span(
            i as u8 + 2,
            Some(1),
            step["name"].as_str().unwrap(),
            vec![
                text("flowtrail.step.kind", &step["kind"]),
                text("input.value", &Value::String(step["input"].to_string())),
                json("input.mime_type"),
                text("output.value", &Value::String(step["output"].to_string())),
                json("output.mime_type"),
                text("flowtrail.reasoning", &step["reasoning"]),
            ],
            events,
        ));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The trace id of [`otlp_template`], replaced in each request.
const TRACE_PLACEHOLDER: [u8; 16] = *b"FLOWTRAIL-TRACE!";

/// OTLP requests: the encoded template with a fresh trace id in every span.
struct Traces {
    template: Vec<u8>,
    at: Vec<usize>,
}

impl Traces {
    fn new(template: Vec<u8>) -> Self {
        let at = template
            .windows(16)
            .enumerate()
            .filter(|(_, w)| *w == TRACE_PLACEHOLDER)
            .map(|(i, _)| i)
            .collect();
        Traces { template, at }
    }

    /// A request body and its flow id.
    fn get(&self) -> (Vec<u8>, String) {
        let id = Uuid::now_v7();
        let mut bytes = self.template.clone();
        for at in &self.at {
            bytes[*at..*at + 16].copy_from_slice(id.as_bytes());
        }
        (bytes, id.hyphenated().to_string())
    }
}

/// Exports a trace; whether it was accepted (200).
async fn post_trace(http: &reqwest::Client, url: &str, key: &str, body: Vec<u8>) -> bool {
    let request = http
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/x-protobuf")
        .body(body);
    matches!(request.send().await, Ok(response) if response.status() == 200)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Sends a flow; the id of the flow if it was accepted.
async fn post_id(http: &reqwest::Client, url: &str, key: &str, body: Body) -> Option<String> {
    let mut request = http
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.bytes);
    if body.gzip {
        request = request.header("content-encoding", "gzip");
    }
    let response = request.send().await.ok()?;
    if response.status() != 202 {
        return None;
    }
    let accepted: Value = response.json().await.ok()?;
    accepted["flow_id"].as_str().map(str::to_string)
}

/// Now, in Unix milliseconds (the clock `ingested_at` is stamped with).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    /// The PostgreSQL database of the scale-out profile.
    database_url: Option<String>,
    url: String,
    key: String,
}

/// The scale-out profile's settings when its engines are given (fresh names per server).
async fn scale_out_env() -> Option<(Vec<(&'static str, String)>, String)> {
    let admin_url = std::env::var("FLOWTRAIL_TEST_DATABASE_URL").ok()?;
    let redis_url = std::env::var("FLOWTRAIL_TEST_REDIS_URL").ok()?;
    let s3_url = std::env::var("FLOWTRAIL_TEST_OBJECT_STORE_URL").ok()?;
    let fresh = Uuid::now_v7().simple().to_string();
    let database_url = flowtrail_domain::engines::postgres::create_database(
        &admin_url,
        &format!("flowtrail_bench_{fresh}"),
    )
    .await
    .unwrap();
    let env = vec![
        ("FLOWTRAIL_DATABASE_URL", database_url.clone()),
        ("FLOWTRAIL_REDIS_URL", redis_url),
        ("FLOWTRAIL_REDIS_PREFIX", format!("bench-{fresh}")),
        ("FLOWTRAIL_OBJECT_STORE_URL", format!("{s3_url}/{fresh}")),
    ];
    Some((env, database_url))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(workers: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let bin = env!("CARGO_BIN_EXE_flowtrail");
    let (env, database_url) = match scale_out_env().await {
        Some((env, url)) => (env, Some(url)),
        None => (Vec::new(), None),
    };
    let key = Command::new(bin)
        .args(["admin", "create-api-key", "--name", "bench", "--data-dir"])
        .arg(&data)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .output()
        .unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args([
            "serve",
            "--otlp-grpc-addr",
            "0",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .args(["--rate-limit-per-second", "0", "--max-queue-depth", "0"])
        .args(["--workers", &workers.to_string()])
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{url}/readyz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        _dir: dir,
        data,
        database_url,
        url,
        key,
    }
}

async fn wait_drained(http: &reqwest::Client, url: &str) {
    for _ in 0..1200 {
        let text = http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == "flowtrail_queue_depth 0") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When each flow became queryable (`flows.ingested_at`, Unix ms), from either profile.
async fn ingested_at(server: &Server) -> std::collections::HashMap<String, i64> {
    let query = "SELECT id, ingested_at FROM flows";
    let rows: Vec<(String, i64)> = match &server.database_url {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query_as(query).fetch_all(&pool).await.unwrap()
        }
        None => {
            let db =
                flowtrail_domain::engines::sqlite::open_file(&server.data.join("flowtrail.db"))
                    .await
                    .unwrap();
            sqlx::query_as(query).fetch_all(&db.read).await.unwrap()
        }
    };
    rows.into_iter().collect()
}

/// One request of a mix, numbered `n`: the id of the flow when it was accepted.
type Sender = Arc<dyn Fn(u64) -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// Sends the native mix to `server`: flow JSON, every other body gzip.
fn native_sender(http: &reqwest::Client, server: &Server, bodies: &Arc<Bodies>) -> Sender {
    let (http, url, key, bodies) = (
        http.clone(),
        format!("{}/api/v1/flows", server.url),
        server.key.clone(),
        bodies.clone(),
    );
    Arc::new(move |n| {
        let (http, url, key, body) = (http.clone(), url.clone(), key.clone(), bodies.get(n));
        Box::pin(async move { post_id(&http, &url, &key, body).await })
    })
}

/// Sends the mix as OTLP traces to `server`.
fn otlp_sender(http: &reqwest::Client, server: &Server, traces: &Arc<Traces>) -> Sender {
    let (http, url, key, traces) = (
        http.clone(),
        format!("{}/v1/traces", server.url),
        server.key.clone(),
        traces.clone(),
    );
    Arc::new(move |_| {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        let (body, id) = traces.get();
        Box::pin(async move { post_trace(&http, &url, &key, body).await.then_some(id) })
    })
}

/// Every connection sends back to back for `seconds`; returns (flows accepted, seconds).
async fn saturate(send: &Sender, connections: usize, seconds: u64) -> (u64, f64) {
    let (accepted, running) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(true)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (send, accepted, running) = (send.clone(), accepted.clone(), running.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = c as u64;
            while running.load(Ordering::Relaxed) {
                if send(n).await.is_some() {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                n += connections as u64;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    (
        accepted.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

/// Sends `total` requests at `target` per second (open loop); for each accepted one, its
/// latency (ms), flow id and the client's clock at the answer (Unix ms).
async fn paced(send: &Sender, target: f64, total: u64) -> Vec<(f64, String, i64)> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / target));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..total {
        ticker.tick().await;
        let (send, latencies) = (send.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            if let Some(id) = send(n).await {
                let acknowledged = unix_ms();
                latencies.lock().unwrap().push((
                    sent.elapsed().as_secs_f64() * 1000.0,
                    id,
                    acknowledged,
                ));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    latencies.lock().unwrap().clone()
}

/// Prints the answer latencies of a paced run, waits until it is stored, and prints the lag
/// from answer to queryable.
async fn report_paced(
    http: &reqwest::Client,
    server: &Server,
    label: &str,
    acknowledged: &[(f64, String, i64)],
    total: u64,
) {
    let mut latencies: Vec<f64> = acknowledged.iter().map(|(ms, ..)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "{label}: answered in p50 {:.1} ms, p99 {:.1} ms ({} of {total} accepted)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    wait_drained(http, &server.url).await;
    let stored = ingested_at(server).await;
    let mut lag: Vec<f64> = acknowledged
        .iter()
        .filter_map(|(_, id, at)| stored.get(id).map(|done| (*done - *at).max(0) as f64))
        .collect();
    lag.sort_by(f64::total_cmp);
    println!(
        "   answer -> queryable: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} of {} stored)",
        percentile(&lag, 0.5),
        percentile(&lag, 0.99),
        lag.last().copied().unwrap_or(f64::NAN),
        lag.len(),
        acknowledged.len()
    );
}

fn scale_out_env_present() -> bool {
    [
        "FLOWTRAIL_TEST_DATABASE_URL",
        "FLOWTRAIL_TEST_REDIS_URL",
        "FLOWTRAIL_TEST_OBJECT_STORE_URL",
    ]
    .iter()
    .all(|name| std::env::var(name).is_ok())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = env_or("BENCH_SECONDS", 10);
    let connections = env_or("BENCH_CONNECTIONS", 32) as usize;
    let template = template();
    let kb = template.len() as f64 / 1024.0;
    let bodies = Arc::new(Bodies::new(template, 6_000));
    let profile = if scale_out_env_present() {
        "scale-out (PostgreSQL + Redis Streams queue + S3)"
    } else {
        "embedded (SQLite + local payloads)"
    };
    println!("profile: {profile}");
    println!(
        "flow mix: {kb:.0} KB JSON, 5 steps, 300 observations, half gzip (level 1); {connections} connections, {seconds} s per phase"
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let mb = |flows: u64, secs: f64| flows as f64 * kb * 1024.0 / secs / 1e6;

    // A: acceptance capacity — the server only acknowledges (workers elsewhere, as in the
    // scale-out layout, or later).
    let server = start(0).await;
    let send = native_sender(&http, &server, &bodies);
    let (flows, secs) = saturate(&send, connections, seconds).await;
    println!(
        "A. acceptance, no workers in the process: {:.0} flows/s, {:.1} MB/s of flow JSON (every 202 durable)",
        flows as f64 / secs,
        mb(flows, secs)
    );
    drop(server);

    // B: end to end — acknowledging and storing in one process, same 2 cores.
    let server = start(2).await;
    let send = native_sender(&http, &server, &bodies);
    let (flows, secs) = saturate(&send, connections, seconds).await;
    println!(
        "B. acceptance with 2 workers storing in the same process: {:.0} flows/s, {:.1} MB/s",
        flows as f64 / secs,
        mb(flows, secs)
    );
    let drain_started = Instant::now();
    wait_drained(&http, &server.url).await;
    let drain = drain_started.elapsed().as_secs_f64();
    // What the process sustains: every acknowledged flow stored, backlog included.
    let rate = flows as f64 / (secs + drain);
    println!(
        "   backlog drained {drain:.1} s after the load stopped: end to end {rate:.0} flows/s, {:.1} MB/s",
        mb(flows, secs + drain)
    );
    drop(server);

    // C: half of B's end-to-end rate, paced (open loop): latency of the 202 and 202 ->
    // queryable.
    let target = (rate / 2.0).max(1.0);
    let total = (target * seconds as f64) as u64;
    let server = start(2).await;
    let send = native_sender(&http, &server, &bodies);
    let acknowledged = paced(&send, target, total).await;
    let label = format!("C. at {target:.0} flows/s (half of B end to end), paced, 202");
    report_paced(&http, &server, &label, &acknowledged, total).await;
    drop(server);

    // D and E: the same flows as OTLP traces.
    let traces = Arc::new(Traces::new(otlp_template(&bodies.template)));
    println!(
        "OTLP: the same flows as protobuf exports of {:.0} KB (6 spans, one event per observation), uncompressed",
        traces.template.len() as f64 / 1024.0
    );
    let server = start(2).await;
    let send = otlp_sender(&http, &server, &traces);
    let (flows, secs) = saturate(&send, connections, seconds).await;
    let drain_started = Instant::now();
    wait_drained(&http, &server.url).await;
    let drain = drain_started.elapsed().as_secs_f64();
    println!(
        "D. OTLP with 2 workers: acceptance {:.0} flows/s; backlog drained {drain:.1} s later: end to end {:.0} flows/s (native, B: {rate:.0})",
        flows as f64 / secs,
        flows as f64 / (secs + drain)
    );
    drop(server);

    let server = start(2).await;
    let send = otlp_sender(&http, &server, &traces);
    let acknowledged = paced(&send, target, total).await;
    let label = format!("E. OTLP at {target:.0} flows/s, paced, 200");
    report_paced(&http, &server, &label, &acknowledged, total).await;
}
