//! The retention page's reports: what a previewed policy would delete, and the sweeps.

use flowtrail_types::admin::{RetentionPreview, RetentionState};
use leptos::prelude::*;

use crate::format;

/// What saving the previewed policy would delete now.
#[component]
pub fn PreviewResult(result: RetentionPreview, stale: Signal<bool>) -> impl IntoView {
    let summary = if result.flows == 0 {
        "Saving this policy would delete no flow now.".to_string()
    } else {
        format!(
            "Saving this policy would delete {} flow{} now, with {} ({} bytes) of stored observations.",
            format::count(result.flows),
            if result.flows == 1 { "" } else { "s" },
            format::bytes(result.bytes),
            format::count(result.bytes),
        )
    };
    let oldest = match result.oldest_kept {
        Some(at) => format!("The oldest flow kept started {}.", format::timestamp(at)),
        None => "No flow would be left.".into(),
    };
    let rows = result
        .pipelines
        .iter()
        .map(|p| {
            view! {
                <tr>
                    <th scope="row">{p.pipeline.clone()}</th>
                    <td class="num">{format::count(p.flows)}</td>
                    <td class="num" title=format!("{} bytes", format::count(p.bytes))>
                        {format!("{} ({} bytes)", format::bytes(p.bytes), format::count(p.bytes))}
                    </td>
                </tr>
            }
        })
        .collect_view();
    let table = (!result.pipelines.is_empty()).then(|| {
        view! {
            <table class="data admin-table compact">
                <caption>"Flows deleted per pipeline"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Pipeline"</th>
                        <th scope="col" class="num">"Flows"</th>
                        <th scope="col" class="num">"Stored bytes"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
    });
    view! {
        <section class="preview" aria-labelledby="preview-heading">
            <h3 id="preview-heading">"Preview"</h3>
            <p class="preview-summary"><strong>{summary}</strong>" "{oldest}</p>
            {table}
            {move || stale.get().then(|| view! { <p class="notice">"The form changed since this preview."</p> })}
        </section>
    }
}

/// When the sweeper runs next and what its last runs deleted.
#[component]
pub fn Sweeps(state: RetentionState) -> impl IntoView {
    let next = match state.next_run_at {
        Some(at) => format!(
            "The next sweep of this server starts {} (every {}).",
            format::timestamp(at),
            format::seconds(state.interval_seconds)
        ),
        None => "This server process runs no sweeper; `flowtrail admin sweep` runs one now.".into(),
    };
    let rows = state
        .runs
        .iter()
        .map(|run| {
            view! {
                <tr>
                    <td>{format::timestamp(run.started_at)}</td>
                    <td>{run.finished_at.map(format::timestamp).unwrap_or_else(|| "stopped before finishing".into())}</td>
                    <td class="num">{format::count(run.flows_deleted)}</td>
                    <td class="num">{format!("{} ({} bytes)", format::bytes(run.bytes_deleted), format::count(run.bytes_deleted))}</td>
                </tr>
            }
        })
        .collect_view();
    let table = if state.runs.is_empty() {
        view! { <p class="hint">"No sweep has run for this team yet."</p> }.into_any()
    } else {
        view! {
            <table class="data admin-table">
                <caption>"Last sweeps, newest first"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Started"</th>
                        <th scope="col">"Finished"</th>
                        <th scope="col" class="num">"Flows deleted"</th>
                        <th scope="col" class="num">"Bytes deleted"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    };
    view! {
        <section class="sweeps" aria-labelledby="sweeps-heading">
            <h2 id="sweeps-heading">"Sweeps"</h2>
            <p>{next}</p>
            {table}
        </section>
    }
}
