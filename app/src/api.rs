//! Server functions of the dashboard. Each checks the session, then calls the domain.

use flowtrail_types::{FlowDetail, FlowPage, Observation};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Who is signed in, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub email: String,
    pub team: String,
    pub role: String,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Server-side helpers of the server functions.

    use std::sync::Arc;

    use flowtrail_domain::Services;
    use flowtrail_domain::auth::SESSION_USER_KEY;
    use flowtrail_domain::store::{Membership, User};
    use leptos::prelude::*;
    use tower_sessions::Session;

    /// The domain services, provided by the server as context.
    pub fn services() -> Result<Arc<Services>, ServerFnError> {
        use_context::<Arc<Services>>()
            .ok_or_else(|| ServerFnError::new("services are not configured"))
    }

    pub async fn session() -> Result<Session, ServerFnError> {
        leptos_axum::extract::<Session>()
            .await
            .map_err(|_| ServerFnError::new("sessions are not configured"))
    }

    /// The signed-in user and their (first) team, or an error asking to sign in.
    pub async fn signed_in() -> Result<(User, Membership), ServerFnError> {
        let session = session().await?;
        let user_id: Option<i64> = session
            .get(SESSION_USER_KEY)
            .await
            .map_err(|_| ServerFnError::new("the session could not be read"))?;
        let services = services()?;
        let user = match user_id {
            Some(id) => services.metadata.user_by_id(id).await.map_err(internal)?,
            None => None,
        };
        let user = user.ok_or_else(|| ServerFnError::new("Please sign in."))?;
        let membership = user
            .memberships
            .first()
            .cloned()
            .ok_or_else(|| ServerFnError::new("You are not a member of any team."))?;
        Ok((user, membership))
    }

    /// Logs the real error and tells the browser only that something failed.
    pub fn internal(error: flowtrail_domain::Error) -> ServerFnError {
        tracing::error!(%error, "server function failed");
        ServerFnError::new("Something went wrong on the server; it has been logged.")
    }
}

/// Signs in with e-mail and password, then goes to `next` (a local path) or `/`.
#[server(prefix = "/fn")]
pub async fn login(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    use flowtrail_domain::auth::SESSION_USER_KEY;
    let services = ssr::services()?;
    let user = services
        .authenticate(&email, &password)
        .await
        .map_err(ssr::internal)?
        .ok_or_else(|| ServerFnError::new("Wrong e-mail or password."))?;
    let session = ssr::session().await?;
    // A new session id at sign-in defeats session fixation.
    session
        .cycle_id()
        .await
        .map_err(|_| ServerFnError::new("the session could not be renewed"))?;
    session
        .insert(SESSION_USER_KEY, user.id)
        .await
        .map_err(|_| ServerFnError::new("the session could not be saved"))?;
    let next = next
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    leptos_axum::redirect(&next);
    Ok(())
}

/// Ends the session.
#[server(prefix = "/fn")]
pub async fn logout() -> Result<(), ServerFnError> {
    let session = ssr::session().await?;
    session
        .flush()
        .await
        .map_err(|_| ServerFnError::new("the session could not be ended"))?;
    leptos_axum::redirect("/login");
    Ok(())
}

/// The signed-in user, if any.
#[server(prefix = "/fn")]
pub async fn current_user() -> Result<Option<SessionUser>, ServerFnError> {
    Ok(ssr::signed_in()
        .await
        .ok()
        .map(|(user, membership)| SessionUser {
            email: user.email,
            team: membership.team.slug,
            role: membership.role.as_str().into(),
        }))
}

/// One page of the team's flows.
#[server(prefix = "/fn")]
pub async fn list_flows(
    pipeline: Option<String>,
    status: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
) -> Result<FlowPage, ServerFnError> {
    use flowtrail_domain::store::{FlowCursor, FlowQuery};
    use flowtrail_types::FlowStatus;
    let (_, membership) = ssr::signed_in().await?;
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let query = FlowQuery {
        pipeline: nonempty(pipeline),
        status: nonempty(status).and_then(|s| FlowStatus::parse(&s)),
        text: nonempty(q),
        cursor: nonempty(cursor).and_then(|c| FlowCursor::decode(&c)),
        limit: 50,
        ..FlowQuery::default()
    };
    ssr::services()?
        .metadata
        .list_flows(membership.team.id, &query)
        .await
        .map_err(ssr::internal)
}

/// A flow with its steps.
#[server(prefix = "/fn")]
pub async fn get_flow(id: String) -> Result<FlowDetail, ServerFnError> {
    let (_, membership) = ssr::signed_in().await?;
    let id = uuid::Uuid::try_parse(&id)
        .map_err(|_| ServerFnError::new(format!("{id:?} is not a flow id.")))?;
    ssr::services()?
        .metadata
        .get_flow(membership.team.id, id)
        .await
        .map_err(ssr::internal)?
        .ok_or_else(|| ServerFnError::new("No such flow in your team."))
}

/// A step's observations.
#[server(prefix = "/fn")]
pub async fn get_observations(id: String, seq: u32) -> Result<Vec<Observation>, ServerFnError> {
    let (_, membership) = ssr::signed_in().await?;
    let id = uuid::Uuid::try_parse(&id)
        .map_err(|_| ServerFnError::new(format!("{id:?} is not a flow id.")))?;
    let services = ssr::services()?;
    let payload = services
        .metadata
        .step_payload(membership.team.id, id, seq)
        .await
        .map_err(ssr::internal)?
        .ok_or_else(|| ServerFnError::new("No such step."))?;
    let Some(payload) = payload else {
        return Ok(Vec::new());
    };
    let json = services
        .payloads
        .get_json(&payload)
        .await
        .map_err(ssr::internal)?;
    serde_json::from_slice(&json).map_err(|e| ServerFnError::new(e.to_string()))
}
