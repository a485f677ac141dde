//! The questions of the debugging walkthrough that span steps or flows: a candidate's
//! journey, the diff of two flows, and reason statistics.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flowtrail_domain::analysis;
use flowtrail_domain::analysis::StatsQuery;
use flowtrail_domain::millis::{from_ms, now_ms};
#[allow(unused_imports)] // named by the OpenAPI annotations
use flowtrail_types::{CandidateJourney, ErrorBody, FlowDiff, ReasonStats, StatsBucket};
use time::Duration;

use super::auth::Reader;
use super::error::ApiError;
use super::extract::ApiPath;
use super::flows::{flow_id, query_pairs, time_param};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/flows/{id}/candidates/{candidate_id}", get(journey))
        .route("/api/v1/flows/{a}/diff/{b}", get(diff))
        .route("/api/v1/stats/reasons", get(reason_stats))
}

/// `GET /api/v1/flows/{id}/candidates/{candidate_id}`.
#[utoipa::path(
    get, path = "/api/v1/flows/{id}/candidates/{candidate_id}", tag = "query",
    params(
        ("id" = Uuid, Path, description = "Flow id"),
        ("candidate_id" = String, Path, description = "The candidate's id (URL-encoded)"),
    ),
    responses(
        (status = 200, description = "Every step with the candidate's presence (observed, absent, or unknown where the step kept a sample), verdict, score and reasons; where it was eliminated", body = CandidateJourney),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 404, description = "No such flow, or no step observed the candidate", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn journey(
    State(state): State<AppState>,
    Reader(caller): Reader,
    ApiPath((id, candidate_id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let id = flow_id(&id)?;
    let journey = analysis::journey(&state.services, caller.team_id, id, &candidate_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no flow {id} in team {}", caller.team)))?;
    if !analysis::observed_anywhere(&journey) {
        let unknown = journey
            .steps
            .iter()
            .filter(|s| s.presence == flowtrail_types::Presence::Unknown)
            .count();
        return Err(ApiError::NotFound(if unknown == 0 {
            format!("no step of flow {id} observed candidate {candidate_id:?}")
        } else {
            format!(
                "no step of flow {id} observed candidate {candidate_id:?}; {unknown} step(s) \
                 kept only a sample, so it may have passed through them unrecorded"
            )
        }));
    }
    Ok(Json(journey).into_response())
}

/// `GET /api/v1/flows/{a}/diff/{b}`.
#[utoipa::path(
    get, path = "/api/v1/flows/{a}/diff/{b}", tag = "query",
    params(
        ("a" = Uuid, Path, description = "The flow compared from (e.g. yesterday's good run)"),
        ("b" = Uuid, Path, description = "The flow compared to"),
    ),
    responses(
        (status = 200, description = "Per step (matched by name, then seq): counts, reason counts, candidates added and removed, verdicts changed with both reasons, inputs and outputs that differ", body = FlowDiff),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 404, description = "Either flow is not in the caller's team", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn diff(
    State(state): State<AppState>,
    Reader(caller): Reader,
    ApiPath((a, b)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (a, b) = (flow_id(&a)?, flow_id(&b)?);
    let diff = analysis::diff(&state.services, caller.team_id, a, b)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "flow {a} or flow {b} is not in team {}",
                caller.team
            ))
        })?;
    Ok(Json(diff).into_response())
}

/// Longest range of `GET /api/v1/stats/reasons`, and of it with hourly buckets.
const MAX_RANGE_DAYS: i64 = 366;
const MAX_HOURLY_DAYS: i64 = 31;

/// `GET /api/v1/stats/reasons`.
#[utoipa::path(
    get, path = "/api/v1/stats/reasons", tag = "query",
    params(
        ("pipeline" = Option<String>, Query, description = "Only this pipeline"),
        ("step" = Option<String>, Query, description = "Only steps of this name"),
        ("since" = Option<String>, Query, description = "RFC 3339, by the flows' start, rounded down to the hour; default: 7 days before until"),
        ("until" = Option<String>, Query, description = "RFC 3339, exclusive; default: now"),
        ("bucket" = Option<StatsBucket>, Query, description = "hour or day (UTC); default day. Hourly buckets cover at most 31 days"),
    ),
    responses(
        (status = 200, description = "Exact reason counts (from each step's full histogram, never from samples) in total and per bucket, and each pipeline's funnel: median candidates in and out per step", body = ReasonStats),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 422, description = "A parameter is invalid (see field)", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn reason_stats(
    State(state): State<AppState>,
    Reader(caller): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (query, bucket) = parse_stats_query(raw.as_deref().unwrap_or_default())?;
    let stats = analysis::reason_stats(&state.services, caller.team_id, &query, bucket).await?;
    Ok(Json(stats).into_response())
}

/// Parses the statistics' query string, naming the bad parameter.
pub fn parse_stats_query(raw: &str) -> Result<(StatsQuery, StatsBucket), ApiError> {
    let (mut pipeline, mut step, mut since, mut until) = (None, None, None, None);
    let mut bucket = StatsBucket::Day;
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in query_pairs(raw)? {
        // As in the flows list: surrounding spaces are not part of a value, and a blank one
        // is not given.
        let value = value.trim().to_string();
        if value.is_empty() {
            continue;
        }
        // As in the flows list: a parameter given twice is ambiguous, refused.
        if ["pipeline", "step", "since", "until", "bucket"].contains(&name.as_str()) {
            if seen.contains(&name) {
                return Err(ApiError::invalid(
                    name.clone(),
                    format!("{name} is given more than once"),
                ));
            }
            seen.push(name.clone());
        }
        match name.as_str() {
            "pipeline" => pipeline = Some(value),
            "step" => step = Some(value),
            "since" => since = Some(time_param("since", &value)?),
            "until" => until = Some(time_param("until", &value)?),
            "bucket" => {
                bucket = match value.as_str() {
                    "hour" => StatsBucket::Hour,
                    "day" => StatsBucket::Day,
                    _ => return Err(ApiError::invalid("bucket", "bucket is hour or day")),
                }
            }
            _ => {}
        }
    }
    let until = until.unwrap_or_else(|| from_ms(now_ms()));
    // The default start is kept in the years the answer can write.
    let since =
        since.unwrap_or_else(|| (until - Duration::days(7)).max(flowtrail_types::rfc3339::MIN));
    if since >= until {
        return Err(ApiError::invalid("since", "since must be before until"));
    }
    let max_days = match bucket {
        StatsBucket::Hour => MAX_HOURLY_DAYS,
        StatsBucket::Day => MAX_RANGE_DAYS,
    };
    if until - since > Duration::days(max_days) {
        return Err(ApiError::invalid(
            "since",
            format!("the range covers at most {max_days} days with {bucket:?} buckets")
                .to_lowercase(),
        ));
    }
    Ok((
        StatsQuery {
            pipeline,
            step,
            since,
            until,
            bucket_ms: bucket.millis(),
            tag: None,
        },
        bucket,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_query_defaults_to_a_week_of_days() {
        let (query, bucket) = parse_stats_query("pipeline=p").unwrap();
        assert_eq!(bucket, StatsBucket::Day);
        assert_eq!(query.until - query.since, Duration::days(7));
        assert_eq!(query.pipeline.as_deref(), Some("p"));
    }

    #[test]
    fn stats_query_rejects_bad_parameters_by_name() {
        for (raw, field) in [
            ("bucket=week", "bucket"),
            ("since=yesterday", "since"),
            (
                "since=2026-11-21T00:00:00Z&until=2026-11-20T00:00:00Z",
                "since",
            ),
            (
                "since=2026-01-01T00:00:00Z&until=2026-11-20T00:00:00Z&bucket=hour",
                "since",
            ),
        ] {
            match parse_stats_query(raw) {
                Err(ApiError::Validation { field: Some(f), .. }) => assert_eq!(f, field, "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }
}
