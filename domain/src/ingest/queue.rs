//! The durable ingest queue.
//!
//! A job's life: enqueued (acknowledged only after it is durable) → claimed by a worker with a
//! lease → done, or back to queued for a retry after a delay, or dead (kept for inspection and
//! redrive). A job whose lease expires (its worker crashed) is claimed again; processing is
//! idempotent, so a second run has no visible effect.
//!
//! Idempotency lives here too: jobs are unique per (team, idempotency key), and a repeat is
//! answered from the stored job instead of being enqueued again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use crate::flows::WriteMode;
use crate::{Error, Result};

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub team_id: i64,
    /// The caller's `Idempotency-Key`, or `{flow_id}:{version}`.
    pub idempotency_key: String,
    /// SHA-256 (hex) of the uncompressed body: a repeat must carry the same.
    pub body_sha256: String,
    pub flow_id: Uuid,
    pub flow_version: u32,
    /// The flow record, zstd-compressed JSON.
    pub body: Vec<u8>,
    /// Correlation id of the request that brought it.
    pub request_id: Option<String>,
    /// How the record combines with what is stored: a whole flow, or a steps push.
    pub mode: WriteMode,
    /// What the job adds to the team's usage once accepted (not stored with the job).
    pub usage: JobUsage,
}

/// The size of an accepted record, for the usage counters ([`crate::usage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobUsage {
    /// `None` for a steps push (it names no pipeline).
    pub pipeline: Option<String>,
    pub steps: u64,
    pub observations: u64,
    /// Uncompressed JSON bytes received.
    pub bytes: u64,
}

impl JobUsage {
    pub(crate) fn of(flow: &flowtrail_types::FlowRecord, pipeline: bool, bytes: usize) -> Self {
        JobUsage {
            pipeline: pipeline.then(|| flow.pipeline.clone()),
            steps: flow.steps.len() as u64,
            observations: flow.steps.iter().map(|s| s.observations.len() as u64).sum(),
            bytes: bytes as u64,
        }
    }
}

/// What enqueueing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Durably stored now.
    Accepted,
    /// The same key and body were already accepted; nothing was stored again.
    Replayed,
    /// The key was already used with another body.
    KeyReused,
}

impl EnqueueOutcome {
    /// The idempotency rule for a key already stored with `stored_sha256`: the same body is
    /// a replay (answered as the first time), another body is a reused key (422). The Redis
    /// queue applies the same rule inside its enqueue script.
    pub fn of_repeat(stored_sha256: &str, job: &NewJob) -> Self {
        if stored_sha256 == job.body_sha256 {
            EnqueueOutcome::Replayed
        } else {
            EnqueueOutcome::KeyReused
        }
    }
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub team_id: i64,
    pub flow_id: Uuid,
    pub body: Vec<u8>,
    pub request_id: Option<String>,
    /// How many times it has been claimed, this time included.
    pub attempts: u32,
    /// How the record combines with what is stored.
    pub mode: WriteMode,
}

/// A job in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub team_id: i64,
    pub flow_id: Uuid,
    pub flow_version: u32,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub request_id: Option<String>,
    /// Unix milliseconds.
    pub enqueued_at: i64,
    /// Unix milliseconds.
    pub died_at: Option<i64>,
}

/// Queue engine: a table of the SQL database (embedded, or `FLOWTRAIL_QUEUE=database`) or
/// Redis Streams (scale-out).
#[async_trait]
pub trait IngestQueue: Send + Sync {
    /// Stores a job durably, or recognises a repeat. Returns only once durable.
    async fn enqueue(&self, job: NewJob) -> Result<EnqueueOutcome>;
    /// Claims up to `max` ready jobs for `lease`.
    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Job>>;
    /// The job is done: its body is dropped, its idempotency record kept.
    async fn complete(&self, job_id: i64) -> Result<()> {
        self.complete_many(&[job_id]).await
    }
    /// Several jobs are done, in one transaction.
    async fn complete_many(&self, job_ids: &[i64]) -> Result<()>;
    /// The job failed transiently: try again after `delay`.
    ///
    /// Fenced by the claim: it acts only while `job` is still claimed under the attempt it
    /// was claimed with. A worker whose lease lapsed (and whose job another worker claimed
    /// since) changes nothing, so one failure is never recorded twice.
    async fn retry(&self, job: &Job, error: &str, delay: Duration) -> Result<()>;
    /// The job failed permanently: keep it in the dead-letter queue. Fenced by the claim as
    /// [`IngestQueue::retry`] is: a job is dead-lettered at most once per claim, and a lapsed
    /// claim buries nothing.
    async fn bury(&self, job: &Job, error: &str) -> Result<()>;
    /// Dead jobs, newest first, of one team or of all.
    async fn dead_letters(&self, team_id: Option<i64>, limit: u32) -> Result<Vec<DeadLetter>>;
    /// Puts dead jobs (one, or all of a team, or all) back in the queue with fresh attempts.
    /// Returns how many.
    async fn redrive(&self, team_id: Option<i64>, job_id: Option<i64>) -> Result<u64>;
    /// The stored body (zstd-compressed, as queued) of dead job `job_id` of the team (of any
    /// team when `None`); `None` when there is no such dead job.
    async fn dead_letter_body(&self, team_id: Option<i64>, job_id: i64) -> Result<Option<Vec<u8>>>;
    /// Deletes dead job `job_id` of the team with its idempotency record (the same body may
    /// then be sent again); whether there was such a dead job.
    async fn discard(&self, team_id: Option<i64>, job_id: i64) -> Result<bool>;
    /// Forgets done jobs (and so their idempotency keys) finished before `before_ms`.
    /// Returns how many.
    async fn purge_done(&self, before_ms: i64) -> Result<u64>;
    /// Jobs waiting or being processed.
    async fn depth(&self) -> Result<u64>;
    /// Resolves when new jobs may be ready (or after a while): workers wait on it.
    async fn wait_for_jobs(&self, at_most: Duration);
}

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<EnqueueOutcome>>;

/// Group commit, for any engine: one writer task stores whatever has arrived in one
/// transaction (the engine's `insert`) and only then answers each caller, so an
/// acknowledgement waits for its batch's commit, never for its own fsync.
pub(crate) struct GroupCommit {
    writer: mpsc::Sender<(NewJob, Reply)>,
}

impl GroupCommit {
    /// Starts the writer on the current Tokio runtime; `ready` is notified after each commit.
    pub(crate) fn start<F, Fut>(insert: F, ready: Arc<Notify>) -> Self
    where
        F: Fn(Vec<NewJob>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<EnqueueOutcome>>> + Send + 'static,
    {
        let (writer, mut requests) = mpsc::channel::<(NewJob, Reply)>(4 * MAX_GROUP);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_GROUP);
            while requests.recv_many(&mut batch, MAX_GROUP).await > 0 {
                let (jobs, replies): (Vec<NewJob>, Vec<Reply>) = batch.drain(..).unzip();
                match insert(jobs).await {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                        ready.notify_one();
                    }
                    Err(error) => {
                        tracing::warn!(%error, jobs = replies.len(), "enqueue batch failed");
                        // Nothing of the batch was stored: an engine that is down is a 503
                        // for every caller, who may retry with the same key.
                        let transient = error.is_transient();
                        let message = format!("the queue could not store the job: {error}");
                        for reply in replies {
                            let _ = reply.send(Err(if transient {
                                Error::Unavailable(message.clone())
                            } else {
                                Error::Internal(message.clone())
                            }));
                        }
                    }
                }
            }
        });
        GroupCommit { writer }
    }

    /// Stores a job durably, or recognises a repeat; answers after the commit.
    pub(crate) async fn enqueue(&self, job: NewJob) -> Result<EnqueueOutcome> {
        let stopped = || Error::Internal("the queue writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.writer
            .send((job, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
