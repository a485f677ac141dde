//! `/api/v1/admin/members…`: who belongs to the team, with which role.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use flowtrail_domain::accounts::Role;
use flowtrail_types::admin::{AddedMember, Member, Members};
use serde::Deserialize;

use super::{json_body, path_id};
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiBytes, ApiPath};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/members", get(members).post(add_member))
        .route(
            "/api/v1/admin/members/{user_id}",
            patch(set_member_role).delete(remove_member),
        )
}

fn role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| ApiError::invalid("role", "role is admin, member or viewer"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    email: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: String,
}

/// `GET /api/v1/admin/members`: the team's members by e-mail.
#[utoipa::path(
    get, path = "/api/v1/admin/members", tag = "admin",
    responses(
        (status = 200, description = "The team's members", body = Members),
        (status = 401, description = "Not signed in", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin (or a key without scope admin)", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn members(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<Members>, ApiError> {
    let members = state.services.metadata.members(caller.team_id).await?;
    Ok(Json(Members { members }))
}

/// `POST /api/v1/admin/members` with `{"email", "role"}`: adds the account (created with a
/// password shown once when the address has none) to the team. 201.
#[utoipa::path(
    post, path = "/api/v1/admin/members", tag = "admin",
    request_body(content = Object, description = "`{\"email\": \"…\", \"role\": \"admin\"|\"member\"|\"viewer\"}`"),
    responses(
        (status = 201, description = "Added; `initial_password` is set (once) for a new account", body = AddedMember),
        (status = 400, description = "The body is not JSON", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 409, description = "Already a member", body = flowtrail_types::ErrorBody),
        (status = 422, description = "No e-mail address, or an unknown role", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<AddedMember>), ApiError> {
    let new: NewMember = json_body(&body)?;
    let role = role(&new.role)?;
    let added = state
        .services
        .add_member(caller.team_id, &new.email, role)
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// `PATCH /api/v1/admin/members/{user_id}` with `{"role"}`: applies on the member's next
/// request. 409 for the team's last admin.
#[utoipa::path(
    patch, path = "/api/v1/admin/members/{user_id}", tag = "admin",
    params(("user_id" = i64, Path, description = "The member's user id")),
    request_body(content = Object, description = "`{\"role\": \"admin\"|\"member\"|\"viewer\"}`"),
    responses(
        (status = 200, description = "The member with the new role", body = Member),
        (status = 400, description = "The body is not JSON", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 404, description = "Not a member of the team", body = flowtrail_types::ErrorBody),
        (status = 409, description = "The team's last admin", body = flowtrail_types::ErrorBody),
        (status = 422, description = "An unknown role", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn set_member_role(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiPath(user_id): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Member>, ApiError> {
    let user_id = path_id(&user_id, "member")?;
    let change: RoleChange = json_body(&body)?;
    let role = role(&change.role)?;
    let member = state
        .services
        .set_member_role(caller.team_id, user_id, role)
        .await?;
    Ok(Json(member))
}

/// `DELETE /api/v1/admin/members/{user_id}`: 204; the user's sessions lose the team on
/// their next request. 409 for the team's last admin.
#[utoipa::path(
    delete, path = "/api/v1/admin/members/{user_id}", tag = "admin",
    params(("user_id" = i64, Path, description = "The member's user id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 404, description = "Not a member of the team", body = flowtrail_types::ErrorBody),
        (status = 409, description = "The team's last admin", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiPath(user_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let user_id = path_id(&user_id, "member")?;
    state
        .services
        .remove_member(caller.team_id, user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
