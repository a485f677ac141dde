//! Reason statistics and funnels in SQL, the same statements on SQLite and PostgreSQL. Each
//! query answers one JSON array rather than thousands of rows (sqlx hands SQLite rows over
//! one at a time between threads); only the name of the JSON aggregate differs
//! ([`SqlDatabase::json_rows`]).

use super::rows::{FunnelTuple, ReasonTuple, funnel_row, parse_json, reason_row};
use super::{SqlDatabase, on_pool};
use crate::Result;
use crate::analysis::{FunnelRow, ReasonRow, StatsQuery};
use crate::millis::{floor_sql, hour_floor, to_ms};

/// Reason counts per bucket, pipeline, step and code (see `FlowStore::reason_counts`). The
/// two parts of the stored counts are summed apart and combined in Rust (`rows::reason_row`):
/// a bucket sums at most a few thousand hourly rows, each part far below 2^63.
pub(crate) async fn reason_counts(
    db: &SqlDatabase,
    team_id: i64,
    query: &StatsQuery,
) -> Result<Vec<ReasonRow>> {
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
         GROUP BY b, p.name, r.step, r.code \
         HAVING SUM(r.count_hi) <> 0 OR SUM(r.count_lo) <> 0",
            bucket = floor_sql("r.bucket", "$1"),
        ),
    );
    let json: String = on_pool!(db, read, |pool| {
        sqlx::query_scalar(&sql)
            .bind(query.bucket_ms)
            .bind(team_id)
            .bind(hour_floor(to_ms(query.since)))
            .bind(to_ms(query.until))
            .bind(&query.pipeline)
            .bind(&query.step)
            .fetch_one(pool)
            .await?
    });
    let rows: Vec<ReasonTuple> = parse_json(&json, "reason counts")?;
    Ok(rows.into_iter().map(reason_row).collect())
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
