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
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub tags: BTreeMap<String, String>,
    pub error: Option<String>,
    pub step_count: u32,
    /// When the flow became queryable.
    #[serde(with = "time::serde::rfc3339")]
    pub ingested_at: OffsetDateTime,
}

/// Answer of `GET /api/v1/flows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowPage {
    pub flows: Vec<FlowSummary>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Answer of `GET /api/v1/flows/{id}`: the flow with its steps, without observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowDetail {
    #[serde(flatten)]
    pub summary: FlowSummary,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub output: Value,
    pub sdk: Option<SdkInfo>,
    pub steps: Vec<StepSummary>,
}

/// A step as the query API shows it: everything but the observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepSummary {
    pub seq: u32,
    pub name: String,
    pub kind: StepKind,
    pub status: StepStatus,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub output: Value,
    pub reasoning: Option<String>,
    pub candidates_in: Option<u64>,
    pub candidates_out: Option<u64>,
    pub reasons: BTreeMap<String, u64>,
    pub capture: Capture,
    /// How many observations are stored for the step (may be a sample).
    pub observation_count: u64,
}

impl StepSummary {
    /// Share of `candidates_in` that did not make it to `candidates_out` (0–1).
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
        }
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
