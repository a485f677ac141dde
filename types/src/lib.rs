//! Wire and domain types of Flow Trail.
//!
//! One definition of everything that crosses a process boundary: the flow record that SDKs
//! send (`POST /api/v1/flows`), the answers of the query API, and the JSON error body. The SDK,
//! the server and the dashboard (compiled to WASM) all depend on this crate, so it carries
//! nothing but `serde` types and pure helpers: no I/O, no HTTP, no UI.
//!
//! Rules: field names are the public contract (CONTRACT.md) — add fields, never rename them;
//! unknown fields in input are ignored so older servers accept newer SDKs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

pub mod admin;
pub mod alerts;
pub mod analysis;
pub mod api;
pub mod filters;
pub mod insights;
pub mod limits;
pub mod rfc3339;
pub mod share;
pub mod vocabulary;

pub use analysis::*;
pub use api::*;
pub use filters::{FilterError, FlowCursor, FlowFilters, Share, tag_filter};
pub use vocabulary::{Capture, FlowStatus, StepKind, StepStatus, Verdict};

/// Body of `POST /api/v1/flows/{id}/steps`: some steps of a flow that is still running, sent
/// as they finish so a pipeline that crashes mid-run still leaves its partial trail. The
/// server merges them by `seq` into the stored flow; the finished record sent later to
/// `POST /api/v1/flows` supersedes everything pushed, whatever the versions, and a push to a
/// finished flow changes nothing (`domain/src/flows/mod.rs`, `Precedence::of`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepsPush {
    /// Optional; when present it must equal the id in the path.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// Grows with every push of the same flow; the flow's own fields of the highest version
    /// win, steps are merged whatever the order of arrival.
    #[serde(default = "default_version")]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 4294967295_u64, format = Int64)
    )]
    pub version: u32,
    pub pipeline: String,
    #[serde(with = "crate::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub input: Value,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub sdk: Option<SdkInfo>,
    pub steps: Vec<StepRecord>,
}

impl StepsPush {
    /// The push as a running flow record with these steps only.
    pub fn into_record(self, id: Uuid) -> FlowRecord {
        FlowRecord {
            id,
            version: self.version,
            pipeline: self.pipeline,
            status: FlowStatus::Running,
            started_at: self.started_at,
            ended_at: None,
            input: self.input,
            output: Value::Null,
            tags: self.tags,
            error: None,
            sdk: self.sdk,
            steps: self.steps,
        }
    }
}

/// Free attributes of a candidate (`price`, `rating`, `category`…).
pub type Attributes = serde_json::Map<String, Value>;

/// One run of a pipeline, as an SDK sends it: the body of `POST /api/v1/flows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowRecord {
    /// Client-generated id (UUIDv7 recommended) so that retries are idempotent.
    pub id: Uuid,
    /// Grows with every re-send of the same flow; the highest version wins. From 1.
    #[serde(default = "default_version")]
    // An unsigned 32-bit number: OpenAPI's `int32` is signed and would stop at 2^31 − 1.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 4294967295_u64, format = Int64)
    )]
    pub version: u32,
    /// The kind of flow within the team, e.g. `competitor_selection`: a name (1 to 256
    /// bytes, not only white space).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = r"\S")
    )]
    pub pipeline: String,
    pub status: FlowStatus,
    #[serde(with = "crate::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "crate::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// Small summary of what the flow was asked.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub input: Value,
    /// Small summary of what it answered.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub output: Value,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub sdk: Option<SdkInfo>,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

impl FlowRecord {
    /// A running flow with nothing recorded yet.
    pub fn new(id: Uuid, pipeline: impl Into<String>, started_at: OffsetDateTime) -> Self {
        FlowRecord {
            id,
            version: 1,
            pipeline: pipeline.into(),
            status: FlowStatus::Running,
            started_at,
            ended_at: None,
            input: Value::Null,
            output: Value::Null,
            tags: BTreeMap::new(),
            error: None,
            sdk: None,
            steps: Vec::new(),
        }
    }
}

fn default_version() -> u32 {
    1
}

/// Which SDK recorded a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SdkInfo {
    pub name: String,
    pub version: String,
}

/// One decision point of a flow, ordered by `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepRecord {
    pub seq: u32,
    pub name: String,
    pub kind: StepKind,
    #[serde(default)]
    pub status: StepStatus,
    #[serde(default, with = "crate::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "crate::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub input: Value,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub output: Value,
    /// The step's own explanation of what it did and why.
    #[serde(default)]
    pub reasoning: Option<String>,
    /// Exact number of candidates the step received, whatever was captured.
    #[serde(default)]
    pub candidates_in: Option<u64>,
    /// Exact number of candidates the step passed on.
    #[serde(default)]
    pub candidates_out: Option<u64>,
    /// Exact reason histogram: reason code → how many candidates it rejected.
    #[serde(default)]
    pub reasons: BTreeMap<String, u64>,
    #[serde(default)]
    pub capture: Capture,
    #[serde(default)]
    pub observations: Vec<Observation>,
    /// Calls to non-deterministic dependencies (an LLM, a search API) made in the step, with
    /// what they were given and answered, in call order: what a replay answers with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boundaries: Vec<Boundary>,
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

/// One recorded call across a non-deterministic boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Boundary {
    /// What was called, e.g. `llm.keywords`.
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub input: Value,
    /// What it answered (`null` when it failed).
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub output: Value,
    /// How it failed, when it did (a replay fails the same way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<BoundaryError>,
}

/// How a recorded call failed: the error's type, as the language names it (Python:
/// `module.QualifiedName`, e.g. `builtins.TimeoutError`), and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BoundaryError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// One candidate's fate inside a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Observation {
    /// Stable id of the candidate across steps and flows (a SKU, an ASIN, a URL…).
    pub candidate_id: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Attributes,
}

/// Why a candidate got its verdict: a stable code for machines, a text for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reason {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl StepRecord {
    /// A running step with nothing recorded yet (full capture).
    pub fn new(seq: u32, name: impl Into<String>, kind: StepKind) -> Self {
        StepRecord {
            seq,
            name: name.into(),
            kind,
            status: StepStatus::Running,
            started_at: None,
            ended_at: None,
            input: Value::Null,
            output: Value::Null,
            reasoning: None,
            candidates_in: None,
            candidates_out: None,
            reasons: BTreeMap::new(),
            capture: Capture::Full,
            observations: Vec::new(),
            boundaries: Vec::new(),
            parent_seq: None,
            span_id: None,
            parent_span_id: None,
        }
    }

    /// A copy without its observations and recorded calls (what a binding keeps of an ended
    /// step to answer questions about it).
    pub fn clone_without_candidates(&self) -> StepRecord {
        StepRecord {
            seq: self.seq,
            name: self.name.clone(),
            kind: self.kind,
            status: self.status,
            started_at: self.started_at,
            ended_at: self.ended_at,
            input: self.input.clone(),
            output: self.output.clone(),
            reasoning: self.reasoning.clone(),
            candidates_in: self.candidates_in,
            candidates_out: self.candidates_out,
            reasons: self.reasons.clone(),
            capture: self.capture,
            observations: Vec::new(),
            boundaries: Vec::new(),
            parent_seq: self.parent_seq,
            span_id: self.span_id.clone(),
            parent_span_id: self.parent_span_id.clone(),
        }
    }

    /// `candidates_in`, or — when the step holds every candidate — the number of observations.
    pub fn effective_candidates_in(&self) -> Option<u64> {
        self.candidates_in.or_else(|| {
            (self.capture == Capture::Full && !self.observations.is_empty())
                .then_some(self.observations.len() as u64)
        })
    }

    /// `candidates_out`, or — when the step holds every candidate — how many passed.
    pub fn effective_candidates_out(&self) -> Option<u64> {
        self.candidates_out.or_else(|| {
            (self.capture == Capture::Full && !self.observations.is_empty()).then(|| {
                self.observations
                    .iter()
                    .filter(|o| o.verdict.passes())
                    .count() as u64
            })
        })
    }

    /// The reason histogram, or — when absent and the step holds every candidate — the one
    /// the observations imply (each rejected candidate counted once per reason code).
    pub fn effective_reasons(&self) -> BTreeMap<String, u64> {
        if !self.reasons.is_empty() || self.capture != Capture::Full {
            return self.reasons.clone();
        }
        let mut histogram = BTreeMap::new();
        for observation in self
            .observations
            .iter()
            .filter(|o| o.verdict == Verdict::Rejected)
        {
            for reason in &observation.reasons {
                *histogram.entry(reason.code.clone()).or_insert(0) += 1;
            }
        }
        histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"{
      "id": "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11",
      "version": 1,
      "pipeline": "competitor_selection",
      "status": "succeeded",
      "started_at": "2026-11-21T10:00:00.000Z",
      "ended_at": "2026-11-21T10:00:02.350Z",
      "input": {"title": "Adjustable aluminium laptop stand", "category": "Laptop Stands"},
      "output": {"selected": "B0STAND42"},
      "tags": {"seller": "B0SELLER01", "env": "prod"},
      "error": null,
      "sdk": {"name": "flowtrail-rust", "version": "0.1.0"},
      "steps": [{
          "seq": 2, "name": "price_and_rating_filter", "kind": "filter", "status": "succeeded",
          "started_at": "2026-11-21T10:00:01.000Z", "ended_at": "2026-11-21T10:00:01.020Z",
          "input": {"max_price": 80, "min_rating": 4.0}, "output": {"kept": 30},
          "reasoning": "Kept candidates within 0.5x-2x of the seller's price with rating >= 4.0",
          "candidates_in": 5000, "candidates_out": 30,
          "reasons": {"price_out_of_range": 4100, "rating_below_threshold": 870},
          "capture": "sampled",
          "observations": [{
              "candidate_id": "B0CASE0001", "verdict": "rejected", "score": 0.12,
              "reasons": [{"code": "price_out_of_range", "text": "9.99 is below 0.5x of 45.00"}],
              "attributes": {"price": 9.99, "rating": 4.6, "category": "Cell Phone Cases"}
          }]
      }]
    }"#;

    #[test]
    fn the_contract_example_parses_and_round_trips() {
        let flow: FlowRecord = serde_json::from_str(CONTRACT_EXAMPLE).unwrap();
        assert_eq!(flow.pipeline, "competitor_selection");
        assert_eq!(flow.steps[0].kind, StepKind::Filter);
        assert_eq!(flow.steps[0].capture, Capture::Sampled);
        assert_eq!(flow.steps[0].reasons["price_out_of_range"], 4100);
        let obs = &flow.steps[0].observations[0];
        assert_eq!(obs.verdict, Verdict::Rejected);
        assert_eq!(obs.reasons[0].code, "price_out_of_range");
        assert_eq!(
            flow.ended_at.unwrap() - flow.started_at,
            time::Duration::milliseconds(2350)
        );
        let again: FlowRecord =
            serde_json::from_str(&serde_json::to_string(&flow).unwrap()).unwrap();
        assert_eq!(again, flow);
    }

    #[test]
    fn unknown_enum_values_are_rejected() {
        let bad = CONTRACT_EXAMPLE.replace("\"kind\": \"filter\"", "\"kind\": \"sieve\"");
        assert!(serde_json::from_str::<FlowRecord>(&bad).is_err());
    }

    #[test]
    fn wire_spellings_round_trip() {
        for kind in StepKind::ALL {
            assert_eq!(StepKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                Value::String(kind.as_str().into())
            );
        }
        assert_eq!(Capture::parse("counts_only"), Some(Capture::CountsOnly));
        assert_eq!(Verdict::parse("maybe"), None);
    }

    #[test]
    fn full_capture_derives_missing_counts_and_histogram() {
        let obs = |id: &str, verdict, code: Option<&str>| Observation {
            candidate_id: id.into(),
            verdict,
            score: None,
            reasons: code
                .map(|c| {
                    vec![Reason {
                        code: c.into(),
                        text: None,
                    }]
                })
                .unwrap_or_default(),
            attributes: Attributes::new(),
        };
        let step = StepRecord {
            observations: vec![
                obs("a", Verdict::Kept, None),
                obs("b", Verdict::Rejected, Some("price")),
                obs("c", Verdict::Rejected, Some("price")),
                obs("d", Verdict::Selected, None),
            ],
            ..StepRecord::new(1, "f", StepKind::Filter)
        };
        assert_eq!(step.effective_candidates_in(), Some(4));
        assert_eq!(step.effective_candidates_out(), Some(2));
        assert_eq!(step.effective_reasons()["price"], 2);

        let sampled = StepRecord {
            capture: Capture::Sampled,
            ..step
        };
        assert_eq!(sampled.effective_candidates_in(), None);
        assert!(sampled.effective_reasons().is_empty());
    }
}
