//! `/`: the team's flows, newest first, filterable by URL.

use flowtrail_types::{FlowPage, FlowStatus};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::{LoadError, error_text};
use crate::api::list_flows;
use crate::format;

#[component]
pub fn FlowsPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |name: &str| query.read().get(name).filter(|v| !v.is_empty());
    let filters = move || {
        (
            param("pipeline"),
            param("status"),
            param("q"),
            param("cursor"),
        )
    };
    let flows = Resource::new(filters, |(pipeline, status, q, cursor)| {
        list_flows(pipeline, status, q, cursor)
    });
    let status_options = move || {
        let current = param("status").unwrap_or_default();
        FlowStatus::ALL
            .iter()
            .map(|s| {
                let value = s.as_str();
                view! { <option value=value selected=current == value>{value}</option> }
            })
            .collect_view()
    };
    view! {
        <section class="flows">
            <div class="page-head">
                <h1>"Flows"</h1>
                <p class="hint">"Every run of every pipeline, with why it chose what it chose."</p>
            </div>
            <form method="get" action="/" class="filters" role="search" aria-label="Filter flows">
                <label>
                    "Pipeline"
                    <input type="text" name="pipeline" value=move || param("pipeline").unwrap_or_default()/>
                </label>
                <label>
                    "Status"
                    <select name="status">
                        <option value="">"any"</option>
                        {status_options}
                    </select>
                </label>
                <label class="grow">
                    "Text"
                    <input
                        type="search"
                        name="q"
                        placeholder="step names, reasoning, reason codes"
                        value=move || param("q").unwrap_or_default()
                    />
                </label>
                <button type="submit">"Filter"</button>
                <a class="button secondary" href="/">"Clear"</a>
            </form>
            <Suspense fallback=|| view! { <p class="loading">"Loading flows…"</p> }>
                {move || Suspend::new(async move {
                    match flows.await {
                        Ok(page) => view! { <FlowTable page query=filters()/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

type Filters = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[component]
fn FlowTable(page: FlowPage, query: Filters) -> impl IntoView {
    if page.flows.is_empty() {
        let filtered = query.0.is_some() || query.1.is_some() || query.2.is_some();
        return view! {
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
        .into_any();
    }
    let next = page.next_cursor.map(|cursor| {
        let mut href = format!("/?cursor={cursor}");
        for (name, value) in [
            ("pipeline", &query.0),
            ("status", &query.1),
            ("q", &query.2),
        ] {
            if let Some(value) = value {
                href.push_str(&format!("&{name}={}", encode(value)));
            }
        }
        view! { <a class="button secondary" href=href>"Older flows →"</a> }
    });
    let rows = page
        .flows
        .into_iter()
        .map(|flow| {
            let href = format!("/flows/{}", flow.id);
            let tags = flow
                .tags
                .iter()
                .map(|(k, v)| view! { <span class="tag">{format!("{k}={v}")}</span> })
                .collect_view();
            view! {
                <tr>
                    <td><a href=href>{flow.pipeline.clone()}</a></td>
                    <td><span class=format!("status status-{}", flow.status)>{flow.status.as_str()}</span></td>
                    <td>{format::timestamp(flow.started_at)}</td>
                    <td class="num">{format::duration(flow.started_at, flow.ended_at)}</td>
                    <td class="num">{flow.step_count}</td>
                    <td>{tags}</td>
                    // UUIDv7 ids start with their timestamp: the random tail tells flows apart.
                    <td class="mono" title=flow.id.to_string()>{flow.id.simple().to_string()[24..].to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="data flows-table">
            <caption class="sr-only">"Flows, newest first"</caption>
            <thead>
                <tr>
                    <th scope="col">"Pipeline"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Started"</th>
                    <th scope="col">"Duration"</th>
                    <th scope="col">"Steps"</th>
                    <th scope="col">"Tags"</th>
                    <th scope="col">"Id"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <nav class="pager" aria-label="Pages">{next}</nav>
    }
    .into_any()
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
