//! `/api/v1/admin/…`: team administration. Needs a team admin (see [`Admin`]).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use flowtrail_domain::queue::DeadLetter;
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/dead-letters", get(dead_letters))
        .route("/api/v1/admin/dead-letters/redrive", post(redrive))
}

#[derive(Serialize)]
struct DeadLetters {
    dead_letters: Vec<DeadLetter>,
}

/// `GET /api/v1/admin/dead-letters?limit=`: the team's dead jobs, newest first.
async fn dead_letters(
    State(state): State<AppState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<DeadLetters>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| {
        ApiError::invalid("query", format!("the query string is not valid: {e}"))
    })?;
    let limit = match pairs.iter().find(|(k, _)| k == "limit") {
        Some((_, v)) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "limit is a whole number from 1 to 1000"))?,
        None => 100,
    };
    let dead_letters = state
        .services
        .queue
        .dead_letters(Some(caller.team_id), limit)
        .await?;
    Ok(Json(DeadLetters { dead_letters }))
}

#[derive(Deserialize, Default)]
struct RedriveBody {
    /// One job; absent: every dead job of the team.
    id: Option<i64>,
}

#[derive(Serialize)]
struct Redriven {
    redriven: u64,
}

/// `POST /api/v1/admin/dead-letters/redrive` with `{"id": N}` or `{}`.
async fn redrive(
    State(state): State<AppState>,
    Admin(caller): Admin,
    body: Bytes,
) -> Result<Json<Redriven>, ApiError> {
    let body: RedriveBody = if body.iter().all(u8::is_ascii_whitespace) {
        RedriveBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid("id", format!("send {{\"id\": <job id>}} or nothing: {e}"))
        })?
    };
    let id = body.id;
    let redriven = state
        .services
        .queue
        .redrive(Some(caller.team_id), id)
        .await?;
    Ok(Json(Redriven { redriven }))
}
