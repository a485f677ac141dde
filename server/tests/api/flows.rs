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

    let uri = format!("/api/v1/flows/{FLOW_ID}/steps/2/observations");
    let (status, headers, body) = app.get(&uri).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["observations"],
        flow_json(FLOW_ID)["steps"][0]["observations"]
    );
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.len() == 66,
        "strong ETag of the SHA-256: {etag}"
    );
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );

    let request = Request::get(&uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", app.key))
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}
