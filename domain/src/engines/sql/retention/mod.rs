//! [`RetentionStore`] in SQL, the same statements on SQLite and PostgreSQL (a list of ids is
//! passed as one JSON array, read by [`SqlDatabase::json_text_values`]).

mod delete;
mod usage;

use std::collections::BTreeMap;

use async_trait::async_trait;
use flowtrail_types::admin::{RetentionPolicy, RetentionRun, UsageRow};

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
        delete::delete_flows(&self.db, team_id, flow_ids).await
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
        usage::add_usage(&self.db, deltas).await
    }

    async fn usage(&self, team_id: i64, since_day: i64, until_day: i64) -> Result<Vec<UsageRow>> {
        usage::usage(&self.db, team_id, since_day, until_day).await
    }
}
