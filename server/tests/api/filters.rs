//! The flows list's filters are one vocabulary: `GET /api/v1/flows` and the dashboard's
//! server function (`/fn/list_flows`, which the flows page calls with its URL's parameters)
//! accept exactly the same forms, answer the same flows, and refuse the same forms with the
//! same message.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_app::api::{ListFlows, Login};
use flowtrail_domain::accounts::Role;
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};

use crate::app::{TestApp, app, other_flow};

/// Every accepted form (the first group) and every refused one (the second).
const ACCEPTED: &[&str] = &[
    "",
    "pipeline=competitor_selection",
    "status=succeeded",
    "status=failed",
    "tag=env:prod",
    "tag=env:prod&tag=env:dev",
    "since=2026-11-21T00:00:00Z",
    "since=2026-11-21T10:00",
    "since=2026-11-21",
    "until=2026-11-21T10:00:00.001Z",
    "until=2026-11-21T09:00:00%2B01:00",
    "q=price",
    "q=B0CASE",
    "q=%E4%BB%B7%E6%A0%BC",
    "q=+++",
    "step_kind=filter",
    "step_kind=judge",
    "step_kind=filter&min_eliminated=0.9",
    "step_kind=filter&min_eliminated=90%25",
    "min_eliminated=0.99",
    "min_eliminated=100%25",
    "min_eliminated=0",
    "min_eliminated=0.5%25",
    "status=&pipeline=&q=",
    "unknown=1",
];

const REFUSED: &[&str] = &[
    "status=done",
    "tag=env",
    "since=yesterday",
    "until=2026-13-01",
    "step_kind=sieve",
    "min_eliminated=90",
    "min_eliminated=1.5",
    "min_eliminated=101%25",
    "min_eliminated=-0.1",
    "min_eliminated=0.1234567",
    "min_eliminated=abc",
    "cursor=garbage",
    "q=*",
    "q=%22%28%29",
];

/// A session cookie for a new member of the team.
async fn sign_in(app: &TestApp) -> String {
    app.services
        .create_user(
            "viewer@example.org",
            "correct horse",
            "default",
            Role::Viewer,
        )
        .await
        .unwrap();
    let request = Request::post(Login::PATH)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            "email=viewer%40example.org&password=correct+horse",
        ))
        .unwrap();
    let (_, headers, _) = app.call(request).await;
    let cookie = headers
        .get(header::SET_COOKIE)
        .expect("signing in sets the session cookie")
        .to_str()
        .unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// The flows page's parameters for a URL query: the first value of each name, every `tag`.
fn page_params(query: &str) -> Value {
    let mut params = serde_json::Map::new();
    let mut tags = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "tag" {
            tags.push(Value::String(value.into_owned()));
        } else if !params.contains_key(name.as_ref()) {
            params.insert(name.into_owned(), Value::String(value.into_owned()));
        }
    }
    params.insert("tags".into(), Value::Array(tags));
    json!({ "params": params })
}

/// What the dashboard's server function answers: success with its flow ids, or its message.
async fn dashboard(app: &TestApp, cookie: &str, query: &str) -> Result<Vec<String>, String> {
    let request = Request::post(ListFlows::PATH)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, cookie)
        .body(Body::from(page_params(query).to_string()))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    let text = String::from_utf8_lossy(&body).to_string();
    if status.is_success() {
        let page: Value = serde_json::from_str(&text).unwrap();
        Ok(ids(&page))
    } else {
        Err(text)
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_api_and_the_dashboard_accept_and_refuse_the_same_list_filters() {
    let app = app().await;
    for n in 0..3 {
        let mut flow = other_flow(n);
        if n == 1 {
            flow["status"] = json!("failed");
            flow["tags"] = json!({"env": "dev"});
        }
        app.send(&flow).await;
    }
    app.drain_all().await;
    let cookie = sign_in(&app).await;

    for query in ACCEPTED {
        let (status, page) = app.get_json(&format!("/api/v1/flows?{query}")).await;
        assert_eq!(status, StatusCode::OK, "the API accepts {query:?}: {page}");
        let from_dashboard = dashboard(&app, &cookie, query).await;
        assert_eq!(
            from_dashboard,
            Ok(ids(&page)),
            "the dashboard accepts {query:?} and lists the same flows"
        );
    }
    for query in REFUSED {
        let (status, error) = app.get_json(&format!("/api/v1/flows?{query}")).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "the API refuses {query:?}"
        );
        let message = error["error"]["message"].as_str().unwrap();
        let refused = dashboard(&app, &cookie, query)
            .await
            .expect_err(&format!("the dashboard refuses {query:?}"));
        assert!(
            refused.contains(message),
            "{query:?}: the dashboard says {refused:?}, the API {message:?}"
        );
    }
}
