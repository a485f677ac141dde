//! The application under test, on a fresh embedded data directory, and requests to it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use flowtrail_domain::Services;
use flowtrail_domain::ingest::processor;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common;

/// The router of a fresh, bootstrapped profile, its services and an API key of scope `all`.
pub struct TestApp {
    pub router: Router,
    pub services: Arc<Services>,
    pub key: String,
    /// An API key with scope `admin`.
    pub admin_key: String,
    pub storage: flowtrail_domain::StorageConfig,
    pub _dir: tempfile::TempDir,
}

/// The request body limit every test application is configured with.
pub const MAX_BODY: usize = 256 * 1024;

/// A test application with the default HTTP configuration.
pub async fn app() -> TestApp {
    app_with(|_| {}).await
}

/// A test application whose HTTP configuration `adjust` may change.
pub async fn app_with(adjust: impl FnOnce(&mut flowtrail_server::HttpConfig)) -> TestApp {
    app_with_storage(|_| {}, adjust).await
}

/// A test application whose storage and HTTP configuration may change.
pub async fn app_with_storage(
    adjust_storage: impl FnOnce(&mut flowtrail_domain::StorageConfig),
    adjust: impl FnOnce(&mut flowtrail_server::HttpConfig),
) -> TestApp {
    let fixture = common::fixture_with("127.0.0.1:0".parse().unwrap(), adjust_storage, |config| {
        config.max_body_bytes = MAX_BODY;
        adjust(config);
    })
    .await;
    TestApp {
        router: fixture.router,
        services: fixture.services,
        key: fixture.key,
        admin_key: fixture.admin_key,
        storage: fixture.storage,
        _dir: fixture.dir,
    }
}

/// A finished flow `id` with one sampled filter step and one observation.
pub fn flow_json(id: &str) -> Value {
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

/// Flow `n` of a series of distinct flows, otherwise like [`flow_json`].
pub fn other_flow(n: u32) -> Value {
    flow_json(&format!("01936b2e-7c4a-7cc0-9a57-4c1f0e6d{n:04x}"))
}

/// The id of [`flow_json`] in most tests.
pub const FLOW_ID: &str = "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11";

impl TestApp {
    /// Sends `request` through the router: its status, headers and whole body.
    pub async fn call(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body)
    }

    /// A `POST /api/v1/flows` with the key and a JSON content type (`body` is not used).
    pub fn post(&self, body: impl Into<Body>) -> axum::http::request::Builder {
        let _ = body;
        self.post_at("/api/v1/flows")
    }

    /// A `POST` to `uri` with the key and a JSON content type.
    pub fn post_at(&self, uri: &str) -> axum::http::request::Builder {
        Request::post(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, "application/json")
    }

    /// Posts `body` as a flow: status, headers and the JSON answer (`null` if none).
    pub async fn send(&self, body: &Value) -> (StatusCode, HeaderMap, Value) {
        self.post_to("/api/v1/flows", body).await
    }

    /// A `GET` of `uri` with the key.
    pub async fn get(&self, uri: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .body(Body::empty())
            .unwrap();
        self.call(request).await
    }

    /// A `GET` of `uri` with the key: status and the JSON answer (`null` if none).
    pub async fn get_json(&self, uri: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.get(uri).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Posts `body` as JSON to `uri`: status, headers and the JSON answer (`null` if none).
    pub async fn post_to(&self, uri: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
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
    pub async fn drain_all(&self) {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(processor::run(
            self.services.clone(),
            Default::default(),
            shutdown,
        ));
        // Progress, not a fixed time, decides: on 2 busy cores (every test of the binary at
        // once) hundreds of flows can take longer than any small deadline, but a queue that
        // stops shrinking for 20 s is stuck.
        let (mut last, mut since) = (u64::MAX, std::time::Instant::now());
        loop {
            let depth = self.services.queue.depth().await.unwrap();
            if depth == 0 {
                let _ = stop.send(true);
                task.await.unwrap();
                return;
            }
            if depth < last {
                (last, since) = (depth, std::time::Instant::now());
            } else if since.elapsed() > Duration::from_secs(20) {
                panic!("the queue never drained: {depth} jobs left, none done in 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a worker until the flow is queryable.
    pub async fn drain(&self, id: &str) {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(processor::run(
            self.services.clone(),
            Default::default(),
            shutdown,
        ));
        for _ in 0..1000 {
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

impl TestApp {
    /// A request with `method` to `uri` authorised by `key` (none: anonymous), with a JSON
    /// body when given: status and the JSON answer (`null` if none).
    pub async fn send_as(
        &self,
        key: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let (status, _, body) = self.call(request).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Signs `email` in through the dashboard's sign-in: the session cookie (`name=value`).
    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        use flowtrail_app::api::Login;
        use leptos::server_fn::ServerFn;
        let body = format!(
            "email={}&password={}",
            urlencoding(email),
            urlencoding(password)
        );
        let request = Request::post(Login::PATH)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(body))
            .unwrap();
        let (status, headers, body) = self.call(request).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let cookie = headers[header::SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_string()
    }

    /// A request with `method` to `uri` in the session of `cookie` (as this site's own page
    /// sends it): status and the JSON answer (`null` if none).
    pub async fn send_in_session(
        &self,
        cookie: &str,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::COOKIE, cookie)
            .header("sec-fetch-site", "same-origin");
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let (status, _, body) = self.call(request).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// [`TestApp::send_as`] with the admin key.
    pub async fn admin(
        &self,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let key = self.admin_key.clone();
        self.send_as(Some(&key), method, uri, body).await
    }
}

/// `text` percent-encoded for a form body.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The stable code of a JSON error body.
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}
