//! The ingest processor: claims queued jobs in batches and stores them (what `flowtrail
//! worker` and `flowtrail serve` run in the background).
//!
//! Errors are sorted once: transient ones (an engine down or busy) are retried with
//! exponential backoff and full jitter; permanent ones (invalid data, a checksum mismatch) go
//! to the dead-letter queue at once, as does a job that keeps failing past `max_attempts`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tracing::Instrument;

use std::collections::BTreeMap;

use flowtrail_types::FlowRecord;
use uuid::Uuid;

use super::{Job, load_job};
use crate::events::FlowLanded;
use crate::flows::{FlowWrite, StepPayloads, UpsertOutcome, WriteMode};
use crate::millis::now_ms;
use crate::retention::fault_injected;
use crate::{Services, otlp};

/// How the processor behaves.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Jobs claimed at once.
    pub batch: usize,
    /// How long a claimed job is ours before another processor may take it.
    pub lease: Duration,
    /// Attempts before a transiently failing job is declared dead.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Longest idle wait between polls of the queue.
    pub idle_poll: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            batch: 32,
            lease: Duration::from_secs(30),
            max_attempts: 10,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            idle_poll: Duration::from_millis(500),
        }
    }
}

/// Runs until `shutdown` turns true; finishes the batch in hand first.
pub async fn run(
    services: Arc<Services>,
    config: ProcessorConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(batch = config.batch, "ingest processor started");
    while !*shutdown.borrow() {
        let jobs = match services.queue.claim(config.batch, config.lease).await {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, "could not claim jobs; will retry");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = services.queue.wait_for_jobs(config.idle_poll) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        contained(&services, &config, jobs).await;
    }
    tracing::info!("ingest processor stopped");
}

/// [`process_batch`], with a panic contained: a flow that makes processing panic (a defect,
/// which would repeat on every attempt) must not stop the worker and so every flow queued
/// behind it. The batch's transaction was rolled back with the panic, so its jobs are
/// processed again one by one; a job that panics alone goes to the dead-letter queue with
/// the panic's message, and the others are stored.
async fn contained(services: &Services, config: &ProcessorConfig, jobs: Vec<Job>) {
    use futures::FutureExt;
    let batch = jobs.clone();
    let Err(panic) = std::panic::AssertUnwindSafe(process_batch(services, config, jobs))
        .catch_unwind()
        .await
    else {
        return;
    };
    tracing::error!(jobs = batch.len(), panic = %panic_message(&*panic), "processing panicked; each job of the batch alone");
    // The span batches of one trace are assembled together: they stay together.
    let mut groups: BTreeMap<(i64, Uuid), Vec<Job>> = BTreeMap::new();
    let mut alone = Vec::new();
    for job in batch {
        if job.mode == WriteMode::Spans {
            groups
                .entry((job.team_id, job.flow_id))
                .or_default()
                .push(job);
        } else {
            alone.push(vec![job]);
        }
    }
    for group in alone.into_iter().chain(groups.into_values()) {
        let Err(panic) =
            std::panic::AssertUnwindSafe(process_batch(services, config, group.clone()))
                .catch_unwind()
                .await
        else {
            continue;
        };
        let error = format!("processing panicked: {}", panic_message(&*panic));
        for job in &group {
            tracing::error!(%error, "failed for good; moved to the dead-letter queue");
            if let Err(error) = services.queue.bury(job, &error).await {
                tracing::warn!(%error, "could not record the job's outcome");
            }
        }
    }
}

/// The message of a caught panic (`panic!` with a literal or a formatted message).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_string(),
        (_, Some(text)) => text.clone(),
        _ => "a panic without a message".to_string(),
    }
}

/// Fault injection for the poison test (`server/tests/crash.rs`): with
/// `FLOWTRAIL_FAULT=processor_panic`, processing a flow of this pipeline panics.
const POISON: &str = "flowtrail_fault_poison";

fn job_span(job: &Job) -> tracing::Span {
    tracing::info_span!(
        "ingest_job",
        job_id = job.id,
        flow_id = %job.flow_id,
        request_id = job.request_id.as_deref().unwrap_or("-"),
        attempt = job.attempts,
    )
}

/// Prepares every job of a batch (payloads stored; the span batches of one trace assembled
/// together), then writes all their flows in one transaction and marks them done in
/// another: two commits per batch, not two per flow.
async fn process_batch(services: &Services, config: &ProcessorConfig, jobs: Vec<Job>) {
    let mut ready: Vec<(Vec<Job>, FlowRecord, StepPayloads, WriteMode)> =
        Vec::with_capacity(jobs.len());
    let mut traces: BTreeMap<(i64, Uuid), Vec<Job>> = BTreeMap::new();
    for job in jobs {
        if job.mode == WriteMode::Spans {
            traces
                .entry((job.team_id, job.flow_id))
                .or_default()
                .push(job);
            continue;
        }
        let span = job_span(&job);
        match load_job(services, &job).instrument(span.clone()).await {
            Ok((flow, ..)) if fault_injected("processor_panic") && flow.pipeline == POISON => {
                panic!("injected fault: a flow of pipeline {POISON} panics the processor")
            }
            Ok((flow, payloads, mode)) => ready.push((vec![job], flow, payloads, mode)),
            Err(error) => fail(services, config, &job, &error).instrument(span).await,
        }
    }
    // Jobs done without a write: span batches that change nothing (stored before).
    let mut unchanged = Vec::new();
    for ((team_id, flow_id), jobs) in traces {
        match assemble_trace(services, team_id, flow_id, &jobs).await {
            Ok(Some(assembled)) => {
                ready.push((jobs, assembled.flow, assembled.payloads, WriteMode::Spans))
            }
            Ok(None) => unchanged.extend(jobs.iter().map(|job| job.id)),
            Err(error) => fail_all(services, config, &jobs, &error).await,
        }
    }
    if ready.is_empty() {
        complete(services, &unchanged).await;
        return;
    }
    let writes: Vec<FlowWrite<'_>> = ready
        .iter()
        .map(|(jobs, flow, payloads, mode)| FlowWrite {
            team_id: jobs[0].team_id,
            flow,
            payloads,
            mode: *mode,
            imported: false,
        })
        .collect();
    let outcomes: Vec<Option<UpsertOutcome>> = match services.metadata.upsert_flows(&writes).await {
        Ok(outcomes) => outcomes.into_iter().map(Some).collect(),
        // The database refused a statement of the batch: one flow may be the cause. Each flow
        // is written alone, so the others are stored now and only a failing one is retried
        // (or dead-lettered) — one team's bad flow never delays another team's.
        Err(error) if error.is_statement_error() && writes.len() > 1 => {
            tracing::warn!(%error, flows = writes.len(), "batch refused; writing its flows one by one");
            let mut outcomes = Vec::with_capacity(writes.len());
            for (write, (jobs, ..)) in writes.iter().zip(&ready) {
                match services
                    .metadata
                    .upsert_flows(std::slice::from_ref(write))
                    .await
                {
                    Ok(mut alone) => outcomes.push(alone.pop()),
                    Err(error) => {
                        fail_all(services, config, jobs, &error).await;
                        outcomes.push(None);
                    }
                }
            }
            outcomes
        }
        Err(error) => {
            for job in ready.iter().flat_map(|(jobs, ..)| jobs) {
                fail(services, config, job, &error)
                    .instrument(job_span(job))
                    .await;
            }
            return;
        }
    };
    // An assembled write that found another version than its own is assembled again soon.
    for ((jobs, ..), outcome) in ready.iter().zip(&outcomes) {
        if matches!(outcome, Some(UpsertOutcome::Conflict)) {
            for job in jobs {
                let delay = backoff(config, job.attempts).min(Duration::from_millis(200));
                if let Err(error) = services
                    .queue
                    .retry(job, "assembled concurrently; again", delay)
                    .await
                {
                    tracing::warn!(%error, "could not schedule the job again");
                }
            }
        }
    }
    // Jobs whose flow was written (or found stale) are done; failed ones were set aside.
    let ids: Vec<i64> = ready
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| {
            outcome
                .as_ref()
                .is_some_and(|o| !matches!(o, UpsertOutcome::Conflict))
        })
        .flat_map(|((jobs, ..), _)| jobs.iter().map(|job| job.id))
        .chain(unchanged)
        .collect();
    complete(services, &ids).await;
    let landed: Vec<FlowLanded> = ready
        .iter()
        .zip(outcomes)
        .filter_map(|((jobs, ..), outcome)| match outcome? {
            UpsertOutcome::Written(summary) => Some(FlowLanded {
                team_id: jobs[0].team_id,
                flow: *summary,
            }),
            UpsertOutcome::Stale | UpsertOutcome::Conflict => None,
        })
        .collect();
    services.events.publish(landed).await;
}

/// Marks jobs done.
async fn complete(services: &Services, ids: &[i64]) {
    if ids.is_empty() {
        return;
    }
    match services.queue.complete_many(ids).await {
        Ok(()) => tracing::debug!(jobs = ids.len(), "batch stored"),
        // The leases expire and the jobs are claimed again: nothing is lost, and storing
        // them again has no visible effect.
        Err(error) => tracing::warn!(%error, jobs = ids.len(), "could not mark the batch done"),
    }
}

/// Loads the span batches of one trace (in queue order) and assembles them with the stored
/// flow.
async fn assemble_trace(
    services: &Services,
    team_id: i64,
    flow_id: Uuid,
    jobs: &[Job],
) -> crate::Result<Option<otlp::assemble::Assembled>> {
    let mut batches = Vec::with_capacity(jobs.len());
    for job in jobs {
        batches.push(otlp::load(services, job).instrument(job_span(job)).await?);
    }
    otlp::assemble(services, team_id, flow_id, &batches).await
}

/// [`fail`] for every job of one write (the span batches of a trace share theirs).
async fn fail_all(
    services: &Services,
    config: &ProcessorConfig,
    jobs: &[Job],
    error: &crate::Error,
) {
    for job in jobs {
        fail(services, config, job, error)
            .instrument(job_span(job))
            .await;
    }
}

async fn fail(services: &Services, config: &ProcessorConfig, job: &Job, error: &crate::Error) {
    // A full disk is nobody's flow's fault: retried until space is freed, whatever the
    // attempts (each retry still backs off, up to `backoff_max`).
    let transient = error.is_transient();
    let (full, error) = (error.is_storage_full(), error.to_string());
    let recorded = if transient && (job.attempts < config.max_attempts || full) {
        let delay = backoff(config, job.attempts);
        tracing::warn!(%error, ?delay, "transient failure; retrying");
        services.queue.retry(job, &error, delay).await
    } else {
        tracing::error!(%error, "failed for good; moved to the dead-letter queue");
        services.queue.bury(job, &error).await
    };
    if let Err(error) = recorded {
        tracing::warn!(%error, "could not record the job's outcome");
    }
}

/// Forgets idempotency keys of flows stored more than `window` ago, every `every`, until
/// `shutdown`. The database's uniqueness of (team, flow id, version) still holds afterwards.
pub async fn sweep_idempotency_keys(
    services: Arc<Services>,
    window: Duration,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let before_ms = now_ms() - window.as_millis() as i64;
        match services.queue.purge_done(before_ms).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "forgot expired idempotency keys"),
            Err(error) => tracing::warn!(%error, "could not purge expired idempotency keys"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(attempt-1))].
pub fn backoff(config: &ProcessorConfig, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let ceiling = config
        .backoff_base
        .saturating_mul(1u32 << exponent)
        .min(config.backoff_max);
    let millis = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = ProcessorConfig::default();
        for _ in 0..100 {
            assert!(backoff(&config, 1) <= Duration::from_millis(500));
            assert!(backoff(&config, 4) <= Duration::from_millis(4_000));
            assert!(backoff(&config, 40) <= config.backoff_max);
        }
        let late: u128 = (0..200).map(|_| backoff(&config, 8).as_millis()).sum();
        let early: u128 = (0..200).map(|_| backoff(&config, 1).as_millis()).sum();
        assert!(late > early * 4, "later attempts wait longer on average");
    }
}
