//! Sign-in (sign-out is in the top bar, `header.rs`).

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::error_text;
use crate::api::Login;

/// `/login`.
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_else(|| "/".into());
    let error = move || {
        login
            .value()
            .get()
            .and_then(|result| result.err())
            .map(|e| error_text(&e))
    };
    view! {
        <section class="login">
            <h1>"Sign in to Flow Trail"</h1>
            <ActionForm action=login attr:class="card login-form">
                <input type="hidden" name="next" value=next/>
                <label>
                    "E-mail"
                    <input type="email" name="email" autocomplete="username" required/>
                </label>
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="current-password" required/>
                </label>
                {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <button type="submit">"Sign in"</button>
            </ActionForm>
        </section>
    }
}
