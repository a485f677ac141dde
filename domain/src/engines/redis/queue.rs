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

const ENQUEUE: &str = r"
local stored = redis.call('HGET', KEYS[1], ARGV[2])
if stored then
  if stored == ARGV[3] then return 1 end
  return 2
end
local id = redis.call('INCR', KEYS[2])
local entry = redis.call('XADD', KEYS[3], '*', 'job', id)
redis.call('HSET', ARGV[1] .. id, 'team', ARGV[4], 'idem', ARGV[2], 'sha', ARGV[3],
  'flow', ARGV[5], 'version', ARGV[6], 'body', ARGV[7], 'request', ARGV[8],
  'enqueued', ARGV[9], 'attempts', 0, 'entry', entry, 'mode', ARGV[11])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[10], id)
return 0
";

const CLAIM: &str = r"
local jp, group, consumer = ARGV[1], ARGV[2], ARGV[3]
local max, lease_until, now = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  if redis.call('EXISTS', jp .. id) == 1 then
    local entry = redis.call('XADD', KEYS[1], '*', 'job', id)
    redis.call('HSET', jp .. id, 'entry', entry)
  end
end
local out = {}
local function take(id, entry)
  local job = jp .. id
  local f = redis.call('HMGET', job, 'entry', 'team', 'flow', 'body', 'request', 'mode')
  if f[1] ~= entry then
    redis.call('XACK', KEYS[1], group, entry)
    redis.call('XDEL', KEYS[1], entry)
    redis.call('ZREM', KEYS[3], id)
    return
  end
  local attempts = redis.call('HINCRBY', job, 'attempts', 1)
  redis.call('ZADD', KEYS[3], lease_until, id)
  table.insert(out, {id, f[2], f[3], f[4], f[5] or '', attempts, f[6] or 'replace'})
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. now, 'LIMIT', 0, max)
for _, id in ipairs(expired) do
  local entry = redis.call('HGET', jp .. id, 'entry')
  if entry then
    redis.call('XCLAIM', KEYS[1], group, consumer, 0, entry, 'JUSTID')
    take(id, entry)
  else
    redis.call('ZREM', KEYS[3], id)
  end
end
local room = max - #out
if room > 0 then
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', room,
    'STREAMS', KEYS[1], '>')
  if read then
    for _, e in ipairs(read[1][2]) do
      take(e[2][2], e[1])
    end
  end
end
return out
";

const COMPLETE: &str = r"
local jp, group, now = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', jp .. id, 'entry', 'idem')
  if f[1] then
    redis.call('XACK', KEYS[1], group, f[1])
    redis.call('XDEL', KEYS[1], f[1])
  end
  if f[2] then
    redis.call('ZADD', KEYS[3], now, f[2])
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('DEL', jp .. id)
end
return #ARGV - 3
";

/// Takes a job off the stream (retry or bury); `ARGV[4]` is the error.
const SET_ASIDE: &str = r"
local jp, group, id = ARGV[1], ARGV[2], ARGV[3]
local job = jp .. id
if redis.call('EXISTS', job) == 0 then return 0 end
local f = redis.call('HMGET', job, 'entry', 'team')
if f[1] then
  redis.call('XACK', KEYS[1], group, f[1])
  redis.call('XDEL', KEYS[1], f[1])
end
redis.call('HDEL', job, 'entry')
redis.call('HSET', job, 'last_error', ARGV[4])
redis.call('ZREM', KEYS[2], id)
if ARGV[5] == 'retry' then
  redis.call('ZADD', KEYS[3], ARGV[6], id)
else
  redis.call('HSET', job, 'died', ARGV[6])
  redis.call('XADD', KEYS[3], '*', 'job', id, 'team', f[2])
end
return 1
";

const DEAD_LETTERS: &str = r"
local jp, team, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local from = '+'
while #out < limit do
  local page = redis.call('XREVRANGE', KEYS[1], from, '-', 'COUNT', 500)
  if #page == 0 then break end
  for _, e in ipairs(page) do
    local id, owner = e[2][2], e[2][4]
    if (team == '' or team == owner) and #out < limit then
      local f = redis.call('HMGET', jp .. id, 'team', 'flow', 'version', 'attempts',
        'last_error', 'request', 'enqueued', 'died')
      if f[1] then
        table.insert(out, {id, f[1], f[2], f[3], f[4], f[5] or '', f[6] or '', f[7],
          f[8] or ''})
      end
    end
    from = '(' .. e[1]
  end
end
return out
";

const REDRIVE: &str = r"
local jp, team, only = ARGV[1], ARGV[2], ARGV[3]
local moved = 0
local from = '-'
while true do
  local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 500)
  if #page == 0 then break end
  for _, e in ipairs(page) do
    local id, owner = e[2][2], e[2][4]
    if (team == '' or team == owner) and (only == '' or only == id) then
      redis.call('XDEL', KEYS[1], e[1])
      if redis.call('EXISTS', jp .. id) == 1 then
        local entry = redis.call('XADD', KEYS[2], '*', 'job', id)
        redis.call('HSET', jp .. id, 'entry', entry, 'attempts', 0)
        redis.call('HDEL', jp .. id, 'died')
        moved = moved + 1
      end
    end
    from = '(' .. e[1]
  end
end
if moved > 0 then redis.call('PUBLISH', ARGV[4], 'redrive') end
return moved
";

const PURGE: &str = r"
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1000)
for _, k in ipairs(keys) do
  redis.call('HDEL', KEYS[2], k)
  redis.call('ZREM', KEYS[1], k)
end
return #keys
";

/// Removes consumers that hold nothing and have been idle longer than `ARGV[2]` ms: every
/// process start adds a consumer name, and a crashed process's name would stay forever.
const FORGET_CONSUMERS: &str = r"
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
";

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

    async fn set_aside(&self, job_id: i64, error: &str, aside: Aside, at: i64) -> Result<()> {
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
            .arg(job_id)
            .arg(error)
            .arg(how)
            .arg(at)
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

    async fn retry(&self, job_id: i64, error: &str, delay: Duration) -> Result<()> {
        self.set_aside(
            job_id,
            error,
            Aside::Retry,
            now_ms() + delay.as_millis() as i64,
        )
        .await
    }

    async fn bury(&self, job_id: i64, error: &str) -> Result<()> {
        self.set_aside(job_id, error, Aside::Bury, now_ms()).await
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
