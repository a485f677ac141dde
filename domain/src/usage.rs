//! Usage counters per team, UTC day and pipeline: flows, steps, observations and bytes
//! accepted; requests rejected, rate-limited and replayed (`GET /api/v1/admin/usage`).
//!
//! Counted where requests are answered, in memory ([`UsageMeter::record`]), and added to the
//! database by [`Services::flush_usage`] — every second in a server, and before every read
//! of the usage, so a server's own answers include its own counts. A crash loses at most the
//! counts of the last second (the flows themselves are never lost: they are acknowledged
//! only once durably queued).

use std::collections::HashMap;
use std::sync::Mutex;

use flowtrail_types::admin::{Usage, UsageRow};
use time::OffsetDateTime;

use crate::millis::{bound_ms, now_ms};
use crate::retention::{UsageDelta, day_floor};
use crate::{Error, Result, Services};

/// What one request adds to the usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageEvent<'a> {
    /// Accepted (202, not a replay): the record's pipeline (`None` for a steps push, which
    /// names none), steps, observations and uncompressed bytes.
    Accepted {
        pipeline: Option<&'a str>,
        steps: u64,
        observations: u64,
        bytes: u64,
    },
    /// Refused with a 4xx other than 429.
    Rejected,
    /// Refused with 429.
    RateLimited,
    /// Answered from an earlier acceptance.
    Replayed,
}

/// Counts not yet in the database, by `(team, day, pipeline)`.
#[derive(Default)]
pub struct UsageMeter {
    pending: Mutex<HashMap<(i64, i64, String), UsageDelta>>,
}

impl UsageMeter {
    /// Counts one request of team `team_id`, now.
    pub fn record(&self, team_id: i64, event: UsageEvent<'_>) {
        let day = day_floor(now_ms());
        let pipeline = match event {
            UsageEvent::Accepted { pipeline, .. } => pipeline.unwrap_or_default(),
            _ => "",
        };
        let mut delta = UsageDelta {
            team_id,
            day,
            pipeline: pipeline.to_string(),
            ..UsageDelta::default()
        };
        match event {
            UsageEvent::Accepted {
                steps,
                observations,
                bytes,
                ..
            } => {
                delta.flows = 1;
                delta.steps = steps;
                delta.observations = observations;
                delta.bytes = bytes;
            }
            UsageEvent::Rejected => delta.rejected = 1,
            UsageEvent::RateLimited => delta.rate_limited = 1,
            UsageEvent::Replayed => delta.replayed = 1,
        }
        self.add(std::iter::once(delta));
    }

    fn take(&self) -> Vec<UsageDelta> {
        match self.pending.lock() {
            Ok(mut pending) => pending.drain().map(|(_, delta)| delta).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Adds counts to those pending (new ones, or ones that could not be written).
    fn add(&self, deltas: impl IntoIterator<Item = UsageDelta>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for d in deltas {
            let entry = pending
                .entry((d.team_id, d.day, d.pipeline.clone()))
                .or_insert_with(|| UsageDelta {
                    team_id: d.team_id,
                    day: d.day,
                    pipeline: d.pipeline.clone(),
                    ..UsageDelta::default()
                });
            entry.flows += d.flows;
            entry.steps += d.steps;
            entry.observations += d.observations;
            entry.bytes += d.bytes;
            entry.rejected += d.rejected;
            entry.rate_limited += d.rate_limited;
            entry.replayed += d.replayed;
        }
    }
}

/// Longest range `GET /api/v1/admin/usage` answers: 400 days.
pub const MAX_USAGE_DAYS: i64 = 400;

impl Services {
    /// Adds the counts of this process to the database (kept for the next try on failure).
    pub async fn flush_usage(&self) -> Result<()> {
        let deltas = self.usage.take();
        if deltas.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.metadata.add_usage(&deltas).await {
            self.usage.add(deltas);
            return Err(error);
        }
        Ok(())
    }

    /// The team's usage by UTC day and pipeline. Counts are kept per whole day, so the answer
    /// covers every whole day the range `[since, until)` touches, and its `since` and `until`
    /// say which: the midnight starting the first day and the one ending the last (an empty
    /// range answers no day). Errors: 422 when `since` is after `until` or the
    /// range spans more than [`MAX_USAGE_DAYS`] days.
    pub async fn usage(
        &self,
        team_id: i64,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Usage> {
        let (since_ms, until_ms) = (bound_ms(since), bound_ms(until));
        if since_ms > until_ms {
            return Err(Error::invalid("since", "since is after until"));
        }
        if since_ms == until_ms {
            // Nothing happens in an empty range.
            return Ok(Usage {
                since: crate::millis::utc(since),
                until: crate::millis::utc(until),
                days: Vec::new(),
            });
        }
        let day = crate::retention::DAY_MS;
        let first = day_floor(since_ms);
        // The midnight ending the last day touched: `until` itself when it is a midnight
        // (excluded), else the next one.
        let end = match day_floor(until_ms) {
            floor if floor == until_ms => floor,
            floor => floor.saturating_add(day),
        };
        if (end - first) / day > MAX_USAGE_DAYS {
            return Err(Error::invalid(
                "since",
                format!("ask for at most {MAX_USAGE_DAYS} days at a time"),
            ));
        }
        if let Err(error) = self.flush_usage().await {
            tracing::warn!(%error, "usage counts could not be written; answering without them");
        }
        let days: Vec<UsageRow> = self.metadata.usage(team_id, first, end - day).await?;
        Ok(Usage {
            since: crate::millis::from_ms(first),
            until: crate::millis::from_ms(end),
            days,
        })
    }
}
