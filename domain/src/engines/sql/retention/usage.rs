//! Daily usage counters: adding what ingest and refusals count, reading them per day and
//! pipeline.

use flowtrail_types::admin::UsageRow;
use sqlx::Row;

use super::{signed, unsigned};
use crate::Result;
use crate::engines::sql::{SqlDatabase, on_pool};
use crate::retention::store::UsageDelta;

/// [`RetentionStore::add_usage`](crate::retention::store::RetentionStore::add_usage) on `db`.
pub(super) async fn add_usage(db: &SqlDatabase, deltas: &[UsageDelta]) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let begin = db.begin_write();
    on_pool!(db, write, |pool| {
        let mut tx = pool.begin_with(begin).await?;
        for d in deltas {
            sqlx::query(
                "INSERT INTO usage_daily (team_id, day, pipeline, flows, steps, observations, \
                     bytes, rejected, rate_limited, replayed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (team_id, day, pipeline) DO UPDATE SET \
                     flows = usage_daily.flows + excluded.flows, \
                     steps = usage_daily.steps + excluded.steps, \
                     observations = usage_daily.observations + excluded.observations, \
                     bytes = usage_daily.bytes + excluded.bytes, \
                     rejected = usage_daily.rejected + excluded.rejected, \
                     rate_limited = usage_daily.rate_limited + excluded.rate_limited, \
                     replayed = usage_daily.replayed + excluded.replayed",
            )
            .bind(d.team_id)
            .bind(d.day)
            .bind(&d.pipeline)
            .bind(signed(d.flows))
            .bind(signed(d.steps))
            .bind(signed(d.observations))
            .bind(signed(d.bytes))
            .bind(signed(d.rejected))
            .bind(signed(d.rate_limited))
            .bind(signed(d.replayed))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// [`RetentionStore::usage`](crate::retention::store::RetentionStore::usage) on `db`.
pub(super) async fn usage(
    db: &SqlDatabase,
    team_id: i64,
    since_day: i64,
    until_day: i64,
) -> Result<Vec<UsageRow>> {
    on_pool!(db, read, |pool| {
        let rows = sqlx::query(
            "SELECT day, pipeline, flows, steps, observations, bytes, rejected, rate_limited, \
             replayed FROM usage_daily WHERE team_id = $1 AND day >= $2 AND day <= $3 \
             ORDER BY day, pipeline",
        )
        .bind(team_id)
        .bind(since_day)
        .bind(until_day)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                let day: i64 = row.try_get("day")?;
                let pipeline: String = row.try_get("pipeline")?;
                let count = |name: &str| row.try_get::<i64, _>(name).map(unsigned);
                Ok(UsageRow {
                    day: crate::retention::day_label(day),
                    pipeline: (!pipeline.is_empty()).then_some(pipeline),
                    flows: count("flows")?,
                    steps: count("steps")?,
                    observations: count("observations")?,
                    bytes: count("bytes")?,
                    rejected: count("rejected")?,
                    rate_limited: count("rate_limited")?,
                    replayed: count("replayed")?,
                })
            })
            .collect()
    })
}
