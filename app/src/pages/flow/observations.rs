//! The selected step's observations: a virtualised table over rows that the browser's Web
//! Worker loads (IndexedDB first, then the API), filters and sorts.
//!
//! Rules: the page never holds more than one window of rows ([`WINDOW`]); the rows above and
//! below it are spacer rows of the right height, and `aria-rowcount` / `aria-rowindex` keep it
//! a real table for screen readers. Only the worker's answer to the latest query is shown.

use flowtrail_observations::filter::{ObservationFilter, Sort, SortKey};
use flowtrail_observations::protocol::{FromWorker, Source, ToWorker, observations_url, step_key};
use flowtrail_types::{Capture, Observation, StepSummary};
use leptos::prelude::*;
use leptos_router::hooks::use_location;

use super::filters::ObservationFilters;
use super::journey::Journey;
use crate::browser;
use crate::format;

/// Height of one observations row in pixels (CSS keeps rows to one line of this height).
const ROW_HEIGHT: f64 = 34.0;
/// Rows per request to the worker, and how far ahead the table asks again.
const CHUNK: usize = 50;
const WINDOW: usize = 4 * CHUNK;

/// Loading state of a step's observations.
#[derive(Debug, Clone, PartialEq)]
enum Load {
    Loading,
    Ready {
        total: usize,
        source: Source,
        load_ms: f64,
    },
    Failed {
        message: String,
        offline: bool,
    },
}

/// The worker's latest answer for the table.
#[derive(Debug, Clone, PartialEq, Default)]
struct Rows {
    matching: usize,
    offset: usize,
    rows: Vec<(u32, Observation)>,
    filter_ms: f64,
}

/// The step's observations: the Web Worker loads them (IndexedDB first, then the API),
/// filters and sorts them, and hands back only the rows in view.
#[component]
pub(super) fn Observations(
    flow_id: String,
    /// The flow's version: the observations are kept under it.
    version: u32,
    step: StepSummary,
    /// The flow is finished: its observations never change and may be kept.
    cache: bool,
) -> impl IntoView {
    let seq = step.seq;
    let key = step_key(&flow_id, version, seq);
    let url = observations_url(&flow_id, version, seq, cache);
    let load = RwSignal::new(Load::Loading);
    let rows = RwSignal::new(Rows::default());
    let filter = RwSignal::new(ObservationFilter::default());
    let sort = RwSignal::new(Sort::default());
    let chunk = RwSignal::new(0usize);
    let latest = StoredValue::new(0u64);
    // The open journey is in the address (`?candidate=`): a link to it can be shared, and it
    // survives a reload. It opens once the page is live (effects run only in the browser), so
    // the server's HTML and the hydrated page agree.
    let journey = RwSignal::new(None::<String>);
    // Decoded once from the raw address (a candidate id may hold `%`).
    let linked = use_location().search.with_untracked(|raw| {
        crate::format::first_value(&crate::format::query_pairs(raw), "candidate")
    });
    Effect::new(move |_| {
        if let Some(candidate) = linked.clone() {
            journey.set(Some(candidate));
        }
    });
    Effect::new(move |_| browser::set_query_param("candidate", journey.get().as_deref()));
    let scroller = NodeRef::<leptos::html::Div>::new();

    {
        let key = key.clone();
        Effect::new(move |_| {
            let mine = key.clone();
            let listener = browser::worker_listen(move |message| match message {
                FromWorker::Opened {
                    key,
                    total,
                    source,
                    load_ms,
                } if *key == mine => load.set(Load::Ready {
                    total: *total,
                    source: *source,
                    load_ms: *load_ms,
                }),
                FromWorker::Rows {
                    id,
                    key,
                    matching,
                    offset,
                    rows: window,
                    filter_ms,
                } if *key == mine && *id == latest.get_value() => rows.set(Rows {
                    matching: *matching,
                    offset: *offset,
                    rows: window.clone(),
                    filter_ms: *filter_ms,
                }),
                FromWorker::Failed {
                    key,
                    message,
                    offline,
                } if *key == mine => load.set(Load::Failed {
                    message: message.clone(),
                    offline: *offline,
                }),
                _ => {}
            });
            on_cleanup(move || browser::worker_unlisten(listener));
            browser::worker_send(&ToWorker::Open {
                key: key.clone(),
                url: url.clone(),
                cache,
            });
        });
    }
    {
        let key = key.clone();
        Effect::new(move |_| {
            if !matches!(load.get(), Load::Ready { .. }) {
                return;
            }
            let id = latest.get_value() + 1;
            latest.set_value(id);
            browser::worker_send(&ToWorker::Query {
                id,
                key: key.clone(),
                filter: filter.get(),
                sort: sort.get(),
                offset: (chunk.get() * CHUNK).saturating_sub(CHUNK),
                limit: WINDOW,
            });
        });
    }
    // A new filter or sort starts again from the first row.
    let to_top = move || {
        if let Some(el) = scroller.get_untracked() {
            el.set_scroll_top(0);
        }
        chunk.set(0);
    };
    let on_scroll = move |_| {
        if let Some(el) = scroller.get_untracked() {
            let first = (el.scroll_top() as f64 / ROW_HEIGHT) as usize;
            let wanted = first / CHUNK;
            if wanted != chunk.get_untracked() {
                chunk.set(wanted);
            }
        }
    };
    let status = move || match load.get() {
        Load::Loading => {
            view! { <p class="hint" role="status">"Loading observations…"</p> }.into_any()
        }
        Load::Failed { message, offline } => view! {
            <p class="error" role="alert" data-offline=offline.to_string()>{message}</p>
        }
        .into_any(),
        Load::Ready {
            total,
            source,
            load_ms,
        } => {
            let (matching, filter_ms) = rows.with(|r| (r.matching, r.filter_ms));
            let from = match source {
                Source::Cache => "from this browser's cache (IndexedDB)",
                Source::Network => "from the network",
            };
            let source_name = match source {
                Source::Cache => "cache",
                Source::Network => "network",
            };
            view! {
                <p class="hint observations-status" aria-live="polite"
                    data-source=source_name
                    data-load-ms=format::fixed(load_ms, 2)
                    data-filter-ms=format::fixed(filter_ms, 3)>
                    {format!("{} of {} observations · ", format::count(matching as u64), format::count(total as u64))}
                    <span class=format!("source source-{source_name}")>
                        {format!("{from} in {}", format::millis(load_ms))}
                    </span>
                    {format!(" · filtered in {}", format::millis(filter_ms))}
                </p>
            }
            .into_any()
        }
    };
    let header = move |label: &'static str, column: SortKey, numeric: bool| {
        let aria = move || {
            let s = sort.get();
            if s.key != column {
                "none"
            } else if s.descending {
                "descending"
            } else {
                "ascending"
            }
        };
        let arrow = move || match aria() {
            "ascending" => " ▲",
            "descending" => " ▼",
            _ => "",
        };
        view! {
            <th scope="col" class:num=numeric aria-sort=aria>
                <button type="button" class="sort" on:click=move |_| {
                    sort.update(|s| {
                        if s.key == column {
                            s.descending = !s.descending;
                        } else {
                            *s = Sort { key: column, descending: column == SortKey::Score };
                        }
                    });
                    to_top();
                }>{label}{arrow}</button>
            </th>
        }
    };
    let body = move || {
        let message = match load.get() {
            Load::Loading => Some("Loading observations…".to_string()),
            Load::Failed { .. } => Some("The observations could not be loaded.".to_string()),
            Load::Ready { total: 0, .. } => Some("This step recorded no observations.".to_string()),
            Load::Ready { .. } => None,
        };
        if let Some(message) = message {
            return view! { <tr class="message"><td colspan="5">{message}</td></tr> }.into_any();
        }
        rows.with(|r| {
            if r.matching == 0 {
                return view! { <tr class="message"><td colspan="5">"No observation matches these filters."</td></tr> }
                    .into_any();
            }
            let top = r.offset as f64 * ROW_HEIGHT;
            let below = r.matching.saturating_sub(r.offset + r.rows.len()) as f64 * ROW_HEIGHT;
            let cells = r
                .rows
                .iter()
                .enumerate()
                .map(|(i, (_, o))| observation_row(o, r.offset + i + 2, journey))
                .collect_view();
            view! {
                <tr class="spacer" aria-hidden="true" style=format!("height:{}px", format::fixed(top, 0))></tr>
                {cells}
                <tr class="spacer" aria-hidden="true" style=format!("height:{}px", format::fixed(below, 0))></tr>
            }
            .into_any()
        })
    };
    let flow_for_journey = flow_id.clone();
    view! {
        <section class="card observations" aria-label="Observations">
            <h2>"Observations of "<span class="mono">{step.name.clone()}</span></h2>
            {(step.capture != Capture::Full).then(|| view! {
                <p class="hint">
                    {format!("Capture is {}: the table holds a sample; the counts and reasons above are exact.", step.capture)}
                </p>
            })}
            <ObservationFilters
                reasons=step.reasons.keys().cloned().collect()
                filter
                changed=Callback::new(move |()| to_top())
            />
            {status}
            <div class="table-scroll virtual" node_ref=scroller on:scroll=on_scroll tabindex="0"
                aria-label="Observations, scrollable">
                <table class="data observations-table"
                    aria-rowcount=move || rows.with(|r| r.matching + 1)>
                    <thead>
                        <tr aria-rowindex="1">
                            {header("Candidate", SortKey::Candidate, false)}
                            {header("Verdict", SortKey::Verdict, false)}
                            {header("Score", SortKey::Score, true)}
                            {header("Reasons", SortKey::Reason, false)}
                            <th scope="col">"Attributes"</th>
                        </tr>
                    </thead>
                    <tbody on:keydown=browser::row_keys>{body}</tbody>
                </table>
            </div>
            {move || journey.get().map(|candidate| view! {
                <Journey flow_id=flow_for_journey.clone() candidate close=move || journey.set(None)/>
            })}
        </section>
    }
}

fn observation_row(
    o: &Observation,
    row_index: usize,
    journey: RwSignal<Option<String>>,
) -> impl IntoView + use<> {
    let reasons = format::reasons(&o.reasons);
    let codes = o
        .reasons
        .iter()
        .map(|r| view! { <code>{r.code.clone()}</code>" " })
        .collect_view();
    let attributes = o
        .attributes
        .iter()
        .map(|(k, v)| view! { <span class="attr"><span class="attr-key">{k.clone()}</span>"="{format::value(v)}</span> })
        .collect_view();
    let id = o.candidate_id.clone();
    let title = reasons.clone();
    view! {
        <tr class=format!("row row-{}", o.verdict) aria-rowindex=row_index>
            <td class="mono">
                <button type="button" class="candidate" title="Show this candidate's journey through the steps"
                    on:click=move |_| journey.set(Some(id.clone()))>{o.candidate_id.clone()}</button>
            </td>
            <td><span class=format!("verdict verdict-{}", o.verdict)>{o.verdict.as_str()}</span></td>
            <td class="num">{format::score(o.score)}</td>
            <td class="reasons-cell" title=title>{codes}<span class="reason-text">{reasons}</span></td>
            <td class="attrs">{attributes}</td>
        </tr>
    }
}
