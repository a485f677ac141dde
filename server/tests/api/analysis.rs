//! Analysis over HTTP: a candidate's journey, the diff of two flows, reason statistics.

use axum::http::StatusCode;
use serde_json::json;

use crate::app::{FLOW_ID, app, error_code, flow_json};

#[tokio::test]
async fn journey_diff_and_stats_answer_over_http() {
    let app = app().await;
    let good_id = "01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b12";
    let mut good = flow_json(good_id);
    good["steps"][0]["capture"] = json!("full");
    good["steps"][0]["candidates_in"] = json!(2);
    good["steps"][0]["candidates_out"] = json!(1);
    good["steps"][0]["reasons"] = json!({"price_out_of_range": 1});
    good["steps"][0]["observations"] = json!([
        {"candidate_id": "B0CASE0001", "verdict": "rejected",
         "reasons": [{"code": "price_out_of_range", "text": "9.99 is below 0.5x of 45.00"}]},
        {"candidate_id": "https://shop/a b", "verdict": "kept", "score": 0.9}
    ]);
    let bad = flow_json(FLOW_ID);
    assert_eq!(app.send(&good).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.send(&bad).await.0, StatusCode::ACCEPTED);
    app.drain_all().await;

    let (status, journey) = app
        .get_json(&format!("/api/v1/flows/{good_id}/candidates/B0CASE0001"))
        .await;
    assert_eq!(status, StatusCode::OK, "{journey}");
    assert_eq!(journey["final_verdict"], "rejected");
    assert_eq!(journey["eliminated_at"]["seq"], 2);
    assert_eq!(
        journey["eliminated_at"]["reasons"][0]["code"],
        "price_out_of_range"
    );
    assert_eq!(journey["steps"][0]["presence"], "observed");
    let (status, journey) = app
        .get_json(&format!(
            "/api/v1/flows/{good_id}/candidates/https%3A%2F%2Fshop%2Fa%20b"
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an encoded id with slashes and spaces: {journey}"
    );
    assert_eq!(journey["candidate_id"], "https://shop/a b");
    assert_eq!(journey["steps"][0]["score"], 0.9);
    let (status, body) = app
        .get_json(&format!("/api/v1/flows/{good_id}/candidates/B0NOPE"))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = app
        .get_json(&format!("/api/v1/flows/{FLOW_ID}/candidates/B0NOPE"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sample"),
        "a sampled step may have seen it: {body}"
    );

    let (status, diff) = app
        .get_json(&format!("/api/v1/flows/{good_id}/diff/{FLOW_ID}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let step = &diff["steps"][0];
    assert_eq!(step["removed"], json!(["https://shop/a b"]));
    assert_eq!(
        step["reasons"]["price_out_of_range"],
        json!({"a": 1, "b": 4100})
    );
    assert_eq!(step["candidates_in"], json!({"a": 2, "b": 5000}));
    let (status, body) = app
        .get_json(&format!(
            "/api/v1/flows/{good_id}/diff/01936b2e-7c4a-7cc0-9a57-000000000000"
        ))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = app
        .get_json(&format!("/api/v1/flows/{good_id}/diff/nope"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, stats) = app
        .get_json("/api/v1/stats/reasons?since=2026-11-21T00:00:00Z&until=2026-11-22T00:00:00Z&bucket=hour")
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["bucket"], "hour");
    assert_eq!(
        stats["totals"][0],
        json!({"pipeline": "competitor_selection", "step": "price_and_rating_filter",
               "code": "price_out_of_range", "count": 4101})
    );
    assert_eq!(stats["buckets"][0]["start"], "2026-11-21T10:00:00Z");
    assert_eq!(stats["funnels"][0]["flows"], 2);
    assert_eq!(stats["funnels"][0]["steps"][0]["median_in"], 2501.0);
    for (query, field) in [
        ("bucket=week", "bucket"),
        ("since=soon", "since"),
        ("pipeline=a&pipeline=b", "pipeline"),
        ("bucket=day&bucket=hour", "bucket"),
    ] {
        let (status, body) = app
            .get_json(&format!("/api/v1/stats/reasons?{query}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["field"], field);
    }

    // The flows list carries the largest elimination and finds the flow by reason text.
    let (_, page) = app.get_json("/api/v1/flows?q=below%200.5x").await;
    let ids: Vec<_> = page["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2, "{page}");
    assert_eq!(ids[0], json!(good_id), "same start: the larger id first");
    assert_eq!(page["flows"][0]["largest_elimination"]["share"], 0.5);
    assert_eq!(page["flows"][1]["largest_elimination"]["share"], 0.994);
}

#[tokio::test]
async fn reason_statistics_sum_past_63_bits_without_an_error() {
    // Issue #14, item 4: two flows of 600 counts-only steps of 2^53 each, one hour.
    let app = app().await;
    let max = 1u64 << 53;
    let steps: Vec<_> = (0..600)
        .map(|seq| {
            json!({"seq": seq, "name": "dedupe", "kind": "filter", "capture": "counts_only",
                   "candidates_in": max, "candidates_out": 0, "reasons": {"dup": max}})
        })
        .collect();
    for n in [1, 2] {
        let mut flow = crate::app::other_flow(n);
        flow["pipeline"] = json!("dedupe_heavy");
        flow["steps"] = json!(steps);
        let (status, _, body) = app.send(&flow).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    app.drain_all().await;
    let range = "since=2026-11-21T00:00:00Z&until=2026-11-22T00:00:00Z";
    for pipeline in ["&pipeline=dedupe_heavy", ""] {
        let (status, stats) = app
            .get_json(&format!("/api/v1/stats/reasons?{range}{pipeline}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        let dup: Vec<_> = stats["totals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["code"] == "dup")
            .map(|t| t["count"].as_u64())
            .collect();
        assert_eq!(dup, vec![Some(1200 * max)], "{pipeline}");
    }
}
