//! [`IngestQueue`] as a table of the SQLite database, with group commit.
//!
//! Every enqueue goes through one writer task that commits whatever has arrived in one
//! transaction and only then answers each caller: an acknowledgement waits for its batch's
//! commit, never for its own fsync, so throughput grows with load instead of collapsing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use tokio::sync::Notify;

use super::Database;
use crate::Result;
use crate::millis::now_ms;
use crate::queue::{DeadLetter, EnqueueOutcome, GroupCommit, IngestQueue, Job, NewJob};
use crate::rows;

/// The embedded queue.
pub struct SqliteQueue {
    /// The write connection: enqueue, claim and outcomes.
    pool: SqlitePool,
    read: SqlitePool,
    writer: GroupCommit,
    ready: Arc<Notify>,
}

impl SqliteQueue {
    /// Starts the group-commit writer on the current Tokio runtime.
    pub fn start(db: &Database) -> Self {
        let pool = db.write.clone();
        let ready = Arc::new(Notify::new());
        let batch_pool = pool.clone();
        let writer = GroupCommit::start(
            move |jobs: Vec<NewJob>| {
                let pool = batch_pool.clone();
                async move { insert_batch(&pool, &jobs).await }
            },
            ready.clone(),
        );
        SqliteQueue {
            pool,
            read: db.read.clone(),
            writer,
            ready,
        }
    }
}

async fn insert_batch(pool: &SqlitePool, batch: &[NewJob]) -> Result<Vec<EnqueueOutcome>> {
    let mut tx = pool.begin().await?;
    let now = now_ms();
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let inserted = sqlx::query(
            "INSERT INTO ingest_jobs (team_id, idempotency_key, body_sha256, flow_id, \
             flow_version, body, request_id, run_after, enqueued_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outcome = if inserted == 1 {
            EnqueueOutcome::Accepted
        } else {
            let stored: String = sqlx::query_scalar(
                "SELECT body_sha256 FROM ingest_jobs WHERE team_id = ? AND idempotency_key = ?",
            )
            .bind(job.team_id)
            .bind(&job.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            if stored == job.body_sha256 {
                EnqueueOutcome::Replayed
            } else {
                EnqueueOutcome::KeyReused
            }
        };
        outcomes.push(outcome);
    }
    tx.commit().await?;
    Ok(outcomes)
}

#[async_trait]
impl IngestQueue for SqliteQueue {
    async fn enqueue(&self, job: NewJob) -> Result<EnqueueOutcome> {
        self.writer.enqueue(job).await
    }

    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Job>> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE ingest_jobs SET state = 'claimed', attempts = attempts + 1, lease_until = ? \
             WHERE id IN (SELECT id FROM ingest_jobs \
                 WHERE (state = 'queued' AND run_after <= ?) \
                    OR (state = 'claimed' AND lease_until < ?) \
                 ORDER BY id LIMIT ?) \
             RETURNING id, team_id, flow_id, body, request_id, attempts",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(now)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut jobs = rows.iter().map(rows::job).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    async fn complete_many(&self, job_ids: &[i64]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for id in job_ids {
            sqlx::query(
                "UPDATE ingest_jobs SET state = 'done', body = NULL, lease_until = NULL, \
                 last_error = NULL, finished_at = ? WHERE id = ?",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn retry(&self, job_id: i64, error: &str, delay: Duration) -> Result<()> {
        sqlx::query(
            "UPDATE ingest_jobs SET state = 'queued', lease_until = NULL, last_error = ?, \
             run_after = ? WHERE id = ?",
        )
        .bind(error)
        .bind(now_ms() + delay.as_millis() as i64)
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn bury(&self, job_id: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE ingest_jobs SET state = 'dead', lease_until = NULL, last_error = ?, \
             finished_at = ? WHERE id = ?",
        )
        .bind(error)
        .bind(now_ms())
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn dead_letters(&self, team_id: Option<i64>, limit: u32) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, team_id, flow_id, flow_version, attempts, last_error, request_id, \
             enqueued_at, finished_at FROM ingest_jobs \
             WHERE state = 'dead' AND (?1 IS NULL OR team_id = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(team_id)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::dead_letter).collect()
    }

    async fn redrive(&self, team_id: Option<i64>, job_id: Option<i64>) -> Result<u64> {
        let moved = sqlx::query(
            "UPDATE ingest_jobs SET state = 'queued', attempts = 0, run_after = ?1, \
             lease_until = NULL, finished_at = NULL \
             WHERE state = 'dead' AND (?2 IS NULL OR team_id = ?2) AND (?3 IS NULL OR id = ?3)",
        )
        .bind(now_ms())
        .bind(team_id)
        .bind(job_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if moved > 0 {
            self.ready.notify_one();
        }
        Ok(moved)
    }

    async fn purge_done(&self, before_ms: i64) -> Result<u64> {
        // Bounded batches keep each write transaction short.
        let mut purged = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM ingest_jobs WHERE id IN (SELECT id FROM ingest_jobs \
                 WHERE state = 'done' AND finished_at < ? LIMIT 1000)",
            )
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
            purged += done;
            if done < 1000 {
                return Ok(purged);
            }
        }
    }

    async fn depth(&self) -> Result<u64> {
        let depth: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ingest_jobs WHERE state IN ('queued', 'claimed')",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(depth as u64)
    }

    async fn wait_for_jobs(&self, at_most: Duration) {
        // Another process (a `flowtrail worker`, or a restarted server) may enqueue too, so a
        // notification is a shortcut, not the only wake-up.
        let _ = tokio::time::timeout(at_most, self.ready.notified()).await;
    }
}
