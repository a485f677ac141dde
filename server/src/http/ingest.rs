//! Ingest over HTTP: `POST /api/v1/flows` and `POST /api/v1/flows/{id}/steps`. The
//! transport only — content type and encoding, size limits applied after decompression,
//! the idempotency key header — before the domain's `ingest` parses, validates and enqueues.

use std::io::Read;
use std::sync::atomic::Ordering;

use axum::Json;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use flowtrail_domain::ingest;
use flowtrail_domain::usage::UsageEvent;
#[allow(unused_imports)] // named by the OpenAPI annotations
use flowtrail_types::{ErrorBody, FlowRecord, IngestAccepted, StepsPush};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use uuid::Uuid;

use super::auth::Ingester;
use super::error::ApiError;
use super::extract::ApiPath;
use super::flows::flow_id;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/flows", post(accept))
        .route("/api/v1/flows/{id}/steps", post(accept_steps))
}

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 128;

/// `POST /api/v1/flows`: validate, enqueue durably, answer 202.
#[utoipa::path(
    post, path = "/api/v1/flows", tag = "ingest",
    request_body(content = FlowRecord, description = "A flow record; `Content-Encoding: gzip` or `zstd` accepted"),
    params(("Idempotency-Key" = Option<String>, Header, description = "At most 128 characters; default: flow id and version")),
    responses(
        (status = 202, description = "Durably queued (`Idempotent-Replayed: true` on a repeat)", body = IngestAccepted),
        (status = 400, description = "malformed JSON or body", body = ErrorBody),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 409, description = "The same key is still being accepted", body = ErrorBody),
        (status = 413, description = "Body over the limit, compressed or not", body = ErrorBody),
        (status = 415, description = "Wrong content type or encoding", body = ErrorBody),
        (status = 422, description = "Invalid flow, or a reused key with another body", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
        (status = 503, description = "Queue full or storage down; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    Ingester(caller): Ingester,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let result = accept_inner(&state, &caller, &headers, body, Target::Flow).await;
    count_rejection(&state, &caller, &result);
    result
}

/// `POST /api/v1/flows/{id}/steps`: steps of a running flow, merged by `seq` once stored.
#[utoipa::path(
    post, path = "/api/v1/flows/{id}/steps", tag = "ingest",
    params(
        ("id" = Uuid, Path, description = "Flow id"),
        ("Idempotency-Key" = Option<String>, Header, description = "At most 128 characters; default: flow id, version and the pushed steps' seqs"),
    ),
    request_body(content = StepsPush, description = "Some finished steps of a running flow; `Content-Encoding: gzip` or `zstd` accepted"),
    responses(
        (status = 202, description = "Durably queued (`Idempotent-Replayed: true` on a repeat)", body = IngestAccepted),
        (status = 400, description = "malformed JSON or body", body = ErrorBody),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 404, description = "The id in the path is not a UUID", body = ErrorBody),
        (status = 409, description = "The same key is still being accepted", body = ErrorBody),
        (status = 413, description = "Body over the limit, compressed or not", body = ErrorBody),
        (status = 415, description = "Wrong content type or encoding", body = ErrorBody),
        (status = 422, description = "Invalid steps, or a reused key with another body", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
        (status = 503, description = "Queue full or storage down; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn accept_steps(
    State(state): State<AppState>,
    Ingester(caller): Ingester,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = flow_id(&id)?;
    let result = accept_inner(&state, &caller, &headers, body, Target::Steps(id)).await;
    count_rejection(&state, &caller, &result);
    result
}

/// What an ingest request writes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A whole flow record.
    Flow,
    /// Some steps of the running flow with this id.
    Steps(Uuid),
}

/// Counts a refused request in the metrics and in the team's usage (a 429 is counted as
/// rate-limited where it is decided).
pub(crate) fn count_rejection<T>(
    state: &AppState,
    caller: &super::auth::Caller,
    result: &Result<T, ApiError>,
) {
    match result {
        Ok(_) => {}
        Err(ApiError::RateLimited { .. }) => {
            state.metrics.flows_rejected.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) if e.status().is_client_error() => {
            state.metrics.flows_rejected.fetch_add(1, Ordering::Relaxed);
            state
                .services
                .usage
                .record(caller.team_id, UsageEvent::Rejected);
        }
        Err(_) => {}
    }
}

async fn accept_inner(
    state: &AppState,
    caller: &super::auth::Caller,
    headers: &HeaderMap,
    body: Body,
    target: Target,
) -> Result<Response, ApiError> {
    check_content_type(headers)?;
    let encoding = content_encoding(headers)?;
    let idempotency_key = idempotency_key(headers)?;
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    admit(state, caller).await?;
    let limit = state.max_body_bytes;
    let json = read_body(encoding, body, limit).await?;
    let (limits, key, request_id) = (
        &state.services.limits,
        idempotency_key.as_deref(),
        request_id.as_deref(),
    );
    let job = match target {
        Target::Flow => ingest::prepare(limits, caller.team_id, key, &json, request_id)?,
        Target::Steps(id) => {
            ingest::prepare_steps(limits, caller.team_id, id, key, &json, request_id)?
        }
    };
    let _in_flight = state
        .in_flight
        .claim(caller.team_id, &job.idempotency_key)
        .await?;
    let usage = job.usage.clone();
    let accepted = ingest::enqueue(&state.services, job).await?;
    count_accepted(state, caller, &accepted, &usage);
    let body = IngestAccepted {
        flow_id: accepted.flow_id,
        status: "queued".into(),
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if accepted.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Counts an enqueued job (native or OTLP) in the metrics and the team's usage: a replay as
/// replayed, anything else as accepted with its size.
pub(crate) fn count_accepted(
    state: &AppState,
    caller: &super::auth::Caller,
    accepted: &ingest::Accepted,
    usage: &ingest::JobUsage,
) {
    let (counter, event) = if accepted.replayed {
        (&state.metrics.flows_replayed, UsageEvent::Replayed)
    } else {
        let event = UsageEvent::Accepted {
            pipeline: usage.pipeline.as_deref(),
            steps: usage.steps,
            observations: usage.observations,
            bytes: usage.bytes,
        };
        (&state.metrics.flows_accepted, event)
    };
    counter.fetch_add(1, Ordering::Relaxed);
    state.services.usage.record(caller.team_id, event);
}

/// A request's `Content-Type` as sent, and its MIME type (lowercase, without parameters).
pub(crate) fn media_type(headers: &HeaderMap) -> (String, String) {
    let text = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = text.split(';').next().unwrap_or_default().trim();
    (text.to_string(), mime.to_ascii_lowercase())
}

/// What an ingest request of the transport's kind (native or OTLP) passes before its body
/// is read: the API key's rate limit (429), the queue's depth (503).
pub(crate) async fn admit(state: &AppState, caller: &super::auth::Caller) -> Result<(), ApiError> {
    if let Some(key_id) = caller.key_id
        && let Err(limited) = state.rate_limits.check(key_id).await
    {
        state
            .metrics
            .flows_rate_limited
            .fetch_add(1, Ordering::Relaxed);
        state
            .services
            .usage
            .record(caller.team_id, UsageEvent::RateLimited);
        return Err(limited);
    }
    let now = flowtrail_domain::millis::now_ms();
    if state.depth_gate.is_stale(now) {
        state
            .depth_gate
            .record(state.services.queue.depth().await?, now);
    }
    state.depth_gate.check().inspect_err(|_| {
        state
            .metrics
            .flows_unavailable
            .fetch_add(1, Ordering::Relaxed);
    })?;
    Ok(())
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    if !headers.contains_key(header::CONTENT_TYPE) {
        return Ok(());
    }
    let (text, mime) = media_type(headers);
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {text:?} is not accepted; send the flow record as application/json"
        )))
    }
}

/// A request body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

/// The request's `Content-Encoding` (gzip, zstd or none). Errors: 415 for another.
pub(crate) fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    match value
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "zstd" => Ok(Encoding::Zstd),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not accepted; use gzip, zstd or none"
        ))),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let field = "Idempotency-Key";
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid(field, "the Idempotency-Key must be printable ASCII"))?
        .trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::invalid(
            field,
            format!("the Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    Ok(Some(key.to_string()))
}

/// The request body, decompressed; at most `limit` bytes compressed and decompressed
/// (413 past it, 400 when it does not decompress).
pub(crate) async fn read_body(
    encoding: Encoding,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let raw = read_limited(body, limit).await?;
    match encoding {
        Encoding::Identity => Ok(raw.to_vec()),
        compressed => decompress(compressed, &raw, limit),
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(error) => Err(ApiError::MalformedJson(format!(
            "the request body could not be read: {error}"
        ))),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the body is larger than the limit of {limit} bytes (compressed or decompressed); \
         send fewer observations per flow, or capture them sampled"
    ))
}

/// Decompresses inside the limit, so a small bomb costs nothing.
fn decompress(encoding: Encoding, raw: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let name = if encoding == Encoding::Gzip {
        "gzip"
    } else {
        "zstd"
    };
    let undecodable = |e: std::io::Error| {
        ApiError::MalformedJson(format!("the {name} body does not decompress: {e}"))
    };
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        _ => Box::new(zstd::stream::read::Decoder::new(raw).map_err(undecodable)?),
    };
    let mut out = Vec::with_capacity(raw.len() * 4);
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(undecodable)?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}
