//! Drift alerts: rules that watch one number of a pipeline, evaluated by one process of the
//! deployment at a time, opening, keeping and resolving alerts, and delivering each opening
//! and resolution to the rule's webhook.
//!
//! A rule's number is measured over the flows that *started* in its window, `[now -
//! window_minutes, now)` ([`measure`]). `above` and `below` compare it with the threshold;
//! `shift` with the same number over the `baseline_days` before the window, firing when they
//! differ by more than the threshold (absolute difference, in the metric's unit). Fewer than
//! `min_flows` flows in the window (or the baseline) is noise: the rule changes nothing.
//! `flows_per_hour` needs no minimum in its window (the count is what it measures).
//!
//! Webhooks: `POST` of [`AlertWebhook`] (JSON) with `X-Flowtrail-Signature: sha256=<hex>`,
//! the HMAC-SHA256 (RFC 2104) of the exact body bytes with the rule's secret. A delivery that
//! gets no 2xx answer is retried with exponential backoff (`AlertOptions`), each attempt
//! logged on the alert. Redirects are not followed (OWASP SSRF guidance: a webhook goes
//! where its admin said, nowhere else).

pub mod store;

use std::time::Duration;

use flowtrail_types::FlowStatus;
use flowtrail_types::alerts::{
    Alert, AlertComparison, AlertDelivery, AlertEvaluation, AlertEvent, AlertMetric,
    AlertRuleInput, AlertState, AlertWebhook,
};
use flowtrail_types::filters::FlowFilters;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use uuid::Uuid;

use crate::analysis::StatsQuery;
use crate::millis::{HOUR_MS, from_ms, now_ms};
use crate::{Error, Result, Services};
pub use store::{AlertStore, DueDelivery, Measured, StoredRule};

/// The lease one evaluator per deployment holds while it runs.
const LEASE: &str = "alerts";

/// One day in milliseconds.
const DAY_MS: i64 = 24 * HOUR_MS;

/// The median elimination share is computed from at most this many of the newest flows of
/// the window.
pub const ELIMINATION_FLOW_CAP: u32 = 10_000;

/// How evaluations deliver.
#[derive(Debug, Clone)]
pub struct AlertOptions {
    /// The wait before the second attempt of a delivery; doubles per attempt.
    pub retry_base: Duration,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
    /// How long the evaluator's lease lasts.
    pub lease: Duration,
    /// Measure every rule, whatever its `interval_minutes` (`flowtrail admin
    /// evaluate-alerts`); otherwise only rules whose interval has gone by.
    pub every_rule: bool,
}

impl Default for AlertOptions {
    fn default() -> Self {
        AlertOptions {
            retry_base: Duration::from_secs(30),
            max_attempts: 5,
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(300),
            every_rule: false,
        }
    }
}

/// A rule's number over a range: `None` when it has no value (no flow, or no counted step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub value: Option<f64>,
    /// Flows measured (for `elimination_share`, the runs of the step that counted).
    pub flows: u64,
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The rule's metric over the flows of its pipeline that started in `[since_ms, until_ms)`.
///
/// Errors: storage.
pub async fn measure(
    services: &Services,
    team_id: i64,
    rule: &AlertRuleInput,
    since_ms: i64,
    until_ms: i64,
) -> Result<Measurement> {
    let query = StatsQuery {
        pipeline: Some(rule.pipeline.clone()),
        step: rule.step.clone(),
        since: from_ms(since_ms),
        until: from_ms(until_ms),
        bucket_ms: DAY_MS,
        tag: None,
    };
    match rule.metric {
        AlertMetric::FailedShare | AlertMetric::FlowsPerHour => {
            let (all, failed) = services
                .metadata
                .flow_counts(team_id, &rule.pipeline, since_ms, until_ms, None)
                .await?;
            let value = if rule.metric == AlertMetric::FlowsPerHour {
                let hours = (until_ms - since_ms) as f64 / HOUR_MS as f64;
                Some(all as f64 / hours)
            } else if all == 0 {
                None
            } else {
                Some(failed as f64 / all as f64)
            };
            Ok(Measurement { value, flows: all })
        }
        AlertMetric::EliminationShare => {
            let step = rule.step.as_deref().unwrap_or_default();
            let rows = services
                .metadata
                .funnel_rows(team_id, &query, ELIMINATION_FLOW_CAP)
                .await?;
            let mut flows = std::collections::BTreeSet::new();
            // A flow counts when its step took candidates in (a 0 → 0 step has no share).
            let mut shares: Vec<f64> = rows
                .iter()
                .filter(|row| row.step == step)
                .filter_map(|row| {
                    let share = row.eliminated_share()?;
                    flows.insert(row.flow_id.as_str());
                    Some(share)
                })
                .collect();
            Ok(Measurement {
                value: median(&mut shares),
                flows: flows.len() as u64,
            })
        }
        AlertMetric::ReasonShare => {
            let reason = rule.reason.as_deref().unwrap_or_default();
            let (rows, (all, _)) = futures::try_join!(
                services.metadata.reason_counts(team_id, &query),
                services
                    .metadata
                    .flow_counts(team_id, &rule.pipeline, since_ms, until_ms, None)
            )?;
            let total: u128 = rows.iter().map(|row| row.count).sum();
            let of_reason: u128 = rows
                .iter()
                .filter(|row| row.code == reason)
                .map(|row| row.count)
                .sum();
            // No elimination at all: none by this reason either.
            let value = (all > 0).then(|| {
                if total == 0 {
                    0.0
                } else {
                    of_reason as f64 / total as f64
                }
            });
            Ok(Measurement { value, flows: all })
        }
    }
}

/// Whether a rule with `comparison` and `threshold` fires on `value` (and `baseline`).
pub fn fires(
    comparison: AlertComparison,
    threshold: f64,
    value: f64,
    baseline: Option<f64>,
) -> bool {
    match comparison {
        AlertComparison::Above => value > threshold,
        AlertComparison::Below => value < threshold,
        AlertComparison::Shift => baseline.is_some_and(|b| (value - b).abs() > threshold),
    }
}

/// Up to three flows of the window that show what the rule watches, newest first: failed
/// ones for `failed_share`; for `reason_share`, ones whose watched step counted the reason
/// (the flows list's exact `step` and `reason` filters, not a text search, which would also
/// find the code in another step's reasoning); for `elimination_share`, ones that ran the
/// watched step.
async fn examples(
    services: &Services,
    team_id: i64,
    rule: &AlertRuleInput,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<Uuid>> {
    let filters = FlowFilters {
        pipeline: Some(rule.pipeline.clone()),
        status: (rule.metric == AlertMetric::FailedShare).then_some(FlowStatus::Failed),
        step: match rule.metric {
            AlertMetric::ReasonShare | AlertMetric::EliminationShare => rule.step.clone(),
            _ => None,
        },
        reason: match rule.metric {
            AlertMetric::ReasonShare => rule.reason.clone(),
            _ => None,
        },
        since: Some(from_ms(since_ms)),
        until: Some(from_ms(until_ms)),
        limit: 3,
        ..FlowFilters::default()
    };
    let page = services.metadata.list_flows(team_id, &filters).await?;
    Ok(page.flows.into_iter().map(|flow| flow.id).collect())
}

/// HMAC-SHA256 of `body` with `secret`, as `sha256=<lowercase hex>` (the
/// `X-Flowtrail-Signature` header).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn client(options: &AlertOptions) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("flowtrail/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the webhook client: {e}")))
}

/// One delivery attempt to make: `event` of alert `alert_id`, its `attempt`th try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Send {
    alert_id: i64,
    event: AlertEvent,
    attempt: u32,
}

/// Delivery attempts made at once by one evaluation: a slow receiver (up to
/// [`AlertOptions::timeout`] each) delays no other team's webhooks beyond its own slots.
const CONCURRENT_DELIVERIES: usize = 8;

/// One attempt to deliver `event` of an alert to its rule's webhook, logged on the alert;
/// `Some(delivered)`, or `None` when there was nothing to send: the rule has no webhook (or
/// is gone), or the event is an `opened` whose alert was resolved since (sending it now would
/// arrive after, or instead of, its resolution; it is logged as superseded).
///
/// Every attempt of one event carries the same body and `X-Flowtrail-Delivery:
/// <alert id>-<event>` (receivers deduplicate on it); `X-Flowtrail-Attempt` counts the tries.
async fn deliver(
    services: &Services,
    http: &reqwest::Client,
    options: &AlertOptions,
    send: Send,
) -> Result<Option<bool>> {
    let Send {
        alert_id,
        event,
        attempt,
    } = send;
    let Some((team_id, alert)) = services.metadata.alert(alert_id).await? else {
        return Ok(None);
    };
    let Some(rule) = services.metadata.alert_rule(team_id, alert.rule_id).await? else {
        return Ok(None);
    };
    let (Some(url), Some(secret)) = (rule.input.webhook_url, rule.input.secret) else {
        return Ok(None);
    };
    if event == AlertEvent::Opened && alert.state == AlertState::Resolved {
        services
            .metadata
            .record_delivery(
                alert_id,
                &AlertDelivery {
                    event,
                    attempt,
                    attempted_at: from_ms(now_ms()),
                    status_code: None,
                    error: Some(
                        "superseded: the alert was resolved before this event was delivered".into(),
                    ),
                    delivered: false,
                    next_attempt_at: None,
                },
            )
            .await?;
        return Ok(None);
    }
    let body = serde_json::to_vec(&AlertWebhook {
        event,
        alert: Alert {
            deliveries: Vec::new(),
            ..alert
        },
    })
    .map_err(|e| Error::Internal(e.to_string()))?;
    let attempted_at = now_ms();
    let sent = http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Flowtrail-Signature", signature(&secret, &body))
        .header("X-Flowtrail-Event", event.as_str())
        .header(
            "X-Flowtrail-Delivery",
            format!("{alert_id}-{}", event.as_str()),
        )
        .header("X-Flowtrail-Attempt", attempt.to_string())
        .body(body)
        .send()
        .await;
    let (status_code, error) = match sent {
        Ok(answer) if answer.status().is_success() => (Some(answer.status().as_u16()), None),
        Ok(answer) => (
            Some(answer.status().as_u16()),
            Some(format!("the receiver answered {}", answer.status())),
        ),
        // The error without the URL (it may carry credentials).
        Err(error) => (None, Some(describe(&error))),
    };
    let delivered = error.is_none();
    let next_attempt_at = (!delivered && attempt < options.max_attempts).then(|| {
        let wait = options
            .retry_base
            .saturating_mul(1 << (attempt - 1).min(16));
        from_ms(attempted_at + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4))
    });
    if !delivered {
        tracing::warn!(
            alert_id,
            event = event.as_str(),
            attempt,
            error = error.as_deref(),
            "webhook delivery failed"
        );
    }
    services
        .metadata
        .record_delivery(
            alert_id,
            &AlertDelivery {
                event,
                attempt,
                attempted_at: from_ms(attempted_at),
                status_code,
                error,
                delivered,
                next_attempt_at,
            },
        )
        .await?;
    Ok(Some(delivered))
}

/// Makes `sends`, [`CONCURRENT_DELIVERIES`] at a time, and counts their outcomes.
async fn deliver_all(
    services: &Services,
    http: &reqwest::Client,
    options: &AlertOptions,
    sends: Vec<Send>,
    report: &mut AlertEvaluation,
) {
    use futures::StreamExt;
    let outcomes: Vec<Result<Option<bool>>> = futures::stream::iter(sends)
        .map(|send| deliver(services, http, options, send))
        .buffer_unordered(CONCURRENT_DELIVERIES)
        .collect()
        .await;
    for outcome in outcomes {
        tally(outcome, report);
    }
}

/// What went wrong with a request, without its URL.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_redirect() {
        "redirected (not followed)"
    } else {
        "the request failed"
    };
    let mut cause = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(inner) = cause {
        detail = inner.to_string();
        cause = inner.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// Measures one rule at `now_ms` and opens, keeps or resolves its alert.
async fn evaluate_rule(
    services: &Services,
    stored: &StoredRule,
    now_ms: i64,
    report: &mut AlertEvaluation,
    sends: &mut Vec<Send>,
) -> Result<()> {
    let rule = &stored.input;
    let (team_id, rule_id) = (stored.team_id, stored.rule.id);
    let since = now_ms - i64::from(rule.window_minutes) * 60_000;
    let current = measure(services, team_id, rule, since, now_ms).await?;
    let baseline = match (rule.comparison, rule.baseline_days) {
        (AlertComparison::Shift, Some(days)) => {
            let from = since - i64::from(days) * DAY_MS;
            Some(measure(services, team_id, rule, from, since).await?)
        }
        _ => None,
    };
    services.metadata.rule_evaluated(rule_id, now_ms).await?;
    report.rules += 1;
    let min = u64::from(rule.min_flows);
    let window_enough = rule.metric == AlertMetric::FlowsPerHour || current.flows >= min;
    let baseline_enough = baseline.is_none_or(|b| b.flows >= min && b.value.is_some());
    let (Some(value), true, true) = (current.value, window_enough, baseline_enough) else {
        report.too_few_flows += 1;
        return Ok(());
    };
    let measured = Measured {
        value,
        baseline: baseline.and_then(|b| b.value),
        flows: current.flows,
        baseline_flows: baseline.map(|b| b.flows),
    };
    let firing = fires(rule.comparison, rule.threshold, value, measured.baseline);
    match (services.metadata.open_alert(rule_id).await?, firing) {
        (None, true) => {
            let examples = examples(services, team_id, rule, since, now_ms).await?;
            let alert_id = services
                .metadata
                .open_new_alert(team_id, rule_id, &measured, &examples, now_ms)
                .await?;
            report.opened += 1;
            tracing::info!(
                rule_id,
                alert_id,
                value,
                baseline = measured.baseline,
                "alert opened"
            );
            sends.push(Send {
                alert_id,
                event: AlertEvent::Opened,
                attempt: 1,
            });
        }
        (Some(alert_id), true) => {
            services
                .metadata
                .update_alert(alert_id, &measured, false, now_ms)
                .await?;
            report.kept += 1;
        }
        (Some(alert_id), false) => {
            services
                .metadata
                .update_alert(alert_id, &measured, true, now_ms)
                .await?;
            report.resolved += 1;
            tracing::info!(rule_id, alert_id, value, "alert resolved");
            sends.push(Send {
                alert_id,
                event: AlertEvent::Resolved,
                attempt: 1,
            });
        }
        (None, false) => {}
    }
    Ok(())
}

/// Counts one delivery attempt's outcome: delivered, or failed (also when its outcome could
/// not be recorded); nothing when there was nothing to send.
fn tally(outcome: Result<Option<bool>>, report: &mut AlertEvaluation) {
    match outcome {
        Ok(None) => {}
        Ok(Some(true)) => report.delivered += 1,
        Ok(Some(false)) => report.delivery_failures += 1,
        Err(error) => {
            tracing::warn!(%error, "could not record a webhook delivery");
            report.delivery_failures += 1;
        }
    }
}

/// Evaluates every rule of every team once at `now`, then makes the delivery attempts that
/// are due. `None` when another process of the deployment is evaluating (it holds the
/// lease): one evaluator at a time, on both profiles.
///
/// Errors: storage (a rule that cannot be measured is counted in `failed` and logged; the
/// others are still evaluated).
pub async fn evaluate_all(
    services: &Services,
    options: &AlertOptions,
) -> Result<Option<AlertEvaluation>> {
    let holder = Uuid::now_v7().to_string();
    let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX / 4);
    if !services
        .metadata
        .acquire_lease(LEASE, &holder, now_ms() + lease_ms)
        .await?
    {
        return Ok(None);
    }
    let mut lease = Lease {
        holder: &holder,
        length_ms: lease_ms,
        renewed_at: std::time::Instant::now(),
    };
    let outcome = evaluate_holding_the_lease(services, options, &mut lease).await;
    if let Err(error) = services.metadata.release_lease(LEASE, &holder).await {
        tracing::warn!(%error, "could not give the alert lease up; it lapses on its own");
    }
    outcome.map(Some)
}

/// Whether a rule's `interval_minutes` has gone by since its last evaluation at `now_ms` (a
/// second early counts: passes come every `--alert-interval-seconds`, not to the millisecond).
fn due(stored: &StoredRule, now_ms: i64) -> bool {
    let interval_ms = i64::from(stored.input.interval_minutes) * 60_000;
    stored.rule.last_evaluated_at.is_none_or(|last| {
        let last_ms = crate::millis::to_ms(last);
        now_ms - last_ms + 1_000 >= interval_ms
    })
}

/// The evaluator's hold on the deployment-wide lease, renewed as a long evaluation goes on.
struct Lease<'a> {
    holder: &'a str,
    length_ms: i64,
    renewed_at: std::time::Instant,
}

impl Lease<'_> {
    /// Renews the lease once a third of it has passed; whether it is still ours (another
    /// evaluator may have taken it after it lapsed: then this one stops).
    async fn keep(&mut self, services: &Services) -> Result<bool> {
        if self.renewed_at.elapsed().as_millis() < (self.length_ms / 3) as u128 {
            return Ok(true);
        }
        self.renewed_at = std::time::Instant::now();
        services
            .metadata
            .acquire_lease(LEASE, self.holder, now_ms() + self.length_ms)
            .await
    }
}

async fn evaluate_holding_the_lease(
    services: &Services,
    options: &AlertOptions,
    lease: &mut Lease<'_>,
) -> Result<AlertEvaluation> {
    let http = client(options)?;
    let mut report = AlertEvaluation::default();
    // The attempts due from earlier evaluations (a delivery failing now is retried at the
    // next evaluation after its backoff, not at once), made before this evaluation's own.
    let retries: Vec<Send> = services
        .metadata
        .due_deliveries(now_ms(), 100)
        .await?
        .into_iter()
        .map(|due| Send {
            alert_id: due.alert_id,
            event: due.event,
            attempt: due.attempts + 1,
        })
        .collect();
    let mut sends = Vec::new();
    let now = now_ms();
    for stored in services.metadata.all_alert_rules().await? {
        if !options.every_rule && !due(&stored, now) {
            report.not_due += 1;
            continue;
        }
        if !lease.keep(services).await? {
            tracing::warn!("the alert lease was lost mid-evaluation; the new holder goes on");
            break;
        }
        if let Err(error) = evaluate_rule(services, &stored, now, &mut report, &mut sends).await {
            tracing::warn!(%error, rule_id = stored.rule.id, "alert rule not evaluated");
            report.failed += 1;
        }
    }
    // Earlier events first: the retries that are due, then this pass's openings and
    // resolutions. An `opened` still unsent when its alert resolved is superseded
    // ([`deliver`]), never sent after the resolution.
    deliver_all(services, &http, options, retries, &mut report).await;
    deliver_all(services, &http, options, sends, &mut report).await;
    Ok(report)
}

/// Whether `after` measures or judges differently from `before` (pipeline, step, metric,
/// reason, comparison, threshold, window or baseline): an open alert of the rule then no
/// longer means what the rule says.
pub fn terms_changed(before: &AlertRuleInput, after: &AlertRuleInput) -> bool {
    before.pipeline != after.pipeline
        || before.step != after.step
        || before.metric != after.metric
        || before.reason != after.reason
        || before.comparison != after.comparison
        || before.threshold != after.threshold
        || before.window_minutes != after.window_minutes
        || before.baseline_days != after.baseline_days
}

/// Resolves the rule's open alert (keeping the numbers it last had) and makes the first
/// attempt to deliver its `resolved` event; later attempts, if needed, come with the next
/// evaluations while the rule exists. Whether an alert was open.
async fn resolve_open_alert(
    services: &Services,
    options: &AlertOptions,
    rule_id: i64,
) -> Result<bool> {
    let Some(alert_id) = services.metadata.open_alert(rule_id).await? else {
        return Ok(false);
    };
    let Some((_, alert)) = services.metadata.alert(alert_id).await? else {
        return Ok(false);
    };
    let measured = Measured {
        value: alert.value,
        baseline: alert.baseline,
        flows: alert.flows,
        baseline_flows: alert.baseline_flows,
    };
    services
        .metadata
        .update_alert(alert_id, &measured, true, now_ms())
        .await?;
    tracing::info!(
        rule_id,
        alert_id,
        "alert resolved: its rule changed or went"
    );
    let http = client(options)?;
    let send = Send {
        alert_id,
        event: AlertEvent::Resolved,
        attempt: 1,
    };
    if let Err(error) = deliver(services, &http, options, send).await {
        tracing::warn!(%error, alert_id, "could not record a webhook delivery");
    }
    Ok(true)
}

/// Changes rule `rule_id` of the team to `rule` (validated). When its terms change
/// ([`terms_changed`]) its open alert is resolved first and the resolution delivered to the
/// webhook the rule had. `None` when the team has no such rule.
///
/// Errors: storage; [`Error::Conflict`] when another rule of the team has the name.
pub async fn update_rule(
    services: &Services,
    options: &AlertOptions,
    team_id: i64,
    rule_id: i64,
    rule: &AlertRuleInput,
) -> Result<Option<flowtrail_types::alerts::AlertRule>> {
    let Some(stored) = services.metadata.alert_rule(team_id, rule_id).await? else {
        return Ok(None);
    };
    if terms_changed(&stored.input, rule) {
        resolve_open_alert(services, options, rule_id).await?;
    }
    services
        .metadata
        .update_alert_rule(team_id, rule_id, rule, now_ms())
        .await
}

/// Deletes rule `rule_id` of the team with its alerts; an open alert is resolved first and its
/// resolution delivered (one attempt: the rule, and so its webhook, is gone afterwards).
/// Whether the team had the rule.
///
/// Errors: storage.
pub async fn delete_rule(
    services: &Services,
    options: &AlertOptions,
    team_id: i64,
    rule_id: i64,
) -> Result<bool> {
    if services
        .metadata
        .alert_rule(team_id, rule_id)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    resolve_open_alert(services, options, rule_id).await?;
    services.metadata.delete_alert_rule(team_id, rule_id).await
}

impl Services {
    /// Evaluates the alert rules every `interval` until `shutdown` turns true (what `serve`
    /// and `worker` run; the lease keeps it to one process at a time).
    pub async fn run_alerts(
        self: std::sync::Arc<Self>,
        interval: Duration,
        options: AlertOptions,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            match evaluate_all(&self, &options).await {
                Ok(Some(report)) if report.opened + report.resolved + report.failed > 0 => {
                    tracing::info!(?report, "alert rules evaluated");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "alert rules not evaluated; again next interval")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn comparisons_fire_strictly_past_their_threshold() {
        use AlertComparison::*;
        assert!(fires(Above, 0.5, 0.51, None));
        assert!(!fires(Above, 0.5, 0.5, None));
        assert!(fires(Below, 10.0, 9.0, None));
        assert!(!fires(Below, 10.0, 10.0, None));
        assert!(fires(Shift, 0.2, 0.6, Some(0.1)));
        assert!(fires(Shift, 0.2, 0.1, Some(0.6)));
        assert!(!fires(Shift, 0.2, 0.25, Some(0.1)));
        assert!(!fires(Shift, 0.2, 0.9, None), "no baseline, no shift");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [0.9, 0.1, 0.5]), Some(0.5));
        assert_eq!(median(&mut [0.9, 0.1]), Some(0.5));
        assert_eq!(median(&mut []), None);
    }
}
