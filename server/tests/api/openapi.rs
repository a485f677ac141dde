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

/// The bounds the document states are the server's own (schemathesis found a generated
/// `limit=0` and `version=0` the document allowed and the server refused): each documented
/// bound is checked on both sides against the live router.
#[tokio::test]
async fn the_documented_bounds_are_the_servers() {
    let app = app().await;
    let (_, doc) = app.get_json("/api/v1/openapi.json").await;
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} documents {name}"))["schema"]
            .clone()
    };
    // Where an empty value means "not given", the parameter's own schema is the first of
    // an `anyOf` (see `empty_values_are_documented_as_the_server_reads_them`).
    let param = |path: &str, name: &str| -> Value {
        let schema = param(path, name);
        match schema.get("anyOf") {
            Some(any_of) => any_of[0].clone(),
            None => schema,
        }
    };
    let limit = param("/api/v1/flows", "limit");
    assert_eq!(
        (limit["minimum"].as_f64(), limit["maximum"].as_f64()),
        (Some(1.0), Some(500.0))
    );
    let share = param("/api/v1/flows", "min_eliminated");
    assert_eq!(
        (share["minimum"].as_f64(), share["maximum"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    let version = param("/api/v1/flows/{id}/steps/{seq}/observations", "version");
    assert_eq!(version["minimum"].as_f64(), Some(1.0));
    let format = param("/api/v1/export", "format")["pattern"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(format.contains("parquet"), "{format}");
    let record = &doc["components"]["schemas"]["FlowRecord"]["properties"];
    assert_eq!(record["version"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(record["pipeline"]["minLength"].as_u64(), Some(1));
    assert_eq!(record["pipeline"]["maxLength"].as_u64(), Some(256));
    // The event stream is described event by event, not as one FlowSummary (its `ready`
    // event carries `{}`).
    let events = &doc["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"];
    assert_eq!(
        events["text/event-stream"]["schema"]["$ref"],
        "#/components/schemas/ServerSentEvent"
    );
    // Free-form values are any JSON value, `null` included (a flow sent without an input).
    let input = &doc["components"]["schemas"]["FlowRecord"]["properties"]["input"];
    assert!(input.get("type").is_none(), "{input}");
    // The retention state lists the policy's fields beside the sweeper's (not an `allOf` of
    // a schema that refuses other fields).
    let state = &doc["components"]["schemas"]["RetentionState"];
    assert!(state["properties"]["default_days"].is_object(), "{state}");
    assert!(state["properties"]["runs"].is_object(), "{state}");

    for (uri, expected) in [
        ("/api/v1/flows?limit=1", StatusCode::OK),
        ("/api/v1/flows?limit=500", StatusCode::OK),
        ("/api/v1/flows?limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("/api/v1/flows?limit=501", StatusCode::UNPROCESSABLE_ENTITY),
        ("/api/v1/flows?min_eliminated=0", StatusCode::OK),
        ("/api/v1/flows?min_eliminated=1", StatusCode::OK),
        (
            "/api/v1/flows?min_eliminated=1.5",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v1/flows?since=2026-01-01T00:00:00Z", StatusCode::OK),
        (
            "/api/v1/flows?since=yesterday",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v1/export?format=csv&level=steps", StatusCode::OK),
        (
            "/api/v1/export?format=xml",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/export?level=candidates",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, _, body) = app.get(uri).await;
        assert_eq!(
            status,
            expected,
            "{uri}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let mut record = crate::app::flow_json(FLOW_ID);
    record["version"] = 0.into();
    let (status, _, _) = app.send(&record).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "version 0");
    let mut record = crate::app::flow_json(FLOW_ID);
    record["pipeline"] = "".into();
    let (status, _, _) = app.send(&record).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an empty pipeline"
    );
}

/// An empty value means "not given" where the server reads it so, and the document says
/// it (schemathesis found `?status=` answered 200 while the document allowed only statuses);
/// where the server refuses an empty value, the document's schema refuses it too.
#[tokio::test]
async fn empty_values_are_documented_as_the_server_reads_them() {
    let app = app().await;
    let (_, doc) = app.get_json("/api/v1/openapi.json").await;
    let schema = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    for (path, name) in [
        ("/api/v1/flows", "status"),
        ("/api/v1/flows", "limit"),
        ("/api/v1/export", "since"),
        ("/api/v1/stats/reasons", "bucket"),
    ] {
        let any_of = schema(path, name)["anyOf"].clone();
        assert_eq!(any_of[1]["maxLength"], 0, "{path} {name}: {any_of}");
        let uri = format!("{path}?{name}=");
        let (status, _, body) = app.get(&uri).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{uri}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    for (path, name, uri) in [
        ("/api/v1/export", "format", "/api/v1/export?format="),
        ("/api/v1/export", "level", "/api/v1/export?level="),
    ] {
        assert!(schema(path, name)["anyOf"].is_null(), "{path} {name}");
        let (status, _, _) = app.get(uri).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
    }
}

/// Every JSON body is an object: serde reads a struct from an array too (schemathesis found
/// `[null]` redriving every dead job), so an array or other JSON value is refused wherever a
/// body is read; no body and `null` still redrive.
#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_refused_everywhere() {
    let app = app().await;
    let positional = serde_json::json!([
        FLOW_ID,
        1,
        "p",
        "succeeded",
        "2026-11-21T10:00:00Z",
        null,
        null,
        null,
        {},
        null,
        null,
        []
    ]);
    let (status, _, body) = app.post_to("/api/v1/flows", &positional).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(crate::app::error_code(&body), "validation_failed");
    let (status, _, _) = app
        .post_to(
            &format!("/api/v1/flows/{FLOW_ID}/steps"),
            &serde_json::json!([[]]),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for (method, uri, body) in [
        (
            "POST",
            "/api/v1/admin/dead-letters/redrive",
            serde_json::json!([null]),
        ),
        ("PUT", "/api/v1/admin/retention", serde_json::json!([1])),
        (
            "POST",
            "/api/v1/admin/api-keys",
            serde_json::json!(["k", "read"]),
        ),
        (
            "POST",
            "/api/v1/admin/alert-rules",
            serde_json::json!(["n", "p", null, "failed_share"]),
        ),
    ] {
        let (status, answer) = app.admin(method, uri, Some(&body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {uri}: {answer}"
        );
    }
    let (status, answer) = app
        .admin(
            "POST",
            "/api/v1/admin/dead-letters/redrive",
            Some(&Value::Null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let request = Request::builder()
        .method("POST")
        .uri("/v1/traces")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("[[]]"))
        .unwrap();
    let (status, _, _) = app.call(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "OTLP/JSON from an array");
}
