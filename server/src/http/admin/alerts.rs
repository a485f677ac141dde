//! `/api/v1/admin/alert-rules…` and `/api/v1/admin/alerts`: the team's drift alert rules and
//! the alerts they opened (see `flowtrail_domain::alerts` for how rules are evaluated).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use flowtrail_domain::alerts::{self, AlertOptions};
use flowtrail_domain::millis::now_ms;
use flowtrail_types::alerts::{
    AlertRule, AlertRuleInput, AlertRulePatch, AlertRules, AlertState, Alerts, RuleError,
};

use super::{json_body, path_id};
use crate::http::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiBytes, ApiPath};
use crate::http::flows::query_pairs;
use crate::state::AppState;

/// Most alerts one `GET /api/v1/admin/alerts` answers.
const MAX_ALERTS: u32 = 500;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/alert-rules",
            get(alert_rules).post(create_alert_rule),
        )
        .route(
            "/api/v1/admin/alert-rules/{id}",
            patch(update_alert_rule).delete(delete_alert_rule),
        )
        .route("/api/v1/admin/alerts", get(alerts))
}

fn refused(error: RuleError) -> ApiError {
    ApiError::invalid(error.field, error.message)
}

/// `GET /api/v1/admin/alert-rules`: the team's rules, by name (secrets never shown).
#[utoipa::path(
    get, path = "/api/v1/admin/alert-rules", tag = "admin",
    responses(
        (status = 200, description = "`{rules: [...]}`", body = AlertRules),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn alert_rules(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<AlertRules>, ApiError> {
    let rules = state.services.metadata.alert_rules(caller.team_id).await?;
    Ok(Json(AlertRules { rules }))
}

/// `POST /api/v1/admin/alert-rules`: a new rule; 201 with it.
#[utoipa::path(
    post, path = "/api/v1/admin/alert-rules", tag = "admin",
    request_body(content = AlertRuleInput),
    responses(
        (status = 201, description = "Created (the secret is not shown)", body = AlertRule),
        (status = 400, description = "The body is not JSON", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 409, description = "The team has a rule of that name, or 200 rules", body = flowtrail_types::ErrorBody),
        (status = 422, description = "A field is missing or out of range (the error names it)", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn create_alert_rule(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<AlertRule>), ApiError> {
    let input: AlertRuleInput = json_body(&body)?;
    let rule = input.validated().map_err(refused)?;
    let created = state
        .services
        .metadata
        .create_alert_rule(caller.team_id, &rule, now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `PATCH /api/v1/admin/alert-rules/{id}`: changes the fields given (a nullable one sent as
/// `null` is cleared); the whole rule is checked again.
#[utoipa::path(
    patch, path = "/api/v1/admin/alert-rules/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The rule's id")),
    request_body(content = AlertRulePatch),
    responses(
        (status = 200, description = "The rule as changed", body = AlertRule),
        (status = 400, description = "The body is not JSON", body = flowtrail_types::ErrorBody),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 404, description = "The team has no rule with this id", body = flowtrail_types::ErrorBody),
        (status = 409, description = "Another rule of the team has that name", body = flowtrail_types::ErrorBody),
        (status = 422, description = "The changed rule is not valid (the error names the field)", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn update_alert_rule(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<AlertRule>, ApiError> {
    let id = path_id(&id, "alert rule")?;
    let not_found = || ApiError::NotFound(format!("the team has no alert rule {id}"));
    // What is not there is 404 whatever the body (as for every resource).
    let stored = state
        .services
        .metadata
        .alert_rule(caller.team_id, id)
        .await?
        .ok_or_else(not_found)?;
    let patch: AlertRulePatch = json_body(&body)?;
    let rule = patch.apply(stored.input).validated().map_err(refused)?;
    let updated = alerts::update_rule(
        &state.services,
        &AlertOptions::default(),
        caller.team_id,
        id,
        &rule,
    )
    .await?
    .ok_or_else(not_found)?;
    Ok(Json(updated))
}

/// `DELETE /api/v1/admin/alert-rules/{id}`: 204; the rule's alerts go with it.
#[utoipa::path(
    delete, path = "/api/v1/admin/alert-rules/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The rule's id")),
    responses(
        (status = 204, description = "Deleted, with its alerts"),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 404, description = "The team has no rule with this id", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn delete_alert_rule(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "alert rule")?;
    if alerts::delete_rule(
        &state.services,
        &AlertOptions::default(),
        caller.team_id,
        id,
    )
    .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "the team has no alert rule {id}"
        )))
    }
}

/// `GET /api/v1/admin/alerts?state=open|resolved&limit=N`: the team's alerts, newest first,
/// each with the numbers that opened it, example flows and its webhook deliveries.
#[utoipa::path(
    get, path = "/api/v1/admin/alerts", tag = "admin",
    params(
        ("state" = Option<AlertState>, Query, description = "open or resolved; default both"),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 100", minimum = 1, maximum = 500),
    ),
    responses(
        (status = 200, description = "`{alerts: [...]}`", body = Alerts),
        (status = 403, description = "Not a team admin", body = flowtrail_types::ErrorBody),
        (status = 422, description = "A state or limit out of range", body = flowtrail_types::ErrorBody),
    ),
    security(("api_key" = []), ("session" = []))
)]
pub(crate) async fn alerts(
    State(state): State<AppState>,
    Admin(caller): Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<Alerts>, ApiError> {
    let mut wanted = None;
    let mut limit = 100;
    let pairs = query_pairs(query.as_deref().unwrap_or_default())?;
    if let Some(name) = flowtrail_types::filters::repeated(&pairs, Some(&["state", "limit"])) {
        return Err(ApiError::invalid(
            name,
            format!("{name} is given more than once"),
        ));
    }
    for (name, value) in pairs {
        match name.as_str() {
            "state" => {
                wanted = Some(match value.as_str() {
                    "open" => AlertState::Open,
                    "resolved" => AlertState::Resolved,
                    _ => return Err(ApiError::invalid("state", "state is open or resolved")),
                })
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_ALERTS).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("limit", format!("limit is 1 to {MAX_ALERTS}"))
                    })?
            }
            _ => {}
        }
    }
    let alerts = state
        .services
        .metadata
        .alerts(caller.team_id, wanted, limit)
        .await?;
    Ok(Json(Alerts { alerts }))
}
