//! `/flows/{id}`: one flow's decision trail — the funnel, each step's reasoning, and the
//! observations of the selected step (`?step={seq}`; by default the step with the largest drop).

use flowtrail_types::{Capture, FlowDetail, FlowStatus, Observation, StepSummary, Verdict};
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{LoadError, error_text};
use crate::api::{get_flow, journey_html, previous_flow};
use crate::browser;
use crate::format;
use flowtrail_observations::filter::{ObservationFilter, Sort, SortKey};
use flowtrail_observations::protocol::{FromWorker, Source, ToWorker, step_key};

#[component]
pub fn FlowPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let flow = Resource::new(id, get_flow);
    let selected =
        Signal::derive(move || query.read().get("step").and_then(|s| s.parse::<u32>().ok()));
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading flow…"</p> }>
            {move || Suspend::new(async move {
                match flow.await {
                    Ok(detail) => view! { <FlowView detail selected/> }.into_any(),
                    Err(e) => view! {
                        <section class="empty">
                            <h1>"Flow not available"</h1>
                            <LoadError message=error_text(&e)/>
                            <p><a href="/">"Back to the flows"</a></p>
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn FlowView(detail: FlowDetail, selected: Signal<Option<u32>>) -> impl IntoView {
    let flow = detail.summary.clone();
    let steps = StoredValue::new(detail.steps.clone());
    let drop = format::largest_drop(&detail.steps);
    let default_seq = drop
        .or_else(|| (!detail.steps.is_empty()).then_some(0))
        .map(|i| detail.steps[i].seq);
    let current = Memo::new(move |_| selected.get().or(default_seq));
    let flow_id = flow.id.to_string();
    // A running flow's steps may still be replaced: its observations are not cached.
    let running = flow.status == FlowStatus::Running;
    let previous = Resource::new(
        {
            let id = flow_id.clone();
            move || id.clone()
        },
        previous_flow,
    );
    let this = flow_id.clone();
    let tags = flow
        .tags
        .iter()
        .map(|(k, v)| view! { <span class="tag">{format!("{k}={v}")}</span> })
        .collect_view();
    let step_items = detail
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| view! { <StepCard step=step.clone() largest=drop == Some(i) current/> })
        .collect_view();
    let observations = {
        let flow_id = flow_id.clone();
        move || {
            let seq = current.get()?;
            let step = steps.with_value(|s| s.iter().find(|s| s.seq == seq).cloned())?;
            Some(view! { <Observations flow_id=flow_id.clone() step cache=!running/> })
        }
    };
    view! {
        <section class="flow">
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
                </p>
                {flow.error.clone().map(|e| view! { <p class="error" role="alert">"Error: "{e}</p> })}
                <Suspense fallback=|| ()>
                    {move || {
                        let this = this.clone();
                        Suspend::new(async move {
                        previous.await.ok().flatten().map(|before| {
                            let href = format!("/flows/{before}/compare/{this}");
                            view! {
                                <p class="actions">
                                    <a class="button secondary" href=href>"Compare with the previous run"</a>
                                </p>
                            }
                        })
                    })}}
                </Suspense>
            </div>
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

/// Candidates in → out per step, on a log scale so 5,000 → 30 stays readable.
#[component]
fn Funnel(steps: Vec<StepSummary>, largest: Option<usize>) -> impl IntoView {
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

#[component]
fn StepCard(step: StepSummary, largest: bool, current: Memo<Option<u32>>) -> impl IntoView {
    let seq = step.seq;
    let href = format!("?step={seq}");
    let total: u64 = step.reasons.values().sum();
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
        <li class="step card" class:current=move || current.get() == Some(seq) class:largest=largest>
            <a class="step-head" href=href aria-current=move || (current.get() == Some(seq)).then_some("true")>
                <span class=format!("kind kind-{}", step.kind)>{step.kind.as_str()}</span>
                <span class="step-name">{step.name.clone()}</span>
                <span class="step-funnel">{format::funnel(&step)}</span>
            </a>
            <p class="step-meta">
                "#"{seq}" · "{step.status.as_str()}" · "{timing}" · capture "{step.capture.as_str()}
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
fn Observations(flow_id: String, step: StepSummary, cache: bool) -> impl IntoView {
    let seq = step.seq;
    let key = step_key(&flow_id, seq);
    let url = format!("/api/v1/flows/{flow_id}/steps/{seq}/observations");
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
    let linked = use_query_map().get_untracked().get("candidate");
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
    let to_top = move || {
        if let Some(el) = scroller.get_untracked() {
            el.set_scroll_top(0);
        }
        chunk.set(0);
    };
    let set_filter = move |f: &dyn Fn(&mut ObservationFilter)| {
        filter.update(|filter| f(filter));
        to_top();
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
    let reason_options = step
        .reasons
        .keys()
        .map(|code| view! { <option value=code.clone()>{code.clone()}</option> })
        .collect_view();
    let number = |text: String| text.trim().parse::<f64>().ok();
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
            <div class="filters">
                <label class="grow">
                    "Filter"
                    <input
                        type="search"
                        placeholder="candidate, reason, attribute"
                        on:input=move |ev| {
                            let text = event_target_value(&ev);
                            set_filter(&|f| f.text = text.clone());
                        }
                    />
                </label>
                <label>
                    "Verdict"
                    <select on:change=move |ev| {
                        let verdict = Verdict::parse(&event_target_value(&ev));
                        set_filter(&|f| f.verdict = verdict);
                    }>
                        <option value="">"any"</option>
                        <option value="kept">"kept"</option>
                        <option value="rejected">"rejected"</option>
                        <option value="selected">"selected"</option>
                    </select>
                </label>
                <label>
                    "Reason code"
                    <select on:change=move |ev| {
                        let code = Some(event_target_value(&ev)).filter(|c| !c.is_empty());
                        set_filter(&|f| f.reason = code.clone());
                    }>
                        <option value="">"any"</option>
                        {reason_options}
                    </select>
                </label>
                <label class="narrow">
                    "Score ≥"
                    <input type="number" step="any" inputmode="decimal" on:input=move |ev| {
                        let min = number(event_target_value(&ev));
                        set_filter(&|f| f.score_min = min);
                    }/>
                </label>
                <label class="narrow">
                    "Score ≤"
                    <input type="number" step="any" inputmode="decimal" on:input=move |ev| {
                        let max = number(event_target_value(&ev));
                        set_filter(&|f| f.score_max = max);
                    }/>
                </label>
                <label>
                    "Attribute"
                    <input type="text" placeholder="price<20, category=case" on:input=move |ev| {
                        let text = event_target_value(&ev);
                        set_filter(&|f| f.attribute = text.clone());
                    }/>
                </label>
            </div>
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

/// One candidate's path through every step of the flow.
#[component]
fn Journey(flow_id: String, candidate: String, close: impl Fn() + 'static) -> impl IntoView {
    // Only ever opened in the browser (see `Observations`), so fetched there.
    let journey = LocalResource::new(move || journey_html(flow_id.clone(), candidate.clone()));
    view! {
        <section class="journey card" aria-label="Candidate journey">
            <div class="journey-head">
                <h3>"Journey"</h3>
                <button type="button" class="secondary" on:click=move |_| close()>"Close"</button>
            </div>
            <Suspense fallback=|| view! { <p class="loading" role="status">"Loading the journey…"</p> }>
                {move || Suspend::new(async move {
                    match journey.await {
                        Ok(html) => view! { <div inner_html=html></div> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Server side: fragments rendered to HTML.
#[cfg(feature = "ssr")]
pub mod render {
    use flowtrail_types::{CandidateJourney, Presence};
    use leptos::prelude::*;

    use crate::format;

    /// A candidate's journey, rendered.
    pub fn journey(journey: CandidateJourney) -> String {
        journey_view(journey).to_html()
    }

    fn journey_view(j: CandidateJourney) -> impl IntoView {
        let verdict = j
            .final_verdict
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| "never observed".into());
        let eliminated = j.eliminated_at.as_ref().map(|e| {
            let why = e
                .reasons
                .iter()
                .map(|r| match &r.text {
                    Some(t) => format!("{} ({t})", r.code),
                    None => r.code.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            view! { <p class="eliminated">"Eliminated at #"{e.seq}" "<strong>{e.step.clone()}</strong>": "{why}</p> }
        });
        let steps = j
            .steps
            .into_iter()
            .map(|s| {
                let presence = match s.presence {
                    Presence::Observed => s.verdict.map(|v| v.as_str()).unwrap_or("observed").to_string(),
                    Presence::Absent => "absent".to_string(),
                    Presence::Unknown => "unknown (sampled)".to_string(),
                };
                let reasons = format::reasons(&s.reasons);
                view! {
                    <li class=format!("journey-step presence-{}", match s.presence { Presence::Observed => "observed", Presence::Absent => "absent", Presence::Unknown => "unknown" })>
                        <span class=format!("kind kind-{}", s.kind)>{s.kind.as_str()}</span>
                        <span class="step-name">"#"{s.seq}" "{s.name.clone()}</span>
                        <span class="journey-verdict">{presence}</span>
                        <span class="num">{format::score(s.score)}</span>
                        <span class="reason-text">{reasons}</span>
                    </li>
                }
            })
            .collect_view();
        view! {
            <p class="journey-summary">
                <span class="mono">{j.candidate_id.clone()}</span>": "{verdict}
            </p>
            {eliminated}
            <ol class="journey-steps">{steps}</ol>
        }
    }
}
