//! Decoding rows into domain types, shared by the SQLite and PostgreSQL repositories (the SQL
//! differs by dialect; the columns and their meaning do not).

use flowtrail_types::{Capture, Elimination, FlowStatus, FlowSummary, StepKind, StepSummary};
use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Encode, QueryBuilder, Row, Type};
use uuid::Uuid;

use crate::millis::{from_ms, to_ms};
use crate::queue::{DeadLetter, Job};
use crate::store::{FlowQuery, FunnelRow};
use crate::{Error, Result};

pub(crate) const FLOW_COLUMNS: &str = "f.id, f.version, p.name AS pipeline, f.status, f.started_at, \
     f.ended_at, f.tags, f.error, f.step_count, f.ingested_at, f.top_seq, f.top_step, f.top_kind, \
     f.top_in, f.top_out";

/// The filters of the flows list that read the same in both dialects — all but the team and
/// the text — as `AND` conditions on `flows f` joined to `pipelines p`.
pub(crate) fn push_flow_filters<'q, DB>(sql: &mut QueryBuilder<'q, DB>, query: &FlowQuery)
where
    DB: sqlx::Database,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
{
    if let Some(pipeline) = &query.pipeline {
        sql.push(" AND p.name = ").push_bind(pipeline.clone());
    }
    if let Some(status) = query.status {
        sql.push(" AND f.status = ")
            .push_bind(status.as_str().to_string());
    }
    if let Some(since) = query.since {
        sql.push(" AND f.started_at >= ").push_bind(to_ms(since));
    }
    if let Some(until) = query.until {
        sql.push(" AND f.started_at < ").push_bind(to_ms(until));
    }
    for (key, value) in &query.tags {
        sql.push(
            " AND EXISTS (SELECT 1 FROM flow_tags t WHERE t.team_id = f.team_id \
             AND t.flow_id = f.id AND t.key = ",
        )
        .push_bind(key.clone())
        .push(" AND t.value = ")
        .push_bind(value.clone())
        .push(")");
    }
    if query.step_kind.is_some() || query.min_eliminated.is_some() {
        sql.push(
            " AND EXISTS (SELECT 1 FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id",
        );
        if let Some(kind) = query.step_kind {
            sql.push(" AND s.kind = ")
                .push_bind(kind.as_str().to_string());
        }
        if let Some(share) = query.min_eliminated {
            sql.push(" AND s.candidates_in > 0 AND (s.candidates_in - s.candidates_out) >= ")
                .push_bind(share)
                .push(" * s.candidates_in");
        }
        sql.push(")");
    }
    if let Some(cursor) = query.cursor {
        sql.push(" AND (f.started_at < ")
            .push_bind(cursor.started_at_ms)
            .push(" OR (f.started_at = ")
            .push_bind(cursor.started_at_ms)
            .push(" AND f.id < ")
            .push_bind(cursor.id.hyphenated().to_string())
            .push("))");
    }
}

/// A funnel query's row: flow id, seq, step name, kind, candidates in, candidates out.
pub(crate) type FunnelTuple = (String, i64, String, String, i64, i64);

/// A funnel row of `pipeline`.
pub(crate) fn funnel_row(pipeline: &str, row: FunnelTuple) -> Result<FunnelRow> {
    let (flow_id, seq, step, kind, input, output) = row;
    Ok(FunnelRow {
        pipeline: pipeline.to_string(),
        flow_id,
        seq: seq as u32,
        step,
        kind: StepKind::parse(&kind).ok_or_else(|| corrupt("step kind"))?,
        candidates_in: input.max(0) as u64,
        candidates_out: output.max(0) as u64,
    })
}

/// How a user is looked up.
pub(crate) enum UserKey<'a> {
    Email(&'a str),
    Id(i64),
}

pub(crate) fn corrupt(what: &str) -> Error {
    Error::Internal(format!("stored {what} is not valid"))
}

pub(crate) fn json_text(value: &Value) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

pub(crate) fn flow_summary<R>(row: &R) -> Result<FlowSummary>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let tags: String = row.try_get("tags")?;
    Ok(FlowSummary {
        id: Uuid::try_parse(&id).map_err(|_| corrupt("flow id"))?,
        version: row.try_get::<i64, _>("version")? as u32,
        pipeline: row.try_get("pipeline")?,
        status: FlowStatus::parse(&status).ok_or_else(|| corrupt("flow status"))?,
        started_at: from_ms(row.try_get("started_at")?),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(from_ms),
        tags: parse_json(&tags, "tags")?,
        error: row.try_get("error")?,
        step_count: row.try_get::<i64, _>("step_count")? as u32,
        ingested_at: from_ms(row.try_get("ingested_at")?),
        largest_elimination: match (
            row.try_get::<Option<i64>, _>("top_seq")?,
            row.try_get::<Option<String>, _>("top_step")?,
            row.try_get::<Option<String>, _>("top_kind")?,
            row.try_get::<Option<i64>, _>("top_in")?,
            row.try_get::<Option<i64>, _>("top_out")?,
        ) {
            (Some(seq), Some(step), Some(kind), Some(input), Some(output)) => {
                Some(Elimination::new(
                    seq as u32,
                    step,
                    StepKind::parse(&kind).ok_or_else(|| corrupt("step kind"))?,
                    input.max(0) as u64,
                    output.max(0) as u64,
                ))
            }
            _ => None,
        },
    })
}

pub(crate) fn step_summary<R>(row: &R) -> Result<StepSummary>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let capture: String = row.try_get("capture")?;
    let input: String = row.try_get("input")?;
    let output: String = row.try_get("output")?;
    let reasons: String = row.try_get("reasons")?;
    Ok(StepSummary {
        seq: row.try_get::<i64, _>("seq")? as u32,
        name: row.try_get("name")?,
        kind: StepKind::parse(&kind).ok_or_else(|| corrupt("step kind"))?,
        status: FlowStatus::parse(&status).ok_or_else(|| corrupt("step status"))?,
        started_at: row.try_get::<Option<i64>, _>("started_at")?.map(from_ms),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(from_ms),
        input: parse_json(&input, "step input")?,
        output: parse_json(&output, "step output")?,
        reasoning: row.try_get("reasoning")?,
        candidates_in: row
            .try_get::<Option<i64>, _>("candidates_in")?
            .map(|n| n as u64),
        candidates_out: row
            .try_get::<Option<i64>, _>("candidates_out")?
            .map(|n| n as u64),
        reasons: parse_json(&reasons, "reason histogram")?,
        capture: Capture::parse(&capture).ok_or_else(|| corrupt("capture"))?,
        observation_count: row.try_get::<i64, _>("observation_count")? as u64,
        boundaries: match row.try_get::<Option<String>, _>("boundaries")? {
            Some(text) => parse_json(&text, "boundaries")?,
            None => Vec::new(),
        },
    })
}

/// A claimed job, from the `ingest_jobs` columns `id, team_id, flow_id, body, request_id,
/// attempts`.
pub(crate) fn job<R>(row: &R) -> Result<Job>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
{
    let flow_id: String = row.try_get("flow_id")?;
    Ok(Job {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        flow_id: Uuid::try_parse(&flow_id).map_err(|_| corrupt("job flow id"))?,
        body: row
            .try_get::<Option<Vec<u8>>, _>("body")?
            .unwrap_or_default(),
        request_id: row.try_get("request_id")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
    })
}

/// A dead job, from the `ingest_jobs` columns `id, team_id, flow_id, flow_version, attempts,
/// last_error, request_id, enqueued_at, finished_at`.
pub(crate) fn dead_letter<R>(row: &R) -> Result<DeadLetter>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let flow_id: String = row.try_get("flow_id")?;
    Ok(DeadLetter {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        flow_id: Uuid::try_parse(&flow_id).map_err(|_| corrupt("job flow id"))?,
        flow_version: row.try_get::<i64, _>("flow_version")? as u32,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        last_error: row.try_get("last_error")?,
        request_id: row.try_get("request_id")?,
        enqueued_at: row.try_get("enqueued_at")?,
        died_at: row.try_get("finished_at")?,
    })
}
