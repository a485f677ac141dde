//! `/`: the team's flows, newest first. Every filter lives in the URL (the query API's names),
//! so a view can be shared; new flows arrive live over Server-Sent Events.

use flowtrail_types::{FlowPage, FlowStatus, FlowSummary, StepKind};
use leptos::prelude::*;
use leptos_router::hooks::use_location;

use super::{LoadError, error_text};
use crate::api::{ListParams, list_flows};
use crate::browser::{self, LiveState};
use crate::format;

/// Most live rows kept above the loaded page.
const MAX_LIVE: usize = 200;

#[component]
pub fn FlowsPage() -> impl IntoView {
    // Read from the raw address, each value decoded once (the router's query map decodes
    // twice). The server's address has no `?`, the browser's has: `from_query` drops it, so
    // both build the same value and hydrating does not fetch again.
    let search = use_location().search;
    let filters = Memo::new(move |_| search.with(|raw| ListParams::from_query(raw)));
    let flows = Resource::new(move || filters.get(), list_flows);
    let refresh = Callback::new(move |()| flows.refetch());
    let value = move |f: fn(&ListParams) -> &Option<String>| {
        move || f(&filters.read()).clone().unwrap_or_default()
    };
    let options = |all: Vec<&'static str>,
                   current: Memo<ListParams>,
                   pick: fn(&ListParams) -> &Option<String>| {
        move || {
            let current = pick(&current.read()).clone().unwrap_or_default();
            all.iter()
                .map(|value| view! { <option value=*value selected=current == *value>{*value}</option> })
                .collect_view()
        }
    };
    // The form edits the first tag of the address; the others ride along as hidden fields.
    let first_tag = move || filters.read().tags.first().cloned().unwrap_or_default();
    let further_tags = move || {
        filters
            .read()
            .tags
            .iter()
            .skip(1)
            .map(|tag| view! { <input type="hidden" name="tag" value=tag.clone()/> })
            .collect_view()
    };
    let statuses = FlowStatus::ALL.iter().map(|s| s.as_str()).collect();
    let kinds = StepKind::ALL.iter().map(|k| k.as_str()).collect();
    view! {
        <section class="flows">
            <div class="page-head">
                <h1>"Flows"</h1>
                <p class="hint">"Every run of every pipeline, with why it chose what it chose."</p>
            </div>
            <form method="get" action="/" class="filters" role="search" aria-label="Filter flows">
                <label>
                    "Pipeline"
                    <input type="text" name="pipeline" value=value(|f| &f.pipeline)/>
                </label>
                <label>
                    "Status"
                    <select name="status">
                        <option value="">"any"</option>
                        {options(statuses, filters, |f| &f.status)}
                    </select>
                </label>
                <label>
                    "Tag"
                    <input type="text" name="tag" placeholder="env:prod" value=first_tag/>
                </label>
                // Further tags of the address stay in it when the form is sent again.
                {further_tags}
                <label>
                    "Since (UTC)"
                    <input type="text" name="since" placeholder="2026-11-20T09:00" value=value(|f| &f.since)/>
                </label>
                <label>
                    "Until (UTC)"
                    <input type="text" name="until" placeholder="RFC 3339" value=value(|f| &f.until)/>
                </label>
                <label>
                    "Step kind"
                    <select name="step_kind">
                        <option value="">"any"</option>
                        {options(kinds, filters, |f| &f.step_kind)}
                    </select>
                </label>
                <label>
                    "Eliminated ≥ (share or %)"
                    <input type="text" name="min_eliminated" inputmode="decimal" placeholder="90% or 0.9" value=value(|f| &f.min_eliminated)/>
                </label>
                <label>
                    "Step"
                    <input type="text" name="step" placeholder="price_filter" value=value(|f| &f.step)/>
                </label>
                <label>
                    "Reason"
                    <input type="text" name="reason" placeholder="price_out_of_range" value=value(|f| &f.reason)/>
                </label>
                <label class="grow">
                    "Text"
                    <input
                        type="search"
                        name="q"
                        placeholder="step names, reasoning, reason codes, candidate ids"
                        value=value(|f| &f.q)
                    />
                </label>
                <button type="submit">"Filter"</button>
                <a class="button secondary" href="/">"Clear"</a>
            </form>
            <Suspense fallback=|| view! { <p class="loading" role="status">"Loading flows…"</p> }>
                {move || Suspend::new(async move {
                    match flows.await {
                        Ok(page) => view! { <FlowTable page filters=filters.get_untracked() refresh/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The loaded page of flows, with the flows that arrived since above it.
#[component]
fn FlowTable(page: FlowPage, filters: ListParams, refresh: Callback<()>) -> impl IntoView {
    let live = RwSignal::new(Vec::<FlowSummary>::new());
    // Flows that arrived but that this view cannot judge (text, time or elimination filters).
    let unsure = RwSignal::new(0usize);
    let state = RwSignal::new(LiveState::Connecting);
    let first_page = filters.cursor.is_none();
    let filtered = filters.any();
    if first_page {
        let filters = filters.clone();
        // Effects run in the browser only: the stream is opened after hydration.
        Effect::new(move |_| {
            let filters = filters.clone();
            let pipeline = filters.pipeline.clone();
            let handle = browser::live_flows(
                pipeline.as_deref(),
                move |flow| match filters.admits(&flow) {
                    Some(true) => live.update(|rows| {
                        rows.retain(|r| r.id != flow.id);
                        rows.insert(0, flow);
                        rows.truncate(MAX_LIVE);
                    }),
                    Some(false) => {}
                    None => unsure.update(|n| *n += 1),
                },
                move |s| state.set(s),
            );
            on_cleanup(move || {
                if let Some(handle) = handle {
                    browser::close_live(handle);
                }
            });
        });
    }
    // The engine indexed some flow's text in part: say so rather than look exhaustive.
    let partial_search = (page.search_complete == Some(false)).then(|| {
        view! {
            <p class="notice" role="status">
                "Some flows' text is too long to be searched whole: a flow that matches "
                "only past its indexed part is not listed. Candidate ids are always searched whole."
            </p>
        }
    });
    let loaded = StoredValue::new(page.flows);
    let next = page.next_cursor.map(|cursor| {
        let href = next_href(&filters, &cursor);
        view! { <a class="button secondary" href=href>"Older flows →"</a> }
    });
    let empty = move || live.with(Vec::is_empty) && loaded.with_value(Vec::is_empty);
    let rows = move || {
        let live_rows = live.get();
        let fresh: Vec<_> = live_rows.iter().map(|f| f.id).collect();
        let old = loaded.with_value(|flows| {
            flows
                .iter()
                .filter(|f| !fresh.contains(&f.id))
                .cloned()
                .collect::<Vec<_>>()
        });
        live_rows
            .into_iter()
            .map(|f| (f, true))
            .chain(old.into_iter().map(|f| (f, false)))
            .map(|(flow, arrived)| flow_row(flow, arrived))
            .collect_view()
    };
    let live_badge = move || {
        first_page.then(|| {
            let (class, text) = match state.get() {
                LiveState::Connecting => ("live connecting", "Connecting…"),
                LiveState::Live => ("live on", "Live"),
                LiveState::Reconnecting => ("live off", "Reconnecting…"),
            };
            view! { <span class=class role="status" title="New flows appear as they land">{text}</span> }
        })
    };
    let unsure_note = move || {
        (unsure.get() > 0).then(|| {
            let n = unsure.get();
            view! {
                <p class="notice" role="status">
                    {format!("{n} new flow{} landed since this page loaded. ", if n == 1 { "" } else { "s" })}
                    <button type="button" class="linkish" on:click=move |_| refresh.run(())>"Refresh"</button>
                </p>
            }
        })
    };
    // Downloads of every flow these filters select (not only this page).
    let downloads = view! {
        <p class="downloads">
            "Download the selected flows: "
            <a href=filters.export_href("csv", "flows") download="">"CSV"</a>" · "
            <a href=filters.export_href("jsonl", "flows") download="">"JSON Lines"</a>" · "
            <a href=filters.export_href("parquet", "flows") download="">"Parquet"</a>" · "
            <a href=filters.export_href("csv", "steps") download="">"steps (CSV)"</a>" · "
            <a href=filters.export_href("csv", "observations") download="">"observations (CSV)"</a>
        </p>
    };
    view! {
        <div class="list-head">
            {live_badge}
            {unsure_note}
            {partial_search}
        </div>
        <Show when=move || !empty() fallback=move || view! { <EmptyFlows filtered/> }>
            <table class="data flows-table">
                <caption class="sr-only">"Flows, newest first"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Pipeline"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Started"</th>
                        <th scope="col">"Duration"</th>
                        <th scope="col" class="num">"Steps"</th>
                        <th scope="col">"Largest drop"</th>
                        <th scope="col">"Tags"</th>
                        <th scope="col">"Id"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </Show>
        {downloads}
        <nav class="pager" aria-label="Pages">{next}</nav>
    }
}

#[component]
fn EmptyFlows(filtered: bool) -> impl IntoView {
    view! {
        <div class="empty">
            {if filtered {
                view! { <p>"No flow matches these filters."</p> }.into_any()
            } else {
                view! {
                    <p>"No flows yet. Send one from your pipeline with the SDK, e.g.:"</p>
                    <pre>"FLOWTRAIL_URL=http://127.0.0.1:3000 FLOWTRAIL_API_KEY=… \\\n  cargo run -p flowtrail-sdk --example competitor_selection"</pre>
                }.into_any()
            }}
        </div>
    }
}

fn flow_row(flow: FlowSummary, arrived: bool) -> impl IntoView {
    let href = format!("/flows/{}", flow.id);
    let tags = flow
        .tags
        .iter()
        .map(|(k, v)| view! { <span class="tag">{format!("{k}={v}")}</span> })
        .collect_view();
    let drop = flow.largest_elimination.as_ref().map(|e| {
        view! {
            <span class="drop" title=format!("{} ({}) kept {} of {}", e.step, e.kind, e.candidates_out, e.candidates_in)>
                <span class="drop-step">{e.step.clone()}</span>
                " "
                <span class="num">{format!("−{}", format::percent(e.share))}</span>
            </span>
        }
    });
    view! {
        <tr class:arrived=arrived data-flow-id=flow.id.to_string()>
            <td><a href=href>{flow.pipeline.clone()}</a></td>
            <td><span class=format!("status status-{}", flow.status)>{flow.status.as_str()}</span></td>
            <td>{format::timestamp(flow.started_at)}</td>
            <td class="num">{format::duration(flow.started_at, flow.ended_at)}</td>
            <td class="num">{flow.step_count}</td>
            <td>{drop}</td>
            <td>{tags}</td>
            // UUIDv7 ids start with their timestamp: the random tail tells flows apart.
            <td class="mono" title=flow.id.to_string()>{flow.id.simple().to_string()[24..].to_string()}</td>
        </tr>
    }
}

/// The next page's address: the same filters, the new cursor.
fn next_href(filters: &ListParams, cursor: &str) -> String {
    filters.href_with_cursor(cursor)
}
