//! Sign-in and sign-out.

use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_query_map};

use super::error_text;
use crate::api::{Login, Logout, current_user};
use crate::browser;

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

/// The signed-in user and a sign-out button, in the top bar.
#[component]
pub fn SignOut() -> impl IntoView {
    let location = use_location();
    let user = Resource::new(move || location.pathname.get(), |_| current_user());
    let logout = ServerAction::<Logout>::new();
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                user.await.ok().flatten().map(|user| view! {
                    <div class="who">
                        <span title=format!("team {}, {}", user.team, user.role)>{user.email}</span>
                        <ActionForm action=logout attr:class="inline">
                            <button type="submit" class="link" on:click=|_| browser::forget_local_data()>"Sign out"</button>
                        </ActionForm>
                    </div>
                })
            })}
        </Transition>
    }
}
