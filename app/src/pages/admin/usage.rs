//! `/admin/usage`: what the team sent per UTC day and pipeline — flows, steps, observations
//! and bytes accepted, requests refused, rate-limited and replayed — with a bar chart of
//! flows per day (inline SVG, each bar titled, and the same figures in words and in the
//! table). The range lives in the URL (`?since=YYYY-MM-DD&until=YYYY-MM-DD`).

use std::collections::BTreeMap;

use flowtrail_types::admin::{Usage, UsageRow};
use leptos::prelude::*;
use leptos_router::hooks::use_location;

use super::AdminGuard;
use crate::api::admin::team_usage;
use crate::format;
use crate::pages::{LoadError, error_text};

#[component]
pub fn UsagePage() -> impl IntoView {
    // Decoded once from the raw address (the router's query map decodes twice).
    let search = use_location().search;
    let range = move || {
        search.with(|raw| {
            let pairs = crate::format::query_pairs(raw);
            (
                crate::format::first_value(&pairs, "since"),
                crate::format::first_value(&pairs, "until"),
            )
        })
    };
    let usage = Resource::new(range, |(since, until)| team_usage(since, until));
    view! {
        <AdminGuard title="Usage" hint="What the team's pipelines sent, per UTC day.">
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading usage…"</p> }>
                {move || Suspend::new(async move {
                    match usage.await {
                        Ok(usage) => view! { <UsageView usage/> }.into_any(),
                        Err(e) => view! {
                            <RangeForm since=String::new() until=String::new()/>
                            <LoadError message=error_text(&e)/>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </AdminGuard>
    }
}

#[component]
fn RangeForm(since: String, until: String) -> impl IntoView {
    view! {
        <form method="get" action="/admin/usage" class="filters" aria-label="Days shown">
            <label>"Since (UTC day)"<input type="date" name="since" value=since required/></label>
            <label>"Until (UTC day)"<input type="date" name="until" value=until required/></label>
            <button type="submit">"Show"</button>
            <a class="button secondary" href="/admin/usage">"Last 30 days"</a>
        </form>
    }
}

/// Every UTC day from `usage.since` up to `usage.until` (a midnight, excluded) with its
/// flows (0 when none).
fn flows_per_day(usage: &Usage) -> Vec<(String, u64)> {
    let mut flows: BTreeMap<&str, u64> = BTreeMap::new();
    for row in &usage.days {
        *flows.entry(row.day.as_str()).or_default() += row.flows;
    }
    let (mut day, last) = (usage.since.date(), usage.until.date());
    let mut days = Vec::new();
    while day < last && days.len() < 1000 {
        let label = format::date(day.midnight().assume_utc());
        let n = flows.get(label.as_str()).copied().unwrap_or(0);
        days.push((label, n));
        let Some(next) = day.next_day() else { break };
        day = next;
    }
    days
}

#[component]
fn UsageView(usage: Usage) -> impl IntoView {
    let days = flows_per_day(&usage);
    let total: u64 = days.iter().map(|(_, n)| n).sum();
    let busiest = days.iter().max_by_key(|(_, n)| *n).filter(|(_, n)| *n > 0);
    let span = match days.len() {
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    };
    let summary = match busiest {
        Some((day, n)) => format!(
            "{} flow{} accepted over {span}; the busiest day was {day}, with {}.",
            format::count(total),
            if total == 1 { "" } else { "s" },
            format::count(*n)
        ),
        None => format!("No flow was accepted over {span}."),
    };
    // `usage.until` is the midnight after the last day shown: the form names that last day.
    let last_day = usage.until - time::Duration::days(1);
    let (since, until) = (format::date(usage.since), format::date(last_day));
    view! {
        <RangeForm since=since.clone() until=until.clone()/>
        <figure class="card usage-chart">
            <Chart days=days.clone() title=format!("Flows accepted per day, {since} to {until}")/>
            <figcaption>{summary}</figcaption>
        </figure>
        <UsageTable rows=usage.days/>
    }
}

/// Bars of flows per day; each bar's `<title>` says its day and count.
#[component]
fn Chart(days: Vec<(String, u64)>, title: String) -> impl IntoView {
    const HEIGHT: u64 = 100;
    const STEP: usize = 10;
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let width = (days.len() * STEP).max(STEP);
    let bars = days
        .into_iter()
        .enumerate()
        .map(|(i, (day, n))| {
            // Any day with flows gets at least a sliver, so it can be told from none.
            let h = if n == 0 { 0 } else { (n * HEIGHT / max).max(2) };
            view! {
                <g class="bar">
                    <title>{format!("{day}: {} flows", format::count(n))}</title>
                    <rect x=(i * STEP + 1).to_string() y=(HEIGHT - h).to_string() width=(STEP - 2).to_string() height=h.to_string()/>
                </g>
            }
        })
        .collect_view();
    view! {
        <svg
            role="img"
            aria-labelledby="usage-chart-title"
            viewBox=format!("0 0 {width} {HEIGHT}")
            preserveAspectRatio="none"
            class="bars"
        >
            <title id="usage-chart-title">{title}</title>
            {bars}
            <line x1="0" y1=HEIGHT.to_string() x2=width.to_string() y2=HEIGHT.to_string() class="axis"/>
        </svg>
    }
}

#[component]
fn UsageTable(rows: Vec<UsageRow>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="empty">"Nothing was sent in these days."</p> }.into_any();
    }
    let mut total = UsageRow::default();
    for r in &rows {
        total.flows += r.flows;
        total.steps += r.steps;
        total.observations += r.observations;
        total.bytes += r.bytes;
        total.rejected += r.rejected;
        total.rate_limited += r.rate_limited;
        total.replayed += r.replayed;
    }
    let cells = |r: &UsageRow| {
        view! {
            <td class="num">{format::count(r.flows)}</td>
            <td class="num">{format::count(r.steps)}</td>
            <td class="num">{format::count(r.observations)}</td>
            <td class="num" title=format!("{} bytes", format::count(r.bytes))>{format::bytes(r.bytes)}</td>
            <td class="num">{format::count(r.rejected)}</td>
            <td class="num">{format::count(r.rate_limited)}</td>
            <td class="num">{format::count(r.replayed)}</td>
        }
    };
    let body = rows
        .iter()
        .map(|r| {
            let pipeline = match r.pipeline.as_deref() {
                Some(p) if !p.is_empty() => p.to_string(),
                _ => "(not known)".to_string(),
            };
            view! {
                <tr>
                    <th scope="row">{r.day.clone()}</th>
                    <td>{pipeline}</td>
                    {cells(r)}
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="data admin-table usage-table">
            <caption>"Usage per day and pipeline (pipeline “not known”: refused before it was read, or a steps push)"</caption>
            <thead>
                <tr>
                    <th scope="col">"Day (UTC)"</th>
                    <th scope="col">"Pipeline"</th>
                    <th scope="col" class="num">"Flows"</th>
                    <th scope="col" class="num">"Steps"</th>
                    <th scope="col" class="num">"Observations"</th>
                    <th scope="col" class="num">"Bytes"</th>
                    <th scope="col" class="num">"Rejected"</th>
                    <th scope="col" class="num">"Rate-limited"</th>
                    <th scope="col" class="num">"Replayed"</th>
                </tr>
            </thead>
            <tbody>{body}</tbody>
            <tfoot>
                <tr>
                    <th scope="row" colspan="2">"Total"</th>
                    {cells(&total)}
                </tr>
            </tfoot>
        </table>
    }
    .into_any()
}
