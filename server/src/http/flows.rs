//! `/api/v1/flows` queries: the list, one flow with its steps, a step's observations. The
//! list's filters are parsed by the one vocabulary of the flows list
//! ([`flowtrail_types::FlowFilters`]), the same parser the dashboard uses.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
#[allow(unused_imports)] // named by the OpenAPI annotations
use flowtrail_types::{
    ErrorBody, FlowDetail, FlowFilters, FlowPage, FlowStatus, ObservationList, StepKind,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::{Editor, Reader};
use super::error::ApiError;
use super::extract::ApiPath;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/flows", get(list))
        .route("/api/v1/flows/{id}", get(show))
        .route(
            "/api/v1/flows/{id}/steps/{seq}/observations",
            get(observations),
        )
        .route("/api/v1/flows/{id}/pin", put(pin).delete(unpin))
}

/// `PUT /api/v1/flows/{id}/pin`: 204; retention never deletes a pinned flow.
#[utoipa::path(
    put, path = "/api/v1/flows/{id}/pin", tag = "query",
    params(("id" = Uuid, Path, description = "Flow id")),
    responses(
        (status = 204, description = "Pinned (pinning twice is no error)"),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "A viewer, or a key without scope all", body = ErrorBody),
        (status = 404, description = "No such flow in the team", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn pin(
    State(state): State<AppState>,
    Editor(caller): Editor,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = flow_id(&id)?;
    state.services.set_pinned(caller.team_id, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/flows/{id}/pin`: 204; the flow is subject to retention again.
#[utoipa::path(
    delete, path = "/api/v1/flows/{id}/pin", tag = "query",
    params(("id" = Uuid, Path, description = "Flow id")),
    responses(
        (status = 204, description = "Unpinned (unpinning twice is no error)"),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "A viewer, or a key without scope all", body = ErrorBody),
        (status = 404, description = "No such flow in the team", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn unpin(
    State(state): State<AppState>,
    Editor(caller): Editor,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = flow_id(&id)?;
    state.services.set_pinned(caller.team_id, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/flows`.
#[utoipa::path(
    get, path = "/api/v1/flows", tag = "query",
    params(
        ("pipeline" = Option<String>, Query, description = "Pipeline name"),
        ("status" = Option<FlowStatus>, Query, description = "running, succeeded or failed"),
        ("tag" = Option<Vec<String>>, Query, description = "key:value; repeatable (at most 20), all must match"),
        ("since" = Option<String>, Query, description = "RFC 3339; flows started at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; flows started before"),
        ("q" = Option<String>, Query, description = "Full-text: every word must appear (last token as a prefix) in the pipeline, error, step names, reasoning, reason codes and texts, or candidate ids"),
        ("step_kind" = Option<StepKind>, Query, description = "With min_eliminated: a step of this kind"),
        ("min_eliminated" = Option<f64>, Query, minimum = 0, maximum = 1, description = "0 to 1: share of candidates_in not passed on"),
        ("step" = Option<String>, Query, description = "A step of this name (with reason: that step counted it)"),
        ("reason" = Option<String>, Query, description = "A step counted at least one rejection with this reason code (its exact counts, not only recorded observations)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1 to 500, default 50"),
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

/// Parses the flows list's query string, naming the bad parameter (422).
pub fn parse_flow_query(raw: &str) -> Result<FlowFilters, ApiError> {
    FlowFilters::from_query(raw).map_err(|e| ApiError::invalid(e.field, e.message))
}

/// The `name=value` pairs of a query string, each decoded to UTF-8 or refused naming it.
pub(crate) fn query_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    flowtrail_types::filters::decode_query(raw)
        .map_err(|e| ApiError::invalid(e.parameter, e.message))
}

/// A time parameter in the forms of the flows list's vocabulary
/// ([`flowtrail_types::filters::parse_time`]), or a 422 naming it.
pub(crate) fn time_param(name: &'static str, value: &str) -> Result<OffsetDateTime, ApiError> {
    flowtrail_types::filters::parse_time(name, value)
        .map_err(|e| ApiError::invalid(e.field, e.message))
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
    ApiPath(id): ApiPath<String>,
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

/// `GET /api/v1/flows/{id}/steps/{seq}/observations[?version=N]`, with a strong ETag. Cached
/// as `immutable` only when the URL names the stored, finished version (`?version=N`): that
/// answer can never change. Without a version, or while the flow runs, the answer may change
/// and is revalidated (`no-cache`). A version that is not the stored one answers 404.
#[utoipa::path(
    get, path = "/api/v1/flows/{id}/steps/{seq}/observations", tag = "query",
    params(
        ("id" = Uuid, Path, description = "Flow id"),
        ("seq" = u32, Path, description = "Step sequence number"),
        ("version" = Option<u32>, Query, minimum = 1, description = "The flow version these observations must belong to; with a finished version the answer is immutable"),
        ("If-None-Match" = Option<String>, Header, description = "A previous ETag: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The step's observations (strong ETag: SHA-256 of the stored payload)", body = ObservationList),
        (status = 304, description = "Not modified"),
        (status = 400, description = "malformed JSON or body", body = ErrorBody),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 404, description = "No such flow or step, or the flow is stored at another version", body = ErrorBody),
        (status = 422, description = "version is not a whole number", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn observations(
    State(state): State<AppState>,
    Reader(caller): Reader,
    ApiPath((id, seq)): ApiPath<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = flow_id(&id)?;
    let seq: u32 = seq
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no step has the seq {seq:?}")))?;
    let mut version = None;
    for (name, value) in query_pairs(raw.as_deref().unwrap_or_default())? {
        if name == "version" && !value.is_empty() {
            version = Some(value.parse::<u32>().map_err(|_| {
                ApiError::invalid("version", "version is a whole number, a flow version")
            })?);
        }
    }
    let step = state
        .services
        .metadata
        .step_payload(caller.team_id, id, seq)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no step {seq} in flow {id}")))?;
    if let Some(version) = version
        && version != step.flow_version
    {
        return Err(ApiError::NotFound(format!(
            "flow {id} is stored at version {}, not {version}",
            step.flow_version
        )));
    }
    let payload = step.payload.as_ref();
    // The version is part of the tag: the same bytes of another version are another answer.
    let etag = format!(
        "\"v{}-{}\"",
        step.flow_version,
        payload.map(|p| p.sha256.as_str()).unwrap_or("empty")
    );
    let cache_control = if version.is_some() && step.is_final() {
        "private, max-age=31536000, immutable"
    } else {
        "private, no-cache"
    };
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, cache_control.to_string()),
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
    let array = match payload {
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
