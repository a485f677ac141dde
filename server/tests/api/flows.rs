//! A flow through the API: accepted, then in the list, its detail and its observations.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::app::{FLOW_ID, app, flow_json};

#[tokio::test]
async fn a_flow_is_accepted_then_queryable_with_its_steps_and_observations() {
    let app = app().await;
    let (status, headers, body) = app.send(&flow_json(FLOW_ID)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"flow_id": FLOW_ID, "status": "queued"}));
    assert!(headers.get("idempotent-replayed").is_none());
    assert!(
        headers.get("x-request-id").is_some(),
        "every answer carries a request id"
    );

    app.drain(FLOW_ID).await;
    let (status, list) = app.get_json("/api/v1/flows").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["flows"][0]["id"], FLOW_ID);
    assert_eq!(list["flows"][0]["step_count"], 1);
    assert_eq!(list["next_cursor"], Value::Null);

    let (_, flow) = app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await;
    assert_eq!(flow["pipeline"], "competitor_selection");
    assert_eq!(flow["steps"][0]["name"], "price_and_rating_filter");
    assert_eq!(flow["steps"][0]["candidates_in"], 5000);
    assert_eq!(flow["steps"][0]["reasons"]["rating_below_threshold"], 870);
    assert!(
        flow["steps"][0].get("observations").is_none(),
        "no observations in the flow"
    );

    // The URL names the stored, finished version: the answer can never change.
    let uri = format!("/api/v1/flows/{FLOW_ID}/steps/2/observations?version=1");
    let (status, headers, body) = app.get(&uri).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["observations"],
        flow_json(FLOW_ID)["steps"][0]["observations"]
    );
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    assert!(
        etag.starts_with("\"v1-") && etag.len() == 69,
        "strong ETag of the version and the SHA-256: {etag}"
    );
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "private, max-age=31536000, immutable"
    );
    // Without a version the same answer may change later: revalidated, never immutable.
    let unversioned = format!("/api/v1/flows/{FLOW_ID}/steps/2/observations");
    let (status, headers, _) = app.get(&unversioned).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-cache");
    // A version that is not the stored one is not found.
    let (status, error) = app
        .get_json(&format!(
            "/api/v1/flows/{FLOW_ID}/steps/2/observations?version=2"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");

    let request = Request::get(&uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_running_flows_observations_are_never_cached_as_immutable() {
    let app = app().await;
    let mut running = flow_json(FLOW_ID);
    running["status"] = json!("running");
    running["ended_at"] = Value::Null;
    app.send(&running).await;
    app.drain(FLOW_ID).await;
    let uri = format!("/api/v1/flows/{FLOW_ID}/steps/2/observations?version=1");
    let (status, headers, _) = app.get(&uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-cache");
    let first_tag = headers[header::ETAG].clone();

    // The finished version arrives with other observations: the old tag no longer matches.
    let mut finished = flow_json(FLOW_ID);
    finished["version"] = json!(2);
    finished["steps"][0]["observations"][0]["candidate_id"] = json!("B0OTHER");
    app.send(&finished).await;
    // The flow is already queryable (version 1): wait for the queue, not for the flow.
    app.drain_all().await;
    let request = Request::get(uri.replace("version=1", "version=2"))
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
        .header(header::IF_NONE_MATCH, first_tag)
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = app.call(request).await;
    assert_eq!(status, StatusCode::OK, "new observations, not 304");
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "private, max-age=31536000, immutable"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["observations"][0]["candidate_id"], "B0OTHER");
    // The running version's URL is gone rather than answering other content.
    let (status, _, _) = app.get(&uri).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
