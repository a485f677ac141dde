//! The API's error answer: `{"error": {"code", "message", "field"}}` with a stable code.
//! A 500 tells the client nothing internal; the real error is logged in the request's span.
//! [`json_errors`] makes every other error answer of the API routers (axum's own refusals)
//! the same JSON.

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowtrail_types::{ErrorBody, ErrorDetail};

/// Every way an API request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `malformed_json`: the body is not JSON (or does not decompress).
    #[error("{0}")]
    MalformedJson(String),
    /// 401 `unauthorized`: no credentials, or unknown/revoked ones.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `forbidden`: credentials that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// 405 `method_not_allowed`.
    #[error("this endpoint does not answer that method")]
    MethodNotAllowed,
    /// 409 `idempotency_key_in_flight`: the first request with this key is still being accepted.
    #[error(
        "a request with this Idempotency-Key is still being accepted; retry shortly for its answer"
    )]
    IdempotencyKeyInFlight,
    /// 409 `conflict`: a unique thing exists already.
    #[error("{0}")]
    Conflict(String),
    /// 413 `payload_too_large`.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415 `unsupported_media_type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 `validation_failed`.
    #[error("{message}")]
    Validation {
        field: Option<String>,
        message: String,
    },
    /// 422 `idempotency_key_reused`.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// 429 `rate_limited`: this API key's token bucket is empty.
    #[error("too many flows for this API key; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// 503 `unavailable`: a storage engine is down or busy; retry after the delay.
    #[error("{message}")]
    Unavailable { retry_after: u64, message: String },
    /// 500 `payload_integrity_failed`: stored data does not match its checksum.
    #[error("a stored payload failed its integrity check; the incident has been logged")]
    Integrity,
    /// 500 `internal`: a bug; details are in the server log only.
    #[error("internal error; it has been logged")]
    Internal,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } | ApiError::IdempotencyKeyReused(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Integrity | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::IdempotencyKeyReused(_) => "idempotency_key_reused",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Integrity => "payload_integrity_failed",
            ApiError::Internal => "internal",
        }
    }
}

impl From<flowtrail_domain::Error> for ApiError {
    fn from(error: flowtrail_domain::Error) -> Self {
        use flowtrail_domain::Error as E;
        match error {
            E::Malformed { message } => ApiError::MalformedJson(message),
            E::Validation { field, message } => ApiError::Validation { field, message },
            E::NotFound(what) => ApiError::NotFound(format!("no such {what}")),
            E::Conflict(message) => ApiError::Conflict(message),
            E::TooLarge(message) => ApiError::PayloadTooLarge(message),
            E::IdempotencyKeyReused(message) => ApiError::IdempotencyKeyReused(message),
            E::Integrity(detail) => {
                tracing::error!(%detail, "payload integrity check failed");
                ApiError::Integrity
            }
            error if error.is_transient() => {
                tracing::warn!(%error, "storage unavailable");
                ApiError::Unavailable {
                    retry_after: 1,
                    message: "storage is unavailable right now; retry after the delay".into(),
                }
            }
            error => {
                tracing::error!(%error, "request failed");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = match &self {
            ApiError::Validation { field, .. } => field.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message: self.to_string(),
                field,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::Unavailable { retry_after, .. } | ApiError::RateLimited { retry_after } =
            self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// Answer for `/api/…` paths that do not exist.
pub async fn unknown_endpoint() -> ApiError {
    ApiError::NotFound("no such endpoint; see /api/v1/openapi.json".into())
}

/// Answer for known paths called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Longest text of a plain error answer kept as the JSON error's message; a longer one is not
/// a short refusal written for the client.
const MAX_SHOWN_TEXT: usize = 512;

/// Refuses a query string with a parameter that is not UTF-8 once percent-decoded (422
/// `validation_failed` naming it), on every API route, also those that read no parameter:
/// a value is never decoded lossily, nor silently ignored for being undecodable.
pub async fn undecodable_query(request: Request, next: Next) -> Response {
    if let Some(query) = request.uri().query()
        && let Err(e) = flowtrail_types::filters::decode_query(query)
    {
        return ApiError::invalid(e.parameter, e.message).into_response();
    }
    next.run(request).await
}

/// Middleware of the API routers: an error answer that is not JSON (a rejection of an axum
/// extractor, a bare status, a refusal of a tower layer) becomes the contract's JSON error,
/// with the same status and headers and a code chosen by the status. A short plain text of a
/// 4xx is kept as the message (axum writes those for the client); a 5xx's text is only logged.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4 * MAX_SHOWN_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let (code, default_message) = status_error(status);
    let message = if status.is_server_error() {
        tracing::error!(%status, body = %text, "error answer without a JSON body");
        default_message.to_string()
    } else if plain && !text.is_empty() && text.len() <= MAX_SHOWN_TEXT {
        text
    } else {
        default_message.to_string()
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message,
            field: None,
        },
    };
    let Ok(json) = serde_json::to_vec(&body) else {
        return ApiError::Internal.into_response();
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(json))
}

/// `application/json` or `application/…+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let mime = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The stable code of an error status, as [`ApiError::code`] gives it where a variant has
/// that status, and a message for an answer that has no text of its own.
fn status_error(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => (
            "bad_request",
            "the request could not be read; see /api/v1/openapi.json",
        ),
        StatusCode::UNAUTHORIZED => (
            "unauthorized",
            "sign in, or send Authorization: Bearer <api key>",
        ),
        StatusCode::FORBIDDEN => ("forbidden", "these credentials may not do this"),
        StatusCode::NOT_FOUND => ("not_found", "no such resource; see /api/v1/openapi.json"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not answer that method",
        ),
        StatusCode::NOT_ACCEPTABLE => (
            "not_acceptable",
            "this endpoint answers application/json only",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long to arrive"),
        StatusCode::CONFLICT => ("conflict", "this conflicts with the current state; retry"),
        StatusCode::LENGTH_REQUIRED => ("length_required", "send a Content-Length"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the body is larger than this endpoint accepts",
        ),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the URL is too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "validation_failed",
            "the request breaks a rule; see /api/v1/openapi.json",
        ),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests; retry later"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request headers are too large")
        }
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "the server is unavailable right now; retry shortly",
        ),
        status if status.is_server_error() => ("internal", "internal error; it has been logged"),
        _ => (
            "bad_request",
            "the request was refused; see /api/v1/openapi.json",
        ),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::extract::Path;
    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    /// A router of axum's own extractors and bare answers, behind [`json_errors`].
    fn router() -> Router {
        Router::new()
            .route(
                "/n/{n}",
                get(|Path(n): Path<u32>| async move { n.to_string() }),
            )
            .route("/ok", get(|| async { "plain success" }))
            .route(
                "/teapot",
                get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
            )
            .route(
                "/crash",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "db password is hunter2") }),
            )
            .route(
                "/busy",
                get(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "7")],
                    )
                }),
            )
            .route(
                "/html",
                get(|| async { (StatusCode::NOT_FOUND, axum::response::Html("<h1>no</h1>")) }),
            )
            .layer(axum::middleware::from_fn(json_errors))
    }

    async fn call(uri: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let request = axum::http::Request::get(uri).body(Body::empty()).unwrap();
        let response = router().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, body.to_vec())
    }

    async fn error(uri: &str) -> (StatusCode, HeaderMap, ErrorDetail) {
        let (status, headers, body) = call(uri).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        let detail: ErrorDetail = serde_json::from_value(body["error"].clone()).unwrap();
        (status, headers, detail)
    }

    #[tokio::test]
    async fn plain_error_answers_become_json_errors_by_status() {
        let (status, _, detail) = error("/n/%FF").await;
        assert_eq!(
            (status, detail.code.as_str()),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
        assert!(detail.message.contains("UTF-8"), "{}", detail.message);
        let (status, _, detail) = error("/n/x").await;
        assert_eq!(
            (status, detail.code.as_str()),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
        let (status, _, detail) = error("/teapot").await;
        assert_eq!(
            (status, detail.message.as_str()),
            (StatusCode::IM_A_TEAPOT, "short and stout")
        );
        // A 5xx's text is logged, never shown.
        let (status, _, detail) = error("/crash").await;
        assert_eq!(
            (status, detail.code.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert!(!detail.message.contains("hunter2"));
        let (status, headers, detail) = error("/busy").await;
        assert_eq!(
            (status, detail.code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert_eq!(headers[header::RETRY_AFTER], "7");
        // HTML is no message.
        let (_, _, detail) = error("/html").await;
        assert_eq!(detail.code, "not_found");
        assert!(!detail.message.contains('<'));
    }

    #[tokio::test]
    async fn success_and_json_answers_are_left_alone() {
        let (status, headers, body) = call("/ok").await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, &b"plain success"[..])
        );
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let (status, _, body) = call("/n/7").await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"7"[..]));
    }

    #[test]
    fn status_codes_agree_with_the_variants() {
        for error in [
            ApiError::MalformedJson(String::new()),
            ApiError::Unauthorized(String::new()),
            ApiError::Forbidden(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::MethodNotAllowed,
            ApiError::Conflict(String::new()),
            ApiError::PayloadTooLarge(String::new()),
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::invalid("f", "m"),
            ApiError::RateLimited { retry_after: 1 },
            ApiError::Unavailable {
                retry_after: 1,
                message: String::new(),
            },
            ApiError::Internal,
        ] {
            let (code, _) = status_error(error.status());
            // 400 is `malformed_json` only where the body is read as JSON.
            if error.status() != StatusCode::BAD_REQUEST {
                assert_eq!(code, error.code(), "{error:?}");
            }
        }
    }
}
