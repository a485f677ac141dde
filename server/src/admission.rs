//! Admission control of ingest: per-API-key token buckets, a bound on the queue's depth, and
//! the registry of idempotency keys being accepted right now.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowtrail_domain::engines::redis::Redis;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use redis::aio::ConnectionManager;

use crate::http::error::ApiError;

/// Token bucket per API key: in process (`governor`), or in Redis (GCRA in a Lua script, so
/// every server shares one bucket per key). Disabled when the rate is 0.
pub struct RateLimits {
    local: Option<DefaultKeyedRateLimiter<i64>>,
    redis: Option<RedisBuckets>,
}

/// The shared buckets: one key per API key holding its theoretical arrival time (GCRA).
struct RedisBuckets {
    redis: Redis,
    script: redis::Script,
    /// Milliseconds between two tokens, and the burst tolerance in milliseconds.
    interval_ms: u64,
    tolerance_ms: u64,
}

/// GCRA: allow when the theoretical arrival time minus the burst tolerance is not in the
/// future; answer 0, or how many milliseconds to wait. Redis' own clock is the only clock.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - tolerance
if allow_at > now then return allow_at - now end
redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now + 1000)
return 0
";

impl RateLimits {
    /// `per_second` flows per key, bursts up to `burst`; `per_second == 0` disables. With
    /// `redis`, the buckets are shared by every server using that Redis.
    pub fn new(per_second: u32, burst: u32, redis: Option<Redis>) -> Self {
        let Some(rate) = NonZeroU32::new(per_second) else {
            return RateLimits {
                local: None,
                redis: None,
            };
        };
        let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
        match redis {
            Some(redis) => {
                let interval_ms = (1000 / u64::from(rate.get())).max(1);
                RateLimits {
                    local: None,
                    redis: Some(RedisBuckets {
                        redis,
                        script: redis::Script::new(GCRA),
                        interval_ms,
                        tolerance_ms: interval_ms * u64::from(burst.get()),
                    }),
                }
            }
            None => RateLimits {
                local: Some(RateLimiter::keyed(
                    Quota::per_second(rate).allow_burst(burst),
                )),
                redis: None,
            },
        }
    }

    /// Takes a token for `key_id`, or says how long to wait.
    pub async fn check(&self, key_id: i64) -> Result<(), ApiError> {
        let limited = |wait: Duration| ApiError::RateLimited {
            retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        };
        if let Some(limiter) = &self.local {
            return limiter.check_key(&key_id).map_err(|not_until| {
                limited(not_until.wait_time_from(DefaultClock::default().now()))
            });
        }
        let Some(buckets) = &self.redis else {
            return Ok(());
        };
        let mut conn = buckets.redis.fast.clone();
        let wait: redis::RedisResult<u64> = buckets
            .script
            .key(buckets.redis.key(&format!("ratelimit:{key_id}")))
            .arg(buckets.interval_ms)
            .arg(buckets.tolerance_ms)
            .invoke_async(&mut conn)
            .await;
        match wait {
            Ok(0) => Ok(()),
            Ok(ms) => Err(limited(Duration::from_millis(ms))),
            // Rate limits protect the service; they are not worth refusing a durable write
            // for while Redis is away.
            Err(error) => {
                tracing::warn!(%error, "rate limit unavailable (Redis); letting the flow in");
                Ok(())
            }
        }
    }
}

/// Refuses new flows while the queue holds more than `max` jobs, reading the depth at most
/// every `refresh` so that the check costs nothing per request.
pub struct DepthGate {
    max: u64,
    refresh_ms: i64,
    depth: AtomicU64,
    read_at_ms: AtomicI64,
}

impl DepthGate {
    pub fn new(max: u64, refresh: Duration) -> Self {
        DepthGate {
            max,
            refresh_ms: refresh.as_millis() as i64,
            depth: AtomicU64::new(0),
            read_at_ms: AtomicI64::new(i64::MIN / 2),
        }
    }

    /// Whether the cached depth is stale (the caller then reads it and calls [`Self::record`]).
    pub fn is_stale(&self, now_ms: i64) -> bool {
        now_ms - self.read_at_ms.load(Ordering::Relaxed) >= self.refresh_ms
    }

    pub fn record(&self, depth: u64, now_ms: i64) {
        self.depth.store(depth, Ordering::Relaxed);
        self.read_at_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn check(&self) -> Result<(), ApiError> {
        let depth = self.depth.load(Ordering::Relaxed);
        if self.max > 0 && depth >= self.max {
            return Err(ApiError::Unavailable {
                retry_after: 5,
                message: format!(
                    "the ingest queue holds {depth} flows, above its bound of {}; retry after the delay",
                    self.max
                ),
            });
        }
        Ok(())
    }
}

/// Idempotency keys whose first request is still being accepted (per team): in process, or in
/// Redis so that a duplicate sent to another server is seen too.
#[derive(Clone)]
pub enum InFlight {
    Local(Arc<Mutex<HashSet<(i64, String)>>>),
    Redis(Redis),
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight::Local(Arc::default())
    }
}

/// Holds a key in flight; releases it when dropped.
pub struct InFlightGuard {
    release: Option<Release>,
}

enum Release {
    Local(Arc<Mutex<HashSet<(i64, String)>>>, (i64, String)),
    Redis(ConnectionManager, String),
}

/// How long a key stays claimed in Redis if its server dies before releasing it. Short: the
/// queue's own idempotency record is what prevents duplicates; this only turns a concurrent
/// repeat into a 409 instead of a replay.
const IN_FLIGHT_TTL_MS: u64 = 5_000;

impl InFlight {
    /// Claims `(team, key)`, or answers 409 while another request holds it.
    pub async fn claim(&self, team_id: i64, key: &str) -> Result<InFlightGuard, ApiError> {
        match self {
            InFlight::Local(keys) => {
                let entry = (team_id, key.to_string());
                let mut held = keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if !held.insert(entry.clone()) {
                    return Err(ApiError::IdempotencyKeyInFlight);
                }
                Ok(InFlightGuard {
                    release: Some(Release::Local(keys.clone(), entry)),
                })
            }
            InFlight::Redis(redis) => {
                let name = redis.key(&format!("inflight:{team_id}:{key}"));
                let conn = &redis.fast;
                let mut c = conn.clone();
                let claimed: redis::RedisResult<Option<String>> = redis::cmd("SET")
                    .arg(&name)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(IN_FLIGHT_TTL_MS)
                    .query_async(&mut c)
                    .await;
                match claimed {
                    Ok(Some(_)) => Ok(InFlightGuard {
                        release: Some(Release::Redis(conn.clone(), name)),
                    }),
                    Ok(None) => Err(ApiError::IdempotencyKeyInFlight),
                    // The database's uniqueness still holds: a missed 409 costs a replay, not
                    // a duplicate.
                    Err(error) => {
                        tracing::warn!(%error, "in-flight check unavailable (Redis)");
                        Ok(InFlightGuard { release: None })
                    }
                }
            }
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        match self.release.take() {
            Some(Release::Local(keys, entry)) => {
                let mut held = keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                held.remove(&entry);
            }
            Some(Release::Redis(mut conn, name)) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _: redis::RedisResult<()> =
                            redis::cmd("DEL").arg(name).query_async(&mut conn).await;
                    });
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_in_flight_until_its_guard_drops() {
        let in_flight = InFlight::default();
        let guard = in_flight.claim(1, "k").await.unwrap();
        let again = in_flight.claim(1, "k").await;
        assert!(matches!(again, Err(ApiError::IdempotencyKeyInFlight)));
        assert!(
            in_flight.claim(2, "k").await.is_ok(),
            "keys are scoped to the team"
        );
        drop(guard);
        assert!(in_flight.claim(1, "k").await.is_ok());
    }

    #[tokio::test]
    async fn the_bucket_empties_and_says_when_to_come_back() {
        let limits = RateLimits::new(2, 2, None);
        assert!(limits.check(7).await.is_ok());
        assert!(limits.check(7).await.is_ok());
        match limits.check(7).await {
            Err(ApiError::RateLimited { retry_after }) => assert!((1..=2).contains(&retry_after)),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limits.check(8).await.is_ok(), "buckets are per key");
        assert!(
            RateLimits::new(0, 0, None).check(7).await.is_ok(),
            "0 disables"
        );
    }

    #[test]
    fn the_depth_gate_refuses_above_its_bound() {
        let gate = DepthGate::new(10, Duration::from_millis(100));
        assert!(gate.is_stale(0));
        gate.record(9, 0);
        assert!(!gate.is_stale(50));
        assert!(gate.check().is_ok());
        gate.record(10, 60);
        assert!(matches!(
            gate.check(),
            Err(ApiError::Unavailable { retry_after: 5, .. })
        ));
        assert!(
            DepthGate::new(0, Duration::ZERO).check().is_ok(),
            "0 disables"
        );
    }
}
