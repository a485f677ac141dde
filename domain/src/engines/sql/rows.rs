//! Decoding rows into domain types, the same for SQLite and PostgreSQL rows: the columns and
//! their meaning do not differ by dialect.

use flowtrail_types::{Capture, Elimination, FlowStatus, FlowSummary, StepKind, StepSummary};
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::analysis::{FunnelRow, ReasonRow};
use crate::flows::WriteMode;
use crate::ingest::{DeadLetter, Job};
use crate::millis::from_ms;
use crate::payloads::PayloadRef;
use crate::{Error, Result};

/// A reason-count query's row: bucket (Unix ms), pipeline, step, code, and the count's two
/// summed parts `count_hi`, `count_lo` (see [`super::writes::REASON_LO_BITS`]).
pub(crate) type ReasonTuple = (i64, String, String, String, i64, i64);

/// A reason count: `hi * 2^32 + lo`, exact in 128 bits (never negative: only what was added
/// is ever subtracted).
pub(crate) fn reason_row((bucket_ms, pipeline, step, code, hi, lo): ReasonTuple) -> ReasonRow {
    let count = (i128::from(hi) << super::writes::REASON_LO_BITS) + i128::from(lo);
    ReasonRow {
        bucket_ms,
        pipeline,
        step,
        code,
        count: u128::try_from(count).unwrap_or(0),
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

pub(crate) fn corrupt(what: &str) -> Error {
    Error::Internal(format!("stored {what} is not valid"))
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
        imported_at: row.try_get::<Option<i64>, _>("imported_at")?.map(from_ms),
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
        parent_seq: row
            .try_get::<Option<i64>, _>("parent_seq")?
            .map(|n| u32::try_from(n).map_err(|_| corrupt("parent seq")))
            .transpose()?,
        span_id: row.try_get("span_id")?,
        parent_span_id: row.try_get("parent_span_id")?,
    })
}

/// A claimed job, from the `ingest_jobs` columns `id, team_id, flow_id, body, request_id,
/// attempts, mode`.
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
    let mode: String = row.try_get("mode")?;
    Ok(Job {
        mode: WriteMode::parse(&mode).ok_or_else(|| corrupt("job mode"))?,
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

/// The payload columns of a step row (`payload_key, payload_sha256, payload_bytes,
/// payload_inline`): where its observations are, if it stored some.
pub(crate) fn payload_ref<R>(row: &R) -> Result<Option<PayloadRef>>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
{
    let key: Option<String> = row.try_get("payload_key")?;
    let sha: Option<String> = row.try_get("payload_sha256")?;
    let bytes: Option<i64> = row.try_get("payload_bytes")?;
    let inline: Option<Vec<u8>> = row.try_get("payload_inline")?;
    Ok(match (key, sha, bytes) {
        (Some(key), Some(sha256), Some(bytes)) => Some(PayloadRef {
            key,
            inline: inline.map(bytes::Bytes::from),
            sha256,
            bytes: bytes as u64,
        }),
        _ => None,
    })
}
