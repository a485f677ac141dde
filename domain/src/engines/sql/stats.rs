//! Reason statistics and funnels in SQL, the same statements on SQLite and PostgreSQL. Each
//! query answers one JSON array rather than thousands of rows (sqlx hands SQLite rows over
//! one at a time between threads); only the name of the JSON aggregate differs
//! ([`SqlDatabase::json_rows`]).

use super::rows::{FunnelTuple, ReasonTuple, funnel_row, parse_json, reason_row};
use super::writes::REASON_LO_BITS;
use super::{SqlDatabase, on_pool};
use crate::Result;
use crate::analysis::{FunnelRow, ReasonRow, StatsQuery};
use crate::millis::{HOUR_MS, floor_sql, hour_floor, to_ms};

/// The start of the first hour at or after `ms`.
fn hour_ceil(ms: i64) -> i64 {
    let floor = hour_floor(ms);
    if floor == ms { ms } else { floor + HOUR_MS }
}

/// Reason counts per bucket, pipeline, step and code (see `FlowStore::reason_counts`), exact
/// for any `since` and `until`: the whole hours of the range come from the hourly rollups
/// (`reason_counts`), the parts of an hour at either end from the steps of the flows that
/// started in them. The two parts of the stored counts are summed apart and combined in Rust
/// (`rows::reason_row`): a bucket sums at most a few thousand hourly rows, each part far below
/// 2^63.
pub(crate) async fn reason_counts(
    db: &SqlDatabase,
    team_id: i64,
    query: &StatsQuery,
) -> Result<Vec<ReasonRow>> {
    let (since, until) = (to_ms(query.since), to_ms(query.until));
    let first_hour = hour_ceil(since);
    let last_hour = hour_floor(until);
    // [since, first_hour) and [last_hour, until), or the whole range inside one hour.
    let edges = if first_hour <= last_hour {
        [(since, first_hour), (last_hour, until)]
    } else {
        [(since, until), (until, until)]
    };
    let whole = (first_hour, last_hour.max(first_hour));
    let sql = db.json_rows(
        "b, name, step, code, hi, lo",
        Some("b, name, step, code"),
        &format!(
            "SELECT {bucket} AS b, p.name, r.step, r.code, \
                CAST(SUM(r.count_hi) AS BIGINT) AS hi, CAST(SUM(r.count_lo) AS BIGINT) AS lo \
         FROM reason_counts r JOIN pipelines p ON p.id = r.pipeline_id \
         WHERE r.team_id = $2 AND r.bucket >= $3 AND r.bucket < $4 \
           AND (CAST($5 AS TEXT) IS NULL OR p.name = $5) \
           AND (CAST($6 AS TEXT) IS NULL OR r.step = $6) \
           AND CAST($7 AS BIGINT) <= CAST($8 AS BIGINT) \
         GROUP BY b, p.name, r.step, r.code \
         HAVING SUM(r.count_hi) <> 0 OR SUM(r.count_lo) <> 0",
            bucket = floor_sql("r.bucket", "$1"),
        ),
    );
    let (entries, value) = db.json_object_entries("s.reasons");
    let edge_sql = db.json_rows(
        "b, name, step, code, hi, lo",
        None,
        &format!(
            "SELECT {bucket} AS b, p.name, s.name AS step, j.key AS code, \
                CAST(SUM({value} >> {bits}) AS BIGINT) AS hi, \
                CAST(SUM({value} & {mask}) AS BIGINT) AS lo \
         FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
         JOIN steps s ON s.team_id = f.team_id AND s.flow_id = f.id, {entries} \
         WHERE f.team_id = $2 \
           AND ((f.started_at >= $3 AND f.started_at < $4) \
                OR (f.started_at >= $7 AND f.started_at < $8)) \
           AND (CAST($5 AS TEXT) IS NULL OR p.name = $5) \
           AND (CAST($6 AS TEXT) IS NULL OR s.name = $6) \
         GROUP BY 1, 2, 3, 4",
            bucket = floor_sql("f.started_at", "$1"),
            bits = REASON_LO_BITS,
            mask = (1u64 << REASON_LO_BITS) - 1,
        ),
    );
    let fetch = |sql: String, (a, b): (i64, i64), (c, d): (i64, i64)| async move {
        let json: String = on_pool!(db, read, |pool| {
            sqlx::query_scalar(&sql)
                .bind(query.bucket_ms)
                .bind(team_id)
                .bind(a)
                .bind(b)
                .bind(&query.pipeline)
                .bind(&query.step)
                .bind(c)
                .bind(d)
                .fetch_one(pool)
                .await?
        });
        parse_json::<Vec<ReasonTuple>>(&json, "reason counts")
    };
    // Both statements take the same eight parameters; the rollups' $7 and $8 are a no-op
    // clause (PostgreSQL refuses a parameter a statement does not use).
    // A range of whole hours has no edges to read.
    let has_edges = edges.iter().any(|(from, to)| from < to);
    let (whole_rows, edge_rows) = futures::try_join!(fetch(sql, whole, (0, 0)), async {
        if has_edges {
            fetch(edge_sql, edges[0], edges[1]).await
        } else {
            Ok(Vec::new())
        }
    })?;
    // One row per (bucket, pipeline, step, code), in that order.
    let mut sums: std::collections::BTreeMap<(i64, String, String, String), u128> =
        std::collections::BTreeMap::new();
    for row in whole_rows.into_iter().chain(edge_rows).map(reason_row) {
        *sums
            .entry((row.bucket_ms, row.pipeline, row.step, row.code))
            .or_default() += row.count;
    }
    Ok(sums
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|((bucket_ms, pipeline, step, code), count)| ReasonRow {
            bucket_ms,
            pipeline,
            step,
            code,
            count,
        })
        .collect())
}

/// The funnel rows of one pipeline: its newest `flow_cap` flows in the range, their steps'
/// counts.
pub(crate) async fn funnel_of(
    db: &SqlDatabase,
    team_id: i64,
    query: &StatsQuery,
    flow_cap: u32,
    (pipeline_id, pipeline): (i64, String),
) -> Result<Vec<FunnelRow>> {
    let sql = db.json_rows(
        "flow_id, seq, name, kind, candidates_in, candidates_out",
        // The medians are computed from the rows in any order.
        None,
        "SELECT s.flow_id, s.seq, s.name, s.kind, s.candidates_in, s.candidates_out \
         FROM (SELECT id FROM flows WHERE team_id = $1 AND pipeline_id = $2 \
               AND started_at >= $3 AND started_at < $4 \
               ORDER BY started_at DESC, id DESC LIMIT $5) f \
         JOIN steps s ON s.team_id = $1 AND s.flow_id = f.id \
         WHERE s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL \
           AND (CAST($6 AS TEXT) IS NULL OR s.name = $6)",
    );
    let json: String = on_pool!(db, read, |pool| {
        sqlx::query_scalar(&sql)
            .bind(team_id)
            .bind(pipeline_id)
            .bind(to_ms(query.since))
            .bind(to_ms(query.until))
            .bind(i64::from(flow_cap))
            .bind(&query.step)
            .fetch_one(pool)
            .await?
    });
    let rows: Vec<FunnelTuple> = parse_json(&json, "funnel rows")?;
    rows.into_iter()
        .map(|row| funnel_row(&pipeline, row))
        .collect()
}
