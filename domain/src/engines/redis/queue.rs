//! [`IngestQueue`] on Redis Streams, for many servers and workers.
//!
//! - A job is a hash (`q:job:<id>`, ids from `INCR q:seq`) holding the compressed body; the
//!   stream `q:stream` carries its id to the consumer group `workers`.
//! - Enqueue is one Lua script: check the idempotency record (`q:idem`, field
//!   `team:key` → body SHA-256), store the job, `XADD`, record the key. With `appendonly yes`
//!   and `appendfsync always` (checked at start-up) Redis answers only after the append-only
//!   file is fsynced, so a 202 follows a durable write. Redis fsyncs once per event-loop turn,
//!   which gives group commit for free across every server.
//! - Claiming reads new entries with `XREADGROUP` and takes over entries whose lease expired
//!   (`q:leases`, job id → lease end) with `XCLAIM`: a dead consumer's pending jobs move to a
//!   live one.
//! - A retry leaves the stream for `q:delayed` (job id → when) and is put back when due; a
//!   dead job's id goes to the dead-letter stream `q:dead`, its hash (and body) kept for
//!   redrive.
//! - Done: acknowledged and deleted from the stream, the hash dropped, the key remembered in
//!   `q:done` (`team:key` → finish time) until the idempotency window purges it.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::{JOBS_CHANNEL, Redis};
use crate::flows::WriteMode;
use crate::ingest::{DeadLetter, EnqueueOutcome, IngestQueue, Job, NewJob};
use crate::millis::now_ms;
use crate::{Error, Result};

const GROUP: &str = "workers";

// The Lua scripts (`lua/`) run atomically inside Redis; their `KEYS` and `ARGV` are the
// ones the calls below pass.

/// Stores a job unless its idempotency key is known: 0 accepted, 1 replayed (same body
/// SHA-256), 2 key reused with another body. `ARGV[11]` is the job's write mode.
const ENQUEUE: &str = include_str!("lua/enqueue.lua");

/// Moves due retries back to the stream, takes over expired leases (`XCLAIM`), reads new
/// entries (`XREADGROUP`) and leases what it returns.
const CLAIM: &str = include_str!("lua/claim.lua");

/// Acknowledges and deletes done jobs, drops their hashes, remembers their keys in `q:done`.
const COMPLETE: &str = include_str!("lua/complete.lua");

/// Takes a job off the stream (retry or bury); `ARGV[4]` is the error, `ARGV[7]` the attempt
/// of the caller's claim (the job is left alone unless it is still that claim).
const SET_ASIDE: &str = include_str!("lua/set_aside.lua");

/// The newest dead jobs (of one team or of all) with their error.
const DEAD_LETTERS: &str = include_str!("lua/dead_letters.lua");

/// Puts dead jobs back on the stream with fresh attempts; answers how many.
const REDRIVE: &str = include_str!("lua/redrive.lua");

/// Deletes one dead job (of a team, or of any) with its idempotency record; 1 if it was there.
const DISCARD: &str = include_str!("lua/discard.lua");

/// Forgets done keys finished before `ARGV[1]` (the idempotency window).
const PURGE: &str = include_str!("lua/purge.lua");

/// Removes consumers that hold nothing and have been idle longer than `ARGV[2]` ms: every
/// process start adds a consumer name, and a crashed process's name would stay forever.
const FORGET_CONSUMERS: &str = include_str!("lua/forget_consumers.lua");

/// Consumers idle this long with nothing pending are forgotten by [`IngestQueue::purge_done`].
pub const CONSUMER_IDLE_LIMIT: Duration = Duration::from_secs(3600);

/// The Redis Streams queue.
pub struct RedisQueue {
    redis: Redis,
    /// This process's consumer name in the group.
    consumer: String,
    scripts: Scripts,
}

struct Scripts {
    enqueue: redis::Script,
    claim: redis::Script,
    complete: redis::Script,
    set_aside: redis::Script,
    dead_letters: redis::Script,
    redrive: redis::Script,
    discard: redis::Script,
    purge: redis::Script,
    forget_consumers: redis::Script,
}

impl RedisQueue {
    /// Checks Redis' durability settings and creates the consumer group if needed.
    pub async fn open(redis: Redis) -> Result<Self> {
        redis.check_durability().await?;
        let queue = RedisQueue {
            consumer: format!(
                "{}-{}-{}",
                hostname(),
                std::process::id(),
                &Uuid::now_v7().simple().to_string()[20..]
            ),
            scripts: Scripts {
                enqueue: redis::Script::new(ENQUEUE),
                claim: redis::Script::new(CLAIM),
                complete: redis::Script::new(COMPLETE),
                set_aside: redis::Script::new(SET_ASIDE),
                dead_letters: redis::Script::new(DEAD_LETTERS),
                redrive: redis::Script::new(REDRIVE),
                discard: redis::Script::new(DISCARD),
                purge: redis::Script::new(PURGE),
                forget_consumers: redis::Script::new(FORGET_CONSUMERS),
            },
            redis,
        };
        let mut conn = queue.redis.conn.clone();
        let created: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(queue.key("stream"))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
        Ok(queue)
    }

    fn key(&self, name: &str) -> String {
        self.redis.key(&format!("q:{name}"))
    }

    /// This process's name in the consumer group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Removes consumers (other processes' or this one's) that hold no pending entry and have
    /// been idle for at least `idle`; returns how many.
    pub async fn forget_idle_consumers(&self, idle: Duration) -> Result<u64> {
        let mut conn = self.redis.conn.clone();
        let removed: u64 = self
            .scripts
            .forget_consumers
            .key(self.key("stream"))
            .arg(GROUP)
            .arg(idle.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(removed)
    }

    fn job_prefix(&self) -> String {
        self.key("job:")
    }

    async fn set_aside(&self, job: &Job, error: &str, aside: Aside, at: i64) -> Result<()> {
        let (how, target) = match aside {
            Aside::Retry => ("retry", "delayed"),
            Aside::Bury => ("bury", "dead"),
        };
        let mut conn = self.redis.conn.clone();
        let _: i64 = self
            .scripts
            .set_aside
            .key(self.key("stream"))
            .key(self.key("leases"))
            .key(self.key(target))
            .arg(self.job_prefix())
            .arg(GROUP)
            .arg(job.id)
            .arg(error)
            .arg(how)
            .arg(at)
            .arg(job.attempts)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}

/// Where [`RedisQueue::set_aside`] puts a job: the delayed set (retry when `at` comes) or the
/// dead-letter stream (`at` is when it died).
enum Aside {
    Retry,
    Bury,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse()
        .map_err(|_| Error::Internal(format!("Redis queue: stored {what} {text:?} is not valid")))
}

fn flow_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text)
        .map_err(|_| Error::Internal(format!("Redis queue: stored flow id {text:?} is not valid")))
}

fn optional(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

type ClaimedRow = (String, String, String, Vec<u8>, String, i64, String);
type DeadRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

#[async_trait]
impl IngestQueue for RedisQueue {
    async fn enqueue(&self, job: NewJob) -> Result<EnqueueOutcome> {
        let mut conn = self.redis.conn.clone();
        let outcome: i64 = self
            .scripts
            .enqueue
            .key(self.key("idem"))
            .key(self.key("seq"))
            .key(self.key("stream"))
            .arg(self.job_prefix())
            .arg(format!("{}:{}", job.team_id, job.idempotency_key))
            .arg(&job.body_sha256)
            .arg(job.team_id)
            .arg(job.flow_id.hyphenated().to_string())
            .arg(job.flow_version)
            .arg(&job.body)
            .arg(job.request_id.as_deref().unwrap_or(""))
            .arg(now_ms())
            .arg(self.redis.key(JOBS_CHANNEL))
            .arg(job.mode.as_str())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                Error::Unavailable(format!("the Redis queue could not store the job: {e}"))
            })?;
        match outcome {
            0 => Ok(EnqueueOutcome::Accepted),
            1 => Ok(EnqueueOutcome::Replayed),
            _ => Ok(EnqueueOutcome::KeyReused),
        }
    }

    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Job>> {
        let now = now_ms();
        let mut conn = self.redis.conn.clone();
        let rows: Vec<ClaimedRow> = self
            .scripts
            .claim
            .key(self.key("stream"))
            .key(self.key("delayed"))
            .key(self.key("leases"))
            .arg(self.job_prefix())
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(max.max(1))
            .arg(now + lease.as_millis() as i64)
            .arg(now)
            .invoke_async(&mut conn)
            .await?;
        let mut jobs = rows
            .into_iter()
            .map(|(id, team, flow, body, request, attempts, mode)| {
                Ok(Job {
                    mode: WriteMode::parse(&mode).ok_or_else(|| {
                        Error::Internal(format!("queued job has an unknown mode {mode:?}"))
                    })?,
                    id: number(&id, "job id")?,
                    team_id: number(&team, "team id")?,
                    flow_id: flow_id(&flow)?,
                    body,
                    request_id: optional(request),
                    attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    async fn complete_many(&self, job_ids: &[i64]) -> Result<()> {
        if job_ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.redis.conn.clone();
        let mut call = self.scripts.complete.prepare_invoke();
        call.key(self.key("stream"))
            .key(self.key("leases"))
            .key(self.key("done"))
            .arg(self.job_prefix())
            .arg(GROUP)
            .arg(now_ms());
        for id in job_ids {
            call.arg(*id);
        }
        let _: i64 = call.invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn retry(&self, job: &Job, error: &str, delay: Duration) -> Result<()> {
        self.set_aside(
            job,
            error,
            Aside::Retry,
            now_ms() + delay.as_millis() as i64,
        )
        .await
    }

    async fn bury(&self, job: &Job, error: &str) -> Result<()> {
        self.set_aside(job, error, Aside::Bury, now_ms()).await
    }

    async fn dead_letters(&self, team_id: Option<i64>, limit: u32) -> Result<Vec<DeadLetter>> {
        let mut conn = self.redis.conn.clone();
        let rows: Vec<DeadRow> = self
            .scripts
            .dead_letters
            .key(self.key("dead"))
            .arg(self.job_prefix())
            .arg(team_id.map(|t| t.to_string()).unwrap_or_default())
            .arg(limit)
            .invoke_async(&mut conn)
            .await?;
        rows.into_iter()
            .map(
                |(id, team, flow, version, attempts, error, request, enqueued, died)| {
                    Ok(DeadLetter {
                        id: number(&id, "job id")?,
                        team_id: number(&team, "team id")?,
                        flow_id: flow_id(&flow)?,
                        flow_version: number(&version, "flow version")?,
                        attempts: number(&attempts, "attempts")?,
                        last_error: optional(error),
                        request_id: optional(request),
                        enqueued_at: number(&enqueued, "enqueue time")?,
                        died_at: optional(died)
                            .map(|d| number(&d, "death time"))
                            .transpose()?,
                    })
                },
            )
            .collect()
    }

    async fn redrive(&self, team_id: Option<i64>, job_id: Option<i64>) -> Result<u64> {
        let mut conn = self.redis.conn.clone();
        let moved: u64 = self
            .scripts
            .redrive
            .key(self.key("dead"))
            .key(self.key("stream"))
            .arg(self.job_prefix())
            .arg(team_id.map(|t| t.to_string()).unwrap_or_default())
            .arg(job_id.map(|j| j.to_string()).unwrap_or_default())
            .arg(self.redis.key(JOBS_CHANNEL))
            .invoke_async(&mut conn)
            .await?;
        Ok(moved)
    }

    async fn dead_letter_body(&self, team_id: Option<i64>, job_id: i64) -> Result<Option<Vec<u8>>> {
        let mut conn = self.redis.conn.clone();
        let (team, died, body): (Option<String>, Option<String>, Option<Vec<u8>>) =
            redis::cmd("HMGET")
                .arg(format!("{}{job_id}", self.job_prefix()))
                .arg("team")
                .arg("died")
                .arg("body")
                .query_async(&mut conn)
                .await?;
        let owned = match (team_id, team) {
            (None, Some(_)) => true,
            (Some(want), Some(team)) => team == want.to_string(),
            (_, None) => false,
        };
        Ok(if owned && died.is_some() { body } else { None })
    }

    async fn discard(&self, team_id: Option<i64>, job_id: i64) -> Result<bool> {
        let mut conn = self.redis.conn.clone();
        let deleted: i64 = self
            .scripts
            .discard
            .key(self.key("dead"))
            .key(self.key("idem"))
            .arg(self.job_prefix())
            .arg(team_id.map(|t| t.to_string()).unwrap_or_default())
            .arg(job_id.to_string())
            .invoke_async(&mut conn)
            .await?;
        Ok(deleted == 1)
    }

    async fn purge_done(&self, before_ms: i64) -> Result<u64> {
        let mut purged = 0;
        loop {
            let mut conn = self.redis.conn.clone();
            let done: u64 = self
                .scripts
                .purge
                .key(self.key("done"))
                .key(self.key("idem"))
                .arg(before_ms)
                .invoke_async(&mut conn)
                .await?;
            purged += done;
            if done < 1000 {
                let consumers = self.forget_idle_consumers(CONSUMER_IDLE_LIMIT).await?;
                if consumers > 0 {
                    tracing::info!(consumers, "forgot idle queue consumers");
                }
                return Ok(purged);
            }
        }
    }

    async fn depth(&self) -> Result<u64> {
        let mut conn = self.redis.conn.clone();
        let (queued, delayed): (u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(self.key("stream"))
            .cmd("ZCARD")
            .arg(self.key("delayed"))
            .query_async(&mut conn)
            .await?;
        Ok(queued + delayed)
    }

    async fn wait_for_jobs(&self, at_most: Duration) {
        // A wake-up travels by pub/sub from whichever process enqueued; the timeout covers a
        // lost message and delayed retries coming due.
        let _ = tokio::time::timeout(at_most, self.redis.jobs.notified()).await;
    }
}
