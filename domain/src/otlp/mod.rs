//! OpenTelemetry in: OTLP trace exports (`POST /v1/traces`, OTLP/gRPC `TraceService/Export`)
//! become flows, steps and candidates.
//!
//! - [`convert`]: one export request → one [`SpanBatch`] per trace (the mapping);
//! - [`attributes`]: attribute values as JSON, OpenInference's flattened lists;
//! - `candidates`: documents and candidate events as observations;
//! - [`assemble`]: a queued batch + the stored flow → the flow's next version.
//!
//! A trace's spans arrive over many requests and out of order, so nothing is decided at
//! ingest beyond the mapping: each request's spans of one trace are one durable queue job
//! ([`prepare`]), and the processor assembles it with what is stored (a span id is a step's
//! identity within its trace; steps are ordered by start time) and writes the result with
//! [`crate::flows::WriteMode::Spans`], a compare-and-set on the version.

pub mod assemble;
pub mod attributes;
mod candidates;
pub mod convert;

use std::collections::BTreeMap;

use flowtrail_types::{FlowRecord, FlowStatus, SdkInfo, StepRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

pub use assemble::assemble;
pub use convert::{Conversion, TAG_PREFIX, convert};

use crate::flows::{StepPayloads, WriteMode};
use crate::ingest::{Job, JobUsage, NewJob};
use crate::payloads::PayloadStore;
use crate::{Error, Result, Services};

/// Most spans one export request may carry; a larger one is refused whole (413). OTel SDKs
/// send at most `max_export_batch_size` spans (512 by default) per request.
pub const MAX_SPANS_PER_REQUEST: usize = 10_000;

/// Pipeline of a trace that names none and comes from a resource without `service.name`.
pub const UNKNOWN_PIPELINE: &str = "otel";

/// One request's spans of one trace, as queued (the job body, JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanBatch {
    /// The trace id's 16 bytes as a UUID.
    pub flow_id: Uuid,
    /// The flow's fields, when the batch holds the trace's root span.
    pub root: Option<RootSpan>,
    /// `flowtrail.pipeline` of the first span that carries it.
    pub pipeline: Option<String>,
    /// The resource's `service.name`.
    pub service_name: Option<String>,
    /// Resource and span attributes under [`TAG_PREFIX`].
    pub tags: BTreeMap<String, String>,
    /// From the resource's `telemetry.sdk.*`.
    pub sdk: Option<SdkInfo>,
    /// The spans as steps in start order, `seq` their position in this batch.
    pub steps: Vec<StepRecord>,
}

/// What the root span (the one without a parent) says of the flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootSpan {
    pub name: String,
    /// Its own `flowtrail.pipeline`.
    pub pipeline: Option<String>,
    /// Failed when the span's status is ERROR, else succeeded.
    pub status: FlowStatus,
    #[serde(with = "flowtrail_types::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "flowtrail_types::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub input: Value,
    pub output: Value,
    /// The status message of a failed root.
    pub error: Option<String>,
}

impl SpanBatch {
    /// The pipeline this batch names: `flowtrail.pipeline` (the root's first), else the root
    /// span's name, else `service.name`; `None` without any of them.
    pub fn pipeline(&self) -> Option<String> {
        let root = self.root.as_ref();
        root.and_then(|r| r.pipeline.clone())
            .or_else(|| self.pipeline.clone())
            .or_else(|| root.map(|r| r.name.clone()))
            .or_else(|| self.service_name.clone())
    }

    /// The flow this batch alone describes (what validation and usage see).
    pub fn provisional_record(&self) -> FlowRecord {
        let started_at = self
            .root
            .as_ref()
            .and_then(|r| r.started_at)
            .or_else(|| self.steps.iter().filter_map(|s| s.started_at).min())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut record = FlowRecord::new(
            self.flow_id,
            self.pipeline()
                .unwrap_or_else(|| UNKNOWN_PIPELINE.to_string()),
            started_at,
        );
        record.tags = self.tags.clone();
        record.sdk = self.sdk.clone();
        if let Some(root) = &self.root {
            record.status = root.status;
            record.ended_at = root.ended_at;
            record.input = root.input.clone();
            record.output = root.output.clone();
            record.error = root.error.clone();
        }
        record.steps = self.steps.clone();
        record
    }
}

/// How many spans an export request carries, across its resources and scopes.
pub fn span_count(
    request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// The queue jobs of a converted request, one per trace. A job's idempotency key is the
/// trace and the SHA-256 of its body, so a re-sent request is a replay (nothing queued
/// twice) and a changed one a new job.
pub fn prepare(
    conversion: &Conversion,
    team_id: i64,
    request_id: Option<&str>,
) -> Result<Vec<NewJob>> {
    conversion
        .batches
        .iter()
        .map(|batch| {
            let body = serde_json::to_vec(batch).map_err(|e| Error::Internal(e.to_string()))?;
            let sha256 = hex::encode(Sha256::digest(&body));
            let record = batch.provisional_record();
            let mut usage = JobUsage::of(&record, batch.root.is_some(), body.len());
            if batch.root.is_none() {
                usage.pipeline = None;
            }
            Ok(NewJob {
                team_id,
                idempotency_key: format!("otlp:{}:{sha256}", batch.flow_id),
                body_sha256: sha256,
                flow_id: batch.flow_id,
                flow_version: 0,
                body: zstd::bulk::compress(&body, 1)?,
                request_id: request_id.map(str::to_string),
                mode: WriteMode::Spans,
                usage,
            })
        })
        .collect()
}

/// Decodes a queued span batch and stores its steps' observation payloads (keyed by the
/// batch's own positions; [`assemble`] renumbers).
pub async fn load(services: &Services, job: &Job) -> Result<(SpanBatch, StepPayloads)> {
    let body = zstd::stream::decode_all(job.body.as_slice()).map_err(|e| Error::Malformed {
        message: format!("queued body does not decompress: {e}"),
    })?;
    let batch: SpanBatch = serde_json::from_slice(&body).map_err(|e| Error::Malformed {
        message: format!("queued body is not a span batch: {e}"),
    })?;
    let mut payloads = StepPayloads::new();
    for step in batch.steps.iter().filter(|s| !s.observations.is_empty()) {
        let encoded =
            PayloadStore::encode(job.team_id, batch.flow_id, 0, step.seq, &step.observations)?;
        payloads.insert(step.seq, services.payloads.put(&encoded).await?);
    }
    Ok((batch, payloads))
}
