//! Pipeline insights: what the `/pipelines` and `/pipelines/{name}` pages show — each
//! pipeline at a glance, and one pipeline's funnel, reason mix over time and elimination
//! shares over a range, beside another range.
//!
//! Counts are exact (flows from the flows table, reason counts from the per-step histograms,
//! never from samples). Medians and share distributions come from the newest flows of a
//! range up to a cap, and say so (`capped`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Funnel, StatsBucket};

/// Days of flows each pipeline's sparkline shows on `/pipelines`, today included.
pub const OVERVIEW_DAYS: u32 = 14;

/// Bins of an elimination-share distribution: `[0, 0.1)`, `[0.1, 0.2)`, … `[0.9, 1]`.
pub const SHARE_BINS: usize = 10;

/// `/pipelines`: every pipeline of the team that has flows in the last
/// [`OVERVIEW_DAYS`] days, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelinesOverview {
    /// When the figures were computed (UTC); "the last 24 hours" end here.
    #[serde(with = "crate::rfc3339")]
    pub now: OffsetDateTime,
    pub pipelines: Vec<PipelineSummary>,
}

/// One pipeline at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineSummary {
    pub pipeline: String,
    /// Flows started per UTC day, oldest first: [`OVERVIEW_DAYS`] days, today so far last.
    pub days: Vec<DayFlows>,
    /// Flows started in the last 7 days (exact), and how many of them failed.
    pub flows_7d: u64,
    pub failed_7d: u64,
    /// The median funnel of the last 7 days (`None` when no flow recorded its steps).
    pub funnel: Option<Funnel>,
    /// The step whose median elimination share moved most: the last 24 hours against the 7
    /// days before them (`None` when no step ran in both).
    pub mover: Option<StepShift>,
}

/// Flows started on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFlows {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub flows: u64,
    pub failed: u64,
}

/// How a step's median elimination share (0..=1) changed between two ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepShift {
    pub step: String,
    /// The median share in the recent range, and in how many flows the step ran there.
    pub recent: f64,
    pub recent_runs: u64,
    /// The same in the baseline range.
    pub baseline: f64,
    pub baseline_runs: u64,
}

impl StepShift {
    /// `recent − baseline`, in share points (−1..=1).
    pub fn change(&self) -> f64 {
        self.recent - self.baseline
    }
}

/// `/pipelines/{name}`: one pipeline over a range, and optionally beside a second range or the
/// same range with another tag value (`version=v41` beside `version=v42`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineInsight {
    pub pipeline: String,
    pub bucket: StatsBucket,
    pub range: RangeInsight,
    /// The side compared with (`vs_since`, `vs_until`, `vs_tag`), when asked.
    pub versus: Option<RangeInsight>,
}

/// A pipeline's figures over `[since, until)` (by the flows' `started_at`, UTC), of the flows
/// with `tag` when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeInsight {
    #[serde(with = "crate::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "crate::rfc3339")]
    pub until: OffsetDateTime,
    /// `(key, value)`: only flows so tagged (`version=v42`).
    pub tag: Option<(String, String)>,
    /// Flows started in the range (exact), and how many failed.
    pub flows: u64,
    pub failed: u64,
    /// Median candidates in and out per step, from the newest flows up to a cap.
    pub funnel: Option<Funnel>,
    /// Per step, in funnel order (then by name): its reasons over time.
    pub steps: Vec<StepReasonMix>,
}

/// One step's rejection reasons over time and how much it eliminated per flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReasonMix {
    pub step: String,
    /// Reason codes, most frequent over the range first.
    pub codes: Vec<String>,
    /// Each code's count over the range (exact), aligned with `codes`.
    pub totals: Vec<u128>,
    /// Buckets that hold at least one count, oldest first.
    pub buckets: Vec<ReasonMixBucket>,
    /// How many flows eliminated each share of their candidates at this step.
    pub shares: ShareDistribution,
}

/// Reason counts of one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonMixBucket {
    #[serde(with = "crate::rfc3339")]
    pub start: OffsetDateTime,
    /// Aligned with [`StepReasonMix::codes`]; exact.
    pub counts: Vec<u128>,
}

/// Flows per elimination-share bin ([`SHARE_BINS`] bins of a tenth; a share of exactly 1
/// falls in the last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareDistribution {
    pub bins: Vec<u64>,
    /// Flows counted: the newest of the range, up to the funnel's cap.
    pub flows: u64,
    /// True when the range held more flows than were counted.
    pub capped: bool,
}

impl ShareDistribution {
    /// The bin of `share` (clamped into 0..=1).
    pub fn bin(share: f64) -> usize {
        let share = if share.is_nan() {
            0.0
        } else {
            share.clamp(0.0, 1.0)
        };
        ((share * SHARE_BINS as f64) as usize).min(SHARE_BINS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_fall_in_tenths_and_one_in_the_last_bin() {
        assert_eq!(ShareDistribution::bin(0.0), 0);
        assert_eq!(ShareDistribution::bin(0.099), 0);
        assert_eq!(ShareDistribution::bin(0.1), 1);
        assert_eq!(ShareDistribution::bin(0.95), 9);
        assert_eq!(ShareDistribution::bin(1.0), 9);
        assert_eq!(ShareDistribution::bin(f64::NAN), 0);
        assert_eq!(ShareDistribution::bin(-3.0), 0);
    }
}
