//! Back-pressure on ingest: the per-key rate limit and the queue depth gate.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_domain::accounts::Scope;

use crate::app::{app_with, error_code, other_flow};

#[tokio::test]
async fn an_api_key_over_its_rate_gets_429_with_retry_after() {
    let app = app_with(|config| {
        config.rate_limit_per_second = 2;
        config.rate_limit_burst = 3;
    })
    .await;
    for n in 0..3 {
        assert_eq!(
            app.send(&other_flow(n)).await.0,
            StatusCode::ACCEPTED,
            "burst of 3"
        );
    }
    let (status, headers, body) = app.send(&other_flow(3)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "rate_limited");
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another key of the same team has its own bucket.
    let second = app
        .services
        .create_api_key("default", "second", Scope::Ingest)
        .await
        .unwrap();
    let request = Request::post("/api/v1/flows")
        .header(header::AUTHORIZATION, format!("Bearer {second}"))
        .body(Body::from(serde_json::to_vec(&other_flow(4)).unwrap()))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);
    let (_, _, metrics) = app.get("/metrics").await;
    assert!(
        String::from_utf8(metrics)
            .unwrap()
            .contains("flowtrail_flows_rate_limited_total 1")
    );
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_loses_nothing() {
    let app = app_with(|config| config.max_queue_depth = 2).await;
    assert_eq!(app.send(&other_flow(0)).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.send(&other_flow(1)).await.0, StatusCode::ACCEPTED);
    // The gate reads the depth at most every 250 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, headers, body) = app.send(&other_flow(2)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "unavailable");
    assert_eq!(headers[header::RETRY_AFTER], "5");
    assert_eq!(
        app.services.queue.depth().await.unwrap(),
        2,
        "the refused flow was not queued"
    );
    app.drain("01936b2e-7c4a-7cc0-9a57-4c1f0e6d0001").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.send(&other_flow(2)).await.0,
        StatusCode::ACCEPTED,
        "accepted once drained"
    );
}
