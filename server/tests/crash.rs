//! Crash test: the real `flowtrail` binary takes flows from several concurrent clients, is
//! killed with SIGKILL mid-stream (twice; `FLOWTRAIL_CRASH_KILLS` times), restarted on the same data, and a ledger of every
//! 202 is checked against what is stored: each acknowledged flow exactly once, with its steps
//! and observations intact. And the other way to stop it: SIGTERM, with event streams open,
//! ends them and exits promptly, keeping what it acknowledged. And a flow that panics the
//! processor, under load, is dead-lettered while every other flow is stored.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowtrail_test_support::engines;
use serde_json::{Value, json};
use uuid::Uuid;

const CLIENTS: usize = 4;

/// A count from the environment (`scripts/verify.sh` asks for more), else `default`.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The database the server uses: the embedded SQLite under `data`, or — in the scale-out
/// pass — a fresh PostgreSQL database.
async fn database_url() -> Option<String> {
    engines::scale_database("flowtrail_crash").await
}

fn start(data: &Path, port: u16, database: &Option<String>) -> Child {
    start_command(data, port, database).spawn().unwrap()
}

/// The `flowtrail serve` command [`start`] runs, to add settings to.
fn start_command(data: &Path, port: u16, database: &Option<String>) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("server.log"))
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowtrail"));
    if let Some(url) = database {
        command.env("FLOWTRAIL_DATABASE_URL", url);
    }
    // Each test's own S3 prefix and Redis prefix, named after its data directory: the same
    // across restarts (the restarted server finds its queue and objects), never shared by
    // two tests (a server must not take another test's jobs).
    let own = format!(
        "crash-{}",
        data.file_name().unwrap().to_string_lossy().replace('.', "")
    );
    // With `scripts/with-s3.sh` (AWS_* in the environment): every payload in S3.
    if let Some(url) = engines::scale_engine("FLOWTRAIL_TEST_OBJECT_STORE_URL") {
        command.env("FLOWTRAIL_OBJECT_STORE_URL", format!("{url}/{own}"));
        command.env("FLOWTRAIL_PAYLOAD_INLINE_MAX_BYTES", "0");
    }
    // With `scripts/with-redis.sh`: the Redis Streams queue.
    if let Some(url) = engines::scale_engine("FLOWTRAIL_TEST_REDIS_URL") {
        command.env("FLOWTRAIL_REDIS_URL", url);
        command.env("FLOWTRAIL_REDIS_PREFIX", &own);
    }
    command
        .args([
            "serve",
            // Servers run side by side in the test suites: no OTLP/gRPC on the fixed 4317.
            "--otlp-grpc-addr",
            "0",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        // A short lease: the jobs a killed worker had claimed are taken again quickly.
        .args(["--job-lease-seconds", "2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    command
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

/// A server that is killed when the test ends, also when an assertion fails first (a
/// panicking test must not leave a server running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An API key (scope `all`) made by `flowtrail admin create-api-key` on the server's data.
fn create_key(data: &Path, database: &Option<String>) -> String {
    create_key_of(data, database, "all")
}

/// An API key of `scope`, as [`create_key`].
fn create_key_of(data: &Path, database: &Option<String>, scope: &str) -> String {
    let mut create_key = Command::new(env!("CARGO_BIN_EXE_flowtrail"));
    if let Some(url) = database {
        create_key.env("FLOWTRAIL_DATABASE_URL", url);
    }
    let key = create_key
        .args([
            "admin",
            "create-api-key",
            "--name",
            scope,
            "--scope",
            scope,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert!(key.status.success());
    String::from_utf8(key.stdout).unwrap().trim().to_string()
}

/// Whether flow `id` becomes queryable within `tries` × 100 ms.
async fn becomes_queryable(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    id: Uuid,
    tries: u32,
) -> bool {
    for _ in 0..tries {
        let response = http
            .get(format!("{base}/api/v1/flows/{id}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn flow(id: Uuid, client: usize, n: usize) -> Value {
    let observations: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "candidate_id": format!("C{client}-{n}-{i}"),
                "verdict": if i % 5 == 0 { "kept" } else { "rejected" },
                "score": i as f64 / 40.0,
                "reasons": if i % 5 == 0 { json!([]) } else { json!([{"code": "price_out_of_range", "text": format!("candidate {i}")}]) },
            })
        })
        .collect();
    json!({
        "id": id, "version": 1, "pipeline": "crash_test", "status": "succeeded",
        "started_at": "2026-11-21T10:00:00Z",
        "tags": {"client": client.to_string(), "n": n.to_string()},
        "steps": [
            {"seq": 0, "name": "retrieve", "kind": "retrieve", "candidates_in": 40, "candidates_out": 40},
            {"seq": 1, "name": "filter", "kind": "filter", "observations": observations},
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_flow_survives_sigkill_exactly_once() {
    // CI: 2 kills in 300 flows; scripts/verify.sh: 20 kills in 2,000.
    let kills = setting("FLOWTRAIL_CRASH_KILLS", 2);
    let flows_per_client = setting("FLOWTRAIL_CRASH_FLOWS_PER_CLIENT", 75);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let database = database_url().await;
    let key = create_key(&data, &database);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let server = Arc::new(Mutex::new(start(&data, port, &database)));
    wait_ready(&http, &base).await;

    // The ledger: flow id → how many 202s it got (retries after a lost answer may add more).
    let ledger: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, base, key, ledger) = (http.clone(), base.clone(), key.clone(), ledger.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..flows_per_client {
                let id = Uuid::now_v7();
                let body = serde_json::to_vec(&flow(id, client, n)).unwrap();
                // Like an SDK: retry the same flow (same idempotency key) until acknowledged.
                loop {
                    let sent = http
                        .post(format!("{base}/api/v1/flows"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 202 => {
                            *ledger.lock().unwrap().entry(id).or_default() += 1;
                            break;
                        }
                        Ok(response) => {
                            let status = response.status();
                            assert!(
                                status == 503 || status == 409,
                                "unexpected {status}: {}",
                                response.text().await.unwrap_or_default()
                            );
                        }
                        Err(_) => {} // the server is down: try again
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }));
    }

    // Kill the server `kills` times mid-stream (spread over the first three quarters of the
    // flows), restarting it on the same data each time.
    let total = CLIENTS * flows_per_client;
    for kill_at in (1..=kills).map(|k| total * 3 * k / (4 * (kills + 1))) {
        while ledger.lock().unwrap().len() < kill_at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        {
            let mut child = server.lock().unwrap();
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        *server.lock().unwrap() = start(&data, port, &database);
        wait_ready(&http, &base).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged: BTreeSet<Uuid> = ledger.lock().unwrap().keys().copied().collect();
    assert_eq!(
        acknowledged.len(),
        total,
        "every flow was eventually acknowledged"
    );

    // Wait for the backlog to drain, then compare what is stored with the ledger.
    let get = |path: String| {
        let (http, key) = (http.clone(), key.clone());
        async move {
            let response = http.get(path).bearer_auth(&key).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let mut stored = Vec::new();
    let drained_by = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < drained_by {
        stored.clear();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{base}/api/v1/flows?pipeline=crash_test&limit=500");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = get(url).await;
            assert_eq!(status, 200, "{page}");
            for flow in page["flows"].as_array().unwrap() {
                stored.push(Uuid::parse_str(flow["id"].as_str().unwrap()).unwrap());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        if stored.len() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unique: BTreeSet<Uuid> = stored.iter().copied().collect();
    // The ledger's figures, for scripts/verify.sh (run with --nocapture).
    println!(
        "crash ledger: profile={} kills={kills} acknowledged={} stored={} lost={} duplicated={}",
        if database.is_some() {
            "scale"
        } else {
            "embedded"
        },
        acknowledged.len(),
        unique.len(),
        acknowledged.difference(&unique).count(),
        stored.len() - unique.len(),
    );
    assert_eq!(unique.len(), stored.len(), "no flow is stored twice");
    assert_eq!(
        unique, acknowledged,
        "exactly the acknowledged flows are stored"
    );

    // Spot-check contents, including the observation payloads and their checksums.
    for id in acknowledged.iter().step_by(25) {
        let (status, detail) = get(format!("{base}/api/v1/flows/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(detail["steps"][1]["candidates_in"], 40);
        assert_eq!(detail["steps"][1]["reasons"]["price_out_of_range"], 32);
        let (status, body) = get(format!("{base}/api/v1/flows/{id}/steps/1/observations")).await;
        assert_eq!(status, 200);
        assert_eq!(body["observations"].as_array().unwrap().len(), 40);
    }
    server.lock().unwrap().kill().unwrap();
}

/// `serve` stops on SIGTERM within a few seconds even while event streams
/// (`GET /api/v1/events`, which never end on their own) are open: it ends them, exits with
/// success, and every flow it acknowledged before is stored after a restart. Before, the
/// graceful shutdown waited for the streams' clients to leave, that is for ever — and for a
/// client that never finishes sending its request (now cut off after
/// `--shutdown-grace-seconds`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_event_streams_and_stops_promptly() {
    const STREAMS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let database = database_url().await;
    let key = create_key(&data, &database);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = Running(
        start_command(&data, port, &database)
            .args(["--shutdown-grace-seconds", "2"])
            .spawn()
            .unwrap(),
    );
    wait_ready(&http, &base).await;

    // And a client that never finishes its request (half-sent headers, a slowloris): it
    // gets the grace period, then is cut off.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut stalled, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let mut response = http
            .get(format!("{base}/api/v1/events"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut seen = String::new();
        while !seen.contains("event: ready") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
                .await
                .expect("the ready event within 10 s")
                .unwrap()
                .expect("the stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        streams.push(response);
    }
    let mut acknowledged = Vec::new();
    for n in 0..10 {
        let id = Uuid::now_v7();
        let response = http
            .post(format!("{base}/api/v1/flows"))
            .bearer_auth(&key)
            .json(&flow(id, 0, n))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        acknowledged.push(id);
    }

    let sent = std::time::Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(20) {
            panic!(
                "serve did not exit within 20 s of SIGTERM with {STREAMS} event streams and a \
                 half-sent request open"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let exited = sent.elapsed();
    assert!(status.success(), "serve exited with {status}");
    // Each stream was ended by the server (read to its end, not cut off mid-event).
    for mut stream in streams {
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.chunk().await {
                    Ok(Some(_)) => continue,
                    other => return other.map(|_| ()),
                }
            }
        })
        .await
        .expect("the stream ends once the server is gone");
        assert!(end.is_ok(), "the stream ended cleanly: {end:?}");
    }
    drop(stalled);
    println!(
        "sigterm: exited in {} ms with {STREAMS} event streams and a half-sent request open (grace 2 s)",
        exited.as_millis()
    );

    // Nothing acknowledged before the signal is lost.
    drop(server);
    let _server = Running(start(&data, port, &database));
    wait_ready(&http, &base).await;
    for &id in &acknowledged {
        let stored = becomes_queryable(&http, &base, &key, id, 300).await;
        assert!(stored, "acknowledged flow {id} is stored after the restart");
    }
}

/// A poisoned flow under load: with `FLOWTRAIL_FAULT=processor_panic`, processing a flow of
/// pipeline `flowtrail_fault_poison` panics (standing for any defect a flow could trigger).
/// While 4 clients send flows, 6 such flows arrive among them. Each goes to the dead-letter
/// queue with the panic's message, once; every other acknowledged flow is stored, also those
/// claimed in the same batch as a poisoned one and those sent after; the server keeps
/// serving. Before, the panic ended the worker task: two such flows stopped all processing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_that_panics_the_processor_is_dead_lettered_and_nothing_else_waits() {
    const POISONED: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let database = database_url().await;
    let key = create_key(&data, &database);
    let admin_key = create_key_of(&data, &database, "admin");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let _server = {
        let mut command = start_command(&data, port, &database);
        command.env("FLOWTRAIL_FAULT", "processor_panic");
        Running(command.spawn().unwrap())
    };
    wait_ready(&http, &base).await;

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, base, key) = (http.clone(), base.clone(), key.clone());
        clients.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0..60 {
                let id = Uuid::now_v7();
                let mut body = flow(id, client, n);
                // Poisoned flows land mid-stream, among the others.
                let poisoned = n % 20 == 10 && client < 2;
                if poisoned {
                    body["pipeline"] = json!("flowtrail_fault_poison");
                }
                let response = http
                    .post(format!("{base}/api/v1/flows"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
                sent.push((id, poisoned));
            }
            sent
        }));
    }
    let mut good = BTreeSet::new();
    let mut poisoned = BTreeSet::new();
    for client in clients {
        for (id, is_poisoned) in client.await.unwrap() {
            if is_poisoned {
                poisoned.insert(id);
            } else {
                good.insert(id);
            }
        }
    }
    assert_eq!(poisoned.len(), POISONED);

    // Every good flow is stored and every poisoned one dead-lettered, within a minute.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (stored, dead) = loop {
        let stored: BTreeSet<Uuid> = http
            .get(format!("{base}/api/v1/flows?pipeline=crash_test&limit=500"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|flow| flow["id"].as_str().unwrap().parse().unwrap())
            .collect();
        let dead: Vec<Value> = http
            .get(format!("{base}/api/v1/admin/dead-letters"))
            .bearer_auth(&admin_key)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["dead_letters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if (stored.len() == good.len() && dead.len() >= POISONED)
            || std::time::Instant::now() > deadline
        {
            break (stored, dead);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let dead_ids: Vec<Uuid> = dead
        .iter()
        .map(|letter| letter["flow_id"].as_str().unwrap().parse().unwrap())
        .collect();
    println!(
        "poison: acknowledged={} poisoned={} stored={} dead_lettered={}",
        good.len() + poisoned.len(),
        poisoned.len(),
        stored.len(),
        dead_ids.len()
    );
    assert_eq!(stored, good, "every good flow is stored, and only those");
    assert_eq!(
        dead_ids.iter().copied().collect::<BTreeSet<_>>(),
        poisoned,
        "exactly the poisoned flows are dead-lettered"
    );
    assert_eq!(dead_ids.len(), POISONED, "each once");
    for letter in &dead {
        let error = letter["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("processing panicked"), "{letter}");
    }
    // Still serving, still processing.
    let id = Uuid::now_v7();
    let response = http
        .post(format!("{base}/api/v1/flows"))
        .bearer_auth(&key)
        .json(&flow(id, 0, 999))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let landed = becomes_queryable(&http, &base, &key, id, 100).await;
    assert!(landed, "a flow sent after the poisoned ones is stored");
}
