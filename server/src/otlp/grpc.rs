//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on its own
//! address (`--otlp-grpc-addr`, default `127.0.0.1:4317`, the OTLP port), gzip accepted.
//! The API key travels as the `authorization: Bearer …` metadata (an exporter's `headers`).
//! Errors are gRPC statuses: UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, and
//! UNAVAILABLE (retried by exporters) when rate limited or the queue is full.

use std::future::Future;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::{export, grpc_code, retry_after};
use crate::http::auth::{bearer_token, ingest_caller};
use crate::http::error::ApiError;
use crate::http::ingest::count_rejection;
use crate::state::AppState;

/// The trace service, answering for the app's state.
pub struct TraceReceiver {
    state: AppState,
}

#[tonic::async_trait]
impl TraceService for TraceReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let metadata = request.metadata();
        let secret = bearer_token(metadata.get("authorization").map(|v| v.as_bytes()))
            .map_err(status)?
            .map(str::to_string);
        let request_id = metadata
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let caller = ingest_caller(&self.state, secret.as_deref())
            .await
            .map_err(status)?;
        let result = export(
            &self.state,
            &caller,
            request.get_ref(),
            request_id.as_deref(),
        )
        .await;
        count_rejection(&self.state, &caller, &result);
        result.map(Response::new).map_err(status)
    }
}

/// An API error as a gRPC status; a retryable one carries `retry-after` (seconds) in its
/// metadata.
fn status(error: ApiError) -> Status {
    if matches!(error, ApiError::Internal | ApiError::Integrity) {
        tracing::error!(%error, "an OTLP/gRPC export failed");
    }
    let mut status = Status::new(grpc_code(&error), error.to_string());
    if let Some(seconds) = retry_after(&error)
        && let Ok(value) = seconds.to_string().parse()
    {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// Serves OTLP/gRPC on `listener` until `shutdown` completes. Requests are bounded by the
/// app's body limit after decompression.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let limit = state.max_body_bytes;
    let service = TraceServiceServer::new(TraceReceiver { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}
