//! Retention: a team's policy, its preview, pins, the sweeper that deletes expired flows
//! everywhere they live, and the storage check that proves nothing was left behind.
//!
//! How deletion stays crash-safe (no orphan object, no row pointing at a deleted object):
//! one transaction deletes a batch of flows' rows and, in the same transaction, queues the
//! object keys their steps referred to (`payload_deletions`); only after it commits are the
//! objects deleted (and dropped from the payload caches), then the queue rows. A crash
//! anywhere leaves either the rows (the flows are still whole) or queued keys (the next sweep
//! deletes those objects first). A replaced version's objects go through the same queue.
//! A queued key that a step row refers to again (a flow re-sent with the same content) is
//! never deleted.

pub mod store;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use flowtrail_types::admin::{
    MAX_RETENTION_DAYS, MAX_RETENTION_OVERRIDES, PipelinePreview, RetentionPolicy,
    RetentionPreview, RetentionState,
};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::millis::{from_ms, now_ms};
use crate::{Error, Result, Services};
pub use store::{Deleted, DeletedBatch, RetentionStore, UsageDelta};

/// When this process's sweeper runs (what `GET /api/v1/admin/retention` shows).
#[derive(Debug, Default)]
pub struct RetentionSchedule {
    /// Seconds between sweeps; 0 while no sweeper runs in this process.
    interval_seconds: AtomicU64,
    /// Unix ms of the next sweep; 0 when none is planned.
    next_run_ms: AtomicI64,
}

impl RetentionSchedule {
    fn plan(&self, interval: Duration, next_ms: i64) {
        self.interval_seconds
            .store(interval.as_secs(), Ordering::Relaxed);
        self.next_run_ms.store(next_ms, Ordering::Relaxed);
    }
}

/// One day in milliseconds (policies count days since a flow started).
pub const DAY_MS: i64 = 86_400_000;

/// The lease one sweeper per deployment holds while it runs.
const LEASE: &str = "retention";

/// How a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Most flows deleted per transaction. The sweep shrinks its batches while one takes
    /// longer than [`SweepOptions::hold`], and grows them back up to this.
    pub batch: u32,
    /// Longest a batch should hold the database's write lock.
    pub hold: Duration,
    /// Least pause between batches. The sweep also pauses at least as long as its last batch
    /// took, so it never has the write lock more than half of the time and ingest (which
    /// waits for that lock on SQLite) always gets in between two batches.
    pub pause: Duration,
    /// How long the sweeper's lease lasts without renewal (renewed every batch).
    pub lease: Duration,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            batch: 500,
            hold: Duration::from_millis(50),
            pause: Duration::from_millis(50),
            lease: Duration::from_secs(60),
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Flows deleted (and their payload bytes).
    pub deleted: Deleted,
    /// Objects deleted from the object store (queued by this sweep or an earlier one).
    pub objects: u64,
    /// `false` when another sweeper held the lease, so this one did nothing.
    pub ran: bool,
}

/// What the storage check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StorageReport {
    /// Objects no step row refers to, older than [`RECENT_OBJECT`].
    pub orphan_objects: Vec<String>,
    /// Object keys step rows refer to that the object store does not have.
    pub missing_objects: Vec<String>,
    /// Unreferenced objects younger than [`RECENT_OBJECT`]: an ingest in progress writes
    /// its objects before its rows, so these are not (yet) orphans.
    pub recent_unreferenced: u64,
    /// Objects in the store, and keys queued for deletion.
    pub objects: u64,
    pub queued_deletions: u64,
}

impl StorageReport {
    /// Whether the store and the rows agree.
    pub fn is_clean(&self) -> bool {
        self.orphan_objects.is_empty() && self.missing_objects.is_empty()
    }
}

/// How old an unreferenced object must be to count as an orphan: longer than an ingest job
/// takes between writing its objects and committing its rows, retries included.
pub const RECENT_OBJECT: Duration = Duration::from_secs(15 * 60);

/// `YYYY-MM-DD` of the UTC day starting at `day_ms`.
pub fn day_label(day_ms: i64) -> String {
    let date = from_ms(day_ms).date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The UTC midnight starting the day `ms` falls in.
pub fn day_floor(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// Checks a policy: days from 1 to [`MAX_RETENTION_DAYS`], pipeline names non-empty and at
/// most 200 characters. Errors name the field (`default_days`, `pipelines.<name>`).
pub fn validate_policy(policy: &RetentionPolicy) -> Result<()> {
    let check = |field: String, days: Option<u32>| match days {
        Some(d) if d == 0 || d > MAX_RETENTION_DAYS => Err(Error::invalid(
            field,
            format!("days are a whole number from 1 to {MAX_RETENTION_DAYS}, or null to keep"),
        )),
        _ => Ok(()),
    };
    check("default_days".into(), policy.default_days)?;
    if policy.pipelines.len() > MAX_RETENTION_OVERRIDES {
        return Err(Error::invalid(
            "pipelines",
            format!("at most {MAX_RETENTION_OVERRIDES} pipeline overrides"),
        ));
    }
    for (pipeline, days) in &policy.pipelines {
        if pipeline.trim().is_empty()
            || pipeline.chars().count() > 200
            || pipeline.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "pipelines",
                "pipeline names have 1 to 200 characters, without control characters",
            ));
        }
        check(format!("pipelines.{pipeline}"), *days)?;
    }
    Ok(())
}

/// The smallest batch: a commit costs about as much as deleting a few flows, so smaller
/// batches would only slow the sweep.
const LEAST_BATCH: u32 = 10;

/// The size of the next batch after one of `batch` flows held the write lock for `held`:
/// halved while over `hold` (down to [`LEAST_BATCH`], or `most` when smaller), grown by half
/// while under half of it (up to `most`).
fn next_batch(batch: u32, most: u32, held: Duration, hold: Duration) -> u32 {
    if held > hold {
        (batch / 2).max(LEAST_BATCH.min(most))
    } else if held < hold / 2 {
        (batch + batch / 2 + 1).min(most)
    } else {
        batch
    }
}

/// Fault injection for the crash tests: whether `FLOWTRAIL_FAULT` names `point` (read each
/// time: tests set it per process). Points: `sweep_after_commit` (here) and
/// `processor_panic` (`ingest::processor`).
pub(crate) fn fault_injected(point: &str) -> bool {
    std::env::var("FLOWTRAIL_FAULT").is_ok_and(|v| v == point)
}

/// The cutoff (Unix ms) of `days` at `now_ms`: flows that started before it are expired.
fn cutoff(now_ms: i64, days: u32) -> i64 {
    now_ms.saturating_sub(i64::from(days) * DAY_MS)
}

impl Services {
    /// The team's retention policy.
    pub async fn retention_policy(&self, team_id: i64) -> Result<RetentionPolicy> {
        self.metadata.retention_policy(team_id).await
    }

    /// Validates and saves the team's policy ([`validate_policy`]); the next sweep applies it.
    pub async fn set_retention_policy(&self, team_id: i64, policy: &RetentionPolicy) -> Result<()> {
        validate_policy(policy)?;
        self.metadata.set_retention_policy(team_id, policy).await
    }

    /// What `policy` would delete from the team now: flows and bytes per pipeline (only
    /// those losing any), and the oldest flow start kept. The sweep deletes exactly these
    /// (counted with the same statements' conditions), less what is pinned meanwhile.
    pub async fn preview_retention(
        &self,
        team_id: i64,
        policy: &RetentionPolicy,
    ) -> Result<RetentionPreview> {
        validate_policy(policy)?;
        let now = now_ms();
        let mut preview = RetentionPreview {
            flows: 0,
            bytes: 0,
            pipelines: Vec::new(),
            oldest_kept: None,
        };
        let mut oldest: Option<i64> = None;
        for (pipeline_id, name) in self.metadata.pipelines(team_id).await? {
            let cut = policy.days_for(&name).map(|days| cutoff(now, days));
            if let Some(cut) = cut {
                let expired = self.metadata.expired(team_id, pipeline_id, cut).await?;
                if expired.flows > 0 {
                    preview.flows += expired.flows;
                    preview.bytes += expired.bytes;
                    preview.pipelines.push(PipelinePreview {
                        pipeline: name,
                        flows: expired.flows,
                        bytes: expired.bytes,
                    });
                }
            }
            if let Some(kept) = self.metadata.oldest_kept(team_id, pipeline_id, cut).await? {
                oldest = Some(oldest.map_or(kept, |o| o.min(kept)));
            }
        }
        preview.oldest_kept = oldest.map(from_ms);
        Ok(preview)
    }

    /// The team's policy, when this process sweeps next, and the team's last 20 runs.
    pub async fn retention_state(&self, team_id: i64) -> Result<RetentionState> {
        let next = self.retention_schedule.next_run_ms.load(Ordering::Relaxed);
        Ok(RetentionState {
            policy: self.metadata.retention_policy(team_id).await?,
            interval_seconds: self
                .retention_schedule
                .interval_seconds
                .load(Ordering::Relaxed),
            next_run_at: (next > 0).then(|| from_ms(next)),
            runs: self.metadata.runs(team_id, 20).await?,
        })
    }

    /// Sweeps every `interval` until `shutdown` says so (the first sweep one interval after
    /// the start). Failures are logged and retried at the next interval; one sweeper of the
    /// deployment works at a time ([`Services::sweep`]).
    pub async fn run_sweeper(
        self: std::sync::Arc<Self>,
        interval: Duration,
        options: SweepOptions,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let interval = interval.max(Duration::from_secs(1));
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        loop {
            self.retention_schedule
                .plan(interval, now_ms().saturating_add(interval_ms));
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => break,
            }
            match self.sweep(&options).await {
                Ok(report) if report.ran => tracing::info!(
                    flows = report.deleted.flows,
                    bytes = report.deleted.bytes,
                    objects = report.objects,
                    "retention sweep done"
                ),
                Ok(_) => tracing::debug!("another sweeper holds the retention lease"),
                Err(error) => {
                    tracing::warn!(%error, "retention sweep failed; retried next interval")
                }
            }
        }
        self.retention_schedule.plan(Duration::ZERO, 0);
    }

    /// Pins (`true`) or unpins a flow of the team. Errors: not found.
    pub async fn set_pinned(&self, team_id: i64, flow_id: uuid::Uuid, pinned: bool) -> Result<()> {
        let id = flow_id.hyphenated().to_string();
        if !self.metadata.set_pinned(team_id, &id, pinned).await? {
            return Err(Error::NotFound("flow"));
        }
        Ok(())
    }

    /// One retention sweep over every team with a policy, unless another sweeper of the
    /// deployment holds the lease (then `ran` is false). First finishes the object
    /// deletions an earlier (perhaps killed) sweep or a replaced version queued.
    pub async fn sweep(&self, options: &SweepOptions) -> Result<SweepReport> {
        let holder = uuid::Uuid::now_v7().to_string();
        let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX);
        let mut report = SweepReport::default();
        if !self
            .metadata
            .acquire_lease(LEASE, &holder, now_ms() + lease_ms)
            .await?
        {
            return Ok(report);
        }
        report.ran = true;
        let result = self
            .sweep_held(options, &holder, lease_ms, &mut report)
            .await;
        let released = self.metadata.release_lease(LEASE, &holder).await;
        result?;
        released?;
        Ok(report)
    }

    async fn sweep_held(
        &self,
        options: &SweepOptions,
        holder: &str,
        lease_ms: i64,
        report: &mut SweepReport,
    ) -> Result<()> {
        report.objects += self.delete_queued_objects().await?;
        for team_id in self.metadata.teams_with_retention().await? {
            let policy = self.metadata.retention_policy(team_id).await?;
            let started = now_ms();
            let run = self.metadata.start_run(team_id, started).await?;
            let mut team = Deleted::default();
            for (pipeline_id, name) in self.metadata.pipelines(team_id).await? {
                let Some(days) = policy.days_for(&name) else {
                    continue;
                };
                let cut = cutoff(started, days);
                let most = options.batch.max(1);
                let mut batch = most;
                loop {
                    let ids = self
                        .metadata
                        .expired_batch(team_id, pipeline_id, cut, batch)
                        .await?;
                    if ids.is_empty() {
                        break;
                    }
                    let DeletedBatch { deleted, held } =
                        self.metadata.delete_flows(team_id, &ids).await?;
                    batch = next_batch(batch, most, held, options.hold);
                    if fault_injected("sweep_after_commit") {
                        // As a kill -9 between the rows' commit and the objects' deletion.
                        std::process::abort();
                    }
                    team.flows += deleted.flows;
                    team.bytes += deleted.bytes;
                    self.metadata.update_run(run, team, None).await?;
                    report.objects += self.delete_queued_objects().await?;
                    if !self
                        .metadata
                        .acquire_lease(LEASE, holder, now_ms() + lease_ms)
                        .await?
                    {
                        return Err(Error::Conflict(
                            "the retention lease was lost; another sweeper goes on".into(),
                        ));
                    }
                    if deleted.flows == 0 {
                        // Every flow of the batch was locked by ingest or pinned meanwhile.
                        break;
                    }
                    tokio::time::sleep(options.pause.max(held)).await;
                }
            }
            self.metadata.update_run(run, team, Some(now_ms())).await?;
            report.deleted.flows += team.flows;
            report.deleted.bytes += team.bytes;
        }
        Ok(())
    }

    /// Deletes the queued objects no step row refers to, then their queue rows; how many
    /// objects were deleted.
    async fn delete_queued_objects(&self) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let keys = self.metadata.payload_deletions(1_000).await?;
            if keys.is_empty() {
                return Ok(deleted);
            }
            let kept: HashSet<String> = self
                .metadata
                .referenced_payload_keys(&keys)
                .await?
                .into_iter()
                .collect();
            for key in keys.iter().filter(|k| !kept.contains(*k)) {
                self.payloads.delete(key).await?;
                deleted += 1;
            }
            self.metadata.forget_payload_deletions(&keys).await?;
        }
    }

    /// Compares the object store with the rows: orphan objects (no row refers to them) and
    /// missing ones (a row refers to them, the store has none). Lists every object.
    pub async fn check_storage(&self) -> Result<StorageReport> {
        // Rows first, then the listing: an object written meanwhile is at worst "recent".
        let referenced: HashSet<String> = self
            .metadata
            .all_payload_keys()
            .await?
            .into_iter()
            .collect();
        let queued = self.metadata.payload_deletions(u32::MAX).await?.len() as u64;
        let objects = self.payloads.list().await?;
        let recent = OffsetDateTime::now_utc() - RECENT_OBJECT;
        let mut report = StorageReport {
            objects: objects.len() as u64,
            queued_deletions: queued,
            ..StorageReport::default()
        };
        let present: HashSet<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
        for (key, modified) in &objects {
            if referenced.contains(key) {
                continue;
            }
            if *modified > recent {
                report.recent_unreferenced += 1;
            } else {
                report.orphan_objects.push(key.clone());
            }
        }
        report.missing_objects = referenced
            .iter()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        report.orphan_objects.sort();
        report.missing_objects.sort();
        Ok(report)
    }

    /// [`Services::check_storage`], then deletes its orphan objects that still no step row
    /// refers to (one written again meanwhile — a retried ingest — is kept). Answers the
    /// report it acted on and the keys deleted. Errors: the database's or the object store's.
    pub async fn delete_orphans(&self) -> Result<(StorageReport, HashSet<String>)> {
        let report = self.check_storage().await?;
        let mut deleted = HashSet::new();
        for keys in report.orphan_objects.chunks(1_000) {
            let kept: HashSet<String> = self
                .metadata
                .referenced_payload_keys(keys)
                .await?
                .into_iter()
                .collect();
            for key in keys.iter().filter(|key| !kept.contains(*key)) {
                self.payloads.delete(key).await?;
                deleted.insert(key.clone());
            }
        }
        Ok((report, deleted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_label_utc_midnights() {
        assert_eq!(day_label(0), "1970-01-01");
        assert_eq!(day_floor(DAY_MS + 5), DAY_MS);
        assert_eq!(day_floor(-1), -DAY_MS);
        assert_eq!(day_label(day_floor(-1)), "1969-12-31");
    }

    #[test]
    fn batches_shrink_while_they_hold_the_lock_too_long_and_grow_back() {
        let hold = Duration::from_millis(50);
        assert_eq!(next_batch(500, 500, Duration::from_millis(400), hold), 250);
        assert_eq!(next_batch(12, 500, Duration::from_secs(1), hold), 10);
        assert_eq!(next_batch(4, 4, Duration::from_secs(1), hold), 4);
        assert_eq!(next_batch(100, 500, Duration::from_millis(40), hold), 100);
        assert_eq!(next_batch(100, 500, Duration::from_millis(10), hold), 151);
        assert_eq!(next_batch(400, 500, Duration::ZERO, hold), 500);
    }

    #[test]
    fn policies_are_checked_and_name_the_field() {
        let mut policy = RetentionPolicy {
            default_days: Some(0),
            ..RetentionPolicy::default()
        };
        let err = validate_policy(&policy).unwrap_err();
        assert!(format!("{err:?}").contains("default_days"), "{err:?}");
        policy.default_days = Some(30);
        policy
            .pipelines
            .insert("ranker".into(), Some(MAX_RETENTION_DAYS + 1));
        let err = validate_policy(&policy).unwrap_err();
        assert!(format!("{err:?}").contains("pipelines.ranker"), "{err:?}");
        policy.pipelines.insert("ranker".into(), None);
        assert!(validate_policy(&policy).is_ok());
        assert_eq!(policy.days_for("ranker"), None);
        assert_eq!(policy.days_for("other"), Some(30));
    }
}
