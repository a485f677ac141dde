//! `/admin/dead-letters`: ingest jobs of the team that failed for good (a permanent error, or
//! every attempt used). Redriving puts them back in the queue with fresh attempts — once the
//! cause (a full disk, an unreachable object store) is fixed.

use leptos::prelude::*;

use super::AdminGuard;
use crate::api::admin::{DEAD_LETTER_LIMIT, DeadLetterRow, Redrive, dead_letters};
use crate::format;
use crate::pages::{LoadError, error_text};

#[component]
pub fn DeadLettersPage() -> impl IntoView {
    let redrive = ServerAction::<Redrive>::new();
    let dead = Resource::new(move || redrive.version().get(), |_| dead_letters());
    let outcome = move || {
        redrive.value().get().map(|result| match result {
            Ok(n) => view! {
                <p class="notice" role="status">
                    {format!("{} job{} back in the queue.", format::count(n), if n == 1 { "" } else { "s" })}
                </p>
            }
            .into_any(),
            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
        })
    };
    view! {
        <AdminGuard title="Dead letters" hint="Flows that were accepted but could not be stored after every retry.">
            <div class="outcome">{outcome}</div>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading dead letters…"</p> }>
                {move || Suspend::new(async move {
                    match dead.await {
                        Ok(rows) => view! { <DeadTable rows redrive/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Transition>
        </AdminGuard>
    }
}

#[component]
fn DeadTable(rows: Vec<DeadLetterRow>, redrive: ServerAction<Redrive>) -> impl IntoView {
    if rows.is_empty() {
        return view! {
            <p class="empty">"No dead letters: every accepted flow was stored or is still being retried."</p>
        }
        .into_any();
    }
    let more = (rows.len() >= DEAD_LETTER_LIMIT as usize).then(|| {
        view! { <p class="hint">{format!("The newest {DEAD_LETTER_LIMIT} are listed; redriving all moves every one.")}</p> }
    });
    let rows = rows
        .into_iter()
        .map(|row| {
            let id = row.id;
            view! {
                <tr>
                    <th scope="row" class="num">{id}</th>
                    <td class="mono"><a href=format!("/flows/{}", row.flow_id)>{row.flow_id.clone()}</a></td>
                    <td class="num">{row.flow_version}</td>
                    <td class="num">{row.attempts}</td>
                    <td class="last-error">{row.last_error.clone().unwrap_or_else(|| "—".into())}</td>
                    <td>{row.died_at.map(format::timestamp).unwrap_or_else(|| "—".into())}</td>
                    <td>
                        <ActionForm action=redrive attr:class="inline-form">
                            <input type="hidden" name="id" value=id.to_string()/>
                            <button type="submit" class="secondary">
                                "Redrive"<span class="sr-only">{format!(" job {id}")}</span>
                            </button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <ActionForm action=redrive attr:class="buttons">
            <button type="submit">"Redrive all"</button>
            <span class="hint">"Puts every dead job of the team back in the queue with fresh attempts."</span>
        </ActionForm>
        {more}
        <table class="data admin-table">
            <caption>"Dead jobs, newest first"</caption>
            <thead>
                <tr>
                    <th scope="col" class="num">"Job"</th>
                    <th scope="col">"Flow"</th>
                    <th scope="col" class="num">"Version"</th>
                    <th scope="col" class="num">"Attempts"</th>
                    <th scope="col">"Last error"</th>
                    <th scope="col">"Died"</th>
                    <th scope="col">"Redrive"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}
