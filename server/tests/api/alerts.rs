//! Drift alerts over HTTP: rules refused naming their field, a seeded shift that opens
//! exactly one alert with the right numbers and examples, noise that does not, signed
//! webhook deliveries, retries of a failing receiver, resolution.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use flowtrail_domain::alerts::{AlertOptions, evaluate_all, signature};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::{TestApp, app, error_code, flow_json};

/// A request the receiver got: its headers and body.
type Received = (HeaderMap, Vec<u8>);

/// A webhook receiver on a local port: what it was sent, and the status it answers.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Received>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
}

impl Receiver {
    async fn start(status: u16) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver
            .status
            .store(status, std::sync::atomic::Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let state = receiver.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: HeaderMap, body: axum::body::Bytes| async move {
                    state.seen.lock().unwrap().push((headers, body.to_vec()));
                    StatusCode::from_u16(state.status.load(std::sync::atomic::Ordering::SeqCst))
                        .unwrap()
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (receiver, url)
    }

    fn seen(&self) -> Vec<(HeaderMap, Value)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, body)| (headers.clone(), serde_json::from_slice(body).unwrap()))
            .collect()
    }

    /// Every body sent carries the HMAC-SHA256 of its exact bytes with `secret`.
    fn all_signed_with(&self, secret: &str) -> bool {
        self.seen.lock().unwrap().iter().all(|(headers, body)| {
            headers
                .get("x-flowtrail-signature")
                .and_then(|v| v.to_str().ok())
                == Some(signature(secret, body).as_str())
        })
    }
}

fn at(minutes_ago: i64) -> String {
    (OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago))
        .format(&Rfc3339)
        .unwrap()
}

/// `n` flows of pipeline `ranker`, `minutes_ago`, tagged `version`, whose filter step
/// eliminates 100 candidates: `price` of them for `price_out_of_range`, the rest for
/// `rating_below_threshold`.
async fn seed(app: &TestApp, n: u32, minutes_ago: i64, version: &str, price: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::now_v7().to_string();
        let mut flow = flow_json(&id);
        flow["pipeline"] = json!("ranker");
        flow["started_at"] = json!(at(minutes_ago + i64::from(i % 5)));
        flow["ended_at"] = Value::Null;
        flow["tags"] = json!({"version": version});
        let step = &mut flow["steps"][0];
        step["name"] = json!("price_filter");
        step["candidates_in"] = json!(130);
        step["candidates_out"] = json!(30);
        step["reasons"] =
            json!({"price_out_of_range": price, "rating_below_threshold": 100 - price});
        let (status, _, answer) = app.send(&flow).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        ids.push(id);
    }
    app.drain_all().await;
    ids
}

/// Retries due at once, and every rule measured at every pass (as `flowtrail admin
/// evaluate-alerts` does), whatever its interval.
fn fast() -> AlertOptions {
    AlertOptions {
        retry_base: Duration::from_millis(1),
        every_rule: true,
        ..AlertOptions::default()
    }
}

#[tokio::test]
async fn rules_are_refused_naming_their_field_and_never_show_their_secret() {
    let app = app().await;
    let rule = json!({
        "name": "price drift", "pipeline": "ranker", "step": "price_filter",
        "metric": "reason_share", "reason": "price_out_of_range", "comparison": "shift",
        "threshold": 0.2, "webhook_url": "http://127.0.0.1:9/hook", "secret": "a-secret-of-16-chars"
    });
    // Only admins.
    let (status, _, _) = app.post_to("/api/v1/admin/alert-rules", &rule).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (change, field) in [
        (json!({"step": null}), "step"),
        (json!({"reason": null}), "reason"),
        (json!({"metric": "median"}), "metric"),
        (json!({"threshold": 2}), "threshold"),
        (json!({"window_minutes": 0}), "window_minutes"),
        (json!({"secret": null}), "secret"),
        (json!({"webhook_url": "file:///etc/passwd"}), "webhook_url"),
        // Never deliverable, or a password shown to every admin: refused when saved.
        (json!({"webhook_url": "http://"}), "webhook_url"),
        (json!({"webhook_url": "http://[::1]:99999/"}), "webhook_url"),
        (
            json!({"webhook_url": "https://user:pass@hooks.example/x"}),
            "webhook_url",
        ),
        (
            json!({"webhook_url": "https://token@hooks.example/x"}),
            "webhook_url",
        ),
        (json!({"webhook_url": "http:///path"}), "webhook_url"),
        (json!({"webhook_url": "http://h:0/"}), "webhook_url"),
        (json!({"webhook_url": "https://h:00000/"}), "webhook_url"),
        (json!({"webhook_url": "http://@h/"}), "webhook_url"),
        (json!({"min_flows": 0}), "min_flows"),
        (json!({"interval_minutes": 0}), "interval_minutes"),
        (json!({"interval_minutes": 1441}), "interval_minutes"),
    ] {
        let mut body = rule.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = app
            .admin("POST", "/api/v1/admin/alert-rules", Some(&body))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{change}: {answer}"
        );
        assert_eq!(error_code(&answer), "validation_failed");
        assert_eq!(answer["error"]["field"], field, "{change}: {answer}");
    }
    let (status, created) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&rule))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["baseline_days"], 7);
    assert_eq!(created["min_flows"], 20);
    assert_eq!(created["has_secret"], true);
    assert!(created.get("secret").is_none(), "{created}");
    let (status, answer) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&rule))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let id = created["id"].as_i64().unwrap();
    // PATCH changes what it names, clears what it sends as null, checks the whole rule.
    let (status, patched) = app
        .admin(
            "PATCH",
            &format!("/api/v1/admin/alert-rules/{id}"),
            Some(&json!({"threshold": 0.3, "webhook_url": null, "secret": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["threshold"], 0.3);
    assert_eq!(patched["webhook_url"], Value::Null);
    assert_eq!(patched["has_secret"], false);
    let (status, answer) = app
        .admin(
            "PATCH",
            &format!("/api/v1/admin/alert-rules/{id}"),
            Some(&json!({"metric": "failed_share"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "step");
    // A misspelt field is refused, not ignored (as every admin body); so is null for a field
    // that cannot be cleared, on PATCH as on POST. The rule is unchanged.
    let mut misspelt = rule.clone();
    misspelt["name"] = json!("another");
    misspelt["treshold"] = json!(0.5);
    for (method, path, body) in [
        ("POST", "/api/v1/admin/alert-rules".to_string(), misspelt),
        (
            "PATCH",
            format!("/api/v1/admin/alert-rules/{id}"),
            json!({"treshold": 0.5}),
        ),
        (
            "PATCH",
            format!("/api/v1/admin/alert-rules/{id}"),
            json!({"interval_minutes": null}),
        ),
        (
            "PATCH",
            format!("/api/v1/admin/alert-rules/{id}"),
            json!({"threshold": null, "name": "x"}),
        ),
    ] {
        let (status, answer) = app.admin(method, &path, Some(&body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {body}: {answer}"
        );
        assert_eq!(error_code(&answer), "validation_failed", "{answer}");
    }
    let (_, list) = app.admin("GET", "/api/v1/admin/alert-rules", None).await;
    assert_eq!(list["rules"][0]["threshold"], 0.3, "{list}");
    assert_eq!(list["rules"][0]["name"], rule["name"], "{list}");
    let (status, list) = app.admin("GET", "/api/v1/admin/alert-rules", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["rules"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("a-secret-of-16-chars"));
    for missing in [
        "/api/v1/admin/alert-rules/999999",
        "/api/v1/admin/alert-rules/x",
    ] {
        let (status, _) = app.admin("PATCH", missing, Some(&json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        let (status, _) = app.admin("DELETE", missing, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
    let (status, _) = app
        .admin("DELETE", &format!("/api/v1/admin/alert-rules/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, list) = app.admin("GET", "/api/v1/admin/alert-rules", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["rules"], json!([]));
    for query in [
        "state=closed",
        "state=open&state=resolved",
        "limit=5&limit=6",
    ] {
        let (status, answer) = app
            .admin("GET", &format!("/api/v1/admin/alerts?{query}"), None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_seeded_shift_opens_one_alert_with_its_numbers_and_a_signed_webhook() {
    let app = app().await;
    // The baseline, two days ago on v41: price_out_of_range is 10 % of the eliminations.
    seed(&app, 30, 2 * 24 * 60, "v41", 10).await;
    // The last hour on v42: 60 %.
    let recent = seed(&app, 30, 10, "v42", 60).await;
    // Decoys, the newest flows: their filter eliminated nothing and counted no reason; only
    // its reasoning names the code. A text search would take them as the examples.
    for _ in 0..3 {
        let id = uuid::Uuid::now_v7().to_string();
        let mut flow = flow_json(&id);
        flow["pipeline"] = json!("ranker");
        flow["started_at"] = json!(at(1));
        flow["ended_at"] = Value::Null;
        flow["tags"] = json!({"version": "v42"});
        let step = &mut flow["steps"][0];
        step["name"] = json!("price_filter");
        step["candidates_in"] = json!(130);
        step["candidates_out"] = json!(130);
        step["reasons"] = json!({});
        step["reasoning"] = json!("price_out_of_range was not checked today");
        let (status, _, answer) = app.send(&flow).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    app.drain_all().await;
    let (receiver, url) = Receiver::start(200).await;
    let secret = "whsec-0123456789abcdef";
    let shift = json!({
        "name": "price share shift", "pipeline": "ranker", "step": "price_filter",
        "metric": "reason_share", "reason": "price_out_of_range", "comparison": "shift",
        "threshold": 0.2, "window_minutes": 60, "baseline_days": 7, "min_flows": 20,
        "webhook_url": url, "secret": secret
    });
    let (status, rule) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&shift))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    // Noise: the same shift, but asking for more flows than there are.
    let mut noisy = shift.clone();
    noisy["name"] = json!("needs more flows");
    noisy["min_flows"] = json!(100);
    let (status, _) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&noisy))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The median elimination share is 100/130 in both ranges: no shift there.
    let steady = json!({
        "name": "elimination steady", "pipeline": "ranker", "step": "price_filter",
        "metric": "elimination_share", "comparison": "shift", "threshold": 0.05
    });
    let (status, _) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&steady))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let report = evaluate_all(&app.services, &fast()).await.unwrap().unwrap();
    assert_eq!(
        (
            report.rules,
            report.opened,
            report.too_few_flows,
            report.delivered
        ),
        (3, 1, 1, 1),
        "{report:?}"
    );
    let (status, alerts) = app.admin("GET", "/api/v1/admin/alerts", None).await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    let alerts = alerts["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert["rule_id"], rule["id"]);
    assert_eq!(alert["state"], "open");
    assert_eq!(alert["value"], 0.6);
    assert_eq!(alert["baseline"], 0.1);
    assert_eq!(alert["flows"], 33);
    assert_eq!(alert["baseline_flows"], 30);
    // The examples counted the reason at the watched step: none of the decoys.
    let examples = alert["example_flow_ids"].as_array().unwrap();
    assert_eq!(examples.len(), 3, "{alert}");
    for example in examples {
        assert!(
            recent.contains(&example.as_str().unwrap().to_string()),
            "{example}"
        );
    }
    assert_eq!(alert["deliveries"][0]["delivered"], true, "{alert}");
    assert_eq!(alert["deliveries"][0]["status_code"], 200);
    // The receiver got one body, the alert, signed with the rule's secret.
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1["event"], "opened");
    assert_eq!(seen[0].1["id"], alert["id"]);
    assert_eq!(seen[0].1["value"], 0.6);
    assert!(receiver.all_signed_with(secret));
    assert!(!receiver.all_signed_with("another-secret-of-16"));

    // Evaluated again while it holds: kept, not opened again, not delivered again.
    let report = evaluate_all(&app.services, &fast()).await.unwrap().unwrap();
    assert_eq!(
        (report.opened, report.kept, report.delivered),
        (0, 1, 0),
        "{report:?}"
    );
    assert_eq!(receiver.seen().len(), 1);

    // Another threshold changes what the rule says: the alert opened under the old one is
    // resolved at once, and the webhook told; the next evaluation opens nothing (the shift
    // no longer passes).
    let id = rule["id"].as_i64().unwrap();
    let (status, _) = app
        .admin(
            "PATCH",
            &format!("/api/v1/admin/alert-rules/{id}"),
            Some(&json!({"threshold": 0.6})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let report = evaluate_all(&app.services, &fast()).await.unwrap().unwrap();
    assert_eq!((report.opened, report.delivered), (0, 0), "{report:?}");
    let (_, alerts) = app
        .admin("GET", "/api/v1/admin/alerts?state=resolved", None)
        .await;
    assert_eq!(alerts["alerts"][0]["state"], "resolved", "{alerts}");
    assert!(alerts["alerts"][0]["resolved_at"].is_string());
    // It still says what fired: the terms it opened under, not the rule's new ones.
    assert_eq!(alerts["alerts"][0]["threshold"], 0.2, "{alerts}");
    // Even after the rule is changed beyond recognition.
    let (status, _) = app
        .admin(
            "PATCH",
            &format!("/api/v1/admin/alert-rules/{id}"),
            Some(
                &json!({"metric": "flows_per_hour", "step": null, "reason": null,
                         "comparison": "below", "threshold": 50}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, alerts) = app
        .admin("GET", "/api/v1/admin/alerts?state=resolved", None)
        .await;
    let past = &alerts["alerts"][0];
    assert_eq!(
        (
            &past["metric"],
            &past["comparison"],
            &past["threshold"],
            &past["step"],
            &past["reason"]
        ),
        (
            &json!("reason_share"),
            &json!("shift"),
            &json!(0.2),
            &json!("price_filter"),
            &json!("price_out_of_range")
        ),
        "{alerts}"
    );
    let (_, open) = app
        .admin("GET", "/api/v1/admin/alerts?state=open", None)
        .await;
    assert_eq!(open["alerts"], json!([]));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].1["event"], "resolved");
    assert!(receiver.all_signed_with(secret));
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_each_attempt_logged() {
    let app = app().await;
    seed(&app, 25, 10, "v42", 80).await;
    let (receiver, url) = Receiver::start(500).await;
    let rule = json!({
        "name": "price share high", "pipeline": "ranker", "step": "price_filter",
        "metric": "reason_share", "reason": "price_out_of_range", "comparison": "above",
        "threshold": 0.5, "min_flows": 20, "webhook_url": url, "secret": "0123456789abcdef"
    });
    let (status, _) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&rule))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let options = AlertOptions {
        max_attempts: 3,
        ..fast()
    };
    let report = evaluate_all(&app.services, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (report.opened, report.delivery_failures),
        (1, 1),
        "{report:?}"
    );
    // Each evaluation makes the attempts that are due: the second fails too, then the
    // receiver recovers and the third is delivered; nothing after that.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = evaluate_all(&app.services, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.delivery_failures, 1, "{report:?}");
    receiver
        .status
        .store(204, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = evaluate_all(&app.services, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = evaluate_all(&app.services, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (report.delivered, report.delivery_failures),
        (0, 0),
        "{report:?}"
    );
    let (_, alerts) = app.admin("GET", "/api/v1/admin/alerts", None).await;
    let deliveries = alerts["alerts"][0]["deliveries"]
        .as_array()
        .unwrap()
        .clone();
    let summary: Vec<(u64, bool, Option<u64>, bool)> = deliveries
        .iter()
        .map(|d| {
            (
                d["attempt"].as_u64().unwrap(),
                d["delivered"].as_bool().unwrap(),
                d["status_code"].as_u64(),
                d["next_attempt_at"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, false, Some(500), false),
            (2, false, Some(500), false),
            (3, true, Some(204), false)
        ],
        "{deliveries:?}"
    );
    assert!(deliveries[0]["error"].as_str().unwrap().contains("500"));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    assert!(receiver.all_signed_with("0123456789abcdef"));
    // One delivery id and one body for the event, whatever the attempt.
    let alert_id = alerts["alerts"][0]["id"].as_i64().unwrap();
    for (i, (headers, body)) in seen.iter().enumerate() {
        assert_eq!(
            headers["x-flowtrail-delivery"].to_str().unwrap(),
            format!("{alert_id}-opened")
        );
        assert_eq!(
            headers["x-flowtrail-attempt"].to_str().unwrap(),
            (i + 1).to_string()
        );
        assert_eq!(body, &seen[0].1);
    }
}

#[tokio::test]
async fn a_changed_or_deleted_rule_resolves_its_open_alert_and_an_unsent_opening_never_follows() {
    let app = app().await;
    seed(&app, 25, 10, "v42", 80).await;
    let (receiver, url) = Receiver::start(500).await;
    let secret = "0123456789abcdef";
    let rule = json!({
        "name": "price share high", "pipeline": "ranker", "step": "price_filter",
        "metric": "reason_share", "reason": "price_out_of_range", "comparison": "above",
        "threshold": 0.5, "min_flows": 20, "webhook_url": url, "secret": secret
    });
    let (status, created) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&rule))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/api/v1/admin/alert-rules/{}", created["id"]);
    let options = AlertOptions {
        max_attempts: 3,
        ..fast()
    };
    // Opened; its delivery fails and waits for a retry.
    let report = evaluate_all(&app.services, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (report.opened, report.delivery_failures),
        (1, 1),
        "{report:?}"
    );
    // A new name changes nothing the alert means: still open, nothing sent.
    let (status, _) = app
        .admin("PATCH", &path, Some(&json!({"name": "renamed"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, open) = app
        .admin("GET", "/api/v1/admin/alerts?state=open", None)
        .await;
    assert_eq!(open["alerts"].as_array().unwrap().len(), 1, "{open}");
    assert_eq!(receiver.seen().len(), 1);
    // Another threshold does: resolved now (its delivery fails too).
    let (status, _) = app
        .admin("PATCH", &path, Some(&json!({"threshold": 0.9})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, open) = app
        .admin("GET", "/api/v1/admin/alerts?state=open", None)
        .await;
    assert_eq!(open["alerts"], json!([]));
    // The receiver recovers. The opening, never delivered, is superseded by the resolution:
    // not sent after it. (The resolution's retry waits for the server's backoff.)
    receiver
        .status
        .store(204, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = evaluate_all(&app.services, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (report.opened, report.delivered, report.delivery_failures),
        (0, 0, 0),
        "{report:?}"
    );
    let seen = receiver.seen();
    let events: Vec<&str> = seen
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["opened", "resolved"]);
    let alert_id = seen[0].1["id"].as_i64().unwrap();
    assert_eq!(
        seen[1].0["x-flowtrail-delivery"].to_str().unwrap(),
        format!("{alert_id}-resolved")
    );
    assert!(receiver.all_signed_with(secret));
    let (_, alerts) = app.admin("GET", "/api/v1/admin/alerts", None).await;
    let deliveries = alerts["alerts"][0]["deliveries"].as_array().unwrap();
    assert!(
        deliveries.iter().any(|d| d["event"] == "opened"
            && d["error"]
                .as_str()
                .is_some_and(|e| e.contains("superseded"))),
        "{deliveries:?}"
    );
    assert!(
        deliveries
            .iter()
            .any(|d| d["event"] == "resolved" && d["next_attempt_at"].is_string()),
        "the resolution is retried: {deliveries:?}"
    );

    // Back to the old threshold: opened again (delivered); deleting the rule resolves it and
    // tells the webhook before the rule and its alerts go.
    let (status, _) = app
        .admin("PATCH", &path, Some(&json!({"threshold": 0.5})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let report = evaluate_all(&app.services, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.opened, report.delivered), (1, 1), "{report:?}");
    let (status, _) = app.admin("DELETE", &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[2].1["event"], "opened");
    assert_eq!(seen[3].1["event"], "resolved");
    assert_eq!(seen[3].1["state"], "resolved");
    assert!(receiver.all_signed_with(secret));
    let (_, alerts) = app.admin("GET", "/api/v1/admin/alerts", None).await;
    assert_eq!(alerts["alerts"], json!([]));
}

#[tokio::test]
async fn a_rule_is_evaluated_at_its_own_interval_and_on_demand_whatever_it() {
    let app = app().await;
    seed(&app, 25, 10, "v42", 80).await;
    let hourly = json!({
        "name": "hourly", "pipeline": "ranker", "step": "price_filter",
        "metric": "reason_share", "reason": "price_out_of_range", "comparison": "above",
        "threshold": 0.5, "interval_minutes": 60
    });
    let (status, created) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&hourly))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["interval_minutes"], 60);
    let mut every_pass = hourly.clone();
    every_pass["name"] = json!("every pass");
    every_pass
        .as_object_mut()
        .unwrap()
        .remove("interval_minutes");
    let (status, default) = app
        .admin("POST", "/api/v1/admin/alert-rules", Some(&every_pass))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(default["interval_minutes"], 1, "by default, every pass");

    // Passes as `serve` makes them: each rule when its interval has gone by.
    let scheduled = AlertOptions {
        every_rule: false,
        ..fast()
    };
    // First pass: both measured (never evaluated before).
    let report = evaluate_all(&app.services, &scheduled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.rules, report.not_due), (2, 0), "{report:?}");
    // A pass a minute later (as the clock goes, the rules' last evaluation a minute older):
    // the hourly rule is not due.
    for rule in [&created, &default] {
        let id = rule["id"].as_i64().unwrap();
        let minute_ago = flowtrail_domain::millis::now_ms() - 61_000;
        app.services
            .metadata
            .rule_evaluated(id, minute_ago)
            .await
            .unwrap();
    }
    let report = evaluate_all(&app.services, &scheduled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.rules, report.not_due), (1, 1), "{report:?}");
    // On demand (`flowtrail admin evaluate-alerts`): every rule.
    let report = evaluate_all(&app.services, &fast()).await.unwrap().unwrap();
    assert_eq!((report.rules, report.not_due), (2, 0), "{report:?}");
    // The interval can be changed.
    let (status, patched) = app
        .admin(
            "PATCH",
            &format!("/api/v1/admin/alert-rules/{}", created["id"]),
            Some(&json!({"interval_minutes": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["interval_minutes"], 5);
}

/// An admin sends the alerts page's form twice: with an interval, and without the field (as a
/// page loaded before it existed sends it).
#[tokio::test]
async fn the_alerts_page_form_creates_a_rule_with_its_interval_or_the_default() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use flowtrail_app::api::admin::CreateAlertRule;
    use leptos::server_fn::ServerFn;
    let app = app().await;
    app.services
        .create_user(
            "alerts-admin@example.org",
            "correct horse",
            "default",
            flowtrail_domain::accounts::Role::Admin,
        )
        .await
        .unwrap();
    let cookie = app
        .sign_in("alerts-admin@example.org", "correct horse")
        .await;
    for (name, interval, want) in [
        ("every quarter", "&interval_minutes=15", 15),
        ("default", "", 1),
    ] {
        let body = format!(
            "name={name}&pipeline=ranker&step=price_filter&metric=reason_share\
             &reason=price_out_of_range&comparison=above&threshold=0.5&window_minutes=\
             {interval}&baseline_days=&min_flows=&webhook_url=&secret="
        );
        let request = Request::post(CreateAlertRule::PATH)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, &cookie)
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(body))
            .unwrap();
        let (status, _, answer) = app.call(request).await;
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(answer["interval_minutes"], want, "{name}: {answer}");
    }
}
