//! Needs a real Redis: `scripts/with-redis.sh cargo test -p flowtrail-server --features
//! redis-tests --test redis`. Several servers over one Redis share rate limits and see each
//! other's in-flight idempotency keys.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::auth::Scope;
use flowtrail_domain::{Services, StorageConfig};
use flowtrail_domain::redis_engine::Redis;
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
    let services = Arc::new(Services::open(&storage(dir.path(), &prefix())).await.unwrap());
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
