//! The dashboard: Leptos SSR routes, server functions, static assets, and the session gate.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use flowtrail_app::{App, shell};
use flowtrail_domain::Services;
use flowtrail_domain::accounts::{SESSION_SIGNED_IN_KEY, SESSION_USER_KEY, session_user_id};
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_sessions::Session;

use crate::state::AppState;

/// Pages, server functions (`/fn/…`) and assets, behind the session gate.
pub fn router(state: &AppState) -> Router<AppState> {
    let services = state.services.clone();
    let context = move || provide_context::<Arc<Services>>(services.clone());
    let options = state.leptos.clone();
    Router::new()
        .leptos_routes_with_context(
            state,
            generate_route_list(App),
            context.clone(),
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .layer(middleware::from_fn(require_session))
        .layer(middleware::from_fn(server_fn_client_errors))
}

/// Largest body of a server function's error answer read to classify it.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware: a server function answers 500 for arguments it cannot read (a missing or
/// repeated field, a body of the wrong encoding or over its length limit) — the client's
/// doing. Such an answer becomes 400 (413 over the length limit), its body kept so the
/// browser side still decodes the error (`Args|…`, `Deserialization|…`).
async fn server_fn_client_errors(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/fn/") {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "server function failed").into_response();
    };
    if bytes.starts_with(b"Args|") || bytes.starts_with(b"Deserialization|") {
        let too_large = bytes
            .windows(b"length limit".len())
            .any(|w| w == b"length limit");
        parts.status = if too_large {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Paths anyone may load: the sign-in page, server functions (they check the session
/// themselves), and static assets (the service and Web Worker scripts among them).
fn is_public(path: &str) -> bool {
    path == "/login"
        || path.starts_with("/fn/")
        || path.starts_with("/pkg/")
        || path.starts_with("/favicon")
        || path == "/robots.txt"
        || path == "/sw.js"
        || path == "/browser-worker.js"
}

/// Sends visitors without a session to `/login?next=…`.
async fn require_session(request: Request, next: Next) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let signed_in = match request.extensions().get::<Session>() {
        Some(session) => {
            let user = session.get::<i64>(SESSION_USER_KEY).await.ok().flatten();
            let since = session
                .get::<i64>(SESSION_SIGNED_IN_KEY)
                .await
                .ok()
                .flatten();
            session_user_id(user, since, flowtrail_domain::millis::now_ms()).is_some()
        }
        None => false,
    };
    if signed_in {
        return next.run(request).await;
    }
    let target = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let location = format!("/login?next={}", urlencoding(target));
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn urlencoding(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_else(|_| "/".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sign_in_and_assets_are_public() {
        assert!(is_public("/login"));
        assert!(is_public("/pkg/flowtrail.js"));
        assert!(is_public("/fn/login123"));
        assert!(is_public("/sw.js"));
        assert!(is_public("/browser-worker.js"));
        assert!(!is_public("/"));
        assert!(!is_public("/flows/0193"));
        assert!(!is_public("/login/../admin"));
    }

    #[test]
    fn the_next_parameter_is_encoded() {
        assert_eq!(urlencoding("/flows/1?step=2"), "%2Fflows%2F1%3Fstep%3D2");
    }
}
