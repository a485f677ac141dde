//! Server functions of the dashboard. Each checks the session, then calls the domain.

use flowtrail_types::{FlowDetail, FlowPage};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
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

/// The flows list's filters, as the page's URL carries them (see `pages::flows`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowFilters {
    pub pipeline: Option<String>,
    pub status: Option<String>,
    /// `key:value` pairs, separated by spaces.
    pub tags: Option<String>,
    /// RFC 3339, or `YYYY-MM-DDTHH:MM` read as UTC.
    pub since: Option<String>,
    pub until: Option<String>,
    pub q: Option<String>,
    pub step_kind: Option<String>,
    /// A share (0–1) or a percentage (above 1).
    pub min_eliminated: Option<String>,
    pub cursor: Option<String>,
}

impl FlowFilters {
    /// True when some filter (not the cursor) is set.
    pub fn any(&self) -> bool {
        [
            &self.pipeline,
            &self.status,
            &self.tags,
            &self.since,
            &self.until,
            &self.q,
            &self.step_kind,
            &self.min_eliminated,
        ]
        .iter()
        .any(|v| v.is_some())
    }

    /// The `key:value` tag pairs; a word without `:` is ignored.
    pub fn tag_pairs(&self) -> Vec<(String, String)> {
        self.tags
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|pair| pair.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The elimination share asked for, 0–1.
    pub fn min_share(&self) -> Option<f64> {
        let value: f64 = self.min_eliminated.as_deref()?.trim().parse().ok()?;
        let share = if value > 1.0 { value / 100.0 } else { value };
        (0.0..=1.0).contains(&share).then_some(share)
    }

    /// Whether a flow that arrives live belongs in this list. Filters the browser cannot
    /// judge (text, time, eliminations) answer `None`: the page offers a refresh instead.
    pub fn admits(&self, flow: &flowtrail_types::FlowSummary) -> Option<bool> {
        if self.since.is_some() || self.until.is_some() || self.q.is_some() {
            return None;
        }
        if self.step_kind.is_some() || self.min_eliminated.is_some() {
            return None;
        }
        let pipeline = self.pipeline.as_ref().is_none_or(|p| *p == flow.pipeline);
        let status = self
            .status
            .as_ref()
            .is_none_or(|s| s == flow.status.as_str());
        let tags = self
            .tag_pairs()
            .iter()
            .all(|(k, v)| flow.tags.get(k) == Some(v));
        Some(pipeline && status && tags)
    }
}

/// Reads `YYYY-MM-DDTHH:MM[:SS]` (as UTC) or RFC 3339.
pub fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    let padded = match text.len() {
        16 => format!("{text}:00Z"),
        19 => format!("{text}Z"),
        10 => format!("{text}T00:00:00Z"),
        _ => return None,
    };
    time::OffsetDateTime::parse(&padded, &Rfc3339).ok()
}

/// One page of the team's flows. JSON in: a URL-encoded body drops a struct whose fields are
/// all empty, and the server could not tell "no filters" from a missing argument.
#[server(prefix = "/fn", input = Json)]
pub async fn list_flows(filters: FlowFilters) -> Result<FlowPage, ServerFnError> {
    use flowtrail_domain::store::{FlowCursor, FlowQuery};
    use flowtrail_types::{FlowStatus, StepKind};
    let (_, membership) = ssr::signed_in().await?;
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let time = |name: &str, v: &Option<String>| match nonempty(v) {
        None => Ok(None),
        Some(text) => parse_time(&text).map(Some).ok_or_else(|| {
            ServerFnError::new(format!(
                "{name} {text:?} is not a time: use RFC 3339 or YYYY-MM-DDTHH:MM (UTC)."
            ))
        }),
    };
    let status = match nonempty(&filters.status) {
        None => None,
        Some(s) => Some(FlowStatus::parse(&s).ok_or_else(|| {
            ServerFnError::new(format!(
                "{s:?} is not a status (running, succeeded, failed)."
            ))
        })?),
    };
    let step_kind = match nonempty(&filters.step_kind) {
        None => None,
        Some(k) => Some(
            StepKind::parse(&k)
                .ok_or_else(|| ServerFnError::new(format!("{k:?} is not a step kind.")))?,
        ),
    };
    let min_eliminated = match nonempty(&filters.min_eliminated) {
        None => None,
        Some(text) => Some(filters.min_share().ok_or_else(|| {
            ServerFnError::new(format!(
                "{text:?} is not a share of eliminated candidates: use 0-1 or a percentage."
            ))
        })?),
    };
    let query = FlowQuery {
        pipeline: nonempty(&filters.pipeline),
        status,
        tags: filters.tag_pairs(),
        since: time("since", &filters.since)?,
        until: time("until", &filters.until)?,
        text: nonempty(&filters.q),
        step_kind,
        min_eliminated,
        cursor: nonempty(&filters.cursor).and_then(|c| FlowCursor::decode(&c)),
        limit: 50,
    };
    ssr::services()?
        .metadata
        .list_flows(membership.team.id, &query)
        .await
        .map_err(ssr::internal)
}

/// The run of the same pipeline just before `id`, if any.
#[server(prefix = "/fn")]
pub async fn previous_flow(id: String) -> Result<Option<String>, ServerFnError> {
    use flowtrail_domain::store::{FlowCursor, FlowQuery};
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
    let query = FlowQuery {
        pipeline: Some(flow.summary.pipeline.clone()),
        cursor: Some(FlowCursor {
            started_at_ms: (flow.summary.started_at.unix_timestamp_nanos() / 1_000_000) as i64,
            id,
        }),
        limit: 1,
        ..FlowQuery::default()
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
        flowtrail_domain::query::journey(&*ssr::services()?, membership.team.id, id, &candidate)
            .await
            .map_err(ssr::internal)?
            .ok_or_else(|| ServerFnError::new("No such flow in your team."))?;
    Ok(crate::pages::flow::render::journey(journey))
}

/// What differs between two flows, step by step, rendered by the server (see
/// `pages::compare::render`).
#[server(prefix = "/fn")]
pub async fn compare_html(a: String, b: String) -> Result<String, ServerFnError> {
    let (_, membership) = ssr::signed_in().await?;
    let (a, b) = (flow_id(&a)?, flow_id(&b)?);
    let diff = flowtrail_domain::query::diff(&*ssr::services()?, membership.team.id, a, b)
        .await
        .map_err(ssr::internal)?
        .ok_or_else(|| ServerFnError::new("One of the two flows is not in your team."))?;
    Ok(crate::pages::compare::render::compare(diff))
}

/// A flow id from the address, or an error saying so.
pub fn flow_id(text: &str) -> Result<uuid::Uuid, ServerFnError> {
    uuid::Uuid::try_parse(text.trim())
        .map_err(|_| ServerFnError::new(format!("{text:?} is not a flow id.")))
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
        .ok_or_else(|| ServerFnError::new("No such flow in your team."))
}
