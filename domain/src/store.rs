//! The metadata store: teams, users, API keys, flows and steps.
//!
//! Callers see only [`MetadataStore`]; the embedded SQLite implementation lives in
//! [`crate::sqlite`], and a PostgreSQL one slots in beside it without touching them. Every
//! method is scoped by team where data belongs to a team: a flow id from another team is
//! simply "not found".

use std::collections::BTreeMap;

use async_trait::async_trait;
use flowtrail_types::{FlowDetail, FlowPage, FlowRecord, FlowStatus, StepKind};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;
use crate::auth::{Role, Scope};
use crate::payloads::PayloadRef;

/// A team (the tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: i64,
    pub slug: String,
}

/// A user with the teams they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub memberships: Vec<Membership>,
}

/// A user's role in one team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub team: Team,
    pub role: Role,
}

/// A live (not revoked) API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub team: Team,
    pub name: String,
    pub scope: Scope,
}

/// Filters of the flows list (`GET /api/v1/flows`). Every field is optional and they combine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowQuery {
    pub pipeline: Option<String>,
    pub status: Option<FlowStatus>,
    /// Every pair must match.
    pub tags: Vec<(String, String)>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Text in step names, reasoning and reason codes, or the pipeline name.
    pub text: Option<String>,
    /// With `min_eliminated`: some step of this kind eliminated at least that share.
    pub step_kind: Option<StepKind>,
    pub min_eliminated: Option<f64>,
    pub limit: u32,
    pub cursor: Option<FlowCursor>,
}

/// Position in the flows list, newest first: the last row's start time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowCursor {
    pub started_at_ms: i64,
    pub id: Uuid,
}

impl FlowCursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.started_at_ms, self.id.simple())
    }

    /// Parses [`FlowCursor::encode`]'s output.
    pub fn decode(text: &str) -> Option<Self> {
        let (ms, id) = text.split_once('_')?;
        Some(FlowCursor {
            started_at_ms: ms.parse().ok()?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// Where each step's observation payload was stored, by `seq`.
pub type StepPayloads = BTreeMap<u32, PayloadRef>;

/// One flow to write in a batch.
pub struct FlowWrite<'a> {
    pub team_id: i64,
    pub flow: &'a FlowRecord,
    pub payloads: &'a StepPayloads,
    pub mode: WriteMode,
}

/// How a write combines with what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// The record is the whole flow: it replaces the stored one unless that one is newer.
    #[default]
    Replace,
    /// The record carries some steps of a running flow (`POST /api/v1/flows/{id}/steps`):
    /// they replace the stored steps with the same `seq` and the others stay. The flow's own
    /// fields are taken when the record's version is at least the stored one. Once a finished
    /// flow is stored with a version at least the record's, the record is stale.
    MergeSteps,
}

/// What became of an upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// The flow was written (new, or a version at least as new as the stored one).
    Written,
    /// A newer version is already stored; nothing changed.
    Stale,
}

/// Metadata persistence, one implementation per database engine.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;

    /// The team with this slug, created if missing.
    async fn ensure_team(&self, slug: &str) -> Result<Team>;
    async fn team_by_slug(&self, slug: &str) -> Result<Option<Team>>;
    /// How many users exist (the first start creates the first admin).
    async fn user_count(&self) -> Result<u64>;
    /// Creates a user and their membership; [`crate::Error::Conflict`] if the e-mail is taken.
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        team_id: i64,
        role: Role,
    ) -> Result<i64>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: i64) -> Result<Option<User>>;

    /// Stores an API key's hash.
    async fn create_api_key(
        &self,
        team_id: i64,
        name: &str,
        scope: Scope,
        display_prefix: &str,
        hash: &str,
    ) -> Result<i64>;
    /// The live key with this hash.
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>>;

    /// Writes a flow and its steps in one transaction, unless a newer version is stored.
    async fn upsert_flow(
        &self,
        team_id: i64,
        flow: &FlowRecord,
        payloads: &StepPayloads,
    ) -> Result<UpsertOutcome> {
        let write = FlowWrite {
            team_id,
            flow,
            payloads,
            mode: WriteMode::Replace,
        };
        let outcomes = self.upsert_flows(std::slice::from_ref(&write)).await?;
        Ok(outcomes.into_iter().next().unwrap_or(UpsertOutcome::Stale))
    }
    /// Writes several flows in one transaction (one commit for a worker's whole batch).
    async fn upsert_flows(&self, writes: &[FlowWrite<'_>]) -> Result<Vec<UpsertOutcome>>;
    /// One page of flows, newest first.
    async fn list_flows(&self, team_id: i64, query: &FlowQuery) -> Result<FlowPage>;
    /// A flow with its steps.
    async fn get_flow(&self, team_id: i64, flow_id: Uuid) -> Result<Option<FlowDetail>>;
    /// Reason counts per pipeline, step, code and bucket, from the exact per-step histograms.
    async fn reason_counts(&self, team_id: i64, query: &StatsQuery) -> Result<Vec<ReasonRow>>;
    /// Candidates in and out of each step of the newest `flow_cap` flows per pipeline in the
    /// range, for the funnel medians.
    async fn funnel_rows(
        &self,
        team_id: i64,
        query: &StatsQuery,
        flow_cap: u32,
    ) -> Result<Vec<FunnelRow>>;
    /// Where each step's observations are, for the steps that stored some.
    async fn flow_payloads(&self, team_id: i64, flow_id: Uuid) -> Result<StepPayloads>;
    /// Where a step's observations are: `None` if the step does not exist,
    /// `Some(None)` if it exists but recorded no observations.
    async fn step_payload(
        &self,
        team_id: i64,
        flow_id: Uuid,
        seq: u32,
    ) -> Result<Option<Option<PayloadRef>>>;
}

/// Filters of `GET /api/v1/stats/reasons`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsQuery {
    pub pipeline: Option<String>,
    pub step: Option<String>,
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    /// Bucket width in milliseconds (a whole number of hours).
    pub bucket_ms: i64,
}

/// One (bucket, pipeline, step, code) count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonRow {
    pub bucket_ms: i64,
    pub pipeline: String,
    pub step: String,
    pub code: String,
    pub count: u64,
}

/// One step of one flow, for the funnels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelRow {
    pub pipeline: String,
    pub flow_id: String,
    pub seq: u32,
    pub step: String,
    pub kind: StepKind,
    pub candidates_in: u64,
    pub candidates_out: u64,
}

/// Text drawn from a step's observations for the full-text index: distinct candidate ids,
/// reason codes and texts, at most [`SEARCH_TEXT_MAX`] bytes.
pub fn observation_text(observations: &[flowtrail_types::Observation]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let mut text = String::new();
    let mut push = |part: &str| {
        if text.len() + part.len() < SEARCH_TEXT_MAX && seen.insert(part.to_owned()) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(part);
        }
    };
    for observation in observations {
        push(&observation.candidate_id);
        for reason in &observation.reasons {
            push(&reason.code);
            if let Some(reason_text) = &reason.text {
                push(reason_text);
            }
        }
    }
    (!text.is_empty()).then_some(text)
}

/// A step's recorded boundaries as stored (`NULL` when it has none).
pub fn boundaries_json(step: &flowtrail_types::StepRecord) -> crate::Result<Option<String>> {
    if step.boundaries.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&step.boundaries)
        .map(Some)
        .map_err(|e| crate::Error::Internal(e.to_string()))
}

/// Cap of the observation text indexed per step.
pub const SEARCH_TEXT_MAX: usize = 16 * 1024;

/// Turns what a user typed into a full-text query: each whitespace-separated word becomes a
/// phrase of its alphanumeric tokens, the last one matched as a prefix; all words must match.
/// Empty when nothing searchable is left.
pub fn search_words(text: &str) -> Vec<Vec<String>> {
    text.split_whitespace()
        .map(|word| {
            word.split(|c: char| !c.is_alphanumeric())
                .filter(|token| !token.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .filter(|tokens| !tokens.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::{Observation, Reason, Verdict};

    #[test]
    fn search_words_split_on_punctuation_and_drop_operators() {
        assert_eq!(
            search_words("price_out_of_range  B0CASE\"* OR-"),
            vec![
                vec![
                    "price".to_string(),
                    "out".into(),
                    "of".into(),
                    "range".into()
                ],
                vec!["b0case".to_string()],
                vec!["or".to_string()],
            ]
        );
        assert!(search_words(" \"*() ").is_empty());
    }

    #[test]
    fn observation_text_is_distinct_and_capped() {
        let observation = |id: &str| Observation {
            candidate_id: id.into(),
            verdict: Verdict::Rejected,
            score: None,
            reasons: vec![Reason {
                code: "too_far".into(),
                text: Some("x".repeat(100)),
            }],
            attributes: Default::default(),
        };
        let text = observation_text(&[observation("A1"), observation("B2")]).unwrap();
        assert_eq!(text.matches("too_far").count(), 1);
        assert!(text.starts_with("A1 too_far"));
        assert!(text.contains("B2"));
        let many: Vec<_> = (0..2000).map(|i| observation(&format!("C{i}"))).collect();
        assert!(observation_text(&many).unwrap().len() < SEARCH_TEXT_MAX);
        assert_eq!(observation_text(&[]), None);
    }
}
