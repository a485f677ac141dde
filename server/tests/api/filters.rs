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
    // A filter given twice is ambiguous; a value must be UTF-8 once decoded. The page reads
    // its address's whole query string with the API's parser, so it cannot pick one.
    "pipeline=a&pipeline=b",
    "status=failed&status=failed",
    "reason=%FF",
    "q=%C3",
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

/// The flows page's parameters for a URL query, as the page sends them: the first value of
/// each name and every `tag` (for the form), and the query string itself (what is parsed).
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
    params.insert("query".into(), Value::String(query.to_string()));
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
    // The event stream's filter too: a pipeline given twice is refused, naming it.
    let (status, error) = app.get_json("/api/v1/events?pipeline=a&pipeline=b").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["field"], "pipeline", "{error}");
}

/// Stored times are whole milliseconds; a bound finer than that still splits them exactly:
/// `since` and `until` count from the next stored millisecond (a new user found a flow of
/// `08:00:00.000` listed for `since=08:00:00.0009Z`, and one of `.001` left out of
/// `until=08:00:00.0010001Z`). The list, the statistics and the search agree.
#[tokio::test]
async fn bounds_finer_than_a_millisecond_split_stored_times_exactly() {
    let app = app().await;
    for (n, at) in [
        (1, "2026-12-03T08:00:00.000Z"),
        (2, "2026-12-03T08:00:00.001Z"),
    ] {
        let mut flow = other_flow(n);
        flow["pipeline"] = json!("fine");
        flow["started_at"] = json!(at);
        flow["ended_at"] = Value::Null;
        let (status, _, answer) = app.send(&flow).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    app.drain_all().await;
    let first = other_flow(1)["id"].as_str().unwrap().to_string();
    let second = other_flow(2)["id"].as_str().unwrap().to_string();
    for (range, expected) in [
        ("since=2026-12-03T08:00:00.0009Z", vec![&second]),
        ("since=2026-12-03T08:00:00.000000001Z", vec![&second]),
        ("since=2026-12-03T08:00:00Z", vec![&second, &first]),
        ("until=2026-12-03T08:00:00.0000001Z", vec![&first]),
        ("until=2026-12-03T08:00:00.001Z", vec![&first]),
        ("until=2026-12-03T08:00:00.0010001Z", vec![&second, &first]),
        (
            "since=2026-12-03T08:00:00.0001Z&until=2026-12-03T08:00:00.0009Z",
            vec![],
        ),
    ] {
        for text in ["", "&q=price_out_of_range"] {
            let (status, list) = app
                .get_json(&format!("/api/v1/flows?pipeline=fine&{range}{text}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{range}: {list}");
            let ids: Vec<&str> = list["flows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap())
                .collect();
            let expected: Vec<&str> = expected.iter().map(|s| s.as_str()).collect();
            assert_eq!(ids, expected, "{range}{text}");
        }
    }
    // The statistics count the same flows (each eliminated 4,100 for price_out_of_range),
    // and answer their range in UTC whatever offset was sent.
    for (range, flows) in [
        (
            "since=2026-12-03T07:00:00Z&until=2026-12-03T08:00:00.0001Z",
            1,
        ),
        (
            "since=2026-12-03T08:00:00.0009Z&until=2026-12-03T09:00:00Z",
            1,
        ),
        (
            "since=2026-12-03T09:00:00%2B01:00&until=2026-12-03T08:00:00.0011Z",
            2,
        ),
    ] {
        let (status, stats) = app
            .get_json(&format!(
                "/api/v1/stats/reasons?pipeline=fine&bucket=hour&{range}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{range}: {stats}");
        let price: u64 = stats["totals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["code"] == "price_out_of_range")
            .map(|t| t["count"].as_u64().unwrap())
            .sum();
        assert_eq!(price, 4100 * flows, "{range}: {stats}");
        assert!(stats["since"].as_str().unwrap().ends_with('Z'), "{stats}");
    }
}
