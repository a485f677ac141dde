//! `/admin` and below: what an admin of the session's team manages — [`members`], API
//! [`keys`], [`retention`], [`dead_letters`] and [`usage`].
//!
//! Every page is wrapped in [`AdminGuard`]: only an admin of the session's team sees the
//! page's body; anyone else gets a 403 section (and, rendered by the server, a 403 answer —
//! the admin routes render in `SsrMode::Async`, so the status is known before the head is
//! sent). The server functions check the role again by themselves (`api::ssr::admin`):
//! the guard only decides what to show.

pub mod alerts;
pub mod dead_letters;
pub mod keys;
pub mod members;
pub mod retention;
pub mod usage;

use leptos::prelude::*;
use leptos_meta::Title;

use super::{LoadError, error_text};
use crate::api::{SessionUser, current_user};
use crate::browser;

/// The admin pages, for the index and the breadcrumbs: path, title, what it is for.
pub const SECTIONS: [(&str, &str, &str); 6] = [
    (
        "/admin/members",
        "Members",
        "Who belongs to the team and their roles: admin, member, viewer.",
    ),
    (
        "/admin/keys",
        "API keys",
        "Keys for pipelines and scripts: create one, see when each was last used, revoke.",
    ),
    (
        "/admin/retention",
        "Retention",
        "How long flows are kept, per pipeline; preview what a policy deletes; past sweeps.",
    ),
    (
        "/admin/dead-letters",
        "Dead letters",
        "Flows that could not be stored after every retry; send them through again.",
    ),
    (
        "/admin/usage",
        "Usage",
        "Flows, steps, observations and bytes accepted per day and pipeline; refusals.",
    ),
    (
        "/admin/alerts",
        "Alerts",
        "Drift alert rules on a pipeline's numbers, the alerts they opened, webhook deliveries.",
    ),
];

/// The frame of an admin page: its title and heading, then `children` for an admin of the
/// session's team, a 403 section for anyone else.
#[component]
pub fn AdminGuard(
    /// The page's name (`Members`); `None` for the admin index.
    #[prop(optional)]
    title: Option<&'static str>,
    /// One line under the heading.
    hint: &'static str,
    children: ChildrenFn,
) -> impl IntoView {
    // Blocking: the role decides the answer's status, so it is known before anything is sent.
    let user = Resource::new_blocking(|| (), |_| current_user());
    let children = StoredValue::new(children);
    let document_title = match title {
        Some(title) => format!("{title} · Admin · Flow Trail"),
        None => "Admin · Flow Trail".into(),
    };
    view! {
        <Title text=document_title/>
        <Suspense fallback=|| view! { <p class="loading" role="status">"Checking your role…"</p> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(user)) if user.is_admin() => view! {
                        <section class="admin">
                            <div class="page-head">
                                {title.map(|title| view! {
                                    <p class="crumbs"><a href="/admin">"Admin"</a>" / "{title}</p>
                                })}
                                <h1>{title.unwrap_or("Admin")}</h1>
                                <p class="hint">{hint}" Team "<strong>{user.team.clone()}</strong>"."</p>
                            </div>
                            {children.with_value(|children| children())}
                        </section>
                    }
                    .into_any(),
                    Ok(Some(user)) => view! { <Forbidden user/> }.into_any(),
                    Ok(None) => view! {
                        <section class="empty">
                            <h1>"Please sign in"</h1>
                            <p><a href="/login?next=/admin">"Sign in"</a>" with an admin's account."</p>
                        </section>
                    }
                    .into_any(),
                    Err(e) => view! { <LoadError message=error_text(&e)/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// What a member or viewer sees instead of an admin page (status 403).
#[component]
fn Forbidden(user: SessionUser) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::FORBIDDEN);
    }
    view! {
        <section class="empty forbidden">
            <h1>"You need the admin role"</h1>
            <p>
                "This page is for admins of team " <strong>{user.team}</strong> ". You are "
                {article(&user.role)} " " {user.role.clone()} " there: ask one of its admins."
            </p>
            <p><a href="/">"Back to the flows"</a></p>
        </section>
    }
}

/// `a` or `an`, for a role's name (`an admin`, `a viewer`).
pub fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// `/admin`: the admin pages, each with what it is for.
#[component]
pub fn AdminIndex() -> impl IntoView {
    let items = SECTIONS
        .iter()
        .map(|(href, title, what)| {
            view! {
                <li class="card">
                    <a href=*href>{*title}</a>
                    <p class="hint">{*what}</p>
                </li>
            }
        })
        .collect_view();
    view! {
        <AdminGuard hint="Manage the team's members, keys and data.">
            <nav aria-label="Admin pages">
                <ul class="admin-index">{items.clone()}</ul>
            </nav>
        </AdminGuard>
    }
}

/// A destructive action behind a confirm step (never `window.confirm`): the first button
/// asks; then the question (focus moves to it, so it is read out), the form that does it
/// (`children`, whose submit button confirms) and "Cancel" (focus goes back).
#[component]
pub fn Confirm(
    /// Unique in the page; the ids of the two steps derive from it.
    #[prop(into)]
    id: String,
    /// The first button's text (`Remove`).
    ask: &'static str,
    /// The first button's full name for screen readers (`Remove a@example.org`).
    #[prop(into)]
    subject: String,
    /// What the confirm step asks.
    #[prop(into)]
    question: String,
    children: ChildrenFn,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let ask_id = format!("{id}-ask");
    let step_id = format!("{id}-confirm");
    let children = StoredValue::new(children);
    let (ask_focus, step_focus) = (ask_id.clone(), step_id.clone());
    let show = move |_| {
        open.set(true);
        let target = step_focus.clone();
        // Once the confirm step is in the page, it takes the focus.
        request_animation_frame(move || browser::focus(&target));
    };
    let cancel = move |_| {
        open.set(false);
        let target = ask_focus.clone();
        request_animation_frame(move || browser::focus(&target));
    };
    view! {
        <Show
            when=move || open.get()
            fallback=move || view! {
                <button type="button" class="danger" id=ask_id.clone() aria-label=subject.clone() on:click=show.clone()>
                    {ask}
                </button>
            }
        >
            <div class="confirm" role="group" aria-label=question.clone() id=step_id.clone() tabindex="-1">
                <span>{question.clone()}</span>
                {children.with_value(|children| children())}
                <button type="button" class="secondary" on:click=cancel.clone()>"Cancel"</button>
            </div>
        </Show>
    }
}
