//! OTLP/HTTP: `POST /v1/traces` with an `ExportTraceServiceRequest` as binary protobuf
//! (`application/x-protobuf`) or OTLP/JSON (`application/json`; ids as hex, OTLP
//! specification "JSON Protobuf Encoding"), `Content-Encoding: gzip` or `zstd` accepted.
//! The answer is in the request's encoding: 200 with an `ExportTraceServiceResponse`, or an
//! error status with a `google.rpc.Status` (429 and 503 with `Retry-After`, which OTel
//! exporters honour). A body of another content type is answered in JSON.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::{export, grpc_code, retry_after};
use crate::http::auth::{Caller, bearer_token, ingest_caller};
use crate::http::error::ApiError;
use crate::http::ingest::{content_encoding, count_rejection, media_type, read_body};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/traces", post(traces).fallback(method_not_allowed))
}

/// Any other method on `/v1/traces`: 405 with `Allow: POST`, a `google.rpc.Status` in JSON.
async fn method_not_allowed() -> Response {
    let mut response = error_response(Encoding::Json, ApiError::MethodNotAllowed);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status` (the OTLP/HTTP error body): the gRPC code and a message.
#[derive(Clone, PartialEq, Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// `POST /v1/traces`: an OTLP trace export.
#[utoipa::path(
    post, path = "/v1/traces", tag = "ingest",
    request_body(
        description = "An OTLP `ExportTraceServiceRequest`: binary protobuf, or OTLP/JSON with \
                       `Content-Type: application/json`; `Content-Encoding: gzip` or `zstd` accepted",
        content((Vec<u8> = "application/x-protobuf"), (Object = "application/json"))
    ),
    responses(
        (status = 200, description = "Durably queued: an `ExportTraceServiceResponse` in the request's encoding, `partial_success` counting the spans refused and why", content(("application/x-protobuf"), ("application/json"))),
        (status = 400, description = "The body does not decode (a `google.rpc.Status` in the request's encoding)"),
        (status = 401, description = "No or unknown API key"),
        (status = 403, description = "An API key without scope ingest or all"),
        (status = 413, description = "Body over the limit, or more than 10,000 spans"),
        (status = 415, description = "Neither protobuf nor JSON (answered in JSON)"),
        (status = 429, description = "Rate limited; see Retry-After"),
        (status = 503, description = "Queue full or storage down; see Retry-After"),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match encoding_of(&headers) {
        Ok(encoding) => encoding,
        Err(error) => {
            // A caller without a valid key learns nothing about the body's format: 401 first.
            let secret = bearer_token(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()));
            let authorised = match secret {
                Ok(secret) => ingest_caller(&state, secret).await.map(drop),
                Err(refused) => Err(refused),
            };
            return error_response(Encoding::Json, authorised.err().unwrap_or(error));
        }
    };
    let mut caller = None;
    let result = accept(&state, &headers, body, encoding, &mut caller).await;
    if let Some(caller) = &caller {
        count_rejection(&state, caller, &result);
    }
    match result {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            bytes,
        )
            .into_response(),
        Err(error) => error_response(encoding, error),
    }
}

async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
    caller_out: &mut Option<Caller>,
) -> Result<Vec<u8>, ApiError> {
    let secret = bearer_token(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))?;
    let caller = ingest_caller(state, secret).await?;
    *caller_out = Some(caller.clone());
    let compression = content_encoding(headers)?;
    let bytes = read_body(compression, body, state.max_body_bytes).await?;
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(bytes.as_slice()).map_err(|e| {
            ApiError::MalformedJson(format!(
                "the body is not a protobuf ExportTraceServiceRequest: {e}"
            ))
        })?,
        // serde would read the request from an array too (`[[]]`): only an object is one.
        Encoding::Json if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') => {
            return Err(ApiError::MalformedJson(
                "the body is not an OTLP/JSON ExportTraceServiceRequest: not a JSON object".into(),
            ));
        }
        Encoding::Json => serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::MalformedJson(format!(
                "the body is not an OTLP/JSON ExportTraceServiceRequest: {e}"
            ))
        })?,
    };
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    let response = export(state, &caller, &request, request_id).await?;
    Ok(match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&response).map_err(|e| {
            tracing::error!(%e, "an export response does not serialise");
            ApiError::Internal
        })?,
    })
}

/// The request's encoding from its `Content-Type`. Errors: 415 for any other.
fn encoding_of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let (text, mime) = media_type(headers);
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {text:?} is not accepted on /v1/traces; send application/x-protobuf \
             or application/json (OTLP/HTTP)"
        ))),
    }
}

/// An error as `google.rpc.Status` in `encoding`, with the HTTP status of the API's error
/// and `Retry-After` where the exporter should retry.
fn error_response(encoding: Encoding, error: ApiError) -> Response {
    if matches!(error, ApiError::Internal | ApiError::Integrity) {
        tracing::error!(%error, "an OTLP export failed");
    }
    let status = RpcStatus {
        code: grpc_code(&error) as i32,
        message: error.to_string(),
    };
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&status).unwrap_or_default(),
    };
    let mut response = (
        error.status(),
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    if let Some(seconds) = retry_after(&error) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
