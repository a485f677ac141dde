//! OpenTelemetry in: the OTLP receivers. [`http`] answers `POST /v1/traces` (protobuf and
//! JSON), [`grpc`] `TraceService/Export` on its own address. Both authenticate like native
//! ingest (an API key with scope `ingest` or `all`), pass the same admission (rate limit,
//! queue depth) and limits, and answer only once the spans are durably queued
//! ([`export`]). The mapping onto flows lives in `flowtrail_domain::otlp`.

pub mod grpc;
pub mod http;

use flowtrail_domain::ingest;
use flowtrail_domain::otlp::{self, MAX_SPANS_PER_REQUEST};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::ingest::{admit, count_accepted};
use crate::state::AppState;

/// Accepts one decoded export request: admission, the mapping, one durable queue job per
/// trace. The answer's `partial_success` counts the spans refused and says why (OTLP
/// specification, "Partial Success"). Errors: 413 past [`MAX_SPANS_PER_REQUEST`], 429/503
/// from admission or the queue; a request whose every span is refused is still a success
/// with all of them counted.
pub(crate) async fn export(
    state: &AppState,
    caller: &Caller,
    request: &ExportTraceServiceRequest,
    request_id: Option<&str>,
) -> Result<ExportTraceServiceResponse, ApiError> {
    let spans = otlp::span_count(request);
    if spans > MAX_SPANS_PER_REQUEST {
        return Err(ApiError::PayloadTooLarge(format!(
            "{spans} spans in one request; the limit is {MAX_SPANS_PER_REQUEST} (lower the \
             exporter's max_export_batch_size)"
        )));
    }
    admit(state, caller).await?;
    let conversion = otlp::convert(request, &state.services.limits);
    let jobs = otlp::prepare(&conversion, caller.team_id, request_id)?;
    // Every trace's job is enqueued at once: the group commit stores them together.
    let enqueued = futures::future::join_all(jobs.into_iter().map(|job| async {
        let usage = job.usage.clone();
        ingest::enqueue(&state.services, job)
            .await
            .map(|accepted| (accepted, usage))
    }))
    .await;
    let mut failure = None;
    for result in enqueued {
        match result {
            Ok((accepted, usage)) => count_accepted(state, caller, &accepted, &usage),
            // A trace not queued: the whole request is answered with the error, so the
            // exporter sends it again; the traces queued now replay then.
            Err(error) => failure = Some(error),
        }
    }
    if let Some(error) = failure {
        return Err(error.into());
    }
    Ok(ExportTraceServiceResponse {
        partial_success: (conversion.rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: conversion.rejected_spans as i64,
            error_message: conversion.error_message(),
        }),
    })
}

/// The gRPC status code of an API error (the OTLP/HTTP error body carries it too):
/// UNAVAILABLE for what an exporter should retry, as the OTLP specification lists.
pub(crate) fn grpc_code(error: &ApiError) -> tonic::Code {
    use tonic::Code;
    match error {
        ApiError::Unauthorized(_) => Code::Unauthenticated,
        ApiError::Forbidden(_) => Code::PermissionDenied,
        ApiError::RateLimited { .. } | ApiError::Unavailable { .. } => Code::Unavailable,
        ApiError::PayloadTooLarge(_)
        | ApiError::MalformedJson(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::Validation { .. }
        | ApiError::IdempotencyKeyReused(_) => Code::InvalidArgument,
        ApiError::NotFound(_) => Code::NotFound,
        ApiError::MethodNotAllowed => Code::Unimplemented,
        ApiError::IdempotencyKeyInFlight | ApiError::Conflict(_) => Code::Aborted,
        ApiError::Integrity | ApiError::Internal => Code::Internal,
    }
}

/// Seconds an exporter should wait before retrying, when the error says so.
pub(crate) fn retry_after(error: &ApiError) -> Option<u64> {
    match error {
        ApiError::RateLimited { retry_after } | ApiError::Unavailable { retry_after, .. } => {
            Some(*retry_after)
        }
        _ => None,
    }
}
