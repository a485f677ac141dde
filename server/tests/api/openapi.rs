//! The OpenAPI document against the live router.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::app::{FLOW_ID, app};

#[tokio::test]
async fn the_openapi_document_describes_the_live_router() {
    let app = app().await;
    let (status, doc) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["components"]["schemas"]["FlowRecord"].is_object());
    let paths = doc["paths"].as_object().unwrap();
    for (path, expected) in [
        ("/api/v1/flows", vec!["get", "post"]),
        ("/api/v1/flows/{id}", vec!["get"]),
        ("/api/v1/flows/{id}/steps/{seq}/observations", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/api/v1/openapi.json", vec!["get"]),
        ("/api/v1/events", vec!["get"]),
        ("/api/v1/flows/{id}/steps", vec!["post"]),
        ("/v1/traces", vec!["post"]),
        ("/api/v1/export", vec!["get"]),
        ("/api/v1/flows/{id}/candidates/{candidate_id}", vec!["get"]),
        ("/api/v1/flows/{a}/diff/{b}", vec!["get"]),
        ("/api/v1/stats/reasons", vec!["get"]),
    ] {
        for method in expected {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is documented"
            );
        }
    }
    // Every documented operation exists in the router: not the catch-all 404, not a 405.
    for (path, operations) in paths {
        let uri = path
            .replace("{id}", FLOW_ID)
            .replace("{a}", FLOW_ID)
            .replace("{b}", FLOW_ID)
            .replace("{candidate_id}", "B0CASE0001")
            .replace("{seq}", "2");
        for method in operations.as_object().unwrap().keys() {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let response = app.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let streaming = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
            // An event stream never ends: its status and type are the answer.
            let body = if streaming {
                Vec::new()
            } else {
                to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap()
                    .to_vec()
            };
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !message.contains("no such endpoint"),
                "{method} {path} is routed"
            );
        }
    }
}
