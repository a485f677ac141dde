//! [`IngestQueue`] as a table of the SQL database (`ingest_jobs`), with group commit: the
//! embedded profile's queue, and the scale-out one when `FLOWTRAIL_QUEUE=database`.
//!
//! Every enqueue goes through one writer task that commits whatever has arrived in one
//! transaction and only then answers each caller: an acknowledgement waits for its batch's
//! commit, never for its own fsync, so throughput grows with load instead of collapsing.
//! The only dialect difference is the claim's row locking ([`SqlDatabase::skip_locked`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{SqlDatabase, on_pool, rows};
use crate::Result;
use crate::ingest::{DeadLetter, EnqueueOutcome, GroupCommit, IngestQueue, Job, NewJob};
use crate::millis::now_ms;

/// The queue in the SQL database.
pub struct SqlQueue {
    db: SqlDatabase,
    writer: GroupCommit,
    ready: Arc<Notify>,
}

impl SqlQueue {
    /// Starts the group-commit writer on the current Tokio runtime.
    pub fn start(db: SqlDatabase) -> Self {
        let ready = Arc::new(Notify::new());
        let batch_db = db.clone();
        let writer = GroupCommit::start(
            move |jobs: Vec<NewJob>| {
                let db = batch_db.clone();
                async move { insert_batch(&db, &jobs).await }
            },
            ready.clone(),
        );
        SqlQueue { db, writer, ready }
    }
}

/// Inserts a batch of jobs in one transaction; a key seen before is a replay or a reuse
/// ([`EnqueueOutcome::of_repeat`]).
async fn insert_batch(db: &SqlDatabase, batch: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
    let now = now_ms();
    let begin = db.begin_write();
    on_pool!(db, write, |pool| {
        let mut tx = pool.begin_with(begin).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for job in batch {
            let inserted = sqlx::query(
                "INSERT INTO ingest_jobs (team_id, idempotency_key, body_sha256, flow_id, \
                 flow_version, body, request_id, run_after, enqueued_at, mode) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) \
                 ON CONFLICT (team_id, idempotency_key) DO NOTHING",
            )
            .bind(job.team_id)
            .bind(&job.idempotency_key)
            .bind(&job.body_sha256)
            .bind(job.flow_id.hyphenated().to_string())
            .bind(i64::from(job.flow_version))
            .bind(&job.body)
            .bind(&job.request_id)
            .bind(now)
            .bind(job.mode.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let outcome = if inserted == 1 {
                EnqueueOutcome::Accepted
            } else {
                let stored: String = sqlx::query_scalar(
                    "SELECT body_sha256 FROM ingest_jobs \
                     WHERE team_id = $1 AND idempotency_key = $2",
                )
                .bind(job.team_id)
                .bind(&job.idempotency_key)
                .fetch_one(&mut *tx)
                .await?;
                EnqueueOutcome::of_repeat(&stored, job)
            };
            outcomes.push(outcome);
        }
        tx.commit().await?;
        Ok(outcomes)
    })
}

#[async_trait]
impl IngestQueue for SqlQueue {
    async fn enqueue(&self, job: NewJob) -> Result<EnqueueOutcome> {
        self.writer.enqueue(job).await
    }

    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Job>> {
        let now = now_ms();
        let sql = format!(
            "UPDATE ingest_jobs SET state = 'claimed', attempts = attempts + 1, lease_until = $1 \
             WHERE id IN (SELECT id FROM ingest_jobs \
                 WHERE (state = 'queued' AND run_after <= $2) \
                    OR (state = 'claimed' AND lease_until < $2) \
                 ORDER BY id LIMIT $3{}) \
             RETURNING id, team_id, flow_id, body, request_id, attempts, mode",
            self.db.skip_locked()
        );
        let mut jobs = on_pool!(&self.db, write, |pool| {
            let rows = sqlx::query(&sql)
                .bind(now + lease.as_millis() as i64)
                .bind(now)
                .bind(max as i64)
                .fetch_all(pool)
                .await?;
            rows.iter().map(rows::job).collect::<Result<Vec<_>>>()?
        });
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    async fn complete_many(&self, job_ids: &[i64]) -> Result<()> {
        let now = now_ms();
        let begin = self.db.begin_write();
        on_pool!(&self.db, write, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            for id in job_ids {
                sqlx::query(
                    "UPDATE ingest_jobs SET state = 'done', body = NULL, lease_until = NULL, \
                     last_error = NULL, finished_at = $1 WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn retry(&self, job: &Job, error: &str, delay: Duration) -> Result<()> {
        on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE ingest_jobs SET state = 'queued', lease_until = NULL, last_error = $1, \
                 run_after = $2 WHERE id = $3 AND state = 'claimed' AND attempts = $4",
            )
            .bind(error)
            .bind(now_ms() + delay.as_millis() as i64)
            .bind(job.id)
            .bind(i64::from(job.attempts))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn bury(&self, job: &Job, error: &str) -> Result<()> {
        on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE ingest_jobs SET state = 'dead', lease_until = NULL, last_error = $1, \
                 finished_at = $2 WHERE id = $3 AND state = 'claimed' AND attempts = $4",
            )
            .bind(error)
            .bind(now_ms())
            .bind(job.id)
            .bind(i64::from(job.attempts))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn dead_letters(&self, team_id: Option<i64>, limit: u32) -> Result<Vec<DeadLetter>> {
        on_pool!(&self.db, read, |pool| {
            let rows = sqlx::query(
                "SELECT id, team_id, flow_id, flow_version, attempts, last_error, request_id, \
                 enqueued_at, finished_at FROM ingest_jobs \
                 WHERE state = 'dead' AND (CAST($1 AS BIGINT) IS NULL OR team_id = $1) \
                 ORDER BY id DESC LIMIT $2",
            )
            .bind(team_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter().map(rows::dead_letter).collect()
        })
    }

    async fn redrive(&self, team_id: Option<i64>, job_id: Option<i64>) -> Result<u64> {
        let moved = on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE ingest_jobs SET state = 'queued', attempts = 0, run_after = $1, \
                 lease_until = NULL, finished_at = NULL \
                 WHERE state = 'dead' AND (CAST($2 AS BIGINT) IS NULL OR team_id = $2) \
                   AND (CAST($3 AS BIGINT) IS NULL OR id = $3)",
            )
            .bind(now_ms())
            .bind(team_id)
            .bind(job_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if moved > 0 {
            self.ready.notify_one();
        }
        Ok(moved)
    }

    async fn dead_letter_body(&self, team_id: Option<i64>, job_id: i64) -> Result<Option<Vec<u8>>> {
        on_pool!(&self.db, read, |pool| {
            let body: Option<Option<Vec<u8>>> = sqlx::query_scalar(
                "SELECT body FROM ingest_jobs WHERE id = $1 AND state = 'dead' \
                 AND (CAST($2 AS BIGINT) IS NULL OR team_id = $2)",
            )
            .bind(job_id)
            .bind(team_id)
            .fetch_optional(pool)
            .await?;
            Ok(body.flatten())
        })
    }

    async fn discard(&self, team_id: Option<i64>, job_id: i64) -> Result<bool> {
        let deleted = on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "DELETE FROM ingest_jobs WHERE id = $1 AND state = 'dead' \
                 AND (CAST($2 AS BIGINT) IS NULL OR team_id = $2)",
            )
            .bind(job_id)
            .bind(team_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(deleted > 0)
    }

    async fn purge_done(&self, before_ms: i64) -> Result<u64> {
        // Bounded batches keep each write transaction short.
        let mut purged = 0;
        loop {
            let done = on_pool!(&self.db, write, |pool| {
                sqlx::query(
                    "DELETE FROM ingest_jobs WHERE id IN (SELECT id FROM ingest_jobs \
                     WHERE state = 'done' AND finished_at < $1 LIMIT 1000)",
                )
                .bind(before_ms)
                .execute(pool)
                .await?
                .rows_affected()
            });
            purged += done;
            if done < 1000 {
                return Ok(purged);
            }
        }
    }

    async fn depth(&self) -> Result<u64> {
        let depth: i64 = on_pool!(&self.db, read, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM ingest_jobs WHERE state IN ('queued', 'claimed')",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(depth as u64)
    }

    async fn wait_for_jobs(&self, at_most: Duration) {
        // Another process (a `flowtrail worker`, or a restarted server) may enqueue too, so a
        // notification is a shortcut, not the only wake-up.
        let _ = tokio::time::timeout(at_most, self.ready.notified()).await;
    }
}
