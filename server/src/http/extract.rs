//! The HTTP layer's extractors with the API's own rejections: whatever axum refuses to read
//! (a path segment, the query string, the body) answers the contract's JSON error with a
//! stable code, never axum's plain text. Handlers use these, not axum's, for anything a
//! client can get wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;

use super::error::ApiError;

/// [`axum::extract::Path`]; a segment that does not decode (not UTF-8 once percent-decoded,
/// not of the expected type) names nothing, so it answers 404 `not_found` like an unknown id.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// [`axum::extract::Query`]; a query string that does not fit answers 422
/// `validation_failed` with field `query`, as the hand-parsed query strings do, and a value
/// that is not UTF-8 once percent-decoded names its parameter (never decoded lossily:
/// [`flowtrail_types::filters::decode_query`]), as does a parameter given twice (each of
/// these queries' parameters has one value).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let pairs = flowtrail_types::filters::decode_query(parts.uri.query().unwrap_or(""))
            .map_err(|e| ApiError::invalid(e.parameter, e.message))?;
        // Every parameter of these queries has one value: given twice, it is ambiguous, and
        // refused naming it (as the flows list refuses it).
        if let Some(name) = flowtrail_types::filters::repeated(&pairs, None) {
            return Err(ApiError::invalid(
                name,
                format!("{name} is given more than once"),
            ));
        }
        let axum::extract::Query(value) = axum::extract::Query::try_from_uri(&parts.uri)?;
        Ok(ApiQuery(value))
    }
}

/// The whole body as bytes ([`axum::body::Bytes`]); over the body limit it answers 413
/// `payload_too_large`, a body that cannot be read 400 `malformed_json`.
#[derive(Debug)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Ok(ApiBytes(Bytes::from_request(request, state).await?))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(e) if e.status().is_client_error() => {
                ApiError::NotFound(format!("no such resource: {}", e.kind()))
            }
            rejection => {
                // The route and the extractor disagree: a bug, not the client's doing.
                tracing::error!(%rejection, "path parameters do not fit the route");
                ApiError::Internal
            }
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let cause = match &rejection {
            QueryRejection::FailedToDeserializeQueryString(e) => {
                std::error::Error::source(e).map(ToString::to_string)
            }
            _ => None,
        };
        ApiError::invalid(
            "query",
            format!(
                "the query string is not valid: {}",
                cause.unwrap_or_else(|| rejection.body_text())
            ),
        )
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(
                "the body is larger than this endpoint accepts; send a smaller body".into(),
            )
        } else {
            ApiError::MalformedJson(format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ))
        }
    }
}
