//! Answers of the HTTP API and of the dashboard's server functions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Capture, FlowStatus, Observation, SdkInfo, StepKind, StepStatus};

/// The body of every error answer: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable machine code, a message a person can act on, and the offending field if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Answer of `POST /api/v1/flows`: the flow is durably queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestAccepted {
    pub flow_id: Uuid,
    /// Always `"queued"`.
    pub status: String,
}

/// One row of the flows list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowSummary {
    pub id: Uuid,
    pub version: u32,
    pub pipeline: String,
    pub status: FlowStatus,
    #[serde(with = "crate::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "crate::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub tags: BTreeMap<String, String>,
    pub error: Option<String>,
    pub step_count: u32,
    /// When the flow became queryable.
    #[serde(with = "crate::rfc3339")]
    pub ingested_at: OffsetDateTime,
    /// The step that eliminated the most candidates (`null` if no step counted them).
    #[serde(default)]
    pub largest_elimination: Option<Elimination>,
    /// When the flow was loaded from a debugging bundle (`flowtrail import`); absent for a
    /// flow this deployment ingested itself.
    #[serde(
        default,
        with = "crate::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub imported_at: Option<OffsetDateTime>,
}

/// How many candidates one step eliminated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Elimination {
    pub seq: u32,
    pub step: String,
    pub kind: StepKind,
    pub candidates_in: u64,
    pub candidates_out: u64,
    /// `candidates_in - candidates_out`.
    pub eliminated: u64,
    /// `eliminated / candidates_in` (0–1).
    pub share: f64,
}

impl Elimination {
    /// The elimination of a step that counted its candidates.
    pub fn new(
        seq: u32,
        step: impl Into<String>,
        kind: StepKind,
        candidates_in: u64,
        candidates_out: u64,
    ) -> Self {
        let eliminated = candidates_in.saturating_sub(candidates_out);
        Elimination {
            seq,
            step: step.into(),
            kind,
            candidates_in,
            candidates_out,
            eliminated,
            share: if candidates_in == 0 {
                0.0
            } else {
                eliminated as f64 / candidates_in as f64
            },
        }
    }

    /// Whether this elimination is a larger drop than `other` — **the** definition of "largest
    /// drop", used by the flows list (`largest_elimination`, computed in SQL with the same
    /// order), the flow page's default step and its funnel highlight:
    ///
    /// 1. the larger share of `candidates_in` eliminated (compared exactly, as fractions:
    ///    `a/b > c/d` ⇔ `a·d > c·b` in 128-bit integers);
    /// 2. ties: the larger number eliminated;
    /// 3. still tied: the earlier step (lower `seq`).
    ///
    /// A step that creates candidates (`out > in`, e.g. `retrieve`) has share 0.
    pub fn is_larger_drop_than(&self, other: &Elimination) -> bool {
        let (a, b) = (self.eliminated as u128, self.candidates_in.max(1) as u128);
        let (c, d) = (other.eliminated as u128, other.candidates_in.max(1) as u128);
        match (a * d).cmp(&(c * b)) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                (self.eliminated, std::cmp::Reverse(self.seq))
                    > (other.eliminated, std::cmp::Reverse(other.seq))
            }
        }
    }

    /// The largest drop among `eliminations` (see [`Elimination::is_larger_drop_than`]);
    /// `None` when there is none or when no step eliminated anything.
    pub fn largest_among(eliminations: impl IntoIterator<Item = Elimination>) -> Option<Self> {
        eliminations.into_iter().filter(|e| e.eliminated > 0).fold(
            None,
            |best: Option<Elimination>, next| match best {
                Some(best) if !next.is_larger_drop_than(&best) => Some(best),
                _ => Some(next),
            },
        )
    }

    /// The largest drop among a record's steps that counted their candidates.
    pub fn largest<'a>(steps: impl IntoIterator<Item = &'a crate::StepRecord>) -> Option<Self> {
        Self::largest_among(steps.into_iter().filter_map(|step| {
            Some(Elimination::new(
                step.seq,
                &step.name,
                step.kind,
                step.effective_candidates_in()?,
                step.effective_candidates_out()?,
            ))
        }))
    }

    /// The largest drop among a stored flow's steps.
    pub fn largest_of_summaries<'a>(
        steps: impl IntoIterator<Item = &'a StepSummary>,
    ) -> Option<Self> {
        Self::largest_among(steps.into_iter().filter_map(StepSummary::elimination))
    }
}

/// Answer of `GET /api/v1/flows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowPage {
    pub flows: Vec<FlowSummary>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Only with `q`: whether every flow passing the other filters had all of its text
    /// searched. Candidate ids are always searched whole; `false` when a flow's text is too
    /// large for the engine's index (PostgreSQL keeps the first 100,000 characters of a
    /// flow's search document), so a flow matching beyond that part may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_complete: Option<bool>,
}

/// Answer of `GET /api/v1/flows/{id}`: the flow with its steps, without observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowDetail {
    #[serde(flatten)]
    pub summary: FlowSummary,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub input: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub output: Value,
    pub sdk: Option<SdkInfo>,
    pub steps: Vec<StepSummary>,
    /// Pinned flows are never deleted by retention (`PUT /api/v1/flows/{id}/pin`).
    #[serde(default)]
    pub pinned: bool,
}

/// A step as the query API shows it: everything but the observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepSummary {
    pub seq: u32,
    pub name: String,
    pub kind: StepKind,
    pub status: StepStatus,
    #[serde(default, with = "crate::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "crate::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub input: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub output: Value,
    pub reasoning: Option<String>,
    pub candidates_in: Option<u64>,
    pub candidates_out: Option<u64>,
    pub reasons: BTreeMap<String, u64>,
    pub capture: Capture,
    /// How many observations are stored for the step (may be a sample).
    pub observation_count: u64,
    /// Recorded calls across non-deterministic boundaries, in call order.
    #[serde(default)]
    pub boundaries: Vec<crate::Boundary>,
    /// The seq of the step this one ran inside (a nested span, a sub-step); none for a
    /// top-level step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_seq: Option<u32>,
    /// For a step made from an OpenTelemetry span: the span id (16 lowercase hex digits),
    /// the step's identity within its trace (a re-sent span replaces its step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// For a step made from an OpenTelemetry span: the parent span's id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
}

impl StepSummary {
    /// Share of `candidates_in` that did not make it to `candidates_out` (0–1).
    /// The step's elimination, when it counted its candidates in and out.
    pub fn elimination(&self) -> Option<Elimination> {
        Some(Elimination::new(
            self.seq,
            &self.name,
            self.kind,
            self.candidates_in?,
            self.candidates_out?,
        ))
    }

    pub fn eliminated_ratio(&self) -> Option<f64> {
        match (self.candidates_in, self.candidates_out) {
            (Some(input), Some(output)) if input > 0 => {
                Some(input.saturating_sub(output) as f64 / input as f64)
            }
            _ => None,
        }
    }
}

/// Answer of `GET /api/v1/flows/{id}/steps/{seq}/observations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObservationList {
    pub observations: Vec<Observation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(candidates_in: Option<u64>, candidates_out: Option<u64>) -> StepSummary {
        StepSummary {
            seq: 1,
            name: "s".into(),
            kind: StepKind::Filter,
            status: StepStatus::Succeeded,
            started_at: None,
            ended_at: None,
            input: Value::Null,
            output: Value::Null,
            reasoning: None,
            candidates_in,
            candidates_out,
            reasons: BTreeMap::new(),
            capture: Capture::Full,
            observation_count: 0,
            boundaries: Vec::new(),
            parent_seq: None,
            span_id: None,
            parent_span_id: None,
        }
    }

    #[test]
    fn the_largest_drop_is_the_largest_share_then_the_larger_count_then_the_earlier_step() {
        let e = |seq, input, output| {
            Elimination::new(seq, format!("s{seq}"), StepKind::Filter, input, output)
        };
        // 1,000 → 500 eliminates more candidates, 10 → 1 a larger share: the share wins.
        let largest = Elimination::largest_among([e(0, 1_000, 500), e(1, 10, 1)]).unwrap();
        assert_eq!(largest.seq, 1);
        // The same share: the larger count; the same count too: the earlier step.
        assert_eq!(
            Elimination::largest_among([e(0, 10, 5), e(1, 1_000, 500)])
                .unwrap()
                .seq,
            1
        );
        assert_eq!(
            Elimination::largest_among([e(3, 10, 5), e(1, 10, 5)])
                .unwrap()
                .seq,
            1
        );
        // Shares that a float cannot tell apart are still ordered exactly.
        let big = 1u64 << 60;
        assert_eq!(
            Elimination::largest_among([e(0, big, 1), e(1, big + 1, 1)])
                .unwrap()
                .seq,
            1
        );
        // Steps that create candidates or eliminate nothing are never the largest drop.
        assert_eq!(
            Elimination::largest_among([e(0, 3, 5_000), e(1, 7, 7)]),
            None
        );
    }

    #[test]
    fn eliminated_ratio_is_the_share_that_did_not_pass() {
        assert_eq!(step(Some(5000), Some(30)).eliminated_ratio(), Some(0.994));
        assert_eq!(step(Some(0), Some(0)).eliminated_ratio(), None);
        assert_eq!(step(None, Some(3)).eliminated_ratio(), None);
    }

    #[test]
    fn error_body_omits_an_absent_field() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: "not_found".into(),
                message: "no such flow".into(),
                field: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"not_found","message":"no such flow"}}"#
        );
    }
}
