//! `/flows/{a}/compare/{b}`: two flows side by side, step by step (from the diff API): what
//! each step counted, which reasons moved, which candidates came or went, and whose verdict
//! changed and why.
//!
//! The comparison is static once computed, so the server renders it to HTML ([`render`]) and
//! the browser only places it: the diff types and this view never enter the WASM bundle.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use super::{LoadError, error_text};
use crate::api::compare_html;

#[component]
pub fn ComparePage() -> impl IntoView {
    let params = use_params_map();
    let ids = move || {
        let p = params.read();
        (
            p.get("a").unwrap_or_default(),
            p.get("b").unwrap_or_default(),
        )
    };
    let diff = Resource::new(ids, |(a, b)| compare_html(a, b));
    view! {
        <Suspense fallback=|| view! { <p class="loading" role="status">"Comparing…"</p> }>
            {move || Suspend::new(async move {
                match diff.await {
                    Ok(html) => view! { <div class="compare-host" inner_html=html></div> }.into_any(),
                    Err(e) => view! {
                        <section class="empty">
                            <h1>"Comparison not available"</h1>
                            <LoadError message=error_text(&e)/>
                            <p><a href="/">"Back to the flows"</a></p>
                        </section>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}

/// Server side: the comparison as HTML.
#[cfg(feature = "ssr")]
pub mod render {
    use flowtrail_types::{FlowDiff, FlowSummary, Pair, StepDiff, ValueChange};
    use leptos::prelude::*;

    use crate::format;

    /// Candidate ids listed per side before "and N more".
    const MAX_IDS: usize = 30;

    /// The comparison, rendered.
    pub fn compare(diff: FlowDiff) -> String {
        compare_view(diff).to_html()
    }

    fn compare_view(diff: FlowDiff) -> impl IntoView {
        let changed = diff.steps.iter().filter(|s| step_changed(s)).count();
        let headline = if changed == 0 && diff.input.is_none() && diff.output.is_none() {
            "The two flows decided alike: no step differs.".to_string()
        } else {
            format!(
                "{changed} of {} steps differ{}{}.",
                diff.steps.len(),
                if diff.input.is_some() {
                    "; the inputs differ"
                } else {
                    ""
                },
                if diff.output.is_some() {
                    "; the outputs differ"
                } else {
                    ""
                },
            )
        };
        let steps = diff.steps.iter().map(step_view).collect_view();
        view! {
            <section class="compare">
                <div class="page-head">
                    <p class="crumbs"><a href="/">"Flows"</a>" / compare"</p>
                    <h1>"Compare flows"</h1>
                    <p class="hint" role="status">{headline}</p>
                </div>
                <div class="sides">
                    {side("A", &diff.a)}
                    {side("B", &diff.b)}
                </div>
                {diff.input.as_ref().map(|c| change_view("Input", c))}
                {diff.output.as_ref().map(|c| change_view("Output", c))}
                <ol class="compare-steps" aria-label="Steps compared">{steps}</ol>
            </section>
        }
    }

    fn side(label: &'static str, flow: &FlowSummary) -> impl IntoView + use<> {
        view! {
            <div class="card side">
                <h2>{label}": "<a href=format!("/flows/{}", flow.id)>{flow.pipeline.clone()}</a></h2>
                <p class="meta">
                    <span class=format!("status status-{}", flow.status)>{flow.status.as_str()}</span>
                    " · started "{format::timestamp(flow.started_at)}
                    " · "{format::duration(flow.started_at, flow.ended_at)}
                </p>
                <p class="mono small">{flow.id.to_string()}</p>
            </div>
        }
    }

    fn step_changed(step: &StepDiff) -> bool {
        step.seq_a.is_none()
            || step.seq_b.is_none()
            || step.candidates_in.a != step.candidates_in.b
            || step.candidates_out.a != step.candidates_out.b
            || !step.reasons.is_empty()
            || !step.added.is_empty()
            || !step.removed.is_empty()
            || !step.verdict_changed.is_empty()
            || step.input.is_some()
            || step.output.is_some()
            || step.reasoning.is_some()
    }

    fn count(n: Option<u64>) -> String {
        n.map(format::count).unwrap_or_else(|| "—".into())
    }

    fn funnel(input: &Pair<Option<u64>>, output: &Pair<Option<u64>>, a: bool) -> String {
        let (i, o) = if a {
            (input.a, output.a)
        } else {
            (input.b, output.b)
        };
        format!("{} → {}", count(i), count(o))
    }

    fn ids(list: &[String]) -> String {
        let mut text = list
            .iter()
            .take(MAX_IDS)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if list.len() > MAX_IDS {
            text.push_str(&format!(" and {} more", list.len() - MAX_IDS));
        }
        text
    }

    fn step_view(step: &StepDiff) -> impl IntoView + use<> {
        let changed = step_changed(step);
        let where_ = match (step.seq_a, step.seq_b) {
            (Some(a), Some(b)) if a == b => format!("#{a}"),
            (Some(a), Some(b)) => format!("#{a} / #{b}"),
            (Some(a), None) => format!("#{a}, only in A"),
            (None, Some(b)) => format!("#{b}, only in B"),
            (None, None) => String::new(),
        };
        let reasons = step
            .reasons
            .iter()
            .map(|(code, n)| {
                view! {
                    <tr>
                        <th scope="row"><code>{code.clone()}</code></th>
                        <td class="num">{format::count(n.a)}</td>
                        <td class="num">{format::count(n.b)}</td>
                    </tr>
                }
            })
            .collect_view();
        let has_reasons = !step.reasons.is_empty();
        let verdicts = step
            .verdict_changed
            .iter()
            .map(|v| {
                view! {
                    <tr>
                        <th scope="row" class="mono">{v.candidate_id.clone()}</th>
                        <td>
                            <span class=format!("verdict verdict-{}", v.a)>{v.a.as_str()}</span>
                            " "{format::score(v.score_a)}
                            <span class="reason-text">" "{format::reasons(&v.reasons_a)}</span>
                        </td>
                        <td>
                            <span class=format!("verdict verdict-{}", v.b)>{v.b.as_str()}</span>
                            " "{format::score(v.score_b)}
                            <span class="reason-text">" "{format::reasons(&v.reasons_b)}</span>
                        </td>
                    </tr>
                }
            })
            .collect_view();
        let has_verdicts = !step.verdict_changed.is_empty();
        let sample_note = (!step.exact).then(|| {
            view! { <p class="hint">"A side kept only a sample: added and removed compare samples."</p> }
        });
        view! {
            <li class="card compare-step" class:changed=changed class:same=!changed>
                <div class="compare-step-head">
                    <span class=format!("kind kind-{}", step.kind)>{step.kind.as_str()}</span>
                    <span class="step-name">{step.name.clone()}</span>
                    <span class="hint">{where_}</span>
                    <span class="compare-funnel">
                        <span>"A "{funnel(&step.candidates_in, &step.candidates_out, true)}</span>
                        <span>"B "{funnel(&step.candidates_in, &step.candidates_out, false)}</span>
                    </span>
                    {(!changed).then(|| view! { <span class="same-badge">"same"</span> })}
                </div>
                {sample_note}
                {has_reasons.then(|| view! {
                    <table class="data compact">
                        <caption>"Reason counts that differ"</caption>
                        <thead><tr><th scope="col">"Reason"</th><th scope="col" class="num">"A"</th><th scope="col" class="num">"B"</th></tr></thead>
                        <tbody>{reasons}</tbody>
                    </table>
                })}
                {(!step.added.is_empty()).then(|| view! {
                    <p class="added"><strong>{format!("{} added in B: ", step.added.len())}</strong><span class="mono">{ids(&step.added)}</span></p>
                })}
                {(!step.removed.is_empty()).then(|| view! {
                    <p class="removed"><strong>{format!("{} removed in B: ", step.removed.len())}</strong><span class="mono">{ids(&step.removed)}</span></p>
                })}
                {has_verdicts.then(|| view! {
                    <table class="data compact">
                        <caption>"Verdicts that changed"</caption>
                        <thead><tr><th scope="col">"Candidate"</th><th scope="col">"A"</th><th scope="col">"B"</th></tr></thead>
                        <tbody>{verdicts}</tbody>
                    </table>
                })}
                {step.reasoning.as_ref().map(|r| view! {
                    <div class="sides">
                        <div><h3>"Reasoning A"</h3><p class="reasoning">{r.a.clone().unwrap_or_default()}</p></div>
                        <div><h3>"Reasoning B"</h3><p class="reasoning">{r.b.clone().unwrap_or_default()}</p></div>
                    </div>
                })}
                {step.input.as_ref().map(|c| change_view("Step input", c))}
                {step.output.as_ref().map(|c| change_view("Step output", c))}
            </li>
        }
    }

    fn change_view(label: &'static str, change: &ValueChange) -> impl IntoView + use<> {
        view! {
            <details class="change" open>
                <summary>{label}" differs"</summary>
                <div class="sides">
                    <pre aria-label=format!("{label} A")>{format::pretty(&change.a)}</pre>
                    <pre aria-label=format!("{label} B")>{format::pretty(&change.b)}</pre>
                </div>
            </details>
        }
    }
}
