//! Writing a batch of flows to SQLite in a fixed number of statements, whatever the batch's
//! size: every statement works on the whole batch (keys passed as one JSON array and read
//! with `json_each`, rows inserted with multi-row `VALUES`). Each statement is a round trip
//! to sqlx's SQLite thread, so this, not SQLite, sets the write rate.
//!
//! A batch that names a flow twice (a steps push and the finished record, say) is written in
//! rounds, each holding a flow at most once, in the batch's order.

use std::collections::{HashMap, HashSet};

use flowtrail_types::FlowStatus;
use serde_json::json;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{Database, search};
use crate::engines::sql::flows::FLOW_COLUMNS;
use crate::engines::sql::rows::{corrupt, flow_summary};
use crate::engines::sql::writes::{
    FLOW_INSERT, FLOW_PARAMS, STEP_INSERT, STEP_PARAMS, derived_columns, flow_count_sql,
    flow_upsert, hour_bucket_sql, push_step_row, reason_count_add, reason_count_parts,
    search_document_sql,
};
use crate::flows::derived::{StepRow, json_text};
use crate::flows::{FlowWrite, Precedence, UpsertOutcome, WriteMode};
use crate::millis::{now_ms, to_ms};
use crate::{Error, Result};

/// SQLite's default limit of bound parameters per statement is 32,766.
const MAX_PARAMS: usize = 32_000;

/// `(team_id, flow_id)` pairs of these writes as a JSON array for `json_each`.
fn keys(writes: &[&FlowWrite<'_>]) -> String {
    let keys: Vec<_> = writes
        .iter()
        .map(|w| json!({"t": w.team_id, "f": w.flow.id.hyphenated().to_string()}))
        .collect();
    serde_json::Value::Array(keys).to_string()
}

/// Joins `json_each(?)` of [`keys`] rows to a table's `(team_id, <id column>)`.
const KEY_T: &str = "json_extract(k.value, '$.t')";
const KEY_F: &str = "json_extract(k.value, '$.f')";

/// Writes a batch of flows in one transaction; one outcome per write, in order.
pub(crate) async fn write_batch(
    db: &Database,
    writes: &[FlowWrite<'_>],
) -> Result<Vec<UpsertOutcome>> {
    // Another process may write too (the CLI beside a server): take the lock first.
    let mut tx = db.write.begin_with("BEGIN IMMEDIATE").await?;
    let outcomes = write_rounds(&mut tx, writes).await?;
    tx.commit().await?;
    Ok(outcomes)
}

async fn write_rounds(
    conn: &mut SqliteConnection,
    writes: &[FlowWrite<'_>],
) -> Result<Vec<UpsertOutcome>> {
    let mut outcomes = vec![UpsertOutcome::Stale; writes.len()];
    let mut start = 0;
    while start < writes.len() {
        let mut seen = HashSet::new();
        let mut end = start;
        while end < writes.len() && seen.insert((writes[end].team_id, writes[end].flow.id)) {
            end += 1;
        }
        write_round(conn, &writes[start..end], &mut outcomes[start..end]).await?;
        start = end;
    }
    Ok(outcomes)
}

/// Writes flows that are all distinct.
async fn write_round(
    conn: &mut SqliteConnection,
    writes: &[FlowWrite<'_>],
    outcomes: &mut [UpsertOutcome],
) -> Result<()> {
    let all: Vec<&FlowWrite<'_>> = writes.iter().collect();
    let stored: HashMap<(i64, String), (i64, String)> =
        sqlx::query_as::<_, (i64, String, i64, String)>(&format!(
            "SELECT f.team_id, f.id, f.version, f.status FROM json_each(?) k \
         JOIN flows f ON f.team_id = {KEY_T} AND f.id = {KEY_F}"
        ))
        .bind(keys(&all))
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(team, id, version, status)| ((team, id), (version, status)))
        .collect();

    // Which writes go ahead, and which of them bring the flow's own fields.
    let mut live: Vec<(&FlowWrite<'_>, usize)> = Vec::new();
    let mut headers: Vec<&FlowWrite<'_>> = Vec::new();
    let mut unused: Vec<&str> = Vec::new();
    for (i, write) in writes.iter().enumerate() {
        let key = (write.team_id, write.flow.id.hyphenated().to_string());
        let stored = match stored.get(&key) {
            None => None,
            Some((version, status)) => Some((
                u32::try_from(*version).map_err(|_| corrupt("flow version"))?,
                FlowStatus::parse(status).ok_or_else(|| corrupt("flow status"))?,
            )),
        };
        match write.precedence(stored) {
            Precedence::Stale => {
                unused.extend(write.object_keys());
                continue;
            }
            Precedence::Conflict => {
                outcomes[i] = UpsertOutcome::Conflict;
                unused.extend(write.object_keys());
                continue;
            }
            Precedence::Write { header } => {
                live.push((write, i));
                if header {
                    headers.push(write);
                }
            }
        }
    }
    if !unused.is_empty() {
        // Objects put for writes that stored nothing (FlowWrite::object_keys).
        sqlx::query(
            "INSERT INTO payload_deletions (key, queued_at) SELECT value, ?2 FROM json_each(?1) \
             WHERE true ON CONFLICT (key) DO NOTHING",
        )
        .bind(serde_json::Value::from(unused).to_string())
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    }
    if live.is_empty() {
        return Ok(());
    }
    let positions: Vec<usize> = live.iter().map(|(_, i)| *i).collect();
    let live: Vec<&FlowWrite<'_>> = live.into_iter().map(|(write, _)| write).collect();
    let live_keys = keys(&live);

    // Subtract the stored steps' reasons while the flows' pipelines and starts are still the
    // stored ones; every remaining step is added back at the end.
    adjust_reason_counts(conn, &live_keys, -1).await?;
    adjust_flow_counts(conn, &live_keys, -1).await?;
    sqlx::query(&format!(
        "DELETE FROM reason_counts WHERE count_hi = 0 AND count_lo = 0 AND (team_id, bucket) IN \
         (SELECT f.team_id, {bucket} FROM json_each(?) k \
          JOIN flows f ON f.team_id = {KEY_T} AND f.id = {KEY_F})",
        bucket = hour_bucket_sql("f.started_at"),
    ))
    .bind(&live_keys)
    .execute(&mut *conn)
    .await?;

    // Steps: a whole flow replaces them all, a push those with its seqs.
    let (replaced, merged): (Vec<_>, Vec<_>) =
        live.iter().partition(|w| w.mode != WriteMode::MergeSteps);
    if !replaced.is_empty() {
        // Their object-store payloads are deleted once this commits (crate::retention).
        sqlx::query(&format!(
            "INSERT INTO payload_deletions (key, queued_at) \
             SELECT s.payload_key, ?2 FROM json_each(?1) k \
             JOIN steps s ON s.team_id = {KEY_T} AND s.flow_id = {KEY_F} \
             WHERE s.payload_key IS NOT NULL AND s.payload_inline IS NULL \
             ON CONFLICT (key) DO NOTHING"
        ))
        .bind(keys(&replaced))
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        sqlx::query(&format!(
            "DELETE FROM steps WHERE (team_id, flow_id) IN \
             (SELECT {KEY_T}, {KEY_F} FROM json_each(?) k)"
        ))
        .bind(keys(&replaced))
        .execute(&mut *conn)
        .await?;
    }
    if !merged.is_empty() {
        let seqs: Vec<_> = merged
            .iter()
            .flat_map(|w| {
                w.flow.steps.iter().map(|s| {
                    json!({"t": w.team_id, "f": w.flow.id.hyphenated().to_string(), "s": s.seq})
                })
            })
            .collect();
        let seqs = serde_json::Value::Array(seqs).to_string();
        sqlx::query(&format!(
            "INSERT INTO payload_deletions (key, queued_at) \
             SELECT s.payload_key, ?2 FROM json_each(?1) k \
             JOIN steps s ON s.team_id = {KEY_T} AND s.flow_id = {KEY_F} \
                 AND s.seq = json_extract(k.value, '$.s') \
             WHERE s.payload_key IS NOT NULL AND s.payload_inline IS NULL \
             ON CONFLICT (key) DO NOTHING"
        ))
        .bind(&seqs)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        sqlx::query(&format!(
            "DELETE FROM steps WHERE (team_id, flow_id, seq) IN \
             (SELECT {KEY_T}, {KEY_F}, json_extract(k.value, '$.s') FROM json_each(?) k)"
        ))
        .bind(&seqs)
        .execute(&mut *conn)
        .await?;
    }

    let now = now_ms();
    if !headers.is_empty() {
        write_headers(conn, &headers, now).await?;
    }
    insert_steps(conn, &live).await?;
    adjust_reason_counts(conn, &live_keys, 1).await?;
    adjust_flow_counts(conn, &live_keys, 1).await?;
    refresh_derived(conn, &live_keys).await?;
    // What the live events need: a whole record's summary is the record itself; a push's
    // depends on what was stored before, so those are read in the same transaction.
    let merged: Vec<&FlowWrite<'_>> = live
        .iter()
        .copied()
        .filter(|w| w.mode == WriteMode::MergeSteps)
        .collect();
    let mut summaries = HashMap::with_capacity(merged.len());
    if !merged.is_empty() {
        let rows = sqlx::query(&format!(
            "SELECT f.team_id, {FLOW_COLUMNS} FROM json_each(?) k \
             JOIN flows f ON f.team_id = {KEY_T} AND f.id = {KEY_F} \
             JOIN pipelines p ON p.id = f.pipeline_id"
        ))
        .bind(keys(&merged))
        .fetch_all(&mut *conn)
        .await?;
        for row in &rows {
            let team_id: i64 = row.try_get("team_id")?;
            let summary = flow_summary(row)?;
            summaries.insert((team_id, summary.id), summary);
        }
    }
    for (write, position) in live.iter().zip(positions) {
        let summary = match write.mode {
            WriteMode::Replace | WriteMode::Spans => write.replaced_summary(now),
            WriteMode::MergeSteps => summaries
                .get(&(write.team_id, write.flow.id))
                .cloned()
                .ok_or_else(|| Error::Internal("a written flow vanished".into()))?,
        };
        outcomes[position] = UpsertOutcome::Written(Box::new(summary));
    }
    Ok(())
}

/// The flows' own rows, their pipelines and their tags.
async fn write_headers(
    conn: &mut SqliteConnection,
    headers: &[&FlowWrite<'_>],
    now: i64,
) -> Result<()> {
    let pipelines: Vec<_> = headers
        .iter()
        .map(|w| json!({"t": w.team_id, "p": w.flow.pipeline}))
        .collect();
    let pipelines = serde_json::Value::Array(pipelines).to_string();
    sqlx::query(
        "INSERT INTO pipelines (team_id, name) \
         SELECT DISTINCT json_extract(value, '$.t'), json_extract(value, '$.p') FROM json_each(?) \
         WHERE true ON CONFLICT DO NOTHING",
    )
    .bind(&pipelines)
    .execute(&mut *conn)
    .await?;
    let ids: HashMap<(i64, String), i64> = sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT DISTINCT p.team_id, p.name, p.id FROM json_each(?) k JOIN pipelines p \
         ON p.team_id = json_extract(k.value, '$.t') AND p.name = json_extract(k.value, '$.p')",
    )
    .bind(&pipelines)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(team, name, id)| ((team, name), id))
    .collect();
    let retagged: Vec<&FlowWrite<'_>> = headers
        .iter()
        .copied()
        .filter(|w| w.rewrites_tags())
        .collect();
    sqlx::query(&format!(
        "DELETE FROM flow_tags WHERE (team_id, flow_id) IN \
         (SELECT {KEY_T}, {KEY_F} FROM json_each(?) k)"
    ))
    .bind(keys(&retagged))
    .execute(&mut *conn)
    .await?;

    let mut rows = Vec::with_capacity(headers.len());
    for write in headers {
        let flow = write.flow;
        let pipeline_id = *ids
            .get(&(write.team_id, flow.pipeline.clone()))
            .ok_or_else(|| Error::Internal("pipeline vanished after insert".into()))?;
        rows.push((
            write.team_id,
            flow.id.hyphenated().to_string(),
            pipeline_id,
            json_text(&flow.input)?,
            json_text(&flow.output)?,
            json_text(&flow.tags)?,
            flow,
            write.mode,
            write.imported,
        ));
    }
    for mode in [WriteMode::Replace, WriteMode::MergeSteps, WriteMode::Spans] {
        let rows: Vec<_> = rows.iter().filter(|row| row.7 == mode).collect();
        write_flow_rows(conn, &rows, now, mode).await?;
    }

    let tags: Vec<(i64, String, &String, &String)> = retagged
        .iter()
        .flat_map(|w| {
            let id = w.flow.id.hyphenated().to_string();
            w.flow
                .tags
                .iter()
                .map(move |(key, value)| (w.team_id, id.clone(), key, value))
        })
        .collect();
    for chunk in tags.chunks(MAX_PARAMS / 4) {
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO flow_tags (team_id, flow_id, key, value) ");
        sql.push_values(chunk, |mut row, (team, id, key, value)| {
            row.push_bind(*team)
                .push_bind(id.as_str())
                .push_bind(key.as_str())
                .push_bind(value.as_str());
        });
        sql.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// A flow row as bound: team, id, pipeline id, input, output and tags as JSON text, the
/// record, its write mode, whether it is imported.
type FlowRow<'a> = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    &'a flowtrail_types::FlowRecord,
    WriteMode,
    bool,
);

/// Inserts or updates flow rows written in `mode`, in chunks under the parameter limit.
async fn write_flow_rows(
    conn: &mut SqliteConnection,
    rows: &[&FlowRow<'_>],
    now: i64,
    mode: WriteMode,
) -> Result<()> {
    for chunk in rows.chunks(MAX_PARAMS / FLOW_PARAMS) {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(FLOW_INSERT);
        sql.push_values(
            chunk,
            |mut row, (team, id, pipeline, input, output, tags, flow, _, imported)| {
                row.push_bind(*team)
                    .push_bind(id.as_str())
                    .push_bind(i64::from(flow.version))
                    .push_bind(*pipeline)
                    .push_bind(flow.status.as_str())
                    .push_bind(to_ms(flow.started_at))
                    .push_bind(flow.ended_at.map(to_ms))
                    .push_bind(input.as_str())
                    .push_bind(output.as_str())
                    .push_bind(tags.as_str())
                    .push_bind(flow.error.as_deref())
                    .push_bind(flow.sdk.as_ref().map(|s| s.name.as_str()))
                    .push_bind(flow.sdk.as_ref().map(|s| s.version.as_str()))
                    .push("0")
                    .push_bind(now)
                    .push_bind(imported.then_some(now));
            },
        );
        sql.push(flow_upsert(mode));
        sql.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Every step the writes carry, with where its observations are.
async fn insert_steps(conn: &mut SqliteConnection, live: &[&FlowWrite<'_>]) -> Result<()> {
    let mut rows = Vec::new();
    for write in live {
        rows.extend(StepRow::of_write(write)?);
    }
    for chunk in rows.chunks(MAX_PARAMS / STEP_PARAMS) {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(STEP_INSERT);
        sql.push_values(chunk, |mut values, row| push_step_row(&mut values, row));
        sql.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds (`sign` 1) or subtracts (`sign` -1) the stored step histograms of these flows to
/// the hourly reason counts.
async fn adjust_reason_counts(conn: &mut SqliteConnection, keys: &str, sign: i64) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO reason_counts \
             (team_id, pipeline_id, step, bucket, code, count_hi, count_lo) \
         SELECT f.team_id, f.pipeline_id, s.name, {bucket}, j.key, {parts} \
         FROM json_each(?2) k \
         JOIN steps s ON s.team_id = {KEY_T} AND s.flow_id = {KEY_F} \
         JOIN flows f ON f.team_id = s.team_id AND f.id = s.flow_id, \
              json_each(s.reasons) j \
         WHERE true \
         GROUP BY 1, 2, 3, 4, 5 \
         ON CONFLICT DO UPDATE SET {add}",
        parts = reason_count_parts("?1", "j.value"),
        add = reason_count_add(""),
        bucket = hour_bucket_sql("f.started_at"),
    ))
    .bind(sign)
    .bind(keys)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds (`sign` 1) or subtracts (`sign` -1) these flows, as stored now, to the hourly flow
/// counts (`sql::writes::flow_count_sql`); new flows are not stored yet when subtracted.
async fn adjust_flow_counts(conn: &mut SqliteConnection, keys: &str, sign: i64) -> Result<()> {
    let from = format!(
        "FROM json_each(?2) k JOIN flows f ON f.team_id = {KEY_T} AND f.id = {KEY_F} WHERE true"
    );
    let [add, empty] = flow_count_sql("?1", &from, "");
    let statements = if sign < 0 {
        &[add, empty][..]
    } else {
        &[add][..]
    };
    for sql in statements {
        // SQLite numbers its parameters: `?1` is unused by the second statement, harmless.
        sqlx::query(sql)
            .bind(sign)
            .bind(keys)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Recomputes what is derived from the flows' steps: their count, the largest elimination
/// and the search document.
async fn refresh_derived(conn: &mut SqliteConnection, keys: &str) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE flows SET {derived} \
         WHERE (team_id, id) IN (SELECT {KEY_T}, {KEY_F} FROM json_each(?) k)",
        derived = derived_columns("flows"),
    ))
    .bind(keys)
    .execute(&mut *conn)
    .await?;
    // The search document is rewritten under a new rowid, in its flow's time bucket (which
    // moves if `started_at` changed): the bucket's highest rowid so far plus one, onwards.
    sqlx::query(&format!(
        "DELETE FROM flow_search WHERE rowid IN (SELECT d.id FROM json_each(?) k \
         JOIN flow_search_ids d ON d.team_id = {KEY_T} AND d.flow_id = {KEY_F})"
    ))
    .bind(keys)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "DELETE FROM flow_search_ids WHERE (team_id, flow_id) IN \
         (SELECT {KEY_T}, {KEY_F} FROM json_each(?) k)"
    ))
    .bind(keys)
    .execute(&mut *conn)
    .await?;
    let first = search::first_rowid_sql("b.bucket");
    let next = search::first_rowid_sql("(b.bucket + 1)");
    sqlx::query(&format!(
        "INSERT INTO flow_search_ids (id, team_id, flow_id) \
         SELECT coalesce((SELECT max(x.id) + 1 FROM flow_search_ids x \
                          WHERE x.id >= {first} AND x.id < {next}), {first}) \
                + row_number() OVER (PARTITION BY b.bucket ORDER BY b.team_id, b.id) - 1, \
                b.team_id, b.id \
         FROM (SELECT f.team_id, f.id, {bucket} AS bucket FROM json_each(?) k \
               JOIN flows f ON f.team_id = {KEY_T} AND f.id = {KEY_F}) b",
        bucket = search::bucket_sql("f.started_at"),
    ))
    .bind(keys)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO flow_search (rowid, body) \
         SELECT d.id, {document} \
         FROM json_each(?) k \
         JOIN flow_search_ids d ON d.team_id = {KEY_T} AND d.flow_id = {KEY_F} \
         JOIN flows f ON f.team_id = d.team_id AND f.id = d.flow_id \
         JOIN pipelines p ON p.id = f.pipeline_id",
        document = search_document_sql(),
    ))
    .bind(keys)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
