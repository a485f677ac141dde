//! `/api/v1/admin/usage`: what the team sent, per UTC day and pipeline.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use flowtrail_types::admin::Usage;
use time::OffsetDateTime;

use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::http::flows::{query_pairs, time_param};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/usage", get(usage))
}

/// `GET /api/v1/admin/usage?since&until` (RFC 3339; default the last 30 days): per UTC day
/// and pipeline.
#[utoipa::path(
    get, path = "/api/v1/admin/usage", tag = "admin",
    params(
        ("since" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD; default 30 days before until; counts cover whole UTC days"),
        ("until" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD, excluded; default now"),
    ),
    responses(
        (status = 200, description = "Per day and pipeline: flows, steps, observations, bytes accepted; rejected, rate_limited, replayed", body = Usage),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 422, description = "A time that is not RFC 3339, since after until, or over 400 days", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<Usage>, ApiError> {
    let pairs = query_pairs(query.as_deref().unwrap_or_default())?;
    let time = |name: &'static str| -> Result<Option<OffsetDateTime>, ApiError> {
        // As in the flows list: surrounding spaces are not part of a value, and a blank one
        // is not given.
        let values: Vec<&str> = pairs
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
            .collect();
        match values.as_slice() {
            [] => Ok(None),
            [value] => time_param(name, value).map(Some),
            _ => Err(ApiError::invalid(name, format!("give {name} once"))),
        }
    };
    let until = time("until")?.unwrap_or_else(OffsetDateTime::now_utc);
    // The default start is kept in the years the answer can write.
    let since = time("since")?
        .unwrap_or_else(|| (until - time::Duration::days(30)).max(flowtrail_types::rfc3339::MIN));
    if since > until {
        return Err(ApiError::invalid("since", "since is after until"));
    }
    Ok(Json(
        state.services.usage(caller.team_id, since, until).await?,
    ))
}
