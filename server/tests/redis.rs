//! Needs a real Redis: `scripts/with-redis.sh cargo test -p flowtrail-server --features
//! redis-tests --test redis`. Several servers over one Redis share rate limits and see each
//! other's in-flight idempotency keys.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::accounts::Scope;
use flowtrail_domain::engines::redis::Redis;
use flowtrail_domain::{Services, StorageConfig};
use flowtrail_server::admission::InFlight;
use flowtrail_server::{HttpConfig, build_app};
use serde_json::json;
use tower::ServiceExt;

fn redis_url() -> String {
    std::env::var("FLOWTRAIL_TEST_REDIS_URL")
        .expect("run through scripts/with-redis.sh (FLOWTRAIL_TEST_REDIS_URL)")
}

fn prefix() -> String {
    format!("test-{}", uuid::Uuid::now_v7().simple())
}

async fn shared() -> Redis {
    Redis::connect(&redis_url(), &prefix()).await.unwrap()
}

/// Storage on `dir` with Redis under `prefix`: what one server or worker process opens.
fn storage(dir: &std::path::Path, prefix: &str) -> StorageConfig {
    let mut config = StorageConfig::embedded(dir);
    config.redis_url = Some(redis_url());
    config.redis_prefix = prefix.to_string();
    config
}

/// Two "servers" (routers) over the same data and the same Redis.
async fn two_servers(
    adjust: impl Fn(&mut HttpConfig),
) -> (Router, Router, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let services = Arc::new(
        Services::open(&storage(dir.path(), &prefix()))
            .await
            .unwrap(),
    );
    services.bootstrap(None).await.unwrap();
    let key = services
        .create_api_key("default", "k", Scope::All)
        .await
        .unwrap();
    let mut config = HttpConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("site"));
    adjust(&mut config);
    let a = build_app(services.clone(), &config).await.unwrap();
    let b = build_app(services, &config).await.unwrap();
    (a, b, key, dir)
}

fn flow(n: u32) -> Request<Body> {
    let body = json!({
        "id": format!("01936b2e-7c4a-7cc0-9a57-4c1f0e6d{n:04x}"),
        "pipeline": "p", "status": "succeeded", "started_at": "2026-11-21T10:00:00Z"
    });
    Request::post("/api/v1/flows")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn with_key(mut request: Request<Body>, key: &str) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    request
}

#[tokio::test]
async fn servers_share_one_token_bucket_per_key() {
    let (a, b, key, _dir) = two_servers(|config| {
        config.rate_limit_per_second = 2;
        config.rate_limit_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let server = if n % 2 == 0 { &a } else { &b };
        statuses.push(
            server
                .clone()
                .oneshot(with_key(flow(n), &key))
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(
        statuses,
        vec![StatusCode::ACCEPTED; 3],
        "a burst of 3 across both servers"
    );
    let response = b.clone().oneshot(with_key(flow(3), &key)).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the bucket is shared"
    );
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let response = a.clone().oneshot(with_key(flow(4), &key)).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the bucket refills"
    );
}

#[tokio::test]
async fn an_idempotency_key_in_flight_on_one_server_is_seen_by_another() {
    let redis = shared().await;
    let (one, two) = (InFlight::Redis(redis.clone()), InFlight::Redis(redis));
    let guard = one.claim(1, "run-42").await.unwrap();
    assert!(
        two.claim(1, "run-42").await.is_err(),
        "409 on the other server"
    );
    assert!(two.claim(2, "run-42").await.is_ok(), "scoped to the team");
    drop(guard);
    let mut released = false;
    for _ in 0..50 {
        if let Ok(again) = two.claim(1, "run-42").await {
            drop(again);
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        released,
        "the key is released when the first request is done"
    );
}

#[tokio::test]
async fn readiness_reports_redis() {
    let (a, _b, _key, _dir) = two_servers(|_| {}).await;
    let response = a
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["engines"]["redis"], "ok", "{body}");
}

/// `XPENDING key group`: count, smallest and largest id, (consumer, count) pairs.
type PendingSummary = (u64, Option<String>, Option<String>, Vec<(String, String)>);

fn job(team_id: i64, key: &str) -> flowtrail_domain::ingest::NewJob {
    flowtrail_domain::ingest::NewJob {
        team_id,
        idempotency_key: key.into(),
        body_sha256: "sha".into(),
        flow_id: uuid::Uuid::now_v7(),
        flow_version: 1,
        body: b"body".to_vec(),
        request_id: None,
        mode: flowtrail_domain::flows::WriteMode::Replace,
        usage: Default::default(),
    }
}

#[tokio::test]
async fn a_dead_consumers_jobs_are_reclaimed_by_another_process() {
    let prefix = prefix();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Services::open(&storage(dir_a.path(), &prefix))
        .await
        .unwrap();
    let b = Services::open(&storage(dir_b.path(), &prefix))
        .await
        .unwrap();
    a.queue.enqueue(job(1, "k1")).await.unwrap();

    let taken = a.queue.claim(10, Duration::from_millis(300)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        b.queue
            .claim(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "pending on a live lease"
    );
    // A dies without completing; its lease runs out and B takes the entry over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = b.queue.claim(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, taken[0].id);
    assert_eq!(again[0].attempts, 2);
    let redis = a.redis.as_ref().unwrap();
    let mut conn = redis.conn.clone();
    let pending: PendingSummary = redis::cmd("XPENDING")
        .arg(redis.key("q:stream"))
        .arg("workers")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending.0, 1, "one pending entry");
    assert_eq!(pending.3.len(), 1, "owned by one consumer (B) only");

    b.queue.complete(again[0].id).await.unwrap();
    assert_eq!(a.queue.depth().await.unwrap(), 0);
    // A comes back late and completes too: harmless.
    a.queue.complete(taken[0].id).await.unwrap();
    assert_eq!(b.queue.depth().await.unwrap(), 0);
    assert!(
        a.queue
            .claim(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    // The key is remembered across processes.
    assert_eq!(
        b.queue.enqueue(job(1, "k1")).await.unwrap(),
        flowtrail_domain::ingest::EnqueueOutcome::Replayed
    );
}

#[tokio::test]
async fn payloads_read_once_are_shared_through_redis_for_an_hour() {
    use flowtrail_domain::ingest::{self, processor};
    let prefix = prefix();
    let dir = tempfile::tempdir().unwrap();
    let mut config = storage(dir.path(), &prefix);
    config.payload_inline_max = 0; // every payload in the object store
    let a = Services::open(&config).await.unwrap();
    let team = a.bootstrap(None).await.unwrap().id;
    let body = json!({
        "id": "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11", "pipeline": "p", "status": "succeeded",
        "started_at": "2026-11-21T10:00:00Z",
        "steps": [{"seq": 0, "name": "filter", "kind": "filter", "observations": [
            {"candidate_id": "B01", "verdict": "rejected", "reasons": [{"code": "price"}]}]}]
    });
    let flow_id = uuid::Uuid::parse_str("01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11").unwrap();
    ingest::submit(&a, team, None, &serde_json::to_vec(&body).unwrap(), None)
        .await
        .unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let shared = Arc::new(a.clone());
    tokio::spawn(processor::run(shared, Default::default(), shutdown));
    let mut reference = None;
    for _ in 0..200 {
        if let Some(Some(found)) = a
            .metadata
            .step_payload(team, flow_id, 0)
            .await
            .unwrap()
            .map(|step| step.payload)
        {
            reference = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = stop.send(true);
    let reference = reference.expect("the flow was stored");
    assert!(reference.inline.is_none());
    let first = a.payloads.get_json(&reference).await.unwrap();
    assert!(a.payloads.cache().unwrap().holds(&reference.key));

    // Another process, the object store has lost the payload: Redis still serves it.
    let redis = a.redis.as_ref().unwrap();
    let name = redis.key(&format!("payload:{}", reference.key));
    let mut conn = redis.conn.clone();
    let mut ttl = -2;
    for _ in 0..100 {
        ttl = redis::cmd("TTL")
            .arg(&name)
            .query_async(&mut conn)
            .await
            .unwrap();
        if ttl > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!((3500..=3600).contains(&ttl), "an hour in Redis, got {ttl}");
    std::fs::remove_dir_all(dir.path().join("payloads")).unwrap();
    std::fs::create_dir(dir.path().join("payloads")).unwrap();
    let b = Services::open(&config).await.unwrap();
    assert!(!b.payloads.cache().unwrap().holds(&reference.key));
    assert_eq!(b.payloads.get_json(&reference).await.unwrap(), first);

    // A corrupt cache entry is never served: the store is read instead (and here fails).
    let _: () = redis::cmd("SET")
        .arg(&name)
        .arg(b"garbage".as_slice())
        .query_async(&mut conn)
        .await
        .unwrap();
    let c = Services::open(&config).await.unwrap();
    assert!(c.payloads.get_json(&reference).await.is_err());
}

#[tokio::test]
async fn flows_stored_by_one_process_reach_live_listeners_of_another() {
    use flowtrail_domain::ingest::{self, processor};
    let prefix = prefix();
    let dir = tempfile::tempdir().unwrap();
    let writer = Services::open(&storage(dir.path(), &prefix)).await.unwrap();
    let team = writer.bootstrap(None).await.unwrap().id;
    let reader = Services::open(&storage(dir.path(), &prefix)).await.unwrap();
    let mut heard = reader.events.subscribe();
    // Give the subscription a moment to reach Redis.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(processor::run(
        Arc::new(writer.clone()),
        Default::default(),
        shutdown,
    ));
    let body = json!({"id": "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b12", "pipeline": "p",
        "status": "succeeded", "started_at": "2026-11-21T10:00:00Z"});
    ingest::submit(
        &writer,
        team,
        None,
        &serde_json::to_vec(&body).unwrap(),
        None,
    )
    .await
    .unwrap();
    let landed = tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("the event crossed processes")
        .unwrap();
    let _ = stop.send(true);
    assert_eq!(landed.team_id, team);
    assert_eq!(
        landed.flow.id.to_string(),
        "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b12"
    );
}

#[tokio::test]
async fn a_redis_that_could_lose_jobs_is_refused_for_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/setup.sh)");
    let url = format!("redis://127.0.0.1:{port}");
    let mut config = StorageConfig::embedded(dir.path());
    config.redis_url = Some(url.clone());
    let mut opened = Err(flowtrail_domain::Error::Config("not tried".into()));
    for _ in 0..100 {
        opened = Services::open(&config).await.map(|_| ());
        match &opened {
            Err(flowtrail_domain::Error::Config(message)) if message.contains("cannot reach") => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => break,
        }
    }
    let message = opened.unwrap_err().to_string();
    assert!(message.contains("appendfsync"), "{message}");
    assert!(message.contains("--queue database"), "{message}");
    // With the queue in the database, the same Redis is fine for the cache and events.
    config.queue = flowtrail_domain::QueueEngine::Database;
    let services = Services::open(&config).await.unwrap();
    assert!(services.redis.is_some());
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test]
async fn idle_consumers_with_nothing_pending_are_forgotten() {
    use flowtrail_domain::engines::redis::queue::RedisQueue;
    use flowtrail_domain::ingest::IngestQueue;
    let redis = shared().await;
    let busy = RedisQueue::open(redis.clone()).await.unwrap();
    let idle = RedisQueue::open(redis.clone()).await.unwrap();
    busy.enqueue(job(1, "k1")).await.unwrap();
    busy.enqueue(job(1, "k2")).await.unwrap();
    let held = busy.claim(1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(held.len(), 1);
    let done = idle.claim(1, Duration::from_secs(60)).await.unwrap();
    idle.complete(done[0].id).await.unwrap();
    let consumers = || async {
        let mut conn = redis.conn.clone();
        let list: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(redis.key("q:stream"))
            .arg("workers")
            .query_async(&mut conn)
            .await
            .unwrap();
        list.len()
    };
    assert_ne!(busy.consumer(), idle.consumer());
    assert_eq!(consumers().await, 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        idle.forget_idle_consumers(Duration::from_millis(20))
            .await
            .unwrap(),
        1,
        "only the consumer holding nothing goes"
    );
    assert_eq!(consumers().await, 1);
    assert_eq!(
        busy.forget_idle_consumers(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
}
