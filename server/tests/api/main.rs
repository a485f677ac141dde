//! HTTP API tests through the router, without a socket (`tower::ServiceExt::oneshot`), on a
//! fresh embedded data directory each.
//!
//! One module per resource; the application under test and its requests are in `app`.

#[path = "../common/mod.rs"]
mod common;

mod app;

mod admin;
mod authorization;
mod bundle;

mod alerts;
mod analysis;
mod auth;
mod errors;
mod export;
mod filters;
mod flows;
mod ingest;
mod insights;
mod limits;
mod openapi;
mod operations;
mod otlp;
