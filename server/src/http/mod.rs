//! The JSON API: one module per resource, each with its `router()`, merged here.

pub mod admin;
pub mod auth;
pub mod bundle;
pub mod error;
pub mod events;
pub mod export;
pub mod extract;
pub mod flows;
pub mod health;
pub mod ingest;
pub mod openapi;
pub mod query;
pub mod serve;

use axum::Router;
use axum::middleware;
use axum::routing::any;

use crate::state::AppState;

/// Every API route, plus JSON answers for unknown endpoints and wrong methods under `/api`;
/// every error answer of these routes is the contract's JSON error ([`error::json_errors`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(admin::router())
        .merge(bundle::router())
        .merge(events::router())
        .merge(export::router())
        .merge(flows::router())
        .merge(health::router())
        .merge(ingest::router())
        .merge(openapi::router())
        .merge(query::router())
        .route("/api", any(error::unknown_endpoint))
        .route("/api/{*rest}", any(error::unknown_endpoint))
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn(error::undecodable_query))
        .layer(middleware::from_fn(error::json_errors))
}
