//! [`RetentionStore`]: what the retention sweeper, pins, the storage check and usage
//! counters need of the SQL database (one implementation for both engines,
//! `engines::sql::retention`).

use async_trait::async_trait;
use flowtrail_types::admin::{RetentionPolicy, RetentionRun, UsageRow};

use crate::Result;

/// Flows and payload bytes a batch of deletions removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    pub flows: u64,
    /// Stored (compressed) payload bytes of their steps, inline and in the object store.
    pub bytes: u64,
}

/// What one batch of deletions did, and how long its transaction held the write lock (from
/// the moment it had the lock to its commit: waiting for the lock is not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletedBatch {
    pub deleted: Deleted,
    pub held: std::time::Duration,
}

/// Counters to add to one team's usage on one UTC day for one pipeline (`""`: unknown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageDelta {
    pub team_id: i64,
    /// Unix ms of the UTC midnight starting the day.
    pub day: i64,
    pub pipeline: String,
    pub flows: u64,
    pub steps: u64,
    pub observations: u64,
    pub bytes: u64,
    pub rejected: u64,
    pub rate_limited: u64,
    pub replayed: u64,
}

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// The team's policy (no rows: keep everything).
    async fn retention_policy(&self, team_id: i64) -> Result<RetentionPolicy>;
    /// Replaces the team's policy in one transaction.
    async fn set_retention_policy(&self, team_id: i64, policy: &RetentionPolicy) -> Result<()>;
    /// Teams with any retention row.
    async fn teams_with_retention(&self) -> Result<Vec<i64>>;
    /// The team's pipelines: `(id, name)`.
    async fn pipelines(&self, team_id: i64) -> Result<Vec<(i64, String)>>;
    /// Unpinned flows of a pipeline that started before `cutoff_ms`, with their payload bytes.
    async fn expired(&self, team_id: i64, pipeline_id: i64, cutoff_ms: i64) -> Result<Deleted>;
    /// The earliest `started_at` of a flow of the pipeline that a cutoff keeps (pinned, or
    /// started at or after `cutoff_ms`; every flow when `None`).
    async fn oldest_kept(
        &self,
        team_id: i64,
        pipeline_id: i64,
        cutoff_ms: Option<i64>,
    ) -> Result<Option<i64>>;
    /// Up to `limit` ids of unpinned flows of the pipeline started before `cutoff_ms`,
    /// oldest first.
    async fn expired_batch(
        &self,
        team_id: i64,
        pipeline_id: i64,
        cutoff_ms: i64,
        limit: u32,
    ) -> Result<Vec<String>>;
    /// Deletes these flows of the team everywhere SQL keeps them (flow, steps, tags, search
    /// document and candidate index, reason-count rollups, idempotency keys) in one
    /// transaction, and queues their object-store payloads for deletion in the same one.
    /// Pinned flows are skipped.
    async fn delete_flows(&self, team_id: i64, flow_ids: &[String]) -> Result<DeletedBatch>;
    /// Up to `limit` object keys queued for deletion.
    async fn payload_deletions(&self, limit: u32) -> Result<Vec<String>>;
    /// Which of `keys` a step row refers to (those must stay).
    async fn referenced_payload_keys(&self, keys: &[String]) -> Result<Vec<String>>;
    /// Removes keys from the deletion queue.
    async fn forget_payload_deletions(&self, keys: &[String]) -> Result<()>;
    /// Every object-store key a step row refers to.
    async fn all_payload_keys(&self) -> Result<Vec<String>>;
    /// Takes or renews the lease `name` for `holder` until `until_ms`, unless another
    /// holder's lease is still running. Whether `holder` now holds it.
    async fn acquire_lease(&self, name: &str, holder: &str, until_ms: i64) -> Result<bool>;
    /// Gives the lease up (if `holder` has it).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// Records the start of a team's sweep; its id.
    async fn start_run(&self, team_id: i64, started_at: i64) -> Result<i64>;
    /// Records a run's progress (and its end, when `finished_at` is given).
    async fn update_run(
        &self,
        run_id: i64,
        deleted: Deleted,
        finished_at: Option<i64>,
    ) -> Result<()>;
    /// The team's newest runs.
    async fn runs(&self, team_id: i64, limit: u32) -> Result<Vec<RetentionRun>>;
    /// Pins or unpins a flow; whether the team has it.
    async fn set_pinned(&self, team_id: i64, flow_id: &str, pinned: bool) -> Result<bool>;
    /// Adds counters to the daily usage rows.
    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<()>;
    /// The team's usage rows for days in `[since_day, until_day]` (Unix ms of midnights).
    async fn usage(&self, team_id: i64, since_day: i64, until_day: i64) -> Result<Vec<UsageRow>>;
}
