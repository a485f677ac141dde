//! `/api/v1/admin/…`: team administration. Needs a team admin (see [`Admin`]).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use flowtrail_domain::accounts::{Role, Scope};
use flowtrail_domain::ingest::{self, DeadLetter};
use flowtrail_types::admin::{
    AddedMember, ApiKeys, CreatedApiKey, Member, Members, RetentionPolicy, RetentionPreview,
    RetentionState, Usage,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::Admin;
use super::error::ApiError;
use super::extract::{ApiBytes, ApiPath};
use super::flows::query_pairs;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/dead-letters", get(dead_letters))
        .route("/api/v1/admin/dead-letters/redrive", post(redrive))
        .route(
            "/api/v1/admin/dead-letters/{id}",
            get(dead_letter).delete(discard_dead_letter),
        )
        .route("/api/v1/admin/members", get(members).post(add_member))
        .route(
            "/api/v1/admin/members/{user_id}",
            patch(set_member_role).delete(remove_member),
        )
        .route("/api/v1/admin/api-keys", get(api_keys).post(create_api_key))
        .route("/api/v1/admin/api-keys/{id}", delete(revoke_api_key))
        .route("/api/v1/admin/retention", get(retention).put(set_retention))
        .route("/api/v1/admin/retention/preview", post(preview_retention))
        .route("/api/v1/admin/usage", get(usage))
}

/// A JSON body of shape `T`: 400 `malformed_json` when it is not JSON, 422 naming the field
/// when it is JSON of another shape.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: T = ingest::parse_body(body)?;
    // serde reads a struct from an array too (`[1]` as `{"default_days": 1}`): only an
    // object is a body here.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::Validation {
            field: None,
            message: "the body is a JSON object".into(),
        });
    }
    Ok(value)
}

/// A numeric id in the path; anything else names nothing (404).
fn path_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .map_err(|_| ApiError::NotFound(format!("no {what} has the id {text:?}")))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    name: String,
    scope: String,
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

/// `GET /api/v1/admin/retention`: the policy, when the sweeper runs next, its last runs.
#[utoipa::path(
    get, path = "/api/v1/admin/retention", tag = "admin",
    responses(
        (status = 200, description = "`{default_days, pipelines, interval_seconds, next_run_at, runs}`", body = RetentionState),
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
        (status = 200, description = "Saved: the state as `GET` answers it", body = RetentionState),
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

/// `GET /api/v1/admin/usage?since&until` (RFC 3339; default the last 30 days): per UTC day
/// and pipeline.
#[utoipa::path(
    get, path = "/api/v1/admin/usage", tag = "admin",
    params(
        ("since" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD; default 30 days before until; counts cover whole UTC days"),
        ("until" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD, excluded; default now"),
    ),
    responses(
        (status = 200, description = "Per day and pipeline: flows, steps, observations, bytes accepted; rejected, rate_limited, replayed", body = Usage),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 422, description = "A time that is not RFC 3339, since after until, or over 400 days", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<Usage>, ApiError> {
    let pairs = query_pairs(query.as_deref().unwrap_or_default())?;
    let time = |name: &str| -> Result<Option<OffsetDateTime>, ApiError> {
        let values: Vec<&String> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        match values.as_slice() {
            [] => Ok(None),
            [value] => OffsetDateTime::parse(value, &Rfc3339)
                .or_else(|_| {
                    let format = time::macros::format_description!("[year]-[month]-[day]");
                    time::Date::parse(value, format).map(|d| d.midnight().assume_utc())
                })
                .map(Some)
                .map_err(|_| {
                    ApiError::invalid(
                        name,
                        format!("{name} is an RFC 3339 time or a date (YYYY-MM-DD)"),
                    )
                }),
            _ => Err(ApiError::invalid(name, format!("give {name} once"))),
        }
    };
    let until = time("until")?.unwrap_or_else(OffsetDateTime::now_utc);
    let since = time("since")?.unwrap_or(until - time::Duration::days(30));
    if since > until {
        return Err(ApiError::invalid("since", "since is after until"));
    }
    Ok(Json(
        state.services.usage(caller.team_id, since, until).await?,
    ))
}

#[derive(Serialize)]
pub(crate) struct DeadLetters {
    pub dead_letters: Vec<DeadLetter>,
}

/// `GET /api/v1/admin/dead-letters?limit=`: the team's dead jobs, newest first.
#[utoipa::path(
    get, path = "/api/v1/admin/dead-letters", tag = "admin",
    params(("limit" = Option<u32>, Query, description = "1 to 1000, default 100")),
    responses(
        (status = 200, description = "`{\"dead_letters\": [{id, team_id, flow_id, flow_version, attempts, last_error, request_id, enqueued_at, died_at}]}`", body = Object),
        (status = 401, description = "Not signed in", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin (or a key without scope all)", body = flowtrail_types::ErrorBody),
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
    request_body(content = Object, description = "`{\"id\": <job id>}`, or nothing for every dead job of the team"),
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
    let body: RedriveBody = if body.iter().all(u8::is_ascii_whitespace) {
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
