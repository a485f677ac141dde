//! Admission control of ingest: per-API-key token buckets, a bound on the queue's depth, and
//! the registry of idempotency keys being accepted right now.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::http::error::ApiError;

/// Token bucket per API key (`governor`). `None` when disabled.
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
}

impl RateLimits {
    /// `per_second` flows per key, bursts up to `burst`; `per_second == 0` disables.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        RateLimits { limiter }
    }

    /// Takes a token for `key_id`, or says how long to wait.
    pub fn check(&self, key_id: i64) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
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

/// Idempotency keys whose first request is still being accepted (per team).
#[derive(Default, Clone)]
pub struct InFlight {
    keys: Arc<Mutex<HashSet<(i64, String)>>>,
}

/// Holds a key in flight; releases it when dropped.
pub struct InFlightGuard {
    keys: Arc<Mutex<HashSet<(i64, String)>>>,
    key: (i64, String),
}

impl InFlight {
    /// Claims `(team, key)`, or answers 409 while another request holds it.
    pub fn claim(&self, team_id: i64, key: &str) -> Result<InFlightGuard, ApiError> {
        let entry = (team_id, key.to_string());
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !keys.insert(entry.clone()) {
            return Err(ApiError::IdempotencyKeyInFlight);
        }
        Ok(InFlightGuard {
            keys: self.keys.clone(),
            key: entry,
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_in_flight_until_its_guard_drops() {
        let in_flight = InFlight::default();
        let guard = in_flight.claim(1, "k").unwrap();
        assert!(matches!(
            in_flight.claim(1, "k"),
            Err(ApiError::IdempotencyKeyInFlight)
        ));
        assert!(
            in_flight.claim(2, "k").is_ok(),
            "keys are scoped to the team"
        );
        drop(guard);
        assert!(in_flight.claim(1, "k").is_ok());
    }

    #[test]
    fn the_bucket_empties_and_says_when_to_come_back() {
        let limits = RateLimits::new(2, 2);
        assert!(limits.check(7).is_ok());
        assert!(limits.check(7).is_ok());
        match limits.check(7) {
            Err(ApiError::RateLimited { retry_after }) => assert!((1..=2).contains(&retry_after)),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limits.check(8).is_ok(), "buckets are per key");
        assert!(RateLimits::new(0, 0).check(7).is_ok(), "0 disables");
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
