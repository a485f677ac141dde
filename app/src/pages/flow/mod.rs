//! `/flows/{id}`: one flow's decision trail — the header, the funnel, each step's reasoning,
//! and the observations of the selected step (`?step={seq}`; by default the step with the
//! largest drop, [`format::largest_drop`], which the funnel highlights too).
//!
//! The page's parts, one module each: [`funnel`], the [`step`] cards, the virtualised
//! [`observations`] table with its [`filters`], and a candidate's [`journey`].

mod filters;
mod funnel;
mod journey;
mod observations;
mod pin;
mod step;

use flowtrail_types::{FlowDetail, FlowStatus, FlowSummary};
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{LoadError, error_text};
use crate::api::{current_user, get_flow, previous_flow};
use crate::format;
use funnel::Funnel;
#[cfg(feature = "ssr")]
pub use journey::render;
use observations::Observations;
use pin::PinButton;
use step::StepCard;

#[component]
pub fn FlowPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let flow = Resource::new(id, get_flow);
    // Created beside `flow`, never inside the Suspense's body: a resource created while a
    // Suspense renders races the streamed HTML, and hydration then finds the wrong nodes.
    let previous = Resource::new(id, previous_flow);
    // Who is looking decides whether the pin button works (viewers cannot pin).
    let me = Resource::new(|| (), |_| current_user());
    let selected =
        Signal::derive(move || query.read().get("step").and_then(|s| s.parse::<u32>().ok()));
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading flow…"</p> }>
            {move || Suspend::new(async move {
                // A missing previous run only hides the compare link; it never fails the page.
                let (flow, previous) = (flow.await, previous.await.ok().flatten());
                let can_pin = me.await.ok().flatten().is_some_and(|me| me.can_pin());
                match flow {
                    Ok(detail) => view! { <FlowView detail previous selected can_pin/> }.into_any(),
                    Err(e) => {
                        // Online, "no such flow" means it is gone (retention): what this
                        // browser kept of it goes too.
                        if crate::browser::is_online() && error_text(&e).starts_with("No such flow") {
                            crate::browser::forget_flow(&id());
                        }
                        view! {
                        <section class="empty">
                            <h1>"Flow not available"</h1>
                            <LoadError message=error_text(&e)/>
                            <p><a href="/">"Back to the flows"</a></p>
                        </section>
                    }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn FlowView(
    detail: FlowDetail,
    previous: Option<String>,
    selected: Signal<Option<u32>>,
    can_pin: bool,
) -> impl IntoView {
    let steps = StoredValue::new(detail.steps.clone());
    // Both the default step and the funnel's highlight: one definition of "largest drop".
    let drop = format::largest_drop(&detail.steps);
    let default_seq = drop
        .or_else(|| (!detail.steps.is_empty()).then_some(0))
        .map(|i| detail.steps[i].seq);
    let current = Memo::new(move |_| selected.get().or(default_seq));
    let flow_id = detail.summary.id.to_string();
    // A running flow's steps may still be replaced: its observations are not cached.
    let running = detail.summary.status == FlowStatus::Running;
    let version = detail.summary.version;
    // Nested spans (OpenTelemetry) are indented under the step they ran inside.
    let depths = format::depths(&detail.steps);
    let step_items = detail
        .steps
        .iter()
        .zip(depths)
        .enumerate()
        .map(|(i, (step, depth))| {
            view! { <StepCard step=step.clone() largest=drop == Some(i) current depth/> }
        })
        .collect_view();
    let observations = move || {
        let seq = current.get()?;
        let step = steps.with_value(|s| s.iter().find(|s| s.seq == seq).cloned())?;
        Some(view! { <Observations flow_id=flow_id.clone() version step cache=!running/> })
    };
    view! {
        <section class="flow">
            <FlowHead flow=detail.summary.clone() previous pinned=detail.pinned can_pin/>
            <div class="io">
                <div class="card">
                    <h2>"Input"</h2>
                    <pre>{format::pretty(&detail.input)}</pre>
                </div>
                <div class="card">
                    <h2>"Output"</h2>
                    <pre>{format::pretty(&detail.output)}</pre>
                </div>
            </div>
            <Funnel steps=detail.steps.clone() largest=drop/>
            <div class="trail">
                <ol class="steps" aria-label="Steps">{step_items}</ol>
                <div class="observations-panel">{observations}</div>
            </div>
        </section>
    }
}

/// The flow's name, status, id, timing and tags, its error, a link to compare it with the
/// previous run of its pipeline (`previous`, its id) when there is one, and its pin.
#[component]
fn FlowHead(
    flow: FlowSummary,
    previous: Option<String>,
    pinned: bool,
    can_pin: bool,
) -> impl IntoView {
    let flow_id = flow.id.to_string();
    let compare = previous.map(|before| {
        let href = format!("/flows/{before}/compare/{flow_id}");
        view! { <a class="button secondary" href=href>"Compare with the previous run"</a> }
    });
    let tags = flow
        .tags
        .iter()
        .map(|(k, v)| {
            // Every stored tag can be filtered on: the key is escaped as the filter reads it.
            let href = format!(
                "/?tag={}",
                format::encode(&flowtrail_types::tag_filter(k, v))
            );
            let title = format!("Flows tagged {k}={v}");
            view! { <a class="tag" href=href title=title>{format!("{k}={v}")}</a> }
        })
        .collect_view();
    view! {
        <div class="page-head">
            <p class="crumbs"><a href="/">"Flows"</a>" / "{flow.pipeline.clone()}</p>
            <h1>
                {flow.pipeline.clone()}
                " "
                <span class=format!("status status-{}", flow.status)>{flow.status.as_str()}</span>
            </h1>
            <p class="meta">
                <span class="mono">{flow_id.clone()}</span>
                " · v"{flow.version}
                " · started "{format::timestamp(flow.started_at)}
                " · "{format::duration(flow.started_at, flow.ended_at)}
                " · "{tags}
                {flow.imported_at.map(|at| view! {
                    " · "
                    <span class="tag imported" title="Loaded from a debugging bundle (flowtrail import)">
                        "imported "{format::timestamp(at)}
                    </span>
                })}
            </p>
            {flow.error.clone().map(|e| view! { <p class="error" role="alert">"Error: "{e}</p> })}
            <div class="actions">
                {compare}
                <a class="button secondary" href=format!("/api/v1/flows/{flow_id}/bundle") download=""
                    title="One file with this flow, its steps and observations and their SHA-256 checksums; flowtrail import loads it into another deployment">
                    "Download bundle"
                </a>
                <PinButton flow_id pinned can_pin/>
            </div>
        </div>
    }
}
