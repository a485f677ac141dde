//! Server functions of the dashboard. Each checks the session, then calls the domain.

use flowtrail_types::{FlowDetail, FlowPage};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

pub mod admin;

/// Who is signed in, as the dashboard shows it: the team the session works in and every team
/// the user could switch to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub email: String,
    /// The current team's slug.
    pub team: String,
    pub team_id: i64,
    /// The role in the current team: `admin`, `member` or `viewer`.
    pub role: String,
    /// Every team of the user, the current one included, in membership order.
    pub teams: Vec<TeamChoice>,
}

impl SessionUser {
    /// Whether this user administers the current team.
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }

    /// Whether this user may pin flows of the current team (members and admins).
    pub fn can_pin(&self) -> bool {
        self.role == "admin" || self.role == "member"
    }
}

/// A team the signed-in user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamChoice {
    pub id: i64,
    pub slug: String,
    pub role: String,
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn sign_in_sends_only_to_local_paths() {
        for ok in ["/", "/flows/1?step=2", "/?q=a%2Fb"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "//example.org/x",
            "/\\example.org/x",
            "/\\/example.org",
            "https://example.org",
            "example.org",
            "/\t/example.org",
            "/ x",
            "",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Server-side helpers of the server functions.

    use std::sync::Arc;

    use flowtrail_domain::Services;
    use flowtrail_domain::accounts::{Membership, User};
    use flowtrail_domain::accounts::{SESSION_TEAM_KEY, SESSION_USER_KEY};
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
}

/// Whether `next` is a path on this site that sign-in may send the browser to: it starts with
/// one `/`, holds no `\` and no control character or space, and is at most 2,048 bytes. Browsers read `//host` and
/// `/\host` as another site (WHATWG URL Standard, "special authority slashes"; OWASP
/// "Unvalidated Redirects and Forwards"), so anything else goes to `/`.
pub fn is_local_path(next: &str) -> bool {
    next.len() <= 2048
        && next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Signs in with e-mail and password, then goes to `next` (a local path, [`is_local_path`])
/// or `/`.
#[server(prefix = "/fn")]
pub async fn login(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    use flowtrail_domain::accounts::SignIn;
    use flowtrail_domain::accounts::{SESSION_TEAM_KEY, SESSION_USER_KEY};
    let services = ssr::services()?;
    // The client's address, when the server was started with it (not in router tests).
    let client = leptos_axum::extract::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .await
        .ok()
        .map(|info| info.0.ip());
    let user = match services
        .sign_in(&email, &password, client)
        .await
        .map_err(ssr::internal)?
    {
        SignIn::Accepted(user) => user,
        SignIn::Refused => {
            return Err(ssr::refuse(
                http::StatusCode::UNAUTHORIZED,
                "Wrong e-mail or password.",
            ));
        }
        SignIn::Throttled(wait) => {
            let seconds = wait.as_secs() + 1;
            if let Some(options) = use_context::<leptos_axum::ResponseOptions>()
                && let Ok(value) = http::HeaderValue::from_str(&seconds.to_string())
            {
                options.insert_header(http::header::RETRY_AFTER, value);
            }
            return Err(ssr::refuse(
                http::StatusCode::TOO_MANY_REQUESTS,
                format!("Too many sign-in attempts; try again in {seconds} s."),
            ));
        }
    };
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
    // A new sign-in starts in the user's first team, whoever used this browser before.
    let _ = session.remove::<i64>(SESSION_TEAM_KEY).await;
    session
        .insert(
            flowtrail_domain::accounts::SESSION_SIGNED_IN_KEY,
            flowtrail_domain::millis::now_ms(),
        )
        .await
        .map_err(|_| ServerFnError::new("the session could not be saved"))?;
    let next = next
        .filter(|n| is_local_path(n))
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

/// The signed-in user with the team their session works in (see [`ssr::signed_in`]), if
/// any; `None` as well for a user of no team.
#[server(prefix = "/fn")]
pub async fn current_user() -> Result<Option<SessionUser>, ServerFnError> {
    use flowtrail_domain::accounts::SESSION_TEAM_KEY;
    let Some(user) = ssr::session_user().await? else {
        return Ok(None);
    };
    let team_id: Option<i64> = ssr::session()
        .await?
        .get(SESSION_TEAM_KEY)
        .await
        .unwrap_or_default();
    let Some(current) = user.membership(team_id).cloned() else {
        return Ok(None);
    };
    let teams = user
        .memberships
        .iter()
        .map(|m| TeamChoice {
            id: m.team.id,
            slug: m.team.slug.clone(),
            role: m.role.as_str().into(),
        })
        .collect();
    Ok(Some(SessionUser {
        email: user.email,
        team: current.team.slug,
        team_id: current.team.id,
        role: current.role.as_str().into(),
        teams,
    }))
}

/// Makes `team_id` the team this session works in (the header's team switcher); refused
/// (403) unless the user belongs to it. The page reloads to show that team.
#[server(prefix = "/fn")]
pub async fn switch_team(team_id: i64) -> Result<(), ServerFnError> {
    use flowtrail_domain::accounts::SESSION_TEAM_KEY;
    let (user, _) = ssr::signed_in().await?;
    if !user.memberships.iter().any(|m| m.team.id == team_id) {
        return Err(ssr::refuse(
            http::StatusCode::FORBIDDEN,
            "You are not a member of that team.",
        ));
    }
    ssr::session()
        .await?
        .insert(SESSION_TEAM_KEY, team_id)
        .await
        .map_err(|_| ServerFnError::new("the session could not be saved"))?;
    Ok(())
}

/// Pins (`pinned` true) or unpins a flow of the team: retention never deletes a pinned flow.
/// Members and admins may; viewers are refused (403). Answers the flow's new state.
#[server(prefix = "/fn")]
pub async fn set_pin(id: String, pinned: bool) -> Result<bool, ServerFnError> {
    use flowtrail_domain::accounts::Role;
    let (_, membership) = ssr::signed_in().await?;
    if membership.role == Role::Viewer {
        return Err(ssr::refuse(
            http::StatusCode::FORBIDDEN,
            "Viewers cannot pin flows; a member or an admin can.",
        ));
    }
    let id = flow_id(&id)?;
    ssr::services()?
        .set_pinned(membership.team.id, id, pinned)
        .await
        .map_err(ssr::domain)?;
    Ok(pinned)
}

/// The flows list's parameters as the page's URL carries them: raw text, for the form. They
/// are parsed only by the flows list's one vocabulary, [`flowtrail_types::FlowFilters`] — the
/// parser of `GET /api/v1/flows` — so the dashboard accepts and refuses exactly what the API
/// does, with the same messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListParams {
    pub pipeline: Option<String>,
    pub status: Option<String>,
    /// Each `key:value` (the URL's repeated `tag`).
    pub tags: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub q: Option<String>,
    pub step_kind: Option<String>,
    /// A share (`0.9`) or a percentage (`90%`).
    pub min_eliminated: Option<String>,
    pub cursor: Option<String>,
}

impl ListParams {
    /// The named, non-empty parameters in URL order (tags repeated).
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = Vec::new();
        for (name, value) in [
            ("pipeline", &self.pipeline),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
            ("q", &self.q),
            ("step_kind", &self.step_kind),
            ("min_eliminated", &self.min_eliminated),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                pairs.push((name, value));
            }
        }
        for tag in self.tags.iter().filter(|t| !t.trim().is_empty()) {
            pairs.push(("tag", tag.as_str()));
        }
        if let Some(cursor) = self.cursor.as_deref().filter(|v| !v.trim().is_empty()) {
            pairs.push(("cursor", cursor));
        }
        pairs
    }

    /// The filters these parameters mean, or the API's error for the first bad one.
    pub fn parse(&self) -> Result<flowtrail_types::FlowFilters, flowtrail_types::FilterError> {
        flowtrail_types::FlowFilters::from_pairs(self.pairs())
    }

    /// True when some filter (not the cursor) is set.
    pub fn any(&self) -> bool {
        self.pairs().iter().any(|(name, _)| *name != "cursor")
    }

    /// Whether a flow that arrives live belongs in this list (see
    /// [`flowtrail_types::FlowFilters::admits`]); `None` when it cannot be judged here.
    pub fn admits(&self, flow: &flowtrail_types::FlowSummary) -> Option<bool> {
        self.parse().ok()?.admits(flow)
    }

    /// This view's address with another cursor (the next page).
    pub fn href_with_cursor(&self, cursor: &str) -> String {
        let mut href = format!("/?cursor={}", crate::format::encode(cursor));
        for (name, value) in self.pairs() {
            if name != "cursor" {
                href.push_str(&format!("&{name}={}", crate::format::encode(value)));
            }
        }
        href
    }
}

/// One page of the team's flows. JSON in: a URL-encoded body drops a struct whose fields are
/// all empty, and the server could not tell "no filters" from a missing argument.
#[server(prefix = "/fn", input = Json)]
pub async fn list_flows(params: ListParams) -> Result<FlowPage, ServerFnError> {
    let (_, membership) = ssr::signed_in().await?;
    let filters = params
        .parse()
        .map_err(|e| ssr::refuse(http::StatusCode::UNPROCESSABLE_ENTITY, e.message))?;
    ssr::services()?
        .metadata
        .list_flows(membership.team.id, &filters)
        .await
        .map_err(ssr::internal)
}

/// The run of the same pipeline just before `id`, if any.
#[server(prefix = "/fn")]
pub async fn previous_flow(id: String) -> Result<Option<String>, ServerFnError> {
    use flowtrail_types::{FlowCursor, FlowFilters};
    let (_, membership) = ssr::signed_in().await?;
    let id = flow_id(&id)?;
    let services = ssr::services()?;
    let Some(flow) = services
        .metadata
        .get_flow(membership.team.id, id)
        .await
        .map_err(ssr::internal)?
    else {
        return Ok(None);
    };
    let query = FlowFilters {
        pipeline: Some(flow.summary.pipeline.clone()),
        cursor: Some(FlowCursor {
            started_at_ms: flowtrail_domain::millis::to_ms(flow.summary.started_at),
            id,
        }),
        limit: 1,
        ..FlowFilters::default()
    };
    let page = services
        .metadata
        .list_flows(membership.team.id, &query)
        .await
        .map_err(ssr::internal)?;
    Ok(page.flows.first().map(|f| f.id.to_string()))
}

/// A candidate's journey through a flow's steps, rendered by the server (see
/// `pages::flow::render`).
#[server(prefix = "/fn")]
pub async fn journey_html(id: String, candidate: String) -> Result<String, ServerFnError> {
    let (_, membership) = ssr::signed_in().await?;
    let id = flow_id(&id)?;
    let journey =
        flowtrail_domain::analysis::journey(&*ssr::services()?, membership.team.id, id, &candidate)
            .await
            .map_err(ssr::internal)?
            .ok_or_else(|| {
                ssr::refuse(http::StatusCode::NOT_FOUND, "No such flow in your team.")
            })?;
    Ok(crate::pages::flow::render::journey(journey))
}

/// What differs between two flows, step by step, rendered by the server (see
/// `pages::compare::render`).
#[server(prefix = "/fn")]
pub async fn compare_html(a: String, b: String) -> Result<String, ServerFnError> {
    let (_, membership) = ssr::signed_in().await?;
    let (a, b) = (flow_id(&a)?, flow_id(&b)?);
    let diff = flowtrail_domain::analysis::diff(&*ssr::services()?, membership.team.id, a, b)
        .await
        .map_err(ssr::internal)?
        .ok_or_else(|| {
            ssr::refuse(
                http::StatusCode::NOT_FOUND,
                "One of the two flows is not in your team.",
            )
        })?;
    Ok(crate::pages::compare::render::compare(diff))
}

/// A flow id from the address, or an error saying so.
pub fn flow_id(text: &str) -> Result<uuid::Uuid, ServerFnError> {
    uuid::Uuid::try_parse(text.trim()).map_err(|_| {
        let message = format!("{text:?} is not a flow id.");
        #[cfg(feature = "ssr")]
        return ssr::refuse(http::StatusCode::NOT_FOUND, message);
        #[cfg(not(feature = "ssr"))]
        ServerFnError::new(message)
    })
}

/// A flow with its steps.
#[server(prefix = "/fn")]
pub async fn get_flow(id: String) -> Result<FlowDetail, ServerFnError> {
    let (_, membership) = ssr::signed_in().await?;
    let id = flow_id(&id)?;
    ssr::services()?
        .metadata
        .get_flow(membership.team.id, id)
        .await
        .map_err(ssr::internal)?
        .ok_or_else(|| ssr::refuse(http::StatusCode::NOT_FOUND, "No such flow in your team."))
}
