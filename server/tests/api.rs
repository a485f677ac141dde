//! HTTP API tests through the router, without a socket (`tower::ServiceExt::oneshot`), on a
//! fresh embedded data directory each.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::auth::Scope;
use flowtrail_domain::{Services, worker};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;

struct TestApp {
    router: Router,
    services: Arc<Services>,
    key: String,
    _dir: tempfile::TempDir,
}

const MAX_BODY: usize = 256 * 1024;

async fn app() -> TestApp {
    app_with(|_| {}).await
}

async fn app_with(adjust: impl FnOnce(&mut flowtrail_server::HttpConfig)) -> TestApp {
    let fixture = common::fixture("127.0.0.1:0".parse().unwrap(), |config| {
        config.max_body_bytes = MAX_BODY;
        adjust(config);
    })
    .await;
    TestApp {
        router: fixture.router,
        services: fixture.services,
        key: fixture.key,
        _dir: fixture.dir,
    }
}

fn flow_json(id: &str) -> Value {
    json!({
        "id": id,
        "version": 1,
        "pipeline": "competitor_selection",
        "status": "succeeded",
        "started_at": "2026-11-21T10:00:00.000Z",
        "ended_at": "2026-11-21T10:00:02.350Z",
        "input": {"title": "Adjustable aluminium laptop stand"},
        "output": {"selected": "B0STAND42"},
        "tags": {"env": "prod"},
        "steps": [{
            "seq": 2, "name": "price_and_rating_filter", "kind": "filter",
            "reasoning": "Kept candidates within 0.5x-2x of the seller's price",
            "candidates_in": 5000, "candidates_out": 30,
            "reasons": {"price_out_of_range": 4100, "rating_below_threshold": 870},
            "capture": "sampled",
            "observations": [{
                "candidate_id": "B0CASE0001", "verdict": "rejected", "score": 0.12,
                "reasons": [{"code": "price_out_of_range", "text": "9.99 is below 0.5x of 45.00"}],
                "attributes": {"price": 9.99, "category": "Cell Phone Cases"}
            }]
        }]
    })
}

const FLOW_ID: &str = "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11";

impl TestApp {
    async fn call(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body)
    }

    fn post(&self, body: impl Into<Body>) -> axum::http::request::Builder {
        let _ = body;
        self.post_at("/api/v1/flows")
    }

    fn post_at(&self, uri: &str) -> axum::http::request::Builder {
        Request::post(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, "application/json")
    }

    async fn send(&self, body: &Value) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.post_to("/api/v1/flows", body).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .body(Body::empty())
            .unwrap();
        self.call(request).await
    }

    async fn get_json(&self, uri: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.get(uri).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn post_to(&self, uri: &str, body: &Value) -> (StatusCode, axum::http::HeaderMap, Value) {
        let request = self
            .post_at(uri)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        let (status, headers, body) = self.call(request).await;
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// Runs a worker until the queue is empty.
    async fn drain_all(&self) {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(worker::run(
            self.services.clone(),
            Default::default(),
            shutdown,
        ));
        for _ in 0..200 {
            if self.services.queue.depth().await.unwrap() == 0 {
                let _ = stop.send(true);
                task.await.unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the queue never drained");
    }

    /// Runs a worker until the flow is queryable.
    async fn drain(&self, id: &str) {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(worker::run(
            self.services.clone(),
            Default::default(),
            shutdown,
        ));
        for _ in 0..200 {
            if self.get_json(&format!("/api/v1/flows/{id}")).await.0 == StatusCode::OK {
                let _ = stop.send(true);
                task.await.unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("flow {id} never became queryable");
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn a_flow_is_accepted_then_queryable_with_its_steps_and_observations() {
    let app = app().await;
    let (status, headers, body) = app.send(&flow_json(FLOW_ID)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"flow_id": FLOW_ID, "status": "queued"}));
    assert!(headers.get("idempotent-replayed").is_none());
    assert!(
        headers.get("x-request-id").is_some(),
        "every answer carries a request id"
    );

    app.drain(FLOW_ID).await;
    let (status, list) = app.get_json("/api/v1/flows").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["flows"][0]["id"], FLOW_ID);
    assert_eq!(list["flows"][0]["step_count"], 1);
    assert_eq!(list["next_cursor"], Value::Null);

    let (_, flow) = app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await;
    assert_eq!(flow["pipeline"], "competitor_selection");
    assert_eq!(flow["steps"][0]["name"], "price_and_rating_filter");
    assert_eq!(flow["steps"][0]["candidates_in"], 5000);
    assert_eq!(flow["steps"][0]["reasons"]["rating_below_threshold"], 870);
    assert!(
        flow["steps"][0].get("observations").is_none(),
        "no observations in the flow"
    );

    let uri = format!("/api/v1/flows/{FLOW_ID}/steps/2/observations");
    let (status, headers, body) = app.get(&uri).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["observations"],
        flow_json(FLOW_ID)["steps"][0]["observations"]
    );
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.len() == 66,
        "strong ETag of the SHA-256: {etag}"
    );
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );

    let request = Request::get(&uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[tokio::test]
async fn idempotency_replays_and_refuses_a_reused_key() {
    let app = app().await;
    let first = app.send(&flow_json(FLOW_ID)).await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    let replay = app.send(&flow_json(FLOW_ID)).await;
    assert_eq!(replay.0, StatusCode::ACCEPTED);
    assert_eq!(replay.1["idempotent-replayed"], "true");
    assert_eq!(replay.2, first.2);

    let mut changed = flow_json(FLOW_ID);
    changed["output"] = json!({"selected": "B0OTHER"});
    let (status, _, body) = app.send(&changed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "idempotency_key_reused");

    // An explicit key scopes by key, not by flow id.
    let bytes = serde_json::to_vec(&changed).unwrap();
    let request = app
        .post(())
        .header("idempotency-key", "run-42")
        .body(Body::from(bytes))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.services.queue.depth().await.unwrap(), 2);
}

#[tokio::test]
async fn bad_input_gets_a_json_error_with_a_stable_code() {
    let app = app().await;
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            Request::post("/api/v1/flows")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Request::post("/api/v1/flows")
                .header(header::AUTHORIZATION, "Bearer ftk_revoked_or_unknown")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Request::post("/api/v1/flows")
                .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            app.post(()).body(Body::from("{\"id\": ")).unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.post(()).body(Body::from("")).unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.post(()).body(Body::from("[1, 2]")).unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Request::post("/api/v1/flows")
                .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            app.post(())
                .header(header::CONTENT_ENCODING, "br")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            app.post(())
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Body::from("not gzip"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.post(())
                .body(Body::from(vec![b' '; MAX_BODY + 1]))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            app.post(())
                .header("idempotency-key", "k".repeat(129))
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Request::delete("/api/v1/flows")
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::get("/api/v1/nothing").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, headers, body) = app.call(request).await;
        let body: Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: not JSON"));
        assert_eq!((got, error_code(&body)), (status, code), "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn schema_errors_name_the_field() {
    let app = app().await;
    let mut bad = flow_json(FLOW_ID);
    bad["steps"][0]["observations"][0]["verdict"] = json!("maybe");
    let (status, _, body) = app.send(&bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"],
        json!({
            "code": "validation_failed",
            "message": "unknown variant `maybe`, expected one of `kept`, `rejected`, `selected`",
            "field": "steps[0].observations[0].verdict"
        })
    );
    let mut bad = flow_json(FLOW_ID);
    bad["steps"][0]["candidates_out"] = json!(6000);
    let (_, _, body) = app.send(&bad).await;
    assert_eq!(body["error"]["field"], "steps[0].candidates_out");
    // Nesting inside a free-form field: refused at serde_json's depth limit, never a crash.
    let deep = format!(
        "{{\"id\": \"{FLOW_ID}\", \"pipeline\": \"p\", \"status\": \"running\", \
         \"started_at\": \"2026-11-21T10:00:00Z\", \"input\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let request = app.post(()).body(Body::from(deep)).unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too deep is refused, not a crash"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error_code(&body), "validation_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("64 levels"),
        "{body}"
    );
}

#[tokio::test]
async fn compressed_bodies_are_accepted_and_bombs_are_refused() {
    let app = app().await;
    let bytes = serde_json::to_vec(&flow_json(FLOW_ID)).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&bytes).unwrap();
    let request = app
        .post(())
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip.finish().unwrap()))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);

    let other = flow_json("01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b12");
    let zstd = zstd::bulk::compress(&serde_json::to_vec(&other).unwrap(), 3).unwrap();
    let request = app
        .post(())
        .header(header::CONTENT_ENCODING, "zstd")
        .body(Body::from(zstd))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);

    // 64 MiB of spaces compress to a few KiB: refused without inflating it all.
    let bomb = zstd::bulk::compress(&vec![b' '; 64 * 1024 * 1024], 19).unwrap();
    assert!(bomb.len() < MAX_BODY);
    let request = app
        .post(())
        .header(header::CONTENT_ENCODING, "zstd")
        .body(Body::from(bomb))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&MAX_BODY.to_string())
    );
}

#[tokio::test]
async fn keys_are_checked_for_scope_and_queries_for_validity() {
    let app = app().await;
    let read_only = app
        .services
        .create_api_key("default", "reader", Scope::Read)
        .await
        .unwrap();
    let request = Request::post("/api/v1/flows")
        .header(header::AUTHORIZATION, format!("Bearer {read_only}"))
        .body(Body::from(serde_json::to_vec(&flow_json(FLOW_ID)).unwrap()))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "forbidden"
    );

    let ingest_only = app
        .services
        .create_api_key("default", "pipeline", Scope::Ingest)
        .await
        .unwrap();
    let request = Request::get("/api/v1/flows")
        .header(header::AUTHORIZATION, format!("Bearer {ingest_only}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::FORBIDDEN);
    let anonymous = Request::get("/api/v1/flows").body(Body::empty()).unwrap();
    assert_eq!(app.call(anonymous).await.0, StatusCode::UNAUTHORIZED);

    for (query, field) in [
        ("status=done", "status"),
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("since=yesterday", "since"),
        ("tag=novalue", "tag"),
        ("step_kind=sieve", "step_kind"),
        ("min_eliminated=1.5", "min_eliminated"),
        ("cursor=garbage", "cursor"),
    ] {
        let (status, body) = app.get_json(&format!("/api/v1/flows?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    let (status, _) = app
        .get_json("/api/v1/flows?pipeline=p&status=failed&tag=env:prod&tag=a:b&since=2026-11-21T00:00:00Z&step_kind=filter&min_eliminated=0.9&limit=500&q=x")
        .await;
    assert_eq!(status, StatusCode::OK);

    for uri in [
        "/api/v1/flows/not-a-uuid",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99/steps/1/observations",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99/steps/x/observations",
    ] {
        let (status, body) = app.get_json(uri).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_need_no_auth() {
    let app = app().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    for engine in ["database", "object_store", "queue"] {
        assert_eq!(body["engines"][engine], "ok", "{body}");
    }
    let engines = body["engines"].as_object().unwrap();
    assert!(engines.values().all(|v| v == "ok"), "{body}");
    app.send(&flow_json(FLOW_ID)).await;
    let (status, _, text) = app.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("flowtrail_flows_accepted_total 1"), "{text}");
    assert!(text.contains("flowtrail_queue_depth 1"), "{text}");
}

#[tokio::test]
async fn dashboard_pages_send_visitors_without_a_session_to_sign_in() {
    let app = app().await;
    for path in ["/", "/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11?step=2"] {
        let (status, headers, _) = app
            .call(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            headers[header::LOCATION]
                .to_str()
                .unwrap()
                .starts_with("/login?next=%2F")
        );
    }
    let (status, _, body) = app
        .call(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("Sign in to Flow Trail"));
    assert!(html.contains("type=\"password\""));
    assert!(
        html.contains("/pkg/flowtrail.js"),
        "hydration script is linked"
    );
}

#[tokio::test]
async fn admins_list_and_redrive_dead_letters() {
    let app = app().await;
    let poison = flowtrail_domain::queue::NewJob {
        team_id: app
            .services
            .metadata
            .team_by_slug("default")
            .await
            .unwrap()
            .unwrap()
            .id,
        idempotency_key: "poison".into(),
        body_sha256: "x".into(),
        flow_id: uuid::Uuid::now_v7(),
        flow_version: 1,
        body: b"not a flow".to_vec(),
        request_id: None,
    };
    app.services.queue.enqueue(poison).await.unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(
        app.services.clone(),
        Default::default(),
        shutdown,
    ));
    for _ in 0..200 {
        if app.services.queue.depth().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();

    let (status, body) = app.get_json("/api/v1/admin/dead-letters").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dead = body["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1);
    let id = dead[0]["id"].as_i64().unwrap();

    let reader = app
        .services
        .create_api_key("default", "r", Scope::Read)
        .await
        .unwrap();
    let request = Request::get("/api/v1/admin/dead-letters")
        .header(header::AUTHORIZATION, format!("Bearer {reader}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::FORBIDDEN);
    let (status, _) = app.get_json("/api/v1/admin/dead-letters?limit=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let redrive = |body: &'static str| {
        Request::post("/api/v1/admin/dead-letters/redrive")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, _, body) = app.call(redrive("{\"id\": 999999}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"redriven": 0})
    );
    let body = format!("{{\"id\": {id}}}");
    let (status, _, body) = app.call(redrive(Box::leak(body.into_boxed_str()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"redriven": 1})
    );
    assert_eq!(app.services.queue.depth().await.unwrap(), 1);
}

fn other_flow(n: u32) -> Value {
    flow_json(&format!("01936b2e-7c4a-7cc0-9a57-4c1f0e6d{n:04x}"))
}

#[tokio::test]
async fn an_api_key_over_its_rate_gets_429_with_retry_after() {
    let app = app_with(|config| {
        config.rate_limit_per_second = 2;
        config.rate_limit_burst = 3;
    })
    .await;
    for n in 0..3 {
        assert_eq!(
            app.send(&other_flow(n)).await.0,
            StatusCode::ACCEPTED,
            "burst of 3"
        );
    }
    let (status, headers, body) = app.send(&other_flow(3)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "rate_limited");
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another key of the same team has its own bucket.
    let second = app
        .services
        .create_api_key("default", "second", Scope::Ingest)
        .await
        .unwrap();
    let request = Request::post("/api/v1/flows")
        .header(header::AUTHORIZATION, format!("Bearer {second}"))
        .body(Body::from(serde_json::to_vec(&other_flow(4)).unwrap()))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);
    let (_, _, metrics) = app.get("/metrics").await;
    assert!(
        String::from_utf8(metrics)
            .unwrap()
            .contains("flowtrail_flows_rate_limited_total 1")
    );
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_loses_nothing() {
    let app = app_with(|config| config.max_queue_depth = 2).await;
    assert_eq!(app.send(&other_flow(0)).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.send(&other_flow(1)).await.0, StatusCode::ACCEPTED);
    // The gate reads the depth at most every 250 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, headers, body) = app.send(&other_flow(2)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "unavailable");
    assert_eq!(headers[header::RETRY_AFTER], "5");
    assert_eq!(
        app.services.queue.depth().await.unwrap(),
        2,
        "the refused flow was not queued"
    );
    app.drain("01936b2e-7c4a-7cc0-9a57-4c1f0e6d0001").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.send(&other_flow(2)).await.0,
        StatusCode::ACCEPTED,
        "accepted once drained"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_are_stored_once() {
    let app = app().await;
    let bytes = serde_json::to_vec(&flow_json(FLOW_ID)).unwrap();
    let requests = (0..16).map(|_| {
        let request = app.post(()).body(Body::from(bytes.clone())).unwrap();
        let router = app.router.clone();
        tokio::spawn(async move { router.oneshot(request).await.unwrap() })
    });
    let mut accepted = 0;
    for response in futures::future::join_all(requests).await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::CONFLICT => {
                let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(error_code(&body), "idempotency_key_in_flight");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(accepted >= 1);
    assert_eq!(
        app.services.queue.depth().await.unwrap(),
        1,
        "one job, however many repeats"
    );
}

#[tokio::test]
async fn the_callers_request_id_is_echoed_and_carried_into_the_job() {
    let app = app().await;
    let request = app
        .post(())
        .header("x-request-id", "trace-4711")
        .body(Body::from(serde_json::to_vec(&flow_json(FLOW_ID)).unwrap()))
        .unwrap();
    let (status, headers, _) = app.call(request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["x-request-id"], "trace-4711");
    let jobs = app
        .services
        .queue
        .claim(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs[0].request_id.as_deref(), Some("trace-4711"));

    let (_, headers, _) = app.get("/healthz").await;
    let generated = headers["x-request-id"].to_str().unwrap();
    assert_eq!(
        generated.len(),
        36,
        "a UUID when the caller sends none: {generated}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_live_router() {
    let app = app().await;
    let (status, doc) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["components"]["schemas"]["FlowRecord"].is_object());
    let paths = doc["paths"].as_object().unwrap();
    for (path, expected) in [
        ("/api/v1/flows", vec!["get", "post"]),
        ("/api/v1/flows/{id}", vec!["get"]),
        ("/api/v1/flows/{id}/steps/{seq}/observations", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/api/v1/openapi.json", vec!["get"]),
        ("/api/v1/events", vec!["get"]),
        ("/api/v1/flows/{id}/steps", vec!["post"]),
        ("/api/v1/flows/{id}/candidates/{candidate_id}", vec!["get"]),
        ("/api/v1/flows/{a}/diff/{b}", vec!["get"]),
        ("/api/v1/stats/reasons", vec!["get"]),
    ] {
        for method in expected {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is documented"
            );
        }
    }
    // Every documented operation exists in the router: not the catch-all 404, not a 405.
    for (path, operations) in paths {
        let uri = path
            .replace("{id}", FLOW_ID)
            .replace("{a}", FLOW_ID)
            .replace("{b}", FLOW_ID)
            .replace("{candidate_id}", "B0CASE0001")
            .replace("{seq}", "2");
        for method in operations.as_object().unwrap().keys() {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let response = app.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let streaming = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
            // An event stream never ends: its status and type are the answer.
            let body = if streaming {
                Vec::new()
            } else {
                to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap()
                    .to_vec()
            };
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !message.contains("no such endpoint"),
                "{method} {path} is routed"
            );
        }
    }
}

#[tokio::test]
async fn steps_pushed_while_running_are_merged_then_superseded() {
    let app = app().await;
    let push = json!({
        "version": 1,
        "pipeline": "competitor_selection",
        "started_at": "2026-11-21T10:00:00.000Z",
        "steps": [{"seq": 0, "name": "keyword_generation", "kind": "generate",
                   "output": {"keywords": ["laptop stand"]}}]
    });
    let uri = format!("/api/v1/flows/{FLOW_ID}/steps");
    let (status, _, body) = app.post_to(&uri, &push).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"flow_id": FLOW_ID, "status": "queued"}));
    let (status, headers, _) = app.post_to(&uri, &push).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        headers["idempotent-replayed"], "true",
        "a retried push is accepted once"
    );

    let mut second = flow_json(FLOW_ID);
    second["version"] = json!(2);
    let second = json!({"version": 2, "pipeline": "competitor_selection",
                        "started_at": "2026-11-21T10:00:00.000Z", "steps": second["steps"]});
    assert_eq!(app.post_to(&uri, &second).await.0, StatusCode::ACCEPTED);
    app.drain_all().await;
    let (status, flow) = app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flow["status"], "running", "the partial trail is visible");
    assert_eq!(flow["step_count"], 2);
    assert_eq!(
        flow["largest_elimination"]["step"],
        "price_and_rating_filter"
    );
    assert_eq!(flow["largest_elimination"]["eliminated"], 4970);

    // The finished flow replaces every pushed step.
    let mut finished = flow_json(FLOW_ID);
    finished["version"] = json!(3);
    assert_eq!(app.send(&finished).await.0, StatusCode::ACCEPTED);
    app.drain_all().await;
    let (_, flow) = app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await;
    assert_eq!(flow["status"], "succeeded");
    assert_eq!(flow["step_count"], 1);

    // Bad pushes are told apart like bad flows.
    let (status, _, body) = app
        .post_to(
            &uri,
            &json!({"pipeline": "p", "started_at": "2026-11-21T10:00:00Z", "steps": []}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(body["error"]["field"], "steps");
    let mut wrong_id = push.clone();
    wrong_id["id"] = json!("01936b2e-7c4a-7cc0-9a57-000000000000");
    let (status, _, body) = app.post_to(&uri, &wrong_id).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("id"))
    );
    let (status, _, body) = app.post_to("/api/v1/flows/not-a-uuid/steps", &push).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let request = app.post_at(&uri).body(Body::from("{\"steps\": [")).unwrap();
    let (status, _, body) = app.call(request).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
}

#[tokio::test]
async fn journey_diff_and_stats_answer_over_http() {
    let app = app().await;
    let good_id = "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b12";
    let mut good = flow_json(good_id);
    good["steps"][0]["capture"] = json!("full");
    good["steps"][0]["candidates_in"] = json!(2);
    good["steps"][0]["candidates_out"] = json!(1);
    good["steps"][0]["reasons"] = json!({"price_out_of_range": 1});
    good["steps"][0]["observations"] = json!([
        {"candidate_id": "B0CASE0001", "verdict": "rejected",
         "reasons": [{"code": "price_out_of_range", "text": "9.99 is below 0.5x of 45.00"}]},
        {"candidate_id": "https://shop/a b", "verdict": "kept", "score": 0.9}
    ]);
    let bad = flow_json(FLOW_ID);
    assert_eq!(app.send(&good).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.send(&bad).await.0, StatusCode::ACCEPTED);
    app.drain_all().await;

    let (status, journey) = app
        .get_json(&format!("/api/v1/flows/{good_id}/candidates/B0CASE0001"))
        .await;
    assert_eq!(status, StatusCode::OK, "{journey}");
    assert_eq!(journey["final_verdict"], "rejected");
    assert_eq!(journey["eliminated_at"]["seq"], 2);
    assert_eq!(
        journey["eliminated_at"]["reasons"][0]["code"],
        "price_out_of_range"
    );
    assert_eq!(journey["steps"][0]["presence"], "observed");
    let (status, journey) = app
        .get_json(&format!(
            "/api/v1/flows/{good_id}/candidates/https%3A%2F%2Fshop%2Fa%20b"
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an encoded id with slashes and spaces: {journey}"
    );
    assert_eq!(journey["candidate_id"], "https://shop/a b");
    assert_eq!(journey["steps"][0]["score"], 0.9);
    let (status, body) = app
        .get_json(&format!("/api/v1/flows/{good_id}/candidates/B0NOPE"))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = app
        .get_json(&format!("/api/v1/flows/{FLOW_ID}/candidates/B0NOPE"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sample"),
        "a sampled step may have seen it: {body}"
    );

    let (status, diff) = app
        .get_json(&format!("/api/v1/flows/{good_id}/diff/{FLOW_ID}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let step = &diff["steps"][0];
    assert_eq!(step["removed"], json!(["https://shop/a b"]));
    assert_eq!(
        step["reasons"]["price_out_of_range"],
        json!({"a": 1, "b": 4100})
    );
    assert_eq!(step["candidates_in"], json!({"a": 2, "b": 5000}));
    let (status, body) = app
        .get_json(&format!(
            "/api/v1/flows/{good_id}/diff/01936b2e-7c4a-7cc0-9a57-000000000000"
        ))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = app
        .get_json(&format!("/api/v1/flows/{good_id}/diff/nope"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, stats) = app
        .get_json("/api/v1/stats/reasons?since=2026-11-21T00:00:00Z&until=2026-11-22T00:00:00Z&bucket=hour")
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["bucket"], "hour");
    assert_eq!(
        stats["totals"][0],
        json!({"pipeline": "competitor_selection", "step": "price_and_rating_filter",
               "code": "price_out_of_range", "count": 4101})
    );
    assert_eq!(stats["buckets"][0]["start"], "2026-11-21T10:00:00Z");
    assert_eq!(stats["funnels"][0]["flows"], 2);
    assert_eq!(stats["funnels"][0]["steps"][0]["median_in"], 2501.0);
    for (query, field) in [("bucket=week", "bucket"), ("since=soon", "since")] {
        let (status, body) = app
            .get_json(&format!("/api/v1/stats/reasons?{query}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["field"], field);
    }

    // The flows list carries the largest elimination and finds the flow by reason text.
    let (_, page) = app.get_json("/api/v1/flows?q=below%200.5x").await;
    let ids: Vec<_> = page["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2, "{page}");
    assert_eq!(ids[0], json!(good_id), "same start: the larger id first");
    assert_eq!(page["flows"][0]["largest_elimination"]["share"], 0.5);
    assert_eq!(page["flows"][1]["largest_elimination"]["share"], 0.994);
}
