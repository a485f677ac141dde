//! Ingest over HTTP: idempotency, schema errors, compressed bodies, concurrent repeats, the
//! request id, and steps pushed while a flow runs.

use std::io::Write;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::app::{FLOW_ID, MAX_BODY, app, error_code, flow_json, other_flow};

#[tokio::test]
async fn idempotency_replays_and_refuses_a_reused_key() {
    let app = app().await;
    let first = app.send(&flow_json(FLOW_ID)).await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    let replay = app.send(&flow_json(FLOW_ID)).await;
    assert_eq!(replay.0, StatusCode::ACCEPTED);
    assert_eq!(replay.1["idempotent-replayed"], "true");
    assert_eq!(replay.2, first.2);

    let mut changed = flow_json(FLOW_ID);
    changed["output"] = json!({"selected": "B0OTHER"});
    let (status, _, body) = app.send(&changed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "idempotency_key_reused");
    // No header was sent: the message speaks of the flow's version, not of a header.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("higher version") && !message.contains("Idempotency-Key"),
        "{message}"
    );

    // An explicit key scopes by key, not by flow id.
    let bytes = serde_json::to_vec(&changed).unwrap();
    let request = app
        .post(())
        .header("idempotency-key", "run-42")
        .body(Body::from(bytes))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.services.queue.depth().await.unwrap(), 2);
    let request = app
        .post(())
        .header("idempotency-key", "run-42")
        .body(Body::from(serde_json::to_vec(&flow_json(FLOW_ID)).unwrap()))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
}

#[tokio::test]
async fn schema_errors_name_the_field() {
    let app = app().await;
    let mut bad = flow_json(FLOW_ID);
    bad["steps"][0]["observations"][0]["verdict"] = json!("maybe");
    let (status, _, body) = app.send(&bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"],
        json!({
            "code": "validation_failed",
            "message": "unknown variant `maybe`, expected one of `kept`, `rejected`, `selected`",
            "field": "steps[0].observations[0].verdict"
        })
    );
    let mut bad = flow_json(FLOW_ID);
    bad["steps"][0]["candidates_out"] = json!(6000);
    let (_, _, body) = app.send(&bad).await;
    assert_eq!(body["error"]["field"], "steps[0].candidates_out");
    // Nesting inside a free-form field: refused at serde_json's depth limit, never a crash.
    let deep = format!(
        "{{\"id\": \"{FLOW_ID}\", \"pipeline\": \"p\", \"status\": \"running\", \
         \"started_at\": \"2026-11-21T10:00:00Z\", \"input\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let request = app.post(()).body(Body::from(deep)).unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too deep is refused, not a crash"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error_code(&body), "validation_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("64 levels"),
        "{body}"
    );
}

#[tokio::test]
async fn compressed_bodies_are_accepted_and_bombs_are_refused() {
    let app = app().await;
    let bytes = serde_json::to_vec(&flow_json(FLOW_ID)).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&bytes).unwrap();
    let request = app
        .post(())
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip.finish().unwrap()))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);

    let other = flow_json("01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b12");
    let zstd = zstd::bulk::compress(&serde_json::to_vec(&other).unwrap(), 3).unwrap();
    let request = app
        .post(())
        .header(header::CONTENT_ENCODING, "zstd")
        .body(Body::from(zstd))
        .unwrap();
    assert_eq!(app.call(request).await.0, StatusCode::ACCEPTED);

    // 64 MiB of spaces compress to a few KiB: refused without inflating it all.
    let bomb = zstd::bulk::compress(&vec![b' '; 64 * 1024 * 1024], 19).unwrap();
    assert!(bomb.len() < MAX_BODY);
    let request = app
        .post(())
        .header(header::CONTENT_ENCODING, "zstd")
        .body(Body::from(bomb))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&MAX_BODY.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_are_stored_once() {
    let app = app().await;
    let bytes = serde_json::to_vec(&flow_json(FLOW_ID)).unwrap();
    let requests = (0..16).map(|_| {
        let request = app.post(()).body(Body::from(bytes.clone())).unwrap();
        let router = app.router.clone();
        tokio::spawn(async move { router.oneshot(request).await.unwrap() })
    });
    let mut accepted = 0;
    for response in futures::future::join_all(requests).await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::CONFLICT => {
                let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(error_code(&body), "idempotency_key_in_flight");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(accepted >= 1);
    assert_eq!(
        app.services.queue.depth().await.unwrap(),
        1,
        "one job, however many repeats"
    );
}

#[tokio::test]
async fn the_callers_request_id_is_echoed_and_carried_into_the_job() {
    let app = app().await;
    let request = app
        .post(())
        .header("x-request-id", "trace-4711")
        .body(Body::from(serde_json::to_vec(&flow_json(FLOW_ID)).unwrap()))
        .unwrap();
    let (status, headers, _) = app.call(request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["x-request-id"], "trace-4711");
    let jobs = app
        .services
        .queue
        .claim(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs[0].request_id.as_deref(), Some("trace-4711"));

    let (_, headers, _) = app.get("/healthz").await;
    let generated = headers["x-request-id"].to_str().unwrap();
    assert_eq!(
        generated.len(),
        36,
        "a UUID when the caller sends none: {generated}"
    );
}

#[tokio::test]
async fn steps_pushed_while_running_are_merged_then_superseded() {
    let app = app().await;
    let push = json!({
        "version": 1,
        "pipeline": "competitor_selection",
        "started_at": "2026-11-21T10:00:00.000Z",
        "steps": [{"seq": 0, "name": "keyword_generation", "kind": "generate",
                   "output": {"keywords": ["laptop stand"]}}]
    });
    let uri = format!("/api/v1/flows/{FLOW_ID}/steps");
    let (status, _, body) = app.post_to(&uri, &push).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"flow_id": FLOW_ID, "status": "queued"}));
    let (status, headers, _) = app.post_to(&uri, &push).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        headers["idempotent-replayed"], "true",
        "a retried push is accepted once"
    );

    let mut second = flow_json(FLOW_ID);
    second["version"] = json!(2);
    let second = json!({"version": 2, "pipeline": "competitor_selection",
                        "started_at": "2026-11-21T10:00:00.000Z", "steps": second["steps"]});
    assert_eq!(app.post_to(&uri, &second).await.0, StatusCode::ACCEPTED);
    app.drain_all().await;
    let (status, flow) = app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flow["status"], "running", "the partial trail is visible");
    assert_eq!(flow["step_count"], 2);
    assert_eq!(
        flow["largest_elimination"]["step"],
        "price_and_rating_filter"
    );
    assert_eq!(flow["largest_elimination"]["eliminated"], 4970);

    // The finished flow replaces every pushed step.
    let mut finished = flow_json(FLOW_ID);
    finished["version"] = json!(3);
    assert_eq!(app.send(&finished).await.0, StatusCode::ACCEPTED);
    app.drain_all().await;
    let (_, flow) = app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await;
    assert_eq!(flow["status"], "succeeded");
    assert_eq!(flow["step_count"], 1);

    // Bad pushes are told apart like bad flows.
    let (status, _, body) = app
        .post_to(
            &uri,
            &json!({"pipeline": "p", "started_at": "2026-11-21T10:00:00Z", "steps": []}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(body["error"]["field"], "steps");
    let mut wrong_id = push.clone();
    wrong_id["id"] = json!("01936b2e-7c4a-7cc0-9a57-000000000000");
    let (status, _, body) = app.post_to(&uri, &wrong_id).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("id"))
    );
    let (status, _, body) = app.post_to("/api/v1/flows/not-a-uuid/steps", &push).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let request = app.post_at(&uri).body(Body::from("{\"steps\": [")).unwrap();
    let (status, _, body) = app.call(request).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
}

#[tokio::test]
async fn steps_that_create_candidates_are_accepted_and_eliminate_nothing() {
    let app = app().await;
    let mut flow = flow_json(FLOW_ID);
    flow["steps"] = json!([
        {"seq": 0, "name": "generate_keywords", "kind": "generate",
         "candidates_in": 0, "candidates_out": 3},
        {"seq": 1, "name": "catalog_search", "kind": "retrieve",
         "candidates_in": 3, "candidates_out": 5000},
        {"seq": 2, "name": "price_filter", "kind": "filter",
         "candidates_in": 5000, "candidates_out": 30}
    ]);
    let (status, _, body) = app.send(&flow).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.drain(FLOW_ID).await;
    let (_, list) = app.get_json("/api/v1/flows").await;
    let largest = &list["flows"][0]["largest_elimination"];
    assert_eq!(
        largest["step"], "price_filter",
        "expanding steps are never the largest drop"
    );
    for kind in ["retrieve", "generate"] {
        let (_, found) = app
            .get_json(&format!(
                "/api/v1/flows?step_kind={kind}&min_eliminated=0.000001"
            ))
            .await;
        assert_eq!(
            found["flows"],
            json!([]),
            "a {kind} step eliminated nothing"
        );
        // …but at least nothing: a share of 0 is reached by every counted step.
        let (_, found) = app
            .get_json(&format!("/api/v1/flows?step_kind={kind}&min_eliminated=0"))
            .await;
        assert_eq!(found["flows"][0]["id"], FLOW_ID, "{kind} at a share of 0");
    }
    // The statistics read times in the same forms as the list.
    let (status, stats) = app
        .get_json("/api/v1/stats/reasons?since=2026-11-21&until=2026-11-22T00:00")
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");

    // A step that chooses among its input still cannot grow it.
    let mut grown = flow_json("01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b12");
    grown["steps"][0]["candidates_in"] = json!(3);
    grown["steps"][0]["candidates_out"] = json!(5000);
    let (status, _, body) = app.send(&grown).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "steps[0].candidates_out");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_malformed_json_even_after_a_schema_error() {
    let app = app().await;
    let steps = format!("/api/v1/flows/{FLOW_ID}/steps");
    // serde meets a schema error in each before the syntax error.
    for body in [r#"[1,2"#, r#"{"pipeline":"a"}garbage"#, r#"{"id": "x", "#] {
        for uri in ["/api/v1/flows", steps.as_str()] {
            let request = app.post_at(uri).body(Body::from(body)).unwrap();
            let (status, _, answer) = app.call(request).await;
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(
                (status, error_code(&answer)),
                (StatusCode::BAD_REQUEST, "malformed_json"),
                "POST {uri} {body}: {answer}"
            );
        }
    }
    // JSON of the wrong shape stays a schema error on both.
    for uri in ["/api/v1/flows", steps.as_str()] {
        let request = app.post_at(uri).body(Body::from(r#"{"id": "x"}"#)).unwrap();
        let (status, _, answer) = app.call(request).await;
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "POST {uri}: {answer}"
        );
    }
}

#[tokio::test]
async fn numbers_come_back_with_their_digits_or_are_refused_naming_the_field() {
    // Issue #14, item 3: a number storage would change is refused with its field...
    let app = app().await;
    let template = serde_json::to_string(&flow_json(FLOW_ID)).unwrap();
    let body = template.replace(
        r#""price":9.99"#,
        r#""price":9.99,"n":123456789012345678901234567890"#,
    );
    assert_ne!(body, template);
    let request = app.post(()).body(Body::from(body)).unwrap();
    let (status, _, answer) = app.call(request).await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(
        answer["error"]["field"],
        "steps[0].observations[0].attributes.n"
    );
    // A score is a double: an integer score past 2^53 would come back changed.
    let body = template.replace(r#""score":0.12"#, r#""score":9007199254740993"#);
    assert_ne!(body, template);
    let request = app.post(()).body(Body::from(body)).unwrap();
    let (status, _, answer) = app.call(request).await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "steps[0].observations[0].score");
    // ...and every number it keeps comes back with the same value, digit for digit.
    let body = template
        .replace(
            r#""price":9.99"#,
            r#""price":9.99,"max":18446744073709551615,"min":-9223372036854775808,"tiny":5e-324"#,
        )
        .replace(
            r#""input":{"title""#,
            r#""input":{"id":9007199254740993,"title""#,
        );
    let request = app.post(()).body(Body::from(body)).unwrap();
    let (status, _, _) = app.call(request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.drain(FLOW_ID).await;
    let (_, _, flow) = app.get(&format!("/api/v1/flows/{FLOW_ID}")).await;
    let flow = String::from_utf8(flow).unwrap();
    assert!(flow.contains(r#""id":9007199254740993"#), "{flow}");
    let (_, _, observations) = app
        .get(&format!("/api/v1/flows/{FLOW_ID}/steps/2/observations"))
        .await;
    let observations = String::from_utf8(observations).unwrap();
    for kept in [
        r#""max":18446744073709551615"#,
        r#""min":-9223372036854775808"#,
        r#""tiny":5e-324"#,
    ] {
        assert!(observations.contains(kept), "{kept} in {observations}");
    }
}

#[tokio::test]
async fn a_time_utc_cannot_write_is_refused_where_it_arrives_and_never_breaks_a_list() {
    // Valid RFC 3339 whose instant is the year 10000 or the year -1 in UTC: before, the
    // first was stored and read back as 1970, the second made every flow list a 500.
    let app = app().await;
    let out_of_range = ["9999-12-31T23:59:59-01:00", "0000-01-01T00:30:00+01:00"];
    for text in out_of_range {
        for (in_step, key, field) in [
            (false, "started_at", "started_at"),
            (false, "ended_at", "ended_at"),
            (true, "started_at", "steps[0].started_at"),
            (true, "ended_at", "steps[0].ended_at"),
        ] {
            let mut flow = flow_json(FLOW_ID);
            let target = if in_step {
                &mut flow["steps"][0]
            } else {
                &mut flow
            };
            target[key] = json!(text);
            let (status, _, answer) = app.send(&flow).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field}={text}: {answer}"
            );
            assert_eq!(error_code(&answer), "validation_failed");
            assert_eq!(answer["error"]["field"], field, "{answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("outside the years RFC 3339 can write"),
                "{answer}"
            );
        }
        // Pushed steps go through the same rule.
        let push =
            json!({"steps": [{"seq": 0, "name": "s", "kind": "filter", "started_at": text}]});
        let (status, _, answer) = app
            .post_to(&format!("/api/v1/flows/{FLOW_ID}/steps"), &push)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["field"], "steps[0].started_at", "{answer}");
        // So do the time parameters of the list, the statistics and the usage report.
        let encoded = text.replace('+', "%2B");
        for uri in [
            format!("/api/v1/flows?since={encoded}"),
            format!("/api/v1/flows?until={encoded}"),
            format!("/api/v1/stats/reasons?until={encoded}"),
        ] {
            let (status, answer) = app.get_json(&uri).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {answer}");
            assert_eq!(error_code(&answer), "validation_failed", "{uri}");
        }
        for uri in [
            format!("/api/v1/admin/usage?since={encoded}"),
            format!("/api/v1/admin/usage?until={encoded}"),
        ] {
            let (status, answer) = app.admin("GET", &uri, None).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {answer}");
            assert_eq!(error_code(&answer), "validation_failed", "{uri}");
        }
    }
    // The first and last instants UTC can write are kept, in any offset, and read back as
    // the same instants; the list stays whole.
    let mut first = other_flow(1);
    first["started_at"] = json!("0000-01-01T01:00:00+01:00");
    first["ended_at"] = json!("0000-01-01T00:00:00.001Z");
    let mut last = other_flow(2);
    last["started_at"] = json!("9999-12-31T22:59:59.999-01:00");
    last["ended_at"] = Value::Null;
    for flow in [&first, &last] {
        let (status, _, answer) = app.send(flow).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    app.drain_all().await;
    let (status, list) = app.get_json("/api/v1/flows").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let started: Vec<&str> = list["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["started_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        started,
        ["9999-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z"]
    );
    // The usage report's default start, 30 days before the earliest until, stays writable.
    let (status, usage) = app
        .admin("GET", "/api/v1/admin/usage?until=0000-01-02", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["since"], "0000-01-01T00:00:00Z", "{usage}");
}
