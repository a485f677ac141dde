//! `/api/v1/flows`: ingest (POST) and the query endpoints of flows, steps and observations.

use std::io::Read;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flowtrail_domain::ingest;
use flowtrail_domain::store::{FlowCursor, FlowQuery};
#[allow(unused_imports)] // named by the OpenAPI annotations
use flowtrail_types::{
    ErrorBody, FlowDetail, FlowPage, FlowRecord, FlowStatus, IngestAccepted, ObservationList,
    StepKind, StepsPush,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::auth::{Ingester, Reader};
use super::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/flows", get(list).post(accept))
        .route("/api/v1/flows/{id}", get(show))
        .route("/api/v1/flows/{id}/steps", post(accept_steps))
        .route(
            "/api/v1/flows/{id}/steps/{seq}/observations",
            get(observations),
        )
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
    count_rejection(&state, &result);
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
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = flow_id(&id)?;
    let result = accept_inner(&state, &caller, &headers, body, Target::Steps(id)).await;
    count_rejection(&state, &result);
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

fn count_rejection(state: &AppState, result: &Result<Response, ApiError>) {
    match result {
        Ok(_) => {}
        Err(e) if e.status().is_client_error() => {
            state.metrics.flows_rejected.fetch_add(1, Ordering::Relaxed);
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
    if let Some(key_id) = caller.key_id
        && let Err(limited) = state.rate_limits.check(key_id).await
    {
        state
            .metrics
            .flows_rate_limited
            .fetch_add(1, Ordering::Relaxed);
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
    let limit = state.max_body_bytes;
    let raw = read_limited(body, limit).await?;
    let json = match encoding {
        Encoding::Identity => raw.to_vec(),
        compressed => decompress(compressed, &raw, limit)?,
    };
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
    let accepted = ingest::enqueue(&state.services, job).await?;
    let counter = if accepted.replayed {
        &state.metrics.flows_replayed
    } else {
        &state.metrics.flows_accepted
    };
    counter.fetch_add(1, Ordering::Relaxed);
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

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let mime = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {text:?} is not accepted; send the flow record as application/json"
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
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

/// `GET /api/v1/flows`.
#[utoipa::path(
    get, path = "/api/v1/flows", tag = "query",
    params(
        ("pipeline" = Option<String>, Query, description = "Pipeline name"),
        ("status" = Option<FlowStatus>, Query, description = "running, succeeded or failed"),
        ("tag" = Option<Vec<String>>, Query, description = "key:value; repeatable, all must match"),
        ("since" = Option<String>, Query, description = "RFC 3339; flows started at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; flows started before"),
        ("q" = Option<String>, Query, description = "Full-text: every word must appear (last token as a prefix) in the pipeline, error, step names, reasoning, reason codes and texts, or candidate ids"),
        ("step_kind" = Option<StepKind>, Query, description = "With min_eliminated: a step of this kind"),
        ("min_eliminated" = Option<f64>, Query, description = "0 to 1: share of candidates_in not passed on"),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "One page, newest first", body = FlowPage),
        (status = 400, description = "malformed JSON or body", body = ErrorBody),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 422, description = "A parameter is invalid (see field)", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Reader(caller): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_flow_query(raw.as_deref().unwrap_or_default())?;
    let page = state
        .services
        .metadata
        .list_flows(caller.team_id, &query)
        .await?;
    Ok(Json(page).into_response())
}

/// Parses the flows list's query string into a [`FlowQuery`], naming the bad parameter.
pub fn parse_flow_query(raw: &str) -> Result<FlowQuery, ApiError> {
    let mut query = FlowQuery {
        limit: 50,
        ..FlowQuery::default()
    };
    for (name, value) in query_pairs(raw)? {
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "pipeline" => query.pipeline = Some(value),
            "status" => {
                query.status = Some(FlowStatus::parse(&value).ok_or_else(|| {
                    ApiError::invalid("status", "status is one of running, succeeded, failed")
                })?)
            }
            "tag" => {
                let (key, tag_value) = value.split_once(':').ok_or_else(|| {
                    ApiError::invalid("tag", "tag filters are written key:value")
                })?;
                query.tags.push((key.to_string(), tag_value.to_string()));
            }
            "since" => query.since = Some(time_param("since", &value)?),
            "until" => query.until = Some(time_param("until", &value)?),
            "q" => query.text = Some(value),
            "step_kind" => {
                query.step_kind = Some(StepKind::parse(&value).ok_or_else(|| {
                    ApiError::invalid(
                        "step_kind",
                        "step_kind is one of generate, retrieve, filter, rank, judge, select, transform, custom",
                    )
                })?)
            }
            "min_eliminated" => {
                let share: f64 = value
                    .parse()
                    .ok()
                    .filter(|v: &f64| (0.0..=1.0).contains(v))
                    .ok_or_else(|| {
                        ApiError::invalid("min_eliminated", "min_eliminated is a share from 0 to 1")
                    })?;
                query.min_eliminated = Some(share);
            }
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|v| (1..=500).contains(v))
                    .ok_or_else(|| ApiError::invalid("limit", "limit is a whole number from 1 to 500"))?;
            }
            "cursor" => {
                query.cursor = Some(FlowCursor::decode(&value).ok_or_else(|| {
                    ApiError::invalid("cursor", "cursor is not one this server handed out")
                })?)
            }
            _ => {}
        }
    }
    Ok(query)
}

/// The `name=value` pairs of a query string.
pub(crate) fn query_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(raw)
        .map_err(|e| ApiError::invalid("query", format!("the query string is not valid: {e}")))
}

/// An RFC 3339 time parameter, or a 422 naming it.
pub(crate) fn time_param(name: &str, value: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        ApiError::invalid(
            name,
            format!("{name} must be an RFC 3339 time, e.g. 2026-11-21T10:00:00Z"),
        )
    })
}

pub(crate) fn flow_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text).map_err(|_| ApiError::NotFound(format!("no flow has the id {text:?}")))
}

/// `GET /api/v1/flows/{id}`.
#[utoipa::path(
    get, path = "/api/v1/flows/{id}", tag = "query",
    params(("id" = Uuid, Path, description = "Flow id")),
    responses(
        (status = 200, description = "The flow with its steps, without observations", body = FlowDetail),
        (status = 400, description = "malformed JSON or body", body = ErrorBody),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 404, description = "No such flow in the caller's team", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = flow_id(&id)?;
    let flow = state
        .services
        .metadata
        .get_flow(caller.team_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no flow {id} in team {}", caller.team)))?;
    Ok(Json(flow).into_response())
}

/// `GET /api/v1/flows/{id}/steps/{seq}/observations`: immutable, with a strong ETag.
#[utoipa::path(
    get, path = "/api/v1/flows/{id}/steps/{seq}/observations", tag = "query",
    params(
        ("id" = Uuid, Path, description = "Flow id"),
        ("seq" = u32, Path, description = "Step sequence number"),
        ("If-None-Match" = Option<String>, Header, description = "A previous ETag: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The step's observations (strong ETag: SHA-256 of the stored payload)", body = ObservationList),
        (status = 304, description = "Not modified"),
        (status = 400, description = "malformed JSON or body", body = ErrorBody),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 404, description = "No such flow or step", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn observations(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Path((id, seq)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = flow_id(&id)?;
    let seq: u32 = seq
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no step has the seq {seq:?}")))?;
    let payload = state
        .services
        .metadata
        .step_payload(caller.team_id, id, seq)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no step {seq} in flow {id}")))?;
    let etag = format!(
        "\"{}\"",
        payload
            .as_ref()
            .map(|p| p.sha256.as_str())
            .unwrap_or("empty")
    );
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable".to_string(),
        ),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let array = match &payload {
        Some(reference) => match state.services.payloads.get_json(reference).await {
            Ok(json) => json,
            Err(error) => {
                if matches!(error, flowtrail_domain::Error::Integrity(_)) {
                    state
                        .metrics
                        .integrity_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                return Err(error.into());
            }
        },
        None => b"[]".to_vec(),
    };
    // The stored payload is already the JSON array: wrap it without re-parsing.
    let mut body = Vec::with_capacity(array.len() + 20);
    body.extend_from_slice(b"{\"observations\":");
    body.extend_from_slice(&array);
    body.push(b'}');
    Ok((
        StatusCode::OK,
        cache,
        [(header::CONTENT_TYPE, "application/json".to_string())],
        body,
    )
        .into_response())
}
