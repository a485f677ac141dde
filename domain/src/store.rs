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
    ) -> Result<UpsertOutcome>;
    /// Writes several flows in one transaction (one commit for a worker's whole batch).
    async fn upsert_flows(&self, writes: &[FlowWrite<'_>]) -> Result<Vec<UpsertOutcome>>;
    /// One page of flows, newest first.
    async fn list_flows(&self, team_id: i64, query: &FlowQuery) -> Result<FlowPage>;
    /// A flow with its steps.
    async fn get_flow(&self, team_id: i64, flow_id: Uuid) -> Result<Option<FlowDetail>>;
    /// Where a step's observations are: `None` if the step does not exist,
    /// `Some(None)` if it exists but recorded no observations.
    async fn step_payload(
        &self,
        team_id: i64,
        flow_id: Uuid,
        seq: u32,
    ) -> Result<Option<Option<PayloadRef>>>;
}
