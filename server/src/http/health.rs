//! Liveness, readiness and metrics: no authentication.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)))]
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Every engine answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "`{\"status\": \"ready\", \"engines\": {…: \"ok\"}}`", body = Object),
    (status = 503, description = "An engine does not answer; see engines", body = Object),
))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let services = &state.services;
    // Checked together, each bounded: a stalled engine reads as unavailable, not as a hang.
    let redis = async {
        match &services.redis {
            Some(redis) => Some(verdict(redis.ping()).await),
            None => None,
        }
    };
    let (database, object_store, queue, redis) = tokio::join!(
        verdict(services.metadata.ping()),
        verdict(services.payloads.ping()),
        verdict(async { services.queue.depth().await.map(|_| ()) }),
        redis,
    );
    let mut engines = json!({"database": database, "object_store": object_store, "queue": queue});
    if let Some(redis) = redis {
        engines["redis"] = json!(redis);
    }
    let ready = engines
        .as_object()
        .is_some_and(|all| all.values().all(|v| v == "ok"));
    if ready {
        Json(json!({"status": "ready", "engines": engines})).into_response()
    } else {
        let body = json!({
            "status": "unavailable",
            "engines": engines,
            "error": {"code": "unavailable", "message": "an engine does not answer; see engines"}
        });
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(body),
        )
            .into_response()
    }
}

/// `"ok"`, or `"unavailable"` when `check` fails or takes more than 2 s.
async fn verdict(check: impl Future<Output = flowtrail_domain::Result<()>>) -> &'static str {
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check failed");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            "unavailable"
        }
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let depth = state.services.queue.depth().await.ok();
    let mut text = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = write!(
            text,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        );
    };
    counter(
        "flowtrail_flows_accepted_total",
        "Flows acknowledged with 202 (replays excluded).",
        m.flows_accepted.load(Ordering::Relaxed),
    );
    counter(
        "flowtrail_flows_replayed_total",
        "Repeated flows answered from the idempotency record.",
        m.flows_replayed.load(Ordering::Relaxed),
    );
    counter(
        "flowtrail_flows_rejected_total",
        "Ingest requests refused with a 4xx answer.",
        m.flows_rejected.load(Ordering::Relaxed),
    );
    counter(
        "flowtrail_flows_rate_limited_total",
        "Ingest requests refused by the per-key rate limit (429).",
        m.flows_rate_limited.load(Ordering::Relaxed),
    );
    counter(
        "flowtrail_flows_unavailable_total",
        "Ingest requests refused with 503 (queue over its bound).",
        m.flows_unavailable.load(Ordering::Relaxed),
    );
    counter(
        "flowtrail_payload_integrity_failures_total",
        "Stored payloads whose SHA-256 did not match on read.",
        m.integrity_failures.load(Ordering::Relaxed),
    );
    if let Some(depth) = depth {
        let _ = write!(
            text,
            "# HELP flowtrail_queue_depth Ingest jobs queued or in progress.\n# TYPE flowtrail_queue_depth gauge\nflowtrail_queue_depth {depth}\n"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
