//! Flow reads in SQL, the same on SQLite and PostgreSQL: one flow with its steps, where its
//! payloads are, and the flows list — its filters ([`push_flow_filters`]: add a list filter's
//! SQL here), its order and its paging. Only the text search differs per dialect
//! (`engines/sqlite/search.rs`, `engines/postgres/search.rs`).

use std::collections::HashMap;

use flowtrail_types::{FlowDetail, FlowFilters, FlowStatus, FlowSummary, SdkInfo, StepSummary};
use sqlx::{Encode, QueryBuilder, Row, Type};
use uuid::Uuid;

use super::rows::{corrupt, flow_summary, parse_json, payload_ref, step_summary};
use super::{SqlDatabase, on_pool};
use crate::flows::{StepPayload, StepPayloads};
use crate::millis::bound_ms;
use crate::payloads::PayloadRef;
use crate::{Error, Result};

/// The columns of a flow summary, on `flows f` joined to `pipelines p`.
pub(crate) const FLOW_COLUMNS: &str = "f.id, f.version, p.name AS pipeline, f.status, f.started_at, \
     f.ended_at, f.tags, f.error, f.step_count, f.ingested_at, f.top_seq, f.top_step, f.top_kind, \
     f.top_in, f.top_out, f.imported_at";

/// The order of the flows list: newest first, ties by id.
pub(crate) const LIST_ORDER: &str = " ORDER BY f.started_at DESC, f.id DESC LIMIT ";

/// The filters of the flows list that read the same in both dialects — all but the team and
/// the text — as `AND` conditions on `flows f` joined to `pipelines p`.
pub(crate) fn push_flow_filters<'q, DB>(sql: &mut QueryBuilder<'q, DB>, query: &FlowFilters)
where
    DB: sqlx::Database,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    if let Some(pipeline) = &query.pipeline {
        sql.push(" AND p.name = ").push_bind(pipeline.clone());
    }
    if let Some(status) = query.status {
        sql.push(" AND f.status = ")
            .push_bind(status.as_str().to_string());
    }
    if let Some(since) = query.since {
        sql.push(" AND f.started_at >= ").push_bind(bound_ms(since));
    }
    if let Some(until) = query.until {
        sql.push(" AND f.started_at < ").push_bind(bound_ms(until));
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
            push_share_reached(sql, i64::from(share.ppm()));
        }
        sql.push(")");
    }
    if query.step.is_some() || query.reason.is_some() {
        // A step's reasons are a JSON object (code -> count); its entries are `j`.
        let (entries, count) = super::json_object_entries_in(DB::NAME == "PostgreSQL", "s.reasons");
        sql.push(" AND EXISTS (SELECT 1 FROM steps s");
        if query.reason.is_some() {
            sql.push(", ").push(entries);
        }
        sql.push(" WHERE s.team_id = f.team_id AND s.flow_id = f.id");
        if let Some(step) = &query.step {
            sql.push(" AND s.name = ").push_bind(step.clone());
        }
        if let Some(reason) = &query.reason {
            sql.push(" AND j.key = ")
                .push_bind(reason.clone())
                .push(format!(" AND {count} > 0"));
        }
        sql.push(")");
    }
    if let Some(cursor) = query.cursor {
        // "After the cursor" is `(started_at, id) < (cursor)`. The first bound is redundant but
        // lets the planners seek the `(team_id, started_at, id)` indexes to the cursor: with
        // the `OR` alone, SQLite walks the index from the newest flow on every page, so page
        // k of a list cost O(k) — 2.4 s per page half-way through 1 M flows.
        sql.push(" AND f.started_at <= ")
            .push_bind(cursor.started_at_ms)
            .push(" AND (f.started_at < ")
            .push_bind(cursor.started_at_ms)
            .push(" OR (f.started_at = ")
            .push_bind(cursor.started_at_ms)
            .push(" AND f.id < ")
            .push_bind(cursor.id.hyphenated().to_string())
            .push("))");
    }
}

/// `AND` "step `s` eliminated at least `ppm` parts per million of its candidates", exactly
/// in 64-bit integers (a float threshold misses its own value: 7 of 100 is not ≥ 0.07·100
/// in doubles), with no overflow for counts up to 2^53 — the rule of
/// `flowtrail_types::Share::is_reached_by`. With `e` eliminated of `n`, `D` = 10⁶ and
/// `n = a·D + b`: `e·D ≥ ppm·n` ⇔ `x·D ≥ ppm·b` where `x = e − ppm·a`; that is true when
/// `x > D` (as `ppm·b < D²`), false when `x < 0`, and otherwise both sides are below 10¹².
fn push_share_reached<'q, DB>(sql: &mut QueryBuilder<'q, DB>, ppm: i64)
where
    DB: sqlx::Database,
    i64: Encode<'q, DB> + Type<DB>,
{
    const D: i64 = 1_000_000;
    if ppm == 0 {
        // Every step that counted its candidates eliminated at least nothing.
        sql.push(" AND s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL");
        return;
    }
    sql.push(" AND s.candidates_in > 0 AND (CASE WHEN ((s.candidates_in - s.candidates_out) - ")
        .push_bind(ppm)
        .push(format!(" * (s.candidates_in / {D})) > {D} THEN 1 "))
        .push("WHEN ((s.candidates_in - s.candidates_out) - ")
        .push_bind(ppm)
        .push(format!(" * (s.candidates_in / {D})) < 0 THEN 0 "))
        .push("WHEN ((s.candidates_in - s.candidates_out) - ")
        .push_bind(ppm)
        .push(format!(" * (s.candidates_in / {D})) * {D} >= "))
        .push_bind(ppm)
        .push(format!(" * (s.candidates_in % {D}) THEN 1 ELSE 0 END) = 1"));
}

/// The first `want` flows of the list without text search, in list order.
pub(crate) async fn list_without_text(
    db: &SqlDatabase,
    team_id: i64,
    filters: &FlowFilters,
    want: i64,
) -> Result<Vec<FlowSummary>> {
    on_pool!(db, read, |pool| {
        let mut sql = QueryBuilder::new(format!(
            "SELECT {FLOW_COLUMNS} FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
             WHERE f.team_id = "
        ));
        sql.push_bind(team_id);
        push_flow_filters(&mut sql, filters);
        sql.push(LIST_ORDER).push_bind(want);
        let rows = sql.build().fetch_all(pool).await?;
        rows.iter().map(flow_summary).collect()
    })
}

/// A flow with its steps.
pub(crate) async fn get_flow(
    db: &SqlDatabase,
    team_id: i64,
    flow_id: Uuid,
) -> Result<Option<FlowDetail>> {
    let id = flow_id.hyphenated().to_string();
    on_pool!(db, read, |pool| {
        let Some(row) = sqlx::query(&format!(
            "SELECT {FLOW_COLUMNS}, f.input, f.output, f.sdk_name, f.sdk_version, f.pinned_at \
             FROM flows f \
             JOIN pipelines p ON p.id = f.pipeline_id WHERE f.team_id = $1 AND f.id = $2"
        ))
        .bind(team_id)
        .bind(&id)
        .fetch_optional(pool)
        .await?
        else {
            return Ok(None);
        };
        let input: String = row.try_get("input")?;
        let output: String = row.try_get("output")?;
        let sdk = match (
            row.try_get::<Option<String>, _>("sdk_name")?,
            row.try_get::<Option<String>, _>("sdk_version")?,
        ) {
            (Some(name), Some(version)) => Some(SdkInfo { name, version }),
            _ => None,
        };
        let steps = sqlx::query(
            "SELECT seq, name, kind, status, started_at, ended_at, input, output, reasoning, \
             candidates_in, candidates_out, reasons, capture, observation_count, boundaries, \
             parent_seq, span_id, parent_span_id FROM steps WHERE team_id = $1 AND flow_id = $2 ORDER BY seq",
        )
        .bind(team_id)
        .bind(&id)
        .fetch_all(pool)
        .await?;
        Ok(Some(FlowDetail {
            summary: flow_summary(&row)?,
            input: parse_json(&input, "flow input")?,
            output: parse_json(&output, "flow output")?,
            sdk,
            steps: steps.iter().map(step_summary).collect::<Result<_>>()?,
            pinned: row.try_get::<Option<i64>, _>("pinned_at")?.is_some(),
        }))
    })
}

/// Where each step's observations are, for the steps that stored some.
pub(crate) async fn flow_payloads(
    db: &SqlDatabase,
    team_id: i64,
    flow_id: Uuid,
) -> Result<StepPayloads> {
    on_pool!(db, read, |pool| {
        let rows = sqlx::query(
            "SELECT seq, payload_key, payload_sha256, payload_bytes, payload_inline FROM steps \
             WHERE team_id = $1 AND flow_id = $2 AND payload_key IS NOT NULL",
        )
        .bind(team_id)
        .bind(flow_id.hyphenated().to_string())
        .fetch_all(pool)
        .await?;
        let mut payloads = StepPayloads::new();
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            if let Some(reference) = payload_ref(&row)? {
                payloads.insert(seq as u32, reference);
            }
        }
        Ok(payloads)
    })
}

/// The steps of several flows in one statement (see `FlowStore::flows_steps`).
pub(crate) async fn flows_steps(
    db: &SqlDatabase,
    team_id: i64,
    flow_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(StepSummary, Option<PayloadRef>)>>> {
    let mut steps: HashMap<Uuid, Vec<(StepSummary, Option<PayloadRef>)>> = HashMap::new();
    if flow_ids.is_empty() {
        return Ok(steps);
    }
    let ids: Vec<String> = flow_ids
        .iter()
        .map(|id| id.hyphenated().to_string())
        .collect();
    let ids = serde_json::to_string(&ids).map_err(|e| Error::Internal(e.to_string()))?;
    let list = db.json_text_values("$2");
    on_pool!(db, read, |pool| {
        let rows = sqlx::query(&format!(
            "SELECT flow_id, seq, name, kind, status, started_at, ended_at, input, output, \
             reasoning, candidates_in, candidates_out, reasons, capture, observation_count, \
             boundaries, parent_seq, span_id, parent_span_id, payload_key, payload_sha256, \
             payload_bytes, payload_inline FROM steps \
             WHERE team_id = $1 AND flow_id IN ({list}) ORDER BY flow_id, seq"
        ))
        .bind(team_id)
        .bind(&ids)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let flow_id: String = row.try_get("flow_id")?;
            let flow_id = Uuid::parse_str(&flow_id).map_err(|_| corrupt("step flow id"))?;
            let payload = payload_ref(row)?;
            steps
                .entry(flow_id)
                .or_default()
                .push((step_summary(row)?, payload));
        }
        Ok(steps)
    })
}

/// Where a step's observations are, with its flow's version and status; `None` if the step
/// does not exist.
pub(crate) async fn step_payload(
    db: &SqlDatabase,
    team_id: i64,
    flow_id: Uuid,
    seq: u32,
) -> Result<Option<StepPayload>> {
    on_pool!(db, read, |pool| {
        let row = sqlx::query(
            "SELECT s.payload_key, s.payload_sha256, s.payload_bytes, s.payload_inline, \
                    f.version, f.status \
             FROM steps s JOIN flows f ON f.team_id = s.team_id AND f.id = s.flow_id \
             WHERE s.team_id = $1 AND s.flow_id = $2 AND s.seq = $3",
        )
        .bind(team_id)
        .bind(flow_id.hyphenated().to_string())
        .bind(i64::from(seq))
        .fetch_optional(pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let status: String = row.try_get("status")?;
                Ok(Some(StepPayload {
                    payload: payload_ref(&row)?,
                    flow_version: u32::try_from(row.try_get::<i64, _>("version")?)
                        .map_err(|_| corrupt("flow version"))?,
                    flow_status: FlowStatus::parse(&status)
                        .ok_or_else(|| corrupt("flow status"))?,
                }))
            }
        }
    })
}

/// The team's pipelines (id, name), by name; only `name` when given.
pub(crate) async fn pipelines(
    db: &SqlDatabase,
    team_id: i64,
    name: Option<&str>,
) -> Result<Vec<(i64, String)>> {
    on_pool!(db, read, |pool| {
        Ok(sqlx::query_as(
            "SELECT id, name FROM pipelines \
             WHERE team_id = $1 AND (CAST($2 AS TEXT) IS NULL OR name = $2) ORDER BY name",
        )
        .bind(team_id)
        .bind(name)
        .fetch_all(pool)
        .await?)
    })
}
