//! Who may do what: API key scopes, query validation, dashboard pages without a session.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::accounts::Scope;

use crate::app::{FLOW_ID, app, error_code, flow_json};

#[tokio::test]
async fn keys_are_checked_for_scope_and_queries_for_validity() {
    let app = app().await;
    let read_only = app
        .services
        .create_api_key("default", "reader", Scope::Read)
        .await
        .unwrap();
    let request = Request::post("/api/v1/flows")
        .header(header::AUTHORIZATION, format!("Bearer {read_only}"))
        .body(Body::from(serde_json::to_vec(&flow_json(FLOW_ID)).unwrap()))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "forbidden"
    );

    let ingest_only = app
        .services
        .create_api_key("default", "pipeline", Scope::Ingest)
        .await
        .unwrap();
    let request = Request::get("/api/v1/flows")
        .header(header::AUTHORIZATION, format!("Bearer {ingest_only}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::FORBIDDEN);
    let anonymous = Request::get("/api/v1/flows").body(Body::empty()).unwrap();
    assert_eq!(app.call(anonymous).await.0, StatusCode::UNAUTHORIZED);

    for (query, field) in [
        ("status=done", "status"),
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("since=yesterday", "since"),
        ("tag=novalue", "tag"),
        ("step_kind=sieve", "step_kind"),
        ("min_eliminated=1.5", "min_eliminated"),
        ("cursor=garbage", "cursor"),
    ] {
        let (status, body) = app.get_json(&format!("/api/v1/flows?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    let (status, _) = app
        .get_json("/api/v1/flows?pipeline=p&status=failed&tag=env:prod&tag=a:b&since=2026-11-21T00:00:00Z&step_kind=filter&min_eliminated=0.9&limit=500&q=x")
        .await;
    assert_eq!(status, StatusCode::OK);

    for uri in [
        "/api/v1/flows/not-a-uuid",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99/steps/1/observations",
        "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b99/steps/x/observations",
    ] {
        let (status, body) = app.get_json(uri).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn dashboard_pages_send_visitors_without_a_session_to_sign_in() {
    let app = app().await;
    for path in ["/", "/flows/01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b11?step=2"] {
        let (status, headers, _) = app
            .call(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            headers[header::LOCATION]
                .to_str()
                .unwrap()
                .starts_with("/login?next=%2F")
        );
    }
    let (status, _, body) = app
        .call(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("Sign in to Flow Trail"));
    assert!(html.contains("type=\"password\""));
    assert!(
        html.contains("/pkg/flowtrail.js"),
        "hydration script is linked"
    );
}
