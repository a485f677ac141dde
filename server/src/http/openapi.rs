//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the handlers'
//! annotations and the wire types (utoipa), never written by hand.

use axum::routing::get;
use axum::{Json, Router};
use flowtrail_types::filters::FILTER_NAMES;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, bundle, events, export, flows, health, ingest, query};
use crate::state::AppState;

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Flow Trail API",
        description = "Why a multi-step decision pipeline chose its output: ingest flows, query them. \
                       Every error is `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    paths(
        ingest::accept,
        flows::list,
        export::export,
        bundle::flow_bundle,
        bundle::bundle_of,
        bundle::import,
        flows::show,
        ingest::accept_steps,
        crate::otlp::http::traces,
        flows::observations,
        query::journey,
        query::diff,
        query::reason_stats,
        events::events,
        flows::pin,
        flows::unpin,
        admin::dead_letters,
        admin::redrive,
        admin::dead_letter,
        admin::discard_dead_letter,
        admin::members,
        admin::add_member,
        admin::set_member_role,
        admin::remove_member,
        admin::api_keys,
        admin::create_api_key,
        admin::revoke_api_key,
        admin::retention,
        admin::set_retention,
        admin::preview_retention,
        admin::usage,
        admin::alert_rules,
        admin::create_alert_rule,
        admin::update_alert_rule,
        admin::delete_alert_rule,
        admin::alerts,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
    ),
    modifiers(&Security, &EmptyMeansNotGiven),
    tags(
        (name = "ingest", description = "Send flows"),
        (name = "query", description = "Read flows, steps and observations"),
        (name = "admin", description = "Team administration"),
        (name = "health", description = "Liveness, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// API keys as bearer tokens; the dashboard's session cookie.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("flowtrail_session"))),
        );
    }
}

/// The query parameters whose empty value means "not given" (`?status=&limit=` lists as
/// `?` does: what an HTML form sends for a field left blank): their schema says so, as
/// `anyOf` the parameter's own schema or the empty string. Export's `format` and `level`,
/// dead letters' `limit` and the alerts' `state` and `limit` refuse an empty value, and are
/// not listed.
const EMPTY_MEANS_NOT_GIVEN: &[(&str, &[&[&str]])] = &[
    ("/api/v1/flows", &[FILTER_NAMES, &["limit", "cursor"]]),
    ("/api/v1/export", &[FILTER_NAMES]),
    (
        "/api/v1/stats/reasons",
        &[&["pipeline", "step", "since", "until", "bucket"]],
    ),
    ("/api/v1/admin/usage", &[&["since", "until"]]),
    (
        "/api/v1/flows/{id}/steps/{seq}/observations",
        &[&["version"]],
    ),
];

/// Applies [`EMPTY_MEANS_NOT_GIVEN`] (schemathesis found `?status=` answered 200 while the
/// document allowed only the statuses).
struct EmptyMeansNotGiven;

impl Modify for EmptyMeansNotGiven {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
        for (path, names) in EMPTY_MEANS_NOT_GIVEN {
            let Some(operation) = openapi
                .paths
                .paths
                .get_mut(*path)
                .and_then(|item| item.get.as_mut())
            else {
                continue;
            };
            for parameter in operation.parameters.iter_mut().flatten() {
                if !names
                    .iter()
                    .any(|group| group.contains(&parameter.name.as_str()))
                {
                    continue;
                }
                let Some(schema) = parameter.schema.take() else {
                    continue;
                };
                let empty = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(0));
                parameter.schema = Some(
                    Schema::AnyOf(AnyOfBuilder::new().item(schema).item(empty).build()).into(),
                );
                let said = parameter.description.take().unwrap_or_default();
                parameter.description = Some(format!("{said} (empty: not given)"));
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
