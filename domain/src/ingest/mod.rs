//! Ingest: how a flow record or a steps push becomes a durable queue job, and how a queued
//! job becomes stored payloads, flow and steps. The HTTP handlers (native and, later, OTLP)
//! and the ingest processor only call in.
//!
//! - [`parse`]: JSON syntax, schema, nesting bound;
//! - [`validate`]: the rules a record must follow ([`Limits`]);
//! - [`queue`]: the durable queue's contract ([`IngestQueue`]) and group commit;
//! - [`processor`]: the background loop that stores queued jobs (the `flowtrail worker`
//!   command and `serve` run it).

pub mod parse;
pub mod processor;
pub mod queue;
pub mod validate;

use flowtrail_types::{FlowRecord, StepsPush};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use parse::{MAX_DEPTH, is_kept_exactly, parse_body, parse_flow};
pub(crate) use queue::GroupCommit;
pub use queue::{DeadLetter, EnqueueOutcome, IngestQueue, Job, JobUsage, NewJob};
pub use validate::{Limits, MAX_COUNT, validate};

use crate::flows::{FlowWrite, StepPayloads, UpsertOutcome, WriteMode};
use crate::payloads::PayloadStore;
use crate::{Error, Result, Services};

/// The answer to an accepted (or replayed) flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub flow_id: Uuid,
    /// The same key and body had already been accepted.
    pub replayed: bool,
}

/// Validates a flow record and enqueues it durably. `body` is the uncompressed JSON.
pub async fn submit(
    services: &Services,
    team_id: i64,
    idempotency_key: Option<&str>,
    body: &[u8],
    request_id: Option<&str>,
) -> Result<Accepted> {
    let job = prepare(&services.limits, team_id, idempotency_key, body, request_id)?;
    enqueue(services, job).await
}

/// Parses and validates a flow record and makes it a queue job (CPU only, no I/O), so the
/// caller knows the idempotency key before anything is stored.
pub fn prepare(
    limits: &Limits,
    team_id: i64,
    idempotency_key: Option<&str>,
    body: &[u8],
    request_id: Option<&str>,
) -> Result<NewJob> {
    let flow = parse_flow(body)?;
    validate(&flow, limits)?;
    let idempotency_key = match idempotency_key {
        Some(key) => key.to_string(),
        None => format!("{}:{}", flow.id, flow.version),
    };
    let job = NewJob {
        team_id,
        idempotency_key,
        body_sha256: hex::encode(Sha256::digest(body)),
        flow_id: flow.id,
        flow_version: flow.version,
        body: zstd::bulk::compress(body, 1)?,
        request_id: request_id.map(str::to_string),
        mode: WriteMode::Replace,
        usage: queue::JobUsage::of(&flow, true, body.len()),
    };
    Ok(job)
}

/// How jobs queued before the job's `mode` existed marked a steps push: their body started
/// with this and ended with `}`. Still read, so such jobs are not lost on upgrade.
const LEGACY_MERGE_PREFIX: &[u8] = br#"{"merge_steps":"#;

/// Parses and validates a steps push for flow `flow_id` (`POST /api/v1/flows/{id}/steps`)
/// and makes it a queue job. The default idempotency key names the flow, the version and the
/// pushed steps, so a retried push is accepted once.
pub fn prepare_steps(
    limits: &Limits,
    team_id: i64,
    flow_id: Uuid,
    idempotency_key: Option<&str>,
    body: &[u8],
    request_id: Option<&str>,
) -> Result<NewJob> {
    let push: StepsPush = parse_body(body)?;
    if push.id.is_some_and(|id| id != flow_id) {
        return Err(Error::invalid(
            "id",
            format!("id does not match the flow id in the path ({flow_id})"),
        ));
    }
    if push.steps.is_empty() {
        return Err(Error::invalid(
            "steps",
            "a steps push carries at least one step",
        ));
    }
    let flow = push.into_record(flow_id);
    validate(&flow, limits)?;
    let idempotency_key = match idempotency_key {
        Some(key) => key.to_string(),
        None => {
            let seqs: Vec<String> = flow.steps.iter().map(|s| s.seq.to_string()).collect();
            format!("{}:{}:steps:{}", flow.id, flow.version, seqs.join(","))
        }
    };
    let mut digest = Sha256::new();
    digest.update(flow_id.as_bytes());
    digest.update(body);
    let record = serde_json::to_vec(&flow).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(NewJob {
        team_id,
        idempotency_key,
        body_sha256: hex::encode(digest.finalize()),
        flow_id: flow.id,
        flow_version: flow.version,
        body: zstd::bulk::compress(&record, 1)?,
        request_id: request_id.map(str::to_string),
        mode: WriteMode::MergeSteps,
        usage: queue::JobUsage::of(&flow, false, body.len()),
    })
}

/// Enqueues a prepared job durably; answers once it is committed.
pub async fn enqueue(services: &Services, job: NewJob) -> Result<Accepted> {
    let flow_id = job.flow_id;
    // Without an `Idempotency-Key` header the key is derived from the flow's id and version.
    let implicit = job
        .idempotency_key
        .starts_with(&format!("{}:{}", job.flow_id, job.flow_version));
    let reused = if implicit {
        format!(
            "flow {} version {} was already accepted with a different body; send a changed \
             flow with a higher version",
            job.flow_id, job.flow_version
        )
    } else {
        "this Idempotency-Key was already used with a different body; use a new key".to_string()
    };
    match services.queue.enqueue(job).await? {
        EnqueueOutcome::Accepted => Ok(Accepted {
            flow_id,
            replayed: false,
        }),
        EnqueueOutcome::Replayed => Ok(Accepted {
            flow_id,
            replayed: true,
        }),
        EnqueueOutcome::KeyReused => Err(Error::IdempotencyKeyReused(reused)),
    }
}

/// A dead job with a summary of its body, for an admin deciding to redrive or discard it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
    /// Size of the body as received (uncompressed JSON).
    pub body_bytes: u64,
    /// Whether the body reads as a flow record (or a steps push, or a batch of OTLP spans);
    /// when not, redriving it fails again and only discarding helps.
    pub readable: bool,
    /// From the body when readable: its pipeline (empty for a steps push), steps and
    /// observations.
    pub pipeline: Option<String>,
    pub steps: Option<u64>,
    pub observations: Option<u64>,
    /// The body's first 2,000 characters (invalid UTF-8 shown as U+FFFD).
    pub excerpt: String,
}

/// Characters of a dead job's body shown in its detail.
const EXCERPT_CHARS: usize = 2_000;

impl Services {
    /// Dead job `job_id` of the team with a summary of its body. Errors: not found.
    pub async fn dead_letter(&self, team_id: i64, job_id: i64) -> Result<DeadLetterDetail> {
        let body = self
            .queue
            .dead_letter_body(Some(team_id), job_id)
            .await?
            .ok_or(Error::NotFound("dead job"))?;
        let dead_letter = self
            .queue
            .dead_letters(Some(team_id), u32::MAX)
            .await?
            .into_iter()
            .find(|d| d.id == job_id)
            .ok_or(Error::NotFound("dead job"))?;
        let json = zstd::stream::decode_all(body.as_slice()).unwrap_or(body);
        let json = json
            .strip_prefix(LEGACY_MERGE_PREFIX)
            .and_then(|rest| rest.strip_suffix(b"}"))
            .unwrap_or(&json);
        // A flow record or steps push; or OTLP spans of one trace (`WriteMode::Spans`).
        let record: Option<FlowRecord> = serde_json::from_slice(json).ok().or_else(|| {
            serde_json::from_slice::<crate::otlp::SpanBatch>(json)
                .ok()
                .map(|batch| batch.provisional_record())
        });
        Ok(DeadLetterDetail {
            dead_letter,
            body_bytes: json.len() as u64,
            readable: record.is_some(),
            pipeline: record.as_ref().map(|r| r.pipeline.clone()),
            steps: record.as_ref().map(|r| r.steps.len() as u64),
            observations: record
                .as_ref()
                .map(|r| r.steps.iter().map(|s| s.observations.len() as u64).sum()),
            excerpt: String::from_utf8_lossy(json)
                .chars()
                .take(EXCERPT_CHARS)
                .collect(),
        })
    }

    /// Deletes dead job `job_id` of the team. Errors: not found.
    pub async fn discard_dead_letter(&self, team_id: i64, job_id: i64) -> Result<()> {
        if !self.queue.discard(Some(team_id), job_id).await? {
            return Err(Error::NotFound("dead job"));
        }
        Ok(())
    }
}

/// Turns one queued job into stored payloads, flow and steps. Safe to run twice.
pub async fn store_job(services: &Services, job: &Job) -> Result<UpsertOutcome> {
    let (flow, payloads, mode) = load_job(services, job).await?;
    let write = FlowWrite {
        team_id: job.team_id,
        flow: &flow,
        payloads: &payloads,
        mode,
        imported: false,
    };
    let outcomes = services
        .metadata
        .upsert_flows(std::slice::from_ref(&write))
        .await?;
    Ok(outcomes.into_iter().next().unwrap_or(UpsertOutcome::Stale))
}

/// Decodes a queued job and stores its observation payloads; what remains is the SQL write,
/// which the worker does for a whole batch at once.
pub async fn load_job(
    services: &Services,
    job: &Job,
) -> Result<(FlowRecord, StepPayloads, WriteMode)> {
    let body = zstd::stream::decode_all(job.body.as_slice()).map_err(|e| Error::Malformed {
        message: format!("queued body does not decompress: {e}"),
    })?;
    // Validated at ingest: no depth scan or path tracking needed.
    let (record, mode) = match body.strip_prefix(LEGACY_MERGE_PREFIX) {
        Some(rest) => (
            rest.strip_suffix(b"}").ok_or_else(|| Error::Malformed {
                message: "queued steps push is truncated".into(),
            })?,
            WriteMode::MergeSteps,
        ),
        None => (body.as_slice(), job.mode),
    };
    let flow = serde_json::from_slice(record);
    let flow: FlowRecord = flow.map_err(|e| Error::Malformed {
        message: format!("queued body is not a flow record: {e}"),
    })?;
    let mut payloads = StepPayloads::new();
    for step in flow.steps.iter().filter(|s| !s.observations.is_empty()) {
        let encoded = PayloadStore::encode(
            job.team_id,
            flow.id,
            flow.version,
            step.seq,
            &step.observations,
        )?;
        payloads.insert(step.seq, services.payloads.put(&encoded).await?);
    }
    Ok((flow, payloads, mode))
}
