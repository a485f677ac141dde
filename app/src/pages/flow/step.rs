//! One step's card in the trail: kind, name, funnel, status and timing, the reasoning, the
//! rejection reasons as a bar chart, and the step's input and output. The card's head links
//! to `?step={seq}`, which selects the step whose observations the page shows.

use flowtrail_types::StepSummary;
use leptos::prelude::*;

use crate::format;

/// `largest` marks the flow's largest drop; `current` is the selected step's `seq`.
#[component]
pub(super) fn StepCard(
    step: StepSummary,
    largest: bool,
    current: Memo<Option<u32>>,
    /// How deeply the step is nested under others (0: top level).
    depth: usize,
) -> impl IntoView {
    let seq = step.seq;
    let href = format!("?step={seq}");
    // In 128 bits: thousands of codes of up to 2^53 each overflow 64.
    let total: u128 = step.reasons.values().map(|n| u128::from(*n)).sum();
    let reasons = step
        .reasons
        .iter()
        .map(|(code, n)| {
            let share = if total > 0 {
                *n as f64 / total as f64 * 100.0
            } else {
                0.0
            };
            view! {
                <li>
                    <span class="reason-code">{code.clone()}</span>
                    <span class="reason-bar" style=format!("width:{}%", format::fixed(share, 0))></span>
                    <span class="num">{format::count(*n)}</span>
                </li>
            }
        })
        .collect_view();
    let has_reasons = !step.reasons.is_empty();
    let timing = step
        .started_at
        .map(|start| format::duration(start, step.ended_at))
        .unwrap_or_else(|| "—".into());
    view! {
        <li class="step card" class:current=move || current.get() == Some(seq) class:largest=largest
            style=(depth > 0).then(|| format!("margin-inline-start:{}rem", depth as f64 * 1.25))>
            <a class="step-head" href=href aria-current=move || (current.get() == Some(seq)).then_some("true")>
                <span class=format!("kind kind-{}", step.kind)>{step.kind.as_str()}</span>
                <span class="step-name">{step.name.clone()}</span>
                <span class="step-funnel">{format::funnel(&step)}</span>
            </a>
            <p class="step-meta">
                "#"{seq}{step.parent_seq.map(|p| format!(" (inside #{p})"))}" · "{step.status.as_str()}" · "{timing}" · capture "{step.capture.as_str()}
                " · "{format::count(step.observation_count)}" observations"
            </p>
            {step.reasoning.clone().map(|r| view! { <p class="reasoning">{r}</p> })}
            {has_reasons.then(|| view! { <ul class="reasons" aria-label="Rejection reasons">{reasons}</ul> })}
            <details>
                <summary>"Input and output"</summary>
                <pre>{format::pretty(&step.input)}</pre>
                <pre>{format::pretty(&step.output)}</pre>
            </details>
        </li>
    }
}
