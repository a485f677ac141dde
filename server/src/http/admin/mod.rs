//! `/api/v1/admin/…`: team administration. Needs a team admin (see
//! [`Admin`](crate::http::auth::Admin)).

mod alerts;
mod api_keys;
mod dead_letters;
mod members;
mod retention;
mod usage;

use axum::Router;
use flowtrail_domain::ingest;
use serde::de::DeserializeOwned;

// The handlers at their old paths, for the OpenAPI document (`admin::members`, …).
pub(crate) use alerts::*;
pub(crate) use api_keys::*;
pub(crate) use dead_letters::*;
pub(crate) use members::*;
pub(crate) use retention::*;
pub(crate) use usage::*;

use super::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(dead_letters::router())
        .merge(members::router())
        .merge(api_keys::router())
        .merge(retention::router())
        .merge(usage::router())
        .merge(alerts::router())
}

/// A JSON body of shape `T`: 400 `malformed_json` when it is not JSON, 422 naming the field
/// when it is JSON of another shape.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Only an object is a body ([`ingest::parse_body`] refuses the rest).
    Ok(ingest::parse_body(body)?)
}

/// A numeric id in the path; anything else names nothing (404).
fn path_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .map_err(|_| ApiError::NotFound(format!("no {what} has the id {text:?}")))
}
