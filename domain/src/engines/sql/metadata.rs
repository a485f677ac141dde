//! [`SqlMetadata`]: the one [`MetadataStore`] of both SQL engines. Shared statements run on
//! either pool ([`on_pool!`]); the few that differ are handed to the dialect's module.

use async_trait::async_trait;
use flowtrail_types::{FlowDetail, FlowFilters, FlowPage};
use uuid::Uuid;

use super::{SqlDatabase, flows, on_pool, stats};
use crate::analysis::{FunnelRow, ReasonRow, StatsQuery};
use crate::engines::{postgres, sqlite};
use crate::flows::{FlowStore, FlowWrite, StepPayload, StepPayloads, UpsertOutcome, page};
use crate::{MetadataStore, Result};

/// Accounts and flows in the configured SQL database.
#[derive(Clone)]
pub struct SqlMetadata {
    pub(super) db: SqlDatabase,
}

impl SqlMetadata {
    pub fn new(db: SqlDatabase) -> Self {
        SqlMetadata { db }
    }
}

#[async_trait]
impl MetadataStore for SqlMetadata {
    async fn ping(&self) -> Result<()> {
        on_pool!(&self.db, read, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}

#[async_trait]
impl FlowStore for SqlMetadata {
    async fn upsert_flows(&self, writes: &[FlowWrite<'_>]) -> Result<Vec<UpsertOutcome>> {
        match &self.db {
            SqlDatabase::Sqlite(db) => sqlite::writes::write_batch(db, writes).await,
            SqlDatabase::Postgres(db) => postgres::writes::write_batch(db, writes).await,
        }
    }

    async fn list_flows(&self, team_id: i64, filters: &FlowFilters) -> Result<FlowPage> {
        let limit = filters.limit.clamp(1, flowtrail_types::filters::MAX_LIMIT);
        // One more than a page, to know whether there is a next one.
        let want = i64::from(limit) + 1;
        let (rows, search_complete) = match &filters.text {
            None => (
                flows::list_without_text(&self.db, team_id, filters, want).await?,
                None,
            ),
            // SQLite's FTS5 indexes every flow's whole text.
            Some(text) => match &self.db {
                SqlDatabase::Sqlite(db) => (
                    sqlite::search::search_flows(db, team_id, filters, text, want).await?,
                    Some(true),
                ),
                SqlDatabase::Postgres(db) => {
                    let (rows, complete) = futures::try_join!(
                        postgres::search::search_flows(db, team_id, filters, text, want),
                        postgres::search::search_complete(db, team_id, filters),
                    )?;
                    (rows, Some(complete))
                }
            },
        };
        Ok(FlowPage {
            search_complete,
            ..page(rows, limit)
        })
    }

    async fn get_flow(&self, team_id: i64, flow_id: Uuid) -> Result<Option<FlowDetail>> {
        flows::get_flow(&self.db, team_id, flow_id).await
    }

    async fn reason_counts(&self, team_id: i64, query: &StatsQuery) -> Result<Vec<ReasonRow>> {
        stats::reason_counts(&self.db, team_id, query).await
    }

    async fn funnel_rows(
        &self,
        team_id: i64,
        query: &StatsQuery,
        flow_cap: u32,
    ) -> Result<Vec<FunnelRow>> {
        let pipelines = flows::pipelines(&self.db, team_id, query.pipeline.as_deref()).await?;
        // One query per pipeline, all at once: each walks its own newest flows.
        let per_pipeline = pipelines
            .into_iter()
            .map(|pipeline| stats::funnel_of(&self.db, team_id, query, flow_cap, pipeline));
        let rows = futures::future::try_join_all(per_pipeline).await?;
        Ok(rows.into_iter().flatten().collect())
    }

    async fn flow_payloads(&self, team_id: i64, flow_id: Uuid) -> Result<StepPayloads> {
        flows::flow_payloads(&self.db, team_id, flow_id).await
    }

    async fn flows_steps(
        &self,
        team_id: i64,
        flow_ids: &[Uuid],
    ) -> Result<
        std::collections::HashMap<
            Uuid,
            Vec<(
                flowtrail_types::StepSummary,
                Option<crate::payloads::PayloadRef>,
            )>,
        >,
    > {
        flows::flows_steps(&self.db, team_id, flow_ids).await
    }

    async fn step_payload(
        &self,
        team_id: i64,
        flow_id: Uuid,
        seq: u32,
    ) -> Result<Option<StepPayload>> {
        flows::step_payload(&self.db, team_id, flow_id, seq).await
    }
}
