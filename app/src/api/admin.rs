//! Server functions of the admin pages (`/admin/…`): members, API keys, retention, dead
//! letters and usage of the session's team. Each one checks by itself that the caller is an
//! admin of that team ([`ssr::admin`]), then calls the domain — the same rules as
//! `/api/v1/admin/…`.

use flowtrail_types::admin::{
    AddedMember, ApiKeyInfo, CreatedApiKey, Member, RetentionPolicy, RetentionPreview,
    RetentionState, Usage,
};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[cfg(feature = "ssr")]
use super::ssr;

/// Most dead letters listed.
pub const DEAD_LETTER_LIMIT: u32 = 200;

/// Days the usage page shows by default: the last 30, today included.
pub const DEFAULT_USAGE_DAYS: i64 = 30;

/// A job that failed for good, as the dead-letters page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRow {
    pub id: i64,
    pub flow_id: String,
    pub flow_version: u32,
    pub attempts: u32,
    pub last_error: Option<String>,
    #[serde(default, with = "flowtrail_types::rfc3339::option")]
    pub died_at: Option<OffsetDateTime>,
}

/// A role named by a form, or 422.
#[cfg(feature = "ssr")]
fn role(text: &str) -> Result<flowtrail_domain::accounts::Role, ServerFnError> {
    flowtrail_domain::accounts::Role::parse(text.trim()).ok_or_else(|| {
        ssr::refuse(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "The role is admin, member or viewer.",
        )
    })
}

/// The team's members, by e-mail.
#[server(prefix = "/fn")]
pub async fn list_members() -> Result<Vec<Member>, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .metadata
        .members(team)
        .await
        .map_err(ssr::domain)
}

/// Adds a member; a new account's initial password comes back this once.
#[server(prefix = "/fn")]
pub async fn add_member(email: String, role: String) -> Result<AddedMember, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    let role = self::role(&role)?;
    ssr::services()?
        .add_member(team, &email, role)
        .await
        .map_err(ssr::domain)
}

/// Changes a member's role (409 for the team's last admin).
#[server(prefix = "/fn")]
pub async fn change_role(user_id: i64, role: String) -> Result<Member, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    let role = self::role(&role)?;
    ssr::services()?
        .set_member_role(team, user_id, role)
        .await
        .map_err(ssr::domain)
}

/// Removes a member (409 for the team's last admin); answers the removed user's id.
#[server(prefix = "/fn")]
pub async fn remove_member(user_id: i64) -> Result<i64, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .remove_member(team, user_id)
        .await
        .map_err(ssr::domain)?;
    Ok(user_id)
}

/// The team's API keys, newest first (never the keys themselves).
#[server(prefix = "/fn")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyInfo>, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .metadata
        .api_keys(team)
        .await
        .map_err(ssr::domain)
}

/// Creates an API key; the key itself comes back this once.
#[server(prefix = "/fn")]
pub async fn create_api_key(name: String, scope: String) -> Result<CreatedApiKey, ServerFnError> {
    use flowtrail_domain::accounts::Scope;
    let team = ssr::admin().await?.team.id;
    let scope = Scope::parse(scope.trim()).ok_or_else(|| {
        ssr::refuse(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "The scope is ingest, read, all or admin.",
        )
    })?;
    ssr::services()?
        .create_team_api_key(team, &name, scope)
        .await
        .map_err(ssr::domain)
}

/// Revokes an API key: it answers 401 everywhere within a second. Answers the key's id.
#[server(prefix = "/fn")]
pub async fn revoke_api_key(id: i64) -> Result<i64, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .revoke_api_key(team, id)
        .await
        .map_err(ssr::domain)?;
    Ok(id)
}

/// The team's policy, when the sweeper runs next, and its last runs.
#[server(prefix = "/fn")]
pub async fn load_retention() -> Result<RetentionState, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .retention_state(team)
        .await
        .map_err(ssr::domain)
}

/// The names of the team's pipelines, sorted.
#[server(prefix = "/fn")]
pub async fn team_pipelines() -> Result<Vec<String>, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    let mut names: Vec<String> = ssr::services()?
        .metadata
        .pipelines(team)
        .await
        .map_err(ssr::domain)?
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    names.sort();
    Ok(names)
}

/// What `policy` would delete now, without saving it.
#[server(prefix = "/fn", input = Json)]
pub async fn preview_retention(policy: RetentionPolicy) -> Result<RetentionPreview, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .preview_retention(team, &policy)
        .await
        .map_err(ssr::domain)
}

/// Saves `policy` (the next sweep applies it); answers the new state.
#[server(prefix = "/fn", input = Json)]
pub async fn save_retention(policy: RetentionPolicy) -> Result<RetentionState, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    let services = ssr::services()?;
    services
        .set_retention_policy(team, &policy)
        .await
        .map_err(ssr::domain)?;
    services.retention_state(team).await.map_err(ssr::domain)
}

/// The team's dead letters, newest first.
#[server(prefix = "/fn")]
pub async fn dead_letters() -> Result<Vec<DeadLetterRow>, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    let dead = ssr::services()?
        .queue
        .dead_letters(Some(team), DEAD_LETTER_LIMIT)
        .await
        .map_err(ssr::domain)?;
    Ok(dead
        .into_iter()
        .map(|d| DeadLetterRow {
            id: d.id,
            flow_id: d.flow_id.to_string(),
            flow_version: d.flow_version,
            attempts: d.attempts,
            last_error: d.last_error,
            died_at: d.died_at.map(flowtrail_domain::millis::from_ms),
        })
        .collect())
}

/// Puts the team's dead job `id` (or all of them, without `id`) back in the queue with
/// fresh attempts; answers how many.
#[server(prefix = "/fn")]
pub async fn redrive(id: Option<i64>) -> Result<u64, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .queue
        .redrive(Some(team), id)
        .await
        .map_err(ssr::domain)
}

/// The team's usage per UTC day and pipeline from `since` to `until` (`YYYY-MM-DD`, both
/// included; by default the last [`DEFAULT_USAGE_DAYS`] days).
#[server(prefix = "/fn")]
pub async fn team_usage(
    since: Option<String>,
    until: Option<String>,
) -> Result<Usage, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    let date = |field: &str, text: Option<String>| -> Result<Option<time::Date>, ServerFnError> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        time::Date::parse(
            text.trim(),
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map(Some)
        .map_err(|_| {
            ssr::refuse(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                format!("{field} is a date like 2026-11-21."),
            )
        })
    };
    let until = date("Until", until)?.unwrap_or_else(|| OffsetDateTime::now_utc().date());
    let since = match date("Since", since)? {
        Some(since) => since,
        None => until
            .checked_sub(time::Duration::days(DEFAULT_USAGE_DAYS - 1))
            .unwrap_or(time::Date::MIN),
    };
    // Both days included: the range ends at the midnight after `until` — which the last
    // representable day does not have (refused, rather than overflowed).
    let end = until.next_day().ok_or_else(|| {
        ssr::refuse(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "Until is the last day a date can name; give an earlier one.".to_string(),
        )
    })?;
    ssr::services()?
        .usage(
            team,
            since.midnight().assume_utc(),
            end.midnight().assume_utc(),
        )
        .await
        .map_err(ssr::domain)
}

/// The team's drift alert rules, by name (secrets never shown).
#[server(prefix = "/fn")]
pub async fn list_alert_rules() -> Result<Vec<flowtrail_types::alerts::AlertRule>, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .metadata
        .alert_rules(team)
        .await
        .map_err(ssr::domain)
}

/// An optional number of a form: blank is `None`; anything else must read as `T`.
#[cfg(feature = "ssr")]
fn optional_number<T: std::str::FromStr>(
    text: &str,
    what: &str,
) -> Result<Option<T>, ServerFnError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ssr::refuse(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            format!("The {what} must be a number."),
        )
    })
}

pub use alert_rule_form::{CreateAlertRule, create_alert_rule};

// One argument per form field (what an `ActionForm` posts): the server function and the
// code its macro generates are allowed many arguments.
#[allow(clippy::too_many_arguments)]
mod alert_rule_form {
    use super::*;

    /// Creates a drift alert rule from the form of `/admin/alerts` (blank fields: not given,
    /// so the defaults apply). The same rules as `POST /api/v1/admin/alert-rules`.
    #[server(prefix = "/fn")]
    pub async fn create_alert_rule(
        name: String,
        pipeline: String,
        step: String,
        metric: String,
        reason: String,
        comparison: String,
        threshold: String,
        window_minutes: String,
        #[server(default)] interval_minutes: String,
        baseline_days: String,
        min_flows: String,
        webhook_url: String,
        secret: String,
    ) -> Result<flowtrail_types::alerts::AlertRule, ServerFnError> {
        use flowtrail_types::alerts::{
            AlertComparison, AlertMetric, AlertRuleInput, DEFAULT_INTERVAL_MINUTES,
            DEFAULT_MIN_FLOWS, DEFAULT_WINDOW_MINUTES,
        };
        let team = ssr::admin().await?.team.id;
        let unprocessable =
            |message: String| ssr::refuse(http::StatusCode::UNPROCESSABLE_ENTITY, message);
        let text = |value: String| {
            let value = value.trim().to_string();
            (!value.is_empty()).then_some(value)
        };
        let input = AlertRuleInput {
            name: name.trim().to_string(),
            pipeline: pipeline.trim().to_string(),
            step: text(step),
            metric: AlertMetric::parse(metric.trim()).ok_or_else(|| {
                unprocessable(
                    "The metric is elimination_share, reason_share, failed_share or flows_per_hour."
                        .into(),
                )
            })?,
            reason: text(reason),
            comparison: AlertComparison::parse(comparison.trim())
                .ok_or_else(|| unprocessable("The comparison is above, below or shift.".into()))?,
            threshold: optional_number(&threshold, "threshold")?
                .ok_or_else(|| unprocessable("Give a threshold.".into()))?,
            window_minutes: optional_number(&window_minutes, "window")?
                .unwrap_or(DEFAULT_WINDOW_MINUTES),
            interval_minutes: optional_number(&interval_minutes, "interval")?
                .unwrap_or(DEFAULT_INTERVAL_MINUTES),
            baseline_days: optional_number(&baseline_days, "baseline")?,
            min_flows: optional_number(&min_flows, "minimum of flows")?
                .unwrap_or(DEFAULT_MIN_FLOWS),
            webhook_url: text(webhook_url),
            secret: text(secret),
        };
        let rule = input
            .validated()
            .map_err(|error| unprocessable(format!("{} ({})", error.message, error.field)))?;
        ssr::services()?
            .metadata
            .create_alert_rule(team, &rule, flowtrail_domain::millis::now_ms())
            .await
            .map_err(ssr::domain)
    }
}

/// Deletes a drift alert rule and its alerts; answers its id.
#[server(prefix = "/fn")]
pub async fn delete_alert_rule(id: i64) -> Result<i64, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    let deleted = flowtrail_domain::alerts::delete_rule(
        &*ssr::services()?,
        &flowtrail_domain::alerts::AlertOptions::default(),
        team,
        id,
    )
    .await
    .map_err(ssr::domain)?;
    if !deleted {
        return Err(ssr::refuse(
            http::StatusCode::NOT_FOUND,
            "That rule does not exist (any more).",
        ));
    }
    Ok(id)
}

/// Most alerts the alerts page lists.
pub const ALERT_LIMIT: u32 = 100;

/// The team's alerts, newest first, with their deliveries.
#[server(prefix = "/fn")]
pub async fn list_alerts() -> Result<Vec<flowtrail_types::alerts::Alert>, ServerFnError> {
    let team = ssr::admin().await?.team.id;
    ssr::services()?
        .metadata
        .alerts(team, None, ALERT_LIMIT)
        .await
        .map_err(ssr::domain)
}
