//! Debugging bundles: `GET /api/v1/flows/{id}/bundle`, `GET /api/v1/bundle?id=…`, and
//! `POST /api/v1/admin/import` into another deployment — the round trip answers the same, a
//! second import writes nothing, a damaged or tampered bundle writes nothing at all.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::app::{FLOW_ID, TestApp, app, error_code, flow_json};

/// A running flow with nested steps, every capture mode, boundaries, span ids, an SDK and
/// two candidates shared with [`flow_json`]'s flow (so the diff has something to say).
const RICH_ID: &str = "01936b2e-7c4a-7cc0-9a57-4c1f0e6d3c22";

fn rich_flow() -> Value {
    json!({
        "id": RICH_ID, "version": 3, "pipeline": "competitor_selection", "status": "running",
        "started_at": "2026-11-21T11:00:00.123Z",
        "input": {"title": "Laptop stand", "max_price": 80.5, "nested": {"a": [1, 2.25, null]}},
        "tags": {"env": "prod", "seller": "=SUM(A1)"},
        "sdk": {"name": "flowtrail-rust", "version": "0.1.0"},
        "steps": [
            {"seq": 1, "name": "keywords", "kind": "generate", "status": "succeeded",
             "started_at": "2026-11-21T11:00:00.200Z", "ended_at": "2026-11-21T11:00:01.000Z",
             "input": {"prompt": "laptop stand"}, "output": {"keywords": ["stand", "riser"]},
             "reasoning": "two keywords", "span_id": "00f067aa0ba902b7",
             "boundaries": [{"name": "llm.keywords", "input": {"p": "x"}, "output": ["stand"]}]},
            {"seq": 2, "name": "price_and_rating_filter", "kind": "filter", "parent_seq": 1,
             "span_id": "00f067aa0ba902b8", "parent_span_id": "00f067aa0ba902b7",
             "capture": "full",
             "observations": [
                {"candidate_id": "B0CASE0001", "verdict": "kept", "score": 0.1 },
                {"candidate_id": "B0STAND42", "verdict": "rejected", "score": 1e-7,
                 "reasons": [{"code": "price_out_of_range", "text": "ünïcode ✓ 9.99 < 22.50"}],
                 "attributes": {"price": 9.99, "tags": ["a", "b"]}}]},
            {"seq": 3, "name": "judge", "kind": "judge", "capture": "counts_only",
             "candidates_in": 1000, "candidates_out": 3, "reasons": {"irrelevant": 997}}
        ]
    })
}

/// `value` without what differs between two deployments by design: when each stored it,
/// and the import mark.
fn comparable(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("ingested_at");
                map.remove("imported_at");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

/// Everything the query API answers about the two flows: each flow, each step's
/// observations, a candidate's journey in each, and their diff.
async fn answers(app: &TestApp) -> Vec<(String, Value)> {
    let mut uris = Vec::new();
    for (id, seqs) in [(FLOW_ID, vec![2]), (RICH_ID, vec![1, 2, 3])] {
        uris.push(format!("/api/v1/flows/{id}"));
        for seq in seqs {
            uris.push(format!("/api/v1/flows/{id}/steps/{seq}/observations"));
        }
        uris.push(format!("/api/v1/flows/{id}/candidates/B0CASE0001"));
    }
    uris.push(format!("/api/v1/flows/{FLOW_ID}/diff/{RICH_ID}"));
    let mut out = Vec::new();
    for uri in uris {
        let (status, body) = app.get_json(&uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        out.push((uri, comparable(body)));
    }
    out
}

async fn import(app: &TestApp, bundle: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::post("/api/v1/admin/import")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin_key))
        .header(header::CONTENT_TYPE, "application/vnd.flowtrail.bundle")
        .body(Body::from(bundle))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The bundle of both flows from a deployment holding them.
async fn source() -> (TestApp, Vec<u8>) {
    let app = app().await;
    for flow in [flow_json(FLOW_ID), rich_flow()] {
        let (status, _, body) = app.send(&flow).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    app.drain_all().await;
    let (status, headers, bundle) = app
        .get(&format!("/api/v1/bundle?id={FLOW_ID}&id={RICH_ID}"))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bundle)
    );
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/vnd.flowtrail.bundle"
    );
    (app, bundle)
}

#[tokio::test]
async fn a_bundle_imported_elsewhere_answers_the_same_and_twice_writes_nothing() {
    let (from, bundle) = source().await;
    let to = app().await;
    let (status, report) = import(&to, bundle.clone()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["skipped"], 0, "{report}");
    assert_eq!(report["flows"][0]["id"], FLOW_ID);
    assert_eq!(report["flows"][1]["outcome"], "imported");

    let (expected, actual) = (answers(&from).await, answers(&to).await);
    for ((uri, want), (_, got)) in expected.iter().zip(&actual) {
        assert_eq!(want, got, "{uri} differs after the import");
    }
    // The imported flows say so; the source's do not.
    let (_, imported) = to.get_json(&format!("/api/v1/flows/{RICH_ID}")).await;
    assert!(imported["imported_at"].is_string(), "{imported}");
    assert_eq!(imported["id"], RICH_ID);
    assert_eq!(imported["version"], 3);
    let (_, original) = from.get_json(&format!("/api/v1/flows/{RICH_ID}")).await;
    assert!(original.get("imported_at").is_none(), "{original}");
    // The list shows them like any other flow.
    let (_, list) = to
        .get_json("/api/v1/flows?pipeline=competitor_selection")
        .await;
    assert_eq!(list["flows"].as_array().unwrap().len(), 2, "{list}");

    // Importing again writes nothing: both flows, finished and running, are skipped.
    let (status, again) = import(&to, bundle.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (again["imported"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(2)),
        "{again}"
    );
    assert_eq!(again["flows"][0]["outcome"], "skipped", "{again}");
    assert_eq!(again["flows"][1]["outcome"], "skipped", "{again}");
    let (_, list) = to.get_json("/api/v1/flows").await;
    assert_eq!(list["flows"].as_array().unwrap().len(), 2, "{list}");
    let after = answers(&to).await;
    for ((uri, want), (_, got)) in expected.iter().zip(&after) {
        assert_eq!(want, got, "{uri} differs after a second import");
    }

    // A step pushed to the imported running flow survives a later import of the old bundle
    // (it must not roll a live flow back).
    let push = json!({
        "version": 3, "pipeline": "competitor_selection", "started_at": "2026-11-21T11:00:00.123Z",
        "steps": [{"seq": 4, "name": "late_rank", "kind": "rank",
                   "observations": [{"candidate_id": "Z1", "verdict": "selected"}]}]
    });
    let (status, _, body) = to
        .post_to(&format!("/api/v1/flows/{RICH_ID}/steps"), &push)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    to.drain_all().await;
    let (_, pushed) = to.get_json(&format!("/api/v1/flows/{RICH_ID}")).await;
    assert_eq!(pushed["step_count"], 4, "{pushed}");
    let (status, third_import) = import(&to, bundle.clone()).await;
    assert_eq!(status, StatusCode::OK, "{third_import}");
    assert_eq!(third_import["skipped"], 2, "{third_import}");
    let (_, kept) = to.get_json(&format!("/api/v1/flows/{RICH_ID}")).await;
    assert_eq!(kept["step_count"], 4, "the pushed step stays: {kept}");
    let (status, _) = to
        .get_json(&format!("/api/v1/flows/{RICH_ID}/candidates/Z1"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The one-flow bundle holds the same flow as the bundle of several.
    let (status, _, one) = from.get(&format!("/api/v1/flows/{FLOW_ID}/bundle")).await;
    assert_eq!(status, StatusCode::OK);
    let third = app().await;
    let (status, report) = import(&third, one).await;
    assert_eq!(
        (status, report["imported"].as_u64()),
        (StatusCode::OK, Some(1))
    );
}

/// The bundle's tar with `from` replaced by `to` (same length) inside the flow files, packed
/// again without touching the manifest: what a tampered or corrupted copy looks like.
fn tampered(bundle: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut tar = zstd::stream::decode_all(bundle).unwrap();
    let at = tar
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("the text to change is in the bundle");
    tar[at..at + to.len()].copy_from_slice(to.as_bytes());
    zstd::stream::encode_all(tar.as_slice(), 3).unwrap()
}

#[tokio::test]
async fn a_damaged_or_tampered_bundle_is_refused_naming_the_check_and_writes_nothing() {
    let (_from, bundle) = source().await;
    let to = app().await;

    // The second flow's file changed: the first is not imported either.
    let forged = tampered(&bundle, "riser", "risex");
    let (status, body) = import(&to, forged).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "validation_failed");
    assert_eq!(body["error"]["field"], format!("flows/{RICH_ID}.json"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("checksum mismatch"), "{message}");
    assert!(message.contains("SHA-256"), "{message}");

    // Truncated anywhere, empty, or not a bundle at all.
    for cut in [0, 7, bundle.len() / 3, bundle.len() - 9] {
        let (status, body) = import(&to, bundle[..cut].to_vec()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "cut at {cut}: {body}"
        );
        assert_eq!(body["error"]["field"], "bundle", "cut at {cut}: {body}");
    }
    let (status, body) = import(&to, b"not a bundle".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // JSON is not a bundle: 415.
    let request = Request::post("/api/v1/admin/import")
        .header(header::AUTHORIZATION, format!("Bearer {}", to.admin_key))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, _) = to.call(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (_, list) = to.get_json("/api/v1/flows").await;
    assert_eq!(list["flows"], json!([]), "nothing half-imported: {list}");
    let (status, _) = to.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_bundle_names_what_it_cannot_hold() {
    let (from, _) = source().await;
    let missing = "01936b2e-7c4a-7cc0-9a57-4c1f0e6dffff";
    let (status, _, body) = from
        .get(&format!("/api/v1/bundle?id={FLOW_ID}&id={missing}"))
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(missing),
        "{body}"
    );
    let (status, _, _) = from.get(&format!("/api/v1/flows/{missing}/bundle")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = from.get("/api/v1/flows/not-a-uuid/bundle").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for query in [
        String::new(),
        format!("?id={FLOW_ID}&id={FLOW_ID}"),
        "?id=nope".into(),
        format!("?id={FLOW_ID}&limit=3"),
        format!(
            "?id={}",
            (0..101)
                .map(|n| format!("01936b2e-7c4a-7cc0-9a57-4c1f0e6d{n:04x}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    ] {
        let (status, _, body) = from.get(&format!("/api/v1/bundle{query}")).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(error_code(&body), "validation_failed", "{query}");
    }
}
