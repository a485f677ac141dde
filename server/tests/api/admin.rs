//! The admin API: members and roles, API keys, retention (preview, sweep, pins, the storage
//! check) and usage. Run on both profiles: in the scale-out pass every payload is in S3.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use flowtrail_domain::accounts::{Role, Scope};
use flowtrail_domain::retention::SweepOptions;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::{FLOW_ID, app, app_with_storage, error_code, flow_json};

#[tokio::test]
async fn the_admin_api_takes_an_admin_key_or_an_admin_session_only() {
    let app = app().await;
    let uri = "/api/v1/admin/members";
    assert_eq!(
        app.send_as(None, "GET", uri, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    for scope in [Scope::Ingest, Scope::Read, Scope::All] {
        let key = app
            .services
            .create_api_key("default", "k", scope)
            .await
            .unwrap();
        let (status, body) = app.send_as(Some(&key), "GET", uri, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{scope:?}");
        assert_eq!(error_code(&body), "forbidden");
    }
    // An admin key reads nothing else.
    let (status, _) = app.admin("GET", "/api/v1/flows", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.admin("GET", uri, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"members": []}));

    // Sessions: an admin may, a member may not.
    for (email, role) in [
        ("boss@example.org", Role::Admin),
        ("m@example.org", Role::Member),
    ] {
        app.services
            .create_user(email, "correct horse", "default", role)
            .await
            .unwrap();
    }
    let boss = app.sign_in("boss@example.org", "correct horse").await;
    let member = app.sign_in("m@example.org", "correct horse").await;
    assert_eq!(
        app.send_in_session(&boss, "GET", uri, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.send_in_session(&member, "GET", uri, None).await.0,
        StatusCode::FORBIDDEN
    );
    // Another team's admin sees only their own team.
    app.services
        .create_user("other@example.org", "correct horse", "other", Role::Admin)
        .await
        .unwrap();
    let other = app.sign_in("other@example.org", "correct horse").await;
    let (_, body) = app.send_in_session(&other, "GET", uri, None).await;
    let emails: Vec<&str> = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, vec!["other@example.org"]);
}

#[tokio::test]
async fn members_are_added_changed_and_removed_and_it_applies_on_the_next_request() {
    let app = app().await;
    app.send(&flow_json(FLOW_ID)).await;
    app.drain(FLOW_ID).await;
    app.services
        .create_user("boss@example.org", "correct horse", "default", Role::Admin)
        .await
        .unwrap();
    let members = "/api/v1/admin/members";
    // A new address: an account with a password shown once.
    let (status, added) = app
        .admin(
            "POST",
            members,
            Some(&json!({"email": "New@Example.org ", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["email"], "new@example.org");
    assert_eq!(added["role"], "viewer");
    let password = added["initial_password"].as_str().unwrap().to_string();
    assert!(password.len() >= 16);
    let user_id = added["user_id"].as_i64().unwrap();
    let (_, list) = app.admin("GET", members, None).await;
    assert!(
        !list.to_string().contains(&password),
        "the password is never listed"
    );
    // Again: a conflict; wrong shapes name the field.
    let (status, body) = app
        .admin(
            "POST",
            members,
            Some(&json!({"email": "new@example.org", "role": "viewer"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict")
    );
    for (bad, field) in [
        (json!({"email": "x@example.org", "role": "owner"}), "role"),
        (json!({"email": "no-at-sign", "role": "viewer"}), "email"),
        (
            json!({"email": "a b@example.org", "role": "viewer"}),
            "email",
        ),
        (json!({"email": "a@b", "role": "viewer"}), "email"),
        (
            json!({"email": "x@@example.org", "role": "viewer"}),
            "email",
        ),
        (
            json!({"email": "e\u{0}vil@example.org", "role": "viewer"}),
            "email",
        ),
        (
            json!({"email": "\"><img>@example.org", "role": "viewer"}),
            "email",
        ),
        (json!({"role": "viewer"}), "email"),
    ] {
        let (status, body) = app.admin("POST", members, Some(&bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["error"]["field"], field, "{bad}");
    }

    // The viewer reads but may not pin.
    let viewer = app.sign_in("new@example.org", &password).await;
    let pin = format!("/api/v1/flows/{FLOW_ID}/pin");
    assert_eq!(
        app.send_in_session(&viewer, "GET", "/api/v1/flows", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.send_in_session(&viewer, "PUT", &pin, None).await.0,
        StatusCode::FORBIDDEN
    );
    // Made a member: the same session may pin on its next request.
    let member = format!("{members}/{user_id}");
    let (status, body) = app
        .admin("PATCH", &member, Some(&json!({"role": "member"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "member");
    assert_eq!(
        app.send_in_session(&viewer, "PUT", &pin, None).await.0,
        StatusCode::NO_CONTENT
    );
    // Removed: the same session reads nothing on its next request.
    assert_eq!(
        app.admin("DELETE", &member, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send_in_session(&viewer, "GET", "/api/v1/flows", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.admin("DELETE", &member, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin("DELETE", &format!("{members}/abc"), None).await.0,
        StatusCode::NOT_FOUND
    );

    // The last admin can be neither demoted nor removed.
    let boss = app
        .services
        .metadata
        .user_by_email("boss@example.org")
        .await
        .unwrap()
        .unwrap()
        .id;
    let boss_uri = format!("{members}/{boss}");
    let (status, body) = app
        .admin("PATCH", &boss_uri, Some(&json!({"role": "viewer"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        app.admin("DELETE", &boss_uri, None).await.0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_without_their_secret_and_revoked_at_once() {
    let app = app().await;
    let keys = "/api/v1/admin/api-keys";
    let (status, created) = app
        .admin(
            "POST",
            keys,
            Some(&json!({"name": "ci pipeline", "scope": "ingest"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("ftk_"));
    assert_eq!(created["scope"], "ingest");
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    let id = created["id"].as_i64().unwrap();

    let (status, _) = app
        .send_as(
            Some(&secret),
            "POST",
            "/api/v1/flows",
            Some(&flow_json(FLOW_ID)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, list) = app.admin("GET", keys, None).await;
    assert!(
        !list.to_string().contains(&secret),
        "secrets are never listed"
    );
    let listed = list["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(listed["name"], "ci pipeline");
    assert_eq!(listed["revoked_at"], Value::Null);
    // Its last use is written in the background, off the ingest path.
    let mut used = Value::Null;
    for _ in 0..500 {
        let (_, list) = app.admin("GET", keys, None).await;
        used = list["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .unwrap()["last_used_at"]
            .clone();
        if used.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(used.is_string(), "last_used_at was never set");

    assert_eq!(
        app.admin("DELETE", &format!("{keys}/{id}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = app
        .send_as(
            Some(&secret),
            "POST",
            "/api/v1/flows",
            Some(&flow_json(FLOW_ID)),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(
        app.admin("DELETE", &format!("{keys}/{id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = app.admin("GET", keys, None).await;
    assert!(list.to_string().contains("revoked_at\":\""), "{list}");

    for (bad, field) in [
        (json!({"name": "x", "scope": "root"}), "scope"),
        (json!({"name": "  ", "scope": "read"}), "name"),
        (json!({"name": "a\u{0}b", "scope": "read"}), "name"),
        (json!({"name": "no scope"}), "scope"),
    ] {
        let (status, body) = app.admin("POST", keys, Some(&bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["error"]["field"], field);
    }
    // The new admin scope administers.
    let (_, admin) = app
        .admin(
            "POST",
            keys,
            Some(&json!({"name": "ops", "scope": "admin"})),
        )
        .await;
    let admin = admin["key"].as_str().unwrap();
    assert_eq!(
        app.send_as(Some(admin), "GET", "/api/v1/admin/usage", None)
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_server_within_a_second() {
    let a = app().await;
    // A second server over the same engines.
    let services = std::sync::Arc::new(flowtrail_domain::Services::open(&a.storage).await.unwrap());
    let config = flowtrail_server::HttpConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        a.storage.data_dir.join("site"),
    );
    let b_router = flowtrail_server::build_app(services, &config)
        .await
        .unwrap();
    let (_, created) = a
        .admin(
            "POST",
            "/api/v1/admin/api-keys",
            Some(&json!({"name": "r", "scope": "read"})),
        )
        .await;
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap();
    let read_on_b = || {
        let request = axum::http::Request::get("/api/v1/flows")
            .header("authorization", format!("Bearer {key}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let router = b_router.clone();
        async move {
            use tower::ServiceExt;
            router.oneshot(request).await.unwrap().status()
        }
    };
    assert_eq!(read_on_b().await, StatusCode::OK, "cached on server b now");
    let revoked = std::time::Instant::now();
    assert_eq!(
        a.admin("DELETE", &format!("/api/v1/admin/api-keys/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    while read_on_b().await == StatusCode::OK {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "server b still took the key after a second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read_on_b().await, StatusCode::UNAUTHORIZED);
}

/// A flow of `pipeline` started `days_ago` days (plus `n` minutes) ago, with an observation
/// naming candidate `candidate`.
fn aged_flow(n: u32, pipeline: &str, days_ago: i64, candidate: &str) -> (String, Value) {
    let id = format!("01936b2e-7c4a-7cc0-9a57-{n:012x}");
    let started = OffsetDateTime::now_utc() - time::Duration::days(days_ago)
        + time::Duration::minutes(i64::from(n));
    let mut flow = flow_json(&id);
    flow["pipeline"] = json!(pipeline);
    flow["started_at"] = json!(started.format(&Rfc3339).unwrap());
    flow["ended_at"] = json!(
        (started + time::Duration::seconds(2))
            .format(&Rfc3339)
            .unwrap()
    );
    flow["steps"][0]["observations"][0]["candidate_id"] = json!(candidate);
    (id, flow)
}

#[tokio::test]
async fn retention_deletes_exactly_what_its_preview_said_everywhere_and_keeps_pins() {
    // Every payload in the object store, so that objects are deleted too.
    let app = app_with_storage(|s| s.payload_inline_max = 0, |_| {}).await;
    let mut expired = Vec::new();
    let mut kept = Vec::new();
    let mut first = Value::Null;
    for n in 0..6 {
        let (id, flow) = aged_flow(n, "old", 10, &format!("GONE{n}"));
        app.send(&flow).await;
        if n == 0 {
            first = flow;
        }
        expired.push(id);
    }
    for n in 10..12 {
        let (id, flow) = aged_flow(n, "old", 1, "RECENT");
        app.send(&flow).await;
        kept.push(id);
    }
    for n in 20..23 {
        let (id, flow) = aged_flow(n, "forever", 20, "FOREVER");
        app.send(&flow).await;
        kept.push(id);
    }
    app.drain_all().await;
    // One expired flow is pinned: it stays.
    let pinned = expired.pop().unwrap();
    assert_eq!(
        app.send_as(
            Some(&app.key.clone()),
            "PUT",
            &format!("/api/v1/flows/{pinned}/pin"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    kept.push(pinned.clone());
    let (_, detail) = app.get_json(&format!("/api/v1/flows/{pinned}")).await;
    assert_eq!(detail["pinned"], true);
    let objects_before = app.services.payloads.list().await.unwrap().len();
    assert_eq!(objects_before, 11, "one object per flow");

    let policy = json!({"default_days": 3, "pipelines": {"forever": null}});
    let (status, preview) = app
        .admin("POST", "/api/v1/admin/retention/preview", Some(&policy))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["flows"], 5, "{preview}");
    let bytes = preview["bytes"].as_u64().unwrap();
    assert!(bytes > 0);
    assert_eq!(
        preview["pipelines"],
        json!([{"pipeline": "old", "flows": 5, "bytes": bytes}])
    );
    // The oldest flow kept is the first of "forever", 20 days ago.
    let oldest = OffsetDateTime::parse(preview["oldest_kept"].as_str().unwrap(), &Rfc3339).unwrap();
    let age = OffsetDateTime::now_utc() - oldest;
    assert!(
        age > time::Duration::days(19) && age < time::Duration::days(21),
        "{oldest}"
    );
    // Previewing saves nothing.
    let (_, state) = app.admin("GET", "/api/v1/admin/retention", None).await;
    assert_eq!(state["default_days"], Value::Null);

    let (status, state) = app
        .admin("PUT", "/api/v1/admin/retention", Some(&policy))
        .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["default_days"], 3);
    assert_eq!(state["pipelines"], json!({"forever": null}));
    let report = app
        .services
        .sweep(&SweepOptions {
            batch: 2,
            ..SweepOptions::default()
        })
        .await
        .unwrap();
    assert!(report.ran);
    assert_eq!(report.deleted.flows, 5);
    assert_eq!(report.deleted.bytes, bytes, "the preview's bytes");
    assert_eq!(report.objects, 5);

    // Gone from the flow pages, the list, search and the statistics; the rest is whole.
    for id in &expired {
        let (status, _) = app.get_json(&format!("/api/v1/flows/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
    }
    let (_, page) = app.get_json("/api/v1/flows?limit=100").await;
    let listed: BTreeSet<String> = page["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, kept.iter().cloned().collect::<BTreeSet<_>>());
    for n in 0..5 {
        let (_, found) = app.get_json(&format!("/api/v1/flows?q=GONE{n}")).await;
        assert_eq!(found["flows"], json!([]), "GONE{n} is still found");
    }
    let (_, found) = app.get_json("/api/v1/flows?q=GONE5").await;
    assert_eq!(
        found["flows"].as_array().unwrap().len(),
        1,
        "the pinned flow is found"
    );
    let since = (OffsetDateTime::now_utc() - time::Duration::days(30))
        .format(&Rfc3339)
        .unwrap();
    let (status, stats) = app
        .get_json(&format!(
            "/api/v1/stats/reasons?pipeline=old&since={}",
            since.replace(':', "%3A").replace('+', "%2B")
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let total: u64 = stats["totals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["code"] == "price_out_of_range")
        .map(|t| t["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        3 * 4100,
        "two recent flows and the pinned one: {stats}"
    );
    for id in &kept {
        let (status, _) = app
            .get_json(&format!("/api/v1/flows/{id}/steps/2/observations"))
            .await;
        assert_eq!(status, StatusCode::OK, "{id}");
    }
    // The objects are gone from the store, and nothing is left behind or missing.
    let objects = app.services.payloads.list().await.unwrap();
    assert_eq!(objects.len(), 6);
    assert!(
        objects
            .iter()
            .all(|(key, _)| !expired.iter().any(|id| key.contains(id.as_str())))
    );
    let check = app.services.check_storage().await.unwrap();
    assert!(check.is_clean(), "{check:?}");
    assert_eq!(check.recent_unreferenced, 0, "{check:?}");
    assert_eq!(check.queued_deletions, 0);
    // The SQL queue's idempotency keys are deleted with the flow: the same body is a new flow
    // again. The Redis queue's age out with the idempotency window (a repeat inside it is
    // answered as before, and not stored again).
    let (status, headers, _) = app.send(&first).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        headers.get("idempotent-replayed").is_some(),
        app.services.redis.is_some()
    );

    // The run is recorded.
    let (_, state) = app.admin("GET", "/api/v1/admin/retention", None).await;
    let run = &state["runs"][0];
    assert_eq!(run["flows_deleted"], 5, "{state}");
    assert_eq!(run["bytes_deleted"], bytes);
    assert!(run["finished_at"].is_string());
    // A second sweep finds nothing more (the re-sent flow is still queued).
    let again = app.services.sweep(&SweepOptions::default()).await.unwrap();
    assert_eq!(again.deleted.flows, 0);
}

#[tokio::test]
async fn a_replaced_or_stale_versions_objects_are_deleted_by_the_next_sweep() {
    let app = app_with_storage(|s| s.payload_inline_max = 0, |_| {}).await;
    let mut flow = flow_json(FLOW_ID);
    app.send(&flow).await;
    app.drain(FLOW_ID).await;
    let (status, _, v1_bundle) = app.get(&format!("/api/v1/flows/{FLOW_ID}/bundle")).await;
    assert_eq!(status, StatusCode::OK);
    flow["version"] = json!(2);
    flow["steps"][0]["observations"][0]["candidate_id"] = json!("B0OTHER");
    app.send(&flow).await;
    app.drain_all().await;
    // A late, different v1 is stale: the worker stores nothing for it, not even an object.
    flow["version"] = json!(1);
    flow["steps"][0]["observations"][0]["candidate_id"] = json!("B0LATE");
    app.send(&flow).await;
    app.drain_all().await;
    let check = app.services.check_storage().await.unwrap();
    assert_eq!(check.objects, 2);
    assert_eq!(
        check.queued_deletions, 1,
        "v1's object is queued: {check:?}"
    );
    let report = app.services.sweep(&SweepOptions::default()).await.unwrap();
    assert_eq!(report.objects, 1);
    let check = app.services.check_storage().await.unwrap();
    assert_eq!((check.objects, check.queued_deletions), (1, 0), "{check:?}");
    assert!(
        check.is_clean() && check.recent_unreferenced == 0,
        "{check:?}"
    );
    // Importing the v1 bundle now skips the flow, but only after putting its object: that
    // object is queued in the import's transaction, and the next sweep deletes it.
    let team = app
        .services
        .metadata
        .team_by_slug("default")
        .await
        .unwrap()
        .unwrap();
    let report = app
        .services
        .import_bundle(
            team.id,
            &v1_bundle,
            flowtrail_domain::flows::bundle::MAX_UNPACKED_BYTES,
        )
        .await
        .unwrap();
    assert_eq!((report.imported, report.skipped), (0, 1));
    let check = app.services.check_storage().await.unwrap();
    assert_eq!((check.objects, check.queued_deletions), (2, 1), "{check:?}");
    app.services.sweep(&SweepOptions::default()).await.unwrap();
    let check = app.services.check_storage().await.unwrap();
    assert_eq!((check.objects, check.queued_deletions), (1, 0), "{check:?}");
    assert!(
        check.is_clean() && check.recent_unreferenced == 0,
        "{check:?}"
    );
    let (status, _) = app
        .get_json(&format!("/api/v1/flows/{FLOW_ID}/steps/2/observations"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn pins_need_a_member_or_a_key_of_scope_all_and_policies_are_checked() {
    let app = app().await;
    app.send(&flow_json(FLOW_ID)).await;
    app.drain(FLOW_ID).await;
    let pin = format!("/api/v1/flows/{FLOW_ID}/pin");
    let ingest = app
        .services
        .create_api_key("default", "i", Scope::Ingest)
        .await
        .unwrap();
    let key = app.key.clone();
    assert_eq!(
        app.send_as(None, "PUT", &pin, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send_as(Some(&ingest), "PUT", &pin, None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.send_as(Some(&key), "PUT", &pin, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send_as(Some(&key), "PUT", &pin, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await.1["pinned"],
        true
    );
    assert_eq!(
        app.send_as(Some(&key), "DELETE", &pin, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get_json(&format!("/api/v1/flows/{FLOW_ID}")).await.1["pinned"],
        false
    );
    let unknown = "/api/v1/flows/01936b2e-7c4a-7cc0-9a57-000000000000/pin";
    assert_eq!(
        app.send_as(Some(&key), "PUT", unknown, None).await.0,
        StatusCode::NOT_FOUND
    );

    // Only an object is a policy (serde would read `[1]` as `{"default_days": 1}`), and a
    // misspelt field is an error, not a policy that keeps everything.
    for bad in [json!([1]), json!([]), json!({"default_day": 3})] {
        for (method, uri) in [
            ("PUT", "/api/v1/admin/retention"),
            ("POST", "/api/v1/admin/retention/preview"),
        ] {
            let (status, body) = app.admin(method, uri, Some(&bad)).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{uri} {bad}: {body}"
            );
        }
    }
    for (bad, field) in [
        (json!({"default_days": 0}), "default_days"),
        (json!({"default_days": 36501}), "default_days"),
        (json!({"default_days": -1}), "default_days"),
        (json!({"default_days": 1.5}), "default_days"),
        (json!({"pipelines": {"ranker": 0}}), "pipelines.ranker"),
        (json!({"pipelines": {"": 3}}), "pipelines"),
    ] {
        for uri in ["/api/v1/admin/retention", "/api/v1/admin/retention/preview"] {
            let method = if uri.ends_with("preview") {
                "POST"
            } else {
                "PUT"
            };
            let (status, body) = app.admin(method, uri, Some(&bad)).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{uri} {bad}: {body}"
            );
            assert_eq!(body["error"]["field"], field, "{uri} {bad}");
        }
    }
    let (status, body) = app
        .admin("PUT", "/api/v1/admin/retention", Some(&json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["default_days"],
        Value::Null,
        "an empty policy keeps everything"
    );
}

#[tokio::test]
async fn usage_counts_what_was_accepted_rejected_and_replayed_per_day_and_pipeline() {
    let app = app().await;
    app.send(&flow_json(FLOW_ID)).await;
    app.send(&flow_json(FLOW_ID)).await; // a replay
    let mut second = flow_json("01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b12");
    second["pipeline"] = json!("ranker");
    app.send(&second).await;
    let mut invalid = flow_json("01936b2e-7c4a-7cc0-9a57-4c1f0e6d2b13");
    invalid["version"] = json!(0);
    let (status, _, _) = app.send(&invalid).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, usage) = app.admin("GET", "/api/v1/admin/usage", None).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let today = OffsetDateTime::now_utc().date().to_string();
    let rows = usage["days"].as_array().unwrap();
    let row = |pipeline: Value| {
        rows.iter()
            .find(|r| r["pipeline"] == pipeline && r["day"] == today)
            .unwrap_or_else(|| panic!("no row for {pipeline}: {usage}"))
            .clone()
    };
    let selection = row(json!("competitor_selection"));
    assert_eq!(
        (
            selection["flows"].clone(),
            selection["steps"].clone(),
            selection["observations"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    let body_len = serde_json::to_vec(&flow_json(FLOW_ID)).unwrap().len();
    assert_eq!(selection["bytes"], body_len);
    assert_eq!(row(json!("ranker"))["flows"], 1);
    let unknown = row(Value::Null);
    assert_eq!(
        (unknown["rejected"].clone(), unknown["replayed"].clone()),
        (json!(1), json!(1))
    );

    // Counts are per whole day: the answer says which days it covers.
    let tomorrow = (OffsetDateTime::now_utc() + time::Duration::days(1)).date();
    let (_, usage) = app
        .admin(
            "GET",
            &format!("/api/v1/admin/usage?since={today}&until={tomorrow}"),
            None,
        )
        .await;
    assert_eq!(usage["since"], format!("{today}T00:00:00Z"), "{usage}");
    assert_eq!(usage["until"], format!("{tomorrow}T00:00:00Z"));
    assert!(!usage["days"].as_array().unwrap().is_empty());
    // `until` is excluded: a range ending at today's midnight holds nothing of today.
    let (_, usage) = app
        .admin("GET", &format!("/api/v1/admin/usage?until={today}"), None)
        .await;
    assert_eq!(usage["days"], json!([]), "{usage}");
    let (_, usage) = app
        .admin(
            "GET",
            &format!("/api/v1/admin/usage?since={today}&until={today}"),
            None,
        )
        .await;
    assert_eq!(usage["days"], json!([]), "an empty range: {usage}");
    for (query, field) in [
        ("since=yesterday", "since"),
        (
            "since=2026-12-01T00:00:00Z&until=2026-11-01T00:00:00Z",
            "since",
        ),
        (
            "since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since",
        ),
        (
            "until=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z",
            "until",
        ),
    ] {
        let (status, body) = app
            .admin("GET", &format!("/api/v1/admin/usage?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
}
