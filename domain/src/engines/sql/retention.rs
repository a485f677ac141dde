//! [`RetentionStore`] in SQL, the same statements on SQLite and PostgreSQL (a list of ids is
//! passed as one JSON array, read by [`SqlDatabase::json_text_values`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use flowtrail_types::admin::{RetentionPolicy, RetentionRun, UsageRow};
use sqlx::Row;

use super::writes::{hour_bucket_sql, reason_count_add, reason_count_parts};
use super::{SqlDatabase, SqlMetadata, on_pool};
use crate::millis::{from_ms, now_ms};
use crate::retention::store::{Deleted, DeletedBatch, RetentionStore, UsageDelta};
use crate::{Error, Result};

fn json_list<T: serde::Serialize>(items: &[T]) -> Result<String> {
    serde_json::to_string(items).map_err(|e| Error::Internal(e.to_string()))
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl SqlDatabase {
    /// A subquery answering the strings of the JSON array bound at `param` as `value`:
    /// SQLite's `json_each`, PostgreSQL's `json_array_elements_text`.
    pub(crate) fn json_text_values(&self, param: &str) -> String {
        match self {
            SqlDatabase::Sqlite(_) => format!("SELECT value FROM json_each({param})"),
            SqlDatabase::Postgres(_) => {
                format!("SELECT value FROM json_array_elements_text({param}::JSON)")
            }
        }
    }
}

#[async_trait]
impl RetentionStore for SqlMetadata {
    async fn retention_policy(&self, team_id: i64) -> Result<RetentionPolicy> {
        let rows: Vec<(String, Option<i64>)> = on_pool!(&self.db, read, |pool| {
            sqlx::query_as("SELECT pipeline, days FROM retention_policies WHERE team_id = $1")
                .bind(team_id)
                .fetch_all(pool)
                .await?
        });
        let mut policy = RetentionPolicy::default();
        for (pipeline, days) in rows {
            let days = days.and_then(|d| u32::try_from(d).ok());
            if pipeline.is_empty() {
                policy.default_days = days;
            } else {
                policy.pipelines.insert(pipeline, days);
            }
        }
        Ok(policy)
    }

    async fn set_retention_policy(&self, team_id: i64, policy: &RetentionPolicy) -> Result<()> {
        let mut rows: BTreeMap<&str, Option<u32>> = BTreeMap::new();
        rows.insert("", policy.default_days);
        for (pipeline, days) in &policy.pipelines {
            rows.insert(pipeline, *days);
        }
        let begin = self.db.begin_write();
        on_pool!(&self.db, write, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query("DELETE FROM retention_policies WHERE team_id = $1")
                .bind(team_id)
                .execute(&mut *tx)
                .await?;
            for (pipeline, days) in &rows {
                sqlx::query(
                    "INSERT INTO retention_policies (team_id, pipeline, days) VALUES ($1, $2, $3)",
                )
                .bind(team_id)
                .bind(*pipeline)
                .bind(days.map(i64::from))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn teams_with_retention(&self) -> Result<Vec<i64>> {
        on_pool!(&self.db, read, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT DISTINCT team_id FROM retention_policies WHERE days IS NOT NULL \
                 ORDER BY team_id",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    async fn pipelines(&self, team_id: i64) -> Result<Vec<(i64, String)>> {
        on_pool!(&self.db, read, |pool| {
            Ok(
                sqlx::query_as("SELECT id, name FROM pipelines WHERE team_id = $1 ORDER BY name")
                    .bind(team_id)
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    async fn expired(&self, team_id: i64, pipeline_id: i64, cutoff_ms: i64) -> Result<Deleted> {
        let (flows, bytes): (i64, i64) = on_pool!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), CAST(coalesce(( \
                     SELECT SUM(s.payload_bytes) FROM steps s JOIN flows e \
                     ON e.team_id = s.team_id AND e.id = s.flow_id \
                     WHERE e.team_id = $1 AND e.pipeline_id = $2 AND e.started_at < $3 \
                       AND e.pinned_at IS NULL), 0) AS BIGINT) \
                 FROM flows f WHERE f.team_id = $1 AND f.pipeline_id = $2 \
                   AND f.started_at < $3 AND f.pinned_at IS NULL",
            )
            .bind(team_id)
            .bind(pipeline_id)
            .bind(cutoff_ms)
            .fetch_one(pool)
            .await?
        });
        Ok(Deleted {
            flows: unsigned(flows),
            bytes: unsigned(bytes),
        })
    }

    async fn oldest_kept(
        &self,
        team_id: i64,
        pipeline_id: i64,
        cutoff_ms: Option<i64>,
    ) -> Result<Option<i64>> {
        // Two index seeks: the oldest flow at or after the cutoff, the oldest pinned one.
        let (unexpired, pinned): (Option<i64>, Option<i64>) = on_pool!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT (SELECT MIN(started_at) FROM flows \
                         WHERE team_id = $1 AND pipeline_id = $2 AND started_at >= $3), \
                        (SELECT MIN(started_at) FROM flows \
                         WHERE team_id = $1 AND pipeline_id = $2 AND pinned_at IS NOT NULL)",
            )
            .bind(team_id)
            .bind(pipeline_id)
            .bind(cutoff_ms.unwrap_or(i64::MIN))
            .fetch_one(pool)
            .await?
        });
        Ok(match (unexpired, pinned) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn expired_batch(
        &self,
        team_id: i64,
        pipeline_id: i64,
        cutoff_ms: i64,
        limit: u32,
    ) -> Result<Vec<String>> {
        on_pool!(&self.db, read, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT id FROM flows WHERE team_id = $1 AND pipeline_id = $2 \
                 AND started_at < $3 AND pinned_at IS NULL ORDER BY started_at LIMIT $4",
            )
            .bind(team_id)
            .bind(pipeline_id)
            .bind(cutoff_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?)
        })
    }

    async fn delete_flows(&self, team_id: i64, flow_ids: &[String]) -> Result<DeletedBatch> {
        if flow_ids.is_empty() {
            return Ok(DeletedBatch::default());
        }
        let db = &self.db;
        let requested = json_list(flow_ids)?;
        let list = db.json_text_values("$2");
        let (entries, value) = db.json_object_entries("s.reasons");
        let qualify = match db {
            SqlDatabase::Sqlite(_) => "",
            SqlDatabase::Postgres(_) => "reason_counts.",
        };
        let subtract = format!(
            "INSERT INTO reason_counts \
                 (team_id, pipeline_id, step, bucket, code, count_hi, count_lo) \
             SELECT f.team_id, f.pipeline_id, s.name, {bucket}, j.key, {parts} \
             FROM steps s JOIN flows f ON f.team_id = s.team_id AND f.id = s.flow_id, {entries} \
             WHERE s.team_id = $1 AND s.flow_id IN ({list}) \
             GROUP BY 1, 2, 3, 4, 5 \
             ON CONFLICT (team_id, bucket, pipeline_id, step, code) DO UPDATE SET {add}",
            bucket = hour_bucket_sql("f.started_at"),
            parts = reason_count_parts("-1", value),
            add = reason_count_add(qualify),
        );
        let empty_buckets = format!(
            "DELETE FROM reason_counts WHERE team_id = $1 AND count_hi = 0 AND count_lo = 0 \
             AND bucket IN (SELECT {bucket} FROM flows WHERE team_id = $1 AND id IN ({list}))",
            bucket = hour_bucket_sql("started_at"),
        );
        let search: Vec<String> = match db {
            SqlDatabase::Sqlite(_) => vec![
                format!(
                    "DELETE FROM flow_search WHERE rowid IN (SELECT id FROM flow_search_ids \
                     WHERE team_id = $1 AND flow_id IN ({list}))"
                ),
                format!("DELETE FROM flow_search_ids WHERE team_id = $1 AND flow_id IN ({list})"),
            ],
            SqlDatabase::Postgres(_) => vec![format!(
                "DELETE FROM flow_candidates WHERE team_id = $1 AND flow_id IN ({list})"
            )],
        };
        let rows: Vec<String> = [
            format!("DELETE FROM steps WHERE team_id = $1 AND flow_id IN ({list})"),
            format!("DELETE FROM flow_tags WHERE team_id = $1 AND flow_id IN ({list})"),
            format!(
                "DELETE FROM ingest_jobs WHERE team_id = $1 AND flow_id IN ({list}) \
                 AND state = 'done'"
            ),
        ]
        .into_iter()
        .collect();
        let lock = db.skip_locked();
        let begin = db.begin_write();
        on_pool!(db, write, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            let locked = std::time::Instant::now();
            // Only flows still there and unpinned now (pinning races the sweep); PostgreSQL
            // locks them and skips those an ingest write holds (the next sweep takes them).
            let victims: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT id FROM flows WHERE team_id = $1 AND id IN ({list}) \
                 AND pinned_at IS NULL{lock}"
            ))
            .bind(team_id)
            .bind(&requested)
            .fetch_all(&mut *tx)
            .await?;
            if victims.is_empty() {
                return Ok(DeletedBatch::default());
            }
            let ids = json_list(&victims)?;
            sqlx::query(&format!(
                "INSERT INTO payload_deletions (key, queued_at) \
                 SELECT s.payload_key, $3 FROM steps s WHERE s.team_id = $1 \
                 AND s.flow_id IN ({list}) \
                 AND s.payload_key IS NOT NULL AND s.payload_inline IS NULL \
                 ON CONFLICT (key) DO NOTHING"
            ))
            .bind(team_id)
            .bind(&ids)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let bytes: i64 = sqlx::query_scalar(&format!(
                "SELECT CAST(coalesce(SUM(payload_bytes), 0) AS BIGINT) FROM steps \
                 WHERE team_id = $1 AND flow_id IN ({list})"
            ))
            .bind(team_id)
            .bind(&ids)
            .fetch_one(&mut *tx)
            .await?;
            for sql in [&subtract, &empty_buckets]
                .into_iter()
                .chain(search.iter())
                .chain(rows.iter())
            {
                sqlx::query(sql)
                    .bind(team_id)
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
            }
            let flows = sqlx::query(&format!(
                "DELETE FROM flows WHERE team_id = $1 AND id IN ({list})"
            ))
            .bind(team_id)
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(DeletedBatch {
                deleted: Deleted {
                    flows,
                    bytes: unsigned(bytes),
                },
                held: locked.elapsed(),
            })
        })
    }

    async fn payload_deletions(&self, limit: u32) -> Result<Vec<String>> {
        on_pool!(&self.db, read, |pool| {
            Ok(
                sqlx::query_scalar("SELECT key FROM payload_deletions ORDER BY key LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    async fn referenced_payload_keys(&self, keys: &[String]) -> Result<Vec<String>> {
        let list = self.db.json_text_values("$1");
        let keys = json_list(keys)?;
        on_pool!(&self.db, read, |pool| {
            Ok(sqlx::query_scalar(&format!(
                "SELECT DISTINCT payload_key FROM steps WHERE payload_key IN ({list}) \
                 AND payload_inline IS NULL"
            ))
            .bind(&keys)
            .fetch_all(pool)
            .await?)
        })
    }

    async fn forget_payload_deletions(&self, keys: &[String]) -> Result<()> {
        let list = self.db.json_text_values("$1");
        let keys = json_list(keys)?;
        on_pool!(&self.db, write, |pool| {
            sqlx::query(&format!(
                "DELETE FROM payload_deletions WHERE key IN ({list})"
            ))
            .bind(&keys)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn all_payload_keys(&self) -> Result<Vec<String>> {
        on_pool!(&self.db, read, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT payload_key FROM steps \
                 WHERE payload_key IS NOT NULL AND payload_inline IS NULL",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    async fn acquire_lease(&self, name: &str, holder: &str, until_ms: i64) -> Result<bool> {
        let taken = on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leases.holder = excluded.holder OR leases.until < $4",
            )
            .bind(name)
            .bind(holder)
            .bind(until_ms)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(taken > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        on_pool!(&self.db, write, |pool| {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn start_run(&self, team_id: i64, started_at: i64) -> Result<i64> {
        on_pool!(&self.db, write, |pool| {
            Ok(sqlx::query_scalar(
                "INSERT INTO retention_runs (team_id, started_at) VALUES ($1, $2) RETURNING id",
            )
            .bind(team_id)
            .bind(started_at)
            .fetch_one(pool)
            .await?)
        })
    }

    async fn update_run(
        &self,
        run_id: i64,
        deleted: Deleted,
        finished_at: Option<i64>,
    ) -> Result<()> {
        on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE retention_runs SET flows_deleted = $2, bytes_deleted = $3, \
                 finished_at = $4 WHERE id = $1",
            )
            .bind(run_id)
            .bind(signed(deleted.flows))
            .bind(signed(deleted.bytes))
            .bind(finished_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn runs(&self, team_id: i64, limit: u32) -> Result<Vec<RetentionRun>> {
        let rows: Vec<(i64, Option<i64>, i64, i64)> = on_pool!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT started_at, finished_at, flows_deleted, bytes_deleted FROM retention_runs \
                 WHERE team_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
            )
            .bind(team_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(started, finished, flows, bytes)| RetentionRun {
                started_at: from_ms(started),
                finished_at: finished.map(from_ms),
                flows_deleted: unsigned(flows),
                bytes_deleted: unsigned(bytes),
            })
            .collect())
    }

    async fn set_pinned(&self, team_id: i64, flow_id: &str, pinned: bool) -> Result<bool> {
        let found = on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE flows SET pinned_at = CASE WHEN $3 THEN coalesce(pinned_at, $4) END \
                 WHERE team_id = $1 AND id = $2",
            )
            .bind(team_id)
            .bind(flow_id)
            .bind(pinned)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(found > 0)
    }

    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let begin = self.db.begin_write();
        on_pool!(&self.db, write, |pool| {
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

    async fn usage(&self, team_id: i64, since_day: i64, until_day: i64) -> Result<Vec<UsageRow>> {
        on_pool!(&self.db, read, |pool| {
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
}
