//! `/api/v1/admin/dead-letters…`: the team's ingest jobs that failed for good, to read,
//! discard or send through ingest again.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use flowtrail_domain::ingest::{self, DeadLetter};
use serde::{Deserialize, Serialize};

use super::path_id;
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiBytes, ApiPath};
use crate::http::flows::query_pairs;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/dead-letters", get(dead_letters))
        .route("/api/v1/admin/dead-letters/redrive", post(redrive))
        .route(
            "/api/v1/admin/dead-letters/{id}",
            get(dead_letter).delete(discard_dead_letter),
        )
}

#[derive(Serialize)]
pub(crate) struct DeadLetters {
    pub dead_letters: Vec<DeadLetter>,
}

/// `GET /api/v1/admin/dead-letters?limit=`: the team's dead jobs, newest first.
#[utoipa::path(
    get, path = "/api/v1/admin/dead-letters", tag = "admin",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1 to 1000, default 100")),
    responses(
        (status = 200, description = "`{\"dead_letters\": [{id, team_id, flow_id, flow_version, attempts, last_error, request_id, enqueued_at, died_at}]}`", body = Object),
        (status = 401, description = "Not signed in", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin (or a key without scope all)", body = flowtrail_types::ErrorBody),
        (status = 422, description = "limit is not a whole number from 1 to 1000", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<DeadLetters>, ApiError> {
    let pairs = query_pairs(query.as_deref().unwrap_or_default())?;
    let limit = match pairs.iter().find(|(k, _)| k == "limit") {
        Some((_, v)) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "limit is a whole number from 1 to 1000"))?,
        None => 100,
    };
    let dead_letters = state
        .services
        .queue
        .dead_letters(Some(caller.team_id), limit)
        .await?;
    Ok(Json(DeadLetters { dead_letters }))
}

/// `GET /api/v1/admin/dead-letters/{id}`: the dead job with a summary of its body.
#[utoipa::path(
    get, path = "/api/v1/admin/dead-letters/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The dead job's id")),
    responses(
        (status = 200, description = "The dead job, and of its body: `body_bytes`, `readable`, `pipeline`, `steps`, `observations`, `excerpt` (its first 2,000 characters)", body = Object),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 404, description = "The team has no dead job with this id", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn dead_letter(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ingest::DeadLetterDetail>, ApiError> {
    let id = path_id(&id, "dead job")?;
    Ok(Json(state.services.dead_letter(caller.team_id, id).await?))
}

/// `DELETE /api/v1/admin/dead-letters/{id}`: discards the dead job (and its idempotency
/// record: the same body may be sent again). 204.
#[utoipa::path(
    delete, path = "/api/v1/admin/dead-letters/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The dead job's id")),
    responses(
        (status = 204, description = "Discarded"),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 404, description = "The team has no dead job with this id", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn discard_dead_letter(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "dead job")?;
    state
        .services
        .discard_dead_letter(caller.team_id, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct RedriveBody {
    /// One job; absent: every dead job of the team.
    id: Option<i64>,
}

#[derive(Serialize)]
pub(crate) struct Redriven {
    pub redriven: u64,
}

/// `POST /api/v1/admin/dead-letters/redrive` with `{"id": N}` or `{}`.
#[utoipa::path(
    post, path = "/api/v1/admin/dead-letters/redrive", tag = "admin",
    request_body(content = Option<Object>, description = "`{\"id\": <job id>}`, or nothing (no body, or `{}`) for every dead job of the team"),
    responses(
        (status = 200, description = "`{\"redriven\": n}`", body = Object),
        (status = 401, description = "Not signed in", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 400, description = "The body is not JSON", body = flowtrail_types::ErrorBody),
        (status = 413, description = "The body is over the limit", body = flowtrail_types::ErrorBody),
        (status = 422, description = "The body is JSON but not `{\"id\": <job id>}`", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn redrive(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Redriven>, ApiError> {
    let body: RedriveBody =
        if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
            RedriveBody::default()
        } else {
            // Not JSON: 400 `malformed_json`; JSON of another shape: 422 naming the field.
            ingest::parse_body(&body).map_err(|e| match ApiError::from(e) {
                ApiError::Validation { field, message } => ApiError::Validation {
                    field: field.or_else(|| Some("id".into())),
                    message: format!("send {{\"id\": <job id>}} or nothing: {message}"),
                },
                other => other,
            })?
        };
    let id = body.id;
    let redriven = state
        .services
        .queue
        .redrive(Some(caller.team_id), id)
        .await?;
    Ok(Json(Redriven { redriven }))
}
