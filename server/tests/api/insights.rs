//! Pipeline insights (`/pipelines`, `/pipelines/{name}`): flows seeded with known reason
//! counts across two days give exactly those counts in every series, the comparison, the
//! share distribution and the funnel; each chart segment links to the flows list filtered to
//! its pipeline, time and reason, and that list holds exactly the flows counted.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowtrail_app::api::insights::{PipelineHtml, PipelinesHtml};
use flowtrail_domain::accounts::Role;
use flowtrail_domain::analysis::insights::{InsightQuery, Side, overview, pipeline};
use flowtrail_types::StatsBucket;
use flowtrail_types::insights::ShareDistribution;
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::{TestApp, app, flow_json};

const PIPELINE: &str = "insight pipeline/v2";

/// A flow of [`PIPELINE`] at `at` whose filter step took 20 candidates in and rejected
/// `price` for `price_out_of_range` and `brand` for `brand_mismatch` (no observation
/// recorded: the counts alone must be findable).
fn flow(at: &str, price: u64, brand: u64, status: &str) -> (String, Value) {
    let id = uuid::Uuid::now_v7().to_string();
    let mut flow = flow_json(&id);
    flow["pipeline"] = json!(PIPELINE);
    // Deployed versions: v41 rejected mostly on brand, v42 mostly on price.
    flow["tags"] = json!({"version": if price > brand { "v42" } else { "v41" }, "env": "prod"});
    flow["started_at"] = json!(at);
    flow["ended_at"] = json!(at);
    flow["status"] = json!(status);
    flow["steps"] = json!([{
        "seq": 1, "name": "price_filter", "kind": "filter",
        "candidates_in": 20, "candidates_out": 20 - price - brand,
        "reasons": {"price_out_of_range": price, "brand_mismatch": brand},
        "capture": "counts_only", "observations": []
    }]);
    (id, flow)
}

fn time(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap()
}

async fn team_id(app: &TestApp) -> i64 {
    app.services
        .metadata
        .team_by_slug("default")
        .await
        .unwrap()
        .expect("the test team")
        .id
}

/// Sends the flows and waits until they are stored; their ids.
async fn seed(app: &TestApp, flows: Vec<(String, Value)>) -> Vec<String> {
    let mut ids = Vec::new();
    for (id, flow) in flows {
        let (status, _, body) = app.send(&flow).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(id);
    }
    app.drain_all().await;
    ids
}

async fn viewer_cookie(app: &TestApp) -> String {
    app.services
        .create_user(
            "insight@example.org",
            "correct horse",
            "default",
            Role::Viewer,
        )
        .await
        .unwrap();
    app.sign_in("insight@example.org", "correct horse").await
}

/// A server function called as the page calls it: status and body text.
async fn server_fn(app: &TestApp, path: &str, cookie: &str, body: Value) -> (StatusCode, String) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, cookie)
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    (status, String::from_utf8_lossy(&body).to_string())
}

#[tokio::test]
async fn every_series_and_the_comparison_hold_the_seeded_counts_and_link_to_their_flows() {
    let app = app().await;
    let team = team_id(&app).await;
    // Day one: 10 % of the rejections are price_out_of_range; day two: 60 %.
    let mut flows = Vec::new();
    for (at, status) in [
        ("2026-11-10T10:05:00Z", "succeeded"),
        ("2026-11-10T10:40:00Z", "succeeded"),
        ("2026-11-10T11:10:00Z", "succeeded"),
        ("2026-11-10T11:50:00Z", "failed"),
    ] {
        flows.push(flow(at, 1, 9, status));
    }
    for at in [
        "2026-11-11T10:00:00Z",
        "2026-11-11T10:59:59.999Z",
        "2026-11-11T12:00:00Z",
        "2026-11-11T12:30:00Z",
    ] {
        flows.push(flow(at, 6, 4, "succeeded"));
    }
    let ids = seed(&app, flows).await;

    let query = InsightQuery {
        pipeline: PIPELINE.into(),
        range: Side {
            since: time("2026-11-10T00:00:00Z"),
            until: time("2026-11-11T00:00:00Z"),
            tag: None,
        },
        versus: Some(Side {
            since: time("2026-11-11T00:00:00Z"),
            until: time("2026-11-12T00:00:00Z"),
            tag: None,
        }),
        bucket: StatsBucket::Hour,
    };
    let insight = pipeline(&app.services, team, &query)
        .await
        .unwrap()
        .expect("the pipeline is the team's");
    let (a, b) = (&insight.range, insight.versus.as_ref().unwrap());
    assert_eq!((a.flows, a.failed, b.flows, b.failed), (4, 1, 4, 0));

    let mix = &a.steps[0];
    assert_eq!(mix.step, "price_filter");
    assert_eq!(mix.codes, ["brand_mismatch", "price_out_of_range"]);
    assert_eq!(mix.totals, [36, 4]);
    let buckets: Vec<(OffsetDateTime, Vec<u128>)> = mix
        .buckets
        .iter()
        .map(|b| (b.start, b.counts.clone()))
        .collect();
    assert_eq!(
        buckets,
        [
            (time("2026-11-10T10:00:00Z"), vec![18, 2]),
            (time("2026-11-10T11:00:00Z"), vec![18, 2]),
        ]
    );
    let mut bins = vec![0; flowtrail_types::insights::SHARE_BINS];
    bins[ShareDistribution::bin(0.5)] = 4;
    assert_eq!(mix.shares.bins, bins, "every flow eliminated half");
    assert_eq!((mix.shares.flows, mix.shares.capped), (4, false));
    let funnel = a.funnel.as_ref().unwrap();
    assert_eq!(funnel.steps[0].median_in, 20.0);
    assert_eq!(funnel.steps[0].median_out, 10.0);
    assert!(!funnel.capped);

    let other = &b.steps[0];
    assert_eq!(other.codes, ["price_out_of_range", "brand_mismatch"]);
    assert_eq!(other.totals, [24, 16]);
    let buckets: Vec<(OffsetDateTime, Vec<u128>)> = other
        .buckets
        .iter()
        .map(|b| (b.start, b.counts.clone()))
        .collect();
    assert_eq!(
        buckets,
        [
            (time("2026-11-11T10:00:00Z"), vec![12, 8]),
            (time("2026-11-11T12:00:00Z"), vec![12, 8]),
        ]
    );

    // The same figures by deploy tag over both days: v41 beside v42, from the steps (the
    // hourly rollups have no tags), on the same buckets.
    let both_days = Side {
        since: time("2026-11-10T00:00:00Z"),
        until: time("2026-11-12T00:00:00Z"),
        tag: Some(("version".into(), "v41".into())),
    };
    let by_tag = InsightQuery {
        pipeline: PIPELINE.into(),
        versus: Some(Side {
            tag: Some(("version".into(), "v42".into())),
            ..both_days.clone()
        }),
        range: both_days,
        bucket: StatsBucket::Hour,
    };
    let tagged = pipeline(&app.services, team, &by_tag)
        .await
        .unwrap()
        .unwrap();
    let tagged_versus = tagged.versus.as_ref().unwrap();
    assert_eq!(
        tagged.range.steps[0], insight.range.steps[0],
        "v41 is day one"
    );
    assert_eq!(tagged_versus.steps[0], b.steps[0], "v42 is day two");
    assert_eq!(
        (tagged.range.flows, tagged.range.failed, tagged_versus.flows),
        (4, 1, 4)
    );
    assert_eq!(
        tagged.range.funnel,
        a.funnel.clone().map(|mut f| {
            f.capped = false;
            f
        })
    );

    // The page: the comparison in words, and each segment a link to exactly its flows.
    let cookie = viewer_cookie(&app).await;
    let params = json!({
        "since": "2026-11-10T00:00:00Z", "until": "2026-11-11T00:00:00Z", "bucket": "hour",
        "vs_since": "2026-11-11T00:00:00Z",
    });
    let (status, html) = server_fn(
        &app,
        PipelineHtml::PATH,
        &cookie,
        json!({"name": PIPELINE, "params": params.clone()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let html: String = serde_json::from_str(&html).unwrap();
    assert!(html.contains("4 (10 %)"), "price share of day one: {html}");
    assert!(html.contains("24 (60 %)"), "price share of day two: {html}");
    assert!(
        html.contains("-50.0 pts"),
        "the change of price_out_of_range"
    );
    let link = "/?pipeline=insight%20pipeline%2Fv2&amp;since=2026-11-10T11%3A00%3A00Z&amp;until=2026-11-10T12%3A00%3A00Z&amp;step=price_filter&amp;reason=price_out_of_range";
    assert!(
        html.contains(link),
        "the 11:00 segment of price_out_of_range: {html}"
    );
    // That link's flows: the two of 11:00 that day, no other.
    let (status, listed) = app
        .get_json(
            &link
                .replace("&amp;", "&")
                .replacen("/?", "/api/v1/flows?", 1),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let mut listed: Vec<&str> = listed["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut want = vec![ids[2].as_str(), ids[3].as_str()];
    want.sort();
    assert_eq!(listed, want);

    // By tag on the page: the links carry the tag.
    let (status, html) = server_fn(
        &app,
        PipelineHtml::PATH,
        &cookie,
        json!({"name": PIPELINE, "params": {
            "since": "2026-11-10T00:00:00Z", "until": "2026-11-12T00:00:00Z", "bucket": "hour",
            "tag": "version:v41", "vs_tag": "version:v42",
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let html: String = serde_json::from_str(&html).unwrap();
    assert!(html.contains("tagged version=v41"), "{html}");
    assert!(html.contains("24 (60 %)"), "v42's price share: {html}");
    assert!(
        html.contains("&amp;tag=version%3Av41&amp;step=price_filter&amp;reason=price_out_of_range"),
        "v41's segments link to v41's flows: {html}"
    );
    assert!(
        html.contains("tag=version%3Av42\">Open these flows"),
        "{html}"
    );

    // The whole page, rendered on the server for the browser.
    let request = Request::get(
        "/pipelines/insight%20pipeline%2Fv2?since=2026-11-10T00%3A00%3A00Z&until=2026-11-11T00%3A00%3A00Z&bucket=day",
    )
    .header(header::COOKIE, &cookie)
    .body(Body::empty())
    .unwrap();
    let (status, _, page) = app.call(request).await;
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("price_filter</h2>"), "{page}");
    assert!(
        page.contains("2026-11-10: 4 × price_out_of_range — open these flows"),
        "the day's segment, labelled: {page}"
    );

    // The overview lists the pipeline.
    let (status, html) = server_fn(&app, PipelinesHtml::PATH, &cookie, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("/pipelines/insight%20pipeline%2Fv2"),
        "{html}"
    );
}

#[tokio::test]
async fn the_overview_counts_days_failures_and_finds_the_step_that_moved() {
    let app = app().await;
    let team = team_id(&app).await;
    let now = OffsetDateTime::now_utc();
    let at = |ago: time::Duration| (now - ago).format(&Rfc3339).unwrap();
    let mut flows = Vec::new();
    // Three days ago: the filter rejects 10 % of 20; in the last hours, 60 %.
    for i in 0..3 {
        flows.push(flow(
            &at(time::Duration::days(3) + time::Duration::minutes(i)),
            1,
            1,
            "succeeded",
        ));
    }
    for i in 0..2 {
        flows.push(flow(
            &at(time::Duration::hours(2) + time::Duration::minutes(i)),
            6,
            6,
            "failed",
        ));
    }
    // Older than the 14 days shown: not counted.
    flows.push(flow(&at(time::Duration::days(20)), 1, 1, "succeeded"));
    let ids = seed(&app, flows.clone()).await;

    let before = overview(&app.services, team, now).await.unwrap();
    let p = before
        .pipelines
        .iter()
        .find(|p| p.pipeline == PIPELINE)
        .expect("the pipeline is listed");
    assert_eq!(p.days.len(), 14);
    assert_eq!(p.days.iter().map(|d| d.flows).sum::<u64>(), 5);
    assert_eq!(p.days.iter().map(|d| d.failed).sum::<u64>(), 2);
    assert_eq!((p.flows_7d, p.failed_7d), (5, 2));
    let mover = p.mover.as_ref().expect("the filter moved");
    assert_eq!(mover.step, "price_filter");
    assert!((mover.baseline - 0.1).abs() < 1e-9, "{mover:?}");
    assert!((mover.recent - 0.6).abs() < 1e-9, "{mover:?}");
    assert_eq!((mover.recent_runs, mover.baseline_runs), (2, 3));

    // The counts follow the flows (hourly rollups kept in the write's transaction): a
    // second version fails a flow that had succeeded, and retention deletes a failed one.
    let mut corrected = flows[0].1.clone();
    corrected["version"] = json!(2);
    corrected["status"] = json!("failed");
    seed(&app, vec![(ids[0].clone(), corrected)]).await;
    let deleted = app
        .services
        .metadata
        .delete_flows(team, std::slice::from_ref(&ids[3]))
        .await
        .unwrap();
    assert_eq!(deleted.deleted.flows, 1);
    let after = overview(&app.services, team, now).await.unwrap();
    let p = after
        .pipelines
        .iter()
        .find(|p| p.pipeline == PIPELINE)
        .expect("the pipeline is listed");
    assert_eq!(p.days.iter().map(|d| d.flows).sum::<u64>(), 4);
    assert_eq!(p.days.iter().map(|d| d.failed).sum::<u64>(), 2);
    assert_eq!((p.flows_7d, p.failed_7d), (4, 2));
}

#[tokio::test]
async fn a_pipeline_page_refuses_what_the_flows_list_refuses_and_hides_other_teams() {
    let app = app().await;
    seed(&app, vec![flow("2026-11-10T10:00:00Z", 1, 1, "succeeded")]).await;
    let cookie = viewer_cookie(&app).await;
    let call = |name: &str, params: Value| {
        let body = json!({"name": name, "params": params});
        let (app, cookie) = (&app, cookie.clone());
        async move { server_fn(app, PipelineHtml::PATH, &cookie, body).await }
    };
    for (params, status, says) in [
        (json!({"since": "yesterday"}), 422, "since"),
        (
            json!({"since": "2026-11-10T00:00:00Z", "until": "2026-11-09T00:00:00Z"}),
            422,
            "before",
        ),
        (json!({"vs_until": "2026-11-09T00:00:00Z"}), 422, "vs_since"),
        (json!({"bucket": "minute"}), 422, "hour or day"),
        (json!({"tag": "no-colon"}), 422, "tag"),
        (json!({"vs_tag": "no-colon"}), 422, "vs_tag"),
        (
            json!({"since": "2000-01-01T00:00:00Z", "bucket": "hour"}),
            422,
            "buckets",
        ),
        (json!({"until": "10000-01-01T00:00:00Z"}), 422, "until"),
        // A second range that would end past 9999: refused (it once panicked unanswered).
        (json!({"vs_since": "9999-12-30T00:00:00Z"}), 422, "vs_until"),
        // The default start is kept in the years a time may be written in.
        (
            json!({"until": "0000-01-03T00:00:00Z"}),
            200,
            "0000-01-01 00:00:00 UTC to 0000-01-03",
        ),
        // The address's query string, as the page sends it, is what is read: a parameter
        // given twice is refused (as the flows list refuses it), not one of them picked.
        (
            json!({"bucket": "day", "query": "bucket=hour&bucket=day"}),
            422,
            "bucket is given more than once",
        ),
        (
            json!({"query": "tag=version%3A%FF"}),
            422,
            "tag is not UTF-8",
        ),
        (
            json!({"query": "utm=a&utm=b&bucket=day"}),
            200,
            "Counted per day",
        ),
    ] {
        let (got, body) = call(PIPELINE, params.clone()).await;
        assert_eq!(got.as_u16(), status, "{params}: {body}");
        assert!(body.contains(says), "{params}: {body}");
    }
    let (got, body) = call("no such pipeline", json!({})).await;
    assert_eq!(got, StatusCode::NOT_FOUND, "{body}");
    let (got, body) = call(PIPELINE, json!({"since": " ", "until": ""})).await;
    assert_eq!(got, StatusCode::OK, "blank means not given: {body}");
    // A name with `%` in it is read once from the address, not decoded twice.
    let (_, mut odd) = flow("2026-11-10T10:00:00Z", 1, 1, "succeeded");
    odd["pipeline"] = json!("100% x%41");
    odd["id"] = json!(uuid::Uuid::now_v7().to_string());
    seed(&app, vec![(String::new(), odd)]).await;
    let request = Request::get("/pipelines/100%25%20x%2541")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let (status, _, page) = app.call(request).await;
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("100% x%41</h1>"), "{page}");
    // The pages read their address whole: a filter given twice is refused on the page too.
    for (path, says) in [
        (
            "/pipelines/100%25%20x%2541?bucket=hour&bucket=day",
            "bucket is given more than once",
        ),
        (
            "/?pipeline=a&pipeline=b",
            "pipeline is given more than once",
        ),
        ("/?reason=%FF", "reason is not UTF-8"),
        ("/pipelines/%FF", "not UTF-8 once percent-decoded"),
    ] {
        let request = Request::get(path)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let (_, _, page) = app.call(request).await;
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains(says), "{path}: {page}");
    }
    // Without a session: refused.
    let (got, _) = server_fn(&app, PipelinesHtml::PATH, "", json!({})).await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_flows_list_filters_by_step_and_reason_exactly() {
    let app = app().await;
    let pipeline = "reason filter";
    let with = |steps: Value| {
        let id = uuid::Uuid::now_v7().to_string();
        let mut flow = flow_json(&id);
        flow["pipeline"] = json!(pipeline);
        flow["steps"] = steps;
        (id, flow)
    };
    let step = |seq: u32, name: &str, reasons: Value| {
        json!({"seq": seq, "name": name, "kind": "filter", "candidates_in": 10,
               "candidates_out": 5, "reasons": reasons, "capture": "counts_only",
               "observations": []})
    };
    let ids = seed(
        &app,
        vec![
            with(json!([step(1, "a", json!({"x": 2}))])),
            with(json!([step(1, "b", json!({"x": 1}))])),
            with(json!([step(1, "a", json!({"x": 0, "y": 3}))])),
            with(json!([step(1, "a", json!({"x_y": 1}))])),
            with(json!([
                step(1, "a", json!({"X": 1})),
                step(2, "x", json!({}))
            ])),
            with(json!([step(1, "a ", json!({"x ": 1}))])),
        ],
    )
    .await;
    let listed = |query: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app
                .get_json(&format!("/api/v1/flows?pipeline=reason%20filter&{query}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            let mut got: Vec<String> = page["flows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_string())
                .collect();
            got.sort();
            got
        }
    };
    let want = |which: &[usize]| {
        let mut want: Vec<String> = which.iter().map(|i| ids[*i].clone()).collect();
        want.sort();
        want
    };
    assert_eq!(
        listed("reason=x").await,
        want(&[0, 1]),
        "a count of 0 is no rejection"
    );
    assert_eq!(listed("step=a&reason=x").await, want(&[0]));
    assert_eq!(listed("step=b").await, want(&[1]));
    assert_eq!(listed("reason=x_y").await, want(&[3]), "codes match whole");
    assert_eq!(listed("reason=X").await, want(&[4]), "and by case");
    assert_eq!(listed("step=a").await, want(&[0, 2, 3, 4]));
    assert_eq!(listed("step=x").await, want(&[4]));
    assert_eq!(
        listed("reason=x%20").await,
        want(&[5]),
        "spaces are part of a code"
    );
    assert_eq!(listed("step=a%20&reason=x%20").await, want(&[5]));
    assert_eq!(listed("step=a&reason=y&status=succeeded").await, want(&[2]));
    let (status, answer) = app.get_json("/api/v1/flows?reason=x&reason=y").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["field"], "reason");
}
