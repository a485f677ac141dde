//! [`FlowStore`]: what every SQL engine answers about flows. One implementation,
//! `engines::sql::SqlMetadata`, serves SQLite and PostgreSQL; every method is scoped by team:
//! a flow id of another team is simply "not found".

use async_trait::async_trait;
use flowtrail_types::{FlowDetail, FlowFilters, FlowPage, StepSummary};
use uuid::Uuid;

use super::StepPayload;
use super::{FlowWrite, StepPayloads, UpsertOutcome, WriteMode};
use crate::Result;
use crate::analysis::{FunnelRow, ReasonRow, StatsQuery};
use crate::payloads::PayloadRef;

/// Flows, steps and what is derived from them.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Writes a flow and its steps in one transaction, unless a newer version is stored
    /// (see [`super::Precedence`]).
    async fn upsert_flow(
        &self,
        team_id: i64,
        flow: &flowtrail_types::FlowRecord,
        payloads: &StepPayloads,
    ) -> Result<UpsertOutcome> {
        let write = FlowWrite {
            team_id,
            flow,
            payloads,
            mode: WriteMode::Replace,
            imported: false,
        };
        let outcomes = self.upsert_flows(std::slice::from_ref(&write)).await?;
        Ok(outcomes.into_iter().next().unwrap_or(UpsertOutcome::Stale))
    }
    /// Writes several flows in one transaction (one commit for a processor's whole batch).
    /// One outcome per write, in order; a written flow's outcome carries its stored summary.
    async fn upsert_flows(&self, writes: &[FlowWrite<'_>]) -> Result<Vec<UpsertOutcome>>;
    /// One page of flows, newest first.
    async fn list_flows(&self, team_id: i64, filters: &FlowFilters) -> Result<FlowPage>;
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
    /// The steps of several flows of the team in one statement, each flow's in seq order,
    /// with where each step's observations are (`None`: it stored none). Flows not found
    /// are absent. What an export reads per page of flows.
    async fn flows_steps(
        &self,
        team_id: i64,
        flow_ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<(StepSummary, Option<PayloadRef>)>>>;
    /// Where a step's observations are, read with the version and status of the flow they
    /// belong to (one statement, so they agree); `None` if the step does not exist.
    async fn step_payload(
        &self,
        team_id: i64,
        flow_id: Uuid,
        seq: u32,
    ) -> Result<Option<StepPayload>>;
}
