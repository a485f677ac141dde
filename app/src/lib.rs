//! The Flow Trail dashboard: Leptos components, routes and server functions.
//!
//! Rendered on the server (feature `ssr`, linked into the `flowtrail` binary) and hydrated in
//! the browser (feature `hydrate`, compiled to WASM by the `frontend` crate). Server functions
//! in [`api`] are thin callers of the domain crate; no SQL and no business rule lives here.

#![recursion_limit = "256"]

pub mod api;
pub mod filter;
pub mod format;
mod pages;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use pages::{flow::FlowPage, flows::FlowsPage, login::LoginPage};

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
                <pages::login::SignOut/>
            </header>
            <main id="main">
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/") view=FlowsPage/>
                    <Route path=path!("/flows/:id") view=FlowPage/>
                </Routes>
            </main>
        </Router>
    }
}
