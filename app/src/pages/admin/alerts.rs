//! `/admin/alerts`: the team's drift alert rules (make one, delete one) and the alerts they
//! opened, open ones first in time order, each with the numbers that opened it, example
//! flows and its webhook deliveries. Rules are evaluated by the server every minute and by
//! `flowtrail admin evaluate-alerts`.

use flowtrail_types::alerts::{Alert, AlertComparison, AlertMetric, AlertRule, AlertState};
use leptos::prelude::*;

use super::{AdminGuard, Confirm};
use crate::api::admin::{CreateAlertRule, DeleteAlertRule, list_alert_rules, list_alerts};
use crate::format;
use crate::pages::{LoadError, error_text};

/// Metrics, as the form offers them.
const METRICS: [(&str, &str); 4] = [
    (
        "reason_share",
        "share of one reason among a step's eliminations",
    ),
    (
        "elimination_share",
        "median share of a step's candidates eliminated",
    ),
    ("failed_share", "share of flows that failed"),
    ("flows_per_hour", "flows per hour"),
];

fn comparison_text(
    rule_comparison: AlertComparison,
    threshold: f64,
    metric: AlertMetric,
) -> String {
    let value = if metric.is_share() {
        format!("{:.1} %", threshold * 100.0)
    } else {
        format!("{threshold}/h")
    };
    match rule_comparison {
        AlertComparison::Above => format!("above {value}"),
        AlertComparison::Below => format!("below {value}"),
        AlertComparison::Shift => format!("moves more than {value}"),
    }
}

fn measured(value: f64, metric: AlertMetric) -> String {
    if metric.is_share() {
        format!("{:.1} %", value * 100.0)
    } else {
        format!("{value:.1}/h")
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let create = ServerAction::<CreateAlertRule>::new();
    let delete = ServerAction::<DeleteAlertRule>::new();
    let rules = Resource::new(
        move || (create.version().get(), delete.version().get()),
        |_| list_alert_rules(),
    );
    let alerts = Resource::new(move || delete.version().get(), |_| list_alerts());
    let deleted = move || {
        delete.value().get().map(|result| match result {
            Ok(_) => view! { <p class="notice" role="status">"The rule was deleted, with its alerts."</p> }
                .into_any(),
            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
        })
    };
    view! {
        <AdminGuard title="Alerts" hint="Rules that watch a pipeline's numbers, and the alerts they opened.">
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading alerts…"</p> }>
                {move || Suspend::new(async move {
                    match alerts.await {
                        Ok(alerts) => view! { <AlertTable alerts/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Transition>
            <h2 id="rules-heading">"Rules"</h2>
            <div class="outcome">{deleted}</div>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading rules…"</p> }>
                {move || Suspend::new(async move {
                    match rules.await {
                        Ok(rules) => view! { <RuleTable rules delete/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Transition>
            <RuleForm create/>
        </AdminGuard>
    }
}

#[component]
fn AlertTable(alerts: Vec<Alert>) -> impl IntoView {
    if alerts.is_empty() {
        return view! { <p class="empty">"No alert yet: no rule's condition has held."</p> }
            .into_any();
    }
    let rows = alerts
        .into_iter()
        .map(|alert| {
            let state = match alert.state {
                AlertState::Open => view! { <span class="status status-failed">"open"</span> }.into_any(),
                AlertState::Resolved => view! { <span class="status status-succeeded">"resolved"</span> }.into_any(),
            };
            let baseline = alert
                .baseline
                .map(|b| format!(" (baseline {})", measured(b, alert.metric)))
                .unwrap_or_default();
            let examples = alert
                .example_flow_ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    view! {
                        <a href=format!("/flows/{id}") class="mono">
                            {format!("flow {}", i + 1)}
                            <span class="sr-only">{format!(" ({id})")}</span>
                        </a>
                        " "
                    }
                })
                .collect_view();
            let delivery = match alert.deliveries.last() {
                None => "—".to_string(),
                Some(last) if last.delivered => format!("delivered ({} attempt{})", last.attempt, if last.attempt == 1 { "" } else { "s" }),
                Some(last) => format!(
                    "failing: {}{}",
                    last.error.clone().unwrap_or_default(),
                    if last.next_attempt_at.is_some() { "; retrying" } else { "" }
                ),
            };
            let watched = match &alert.step {
                Some(step) => format!("{} / {step}", alert.pipeline),
                None => alert.pipeline.clone(),
            };
            view! {
                <tr>
                    <th scope="row">{alert.rule_name.clone()}</th>
                    <td>{state}</td>
                    <td>{watched}</td>
                    <td>{format!("{}{baseline} over {} flows", measured(alert.value, alert.metric), format::count(alert.flows))}</td>
                    <td>{format::timestamp(alert.opened_at)}</td>
                    <td>{alert.resolved_at.map(format::timestamp).unwrap_or_else(|| "—".into())}</td>
                    <td>{examples}</td>
                    <td>{delivery}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="data admin-table">
            <caption>"Alerts, newest first"</caption>
            <thead>
                <tr>
                    <th scope="col">"Rule"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Pipeline / step"</th>
                    <th scope="col">"Value"</th>
                    <th scope="col">"Opened"</th>
                    <th scope="col">"Resolved"</th>
                    <th scope="col">"Example flows"</th>
                    <th scope="col">"Webhook"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

#[component]
fn RuleTable(rules: Vec<AlertRule>, delete: ServerAction<DeleteAlertRule>) -> impl IntoView {
    if rules.is_empty() {
        return view! { <p class="empty">"No rules yet: make one below."</p> }.into_any();
    }
    let rows = rules
        .into_iter()
        .map(|rule| {
            let id = rule.id;
            let watched = match (&rule.step, &rule.reason) {
                (Some(step), Some(reason)) => format!("{} / {step} / {reason}", rule.pipeline),
                (Some(step), None) => format!("{} / {step}", rule.pipeline),
                _ => rule.pipeline.clone(),
            };
            let baseline = match rule.comparison {
                AlertComparison::Shift => format!(
                    " against the {} days before",
                    rule.baseline_days.unwrap_or_default()
                ),
                _ => String::new(),
            };
            view! {
                <tr>
                    <th scope="row">{rule.name.clone()}</th>
                    <td>{watched}</td>
                    <td>{rule.metric.as_str()}</td>
                    <td>{format!("{}{baseline}", comparison_text(rule.comparison, rule.threshold, rule.metric))}</td>
                    <td class="num">{format!("{} min, every {} min", rule.window_minutes, rule.interval_minutes)}</td>
                    <td class="num">{rule.min_flows}</td>
                    <td>{if rule.webhook_url.is_some() { "yes" } else { "no" }}</td>
                    <td>{rule.last_evaluated_at.map(format::timestamp).unwrap_or_else(|| "not yet".into())}</td>
                    <td>
                        <Confirm
                            id=format!("delete-rule-{id}")
                            ask="Delete"
                            subject=format!("Delete {}", rule.name)
                            question=format!("Delete “{}” and its alerts?", rule.name)
                        >
                            <ActionForm action=delete attr:class="inline-form">
                                <input type="hidden" name="id" value=id.to_string()/>
                                <button type="submit" class="danger">"Yes, delete"</button>
                            </ActionForm>
                        </Confirm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="data admin-table" aria-labelledby="rules-heading">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Watches"</th>
                    <th scope="col">"Metric"</th>
                    <th scope="col">"Fires when"</th>
                    <th scope="col" class="num">"Window, evaluated"</th>
                    <th scope="col" class="num">"Min. flows"</th>
                    <th scope="col">"Webhook"</th>
                    <th scope="col">"Last evaluated"</th>
                    <th scope="col">"Delete"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

#[component]
fn RuleForm(create: ServerAction<CreateAlertRule>) -> impl IntoView {
    let metrics = METRICS
        .iter()
        .map(
            |(metric, what)| view! { <option value=*metric>{format!("{metric}: {what}")}</option> },
        )
        .collect_view();
    let outcome = move || {
        create.value().get().map(|result| match result {
            Ok(rule) => view! { <p class="notice" role="status">{format!("Rule “{}” saved.", rule.name)}</p> }
                .into_any(),
            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
        })
    };
    view! {
        <ActionForm action=create attr:class="card" attr:aria-labelledby="new-rule-heading">
            <h2 id="new-rule-heading">"Make a rule"</h2>
            <p class="hint">
                "Shares are fractions from 0 to 1 (0.2 is 20 %). A shift compares the window with the "
                "days before it and fires when the two differ by more than the threshold."
            </p>
            <div class="fields">
                <label>"Name"<input type="text" name="name" required maxlength="128" autocomplete="off"/></label>
                <label>"Pipeline"<input type="text" name="pipeline" required maxlength="256" autocomplete="off"/></label>
                <label>"Step (for step metrics)"<input type="text" name="step" maxlength="256" autocomplete="off"/></label>
                <label>"Metric"<select name="metric">{metrics}</select></label>
                <label>"Reason code (for reason_share)"<input type="text" name="reason" maxlength="256" autocomplete="off"/></label>
                <label>
                    "Comparison"
                    <select name="comparison">
                        <option value="shift">"shift against the baseline"</option>
                        <option value="above">"above the threshold"</option>
                        <option value="below">"below the threshold"</option>
                    </select>
                </label>
                <label>"Threshold"<input type="number" name="threshold" required step="any" min="0"/></label>
                <label>"Window (minutes)"<input type="number" name="window_minutes" min="1" placeholder="60"/></label>
                <label>"Evaluate every (minutes)"<input type="number" name="interval_minutes" min="1" max="1440" placeholder="1"/></label>
                <label>"Baseline (days, for shift)"<input type="number" name="baseline_days" min="1" max="90" placeholder="7"/></label>
                <label>"Minimum flows"<input type="number" name="min_flows" min="1" placeholder="20"/></label>
                <label>"Webhook URL (optional)"<input type="url" name="webhook_url" autocomplete="off"/></label>
                <label>"Webhook secret (16+ characters)"<input type="password" name="secret" autocomplete="new-password"/></label>
                <button type="submit">"Save rule"</button>
            </div>
            <div aria-live="polite">{outcome}</div>
        </ActionForm>
    }
}
