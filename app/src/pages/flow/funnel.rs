//! The flow's funnel: candidates in → out per step, the largest drop highlighted.
//!
//! Which step is the largest drop is decided by the page ([`crate::format::largest_drop`]),
//! so the highlighted bar and the step shown by default are always the same step.

use flowtrail_types::StepSummary;
use leptos::prelude::*;

use crate::format;

/// Candidates in → out per step, on a log scale so 5,000 → 30 stays readable. `largest` is
/// the index in `steps` of the step to highlight.
#[component]
pub(super) fn Funnel(steps: Vec<StepSummary>, largest: Option<usize>) -> impl IntoView {
    let max = steps
        .iter()
        .filter_map(|s| s.candidates_in.max(s.candidates_out))
        .max()
        .unwrap_or(0);
    if max == 0 {
        return ().into_any();
    }
    let width = move |n: u64| ((n as f64 + 1.0).ln() / (max as f64 + 1.0).ln() * 100.0).max(0.5);
    let rows = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.candidates_in.is_some() || s.candidates_out.is_some())
        .map(|(i, s)| {
            let input = s.candidates_in.unwrap_or(0);
            let output = s.candidates_out.unwrap_or(input);
            view! {
                <li class:largest=largest == Some(i)>
                    <span class="funnel-name">{s.name.clone()}</span>
                    <span class="funnel-bars" aria-hidden="true">
                        <span class="bar in" style=format!("width:{}%", format::fixed(width(input), 1))></span>
                        <span class="bar out" style=format!("width:{}%", format::fixed(width(output), 1))></span>
                    </span>
                    <span class="funnel-count">{format::funnel(s)}</span>
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="card funnel" aria-label="Funnel">
            <h2>"Funnel"</h2>
            <ol>{rows}</ol>
        </section>
    }
    .into_any()
}
