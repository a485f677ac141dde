//! Operating a server: health, readiness, metrics and the dead-letter admin endpoints.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::accounts::Scope;
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
    app.drain_all().await;

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

#[tokio::test]
async fn admins_inspect_and_discard_a_dead_job() {
    let app = app().await;
    let team = app
        .services
        .metadata
        .team_by_slug("default")
        .await
        .unwrap()
        .unwrap()
        .id;
    // A readable flow that cannot be stored (its job is buried by hand), and an unreadable one.
    let record = serde_json::to_vec(&flow_json(FLOW_ID)).unwrap();
    for (key, body) in [
        ("readable", zstd::bulk::compress(&record, 1).unwrap()),
        ("poison", b"not a flow \xff".to_vec()),
    ] {
        let job = flowtrail_domain::ingest::NewJob {
            team_id: team,
            idempotency_key: key.into(),
            body_sha256: key.into(),
            flow_id: uuid::Uuid::now_v7(),
            flow_version: 1,
            body,
            request_id: None,
            mode: flowtrail_domain::flows::WriteMode::Replace,
            usage: Default::default(),
        };
        app.services.queue.enqueue(job).await.unwrap();
    }
    for job in app
        .services
        .queue
        .claim(10, Duration::from_secs(30))
        .await
        .unwrap()
    {
        app.services
            .queue
            .bury(&job, "broken on purpose")
            .await
            .unwrap();
    }
    let (_, list) = app.admin("GET", "/api/v1/admin/dead-letters", None).await;
    let ids: Vec<i64> = list["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    let (poison, readable) = (ids[0], ids[1]); // newest first
    let (status, detail) = app
        .admin(
            "GET",
            &format!("/api/v1/admin/dead-letters/{readable}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["readable"], true);
    assert_eq!(detail["pipeline"], "competitor_selection");
    assert_eq!(
        (detail["steps"].clone(), detail["observations"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(detail["body_bytes"], record.len());
    assert_eq!(detail["last_error"], "broken on purpose");
    let (_, detail) = app
        .admin("GET", &format!("/api/v1/admin/dead-letters/{poison}"), None)
        .await;
    assert_eq!(detail["readable"], false);
    assert!(
        detail["excerpt"]
            .as_str()
            .unwrap()
            .starts_with("not a flow"),
        "{detail}"
    );

    let uri = format!("/api/v1/admin/dead-letters/{poison}");
    assert_eq!(
        app.admin("DELETE", &uri, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.admin("DELETE", &uri, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.admin("GET", &uri, None).await.0, StatusCode::NOT_FOUND);
    let (_, list) = app.admin("GET", "/api/v1/admin/dead-letters", None).await;
    assert_eq!(list["dead_letters"].as_array().unwrap().len(), 1);
    // Its idempotency record went with it: the key may be used again.
    let job = flowtrail_domain::ingest::NewJob {
        team_id: team,
        idempotency_key: "poison".into(),
        body_sha256: "another".into(),
        flow_id: uuid::Uuid::now_v7(),
        flow_version: 1,
        body: b"{}".to_vec(),
        request_id: None,
        mode: flowtrail_domain::flows::WriteMode::Replace,
        usage: Default::default(),
    };
    assert_eq!(
        app.services.queue.enqueue(job).await.unwrap(),
        flowtrail_domain::ingest::EnqueueOutcome::Accepted
    );
    // Another team's admin sees none of it.
    let other = app.services.metadata.ensure_team("other").await.unwrap();
    let other_key = app
        .services
        .create_team_api_key(other.id, "o", flowtrail_domain::accounts::Scope::Admin)
        .await
        .unwrap()
        .key;
    let uri = format!("/api/v1/admin/dead-letters/{readable}");
    assert_eq!(
        app.send_as(Some(&other_key), "GET", &uri, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send_as(Some(&other_key), "DELETE", &uri, None).await.0,
        StatusCode::NOT_FOUND
    );
}
