//! `/api/v1/admin/api-keys…`: the team's API keys, created (the secret shown once), listed
//! and revoked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use flowtrail_domain::accounts::Scope;
use flowtrail_types::admin::{ApiKeys, CreatedApiKey};
use serde::Deserialize;

use super::{json_body, path_id};
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiBytes, ApiPath};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/api-keys", get(api_keys).post(create_api_key))
        .route("/api/v1/admin/api-keys/{id}", delete(revoke_api_key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    name: String,
    scope: String,
}

/// `GET /api/v1/admin/api-keys`: every key of the team, revoked ones too, newest first.
#[utoipa::path(
    get, path = "/api/v1/admin/api-keys", tag = "admin",
    responses(
        (status = 200, description = "The team's keys (never the secrets)", body = ApiKeys),
        (status = 401, description = "Not signed in", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn api_keys(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<ApiKeys>, ApiError> {
    let api_keys = state.services.metadata.api_keys(caller.team_id).await?;
    Ok(Json(ApiKeys { api_keys }))
}

/// `POST /api/v1/admin/api-keys` with `{"name", "scope"}` : 201
/// with the key, shown this once.
#[utoipa::path(
    post, path = "/api/v1/admin/api-keys", tag = "admin",
    request_body(content = Object, description = "`{\"name\": \"…\", \"scope\": \"ingest\"|\"read\"|\"all\"|\"admin\"}`"),
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = CreatedApiKey),
        (status = 400, description = "The body is not JSON", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 422, description = "No name, or an unknown scope", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let new: NewApiKey = json_body(&body)?;
    let scope = Scope::parse(&new.scope)
        .ok_or_else(|| ApiError::invalid("scope", "scope is ingest, read, all or admin"))?;
    let created = state
        .services
        .create_team_api_key(caller.team_id, &new.name, scope)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `DELETE /api/v1/admin/api-keys/{id}`: 204; the key answers 401 on every server within
/// a second.
#[utoipa::path(
    delete, path = "/api/v1/admin/api-keys/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 404, description = "The team has no live key with this id", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "API key")?;
    state.services.revoke_api_key(caller.team_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
