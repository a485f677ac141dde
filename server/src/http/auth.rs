//! Who is calling: an API key (`Authorization: Bearer …`) or a dashboard session.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use flowtrail_domain::accounts::{
    Role, SESSION_SIGNED_IN_KEY, SESSION_TEAM_KEY, SESSION_USER_KEY, Scope, session_user_id,
};
use tower_sessions::Session;

use super::error::ApiError;
use crate::state::AppState;

/// The team a request acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub team_id: i64,
    pub team: String,
    /// The API key used, if any (rate limits are per key).
    pub key_id: Option<i64>,
}

/// A caller allowed to ingest: an API key with scope `ingest` or `all`.
pub struct Ingester(pub Caller);

/// A caller allowed to read: an API key with scope `read` or `all`, or a signed-in member.
pub struct Reader(pub Caller);

/// A team admin: a signed-in member with role admin, or an API key with scope `admin`.
pub struct Admin(pub Caller);

/// A caller allowed to change flows' marks (pins): a signed-in member or admin (not a
/// viewer), or an API key with scope `all`.
pub struct Editor(pub Caller);

/// The bearer token, if the request carries one; a malformed header is an error.
fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    bearer_token(parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes()))
}

/// The token of an `Authorization: Bearer …` value (an HTTP header or gRPC metadata), if
/// there is one; a value of another form is an error.
pub(crate) fn bearer_token(value: Option<&[u8]>) -> Result<Option<&str>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = std::str::from_utf8(value)
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "use the header Authorization: Bearer <api key>".into(),
        )),
    }
}

/// The caller of an ingest request (native or OTLP) from its bearer token: an API key with
/// scope `ingest` or `all`. Errors: 401 without a known key, 403 for another scope.
pub(crate) async fn ingest_caller(
    state: &AppState,
    secret: Option<&str>,
) -> Result<Caller, ApiError> {
    let secret = secret.ok_or_else(|| {
        ApiError::Unauthorized(
            "sending flows needs an API key: Authorization: Bearer <api key>".into(),
        )
    })?;
    let key = api_key(state, secret).await?;
    if !key.scope.allows_ingest() {
        return Err(ApiError::Forbidden(format!(
            "this API key has scope {}; sending flows needs scope ingest or all",
            key.scope.as_str()
        )));
    }
    Ok(Caller {
        team_id: key.team.id,
        team: key.team.slug,
        key_id: Some(key.id),
    })
}

async fn api_key(
    state: &AppState,
    secret: &str,
) -> Result<flowtrail_domain::accounts::ApiKey, ApiError> {
    state
        .services
        .api_key(secret)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this API key is unknown or has been revoked".into()))
}

impl FromRequestParts<AppState> for Ingester {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Ingester(ingest_caller(state, bearer(parts)?).await?))
    }
}

/// The signed-in user's membership in the team their session works in (the team switcher's
/// choice, else their first team), read from the database on every request: a removed
/// member or a changed role takes effect on their next request.
async fn session_membership(
    parts: &mut Parts,
    state: &AppState,
) -> Result<flowtrail_domain::accounts::Membership, ApiError> {
    let unauthorized =
        || ApiError::Unauthorized("sign in, or send Authorization: Bearer <api key>".into());
    let session = Session::from_request_parts(parts, state)
        .await
        .map_err(|_| unauthorized())?;
    let user_id: Option<i64> = session.get(SESSION_USER_KEY).await.map_err(|error| {
        tracing::warn!(%error, "session store failed");
        ApiError::Unavailable {
            retry_after: 1,
            message: "sessions are unavailable right now".into(),
        }
    })?;
    let since: Option<i64> = session.get(SESSION_SIGNED_IN_KEY).await.unwrap_or_default();
    let user_id = session_user_id(user_id, since, flowtrail_domain::millis::now_ms());
    let team_id: Option<i64> = session.get(SESSION_TEAM_KEY).await.unwrap_or_default();
    let user = match user_id {
        Some(id) => state.services.metadata.user_by_id(id).await?,
        None => None,
    };
    user.and_then(|u| u.membership(team_id).cloned())
        .ok_or_else(unauthorized)
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(secret) = bearer(parts)? {
            let key = api_key(state, secret).await?;
            if key.scope != Scope::Admin {
                return Err(ApiError::Forbidden(format!(
                    "this API key has scope {}; administration needs scope admin",
                    key.scope.as_str()
                )));
            }
            return Ok(Admin(Caller {
                team_id: key.team.id,
                team: key.team.slug,
                key_id: Some(key.id),
            }));
        }
        let membership = session_membership(parts, state).await?;
        if membership.role != Role::Admin {
            return Err(ApiError::Forbidden(
                "this needs the admin role in the team".into(),
            ));
        }
        Ok(Admin(Caller {
            team_id: membership.team.id,
            team: membership.team.slug,
            key_id: None,
        }))
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(secret) = bearer(parts)? {
            let key = api_key(state, secret).await?;
            if !key.scope.allows_read() {
                return Err(ApiError::Forbidden(format!(
                    "this API key has scope {}; reading needs scope read or all",
                    key.scope.as_str()
                )));
            }
            return Ok(Reader(Caller {
                team_id: key.team.id,
                team: key.team.slug,
                key_id: Some(key.id),
            }));
        }
        let membership = session_membership(parts, state).await?;
        Ok(Reader(Caller {
            team_id: membership.team.id,
            team: membership.team.slug,
            key_id: None,
        }))
    }
}

impl FromRequestParts<AppState> for Editor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(secret) = bearer(parts)? {
            let key = api_key(state, secret).await?;
            if key.scope != Scope::All {
                return Err(ApiError::Forbidden(format!(
                    "this API key has scope {}; pinning needs scope all",
                    key.scope.as_str()
                )));
            }
            return Ok(Editor(Caller {
                team_id: key.team.id,
                team: key.team.slug,
                key_id: Some(key.id),
            }));
        }
        let membership = session_membership(parts, state).await?;
        if membership.role == Role::Viewer {
            return Err(ApiError::Forbidden(
                "viewers read; pinning needs the member or admin role".into(),
            ));
        }
        Ok(Editor(Caller {
            team_id: membership.team.id,
            team: membership.team.slug,
            key_id: None,
        }))
    }
}
