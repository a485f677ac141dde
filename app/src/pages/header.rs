//! The top bar: the main navigation ("Admin" only for admins of the session's team), the
//! current team with a switcher for users of several teams, who is signed in, sign-out.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::api::{Logout, SessionUser, SwitchTeam, current_user};
use crate::browser;

#[component]
pub fn TopBar(
    /// Whether the browser is online (the badge says when it is not).
    online: RwSignal<bool>,
) -> impl IntoView {
    let location = use_location();
    // Asked again on every navigation: a changed role or team shows on the next page.
    let user = Resource::new(move || location.pathname.get(), |_| current_user());
    let admin_link = move || {
        Suspend::new(async move {
            user.await
                .ok()
                .flatten()
                .filter(SessionUser::is_admin)
                .map(|_| {
                    let current = move || {
                        location
                            .pathname
                            .get()
                            .starts_with("/admin")
                            .then_some("page")
                    };
                    view! { <a href="/admin" aria-current=current>"Admin"</a> }
                })
        })
    };
    let flows_current = move || {
        let path = location.pathname.get();
        (path == "/" || path.starts_with("/flows")).then_some("page")
    };
    let pipelines_current = move || {
        location
            .pathname
            .get()
            .starts_with("/pipelines")
            .then_some("page")
    };
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                " Flow Trail"
            </a>
            <nav aria-label="Main">
                <a href="/" aria-current=flows_current>"Flows"</a>
                <a href="/pipelines" aria-current=pipelines_current>"Pipelines"</a>
                <Transition fallback=|| ()>{admin_link}</Transition>
            </nav>
            {move || (!online.get()).then(|| view! {
                <span class="offline-badge" role="status">
                    "Offline: showing what this browser kept"
                </span>
            })}
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    user.await.ok().flatten().map(|user| view! { <Account user/> })
                })}
            </Transition>
        </header>
    }
}

/// The current team (a switcher when there are several), the user, sign-out.
#[component]
fn Account(user: SessionUser) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    let team = if user.teams.len() > 1 {
        view! { <TeamSwitcher user=user.clone()/> }.into_any()
    } else {
        view! { <span class="team">"Team "<strong>{user.team.clone()}</strong></span> }.into_any()
    };
    view! {
        <div class="who">
            {team}
            <span title=format!("{} of team {}", user.role, user.team)>{user.email.clone()}</span>
            <ActionForm action=logout attr:class="inline">
                <button type="submit" class="link" on:click=|_| browser::forget_local_data()>"Sign out"</button>
            </ActionForm>
        </div>
    }
}

/// A `<select>` of the user's teams and a submit button: works without JavaScript (the
/// server sends the browser back to the page), and with it the page reloads in the new team.
#[component]
fn TeamSwitcher(user: SessionUser) -> impl IntoView {
    let switch = ServerAction::<SwitchTeam>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = switch.value().get() {
            browser::reload();
        }
    });
    let options = user
        .teams
        .iter()
        .map(|team| {
            let label = format!("{} ({})", team.slug, team.role);
            view! { <option value=team.id.to_string() selected=team.id == user.team_id>{label}</option> }
        })
        .collect_view();
    let error = move || {
        switch.value().get().and_then(Result::err).map(
            |e| view! { <span class="error" role="alert">{crate::pages::error_text(&e)}</span> },
        )
    };
    view! {
        <ActionForm action=switch attr:class="team-switch">
            <label for="team-switch">"Team"</label>
            <select id="team-switch" name="team_id">{options}</select>
            <button type="submit" class="switch">"Switch"</button>
            {error}
        </ActionForm>
    }
}
