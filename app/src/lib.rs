//! The Flow Trail dashboard: Leptos components, routes and server functions.
//!
//! Rendered on the server (feature `ssr`, linked into the `flowtrail` binary) and hydrated in
//! the browser (feature `hydrate`, compiled to WASM by the `frontend` crate). Server functions
//! in [`api`] are thin callers of the domain crate; no SQL and no business rule lives here.

#![recursion_limit = "256"]

pub mod api;
pub mod browser;
pub mod format;
mod pages;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use pages::{compare::ComparePage, flow::FlowPage, flows::FlowsPage, login::LoginPage};

/// The HTML document around the app; rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="stylesheet" href="/pkg/flowtrail.css"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The dashboard's routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let online = RwSignal::new(true);
    // Browser only (effects never run on the server).
    Effect::new(move |_| {
        online.set(browser::is_online());
        browser::on_network_change(move |now| online.set(now));
        browser::register_service_worker();
    });
    view! {
        <Title text="Flow Trail"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">
                    <span class="brand-mark" aria-hidden="true">"◆"</span>
                    " Flow Trail"
                </a>
                <nav aria-label="Main">
                    <a href="/">"Flows"</a>
                </nav>
                {move || (!online.get()).then(|| view! {
                    <span class="offline-badge" role="status">
                        "Offline: showing what this browser kept"
                    </span>
                })}
                <pages::login::SignOut/>
                <PageMemory/>
            </header>
            <main id="main">
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/") view=FlowsPage/>
                    <Route path=path!("/flows/:id") view=FlowPage/>
                    <Route path=path!("/flows/:a/compare/:b") view=ComparePage/>
                </Routes>
            </main>
        </Router>
    }
}

/// Keeps every page reached by client-side navigation in the offline page cache (the service
/// worker only sees full page loads).
#[component]
fn PageMemory() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    Effect::new(move |first: Option<()>| {
        let search = location.search.get();
        let path = if search.is_empty() {
            location.pathname.get()
        } else {
            format!("{}?{search}", location.pathname.get())
        };
        if first.is_some() && browser::is_online() && path != "/login" {
            browser::remember_page(&path);
        }
    });
}
