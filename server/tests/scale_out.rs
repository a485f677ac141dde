//! The scale-out profile under failure, with real processes and real engines: 2 `flowtrail
//! serve` (no workers) + 2 `flowtrail worker` on PostgreSQL + Redis + S3, ingesting through both
//! servers while one server and one worker are SIGKILLed and Redis, PostgreSQL and the S3
//! server are each paused (SIGSTOP) for 20 s.
//!
//! The ledger must show: no 2xx without a durable write (no 202 while the queue's Redis is
//! paused), no 5xx but 503, no panic, ingest that keeps going while PostgreSQL or S3 is paused,
//! a backlog that drains, and every acknowledged flow stored exactly once.
//!
//! A second test restarts each engine (SIGKILL or an immediate shutdown, then a start on the
//! same data) during ingest and during a retention sweep: every acknowledged flow is stored
//! exactly once, every sweep ends (done or failed with an error, never hung or panicked) and a
//! last sweep leaves no orphan object and no row without its object.
//!
//! Needs `scripts/with-postgres.sh scripts/with-s3.sh scripts/with-redis.sh` (their URLs and
//! control scripts in the environment). The two tests take turns on the shared engines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through scripts/with-postgres.sh scripts/with-s3.sh scripts/with-redis.sh")
    })
}

/// The engines are shared: one test at a time pauses or restarts them.
static ENGINES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs an engine's control script (`FLOWTRAIL_TEST_<ENGINE>_CTL`, written by
/// `scripts/with-<engine>.sh`): `pid`, `stop`, `start` or `restart`; returns what it printed.
fn ctl(engine: &str, action: &str) -> String {
    let script = var(&format!("FLOWTRAIL_TEST_{}_CTL", engine.to_uppercase()));
    let output = Command::new(&script).arg(action).output().unwrap();
    assert!(
        output.status.success(),
        "{script} {action}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn engine_pid(engine: &str) -> u32 {
    ctl(engine, "pid").parse().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What every process of the deployment shares.
struct Deployment {
    env: Vec<(&'static str, String)>,
    dir: PathBuf,
}

impl Deployment {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowtrail"));
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v)));
        command
    }

    fn spawn(&self, name: &str, args: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap();
        self.command(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn serve(&self, name: &str, port: u16) -> Child {
        let addr = format!("127.0.0.1:{port}");
        // Several servers at once: no OTLP/gRPC listener on the fixed 4317.
        let grpc = ["--otlp-grpc-addr", "0"];
        self.spawn(
            name,
            &[&["serve", "--addr", &addr, "--workers", "0"][..], &grpc[..]].concat(),
        )
    }

    fn worker(&self, name: &str) -> Child {
        self.spawn(name, &["worker", "--workers", "2"])
    }
}

/// Kills the processes it holds when dropped (also when the test fails).
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pids: &[u32], name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pids:?}");
}

/// `pid` and its children (PostgreSQL serves each connection from a child of the postmaster).
fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): state, ppid, …
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after.split_whitespace().nth(1) == Some(&pid.to_string()) {
            pids.push(child);
        }
    }
    pids
}

/// Resumes paused processes when dropped, so a failing test never leaves an engine stopped.
struct Paused(Vec<u32>);

impl Paused {
    fn start(pids: Vec<u32>) -> Self {
        signal(&pids, "STOP");
        Paused(pids)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .args(self.0.iter().map(u32::to_string))
            .status();
    }
}

fn flow(id: Uuid, n: usize) -> Value {
    flow_started(id, n, "2026-11-21T10:00:00Z")
}

/// A flow of two steps (30 observations) that started at `started_at` (RFC 3339).
fn flow_started(id: Uuid, n: usize, started_at: &str) -> Value {
    let observations: Vec<Value> = (0..30)
        .map(|i| {
            json!({
                "candidate_id": format!("C{n}-{i}"),
                "verdict": if i % 3 == 0 { "kept" } else { "rejected" },
                "score": i as f64 / 30.0,
                "reasons": if i % 3 == 0 { json!([]) } else { json!([{"code": "off_category"}]) },
            })
        })
        .collect();
    json!({
        "id": id, "version": 1, "pipeline": "scale_out", "status": "succeeded",
        "started_at": started_at,
        "steps": [
            {"seq": 0, "name": "retrieve", "kind": "retrieve", "candidates_in": 30, "candidates_out": 30},
            {"seq": 1, "name": "filter", "kind": "filter", "observations": observations},
        ]
    })
}

/// One answer a client got: when, from which server, what status (0: no answer).
#[derive(Clone, Copy)]
struct Answer {
    at: Instant,
    server: usize,
    status: u16,
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready");
}

fn logs(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "log") {
            all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    all
}

/// Every flow in the deployment's database with the number of its steps (a flow stored twice
/// would appear twice).
async fn stored_flows(pool: &sqlx::PgPool) -> Vec<(Uuid, i64)> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT f.id, (SELECT COUNT(*) FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id) \
         FROM flows f",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, steps)| (Uuid::parse_str(&id).unwrap(), steps))
        .collect()
}

/// `GET /api/v1/admin/dead-letters` of the server at `base`.
async fn dead_letters(http: &reqwest::Client, base: &str, admin_key: &str) -> Value {
    http.get(format!("{base}/api/v1/admin/dead-letters"))
        .bearer_auth(admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A fresh deployment on the shared engines (its own database, Redis prefix and S3 prefix),
/// migrated, with an API key of scope `all` and one of scope `admin`; `extra` adds settings.
/// Returns the deployment, its database URL and the two keys.
async fn deploy(
    dir: &Path,
    extra: &[(&'static str, &str)],
) -> (Deployment, String, String, String) {
    let admin_url = var("FLOWTRAIL_TEST_DATABASE_URL");
    let name = format!("flowtrail_scale_{}", Uuid::now_v7().simple());
    let database_url = flowtrail_domain::engines::postgres::create_database(&admin_url, &name)
        .await
        .unwrap();
    let deployment = Deployment {
        env: vec![
            ("FLOWTRAIL_DATA_DIR", dir.display().to_string()),
            ("FLOWTRAIL_DATABASE_URL", database_url.clone()),
            ("FLOWTRAIL_REDIS_URL", var("FLOWTRAIL_TEST_REDIS_URL")),
            (
                "FLOWTRAIL_REDIS_PREFIX",
                format!("scale-{}", Uuid::now_v7().simple()),
            ),
            (
                "FLOWTRAIL_OBJECT_STORE_URL",
                format!(
                    "{}/{}",
                    var("FLOWTRAIL_TEST_OBJECT_STORE_URL"),
                    Uuid::now_v7().simple()
                ),
            ),
            ("FLOWTRAIL_PAYLOAD_INLINE_MAX_BYTES", "0".into()),
            ("FLOWTRAIL_JOB_LEASE_SECONDS", "10".into()),
        ]
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (*k, v.to_string())))
        .collect(),
        dir: dir.to_path_buf(),
    };

    let migrated = deployment.command(&["migrate"]).output().unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let key = deployment
        .command(&[
            "admin",
            "create-api-key",
            "--name",
            "scale",
            "--scope",
            "all",
        ])
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let admin_key = deployment
        .command(&[
            "admin",
            "create-api-key",
            "--name",
            "scale-admin",
            "--scope",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(admin_key.status.success(), "{admin_key:?}");
    let admin_key = String::from_utf8(admin_key.stdout)
        .unwrap()
        .trim()
        .to_string();

    (deployment, database_url, key, admin_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_ride_out_crashes_and_paused_engines_with_one_truth() {
    let _engines = ENGINES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (deployment, database_url, key, admin_key) = deploy(dir.path(), &[]).await;
    let redis_pid = engine_pid("redis");
    let postgres_pid = engine_pid("postgres");
    let s3_pid = engine_pid("s3");

    let ports = [free_port(), free_port()];
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut processes = Processes(vec![
        deployment.serve("serve-a", ports[0]),
        deployment.serve("serve-b", ports[1]),
        deployment.worker("worker-1"),
        deployment.worker("worker-2"),
    ]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for base in &bases {
        wait_ready(&http, base).await;
    }

    // Clients: each sends flows one after another, alternating servers; a flow is retried
    // (same body, so the same idempotency key) until it gets its 202.
    let ledger: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..4 {
        let (http, key, bases) = (http.clone(), key.clone(), bases.clone());
        let (ledger, answers, stop) = (ledger.clone(), answers.clone(), stop.clone());
        clients.spawn(async move {
            let mut turn = client;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = Uuid::now_v7();
                let body = flow(id, n);
                n += 1;
                let started = Instant::now();
                loop {
                    assert!(
                        started.elapsed() < Duration::from_secs(120),
                        "flow {id} never got its 202"
                    );
                    let server = turn % 2;
                    turn += 1;
                    let sent = http
                        .post(format!("{}/api/v1/flows", bases[server]))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await;
                    let status = sent.as_ref().map_or(0, |r| r.status().as_u16());
                    answers.lock().unwrap().push(Answer {
                        at: Instant::now(),
                        server,
                        status,
                    });
                    if status == 202 {
                        *ledger.lock().unwrap().entry(id).or_default() += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
    }

    let pause = Duration::from_secs(20);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Crashes: one server and one worker, mid-stream; both come back 2 s later.
    let mut server_a = processes.0.remove(0);
    let mut worker_1 = processes.0.remove(1);
    server_a.kill().unwrap();
    worker_1.kill().unwrap();
    server_a.wait().unwrap();
    worker_1.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    processes.0.push(deployment.serve("serve-a", ports[0]));
    processes.0.push(deployment.worker("worker-1"));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut windows = HashMap::new();
    for (engine, pids) in [
        ("redis", vec![redis_pid]),
        ("postgres", with_children(postgres_pid)),
        ("s3", vec![s3_pid]),
    ] {
        let paused = Paused::start(pids);
        let from = Instant::now();
        tokio::time::sleep(pause).await;
        drop(paused);
        windows.insert(engine, (from, Instant::now()));
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    let ledger = ledger.lock().unwrap().clone();
    let answers = answers.lock().unwrap().clone();

    // The backlog drains: every acknowledged flow becomes queryable.
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let drained = Instant::now();
    let stored = loop {
        let stored = stored_flows(&pool).await;
        if stored.len() >= ledger.len() || drained.elapsed() > Duration::from_secs(180) {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let count = |window: (Instant, Instant), status: u16| {
        answers
            .iter()
            .filter(|a| a.status == status && a.at > window.0 && a.at < window.1)
            .count()
    };
    let accepted = answers.iter().filter(|a| a.status == 202).count();
    eprintln!(
        "scale-out proof: {} flows acknowledged ({} 202s, {} answers), drained {:.1} s after the load; \
         202s while paused: redis {}, postgres {}, s3 {}; 503s while redis was paused: {}",
        ledger.len(),
        accepted,
        answers.len(),
        drained.elapsed().as_secs_f64(),
        count(windows["redis"], 202),
        count(windows["postgres"], 202),
        count(windows["s3"], 202),
        count(windows["redis"], 503),
    );

    // Exactly once: the stored flows are exactly the acknowledged ones, each with its steps.
    let stored_ids: HashMap<Uuid, i64> = stored.iter().copied().collect();
    assert_eq!(stored.len(), stored_ids.len(), "a flow is stored twice");
    let missing: Vec<&Uuid> = ledger
        .keys()
        .filter(|id| !stored_ids.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    let unacknowledged: Vec<&Uuid> = stored_ids
        .keys()
        .filter(|id| !ledger.contains_key(id))
        .collect();
    assert!(
        unacknowledged.is_empty(),
        "stored but never acknowledged: {unacknowledged:?}"
    );
    assert!(stored_ids.values().all(|steps| *steps == 2));

    // No 2xx without a durable write: the queue lives in Redis, so nothing is acknowledged
    // while Redis is paused (a margin covers answers already on the wire).
    let (from, to) = windows["redis"];
    let during_redis = count((from + Duration::from_millis(300), to), 202);
    assert_eq!(during_redis, 0, "202s while the queue's Redis was paused");
    assert!(
        count((from, to), 503) > 0,
        "503 + Retry-After while Redis is paused"
    );
    // The queue does not need PostgreSQL or S3: ingest carries on while they are paused.
    assert!(
        count(windows["postgres"], 202) > 0,
        "ingest stopped with PostgreSQL"
    );
    assert!(count(windows["s3"], 202) > 0, "ingest stopped with S3");
    // Only 503s (and 409s for a repeat still in flight) among the refusals, never a 500.
    let unexpected: Vec<u16> = answers
        .iter()
        .map(|a| a.status)
        .filter(|s| ![0, 202, 409, 503].contains(s))
        .collect();
    assert!(unexpected.is_empty(), "unexpected statuses: {unexpected:?}");
    for server in 0..2 {
        assert!(
            answers
                .iter()
                .any(|a| a.server == server && a.status == 202),
            "server {server} acknowledged flows"
        );
    }

    // Nothing is dead, payloads read back from S3 through both servers, nobody panicked.
    let dead = dead_letters(&http, &bases[1], &admin_key).await;
    assert_eq!(dead["dead_letters"], json!([]), "{dead}");
    for (i, id) in ledger.keys().take(10).enumerate() {
        let observations: Value = http
            .get(format!(
                "{}/api/v1/flows/{id}/steps/1/observations",
                bases[i % 2]
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            observations["observations"].as_array().map(Vec::len),
            Some(30)
        );
    }
    drop(processes);
    let logs = logs(dir.path());
    assert!(!logs.contains("panicked"), "a process panicked:\n{logs}");
}

/// What a sweep run during an engine restart came to.
struct SweepRun {
    engine: &'static str,
    succeeded: bool,
    stderr: String,
}

/// Waits for `child` to exit, at most `limit`; kills it and fails the test past that.
fn wait_exit(mut child: Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("a sweep hung for {limit:?} after an engine restart");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

async fn queue_depth(http: &reqwest::Client, base: &str) -> Option<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("flowtrail_queue_depth "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_engines_lose_nothing_during_ingest_or_a_retention_sweep() {
    let _engines = ENGINES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Sweeps in small, slow batches (so a restart lands inside one), a lease that lapses
    // quickly after a failed sweep, and no sweep of the server's own in the way.
    let (deployment, database_url, key, admin_key) = deploy(
        dir.path(),
        &[
            ("FLOWTRAIL_RETENTION_BATCH", "2"),
            ("FLOWTRAIL_RETENTION_PAUSE_MS", "150"),
            ("FLOWTRAIL_RETENTION_LEASE_SECONDS", "2"),
            ("FLOWTRAIL_RETENTION_INTERVAL_SECONDS", "86400"),
        ],
    )
    .await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _processes = Processes(vec![
        deployment.serve("serve", port),
        deployment.worker("worker"),
    ]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_ready(&http, &base).await;

    // Clients: every other flow started 30 days ago (the sweeps delete it), the others now.
    let now = time::OffsetDateTime::now_utc();
    let format = &time::format_description::well_known::Rfc3339;
    let old_start = (now - time::Duration::days(30)).format(format).unwrap();
    let new_start = now.format(format).unwrap();
    // Flow id → (202s received, started 30 days ago).
    let ledger: Arc<Mutex<HashMap<Uuid, (u32, bool)>>> = Arc::default();
    let statuses: Arc<Mutex<Vec<u16>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Once the sweeps begin, only recent flows: a sweep chasing new expired flows never ends.
    let sweeping = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..3 {
        let sweeping = sweeping.clone();
        let (http, key, base) = (http.clone(), key.clone(), base.clone());
        let (ledger, statuses, stop) = (ledger.clone(), statuses.clone(), stop.clone());
        let (old_start, new_start) = (old_start.clone(), new_start.clone());
        clients.spawn(async move {
            let mut n = client * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                let id = Uuid::now_v7();
                let old = n % 2 == 0 && !sweeping.load(Ordering::Relaxed);
                let body = flow_started(id, n, if old { &old_start } else { &new_start });
                n += 1;
                let started = Instant::now();
                loop {
                    assert!(
                        started.elapsed() < Duration::from_secs(120),
                        "flow {id} never got its 202"
                    );
                    let sent = http
                        .post(format!("{base}/api/v1/flows"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await;
                    let status = sent.as_ref().map_or(0, |r| r.status().as_u16());
                    statuses.lock().unwrap().push(status);
                    if status == 202 {
                        ledger.lock().unwrap().entry(id).or_insert((0, old)).0 += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
    }

    // During ingest: each engine killed (PostgreSQL: an immediate shutdown) and started again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for engine in ["redis", "postgres", "s3"] {
        ctl(engine, "restart");
        tokio::time::sleep(Duration::from_secs(6)).await;
    }

    // During a retention sweep: the old flows expire; each engine restarts inside a sweep.
    sweeping.store(true, Ordering::Relaxed);
    let saved = http
        .put(format!("{base}/api/v1/admin/retention"))
        .bearer_auth(&admin_key)
        .json(&json!({"default_days": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200, "{:?}", saved.text().await);
    let mut sweeps = Vec::new();
    for engine in ["postgres", "s3", "redis"] {
        // Its output to files: a pipe nobody reads while waiting would stall a chatty sweep.
        let out = dir.path().join(format!("sweep-{engine}.out"));
        let err = dir.path().join(format!("sweep-{engine}.err"));
        let child = deployment
            .command(&["admin", "sweep"])
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        ctl(engine, "restart");
        let output =
            tokio::task::spawn_blocking(move || wait_exit(child, Duration::from_secs(120)))
                .await
                .unwrap();
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(!stderr.contains("panicked"), "the sweep panicked: {stderr}");
        assert!(
            output.status.success() || !stderr.trim().is_empty(),
            "a failed sweep says why: {output:?}"
        );
        sweeps.push(SweepRun {
            engine,
            succeeded: output.status.success(),
            stderr,
        });
        // A failed sweep's lease lapses before the next one.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    let ledger = ledger.lock().unwrap().clone();
    let statuses = statuses.lock().unwrap().clone();

    // Every acknowledged flow is processed; then a last sweep completes and leaves storage clean.
    let drained = Instant::now();
    while queue_depth(&http, &base).await != Some(0) {
        assert!(
            drained.elapsed() < Duration::from_secs(180),
            "the queue did not drain"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let last = deployment.command(&["admin", "sweep"]).output().unwrap();
    assert!(last.status.success(), "the last sweep: {last:?}");
    let checked = deployment
        .command(&["admin", "check-storage"])
        .output()
        .unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty(),
        "check-storage after the restarts: {checked:?}"
    );

    // Exactly once: the stored flows are exactly the acknowledged recent ones, each with its
    // steps; no acknowledged flow twice; no old flow left.
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let stored: HashMap<Uuid, i64> = stored_flows(&pool).await.into_iter().collect();
    let recent: Vec<&Uuid> = ledger
        .iter()
        .filter(|(_, (_, old))| !old)
        .map(|(id, _)| id)
        .collect();
    let old = ledger.len() - recent.len();
    let missing: Vec<&&Uuid> = recent
        .iter()
        .filter(|id| !stored.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    let unexpected: Vec<(&Uuid, Option<bool>)> = stored
        .keys()
        .filter(|id| ledger.get(id).is_none_or(|(_, old)| *old))
        .map(|id| (id, ledger.get(id).map(|(_, old)| *old)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "stored but never acknowledged (None) or expired and not swept (Some(true)): {unexpected:?}"
    );
    assert!(stored.values().all(|steps| *steps == 2));
    assert!(ledger.values().all(|(acks, _)| *acks == 1));
    let refused: Vec<u16> = statuses
        .iter()
        .copied()
        .filter(|s| ![0, 202, 409, 503].contains(s))
        .collect();
    assert!(refused.is_empty(), "unexpected statuses: {refused:?}");
    let dead = dead_letters(&http, &base, &admin_key).await;
    assert_eq!(dead["dead_letters"], json!([]), "{dead}");
    let count = |status: u16| statuses.iter().filter(|s| **s == status).count();
    let sweeps: Vec<String> = sweeps
        .iter()
        .map(|s| {
            let how = if s.succeeded {
                "completed".to_string()
            } else {
                let line = s.stderr.lines().last().unwrap_or("").trim();
                format!("failed ({})", line.chars().take(80).collect::<String>())
            };
            format!("{} {how}", s.engine)
        })
        .collect();
    eprintln!(
        "engine restarts: acknowledged={} (recent {}, expired {}), stored={}, lost=0, duplicated=0, \
         503s={}, no answer={}; sweeps during a restart: {}; last sweep and check-storage clean",
        ledger.len(),
        recent.len(),
        old,
        stored.len(),
        count(503),
        count(0),
        sweeps.join(", "),
    );
    drop(_processes);
    let logs = logs(dir.path());
    assert!(!logs.contains("panicked"), "a process panicked:\n{logs}");
}
