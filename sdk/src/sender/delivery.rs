//! One flow's delivery: the request body, compression, and attempts with backoff.
//!
//! Rules: a finished flow goes to `POST /api/v1/flows`, a running one (a step push) to
//! `POST /api/v1/flows/{id}/steps`; bodies above `compress_above` bytes go zstd-compressed;
//! every attempt carries the idempotency key `{id}:{version}`, so a retry never stores a flow
//! twice; 408, 409, 429, 5xx and network errors are retried after exponential backoff with
//! full jitter (from `backoff_base`, capped at 30 s), or after `Retry-After` when longer
//! (capped at 60 s); 413 is told apart (the caller shrinks the flow and tries again), and so
//! are 401/403 (the key is refused, not the flow: kept in the spool when there is one); only
//! 202 acknowledges a flow (another 2xx is not the ingest API); any other status is final.

use std::time::Duration;

use flowtrail_types::{FlowRecord, FlowStatus, StepsPush};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};

use super::stats::Counters;
use super::thread::{Outcome, SenderThread};

/// How one request ended.
enum Attempt {
    Delivered,
    /// 413: the body is larger than the server takes.
    TooLarge,
    /// 401/403: the key, not the flow, is refused.
    Unauthorized(String),
    Final(String),
    Retry(Option<Duration>),
}

impl SenderThread {
    /// Delivers `record` in at most `attempts` attempts (at least one).
    pub(super) async fn deliver(&self, record: &FlowRecord, attempts: u32) -> Outcome {
        // A running record carries the steps finished so far: an incremental push.
        let (endpoint, body) = if record.status == FlowStatus::Running {
            let push = StepsPush {
                id: Some(record.id),
                version: record.version,
                pipeline: record.pipeline.clone(),
                started_at: record.started_at,
                input: record.input.clone(),
                tags: record.tags.clone(),
                sdk: record.sdk.clone(),
                steps: record.steps.clone(),
            };
            (
                format!("{}/{}/steps", self.endpoint, record.id),
                serde_json::to_vec(&push),
            )
        } else {
            (self.endpoint.clone(), serde_json::to_vec(record))
        };
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "flowtrail: flow does not serialise; dropped");
                return Outcome::Refused;
            }
        };
        let (body, zstd) = if body.len() > self.config.compress_above {
            match zstd::bulk::compress(&body, 3) {
                Ok(compressed) => (compressed, true),
                Err(_) => (body, false),
            }
        } else {
            (body, false)
        };
        let key = format!("{}:{}", record.id, record.version);
        let attempts = attempts.max(1);
        for attempt in 1..=attempts {
            match self.attempt(&endpoint, &body, zstd, &key).await {
                Attempt::Delivered => return Outcome::Sent,
                Attempt::TooLarge => return Outcome::TooLarge,
                Attempt::Unauthorized(why) => return Outcome::Unauthorized(why),
                Attempt::Final(why) => {
                    self.shared.notice(format!(
                        "the server refused flow {} (version {}): {why}",
                        record.id, record.version
                    ));
                    return Outcome::Refused;
                }
                Attempt::Retry(_) if attempt == attempts => break,
                Attempt::Retry(retry_after) => {
                    let delay = retry_delay(self.config.backoff_base, attempt, retry_after);
                    // After shutdown no new attempt is made: shutdown spooled the flow or
                    // counted it dropped.
                    if !self.sleep_unless_closed(delay).await {
                        break;
                    }
                    Counters::add(&self.shared.counters.retried);
                }
            }
        }
        Outcome::Unreachable
    }

    /// Sleeps `delay`, waking early when the queue closes (shutdown, or the client dropped).
    /// Whether the queue is still open.
    async fn sleep_unless_closed(&self, delay: Duration) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            if self.shared.lock().closed {
                return false;
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return true;
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(50))).await;
        }
    }

    async fn attempt(&self, endpoint: &str, body: &[u8], zstd: bool, key: &str) -> Attempt {
        let mut request = self
            .http
            .post(endpoint)
            .bearer_auth(&self.config.api_key)
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(body.to_vec());
        if zstd {
            request = request.header(CONTENT_ENCODING, "zstd");
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if status == StatusCode::ACCEPTED {
                    Attempt::Delivered
                } else if status.is_success() {
                    // Only the ingest API's 202 acknowledges a flow: a 200 is someone else
                    // (a proxy's page, another service on that address).
                    Attempt::Final(format!(
                        "{status} is not the ingest API's answer (202): is {endpoint} Flow Trail?"
                    ))
                } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    let text = response.text().await.unwrap_or_default();
                    Attempt::Unauthorized(format!("{status}: {}", cut(text)))
                } else if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Attempt::TooLarge
                } else if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::CONFLICT
                    || status.is_server_error()
                {
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(60)));
                    Attempt::Retry(retry_after)
                } else {
                    let text = response.text().await.unwrap_or_default();
                    Attempt::Final(format!("{status}: {}", cut(text)))
                }
            }
            Err(_) => Attempt::Retry(None),
        }
    }
}

/// An answer's body for a notice: at most 1,000 bytes.
fn cut(mut text: String) -> String {
    if text.len() > 1_000 {
        let mut end = 1_000;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The wait after failed attempt number `attempt` (from 1): a random delay up to
/// `base · 2^(attempt-1)` (capped at 30 s), or the server's `retry_after` when that is longer.
fn retry_delay(base: Duration, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = base
        .saturating_mul(1 << (attempt - 1).min(10))
        .min(Duration::from_secs(30));
    let jitter = rand::rng().random_range(0..=ceiling.as_millis() as u64);
    retry_after
        .unwrap_or_default()
        .max(Duration::from_millis(jitter))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::retry_delay;

    #[test]
    fn retry_delays_double_up_to_a_ceiling_and_honour_retry_after() {
        let base = Duration::from_millis(200);
        for _ in 0..100 {
            assert!(retry_delay(base, 1, None) <= base);
            assert!(retry_delay(base, 3, None) <= base * 4);
            assert!(retry_delay(base, 30, None) <= Duration::from_secs(30));
            assert!(retry_delay(base, 1, Some(Duration::from_secs(7))) == Duration::from_secs(7));
        }
    }
}
