//! `/admin/retention`: how long the team's flows are kept — a default and per-pipeline
//! overrides. "Save" is offered only once a preview of exactly the form's values has shown
//! what saving would delete; then the next sweep applies it (pinned flows are always kept).

mod report;

use std::collections::BTreeSet;

use flowtrail_types::admin::{MAX_RETENTION_DAYS, RetentionPolicy};
use leptos::prelude::*;

use super::AdminGuard;
use crate::api::admin::{PreviewRetention, SaveRetention, load_retention, team_pipelines};
use crate::format;
use crate::pages::{LoadError, error_text};
use report::{PreviewResult, Sweeps};

/// What a pipeline's row of the form says.
const RULES: [(&str, &str); 3] = [
    ("default", "use the default"),
    ("keep", "keep forever"),
    ("days", "keep for N days"),
];

#[component]
pub fn RetentionPage() -> impl IntoView {
    let preview = ServerAction::<PreviewRetention>::new();
    let save = ServerAction::<SaveRetention>::new();
    // The form starts from the saved policy once; the sweeps' state follows every save.
    let initial = Resource::new(|| (), |_| load_retention());
    let pipelines = Resource::new(|| (), |_| team_pipelines());
    let state = Resource::new(move || save.version().get(), |_| load_retention());
    view! {
        <AdminGuard title="Retention" hint="Flows that started longer ago than their pipeline's days are deleted by the sweeper; pinned flows never are.">
            <Suspense fallback=|| view! { <p class="loading" role="status">"Loading the policy…"</p> }>
                {move || Suspend::new(async move {
                    match (initial.await, pipelines.await) {
                        (Ok(initial), Ok(pipelines)) => {
                            view! { <PolicyForm policy=initial.policy pipelines preview save/> }.into_any()
                        }
                        (Err(e), _) | (_, Err(e)) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading sweeps…"</p> }>
                {move || Suspend::new(async move {
                    match state.await {
                        Ok(state) => view! { <Sweeps state/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Transition>
        </AdminGuard>
    }
}

/// The policy the form's values mean, or what is wrong with them. `rows` are each pipeline's
/// name, rule (`default`, `keep`, `days`) and days text.
pub fn form_policy(
    default_days: &str,
    rows: &[(String, String, String)],
) -> Result<RetentionPolicy, String> {
    let days = |text: &str, whose: &str| -> Result<u32, String> {
        text.trim()
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=MAX_RETENTION_DAYS).contains(d))
            .ok_or_else(|| {
                format!(
                    "{whose}: days are a whole number from 1 to {}.",
                    format::count(u64::from(MAX_RETENTION_DAYS))
                )
            })
    };
    let mut policy = RetentionPolicy {
        default_days: match default_days.trim() {
            "" => None,
            text => Some(days(text, "Default")?),
        },
        ..RetentionPolicy::default()
    };
    for (pipeline, rule, text) in rows {
        match rule.as_str() {
            "keep" => {
                policy.pipelines.insert(pipeline.clone(), None);
            }
            "days" => {
                let d = days(text, pipeline)?;
                policy.pipelines.insert(pipeline.clone(), Some(d));
            }
            _ => {}
        }
    }
    Ok(policy)
}

/// One pipeline's row: its name, rule and days as typed.
#[derive(Clone)]
struct Row {
    pipeline: String,
    rule: RwSignal<String>,
    days: RwSignal<String>,
}

#[component]
fn PolicyForm(
    policy: RetentionPolicy,
    pipelines: Vec<String>,
    preview: ServerAction<PreviewRetention>,
    save: ServerAction<SaveRetention>,
) -> impl IntoView {
    let default_days = RwSignal::new(
        policy
            .default_days
            .map(|d| d.to_string())
            .unwrap_or_default(),
    );
    // The team's pipelines, and any the saved policy names that has no flow (yet).
    let names: BTreeSet<String> = pipelines
        .into_iter()
        .chain(policy.pipelines.keys().cloned())
        .collect();
    let rows: Vec<Row> = names
        .into_iter()
        .map(|pipeline| {
            let (rule, days) = match policy.pipelines.get(&pipeline) {
                None => ("default", String::new()),
                Some(None) => ("keep", String::new()),
                Some(Some(d)) => ("days", d.to_string()),
            };
            Row {
                pipeline,
                rule: RwSignal::new(rule.into()),
                days: RwSignal::new(days),
            }
        })
        .collect();
    let rows = StoredValue::new(rows);
    let current = Memo::new(move |_| {
        let values: Vec<_> = rows.with_value(|rows| {
            rows.iter()
                .map(|r| (r.pipeline.clone(), r.rule.get(), r.days.get()))
                .collect()
        });
        form_policy(&default_days.get(), &values)
    });
    // The policy sent to the last preview; paired with its answer once it is back.
    let sent = RwSignal::new(None::<RetentionPolicy>);
    let previewed = Memo::new(
        move |_| match (preview.pending().get(), preview.value().get()) {
            (false, Some(Ok(result))) => sent.get().map(|policy| (policy, result)),
            _ => None,
        },
    );
    let up_to_date = move || {
        previewed.with(|p| p.as_ref().map(|(policy, _)| policy.clone())) == current.get().ok()
    };
    let can_save = move || up_to_date() && !save.pending().get();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if let Ok(policy) = current.get_untracked() {
            sent.set(Some(policy.clone()));
            preview.dispatch(PreviewRetention { policy });
        }
    };
    let on_save = move |_| {
        if let Some((policy, _)) = previewed.get_untracked() {
            save.dispatch(SaveRetention { policy });
        }
    };
    let row_views = rows.with_value(|rows| {
        rows.iter()
            .cloned()
            .map(|row| view! { <PipelineRule row/> })
            .collect_view()
    });
    let invalid = move || {
        current
            .get()
            .err()
            .map(|m| view! { <p class="error" role="alert">{m}</p> })
    };
    let preview_error = move || {
        preview
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })
    };
    let saved = move || {
        save.value().get().map(|result| match result {
            Ok(_) => view! { <p class="notice" role="status">"Saved. The next sweep applies this policy."</p> }.into_any(),
            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
        })
    };
    let result = move || {
        previewed.get().map(|(_, result)| view! { <PreviewResult result stale=Signal::derive(move || !up_to_date())/> })
    };
    view! {
        <form class="card retention-form" on:submit=on_submit aria-labelledby="policy-heading">
            <h2 id="policy-heading">"Policy"</h2>
            <label class="narrow">
                "Default: keep flows for (days)"
                <input type="number" name="default_days" min="1" max=MAX_RETENTION_DAYS.to_string() step="1" inputmode="numeric"
                    placeholder="forever" aria-describedby="default-help" value=default_days.get_untracked()
                    on:input=move |ev| default_days.set(event_target_value(&ev))/>
            </label>
            <p id="default-help" class="hint">"Empty keeps flows forever. Applies to every pipeline set to “use the default”."</p>
            <table class="data admin-table">
                <caption>"Per-pipeline rules"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Pipeline"</th>
                        <th scope="col">"Rule"</th>
                        <th scope="col">"Days"</th>
                    </tr>
                </thead>
                <tbody>{row_views}</tbody>
            </table>
            {invalid}
            <div class="buttons">
                <button type="submit" disabled=move || current.get().is_err()>"Preview"</button>
                <button type="button" on:click=on_save disabled=move || !can_save() aria-describedby="save-help">"Save"</button>
                <span id="save-help" class="hint">
                    {move || if up_to_date() { "Saving deletes what the preview shows at the next sweep." } else { "Preview these values first; then they can be saved." }}
                </span>
            </div>
            {preview_error}
            <div aria-live="polite">{result}</div>
            <div aria-live="polite">{saved}</div>
        </form>
    }
}

#[component]
fn PipelineRule(row: Row) -> impl IntoView {
    let Row {
        pipeline,
        rule,
        days,
    } = row;
    let initial = rule.get_untracked();
    let options = RULES
        .iter()
        .map(|(value, text)| view! { <option value=*value selected=initial == *value>{*text}</option> })
        .collect_view();
    view! {
        <tr>
            <th scope="row">{pipeline.clone()}</th>
            <td>
                <select aria-label=format!("Rule for {pipeline}") on:change=move |ev| rule.set(event_target_value(&ev))>
                    {options}
                </select>
            </td>
            <td>
                <input type="number" min="1" max=MAX_RETENTION_DAYS.to_string() step="1" inputmode="numeric" class="days"
                    aria-label=format!("Days for {pipeline}") value=days.get_untracked()
                    disabled=move || rule.get() != "days" on:input=move |ev| days.set(event_target_value(&ev))/>
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::form_policy;

    fn row(p: &str, rule: &str, days: &str) -> (String, String, String) {
        (p.into(), rule.into(), days.into())
    }

    #[test]
    fn the_form_means_a_policy_or_says_what_is_wrong() {
        let policy = form_policy(
            " 30 ",
            &[
                row("a", "default", "9"),
                row("b", "keep", ""),
                row("c", "days", "1"),
            ],
        )
        .unwrap();
        assert_eq!(policy.default_days, Some(30));
        assert_eq!(policy.pipelines.get("a"), None);
        assert_eq!(policy.pipelines.get("b"), Some(&None));
        assert_eq!(policy.pipelines.get("c"), Some(&Some(1)));
        assert_eq!(form_policy("", &[]).unwrap().default_days, None);
        assert!(form_policy("0", &[]).unwrap_err().starts_with("Default:"));
        assert!(
            form_policy("", &[row("c", "days", "")])
                .unwrap_err()
                .starts_with("c:")
        );
        assert!(form_policy("36501", &[]).is_err());
        assert!(form_policy("1.5", &[]).is_err());
    }
}
