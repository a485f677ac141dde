//! Sign-in throttling: token buckets of *failed* attempts per account (the e-mail address as
//! typed, normalised, whether or not such a user exists) and per client address. Once a
//! bucket is empty the account or the client waits for its next token — an answer of 429
//! with `Retry-After`, for right and wrong passwords alike — and is never locked out (OWASP
//! ASVS 5.0 V6.3, throttling rather than lockout; OWASP Authentication Cheat Sheet, "Protect
//! Against Automated Attacks"). Successful sign-ins take nothing. Held per process.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failed attempts one account may make: a burst of 5, then one every 12 s.
const PER_ACCOUNT_PER_MINUTE: u32 = 5;
/// Failed attempts one client address may make: a burst of 20, then one every 3 s.
const PER_CLIENT_PER_MINUTE: u32 = 20;
/// Keys kept before the idle ones are dropped.
const MAX_KEYS: usize = 100_000;

/// Who is throttled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Account(String),
    Client(IpAddr),
}

/// The buckets of failed sign-in attempts, and who waits until when.
pub struct SignInThrottle {
    accounts: DefaultKeyedRateLimiter<String>,
    clients: DefaultKeyedRateLimiter<IpAddr>,
    waiting: moka::sync::Cache<Subject, Instant>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        let quota = |per_minute: u32| {
            Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
        };
        SignInThrottle {
            accounts: RateLimiter::keyed(quota(PER_ACCOUNT_PER_MINUTE)),
            clients: RateLimiter::keyed(quota(PER_CLIENT_PER_MINUTE)),
            waiting: moka::sync::Cache::builder()
                .max_capacity(MAX_KEYS as u64)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }
}

impl SignInThrottle {
    fn subjects(email: &str, client: Option<IpAddr>) -> impl Iterator<Item = Subject> {
        std::iter::once(Subject::Account(email.to_string())).chain(client.map(Subject::Client))
    }

    /// How long `email` (normalised) or `client` must still wait, if either must.
    pub fn waiting(&self, email: &str, client: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        Self::subjects(email, client)
            .filter_map(|s| self.waiting.get(&s))
            .map(|until| until.saturating_duration_since(now))
            .filter(|wait| !wait.is_zero())
            .max()
    }

    /// Records a failed attempt; `Some(wait)` when it emptied a bucket (the attempt is then
    /// answered as throttled, and the account or client waits that long).
    pub fn failed(&self, email: &str, client: Option<IpAddr>) -> Option<Duration> {
        if self.accounts.len() > MAX_KEYS {
            self.accounts.retain_recent();
        }
        if self.clients.len() > MAX_KEYS {
            self.clients.retain_recent();
        }
        let now = DefaultClock::default().now();
        let mut longest = None;
        let account = self.accounts.check_key(&email.to_string());
        let client_result = client.map(|c| (c, self.clients.check_key(&c)));
        let refusals = [
            account
                .err()
                .map(|w| (Subject::Account(email.to_string()), w)),
            client_result.and_then(|(c, r)| r.err().map(|w| (Subject::Client(c), w))),
        ];
        for (subject, not_until) in refusals.into_iter().flatten() {
            let wait = not_until.wait_time_from(now).max(Duration::from_millis(1));
            self.waiting.insert(subject, Instant::now() + wait);
            longest = longest.max(Some(wait));
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_empty_a_bucket_then_the_account_waits_and_so_does_a_client() {
        let throttle = SignInThrottle::default();
        for _ in 0..PER_ACCOUNT_PER_MINUTE {
            assert_eq!(throttle.failed("a@example.org", None), None);
            assert_eq!(throttle.waiting("a@example.org", None), None);
        }
        let wait = throttle.failed("a@example.org", None).unwrap();
        assert!(wait <= Duration::from_secs(12), "{wait:?}");
        assert!(throttle.waiting("a@example.org", None).is_some());
        // Another account is not held up by the first one's failures.
        assert_eq!(throttle.waiting("b@example.org", None), None);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let throttled = (0..=PER_CLIENT_PER_MINUTE)
            .filter(|i| {
                throttle
                    .failed(&format!("u{i}@example.org"), Some(client))
                    .is_some()
            })
            .count();
        assert_eq!(throttled, 1, "one client: 20 failures, then it waits");
        assert!(
            throttle
                .waiting("fresh@example.org", Some(client))
                .is_some()
        );
    }
}
