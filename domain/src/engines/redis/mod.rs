//! Redis, the scale-out profile's shared memory: the ingest queue (Redis Streams), the payload
//! cache, rate limits and in-flight keys (used by the server), and the fan-out of wake-ups and
//! live-update events across processes (pub/sub).
//!
//! Every key starts with `{prefix}:` (a hash tag, so one deployment's keys share a cluster
//! slot and its Lua scripts may touch several of them), and several deployments or test runs
//! can share one Redis under different prefixes.

pub mod queue;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, broadcast};

use crate::{Error, Result};

/// A connected Redis and what Flow Trail shares through it.
#[derive(Clone)]
pub struct Redis {
    /// For the queue: commands may carry whole flow bodies, so they get a longer timeout.
    pub conn: ConnectionManager,
    /// For admission checks and the cache: a short timeout, because they fail open.
    pub fast: ConnectionManager,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// Notified when another process enqueues a job (pub/sub).
    pub(crate) jobs: Arc<Notify>,
    /// Messages published on the events channel by any process, this one included.
    pub(crate) events: broadcast::Sender<Arc<str>>,
}

/// Published when a job is enqueued or redriven.
pub(crate) const JOBS_CHANNEL: &str = "jobs";
/// Published when flows land.
pub(crate) const EVENTS_CHANNEL: &str = "events";

impl Redis {
    /// Connects, checks that Redis answers, and starts listening to the fan-out channels.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::Config(format!("bad FLOWTRAIL_REDIS_URL: {e}")))?;
        let manager = |response_timeout: Duration| {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(response_timeout))
                .set_number_of_retries(2)
        };
        let unreachable = |e: redis::RedisError| {
            Error::Config(format!(
                "cannot reach Redis at FLOWTRAIL_REDIS_URL ({e}); check the URL and that the server runs"
            ))
        };
        let conn = client
            .get_connection_manager_with_config(manager(Duration::from_secs(3)))
            .await
            .map_err(unreachable)?;
        let fast = client
            .get_connection_manager_with_config(manager(Duration::from_millis(500)))
            .await
            .map_err(unreachable)?;
        let (events, _) = broadcast::channel(1024);
        let redis = Redis {
            conn,
            fast,
            prefix: prefix.to_string(),
            jobs: Arc::new(Notify::new()),
            events,
        };
        redis.ping().await.map_err(|e| {
            Error::Config(format!(
                "Redis does not answer PING ({e}); check FLOWTRAIL_REDIS_URL"
            ))
        })?;
        tokio::spawn(listen(client, redis.clone()));
        Ok(redis)
    }

    /// A key of this deployment.
    pub fn key(&self, name: &str) -> String {
        format!("{{{}}}:{name}", self.prefix)
    }

    /// Whether Redis answers (for readiness).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.fast.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Refuses a Redis that could lose an acknowledged job: the queue's promise (202 only once
    /// durable) needs the append-only file fsynced on every write, and no eviction.
    pub async fn check_durability(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let mut setting = async |name: &str| -> Result<String> {
            let pair: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut conn)
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "cannot read Redis' {name} setting ({e}); the queue needs CONFIG GET to \
                         check durability, or keep the queue in the database with --queue database"
                    ))
                })?;
            Ok(pair.get(1).cloned().unwrap_or_default())
        };
        let appendonly = setting("appendonly").await?;
        let appendfsync = setting("appendfsync").await?;
        let eviction = setting("maxmemory-policy").await?;
        if appendonly != "yes" || appendfsync != "always" {
            return Err(Error::Config(format!(
                "Redis has appendonly {appendonly:?} and appendfsync {appendfsync:?}: an \
                 acknowledged flow could be lost. Run Redis with `appendonly yes` and \
                 `appendfsync always`, or keep the queue in the database with --queue database"
            )));
        }
        if eviction != "noeviction" {
            return Err(Error::Config(format!(
                "Redis has maxmemory-policy {eviction:?}: queued flows could be evicted. Set \
                 `maxmemory-policy noeviction`, or keep the queue in the database with --queue database"
            )));
        }
        Ok(())
    }

    /// Publishes `message` on one of this deployment's channels.
    pub(crate) async fn publish(&self, channel: &str, message: &str) -> Result<()> {
        let mut conn = self.fast.clone();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.key(channel))
            .arg(message)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

/// Forwards the fan-out channels to this process for as long as it runs, reconnecting after
/// a failure. Losing a wake-up costs at most a worker's idle poll; losing an event, a live
/// row the next list refresh shows anyway.
async fn listen(client: redis::Client, redis: Redis) {
    let jobs = redis.key(JOBS_CHANNEL);
    let events = redis.key(EVENTS_CHANNEL);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&jobs).await?;
            pubsub.subscribe(&events).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
            Ok(Ok(mut pubsub)) => {
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if message.get_channel_name() == jobs {
                        redis.jobs.notify_one();
                    } else if let Ok(text) = message.get_payload::<String>() {
                        let _ = redis.events.send(text.into());
                    }
                }
                tracing::warn!("Redis pub/sub connection closed; reconnecting");
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot subscribe to Redis; retrying"),
            Err(_) => tracing::warn!("subscribing to Redis timed out; retrying"),
        }
        if Arc::strong_count(&redis.jobs) == 1 {
            return; // every other handle is gone: the process is shutting down
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
