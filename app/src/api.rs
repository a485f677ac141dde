//! Server functions of the dashboard. Each checks the session, then calls the domain.

use flowtrail_types::{FlowDetail, FlowPage};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

pub mod admin;
pub mod insights;
mod list_params;
mod session;
#[cfg(feature = "ssr")]
pub mod ssr;

pub use list_params::ListParams;
pub use session::{SessionUser, TeamChoice, is_local_path};

// The server functions stay in this module: a server function's URL ends in a hash of its
// module path, and moving one would change the address every client calls.

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
