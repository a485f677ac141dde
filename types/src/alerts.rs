//! Drift alerts (`/api/v1/admin/alert-rules`, `/api/v1/admin/alerts`, CONTRACT.md): rules
//! that watch one number of a pipeline, the alerts they open and resolve, and the webhook
//! deliveries of each.
//!
//! A rule measures `metric` over the last `window_minutes` (flows that *started* in the
//! window) and compares it with `threshold` (`above`, `below`) or with the same metric over
//! the `baseline_days` before the window (`shift`: fires when the two differ by more than
//! `threshold`, in the metric's own unit). Shares are fractions from 0 to 1.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a rule measures over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    /// Median, over the flows in which the step ran and counted its candidates, of the
    /// share of `candidates_in` not in `candidates_out` (0–1). Needs `step`.
    EliminationShare,
    /// The share of one reason code (`reason`) among all the reasons the step counted
    /// (exact counts, 0–1). Needs `step` and `reason`.
    ReasonShare,
    /// The share of the pipeline's flows with status `failed` (0–1).
    FailedShare,
    /// The pipeline's flows per hour.
    FlowsPerHour,
}

impl AlertMetric {
    pub const ALL: [AlertMetric; 4] = [
        AlertMetric::EliminationShare,
        AlertMetric::ReasonShare,
        AlertMetric::FailedShare,
        AlertMetric::FlowsPerHour,
    ];

    /// The wire name (`elimination_share`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertMetric::EliminationShare => "elimination_share",
            AlertMetric::ReasonShare => "reason_share",
            AlertMetric::FailedShare => "failed_share",
            AlertMetric::FlowsPerHour => "flows_per_hour",
        }
    }

    /// Reads a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// Whether the metric is about one step (and so needs `step`).
    pub fn needs_step(self) -> bool {
        matches!(
            self,
            AlertMetric::EliminationShare | AlertMetric::ReasonShare
        )
    }

    /// Whether the metric is a share (0–1) rather than a rate.
    pub fn is_share(self) -> bool {
        self != AlertMetric::FlowsPerHour
    }
}

/// How a rule compares its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertComparison {
    /// Fires while the value is greater than `threshold`.
    Above,
    /// Fires while the value is less than `threshold`.
    Below,
    /// Fires while the value differs from the baseline (the same metric over the
    /// `baseline_days` before the window) by more than `threshold`, either way.
    Shift,
}

impl AlertComparison {
    pub const ALL: [AlertComparison; 3] = [
        AlertComparison::Above,
        AlertComparison::Below,
        AlertComparison::Shift,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertComparison::Above => "above",
            AlertComparison::Below => "below",
            AlertComparison::Shift => "shift",
        }
    }

    /// Reads a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Longest window: 30 days, in minutes.
pub const MAX_WINDOW_MINUTES: u32 = 30 * 24 * 60;
/// Longest baseline, in days.
pub const MAX_BASELINE_DAYS: u32 = 90;
/// The baseline of a `shift` rule that gives none.
pub const DEFAULT_BASELINE_DAYS: u32 = 7;
/// The window of a rule that gives none.
pub const DEFAULT_WINDOW_MINUTES: u32 = 60;
/// How often a rule that gives none is evaluated: every evaluation pass (`serve` and `worker`
/// make one every `--alert-interval-seconds`, 60 by default), in minutes.
pub const DEFAULT_INTERVAL_MINUTES: u32 = 1;
/// Longest evaluation interval: a day, in minutes.
pub const MAX_INTERVAL_MINUTES: u32 = 24 * 60;
/// The minimum number of flows of a rule that gives none.
pub const DEFAULT_MIN_FLOWS: u32 = 20;
/// Rules per team.
pub const MAX_ALERT_RULES: usize = 200;
/// Shortest and longest webhook secret, in characters.
pub const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;

/// A rule as sent to `POST /api/v1/admin/alert-rules`, and as a `PATCH` leaves it after
/// applying its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertRuleInput {
    /// Unique in the team, 1–128 characters.
    pub name: String,
    pub pipeline: String,
    /// The step watched (`elimination_share`, `reason_share`); absent for the others.
    #[serde(default)]
    pub step: Option<String>,
    pub metric: AlertMetric,
    /// The reason code (`reason_share` only).
    #[serde(default)]
    pub reason: Option<String>,
    pub comparison: AlertComparison,
    /// A share from 0 to 1, or flows per hour (`flows_per_hour`); for `shift`, the largest
    /// difference from the baseline that does not fire.
    pub threshold: f64,
    /// The window measured, ending at each evaluation (1 minute to 30 days; default 60).
    #[serde(default = "default_window")]
    pub window_minutes: u32,
    /// How often the rule is evaluated, in minutes (1 to 1440, default 1): a pass of the
    /// evaluator measures it only when this long has gone by since its last evaluation
    /// (`flowtrail admin evaluate-alerts` measures every rule whatever its interval).
    #[serde(default = "default_interval")]
    pub interval_minutes: u32,
    /// Days before the window that make the baseline (`shift`; 1–90, default 7).
    #[serde(default)]
    pub baseline_days: Option<u32>,
    /// The least flows the window (and the baseline, for `shift`) must hold for the rule to
    /// open or resolve an alert (default 20): fewer is noise, and changes nothing.
    #[serde(default = "default_min_flows")]
    pub min_flows: u32,
    /// Where alerts are `POST`ed (`http` or `https`); no URL, no delivery.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Signs each delivery (`X-Flowtrail-Signature: sha256=<hex HMAC-SHA256 of the body>`);
    /// needed with `webhook_url`, 16–256 characters, never returned.
    #[serde(default)]
    pub secret: Option<String>,
}

fn default_window() -> u32 {
    DEFAULT_WINDOW_MINUTES
}

fn default_interval() -> u32 {
    DEFAULT_INTERVAL_MINUTES
}

fn default_min_flows() -> u32 {
    DEFAULT_MIN_FLOWS
}

/// `Some(value)` for a field that is present, `null` included (`Some(None)`), so a `PATCH`
/// tells "set to null" from "not given".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `Some(value)` for a field that is present; `null` is refused, as `POST` refuses it (a
/// field that cannot be cleared is not silently left as it was).
fn not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// The body of `PATCH /api/v1/admin/alert-rules/{id}`: the fields to change. A nullable
/// field sent as `null` is cleared; `null` for another, or a field of no rule, is refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertRulePatch {
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub pipeline: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub step: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = AlertMetric))]
    pub metric: Option<AlertMetric>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = AlertComparison))]
    pub comparison: Option<AlertComparison>,
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub threshold: Option<f64>,
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub window_minutes: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub interval_minutes: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub baseline_days: Option<Option<u32>>,
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub min_flows: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub webhook_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub secret: Option<Option<String>>,
}

impl AlertRulePatch {
    /// `rule` with this patch's fields applied (not validated).
    pub fn apply(&self, mut rule: AlertRuleInput) -> AlertRuleInput {
        let patch = self.clone();
        if let Some(name) = patch.name {
            rule.name = name;
        }
        if let Some(pipeline) = patch.pipeline {
            rule.pipeline = pipeline;
        }
        if let Some(step) = patch.step {
            rule.step = step;
        }
        if let Some(metric) = patch.metric {
            rule.metric = metric;
        }
        if let Some(reason) = patch.reason {
            rule.reason = reason;
        }
        if let Some(comparison) = patch.comparison {
            rule.comparison = comparison;
        }
        if let Some(threshold) = patch.threshold {
            rule.threshold = threshold;
        }
        if let Some(interval) = patch.interval_minutes {
            rule.interval_minutes = interval;
        }
        if let Some(window) = patch.window_minutes {
            rule.window_minutes = window;
        }
        if let Some(days) = patch.baseline_days {
            rule.baseline_days = days;
        }
        if let Some(min_flows) = patch.min_flows {
            rule.min_flows = min_flows;
        }
        if let Some(url) = patch.webhook_url {
            rule.webhook_url = url;
        }
        if let Some(secret) = patch.secret {
            rule.secret = secret;
        }
        rule
    }
}

/// A refused rule: the field at fault and what to send instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        field,
        message: message.into(),
    }
}

fn text_field(field: &'static str, value: &str, max: usize) -> Result<(), RuleError> {
    if value.trim().is_empty() {
        return Err(refuse(field, format!("{field} must not be blank")));
    }
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(refuse(
            field,
            format!("{field} is 1 to {max} characters, without control characters"),
        ));
    }
    Ok(())
}

impl AlertRuleInput {
    /// The rule as stored: `baseline_days` filled for `shift` (default 7), text trimmed of
    /// nothing (names are exact). Errors name the field at fault.
    pub fn validated(mut self) -> Result<AlertRuleInput, RuleError> {
        text_field("name", &self.name, 128)?;
        text_field("pipeline", &self.pipeline, 256)?;
        match (&self.step, self.metric.needs_step()) {
            (Some(step), true) => text_field("step", step, 256)?,
            (None, true) => {
                return Err(refuse(
                    "step",
                    format!("metric {} needs the step it watches", self.metric.as_str()),
                ));
            }
            (Some(_), false) => {
                return Err(refuse(
                    "step",
                    format!(
                        "metric {} is about whole flows: send no step",
                        self.metric.as_str()
                    ),
                ));
            }
            (None, false) => {}
        }
        match (&self.reason, self.metric == AlertMetric::ReasonShare) {
            (Some(reason), true) => text_field("reason", reason, 256)?,
            (None, true) => {
                return Err(refuse("reason", "metric reason_share needs a reason code"));
            }
            (Some(_), false) => {
                return Err(refuse("reason", "reason is only for metric reason_share"));
            }
            (None, false) => {}
        }
        let t = self.threshold;
        if !t.is_finite() || t < 0.0 {
            return Err(refuse("threshold", "threshold is a number, 0 or more"));
        }
        if self.metric.is_share() && t > 1.0 {
            return Err(refuse(
                "threshold",
                format!(
                    "{} is a share from 0 to 1: so is its threshold",
                    self.metric.as_str()
                ),
            ));
        }
        if !(1..=MAX_WINDOW_MINUTES).contains(&self.window_minutes) {
            return Err(refuse(
                "window_minutes",
                format!("window_minutes is 1 to {MAX_WINDOW_MINUTES} (30 days)"),
            ));
        }
        if !(1..=MAX_INTERVAL_MINUTES).contains(&self.interval_minutes) {
            return Err(refuse(
                "interval_minutes",
                format!("interval_minutes is 1 to {MAX_INTERVAL_MINUTES} (a day)"),
            ));
        }
        match (self.comparison, self.baseline_days) {
            (AlertComparison::Shift, None) => self.baseline_days = Some(DEFAULT_BASELINE_DAYS),
            (_, Some(days)) if !(1..=MAX_BASELINE_DAYS).contains(&days) => {
                return Err(refuse(
                    "baseline_days",
                    format!("baseline_days is 1 to {MAX_BASELINE_DAYS}"),
                ));
            }
            _ => {}
        }
        if self.min_flows == 0 || self.min_flows > 1_000_000 {
            return Err(refuse("min_flows", "min_flows is 1 to 1000000"));
        }
        let secret_ok = |secret: &str| {
            SECRET_CHARS.contains(&secret.chars().count()) && !secret.chars().any(char::is_control)
        };
        if let Some(url) = &self.webhook_url {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok
                || url.len() > 2048
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(refuse(
                    "webhook_url",
                    "webhook_url is an http:// or https:// URL of at most 2048 characters",
                ));
            }
            // Parsed as the delivery parses it (WHATWG URL Standard): a URL that could never
            // be delivered to (no host, a port past 65535) is refused now, not at each attempt.
            let parsed = url::Url::parse(url).map_err(|e| {
                refuse(
                    "webhook_url",
                    format!("webhook_url is not a URL a delivery can be sent to: {e}"),
                )
            })?;
            // The authority as written (`http:///x` would be read with host `x`, `@h` with
            // an empty user): what is saved is what was sent, so it is checked as sent.
            let authority = url
                .split_once("://")
                .map_or("", |(_, rest)| rest)
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default();
            if authority.is_empty() || parsed.host_str().is_none_or(str::is_empty) {
                return Err(refuse("webhook_url", "webhook_url names no host"));
            }
            if parsed.port() == Some(0) {
                return Err(refuse("webhook_url", "webhook_url's port is 1 to 65535"));
            }
            // Rules are listed to every admin and on the page: a URL must not carry a
            // password (OWASP: no credentials in URLs). Deliveries are authenticated by the
            // signature.
            if authority.contains('@')
                || !parsed.username().is_empty()
                || parsed.password().is_some()
            {
                return Err(refuse(
                    "webhook_url",
                    "webhook_url must not hold a user name or password (every admin sees it); \
                     the receiver checks X-Flowtrail-Signature instead",
                ));
            }
            match &self.secret {
                None => {
                    return Err(refuse(
                        "secret",
                        "a webhook needs a secret: it signs every delivery (X-Flowtrail-Signature)",
                    ));
                }
                Some(secret) if !secret_ok(secret) => {
                    return Err(refuse(
                        "secret",
                        "secret is 16 to 256 characters, without control characters",
                    ));
                }
                Some(_) => {}
            }
        } else if let Some(secret) = &self.secret
            && !secret_ok(secret)
        {
            return Err(refuse(
                "secret",
                "secret is 16 to 256 characters, without control characters",
            ));
        }
        Ok(self)
    }
}

/// A stored rule, as the API shows it (the secret never).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRule {
    pub id: i64,
    pub name: String,
    pub pipeline: String,
    pub step: Option<String>,
    pub metric: AlertMetric,
    pub reason: Option<String>,
    pub comparison: AlertComparison,
    pub threshold: f64,
    pub window_minutes: u32,
    pub interval_minutes: u32,
    pub baseline_days: Option<u32>,
    pub min_flows: u32,
    pub webhook_url: Option<String>,
    /// Whether a secret is set (it is never returned).
    pub has_secret: bool,
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The last evaluation that measured the rule.
    #[serde(default, with = "crate::rfc3339::option")]
    pub last_evaluated_at: Option<OffsetDateTime>,
}

/// `GET /api/v1/admin/alert-rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRules {
    pub rules: Vec<AlertRule>,
}

/// Whether an alert's condition still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Resolved,
}

impl AlertState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Resolved => "resolved",
        }
    }

    /// Reads a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [AlertState::Open, AlertState::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Which change of an alert a delivery tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    Opened,
    Resolved,
}

impl AlertEvent {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Opened => "opened",
            AlertEvent::Resolved => "resolved",
        }
    }

    /// Reads a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [AlertEvent::Opened, AlertEvent::Resolved]
            .into_iter()
            .find(|e| e.as_str() == text)
    }
}

/// One attempt to deliver an alert's event to its rule's webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertDelivery {
    pub event: AlertEvent,
    /// 1 for the first attempt.
    pub attempt: u32,
    #[serde(with = "crate::rfc3339")]
    pub attempted_at: OffsetDateTime,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed (no answer, or a status other than 2xx).
    pub error: Option<String>,
    pub delivered: bool,
    /// When the next attempt is due (a failed attempt with attempts left).
    #[serde(default, with = "crate::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// An alert: a period during which a rule's condition held, with the numbers that opened it
/// (updated while it stays open) and flows that show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub pipeline: String,
    pub step: Option<String>,
    pub metric: AlertMetric,
    pub reason: Option<String>,
    pub comparison: AlertComparison,
    pub threshold: f64,
    pub state: AlertState,
    #[serde(with = "crate::rfc3339")]
    pub opened_at: OffsetDateTime,
    #[serde(default, with = "crate::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// The metric over the window at the last evaluation that saw the condition hold (or,
    /// once resolved, the one that resolved it).
    pub value: f64,
    /// The metric over the baseline (`shift` rules).
    pub baseline: Option<f64>,
    /// Flows the value was measured on.
    pub flows: u64,
    /// Flows the baseline was measured on.
    pub baseline_flows: Option<u64>,
    /// Up to three flows of the window that show it (newest first).
    pub example_flow_ids: Vec<Uuid>,
    /// Webhook delivery attempts, oldest first.
    pub deliveries: Vec<AlertDelivery>,
}

/// `GET /api/v1/admin/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alerts {
    pub alerts: Vec<Alert>,
}

/// The body `POST`ed to a rule's webhook: the alert (as in `GET /api/v1/admin/alerts`,
/// without its delivery log) and which change it tells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertWebhook {
    pub event: AlertEvent,
    #[serde(flatten)]
    pub alert: Alert,
}

/// What one evaluation of every rule did (`flowtrail admin evaluate-alerts` prints it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvaluation {
    /// Rules measured.
    pub rules: u64,
    /// Rules not measured: their `interval_minutes` had not gone by since their last
    /// evaluation.
    #[serde(default)]
    pub not_due: u64,
    pub opened: u64,
    /// Open alerts whose condition still held.
    pub kept: u64,
    pub resolved: u64,
    /// Rules whose window (or baseline) held fewer than `min_flows` flows: nothing changed.
    pub too_few_flows: u64,
    /// Rules that could not be measured (the error is logged).
    pub failed: u64,
    pub delivered: u64,
    /// Delivery attempts that failed (retried later while attempts are left).
    pub delivery_failures: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> AlertRuleInput {
        serde_json::from_value(serde_json::json!({
            "name": "price filter drift",
            "pipeline": "competitor_selection",
            "step": "price_filter",
            "metric": "reason_share",
            "reason": "price_out_of_range",
            "comparison": "shift",
            "threshold": 0.2,
            "webhook_url": "https://hooks.example/flowtrail",
            "secret": "0123456789abcdef"
        }))
        .unwrap()
    }

    #[test]
    fn a_complete_rule_is_kept_with_its_defaults() {
        let rule = rule().validated().unwrap();
        assert_eq!(rule.window_minutes, DEFAULT_WINDOW_MINUTES);
        assert_eq!(rule.baseline_days, Some(DEFAULT_BASELINE_DAYS));
        assert_eq!(rule.min_flows, DEFAULT_MIN_FLOWS);
    }

    #[test]
    fn each_refusal_names_its_field() {
        type Change = fn(&mut AlertRuleInput);
        let cases: Vec<(Change, &str)> = vec![
            (|r| r.name = " ".into(), "name"),
            (|r| r.pipeline = String::new(), "pipeline"),
            (|r| r.step = None, "step"),
            (|r| r.reason = None, "reason"),
            (|r| r.threshold = f64::NAN, "threshold"),
            (|r| r.threshold = 1.5, "threshold"),
            (|r| r.threshold = -0.1, "threshold"),
            (|r| r.window_minutes = 0, "window_minutes"),
            (
                |r| r.window_minutes = MAX_WINDOW_MINUTES + 1,
                "window_minutes",
            ),
            (|r| r.baseline_days = Some(0), "baseline_days"),
            (|r| r.min_flows = 0, "min_flows"),
            (|r| r.webhook_url = Some("ftp://x".into()), "webhook_url"),
            (
                |r| r.webhook_url = Some("https://a b".into()),
                "webhook_url",
            ),
            (|r| r.secret = None, "secret"),
            (|r| r.secret = Some("short".into()), "secret"),
            (
                |r| {
                    r.metric = AlertMetric::FailedShare;
                    r.reason = None;
                },
                "step",
            ),
            (
                |r| {
                    r.metric = AlertMetric::EliminationShare;
                },
                "reason",
            ),
        ];
        for (change, field) in cases {
            let mut r = rule();
            change(&mut r);
            let error = r.clone().validated().unwrap_err();
            assert_eq!(error.field, field, "{r:?}: {error:?}");
        }
        // A rate's threshold is not capped at 1.
        let mut rate = rule();
        rate.metric = AlertMetric::FlowsPerHour;
        rate.step = None;
        rate.reason = None;
        rate.threshold = 250.0;
        assert!(rate.validated().is_ok());
    }

    #[test]
    fn a_patch_sets_clears_and_leaves_fields() {
        let patch: AlertRulePatch = serde_json::from_value(serde_json::json!({
            "threshold": 0.3,
            "webhook_url": null,
            "secret": null,
        }))
        .unwrap();
        let patched = patch.apply(rule());
        assert_eq!(patched.threshold, 0.3);
        assert_eq!(patched.webhook_url, None);
        assert_eq!(patched.secret, None);
        assert_eq!(patched.step.as_deref(), Some("price_filter"));
        assert!(patched.validated().is_ok());
    }
}
