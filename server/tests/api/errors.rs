//! Error bodies: every refusal is JSON with a stable code and a message.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use crate::app::{MAX_BODY, app, error_code};

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
