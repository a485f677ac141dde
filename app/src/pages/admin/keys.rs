//! `/admin/keys`: the team's API keys. A new key is shown once, right after it is made
//! (only its SHA-256 is stored); a revoked key answers 401 everywhere within a second.

use flowtrail_types::admin::{ApiKeyInfo, CreatedApiKey};
use leptos::prelude::*;

use super::{AdminGuard, Confirm};
use crate::api::admin::{CreateApiKey, RevokeApiKey, list_api_keys};
use crate::format;
use crate::pages::{LoadError, error_text};

/// Scopes, what each allows, in the order the form offers them.
const SCOPES: [(&str, &str); 4] = [
    ("ingest", "send flows only: what a pipeline needs"),
    ("read", "query flows only: what a script or notebook needs"),
    ("all", "send and query flows, and pin them"),
    (
        "admin",
        "the admin API only: members, keys, retention, usage, dead letters, alerts",
    ),
];

#[component]
pub fn KeysPage() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_keys(),
    );
    let revoked = move || {
        revoke.value().get().map(|result| match result {
            Ok(_) => {
                view! { <p class="notice" role="status">"The key was revoked."</p> }.into_any()
            }
            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
        })
    };
    view! {
        <AdminGuard title="API keys" hint="Keys let pipelines send flows and scripts read them.">
            <CreateKeyForm create/>
            <div class="outcome">{revoked}</div>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading keys…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(keys) => view! { <KeyTable keys revoke/> }.into_any(),
                        Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Transition>
        </AdminGuard>
    }
}

#[component]
fn CreateKeyForm(create: ServerAction<CreateApiKey>) -> impl IntoView {
    let options = SCOPES
        .iter()
        .map(|(scope, _)| view! { <option value=*scope selected=*scope == "ingest">{*scope}</option> })
        .collect_view();
    let explained = SCOPES
        .iter()
        .map(|(scope, what)| view! { <li><strong>{*scope}</strong>": "{*what}</li> })
        .collect_view();
    let error = move || {
        create
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })
    };
    view! {
        <ActionForm action=create attr:class="card form-row" attr:aria-labelledby="new-key-heading">
            <h2 id="new-key-heading">"Create a key"</h2>
            <div class="fields">
                <label>
                    "Name"
                    <input type="text" name="name" required maxlength="100" placeholder="checkout-pipeline" autocomplete="off"/>
                </label>
                <label>
                    "Scope"
                    <select name="scope" aria-describedby="scope-help">{options}</select>
                </label>
                <button type="submit">"Create key"</button>
            </div>
            <ul id="scope-help" class="hint scopes">{explained}</ul>
            {error}
        </ActionForm>
        <div aria-live="polite">
            {move || create.value().get().and_then(Result::ok).map(|created| view! { <NewKey created/> })}
        </div>
    }
}

/// The key just made, this once.
#[component]
fn NewKey(created: CreatedApiKey) -> impl IntoView {
    view! {
        <div class="secret" role="status">
            <p>
                <strong>{format!("Key “{}” created", created.info.name)}</strong>
                {format!(" (scope {}).", created.info.scope)}
            </p>
            <label>
                "New API key"
                <input type="text" readonly value=created.key class="secret-value" spellcheck="false" autocomplete="off"/>
            </label>
            <p>
                <strong>"Copy it now: it will not be shown again."</strong>
                " Select it, then Ctrl+C (⌘C on a Mac). Send it as "
                <code>"Authorization: Bearer <key>"</code>"."
            </p>
        </div>
    }
}

#[component]
fn KeyTable(keys: Vec<ApiKeyInfo>, revoke: ServerAction<RevokeApiKey>) -> impl IntoView {
    if keys.is_empty() {
        return view! { <p class="empty">"No API keys yet."</p> }.into_any();
    }
    let rows = keys
        .into_iter()
        .map(|key| view! { <KeyRow key revoke/> })
        .collect_view();
    view! {
        <table class="data admin-table">
            <caption>"API keys of the team, newest first"</caption>
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Scope"</th>
                    <th scope="col">"Prefix"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Last used"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Revoke"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

#[component]
fn KeyRow(key: ApiKeyInfo, revoke: ServerAction<RevokeApiKey>) -> impl IntoView {
    let id = key.id;
    let status = match key.revoked_at {
        Some(at) => view! { <span class="status status-failed">{format!("revoked {}", format::timestamp(at))}</span> }
            .into_any(),
        None => view! { <span class="status status-succeeded">"active"</span> }.into_any(),
    };
    let action = key.revoked_at.is_none().then(|| {
        view! {
            <Confirm
                id=format!("revoke-{id}")
                ask="Revoke"
                subject=format!("Revoke {}", key.name)
                question=format!("Revoke “{}”? Everything using it stops working.", key.name)
            >
                <ActionForm action=revoke attr:class="inline-form">
                    <input type="hidden" name="id" value=id.to_string()/>
                    <button type="submit" class="danger">"Yes, revoke"</button>
                </ActionForm>
            </Confirm>
        }
    });
    view! {
        <tr data-key-id=id.to_string() class:revoked=key.revoked_at.is_some()>
            <th scope="row">{key.name.clone()}</th>
            <td>{key.scope.clone()}</td>
            <td class="mono">{format!("{}…", key.prefix)}</td>
            <td>{format::timestamp(key.created_at)}</td>
            <td>{key.last_used_at.map(format::timestamp).unwrap_or_else(|| "never".into())}</td>
            <td>{status}</td>
            <td>{action}</td>
        </tr>
    }
}
