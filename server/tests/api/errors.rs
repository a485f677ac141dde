//! Error bodies: every refusal is JSON with a stable code and a message.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use crate::app::{FLOW_ID, MAX_BODY, TestApp, app, error_code};

#[tokio::test]
async fn bad_input_gets_a_json_error_with_a_stable_code() {
    let app = app().await;
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            Request::post("/api/v1/flows")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Request::post("/api/v1/flows")
                .header(header::AUTHORIZATION, "Bearer ftk_revoked_or_unknown")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Request::post("/api/v1/flows")
                .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            app.post(()).body(Body::from("{\"id\": ")).unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.post(()).body(Body::from("")).unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.post(()).body(Body::from("[1, 2]")).unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Request::post("/api/v1/flows")
                .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            app.post(())
                .header(header::CONTENT_ENCODING, "br")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            app.post(())
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Body::from("not gzip"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            app.post(())
                .body(Body::from(vec![b' '; MAX_BODY + 1]))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            app.post(())
                .header("idempotency-key", "k".repeat(129))
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Request::delete("/api/v1/flows")
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::get("/api/v1/nothing").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, headers, body) = app.call(request).await;
        let body: Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: not JSON"));
        assert_eq!((got, error_code(&body)), (status, code), "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
    }
}

/// `status` and `code` as a JSON error with a message and `content-type: application/json`.
async fn assert_json_error(app: &TestApp, request: Request<Body>, status: StatusCode, code: &str) {
    let what = format!("{} {}", request.method(), request.uri());
    let (got, headers, body) = app.call(request).await;
    let text = String::from_utf8_lossy(&body).to_string();
    let body: Value =
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert_eq!((got, error_code(&body)), (status, code), "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert_eq!(
        headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{what}"
    );
}

#[tokio::test]
async fn what_the_http_layer_refuses_is_a_json_error_too() {
    let app = app().await;
    // The admin API takes an admin key, the rest a key of scope all.
    let bearer = |uri: &str| {
        let key = if uri.starts_with("/api/v1/admin") {
            &app.admin_key
        } else {
            &app.key
        };
        format!("Bearer {key}")
    };
    let get = |uri: &str| {
        Request::get(uri)
            .header(header::AUTHORIZATION, bearer(uri))
            .body(Body::empty())
            .unwrap()
    };
    let post = |uri: &str, content_type: &str, body: Body| {
        Request::post(uri)
            .header(header::AUTHORIZATION, bearer(uri))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .unwrap()
    };
    let json = "application/json";
    let redrive = "/api/v1/admin/dead-letters/redrive";
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        // A path segment that is not UTF-8 names nothing, like an id that is not a UUID.
        (get("/api/v1/flows/%FF"), StatusCode::NOT_FOUND, "not_found"),
        (
            get("/api/v1/flows/not-a-uuid"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get("/api/v1/flows/%FF/candidates/x"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get(&format!("/api/v1/flows/{FLOW_ID}/candidates/%FF")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get("/api/v1/flows/%FF/diff/%FF"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get(&format!("/api/v1/flows/{FLOW_ID}/steps/%FF/observations")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            post("/api/v1/flows/%FF/steps", json, Body::from("{}")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // Wrong methods, on a path with parameters and on one without authentication.
        (
            Request::patch(format!("/api/v1/flows/{FLOW_ID}"))
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::delete("/healthz").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        // Query strings that do not fit.
        (
            get("/api/v1/events?pipeline=a&pipeline=b"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            get("/api/v1/flows?limit=many"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            get("/api/v1/admin/dead-letters?limit=0"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        // Content type and size.
        (
            post(
                &format!("/api/v1/flows/{FLOW_ID}/steps"),
                "text/plain",
                Body::from("{}"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post(
                &format!("/api/v1/flows/{FLOW_ID}/steps"),
                json,
                Body::from(vec![b' '; MAX_BODY + 1]),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            post(redrive, json, Body::from(vec![b' '; 3 * 1024 * 1024])),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        // The admin's JSON body: syntax before schema, as for ingest.
        (
            post(redrive, json, Body::from("[1,2")),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            post(redrive, json, Body::from(r#"{"id": 1}garbage"#)),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            post(redrive, json, Body::from(r#"{"id": "x", "#)),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            post(redrive, json, Body::from(r#"{"id": "x"}"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (request, status, code) in cases {
        assert_json_error(&app, request, status, code).await;
    }
}

#[tokio::test]
async fn a_query_value_that_is_not_utf8_is_refused_naming_its_parameter() {
    // `%FF` was decoded lossily to U+FFFD, so `q=%FF` searched for "�".
    let app = app().await;
    for (uri, field) in [
        ("/api/v1/flows?q=%FF", "q"),
        ("/api/v1/flows?pipeline=ok&tag=env:%C3", "tag"),
        ("/api/v1/stats/reasons?pipeline=%FF%FE", "pipeline"),
        (
            "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11/steps/0/observations?version=%FF",
            "version",
        ),
        // Also where nothing reads the parameter: it is refused, not silently ignored.
        (
            "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11?version=%FF",
            "version",
        ),
        ("/api/v1/flows?foo=%FF", "foo"),
        ("/healthz?x=%C3", "x"),
    ] {
        let (status, body) = app.get_json(uri).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{uri}: {body}"
        );
        assert_eq!(error_code(&body), "validation_failed");
    }
    // Valid percent-encoded UTF-8 still reads as what was meant.
    let (status, _) = app.get_json("/api/v1/flows?q=%E4%BB%B7%E6%A0%BC").await;
    assert_eq!(status, StatusCode::OK);
}
