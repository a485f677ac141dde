//! `/pipelines` (every pipeline of the team at a glance) and `/pipelines/{name}` (one
//! pipeline over a range, beside another range): median funnels, the reason mix of each step
//! over time with exact counts, and the distribution of elimination shares.
//!
//! Static once computed, so the server renders them to HTML ([`render`]) and the browser only
//! places it (as the compare page): charts are plain SVG drawn in Rust, each bar titled, each
//! reason segment a link to the flows it counts, and every figure also in a table.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_location;

use super::{LoadError, error_text};
use crate::api::insights::{InsightParams, pipeline_html, pipelines_html};

#[component]
pub fn PipelinesPage() -> impl IntoView {
    let page = Resource::new(|| (), |_| pipelines_html());
    view! {
        <Title text="Pipelines · Flow Trail"/>
        <Suspense fallback=|| view! { <p class="loading" role="status">"Loading pipelines…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(html) => view! { <div class="insights-host" inner_html=html></div> }.into_any(),
                    Err(e) => view! {
                        <section class="empty">
                            <h1>"Pipelines not available"</h1>
                            <LoadError message=error_text(&e)/>
                        </section>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn PipelinePage() -> impl IntoView {
    let location = use_location();
    let search = location.search;
    // The name from the path, percent-decoded once (the route's parameters decode it twice:
    // `x%2541` would read as `xA`). A path keeps `+` as is (it is a space only in a query).
    // Bytes that are not UTF-8 are refused, not replaced (`%FF` names no pipeline: a name
    // is text), as the flows list refuses them in a query.
    let name = move || -> Result<String, String> {
        let path = location.pathname.read();
        let raw = path.strip_prefix("/pipelines/").unwrap_or_default();
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map(|name| name.into_owned())
            .map_err(|_| {
                "The pipeline's name in the address is not UTF-8 once percent-decoded.".to_string()
            })
    };
    // Each value decoded once, from the raw address (see `InsightParams::from_query`).
    let args = move || (name(), search.with(|raw| InsightParams::from_query(raw)));
    let page = Resource::new(args, |(name, params)| async move {
        match name {
            Ok(name) => pipeline_html(name, params).await,
            Err(message) => Err(ServerFnError::ServerError(message)),
        }
    });
    let title = move || format!("{} · Pipelines · Flow Trail", name().unwrap_or_default());
    view! {
        <Title text=title/>
        <Suspense fallback=|| view! { <p class="loading" role="status">"Loading the pipeline…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(html) => view! { <div class="insights-host" inner_html=html></div> }.into_any(),
                    Err(e) => view! {
                        <section class="empty">
                            <h1>"Pipeline not available"</h1>
                            <LoadError message=error_text(&e)/>
                            <p><a href="/pipelines">"Back to the pipelines"</a></p>
                        </section>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}

/// Server side: the pages as HTML.
#[cfg(feature = "ssr")]
pub mod render {
    use flowtrail_types::insights::{
        PipelineInsight, PipelineSummary, PipelinesOverview, RangeInsight, SHARE_BINS,
        StepReasonMix, StepShift,
    };
    use flowtrail_types::{Funnel, StatsBucket};
    use leptos::prelude::*;
    use time::OffsetDateTime;

    use crate::api::insights::InsightParams;
    use crate::format;

    /// Reason codes drawn in their own colour per step; the rest are drawn together.
    const SERIES: usize = 7;

    /// Series colours, each at least 3:1 against the white panel (WCAG 2.1 1.4.11); the last
    /// is "other codes".
    const COLOURS: [&str; SERIES + 1] = [
        "#1f3a5f", "#b23b3b", "#287046", "#6a3fb5", "#845b00", "#0e6e8c", "#a0306e", "#5b6675",
    ];

    /// The flows list's address for these parameters (blank ones left out).
    fn flows_href(pairs: &[(&str, String)]) -> String {
        let query: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", format::encode(v)))
            .collect();
        format!("/?{}", query.join("&"))
    }

    fn rfc3339(at: OffsetDateTime) -> String {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// A median elimination share, or a dash when no run took candidates in.
    fn share_text(share: Option<f64>) -> String {
        share.map(format::percent).unwrap_or_else(|| "—".into())
    }

    fn share_of(part: u64, all: u64) -> String {
        if all == 0 {
            "—".into()
        } else {
            format::percent(part as f64 / all as f64)
        }
    }

    fn funnel_text(funnel: &Funnel) -> String {
        funnel
            .steps
            .iter()
            .map(|s| format!("{} {}", s.name, format::fixed(s.median_out, 1)))
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// A change of share (−1..=1) in percentage points: `+12.5 pts`, `-3.0 pts`.
    fn points(change: f64) -> String {
        let points = change * 100.0;
        format!(
            "{}{} pts",
            if points >= 0.0 { "+" } else { "" },
            format::fixed(points, 1)
        )
    }

    fn shift_text(shift: &StepShift) -> String {
        format!(
            "{}: {} → {} ({})",
            shift.step,
            format::percent(shift.baseline),
            format::percent(shift.recent),
            points(shift.change())
        )
    }

    /// `/pipelines`, rendered.
    pub fn overview(overview: PipelinesOverview) -> String {
        let week = (
            rfc3339(overview.now - time::Duration::days(7)),
            rfc3339(overview.now),
        );
        let rows = overview
            .pipelines
            .iter()
            .map(|p| overview_row(p, &week))
            .collect_view();
        let body = if overview.pipelines.is_empty() {
            view! {
                <p class="empty">
                    "No pipeline has sent a flow yet. Send one (see the README's first flow) and it appears here."
                </p>
            }
            .into_any()
        } else {
            view! {
                <table class="data pipelines-table">
                    <caption>"Pipelines of the team"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Pipeline"</th>
                            <th scope="col">"Flows per day (14 days)"</th>
                            <th scope="col" class="num">"Flows (7 days)"</th>
                            <th scope="col" class="num">"Failed (7 days)"</th>
                            <th scope="col">"Median funnel (7 days): candidates out"</th>
                            <th scope="col">"Moved most: elimination share, 7 days before → last 24 h"</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            }
            .into_any()
        };
        view! {
            <section class="pipelines">
                <div class="page-head">
                    <h1>"Pipelines"</h1>
                    <p class="hint">
                        "Every pipeline of the team: flows per UTC day, failures and the median funnel of the last 7 days, and the step whose median elimination share moved most in the last 24 hours against the 7 days before. As of "
                        {format::timestamp(overview.now)}"."
                    </p>
                </div>
                {body}
            </section>
        }
        .to_html()
    }

    fn overview_row(
        p: &PipelineSummary,
        (since, until): &(String, String),
    ) -> impl IntoView + use<> {
        let name = p.pipeline.clone();
        let total: u64 = p.days.iter().map(|d| d.flows).sum();
        let busiest = p
            .days
            .iter()
            .max_by_key(|d| d.flows)
            .filter(|d| d.flows > 0);
        let label = match busiest {
            Some(d) => format!(
                "{} flows over 14 days; most on {} ({})",
                format::count(total),
                d.day,
                format::count(d.flows)
            ),
            None => "No flow in 14 days".to_string(),
        };
        let week = flows_href(&[
            ("pipeline", name.clone()),
            ("since", since.clone()),
            ("until", until.clone()),
        ]);
        let failed = flows_href(&[
            ("pipeline", name.clone()),
            ("status", "failed".into()),
            ("since", since.clone()),
            ("until", until.clone()),
        ]);
        view! {
            <tr>
                <th scope="row"><a href=format!("/pipelines/{}", format::encode(&name))>{name.clone()}</a></th>
                <td>{sparkline(p, label)}</td>
                <td class="num"><a href=week>{format::count(p.flows_7d)}</a></td>
                <td class="num">
                    <a href=failed>{format::count(p.failed_7d)}</a>
                    {format!(" ({})", share_of(p.failed_7d, p.flows_7d))}
                </td>
                <td>{p.funnel.as_ref().map(funnel_text).unwrap_or_else(|| "—".into())}</td>
                <td>{p.mover.as_ref().map(shift_text).unwrap_or_else(|| "—".into())}</td>
            </tr>
        }
    }

    fn sparkline(p: &PipelineSummary, label: String) -> impl IntoView + use<> {
        const H: u64 = 24;
        const W: usize = 6;
        let max = p.days.iter().map(|d| d.flows).max().unwrap_or(0).max(1);
        let bars = p
            .days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let h = if d.flows == 0 { 0 } else { (d.flows * H / max).max(2) };
                view! {
                    <rect x=(i * W).to_string() y=(H - h).to_string() width=(W - 1).to_string() height=h.to_string()>
                        <title>{format!("{}: {} flows, {} failed", d.day, format::count(d.flows), format::count(d.failed))}</title>
                    </rect>
                }
            })
            .collect_view();
        view! {
            <svg class="sparkline" role="img" aria-label=label viewBox=format!("0 0 {} {H}", p.days.len() * W) preserveAspectRatio="none">
                {bars}
            </svg>
        }
    }

    /// `/pipelines/{name}`, rendered.
    pub fn pipeline(insight: PipelineInsight, params: &InsightParams) -> String {
        let name = insight.pipeline.clone();
        let by = match insight.bucket {
            StatsBucket::Hour => "hour",
            StatsBucket::Day => "day",
        };
        let range = &insight.range;
        let summary = range_summary("Shown", &name, range);
        let versus_summary = insight
            .versus
            .as_ref()
            .map(|v| range_summary("Compared with", &name, v));
        let funnel = funnel_table(range, insight.versus.as_ref());
        let steps = range
            .steps
            .iter()
            .enumerate()
            .map(|(i, mix)| {
                let other = insight
                    .versus
                    .as_ref()
                    .and_then(|v| v.steps.iter().find(|s| s.step == mix.step));
                step_section(i, &name, range, mix, other, insight.bucket, by)
            })
            .collect_view();
        let no_steps = range.steps.is_empty().then(|| {
            view! { <p class="empty">"No flow of this pipeline recorded a step in this range."</p> }
        });
        view! {
            <section class="pipeline-insight">
                <div class="page-head">
                    <p class="crumbs"><a href="/pipelines">"Pipelines"</a>" / "{name.clone()}</p>
                    <h1>"Pipeline "{name.clone()}</h1>
                </div>
                {range_form(&name, params, by)}
                {summary}
                {versus_summary}
                {funnel}
                {no_steps}
                {steps}
            </section>
        }
        .to_html()
    }

    fn range_form(name: &str, params: &InsightParams, by: &str) -> impl IntoView + use<> {
        let value = |v: &Option<String>| v.clone().unwrap_or_default();
        let chosen = params.bucket.clone().unwrap_or_default();
        let option = move |value: &'static str, label: &'static str| {
            view! { <option value=value selected=chosen == value>{label}</option> }
        };
        view! {
            <form method="get" action=format!("/pipelines/{}", format::encode(name)) class="filters" aria-label="Range shown">
                <label>"Since"<input type="text" name="since" placeholder="2026-11-20T09:00:00Z" value=value(&params.since)/></label>
                <label>"Until"<input type="text" name="until" placeholder="now" value=value(&params.until)/></label>
                <label>"Bucket"
                    <select name="bucket">
                        {option("", "by range length")}
                        {option("hour", "hour")}
                        {option("day", "day")}
                    </select>
                </label>
                <label>"Tag"<input type="text" name="tag" placeholder="version:v42" value=value(&params.tag)/></label>
                <label>"Compare with (since)"<input type="text" name="vs_since" placeholder="none" value=value(&params.vs_since)/></label>
                <label>"Compare with (until)"<input type="text" name="vs_until" placeholder="same length" value=value(&params.vs_until)/></label>
                <label>"Compare with (tag)"<input type="text" name="vs_tag" placeholder="version:v41" value=value(&params.vs_tag)/></label>
                <button type="submit">"Show"</button>
                <a class="button secondary" href=format!("/pipelines/{}", format::encode(name))>"Last 7 days"</a>
                <span class="hint">{format!("Counted per {by}, UTC.")}</span>
            </form>
        }
    }

    /// The side's tag as the flows list's `tag` parameter (empty when none).
    fn tag_param(range: &RangeInsight) -> String {
        range
            .tag
            .as_ref()
            .map(|(key, value)| flowtrail_types::tag_filter(key, value))
            .unwrap_or_default()
    }

    fn range_summary(
        label: &'static str,
        name: &str,
        range: &RangeInsight,
    ) -> impl IntoView + use<> {
        let href = flows_href(&[
            ("pipeline", name.to_string()),
            ("since", rfc3339(range.since)),
            ("until", rfc3339(range.until)),
            ("tag", tag_param(range)),
        ]);
        let tagged = range
            .tag
            .as_ref()
            .map(|(key, value)| format!(", tagged {key}={value}"))
            .unwrap_or_default();
        view! {
            <p class="range-summary">
                <strong>{label}": "</strong>
                {format!(
                    "{} to {}{tagged}: {} flows, {} failed ({}). ",
                    format::timestamp(range.since),
                    format::timestamp(range.until),
                    format::count(range.flows),
                    format::count(range.failed),
                    share_of(range.failed, range.flows)
                )}
                <a href=href>"Open these flows"</a>
            </p>
        }
    }

    fn funnel_table(range: &RangeInsight, versus: Option<&RangeInsight>) -> impl IntoView + use<> {
        let Some(funnel) = range.funnel.clone() else {
            return view! { <p class="empty">"No median funnel: no flow in this range counted its candidates."</p> }.into_any();
        };
        let other = versus.and_then(|v| v.funnel.clone());
        let compared = versus.is_some();
        let note = funnel.capped.then(|| {
            format!(
                "Medians of the newest {} of {} flows.",
                format::count(funnel.flows),
                format::count(range.flows)
            )
        });
        let rows = funnel
            .steps
            .iter()
            .map(|s| {
                let before = other
                    .as_ref()
                    .and_then(|f| f.steps.iter().find(|b| b.name == s.name));
                let cells = compared.then(|| {
                    let (share, change) = match before {
                        Some(b) => (
                            share_text(b.median_eliminated_share),
                            s.median_eliminated_share
                                .zip(b.median_eliminated_share)
                                .map(|(now, before)| points(now - before))
                                .unwrap_or_else(|| "—".into()),
                        ),
                        None => ("—".into(), "—".into()),
                    };
                    view! {
                        <td class="num">{before.map(|b| format::count(b.runs)).unwrap_or_else(|| "—".into())}</td>
                        <td class="num">{share}</td>
                        <td class="num">{change}</td>
                    }
                });
                view! {
                    <tr>
                        <th scope="row">{s.name.clone()}</th>
                        <td>{s.kind.as_str()}</td>
                        <td class="num">{format::count(s.runs)}</td>
                        <td class="num">{format::fixed(s.median_in, 1)}</td>
                        <td class="num">{format::fixed(s.median_out, 1)}</td>
                        <td class="num">{share_text(s.median_eliminated_share)}</td>
                        {cells}
                    </tr>
                }
            })
            .collect_view();
        let head = compared.then(|| {
            view! {
                <th scope="col" class="num">"Runs (compared)"</th>
                <th scope="col" class="num">"Median eliminated (compared)"</th>
                <th scope="col" class="num">"Change"</th>
            }
        });
        view! {
            <table class="data funnel-table">
                <caption>"Median funnel per step"{note.map(|n| format!(" — {n}"))}</caption>
                <thead>
                    <tr>
                        <th scope="col">"Step"</th>
                        <th scope="col">"Kind"</th>
                        <th scope="col" class="num">"Runs"</th>
                        <th scope="col" class="num">"Median in"</th>
                        <th scope="col" class="num">"Median out"</th>
                        <th scope="col" class="num">"Median eliminated"</th>
                        {head}
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    }

    /// The bucket's label: `2026-12-01 14:00` by hour, `2026-12-01` by day.
    fn bucket_label(start: OffsetDateTime, bucket: StatsBucket) -> String {
        match bucket {
            StatsBucket::Hour => format!("{} {:02}:00", format::date(start), start.hour()),
            StatsBucket::Day => format::date(start),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step_section(
        index: usize,
        pipeline: &str,
        range: &RangeInsight,
        mix: &StepReasonMix,
        other: Option<&StepReasonMix>,
        bucket: StatsBucket,
        by: &str,
    ) -> impl IntoView + use<> {
        let heading = format!("step-{index}");
        let total: u128 = mix.totals.iter().sum();
        let chart = (total > 0).then(|| reason_chart(&heading, pipeline, range, mix, bucket, by));
        let empty = (total == 0)
            .then(|| view! { <p class="empty">"No rejection reason was counted at this step in this range."</p> });
        let legend = mix
            .codes
            .iter()
            .zip(&mix.totals)
            .enumerate()
            .map(|(i, (code, n))| {
                let colour = COLOURS[i.min(SERIES)];
                view! {
                    <li>
                        <span class="swatch" style=format!("background:{colour}") aria-hidden="true"></span>
                        {format!("{code}: {} ({})", n, share_u128(*n, total))}
                    </li>
                }
            })
            .collect_view();
        let comparison = other.map(|o| reason_comparison(mix, o));
        view! {
            <section class="card step-insight" aria-labelledby=heading.clone()>
                <h2 id=heading.clone()>"Step "{mix.step.clone()}</h2>
                {chart}
                {empty}
                <ul class="legend" aria-label="Reasons over the range, most frequent first">{legend}</ul>
                {comparison}
                {share_chart(&heading, mix)}
                {counts_table(pipeline, range, mix, bucket, by)}
            </section>
        }
    }

    fn share_u128(part: u128, all: u128) -> String {
        if all == 0 {
            "—".into()
        } else {
            format::percent(part as f64 / all as f64)
        }
    }

    /// The flows list for one bucket (clipped to the range): the flows of the side whose step
    /// `step` counted reason `code`.
    fn bucket_href(
        pipeline: &str,
        range: &RangeInsight,
        start: OffsetDateTime,
        bucket: StatsBucket,
        (step, code): (&str, &str),
    ) -> String {
        // The range ends at or before 9999-12-31T23:59:59.999999999Z; its last bucket may not.
        let end = start
            .checked_add(time::Duration::milliseconds(bucket.millis()))
            .unwrap_or(range.until);
        flows_href(&[
            ("pipeline", pipeline.to_string()),
            ("since", rfc3339(start.max(range.since))),
            ("until", rfc3339(end.min(range.until))),
            ("tag", tag_param(range)),
            ("step", step.to_string()),
            ("reason", code.to_string()),
        ])
    }

    /// Stacked bars of reason counts per bucket; each segment links to its flows.
    fn reason_chart(
        heading: &str,
        pipeline: &str,
        range: &RangeInsight,
        mix: &StepReasonMix,
        bucket: StatsBucket,
        by: &str,
    ) -> impl IntoView + use<> {
        const H: f64 = 120.0;
        const W: usize = 12;
        // Every bucket of the range, empty ones too, so a gap in time shows as one.
        let width_ms = bucket.millis();
        let first_ms = (range.since.unix_timestamp_nanos() / 1_000_000) as i64;
        let until_ms = (range.until.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut starts = Vec::new();
        let mut at = first_ms.div_euclid(width_ms) * width_ms;
        while at < until_ms && starts.len() <= crate::api::insights::MAX_BUCKETS as usize {
            starts.push(at);
            at += width_ms;
        }
        let counted: std::collections::HashMap<i64, &Vec<u128>> = mix
            .buckets
            .iter()
            .map(|b| {
                (
                    (b.start.unix_timestamp_nanos() / 1_000_000) as i64,
                    &b.counts,
                )
            })
            .collect();
        let tallest: u128 = mix
            .buckets
            .iter()
            .map(|b| b.counts.iter().sum::<u128>())
            .max()
            .unwrap_or(0);
        let max = tallest.max(1) as f64;
        let empty: Vec<u128> = Vec::new();
        let bars = starts
            .iter()
            .enumerate()
            .map(|(i, start_ms)| {
                let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(*start_ms) * 1_000_000)
                    .unwrap_or(range.since);
                let label = bucket_label(start, bucket);
                let counts = counted.get(start_ms).copied().unwrap_or(&empty);
                let mut y = H;
                let segments = counts
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(c, n)| {
                        let h = (*n as f64 / max * H).max(1.5);
                        y -= h;
                        let code = &mix.codes[c];
                        let text = format!("{label}: {n} × {code} — open these flows");
                        let aria = text.clone();
                        view! {
                            <a href=bucket_href(pipeline, range, start, bucket, (&mix.step, code)) aria-label=aria>
                                <rect x=(i * W + 1).to_string() y=format!("{y:.2}") width=(W - 2).to_string() height=format!("{h:.2}") fill=COLOURS[c.min(SERIES)]>
                                    <title>{text}</title>
                                </rect>
                            </a>
                        }
                    })
                    .collect_view();
                view! { <g class="bucket">{segments}</g> }
            })
            .collect_view();
        let width = (starts.len() * W).max(W);
        let label_of = |ms: &i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000)
                .map(|t| bucket_label(t, bucket))
                .ok()
        };
        let (first, last) = (
            starts.first().and_then(label_of),
            starts.last().and_then(label_of),
        );
        let caption = format!(
            "Rejections per {by} by reason (exact counts), {} to {} (UTC, every {by} shown, empty ones too); tallest bar {}. Each segment opens the flows of that {by} whose step {} counted its reason.",
            first.unwrap_or_default(),
            last.unwrap_or_default(),
            tallest,
            mix.step
        );
        let title_id = format!("{heading}-mix");
        let labelled_by = title_id.clone();
        view! {
            <figure class="reason-mix">
                <svg role="group" aria-labelledby=labelled_by viewBox=format!("0 0 {width} {H}") preserveAspectRatio="none" class="stacked">
                    <title id=title_id>{format!("Reason mix of step {} per {by}", mix.step)}</title>
                    {bars}
                </svg>
                <figcaption>{caption}</figcaption>
            </figure>
        }
    }

    fn reason_comparison(mix: &StepReasonMix, other: &StepReasonMix) -> impl IntoView + use<> {
        let (a_total, b_total): (u128, u128) = (mix.totals.iter().sum(), other.totals.iter().sum());
        let mut codes: Vec<&String> = mix.codes.iter().collect();
        for code in &other.codes {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        let count = |m: &StepReasonMix, code: &str| {
            m.codes
                .iter()
                .position(|c| c == code)
                .map(|i| m.totals[i])
                .unwrap_or(0)
        };
        let rows = codes
            .into_iter()
            .map(|code| {
                let (a, b) = (count(mix, code), count(other, code));
                let ratio = |n: u128, t: u128| if t == 0 { 0.0 } else { n as f64 / t as f64 };
                let change = points(ratio(a, a_total) - ratio(b, b_total));
                view! {
                    <tr>
                        <th scope="row">{code.clone()}</th>
                        <td class="num">{format!("{a} ({})", share_u128(a, a_total))}</td>
                        <td class="num">{format!("{b} ({})", share_u128(b, b_total))}</td>
                        <td class="num">{change}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <table class="data reason-compare">
                <caption>"Reason mix: this side against the side compared with (share of the step's rejections)"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Reason"</th>
                        <th scope="col" class="num">"This side"</th>
                        <th scope="col" class="num">"Compared with"</th>
                        <th scope="col" class="num">"Change"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
    }

    fn share_chart(heading: &str, mix: &StepReasonMix) -> impl IntoView + use<> {
        const H: u64 = 60;
        const W: usize = 20;
        let shares = &mix.shares;
        let max = shares.bins.iter().copied().max().unwrap_or(0).max(1);
        let bars = shares
            .bins
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let h = if *n == 0 { 0 } else { (n * H / max).max(2) };
                let text = format!("{}–{} % eliminated: {} flows", i * 10, (i + 1) * 10, format::count(*n));
                view! {
                    <rect x=(i * W + 1).to_string() y=(H - h).to_string() width=(W - 2).to_string() height=h.to_string()>
                        <title>{text}</title>
                    </rect>
                }
            })
            .collect_view();
        let words = shares
            .bins
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| format!("{}–{} %: {}", i * 10, (i + 1) * 10, format::count(*n)))
            .collect::<Vec<_>>()
            .join("; ");
        let of = if shares.capped {
            format!(
                "the newest {} flows of the range",
                format::count(shares.flows)
            )
        } else {
            format!("{} flows", format::count(shares.flows))
        };
        let label = format!(
            "Share of candidates eliminated at step {} per flow, over {of}: {}",
            mix.step,
            if words.is_empty() {
                "no run of it took candidates in".to_string()
            } else {
                words
            }
        );
        view! {
            <figure class="share-chart">
                <svg role="img" aria-label=label.clone() id=format!("{heading}-shares") viewBox=format!("0 0 {} {H}", SHARE_BINS * W) preserveAspectRatio="none" class="bars">
                    {bars}
                </svg>
                <figcaption>{label}</figcaption>
            </figure>
        }
    }

    fn counts_table(
        pipeline: &str,
        range: &RangeInsight,
        mix: &StepReasonMix,
        bucket: StatsBucket,
        by: &str,
    ) -> impl IntoView + use<> {
        if mix.buckets.is_empty() {
            return ().into_any();
        }
        let head = mix
            .codes
            .iter()
            .map(|c| view! { <th scope="col" class="num">{c.clone()}</th> })
            .collect_view();
        let rows = mix
            .buckets
            .iter()
            .map(|b| {
                let cells = b
                    .counts
                    .iter()
                    .enumerate()
                    .map(|(c, n)| {
                        let href = bucket_href(
                            pipeline,
                            range,
                            b.start,
                            bucket,
                            (&mix.step, &mix.codes[c]),
                        );
                        let cell = if *n == 0 {
                            view! { "0" }.into_any()
                        } else {
                            view! { <a href=href>{n.to_string()}</a> }.into_any()
                        };
                        view! { <td class="num">{cell}</td> }
                    })
                    .collect_view();
                view! {
                    <tr>
                        <th scope="row">{bucket_label(b.start, bucket)}</th>
                        {cells}
                    </tr>
                }
            })
            .collect_view();
        view! {
            <details class="counts">
                <summary>{format!("Exact counts per {by}")}</summary>
                <table class="data">
                    <caption>{format!("Rejections of step {} per {by} and reason", mix.step)}</caption>
                    <thead><tr><th scope="col">{by.to_string()}</th>{head}</tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </details>
        }
        .into_any()
    }
}
