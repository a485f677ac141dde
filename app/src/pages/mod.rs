//! The dashboard's pages.

pub mod admin;
pub mod compare;
pub mod flow;
pub mod flows;
pub mod header;
pub mod login;
pub mod pipelines;

use leptos::prelude::*;

/// Shown for unknown paths.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="empty">
            <h1>"Not found"</h1>
            <p>"There is nothing at this address. " <a href="/">"Back to the flows"</a></p>
        </section>
    }
}

/// The message of a server function error, without the framework's prefix.
pub fn error_text(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// A failed load, said plainly.
#[component]
pub fn LoadError(message: String) -> impl IntoView {
    view! { <p class="error" role="alert">{message}</p> }
}
