//! `/api/v1/admin/retention…`: the team's retention policy, its sweeper's runs, and what a
//! policy would delete.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::BTreeMap;

use flowtrail_types::admin::{RetentionPolicy, RetentionPreview, RetentionRun, RetentionState};

use super::json_body;
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::ApiBytes;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/retention", get(retention).put(set_retention))
        .route("/api/v1/admin/retention/preview", post(preview_retention))
}

/// [`RetentionState`] as the OpenAPI document describes it: the policy's fields beside the
/// sweeper's. (The type flattens [`RetentionPolicy`], whose schema refuses other fields as
/// the `PUT` body does; described by `allOf`, no answer could match it — schemathesis found.)
#[derive(utoipa::ToSchema)]
#[schema(as = RetentionState)]
#[allow(dead_code)] // documents the answer; never built
struct RetentionStateSchema {
    /// For every pipeline without an override (days, 1 to 36,500); `null` keeps flows forever.
    #[schema(minimum = 1, maximum = 36500)]
    default_days: Option<u32>,
    /// Per-pipeline overrides: a number of days, or `null` to keep that pipeline forever.
    pipelines: BTreeMap<String, Option<u32>>,
    /// Seconds between sweeps of this server.
    interval_seconds: u64,
    /// When this server's sweeper runs next (RFC 3339; `null` when it does not run here).
    #[schema(format = DateTime)]
    next_run_at: Option<String>,
    /// Newest first, at most 20.
    runs: Vec<RetentionRun>,
}

/// `GET /api/v1/admin/retention`: the policy, when the sweeper runs next, its last runs.
#[utoipa::path(
    get, path = "/api/v1/admin/retention", tag = "admin",
    responses(
        (status = 200, description = "`{default_days, pipelines, interval_seconds, next_run_at, runs}`", body = RetentionStateSchema),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn retention(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<RetentionState>, ApiError> {
    Ok(Json(state.services.retention_state(caller.team_id).await?))
}

/// `PUT /api/v1/admin/retention` with `{"default_days": n|null, "pipelines": {"name": n|null}}`.
#[utoipa::path(
    put, path = "/api/v1/admin/retention", tag = "admin",
    request_body(content = RetentionPolicy),
    responses(
        (status = 200, description = "Saved: the state as `GET` answers it", body = RetentionStateSchema),
        (status = 400, description = "The body is not JSON", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 422, description = "Days outside 1..=36500, or an empty pipeline name", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn set_retention(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiBytes(body): ApiBytes,
) -> Result<Json<RetentionState>, ApiError> {
    let policy: RetentionPolicy = json_body(&body)?;
    state
        .services
        .set_retention_policy(caller.team_id, &policy)
        .await?;
    Ok(Json(state.services.retention_state(caller.team_id).await?))
}

/// `POST /api/v1/admin/retention/preview` with a policy: what saving and sweeping it would
/// delete now.
#[utoipa::path(
    post, path = "/api/v1/admin/retention/preview", tag = "admin",
    request_body(content = RetentionPolicy),
    responses(
        (status = 200, description = "Flows and bytes, per pipeline, and the oldest flow kept", body = RetentionPreview),
        (status = 400, description = "The body is not JSON", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 422, description = "Days outside 1..=36500, or an empty pipeline name", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn preview_retention(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiBytes(body): ApiBytes,
) -> Result<Json<RetentionPreview>, ApiError> {
    let policy: RetentionPolicy = json_body(&body)?;
    Ok(Json(
        state
            .services
            .preview_retention(caller.team_id, &policy)
            .await?,
    ))
}
