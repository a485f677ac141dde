//! Debugging bundles over HTTP ([`flowtrail_domain::flows::bundle`]): one flow's
//! (`GET /api/v1/flows/{id}/bundle`) or several flows' (`GET /api/v1/bundle?id=…&id=…`) bundle
//! to download, and `POST /api/v1/admin/import` to load one into this deployment.

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flowtrail_domain::flows::bundle::{self, ImportReport};
#[allow(unused_imports)] // named by the OpenAPI annotations
use flowtrail_types::ErrorBody;
use uuid::Uuid;

use super::auth::{Admin, Reader};
use super::error::ApiError;
use super::extract::ApiPath;
use super::flows::{flow_id, query_pairs};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/flows/{id}/bundle", get(flow_bundle))
        .route("/api/v1/bundle", get(bundle_of))
        .route("/api/v1/admin/import", post(import))
}

/// How many times the request body limit an imported bundle may take compressed: a bundle
/// holds up to [`bundle::MAX_FLOWS`] flows, each sent within the limit, and compresses them
/// several times over (never more than [`bundle::MAX_UNPACKED_BYTES`]).
const COMPRESSED_PER_BODY: usize = 8;

/// One import at a time per process: each holds its bundle unpacked in memory (up to
/// [`bundle::MAX_UNPACKED_BYTES`]); a second waits for the first.
static IMPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `GET /api/v1/flows/{id}/bundle`.
#[utoipa::path(
    get, path = "/api/v1/flows/{id}/bundle", tag = "query",
    params(("id" = Uuid, Path, description = "Flow id")),
    responses(
        (status = 200, description = "The flow's debugging bundle (`application/vnd.flowtrail.bundle`, a zstd-compressed tar: `manifest.json` with each file's SHA-256, `SHA256SUMS`, `flows/<id>.json` holding the flow record with its steps and observations); `flowtrail import` loads it", content_type = "application/vnd.flowtrail.bundle"),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 404, description = "No such flow in the team", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn flow_bundle(
    State(state): State<AppState>,
    Reader(caller): Reader,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = flow_id(&id)?;
    let bytes = state.services.bundle(caller.team_id, &[id]).await?;
    Ok(bundle_response(bytes, &format!("flowtrail-{id}.ft")))
}

/// `GET /api/v1/bundle?id=…&id=…`.
#[utoipa::path(
    get, path = "/api/v1/bundle", tag = "query",
    params(("id" = Vec<Uuid>, Query, description = "Flow ids, 1 to 100, each once (repeat the parameter)")),
    responses(
        (status = 200, description = "One debugging bundle holding every flow named, in the order given", content_type = "application/vnd.flowtrail.bundle"),
        (status = 401, description = "no or unknown credentials", body = ErrorBody),
        (status = 403, description = "credentials without the needed scope", body = ErrorBody),
        (status = 404, description = "A flow is not in the team (the message names it)", body = ErrorBody),
        (status = 422, description = "No id, more than 100, one twice, or another parameter", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn bundle_of(
    State(state): State<AppState>,
    Reader(caller): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut ids = Vec::new();
    for (name, value) in query_pairs(raw.as_deref().unwrap_or_default())? {
        if name != "id" {
            return Err(ApiError::invalid(
                name.clone(),
                format!("{name} is not a parameter of a bundle (id, repeated)"),
            ));
        }
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = Uuid::try_parse(part)
                .map_err(|_| ApiError::invalid("id", format!("{part:?} is not a flow id")))?;
            ids.push(id);
        }
    }
    bundle::check_ids(&ids)?;
    // Name the missing flow: a 404 for "flow" alone would not say which.
    for &id in &ids {
        if state
            .services
            .metadata
            .get_flow(caller.team_id, id)
            .await?
            .is_none()
        {
            return Err(ApiError::NotFound(format!("no flow has the id {id}")));
        }
    }
    let bytes = state.services.bundle(caller.team_id, &ids).await?;
    Ok(bundle_response(bytes, "flowtrail-bundle.ft"))
}

fn bundle_response(bytes: Vec<u8>, filename: &str) -> Response {
    let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(bundle::MEDIA_TYPE),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `POST /api/v1/admin/import`: a bundle as the body.
#[utoipa::path(
    post, path = "/api/v1/admin/import", tag = "admin",
    request_body(content = Vec<u8>, content_type = "application/vnd.flowtrail.bundle", description = "A debugging bundle as `GET /api/v1/flows/{id}/bundle` answers it (any content type but JSON and forms is read as the bundle)"),
    responses(
        (status = 200, description = "`{\"imported\": n, \"skipped\": n, \"flows\": [{\"id\", \"version\", \"pipeline\", \"outcome\": \"imported\"|\"skipped\"}]}`: every flow written in one transaction, marked imported, with its own id and version; a flow whose same or newer version is stored is skipped (importing twice writes nothing new)", body = Object),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a team admin (or a key without scope admin)", body = ErrorBody),
        (status = 415, description = "Not `application/vnd.flowtrail.bundle`", body = ErrorBody),
        (status = 413, description = "Larger than 8 × the request body limit (at most 256 MiB), or unpacking to more than 256 MiB", body = ErrorBody),
        (status = 422, description = "Not a bundle, truncated, or tampered: `field` names the entry at fault and the message the checksum that failed; nothing was written", body = ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
#[tracing::instrument(skip_all, fields(team = %caller.team))]
pub(crate) async fn import(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<ImportReport>, ApiError> {
    let (_, mime) = super::ingest::media_type(&headers);
    if mime == "application/json" || mime.starts_with("multipart/") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body is the bundle's bytes ({}), not {mime}",
            bundle::MEDIA_TYPE
        )));
    }
    let limit = state
        .max_body_bytes
        .saturating_mul(COMPRESSED_PER_BODY)
        .min(bundle::MAX_UNPACKED_BYTES as usize);
    let encoding = super::ingest::content_encoding(&headers)?;
    let bytes = super::ingest::read_body(encoding, body, limit)
        .await
        .map_err(|error| match error {
            ApiError::PayloadTooLarge(_) => ApiError::PayloadTooLarge(format!(
                "the bundle is larger than the {limit} bytes an import over HTTP takes: \
                 bundle fewer flows at a time, or use `flowtrail import`"
            )),
            other => other,
        })?;
    // Taken once the body is in, so a stalled upload holds no one else up.
    let _turn = IMPORTS.acquire().await.map_err(|_| ApiError::Internal)?;
    let report = state
        .services
        .import_bundle(caller.team_id, &bytes, bundle::MAX_UNPACKED_BYTES)
        .await?;
    tracing::info!(
        imported = report.imported,
        skipped = report.skipped,
        "bundle imported"
    );
    Ok(axum::Json(report))
}
