//! The API's error answer: `{"error": {"code", "message", "field"}}` with a stable code.
//! A 500 tells the client nothing internal; the real error is logged in the request's span.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
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
    #[error("this Idempotency-Key was already used with a different body; use a new key")]
    IdempotencyKeyReused,
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
            ApiError::Validation { .. } | ApiError::IdempotencyKeyReused => {
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
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
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
            E::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
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
