//! Server-side helpers of the server functions.

use std::sync::Arc;

use flowtrail_domain::Services;
use flowtrail_domain::accounts::{Membership, User};
use flowtrail_domain::accounts::{SESSION_TEAM_KEY, SESSION_USER_KEY};
use leptos::prelude::*;
use tower_sessions::Session;

/// The domain services, provided by the server as context.
pub fn services() -> Result<Arc<Services>, ServerFnError> {
    use_context::<Arc<Services>>().ok_or_else(|| ServerFnError::new("services are not configured"))
}

pub async fn session() -> Result<Session, ServerFnError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|_| ServerFnError::new("sessions are not configured"))
}

/// The signed-in user and the team their session works in (the team switcher's choice
/// while they still belong to it, else their first team), read from the database on
/// every call: a removed member or a changed role takes effect on the next request. An
/// error asks to sign in (401; 403 for a user of no team).
pub async fn signed_in() -> Result<(User, Membership), ServerFnError> {
    let user = session_user()
        .await?
        .ok_or_else(|| refuse(http::StatusCode::UNAUTHORIZED, "Please sign in."))?;
    let team_id: Option<i64> = session()
        .await?
        .get(SESSION_TEAM_KEY)
        .await
        .unwrap_or_default();
    let membership = user.membership(team_id).cloned().ok_or_else(|| {
        refuse(
            http::StatusCode::FORBIDDEN,
            "You are not a member of any team.",
        )
    })?;
    Ok((user, membership))
}

/// The user of this request's session, if any (no refusal: a page may ask who is there).
pub async fn session_user() -> Result<Option<User>, ServerFnError> {
    let session = session().await?;
    let user_id: Option<i64> = session
        .get(SESSION_USER_KEY)
        .await
        .map_err(|_| ServerFnError::new("the session could not be read"))?;
    // Past its absolute lifetime a session stands for no one.
    let since: Option<i64> = session
        .get(flowtrail_domain::accounts::SESSION_SIGNED_IN_KEY)
        .await
        .unwrap_or_default();
    let user_id = flowtrail_domain::accounts::session_user_id(
        user_id,
        since,
        flowtrail_domain::millis::now_ms(),
    );
    let services = services()?;
    match user_id {
        Some(id) => services.metadata.user_by_id(id).await.map_err(internal),
        None => Ok(None),
    }
}

/// A refusal the caller caused: the answer's status is `status` (a 4xx, never the 500 a
/// server function's error gets by default) and its message `message`.
///
/// Not for a browser that posted a form without JavaScript, nor while a page renders
/// (both accept `text/html`): Leptos answers the first with a redirect back to the form
/// carrying the error, which a 4xx would stop browsers from following; a page keeps its
/// own status.
pub fn refuse(status: http::StatusCode, message: impl Into<String>) -> ServerFnError {
    let wants_html = use_context::<http::request::Parts>().is_some_and(|parts| {
        parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
    });
    if !wants_html && let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(status);
    }
    ServerFnError::new(message.into())
}

/// Logs the real error and tells the browser only that something failed.
pub fn internal(error: flowtrail_domain::Error) -> ServerFnError {
    tracing::error!(%error, "server function failed");
    ServerFnError::new("Something went wrong on the server; it has been logged.")
}

/// A domain error as the caller should see it: a broken rule (422), a conflict such as
/// the team's last admin (409) and a missing thing (404) say what happened; anything
/// else is [`internal`].
pub fn domain(error: flowtrail_domain::Error) -> ServerFnError {
    use flowtrail_domain::Error;
    match error {
        Error::Validation { message, .. } => {
            refuse(http::StatusCode::UNPROCESSABLE_ENTITY, message)
        }
        Error::Conflict(message) => refuse(http::StatusCode::CONFLICT, message),
        Error::NotFound(what) => refuse(
            http::StatusCode::NOT_FOUND,
            format!("No such {what} in your team."),
        ),
        other => internal(other),
    }
}

/// The team the session works in, when the user is an admin of it; otherwise 403 (401
/// without a session). Every admin server function starts with it.
pub async fn admin() -> Result<Membership, ServerFnError> {
    let (_, membership) = signed_in().await?;
    if membership.role != flowtrail_domain::accounts::Role::Admin {
        return Err(refuse(
            http::StatusCode::FORBIDDEN,
            "You need the admin role of this team.",
        ));
    }
    Ok(membership)
}
