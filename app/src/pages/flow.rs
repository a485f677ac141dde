//! `/flows/{id}`: one flow's decision trail — the funnel, each step's reasoning, and the
//! observations of the selected step (`?step={seq}`; by default the step with the largest drop).

use flowtrail_types::{FlowDetail, Observation, StepSummary, Verdict};
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{LoadError, error_text};
use crate::api::{get_flow, get_observations};
use crate::filter::ObservationFilter;
use crate::format;

/// Most rows rendered at once; the filter narrows the rest.
const MAX_ROWS: usize = 1_000;

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
            Some(view! { <Observations flow_id=flow_id.clone() step/> })
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
                        <span class="bar in" style=format!("width:{:.1}%", width(input))></span>
                        <span class="bar out" style=format!("width:{:.1}%", width(output))></span>
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
                    <span class="reason-bar" style=format!("width:{share:.0}%")></span>
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

#[component]
fn Observations(flow_id: String, step: StepSummary) -> impl IntoView {
    let seq = step.seq;
    let observations = Resource::new(
        move || (flow_id.clone(), seq),
        |(id, seq)| get_observations(id, seq),
    );
    let (text, set_text) = signal(String::new());
    let (verdict, set_verdict) = signal(None::<Verdict>);
    let filter = Memo::new(move |_| ObservationFilter {
        text: text.get(),
        verdict: verdict.get(),
    });
    view! {
        <section class="card observations" aria-label="Observations">
            <h2>"Observations of "<span class="mono">{step.name.clone()}</span></h2>
            {(step.capture != flowtrail_types::Capture::Full).then(|| view! {
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
                        on:input=move |ev| set_text.set(event_target_value(&ev))
                        prop:value=text
                    />
                </label>
                <label>
                    "Verdict"
                    <select on:change=move |ev| set_verdict.set(Verdict::parse(&event_target_value(&ev)))>
                        <option value="">"any"</option>
                        <option value="kept">"kept"</option>
                        <option value="rejected">"rejected"</option>
                        <option value="selected">"selected"</option>
                    </select>
                </label>
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Loading observations…"</p> }>
                {move || Suspend::new(async move {
                    match observations.await {
                        Ok(all) => view! { <ObservationTable all=StoredValue::new(all) filter/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn ObservationTable(
    all: StoredValue<Vec<Observation>>,
    filter: Memo<ObservationFilter>,
) -> impl IntoView {
    let total = all.with_value(Vec::len);
    if total == 0 {
        return view! { <p class="empty">"This step recorded no observations."</p> }.into_any();
    }
    let matching = Memo::new(move |_| {
        let filter = filter.get();
        all.with_value(|all| {
            all.iter()
                .enumerate()
                .filter(|(_, o)| filter.matches(o))
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        })
    });
    let rows = move || {
        all.with_value(|all| {
            matching
                .get()
                .into_iter()
                .take(MAX_ROWS)
                .map(|i| observation_row(&all[i]))
                .collect_view()
        })
    };
    let summary = move || {
        let shown = matching.with(Vec::len);
        if shown > MAX_ROWS {
            format!(
                "{} of {} match; showing the first {}",
                format::count(shown as u64),
                format::count(total as u64),
                MAX_ROWS
            )
        } else {
            format!(
                "{} of {} observations",
                format::count(shown as u64),
                format::count(total as u64)
            )
        }
    };
    view! {
        <p class="hint" aria-live="polite">{summary}</p>
        <div class="table-scroll">
            <table class="data observations-table">
                <thead>
                    <tr>
                        <th scope="col">"Candidate"</th>
                        <th scope="col">"Verdict"</th>
                        <th scope="col" class="num">"Score"</th>
                        <th scope="col">"Reasons"</th>
                        <th scope="col">"Attributes"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

fn observation_row(o: &Observation) -> impl IntoView + use<> {
    let reasons = o
        .reasons
        .iter()
        .map(|r| {
            view! {
                <li>
                    <code>{r.code.clone()}</code>
                    {r.text.clone().map(|t| view! { <span class="reason-text">{format!(": {t}")}</span> })}
                </li>
            }
        })
        .collect_view();
    let attributes = o
        .attributes
        .iter()
        .map(|(k, v)| view! { <span class="attr"><span class="attr-key">{k.clone()}</span>"="{format::value(v)}</span> })
        .collect_view();
    view! {
        <tr class=format!("row-{}", o.verdict)>
            <td class="mono">{o.candidate_id.clone()}</td>
            <td><span class=format!("verdict verdict-{}", o.verdict)>{o.verdict.as_str()}</span></td>
            <td class="num">{format::score(o.score)}</td>
            <td><ul class="reason-list">{reasons}</ul></td>
            <td class="attrs">{attributes}</td>
        </tr>
    }
}
