//! SQL text of the write path that both engines use as is: the flow row's upsert, the step
//! row's columns, and what is derived from the stored steps (count, largest drop). The
//! engines differ in how they batch these (`engines/sqlite/writes.rs`: a whole batch per
//! statement through `json_each`; `engines/postgres/writes.rs`: statement per flow), not in
//! what they write.

use sqlx::query_builder::Separated;
use sqlx::{Database, Encode, Type};

use crate::flows::WriteMode;
use crate::flows::derived::StepRow;
use crate::millis::to_ms;

/// Columns of `flows` a write sets, in bind order (`step_count` starts at 0 and is derived).
pub(crate) const FLOW_INSERT: &str = "INSERT INTO flows (team_id, id, version, pipeline_id, \
     status, started_at, ended_at, input, output, tags, error, sdk_name, sdk_version, \
     step_count, ingested_at, imported_at) ";

/// How a flow row already stored is replaced by its newer version.
pub(crate) const FLOW_UPSERT: &str = " ON CONFLICT (team_id, id) DO UPDATE SET \
     version = excluded.version, pipeline_id = excluded.pipeline_id, status = excluded.status, \
     started_at = excluded.started_at, ended_at = excluded.ended_at, input = excluded.input, \
     output = excluded.output, tags = excluded.tags, error = excluded.error, \
     sdk_name = excluded.sdk_name, sdk_version = excluded.sdk_version, \
     ingested_at = excluded.ingested_at, imported_at = excluded.imported_at";

/// How a running flow's row takes a steps push's own fields: a push carries no output,
/// error or end, so those stay; an input, tags or SDK it does not carry (null, `{}`, none)
/// do not erase the stored ones.
pub(crate) const FLOW_MERGE_UPSERT: &str = " ON CONFLICT (team_id, id) DO UPDATE SET \
     version = excluded.version, pipeline_id = excluded.pipeline_id, status = excluded.status, \
     started_at = excluded.started_at, \
     input = CASE WHEN excluded.input = 'null' THEN flows.input ELSE excluded.input END, \
     tags = CASE WHEN excluded.tags = '{}' THEN flows.tags ELSE excluded.tags END, \
     sdk_name = coalesce(excluded.sdk_name, flows.sdk_name), \
     sdk_version = coalesce(excluded.sdk_version, flows.sdk_version), \
     ingested_at = excluded.ingested_at, imported_at = NULL";

/// The upsert tail of a flow row written in `mode`.
pub(crate) fn flow_upsert(mode: WriteMode) -> &'static str {
    match mode {
        WriteMode::Replace | WriteMode::Spans => FLOW_UPSERT,
        WriteMode::MergeSteps => FLOW_MERGE_UPSERT,
    }
}

/// Columns of `steps` a write sets, in the bind order of `flows::derived::StepRow`.
pub(crate) const STEP_INSERT: &str = "INSERT INTO steps (team_id, flow_id, seq, name, kind, \
     status, started_at, ended_at, input, output, reasoning, candidates_in, candidates_out, \
     reasons, capture, observation_count, payload_key, payload_sha256, payload_bytes, \
     payload_inline, search_text, boundaries, parent_seq, span_id, parent_span_id) ";

/// How many values one step row binds.
pub(crate) const STEP_PARAMS: usize = 25;

/// How many values one flow row binds.
pub(crate) const FLOW_PARAMS: usize = 15;

/// The derived columns of the flow row `flows` (the table itself, or an alias of it): its
/// step count and its **largest drop** (`top_*`) — the definition of
/// `flowtrail_types::Elimination::is_larger_drop_than`: the largest share of `candidates_in`
/// eliminated, then the larger count, then the earlier step; none when no step eliminated
/// anything. (The share is compared in double precision here: shares equal as fractions
/// compare equal, and only fractions closer than 2⁻⁵² could be misordered.)
pub(crate) fn derived_columns(flows: &str) -> String {
    format!(
        "step_count = (SELECT COUNT(*) FROM steps s \
             WHERE s.team_id = {flows}.team_id AND s.flow_id = {flows}.id), \
         (top_seq, top_step, top_kind, top_in, top_out) = (\
             SELECT s.seq, s.name, s.kind, s.candidates_in, s.candidates_out FROM steps s \
             WHERE s.team_id = {flows}.team_id AND s.flow_id = {flows}.id \
               AND s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL \
               AND s.candidates_in > s.candidates_out \
             ORDER BY CAST(s.candidates_in - s.candidates_out AS DOUBLE PRECISION) \
                          / s.candidates_in DESC, \
                      s.candidates_in - s.candidates_out DESC, s.seq LIMIT 1)"
    )
}

/// The text of a flow's search document, on `flows f` joined to `pipelines p`: the pipeline,
/// the error, and per step its name, reasoning, reason histogram and observation text
/// (candidate ids, reason codes and texts: `flows::derived::observation_text`). SQLite
/// indexes it with FTS5, PostgreSQL as a `tsvector`.
pub(crate) fn search_document_sql() -> &'static str {
    "p.name || ' ' || coalesce(f.error, '') || ' ' || coalesce((\
         SELECT string_agg(s.name || ' ' || coalesce(s.reasoning, '') || ' ' || s.reasons \
             || ' ' || coalesce(s.search_text, ''), ' ') \
         FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id), '')"
}

/// The start of the hour bucket of `started_at` (Unix ms) as SQL, rounded down like
/// [`crate::millis::hour_floor`].
pub(crate) fn hour_bucket_sql(started_at: &str) -> String {
    crate::millis::floor_sql(started_at, &crate::millis::HOUR_MS.to_string())
}

/// The statements that add `sign` (a SQL expression worth 1 or -1) times the flows of `from`
/// — a SQL `FROM … WHERE` clause naming the flows `f` — to the hourly flow counts
/// (migration `flow_counts`), then drop the hours whose count fell to zero. `table`
/// qualifies the stored row for PostgreSQL (`"flow_counts."`, empty on SQLite). A flow is
/// subtracted before it is rewritten and added after (its pipeline, start or status may
/// change), and subtracted before retention deletes it, all in the write's transaction.
pub(crate) fn flow_count_sql(sign: &str, from: &str, table: &str) -> [String; 2] {
    let bucket = hour_bucket_sql("f.started_at");
    [
        format!(
            "INSERT INTO flow_counts (team_id, bucket, pipeline_id, flows, failed) \
             SELECT f.team_id, {bucket}, f.pipeline_id, {sign} * CAST(COUNT(*) AS BIGINT), \
                 {sign} * CAST(SUM(CASE WHEN f.status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) \
             {from} \
             GROUP BY 1, 2, 3 \
             ON CONFLICT (team_id, bucket, pipeline_id) DO UPDATE SET \
                 flows = {table}flows + excluded.flows, failed = {table}failed + excluded.failed"
        ),
        format!(
            "DELETE FROM flow_counts WHERE flows = 0 AND (team_id, bucket, pipeline_id) IN \
             (SELECT f.team_id, {bucket}, f.pipeline_id {from})"
        ),
    ]
}

/// Bits of a reason count kept in `count_lo`: a stored count is
/// `count_hi * 2^REASON_LO_BITS + count_lo` with `count_lo` in `[0, 2^REASON_LO_BITS)`
/// (migration `exact_reason_sums`). Neither part can overflow: a step count is at most 2^53
/// ([`crate::ingest::MAX_COUNT`]), so each adds at most 2^21 to `count_hi`.
pub(crate) const REASON_LO_BITS: u32 = 32;

/// The two parts of `sign * SUM(value)` (`sign` a bound ±1, `value` a SQL integer expression
/// of one step count) as the SQL of `(count_hi, count_lo)`, `count_lo` normalised to
/// `[0, 2^32)` (arithmetic shifts floor on both engines). Summing the parts separately keeps
/// every intermediate sum far below 2^63 however many steps one flow has.
pub(crate) fn reason_count_parts(sign: &str, value: &str) -> String {
    let bits = REASON_LO_BITS;
    let mask = (1u64 << bits) - 1;
    let lo = format!("({sign} * CAST(SUM({value} & {mask}) AS BIGINT))");
    format!("{sign} * CAST(SUM({value} >> {bits}) AS BIGINT) + ({lo} >> {bits}), {lo} & {mask}")
}

/// The `ON CONFLICT` update that adds an `excluded` count to a stored one, carrying from
/// `count_lo` into `count_hi` (`table` qualifies the stored row for PostgreSQL). Every
/// right-hand side reads the row as it was before the update (SQL's rule on both engines).
pub(crate) fn reason_count_add(table: &str) -> String {
    let bits = REASON_LO_BITS;
    let mask = (1u64 << bits) - 1;
    format!(
        "count_hi = {table}count_hi + excluded.count_hi \
             + (({table}count_lo + excluded.count_lo) >> {bits}), \
         count_lo = ({table}count_lo + excluded.count_lo) & {mask}"
    )
}

/// Binds one step row into a multi-row `VALUES` of [`STEP_INSERT`], in its column order.
pub(crate) fn push_step_row<'q, DB>(
    values: &mut Separated<'_, 'q, DB, &'static str>,
    row: &'q StepRow<'q>,
) where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
{
    let step = row.step;
    let payload = row.payload;
    values
        .push_bind(row.team_id)
        .push_bind(row.flow_id.as_str())
        .push_bind(i64::from(step.seq))
        .push_bind(step.name.as_str())
        .push_bind(step.kind.as_str())
        .push_bind(step.status.as_str())
        .push_bind(step.started_at.map(to_ms))
        .push_bind(step.ended_at.map(to_ms))
        .push_bind(row.input.as_str())
        .push_bind(row.output.as_str())
        .push_bind(step.reasoning.as_deref())
        .push_bind(step.effective_candidates_in().map(|n| n as i64))
        .push_bind(step.effective_candidates_out().map(|n| n as i64))
        .push_bind(row.reasons.as_str())
        .push_bind(step.capture.as_str())
        .push_bind(step.observations.len() as i64)
        .push_bind(payload.map(|p| p.key.as_str()))
        .push_bind(payload.map(|p| p.sha256.as_str()))
        .push_bind(payload.map(|p| p.bytes as i64))
        .push_bind(payload.and_then(|p| p.inline.as_deref()))
        .push_bind(row.search.as_deref())
        .push_bind(row.boundaries.as_deref())
        .push_bind(step.parent_seq.map(i64::from))
        .push_bind(step.span_id.as_deref())
        .push_bind(step.parent_span_id.as_deref());
}

/// [`hour_bucket_sql`] on generated times (proptest, issue #18): SQLite computes the hour
/// bucket the rollups are keyed by exactly as [`crate::millis::hour_floor`] does, for every
/// time a flow can start at (years -9999 to 9999). `PROPTEST_CASES` sets the number of cases
/// (default 512).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use time::PrimitiveDateTime;

    use super::hour_bucket_sql;
    use crate::millis::{HOUR_MS, hour_floor, to_ms};

    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(512);
        ProptestConfig::with_cases(cases)
    }

    /// A time a flow can start at (Unix ms): anywhere, on or next to an hour, around 1970.
    fn start_ms() -> impl Strategy<Value = i64> {
        let (min, max) = (
            to_ms(PrimitiveDateTime::MIN.assume_utc()),
            to_ms(PrimitiveDateTime::MAX.assume_utc()),
        );
        prop_oneof![
            min..=max,
            (min / HOUR_MS..=max / HOUR_MS, -1i64..=1)
                .prop_map(move |(hour, delta)| (hour * HOUR_MS + delta).clamp(min, max)),
            -2 * HOUR_MS..2 * HOUR_MS,
            Just(min),
            Just(max),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn the_sql_hour_bucket_is_the_rust_hour_floor(
            times in proptest::collection::vec(start_ms(), 1..16)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
                let sql = format!("SELECT {}", hour_bucket_sql("?1"));
                for &t in &times {
                    let hour: i64 = sqlx::query_scalar(&sql)
                        .bind(t)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    prop_assert_eq!(hour, hour_floor(t), "hour of {}", t);
                }
                Ok(())
            })?;
        }
    }
}
