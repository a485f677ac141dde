//! Writing flows to PostgreSQL: statement by statement per flow, inside one transaction per
//! batch. The statements' text and the rules (version precedence, derived columns, step
//! rows) are the shared ones of `engines/sql/writes.rs` and `flows`; only PostgreSQL's JSON
//! functions and its `tsvector` search document are its own.

use flowtrail_types::FlowStatus;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::Database;
use crate::engines::sql::flows::FLOW_COLUMNS;
use crate::engines::sql::rows::{corrupt, flow_summary};
use crate::engines::sql::writes::{
    FLOW_INSERT, STEP_INSERT, STEP_PARAMS, derived_columns, flow_count_sql, flow_upsert,
    hour_bucket_sql, push_step_row, reason_count_add, reason_count_parts, search_document_sql,
};
use crate::flows::derived::{StepRow, json_text};
use crate::flows::{FlowWrite, Precedence, UpsertOutcome, WriteMode};
use crate::millis::{now_ms, to_ms};
use crate::{Error, Result};

/// PostgreSQL's limit of bound parameters per statement is 65,535.
const MAX_PARAMS: usize = 65_000;

/// Writes a batch of flows in one transaction; one outcome per write, in order.
pub(crate) async fn write_batch(
    db: &Database,
    writes: &[FlowWrite<'_>],
) -> Result<Vec<UpsertOutcome>> {
    let mut tx = db.write.begin().await?;
    let mut outcomes = Vec::with_capacity(writes.len());
    for write in writes {
        outcomes.push(write_flow(&mut tx, write).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Writes one flow with its steps and tags inside the caller's transaction, unless what is
/// stored supersedes it (see [`WriteMode`]).
async fn write_flow(conn: &mut PgConnection, write: &FlowWrite<'_>) -> Result<UpsertOutcome> {
    let FlowWrite {
        team_id,
        flow,
        payloads: _,
        mode,
        imported: _,
    } = *write;
    let flow_id = flow.id.hyphenated().to_string();
    if mode == WriteMode::Spans {
        // Compare-and-set: assembled writes of one flow take turns, so the version read
        // below is still the stored one when the row is written (even when none is yet).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("flowtrail:spans:{team_id}:{flow_id}"))
            .execute(&mut *conn)
            .await?;
    }
    let stored: Option<(i64, String)> =
        sqlx::query_as("SELECT version, status FROM flows WHERE team_id = $1 AND id = $2")
            .bind(team_id)
            .bind(&flow_id)
            .fetch_optional(&mut *conn)
            .await?;
    let stored = match stored {
        None => None,
        Some((version, status)) => Some((
            u32::try_from(version).map_err(|_| corrupt("flow version"))?,
            FlowStatus::parse(&status).ok_or_else(|| corrupt("flow status"))?,
        )),
    };
    let take_header = match write.precedence(stored) {
        Precedence::Write { header } => header,
        skipped => {
            // Objects put for a write that stores nothing (FlowWrite::object_keys).
            let unused: Vec<&str> = write.object_keys().collect();
            if !unused.is_empty() {
                sqlx::query(
                    "INSERT INTO payload_deletions (key, queued_at) \
                     SELECT key, $2 FROM UNNEST($1::TEXT[]) AS k(key) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(&unused)
                .bind(now_ms())
                .execute(&mut *conn)
                .await?;
            }
            return Ok(match skipped {
                Precedence::Conflict => UpsertOutcome::Conflict,
                _ => UpsertOutcome::Stale,
            });
        }
    };
    let now = now_ms();
    // Subtract the stored steps' reasons while the flow's pipeline and start are still the
    // stored ones; every remaining step is added back below.
    adjust_reason_counts(conn, team_id, &flow_id, -1).await?;
    adjust_flow_counts(conn, team_id, &flow_id, -1).await?;
    let replaced_seqs = match mode {
        WriteMode::Replace | WriteMode::Spans => None,
        WriteMode::MergeSteps => Some(
            serde_json::to_string(&flow.steps.iter().map(|s| s.seq).collect::<Vec<_>>())
                .map_err(|e| Error::Internal(e.to_string()))?,
        ),
    };
    // Their object-store payloads are deleted once this commits (crate::retention).
    sqlx::query(
        "INSERT INTO payload_deletions (key, queued_at) \
         SELECT payload_key, $4 FROM steps WHERE team_id = $1 AND flow_id = $2 \
         AND ($3::TEXT IS NULL OR seq IN \
              (SELECT value::BIGINT FROM json_array_elements_text($3::JSON))) \
         AND payload_key IS NOT NULL AND payload_inline IS NULL \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(team_id)
    .bind(&flow_id)
    .bind(&replaced_seqs)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // The replaced steps, and their ids in the candidate index.
    for table in ["steps", "flow_candidates"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE team_id = $1 AND flow_id = $2 \
             AND ($3::TEXT IS NULL OR seq IN \
                  (SELECT value::BIGINT FROM json_array_elements_text($3::JSON)))"
        ))
        .bind(team_id)
        .bind(&flow_id)
        .bind(&replaced_seqs)
        .execute(&mut *conn)
        .await?;
    }
    if take_header {
        write_header(conn, write, &flow_id, now).await?;
    }
    let rows = StepRow::of_write(write)?;
    for chunk in rows.chunks(MAX_PARAMS / STEP_PARAMS) {
        let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(STEP_INSERT);
        sql.push_values(chunk, |mut values, row| push_step_row(&mut values, row));
        sql.build().execute(&mut *conn).await?;
    }
    insert_candidates(conn, write, &flow_id).await?;
    adjust_reason_counts(conn, team_id, &flow_id, 1).await?;
    adjust_flow_counts(conn, team_id, &flow_id, 1).await?;
    refresh_derived(conn, team_id, &flow_id).await?;
    // What the live event needs: a whole record's summary is the record itself; a push's
    // depends on what was stored before, so it is read in the same transaction.
    if mode != WriteMode::MergeSteps {
        return Ok(UpsertOutcome::Written(Box::new(
            write.replaced_summary(now),
        )));
    }
    let row = sqlx::query(&format!(
        "SELECT {FLOW_COLUMNS} FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
         WHERE f.team_id = $1 AND f.id = $2"
    ))
    .bind(team_id)
    .bind(&flow_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(UpsertOutcome::Written(Box::new(flow_summary(&row)?)))
}

/// The flow's own row and its tags.
async fn write_header(
    conn: &mut PgConnection,
    write: &FlowWrite<'_>,
    flow_id: &str,
    now: i64,
) -> Result<()> {
    let (team_id, flow) = (write.team_id, write.flow);
    sqlx::query("INSERT INTO pipelines (team_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(team_id)
        .bind(&flow.pipeline)
        .execute(&mut *conn)
        .await?;
    let pipeline_id: i64 =
        sqlx::query_scalar("SELECT id FROM pipelines WHERE team_id = $1 AND name = $2")
            .bind(team_id)
            .bind(&flow.pipeline)
            .fetch_one(&mut *conn)
            .await?;
    if write.rewrites_tags() {
        sqlx::query("DELETE FROM flow_tags WHERE team_id = $1 AND flow_id = $2")
            .bind(team_id)
            .bind(flow_id)
            .execute(&mut *conn)
            .await?;
    }
    let tags = json_text(&flow.tags)?;
    sqlx::query(&format!(
        "{FLOW_INSERT} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $15) \
         {upsert}",
        upsert = flow_upsert(write.mode),
    ))
    .bind(team_id)
    .bind(flow_id)
    .bind(i64::from(flow.version))
    .bind(pipeline_id)
    .bind(flow.status.as_str())
    .bind(to_ms(flow.started_at))
    .bind(flow.ended_at.map(to_ms))
    .bind(json_text(&flow.input)?)
    .bind(json_text(&flow.output)?)
    .bind(tags)
    .bind(&flow.error)
    .bind(flow.sdk.as_ref().map(|s| s.name.as_str()))
    .bind(flow.sdk.as_ref().map(|s| s.version.as_str()))
    .bind(now)
    .bind(write.imported.then_some(now))
    .execute(&mut *conn)
    .await?;
    for (key, value) in &flow.tags {
        sqlx::query("INSERT INTO flow_tags (team_id, flow_id, key, value) VALUES ($1, $2, $3, $4)")
            .bind(team_id)
            .bind(flow_id)
            .bind(key)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The candidate ids of the write's steps into the candidate index (`flow_candidates`), each
/// once per step: what `q` matches whole, beyond the part of the text a `tsvector` holds.
async fn insert_candidates(
    conn: &mut PgConnection,
    write: &FlowWrite<'_>,
    flow_id: &str,
) -> Result<()> {
    let (mut seqs, mut ids) = (Vec::new(), Vec::new());
    for step in &write.flow.steps {
        let mut seen = std::collections::HashSet::new();
        for observation in &step.observations {
            if seen.insert(observation.candidate_id.as_str()) {
                seqs.push(i64::from(step.seq));
                ids.push(observation.candidate_id.as_str());
            }
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO flow_candidates (team_id, candidate_id, flow_id, seq) \
         SELECT $1, c.id, $2, c.seq FROM unnest($3::BIGINT[], $4::TEXT[]) AS c(seq, id)",
    )
    .bind(write.team_id)
    .bind(flow_id)
    .bind(&seqs)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds (`sign` 1) or subtracts (`sign` -1) the flow, as stored now, to the hourly flow
/// counts (`sql::writes::flow_count_sql`); a new flow is not stored yet when subtracted.
async fn adjust_flow_counts(
    conn: &mut PgConnection,
    team_id: i64,
    flow_id: &str,
    sign: i64,
) -> Result<()> {
    let [add, _] = flow_count_sql(
        "$1::BIGINT",
        "FROM flows f WHERE f.team_id = $2 AND f.id = $3",
        "flow_counts.",
    );
    sqlx::query(&add)
        .bind(sign)
        .bind(team_id)
        .bind(flow_id)
        .execute(&mut *conn)
        .await?;
    if sign < 0 {
        let [_, empty] = flow_count_sql("1", "FROM flows f WHERE f.team_id = $1 AND f.id = $2", "");
        sqlx::query(&empty)
            .bind(team_id)
            .bind(flow_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Adds (`sign` 1) or subtracts (`sign` -1) the flow's stored step histograms to the hourly
/// reason counts.
async fn adjust_reason_counts(
    conn: &mut PgConnection,
    team_id: i64,
    flow_id: &str,
    sign: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO reason_counts \
             (team_id, pipeline_id, step, bucket, code, count_hi, count_lo) \
         SELECT f.team_id, f.pipeline_id, s.name, {bucket}, j.key, {parts} \
         FROM steps s JOIN flows f ON f.team_id = s.team_id AND f.id = s.flow_id, \
              json_each_text(s.reasons::JSON) j \
         WHERE s.team_id = $2 AND s.flow_id = $3 \
         GROUP BY 1, 2, 3, 4, 5 \
         ON CONFLICT (team_id, bucket, pipeline_id, step, code) DO UPDATE SET {add}",
        parts = reason_count_parts("$1::BIGINT", "j.value::BIGINT"),
        add = reason_count_add("reason_counts."),
        bucket = hour_bucket_sql("f.started_at"),
    ))
    .bind(sign)
    .bind(team_id)
    .bind(flow_id)
    .execute(&mut *conn)
    .await?;
    if sign < 0 {
        sqlx::query(&format!(
            "DELETE FROM reason_counts WHERE team_id = $1 AND count_hi = 0 AND count_lo = 0 \
             AND bucket IN \
             (SELECT {bucket} FROM flows WHERE team_id = $2 AND id = $3)",
            bucket = hour_bucket_sql("started_at"),
        ))
        .bind(team_id)
        .bind(team_id)
        .bind(flow_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Recomputes what is derived from the flow's steps: their count, the largest elimination
/// and the search document — its first [`SEARCH_DOCUMENT_CHARS`] characters, and whether it
/// was longer (`search_partial`).
async fn refresh_derived(conn: &mut PgConnection, team_id: i64, flow_id: &str) -> Result<()> {
    sqlx::query(&format!(
        "WITH d AS (SELECT {document} AS doc FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
                    WHERE f.team_id = $1 AND f.id = $2) \
         UPDATE flows f SET {derived}, \
         search = to_tsvector('simple', left(d.doc, {SEARCH_DOCUMENT_CHARS})), \
         search_partial = length(d.doc) > {SEARCH_DOCUMENT_CHARS} \
         FROM d WHERE f.team_id = $1 AND f.id = $2",
        derived = derived_columns("f"),
        document = search_document_sql(),
    ))
    .bind(team_id)
    .bind(flow_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Characters of a flow's search document PostgreSQL indexes. A `tsvector` holds at most
/// 1 MB (PostgreSQL documentation, "Text Search Types: tsvector"); a text of 100,000
/// characters, at most 400,000 bytes in UTF-8, makes one of at most about 800 KB even when
/// every word is short and distinct. Candidate ids are matched whole beyond it
/// (`flow_candidates`); what else lies beyond is said (`FlowPage::search_complete`).
pub(crate) const SEARCH_DOCUMENT_CHARS: usize = 100_000;
