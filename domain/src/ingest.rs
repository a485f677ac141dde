//! Ingest rules: what a flow record must look like, how it is queued, and how a queued job
//! becomes stored flows, steps and payloads. The HTTP handlers and the workers only call in.

use std::collections::HashSet;

use flowtrail_types::{FlowRecord, StepsPush};
use serde_json::error::Category;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::payloads::PayloadStore;
use crate::queue::{EnqueueOutcome, Job, NewJob};
use crate::store::{FlowWrite, StepPayloads, UpsertOutcome, WriteMode};
use crate::{Error, Result, Services};

/// Bounds on what one flow may carry. Each is named in the error that enforces it.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_steps: usize,
    pub max_observations_per_step: usize,
    /// Names, pipeline, candidate ids, reason codes, tag keys.
    pub max_name_len: usize,
    /// Reasoning, reason texts, tag values, error.
    pub max_text_len: usize,
    pub max_tags: usize,
    pub max_reasons_per_observation: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 1_000,
            max_observations_per_step: 100_000,
            max_name_len: 256,
            max_text_len: 64 * 1024,
            max_tags: 64,
            max_reasons_per_observation: 32,
        }
    }
}

/// Largest candidate count or reason count (2^53: exact in every JSON reader and in SQL).
pub const MAX_COUNT: u64 = 1 << 53;

/// Deepest nesting of arrays and objects a flow record may have. The record's own structure
/// takes 6 levels (flow → steps → step → observations → observation → attributes); the rest
/// is for free-form values. serde_json would stop at 128 with a less helpful error.
pub const MAX_DEPTH: usize = 64;

/// How deeply arrays and objects nest in a JSON text, and the byte offset where `limit` is
/// first exceeded. A single pass over the bytes that skips strings (and their escapes).
fn nesting_depth(body: &[u8], limit: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, &byte) in body.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(offset);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Parses a flow record, telling malformed JSON from JSON that breaks the schema, with the
/// path of the offending field.
pub fn parse_flow(body: &[u8]) -> Result<FlowRecord> {
    parse_body(body)
}

/// [`parse_flow`] for any record type of the ingest API.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    if let Some(offset) = nesting_depth(body, MAX_DEPTH) {
        return Err(Error::Validation {
            field: None,
            message: format!(
                "arrays and objects nest more than {MAX_DEPTH} levels deep (at byte {offset}); \
                 flatten the step inputs, outputs or attributes"
            ),
        });
    }
    // The fast path: plain serde. Only a body that fails is parsed again, with path tracking,
    // to name the offending field.
    if let Ok(flow) = serde_json::from_slice::<T>(body) {
        return Ok(flow);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let flow: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => Error::Validation {
                field: (path != ".").then_some(path),
                message: data_error_message(&inner),
            },
            _ => Error::Malformed {
                message: format!("the body is not valid JSON: {inner}"),
            },
        }
    })?;
    deserializer.end().map_err(|e| Error::Malformed {
        message: format!("the body is not valid JSON: {e}"),
    })?;
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_depth_ignores_brackets_inside_strings() {
        assert_eq!(nesting_depth(br#"{"a": [[1]]}"#, 3), None);
        assert_eq!(nesting_depth(br#"{"a": [[[1]]]}"#, 3), Some(8));
        assert_eq!(nesting_depth(br#"{"a": "[[[[[[\"[[[["}"#, 1), None);
        assert_eq!(nesting_depth(br#"[{}, {}, {}]"#, 2), None);
    }
}

/// serde's message without its "at line 1 column 40" suffix, which means nothing to a person
/// who sent a generated body; the field path says where instead.
fn data_error_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// Checks everything serde cannot: lengths, counts, uniqueness, consistency.
pub fn validate(flow: &FlowRecord, limits: &Limits) -> Result<()> {
    let name = |field: &str, value: &str| -> Result<()> {
        if value.trim().is_empty() {
            return Err(Error::invalid(field, format!("{field} must not be empty")));
        }
        if value.len() > limits.max_name_len {
            return Err(Error::invalid(
                field,
                format!(
                    "{field} is {} bytes; the limit is {}",
                    value.len(),
                    limits.max_name_len
                ),
            ));
        }
        Ok(())
    };
    let text = |field: &str, value: &str| -> Result<()> {
        if value.len() > limits.max_text_len {
            return Err(Error::invalid(
                field,
                format!(
                    "{field} is {} bytes; the limit is {}",
                    value.len(),
                    limits.max_text_len
                ),
            ));
        }
        Ok(())
    };
    if flow.id.is_nil() {
        return Err(Error::invalid(
            "id",
            "id must be a non-nil UUID (UUIDv7 recommended)",
        ));
    }
    if flow.version == 0 {
        return Err(Error::invalid("version", "version starts at 1"));
    }
    name("pipeline", &flow.pipeline)?;
    if let Some(ended) = flow.ended_at
        && ended < flow.started_at
    {
        return Err(Error::invalid("ended_at", "ended_at is before started_at"));
    }
    if flow.tags.len() > limits.max_tags {
        return Err(Error::invalid(
            "tags",
            format!("{} tags; the limit is {}", flow.tags.len(), limits.max_tags),
        ));
    }
    for (key, value) in &flow.tags {
        name(&format!("tags.{key}"), key)?;
        text(&format!("tags.{key}"), value)?;
    }
    if let Some(error) = &flow.error {
        text("error", error)?;
    }
    if flow.steps.len() > limits.max_steps {
        return Err(Error::invalid(
            "steps",
            format!(
                "{} steps; the limit is {}",
                flow.steps.len(),
                limits.max_steps
            ),
        ));
    }
    let mut seqs = HashSet::with_capacity(flow.steps.len());
    for (i, step) in flow.steps.iter().enumerate() {
        let at = |field: &str| format!("steps[{i}].{field}");
        if !seqs.insert(step.seq) {
            return Err(Error::invalid(
                at("seq"),
                format!("seq {} appears twice in this flow", step.seq),
            ));
        }
        name(&at("name"), &step.name)?;
        if let Some(reasoning) = &step.reasoning {
            text(&at("reasoning"), reasoning)?;
        }
        if let (Some(start), Some(end)) = (step.started_at, step.ended_at)
            && end < start
        {
            return Err(Error::invalid(
                at("ended_at"),
                "ended_at is before started_at",
            ));
        }
        for (field, count) in [
            ("candidates_in", step.candidates_in),
            ("candidates_out", step.candidates_out),
        ] {
            if count.is_some_and(|n| n > MAX_COUNT) {
                return Err(Error::invalid(
                    at(field),
                    format!("{field} is above {MAX_COUNT}"),
                ));
            }
        }
        if let Some((code, _)) = step.reasons.iter().find(|(_, n)| **n > MAX_COUNT) {
            return Err(Error::invalid(
                format!("{}.{code}", at("reasons")),
                format!("reason counts are at most {MAX_COUNT}"),
            ));
        }
        if let (Some(input), Some(output)) = (step.candidates_in, step.candidates_out)
            && output > input
        {
            return Err(Error::invalid(
                at("candidates_out"),
                format!("candidates_out ({output}) is larger than candidates_in ({input})"),
            ));
        }
        for code in step.reasons.keys() {
            name(&format!("{}.{code}", at("reasons")), code)?;
        }
        if step.observations.len() > limits.max_observations_per_step {
            return Err(Error::invalid(
                at("observations"),
                format!(
                    "{} observations; the limit is {} per step",
                    step.observations.len(),
                    limits.max_observations_per_step
                ),
            ));
        }
        if step.capture == flowtrail_types::Capture::CountsOnly && !step.observations.is_empty() {
            return Err(Error::invalid(
                at("observations"),
                "a counts_only step carries no observations",
            ));
        }
        for (j, observation) in step.observations.iter().enumerate() {
            let at = |field: &str| format!("steps[{i}].observations[{j}].{field}");
            name(&at("candidate_id"), &observation.candidate_id)?;
            if observation.reasons.len() > limits.max_reasons_per_observation {
                return Err(Error::invalid(
                    at("reasons"),
                    format!(
                        "{} reasons; the limit is {}",
                        observation.reasons.len(),
                        limits.max_reasons_per_observation
                    ),
                ));
            }
            for (k, reason) in observation.reasons.iter().enumerate() {
                name(&at(&format!("reasons[{k}].code")), &reason.code)?;
                if let Some(reason_text) = &reason.text {
                    text(&at(&format!("reasons[{k}].text")), reason_text)?;
                }
            }
        }
    }
    Ok(())
}

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
    };
    Ok(job)
}

/// The start of a queued body that holds steps to merge rather than a whole flow.
const MERGE_PREFIX: &[u8] = br#"{"merge_steps":"#;

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
    let mut envelope = MERGE_PREFIX.to_vec();
    serde_json::to_writer(&mut envelope, &flow).map_err(|e| Error::Internal(e.to_string()))?;
    envelope.push(b'}');
    Ok(NewJob {
        team_id,
        idempotency_key,
        body_sha256: hex::encode(digest.finalize()),
        flow_id: flow.id,
        flow_version: flow.version,
        body: zstd::bulk::compress(&envelope, 1)?,
        request_id: request_id.map(str::to_string),
    })
}

/// Enqueues a prepared job durably; answers once it is committed.
pub async fn enqueue(services: &Services, job: NewJob) -> Result<Accepted> {
    let flow_id = job.flow_id;
    match services.queue.enqueue(job).await? {
        EnqueueOutcome::Accepted => Ok(Accepted {
            flow_id,
            replayed: false,
        }),
        EnqueueOutcome::Replayed => Ok(Accepted {
            flow_id,
            replayed: true,
        }),
        EnqueueOutcome::KeyReused => Err(Error::IdempotencyKeyReused),
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
    let (flow, mode) = match body.strip_prefix(MERGE_PREFIX) {
        Some(rest) => {
            let record = rest.strip_suffix(b"}").ok_or_else(|| Error::Malformed {
                message: "queued steps push is truncated".into(),
            })?;
            (serde_json::from_slice(record), WriteMode::MergeSteps)
        }
        None => (serde_json::from_slice(&body), WriteMode::Replace),
    };
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
