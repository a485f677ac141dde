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

use leptos_router::SsrMode;
use pages::admin::{
    AdminIndex, alerts::AlertsPage, dead_letters::DeadLettersPage, keys::KeysPage,
    members::MembersPage, retention::RetentionPage, usage::UsagePage,
};
use pages::pipelines::{PipelinePage, PipelinesPage};
use pages::{compare::ComparePage, flow::FlowPage, flows::FlowsPage, login::LoginPage};

/// The Content-Security-Policy of a page whose scripts carry `nonce`: scripts only from this
/// site and with this response's nonce (Leptos puts it on its hydration and streaming scripts),
/// WebAssembly compiled without `unsafe-eval` (`'wasm-unsafe-eval'`), no plugins, no framing,
/// no foreign `<base>` or form targets. Styles may be inline (components set `style`).
/// Source: OWASP ASVS 5.0 V3.4 ("Browser Security Mechanism Headers"); CSP Level 3.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         worker-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The HTML document around the app; rendered on the server only. Its answer carries
/// [`content_security_policy`] with this response's nonce.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) && let Ok(value) = http::HeaderValue::from_str(&content_security_policy(&nonce))
    {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
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
    // Set once the page is hydrated (effects never run on the server): tests wait for it
    // before using controls that need the WASM.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| {
        hydrated.set(true);
        online.set(browser::is_online());
        browser::on_network_change(move |now| online.set(now));
        browser::register_service_worker();
    });
    view! {
        <Title text="Flow Trail"/>
        <Router>
            <pages::header::TopBar online/>
            <PageMemory/>
            <main id="main" data-hydrated=move || hydrated.get().then_some("true")>
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/") view=FlowsPage/>
                    <Route path=path!("/flows/:id") view=FlowPage/>
                    <Route path=path!("/flows/:a/compare/:b") view=ComparePage/>
                    <Route path=path!("/pipelines") view=PipelinesPage ssr=SsrMode::Async/>
                    <Route path=path!("/pipelines/:name") view=PipelinePage ssr=SsrMode::Async/>
                    // Rendered whole before answering: the role decides the status (403).
                    <Route path=path!("/admin") view=AdminIndex ssr=SsrMode::Async/>
                    <Route path=path!("/admin/members") view=MembersPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/keys") view=KeysPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/retention") view=RetentionPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/dead-letters") view=DeadLettersPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/alerts") view=AlertsPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/usage") view=UsagePage ssr=SsrMode::Async/>
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
