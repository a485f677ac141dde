//! The authorization matrix (`server/tests/authorization.md`): every API route × every kind of
//! caller answers the status of its row, no route lacks a row, and no caller of another team
//! sees anything of team `default`.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::accounts::{Role, Scope};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::app::{FLOW_ID, TestApp, app, flow_json};

const MATRIX: &str = include_str!("../authorization.md");

/// The callers, in the table's column order.
const CALLERS: [&str; 10] = [
    "anonymous",
    "viewer",
    "member",
    "admin",
    "other_admin",
    "ingest",
    "read",
    "all",
    "admin_key",
    "revoked",
];

/// `(method, path)` → expected status per caller.
fn matrix() -> BTreeMap<(String, String), Vec<u16>> {
    let mut rows = BTreeMap::new();
    for line in MATRIX
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| route"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let (method, path) = cells[0].split_once(' ').unwrap();
        let statuses: Vec<u16> = cells[1..].iter().map(|c| c.parse().unwrap()).collect();
        assert_eq!(statuses.len(), CALLERS.len(), "{line}");
        rows.insert((method.to_string(), path.to_string()), statuses);
    }
    rows
}

/// Every route the router serves: the paths of its `.route(…)` calls (read from the source,
/// so that a route missing from the OpenAPI document is still caught) and the methods of the
/// OpenAPI document.
fn routes() -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = Vec::new();
    let mut dirs = vec![format!("{root}/src/http"), format!("{root}/src/otlp")]
        .into_iter()
        .map(std::path::PathBuf::from)
        .collect::<Vec<_>>();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut paths = BTreeSet::new();
    for path in files {
        if path.ends_with("http/error.rs") || path.ends_with("http/mod.rs") {
            continue; // the fallbacks, and error.rs's own unit-test routes
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let start = rest.find('"').unwrap();
            let end = rest[start + 1..].find('"').unwrap();
            paths.insert(rest[start + 1..start + 1 + end].to_string());
        }
    }
    let doc: Value = serde_json::to_value(
        <flowtrail_server::http::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
    )
    .unwrap();
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    (paths, operations)
}

#[test]
fn every_route_has_a_row_and_every_row_a_route() {
    let rows = matrix();
    let (paths, operations) = routes();
    let row_paths: BTreeSet<String> = rows.keys().map(|(_, p)| p.clone()).collect();
    let row_operations: BTreeSet<(String, String)> = rows.keys().cloned().collect();
    assert_eq!(
        paths, row_paths,
        "routes of the router vs rows of authorization.md"
    );
    assert_eq!(
        operations, row_operations,
        "OpenAPI operations vs rows of authorization.md"
    );
}

/// The request for a row, with the caller's credentials.
fn request(method: &str, path: &str, caller: &str, auth: &Credentials) -> Request<Body> {
    let uri = path
        .replace("{id}", FLOW_ID)
        .replace("{a}", FLOW_ID)
        .replace("{b}", FLOW_ID)
        .replace("{seq}", "2")
        .replace("{candidate_id}", "B0CASE0001")
        .replace("{user_id}", "999999");
    let uri = if path.starts_with("/api/v1/admin/") {
        path.replace("{id}", "999999")
            .replace("{user_id}", "999999")
    } else if path == "/api/v1/bundle" {
        format!("{uri}?id={FLOW_ID}")
    } else {
        uri
    };
    let body: Option<Value> = match (method, path) {
        ("POST", "/api/v1/flows") => Some(flow_json(&uuid::Uuid::now_v7().to_string())),
        ("POST", "/api/v1/flows/{id}/steps") => Some(json!({
            "version": 1, "pipeline": "competitor_selection",
            "started_at": "2026-11-21T10:00:00Z",
            "steps": [{"seq": 9, "name": "late", "kind": "custom"}]})),
        ("POST", "/api/v1/admin/members") => {
            Some(json!({"email": format!("new-{caller}@example.org"), "role": "viewer"}))
        }
        ("PATCH", _) => Some(json!({"role": "viewer"})),
        ("POST", "/api/v1/admin/api-keys") => Some(json!({"name": "k", "scope": "read"})),
        ("POST", "/api/v1/admin/alert-rules") => Some(json!({
            "name": format!("rule-{caller}"), "pipeline": "competitor_selection",
            "metric": "failed_share", "comparison": "above", "threshold": 0.5})),
        ("PUT", "/api/v1/admin/retention") | ("POST", "/api/v1/admin/retention/preview") => {
            Some(json!({"default_days": null, "pipelines": {}}))
        }
        ("POST", "/api/v1/admin/dead-letters/redrive") => Some(json!({})),
        ("POST", "/v1/traces") => Some(json!({"resourceSpans": []})),
        _ => None,
    };
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = auth.keys.get(caller) {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if let Some(cookie) = auth.sessions.get(caller) {
        builder = builder
            .header(header::COOKIE, cookie)
            .header("sec-fetch-site", "same-origin");
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap())),
        None => builder.body(Body::empty()),
    }
    .unwrap()
}

struct Credentials {
    keys: BTreeMap<&'static str, String>,
    sessions: BTreeMap<&'static str, String>,
}

async fn credentials(app: &TestApp) -> Credentials {
    let team = app
        .services
        .metadata
        .team_by_slug("default")
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut keys = BTreeMap::new();
    for (caller, scope) in [
        ("ingest", Scope::Ingest),
        ("read", Scope::Read),
        ("all", Scope::All),
        ("admin_key", Scope::Admin),
        ("revoked", Scope::All),
    ] {
        let created = app
            .services
            .create_team_api_key(team, caller, scope)
            .await
            .unwrap();
        if caller == "revoked" {
            app.services
                .revoke_api_key(team, created.info.id)
                .await
                .unwrap();
        }
        keys.insert(caller, created.key);
    }
    let mut sessions = BTreeMap::new();
    for (caller, team, role) in [
        ("viewer", "default", Role::Viewer),
        ("member", "default", Role::Member),
        ("admin", "default", Role::Admin),
        ("other_admin", "other", Role::Admin),
    ] {
        let email = format!("{caller}@{team}.example");
        app.services
            .create_user(&email, "correct horse", team, role)
            .await
            .unwrap();
        sessions.insert(caller, app.sign_in(&email, "correct horse").await);
    }
    Credentials { keys, sessions }
}

#[tokio::test]
async fn every_caller_gets_the_status_of_the_matrix_and_nothing_of_another_team() {
    let app = app().await;
    app.send(&flow_json(FLOW_ID)).await;
    app.drain(FLOW_ID).await;
    let auth = credentials(&app).await;
    let mut wrong = Vec::new();
    for ((method, path), statuses) in matrix() {
        for (caller, expected) in CALLERS.iter().zip(statuses) {
            let mut response = app
                .router
                .clone()
                .oneshot(request(&method, &path, caller, &auth))
                .await
                .unwrap();
            // Readiness answers for the engines, not the caller: an engine slower than the
            // probe's 2 s under the whole suite's load (S3 on the scale pass) is asked again.
            for _ in 0..5 {
                if path != "/readyz" || response.status() != StatusCode::SERVICE_UNAVAILABLE {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                response = app
                    .router
                    .clone()
                    .oneshot(request(&method, &path, caller, &auth))
                    .await
                    .unwrap();
            }
            let status = response.status();
            // The event stream never ends: its status is enough.
            let body = if path == "/api/v1/events" {
                Vec::new()
            } else {
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap()
                    .to_vec()
            };
            // Readiness is public: what this matrix checks is that no caller is refused
            // (401/403); a 503 says an engine was slow under the suite's load, not who asked.
            let refused_or_wrong = if path == "/readyz" {
                status.as_u16() != expected && status != StatusCode::SERVICE_UNAVAILABLE
            } else {
                status.as_u16() != expected
            };
            if refused_or_wrong {
                wrong.push(format!(
                    "{method} {path} as {caller}: {status}, expected {expected}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            if *caller == "other_admin" && status.is_success() {
                let text = String::from_utf8_lossy(&body);
                assert!(
                    !text.contains(FLOW_ID) && !text.contains("@default.example"),
                    "{method} {path} showed team default's data to another team: {text}"
                );
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing an allowed caller sent under /admin changed what exists.
    assert_eq!(
        StatusCode::OK,
        app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await.0
    );
}
