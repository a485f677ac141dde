//! The filter bar above the observations table: free text, verdict, reason code, score range
//! and attribute. Every change updates the [`ObservationFilter`] the worker applies.
//!
//! The verdict choices come from [`Verdict::ALL`] and the reason codes from the step's own
//! histogram, so neither list is written by hand.

use flowtrail_observations::filter::ObservationFilter;
use flowtrail_types::Verdict;
use leptos::prelude::*;

/// `reasons`: the step's reason codes; `changed` runs after every change (the table goes back
/// to its first row).
#[component]
pub(super) fn ObservationFilters(
    reasons: Vec<String>,
    filter: RwSignal<ObservationFilter>,
    changed: Callback<()>,
) -> impl IntoView {
    let set_filter = move |f: &dyn Fn(&mut ObservationFilter)| {
        filter.update(|filter| f(filter));
        changed.run(());
    };
    let verdict_options = Verdict::ALL
        .iter()
        .map(|v| view! { <option value=v.as_str()>{v.as_str()}</option> })
        .collect_view();
    let reason_options = reasons
        .into_iter()
        .map(|code| view! { <option value=code.clone()>{code.clone()}</option> })
        .collect_view();
    let number = |text: String| text.trim().parse::<f64>().ok();
    view! {
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
                    {verdict_options}
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
    }
}
