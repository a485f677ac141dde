//! Operating a server: health, readiness, metrics and the dead-letter admin endpoints.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::accounts::Scope;
use flowtrail_domain::ingest::processor;
use serde_json::{Value, json};

use crate::app::{FLOW_ID, app, flow_json};

#[tokio::test]
async fn health_readiness_and_metrics_need_no_auth() {
    let app = app().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    for engine in ["database", "object_store", "queue"] {
        assert_eq!(body["engines"][engine], "ok", "{body}");
    }
    let engines = body["engines"].as_object().unwrap();
    assert!(engines.values().all(|v| v == "ok"), "{body}");
    app.send(&flow_json(FLOW_ID)).await;
    let (status, _, text) = app.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("flowtrail_flows_accepted_total 1"), "{text}");
    assert!(text.contains("flowtrail_queue_depth 1"), "{text}");
}

#[tokio::test]
async fn admins_list_and_redrive_dead_letters() {
    let app = app().await;
    let poison = flowtrail_domain::ingest::NewJob {
        team_id: app
            .services
            .metadata
            .team_by_slug("default")
            .await
            .unwrap()
            .unwrap()
            .id,
        idempotency_key: "poison".into(),
        body_sha256: "x".into(),
        flow_id: uuid::Uuid::now_v7(),
        flow_version: 1,
        body: b"not a flow".to_vec(),
        request_id: None,
        mode: flowtrail_domain::flows::WriteMode::Replace,
        usage: Default::default(),
    };
    app.services.queue.enqueue(poison).await.unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(processor::run(
        app.services.clone(),
        Default::default(),
        shutdown,
    ));
    for _ in 0..200 {
        if app.services.queue.depth().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();

    // A key of scope all is not an admin key.
    let (status, _) = app.get_json("/api/v1/admin/dead-letters").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.admin("GET", "/api/v1/admin/dead-letters", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dead = body["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1);
    let id = dead[0]["id"].as_i64().unwrap();

    let reader = app
        .services
        .create_api_key("default", "r", Scope::Read)
        .await
        .unwrap();
    let request = Request::get("/api/v1/admin/dead-letters")
        .header(header::AUTHORIZATION, format!("Bearer {reader}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::FORBIDDEN);
    let (status, _) = app
        .admin("GET", "/api/v1/admin/dead-letters?limit=0", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let redrive = |body: &'static str| {
        Request::post("/api/v1/admin/dead-letters/redrive")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.admin_key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, _, body) = app.call(redrive("{\"id\": 999999}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"redriven": 0})
    );
    let body = format!("{{\"id\": {id}}}");
    let (status, _, body) = app.call(redrive(Box::leak(body.into_boxed_str()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"redriven": 1})
    );
    assert_eq!(app.services.queue.depth().await.unwrap(), 1);
}
