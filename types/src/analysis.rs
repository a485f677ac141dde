//! Answers of the analysis endpoints: a candidate's journey, the diff of two flows, reason
//! statistics and funnels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Attributes, Capture, FlowSummary, Observation, Reason, StepKind, Verdict};

/// Whether a candidate was seen in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// The step recorded an observation of the candidate.
    Observed,
    /// The step recorded every candidate (`capture: full`) and this one is not among them.
    Absent,
    /// The step kept only a sample (or counts): the candidate may have been there.
    Unknown,
}

/// Answer of `GET /api/v1/flows/{id}/candidates/{candidate_id}`: one candidate's path
/// through the steps of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CandidateJourney {
    pub flow_id: Uuid,
    pub pipeline: String,
    pub candidate_id: String,
    /// The last verdict the candidate received, if any step observed it.
    pub final_verdict: Option<Verdict>,
    /// The first step that rejected it.
    pub eliminated_at: Option<JourneyElimination>,
    /// Every step of the flow, in order.
    pub steps: Vec<JourneyStep>,
}

/// Where a candidate was rejected, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JourneyElimination {
    pub seq: u32,
    pub step: String,
    pub reasons: Vec<Reason>,
    /// How far it was from the cut ("why not this candidate?"), from the step's stored
    /// observations; absent when the step stored none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<EliminationCut>,
}

/// How far an eliminated candidate was from being kept at the step that eliminated it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EliminationCut {
    /// The candidate's score at the step (`null`: it had none).
    pub score: Option<f64>,
    /// The lowest score among the candidates the step kept (or selected).
    pub lowest_kept_score: Option<f64>,
    /// `lowest_kept_score − score`: how much more it needed to reach the cut (≤ 0: it was
    /// not cut by its score), rounded to 12 significant digits of the larger score so a
    /// difference of decimal scores reads as sent (0.7 − 0.48 is 0.22, not
    /// 0.21999999999999997).
    pub score_gap: Option<f64>,
    /// Its place when the step's scored observations are ranked by score, best first (1 =
    /// the best; ties share the better place).
    pub position: Option<u64>,
    /// Observations with a score that were ranked.
    pub ranked: u64,
    /// How many candidates the step kept (`candidates_out`), when it counted them.
    pub kept: Option<u64>,
    /// The kept candidate whose score is nearest to its own (the one it came closest to
    /// displacing), side by side with it; `null` when no kept candidate was stored.
    pub nearest_kept: Option<Observation>,
    /// False when the step stored a sample of its candidates (`capture` sampled): the
    /// lowest kept score, the position and the nearest kept are then among the sample.
    pub exact: bool,
}

/// One step of a candidate's journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JourneyStep {
    pub seq: u32,
    pub name: String,
    pub kind: StepKind,
    pub capture: Capture,
    pub presence: Presence,
    pub verdict: Option<Verdict>,
    pub score: Option<f64>,
    pub reasons: Vec<Reason>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Attributes,
}

/// Answer of `GET /api/v1/flows/{a}/diff/{b}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowDiff {
    pub a: FlowSummary,
    pub b: FlowSummary,
    /// Present when the flows' inputs differ.
    pub input: Option<ValueChange>,
    /// Present when the flows' outputs differ.
    pub output: Option<ValueChange>,
    /// Steps matched by name (in order of `seq` when a name repeats), then by `seq`.
    pub steps: Vec<StepDiff>,
}

/// A value in flow `a` and in flow `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValueChange {
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub a: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub b: Value,
}

/// How one step differs between two flows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepDiff {
    pub name: String,
    pub kind: StepKind,
    /// The step's `seq` in flow `a` (`null`: only in `b`).
    pub seq_a: Option<u32>,
    /// The step's `seq` in flow `b` (`null`: only in `a`).
    pub seq_b: Option<u32>,
    pub candidates_in: Pair<Option<u64>>,
    pub candidates_out: Pair<Option<u64>>,
    /// Reason codes whose counts differ.
    pub reasons: BTreeMap<String, Pair<u64>>,
    /// Observed in `b`'s step, not in `a`'s.
    pub added: Vec<String>,
    /// Observed in `a`'s step, not in `b`'s.
    pub removed: Vec<String>,
    /// Observed in both with a different verdict.
    pub verdict_changed: Vec<VerdictChange>,
    /// True when both steps recorded every candidate, so `added` and `removed` are exact;
    /// otherwise they compare samples.
    pub exact: bool,
    pub input: Option<ValueChange>,
    pub output: Option<ValueChange>,
    pub reasoning: Option<Pair<Option<String>>>,
}

/// The same field in flow `a` and flow `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pair<T> {
    pub a: T,
    pub b: T,
}

/// A candidate whose verdict differs between the two flows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerdictChange {
    pub candidate_id: String,
    pub a: Verdict,
    pub b: Verdict,
    pub score_a: Option<f64>,
    pub score_b: Option<f64>,
    pub reasons_a: Vec<Reason>,
    pub reasons_b: Vec<Reason>,
}

/// Answer of `GET /api/v1/stats/reasons`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonStats {
    #[serde(with = "crate::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "crate::rfc3339")]
    pub until: OffsetDateTime,
    pub bucket: StatsBucket,
    /// Per pipeline, step and reason code over the whole range, largest first.
    pub totals: Vec<ReasonCount>,
    /// The same per time bucket (by the flow's `started_at`), oldest first.
    pub buckets: Vec<ReasonBucket>,
    /// Median candidates in and out per step, per pipeline.
    pub funnels: Vec<Funnel>,
}

/// Width of a time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StatsBucket {
    Hour,
    #[default]
    Day,
}

impl StatsBucket {
    /// The bucket's width in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            StatsBucket::Hour => 3_600_000,
            StatsBucket::Day => 86_400_000,
        }
    }
}

/// How many candidates a reason code rejected in one step of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonCount {
    pub pipeline: String,
    pub step: String,
    pub code: String,
    /// Exact, also above 2^64 (a JSON integer with every digit; parse it as a big integer
    /// where numbers are doubles).
    pub count: u128,
}

/// A [`ReasonCount`] within one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonBucket {
    #[serde(with = "crate::rfc3339")]
    pub start: OffsetDateTime,
    pub pipeline: String,
    pub step: String,
    pub code: String,
    /// Exact, also above 2^64 (a JSON integer with every digit; parse it as a big integer
    /// where numbers are doubles).
    pub count: u128,
}

/// The typical shape of a pipeline: median candidates in and out of each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Funnel {
    pub pipeline: String,
    /// Flows the medians are computed from: the newest in the range, up to a cap.
    pub flows: u64,
    /// True when the range held more flows than the cap.
    pub capped: bool,
    pub steps: Vec<FunnelStep>,
}

/// One step of a [`Funnel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelStep {
    pub name: String,
    pub kind: StepKind,
    /// Flows in which the step ran and counted its candidates.
    pub runs: u64,
    pub median_in: f64,
    pub median_out: f64,
    /// The median share of candidates eliminated (0–1), over the runs whose step took
    /// candidates in (a `0 → 0` run has no share); `null` when none did.
    pub median_eliminated_share: Option<f64>,
}
