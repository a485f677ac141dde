//! The ingest path: a submitted flow stored once with verified payloads, the idempotency
//! window, and how flows and steps pushes are parsed and validated.

use std::time::Duration;

use flowtrail_domain::Error;
use flowtrail_domain::ingest::{self, Limits};
use flowtrail_types::{Capture, FlowRecord, Observation};
use serde_json::json;
use uuid::Uuid;

use crate::fixture::{at, flow, fresh, query};

#[tokio::test]
async fn a_submitted_flow_is_stored_once_with_verified_payloads() {
    let f = fresh().await;
    let record = flow("competitor_selection", 0, &[]);
    let body = serde_json::to_vec(&record).unwrap();
    let accepted = ingest::submit(&f.services, f.team, None, &body, None)
        .await
        .unwrap();
    assert_eq!((accepted.flow_id, accepted.replayed), (record.id, false));
    let again = ingest::submit(&f.services, f.team, None, &body, None)
        .await
        .unwrap();
    assert!(again.replayed, "flow id + version is the default key");

    let jobs = f
        .services
        .queue
        .claim(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    for _ in 0..2 {
        // Processing twice has no visible effect.
        ingest::store_job(&f.services, &jobs[0]).await.unwrap();
    }
    let page = f
        .services
        .metadata
        .list_flows(f.team, &query())
        .await
        .unwrap();
    assert_eq!(page.flows.len(), 1);
    let reference = f
        .services
        .metadata
        .step_payload(f.team, record.id, 1)
        .await
        .unwrap()
        .unwrap()
        .payload
        .expect("the filter step has observations");
    let json = f.services.payloads.get_json(&reference).await.unwrap();
    let observations: Vec<Observation> = serde_json::from_slice(&json).unwrap();
    assert_eq!(observations, record.steps[1].observations);
    assert_eq!(
        f.services
            .metadata
            .step_payload(f.team, record.id, 0)
            .await
            .unwrap()
            .map(|step| step.payload),
        Some(None),
        "a step without observations has no payload"
    );
}

#[tokio::test]
async fn after_the_idempotency_window_a_repeat_is_new_but_still_stored_once() {
    let f = fresh().await;
    let record = flow("p", 0, &[]);
    let body = serde_json::to_vec(&record).unwrap();
    ingest::submit(&f.services, f.team, None, &body, None)
        .await
        .unwrap();
    for job in f
        .services
        .queue
        .claim(10, Duration::from_secs(60))
        .await
        .unwrap()
    {
        ingest::store_job(&f.services, &job).await.unwrap();
        f.services.queue.complete(job.id).await.unwrap();
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 1000;
    assert_eq!(
        f.services.queue.purge_done(now - 3_600_000).await.unwrap(),
        0,
        "inside the window"
    );
    assert_eq!(f.services.queue.purge_done(now).await.unwrap(), 1);

    let again = ingest::submit(&f.services, f.team, None, &body, None)
        .await
        .unwrap();
    assert!(!again.replayed, "the key was forgotten");
    for job in f
        .services
        .queue
        .claim(10, Duration::from_secs(60))
        .await
        .unwrap()
    {
        ingest::store_job(&f.services, &job).await.unwrap();
    }
    let page = f
        .services
        .metadata
        .list_flows(f.team, &query())
        .await
        .unwrap();
    assert_eq!(
        page.flows.len(),
        1,
        "(team, flow id, version) is still unique"
    );
}

#[test]
fn malformed_json_and_schema_errors_are_told_apart_with_a_path() {
    assert!(matches!(
        ingest::parse_flow(b"{\"id\": "),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        ingest::parse_flow(b"not json"),
        Err(Error::Malformed { .. })
    ));
    let mut value = serde_json::to_value(flow("p", 0, &[])).unwrap();
    value["steps"][1]["kind"] = json!("sieve");
    match ingest::parse_flow(&serde_json::to_vec(&value).unwrap()) {
        Err(Error::Validation { field, message }) => {
            assert_eq!(field.as_deref(), Some("steps[1].kind"));
            assert!(message.contains("sieve"), "{message}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    let mut value = serde_json::to_value(flow("p", 0, &[])).unwrap();
    value["steps"][1]["observations"][0]["score"] = json!("high");
    match ingest::parse_flow(&serde_json::to_vec(&value).unwrap()) {
        Err(Error::Validation { field, .. }) => {
            assert_eq!(field.as_deref(), Some("steps[1].observations[0].score"))
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn validation_names_the_limit_and_the_field() {
    let limits = Limits::default();
    let ok = flow("p", 0, &[]);
    assert!(ingest::validate(&ok, &limits).is_ok());
    let field_of = |record: &FlowRecord, limits: &Limits| match ingest::validate(record, limits) {
        Err(Error::Validation { field, .. }) => field.unwrap_or_default(),
        other => panic!("expected a validation error, got {other:?}"),
    };

    let mut twice = ok.clone();
    twice.steps[2].seq = 1;
    assert_eq!(field_of(&twice, &limits), "steps[2].seq");
    let mut blank = ok.clone();
    blank.pipeline = " ".into();
    assert_eq!(field_of(&blank, &limits), "pipeline");
    let mut grew = ok.clone();
    grew.steps[1].candidates_out = Some(6000);
    assert_eq!(field_of(&grew, &limits), "steps[1].candidates_out");
    let mut backwards = ok.clone();
    backwards.ended_at = Some(at(-10));
    assert_eq!(field_of(&backwards, &limits), "ended_at");
    let mut empty_id = ok.clone();
    empty_id.steps[1].observations[0].candidate_id = String::new();
    assert_eq!(
        field_of(&empty_id, &limits),
        "steps[1].observations[0].candidate_id"
    );
    let small = Limits {
        max_steps: 2,
        ..Limits::default()
    };
    assert_eq!(field_of(&ok, &small), "steps");
    let small = Limits {
        max_observations_per_step: 1,
        ..Limits::default()
    };
    assert_eq!(field_of(&ok, &small), "steps[1].observations");
    let mut counts_only = ok.clone();
    counts_only.steps[1].capture = Capture::CountsOnly;
    assert_eq!(field_of(&counts_only, &limits), "steps[1].observations");
    let mut huge = ok.clone();
    huge.steps[1].candidates_in = Some(u64::MAX);
    assert_eq!(field_of(&huge, &limits), "steps[1].candidates_in");
    let mut huge_reason = ok.clone();
    huge_reason.steps[1]
        .reasons
        .insert("price".into(), u64::MAX);
    assert_eq!(field_of(&huge_reason, &limits), "steps[1].reasons.price");
    let mut nil = ok;
    nil.id = Uuid::nil();
    assert_eq!(field_of(&nil, &limits), "id");
}

#[test]
fn a_steps_push_is_checked_like_a_flow() {
    let limits = Limits::default();
    let id = Uuid::now_v7();
    let push = |body: serde_json::Value| {
        ingest::prepare_steps(
            &limits,
            1,
            id,
            None,
            &serde_json::to_vec(&body).unwrap(),
            None,
        )
    };
    let base = json!({"pipeline": "p", "started_at": "2026-11-21T10:00:00Z",
                      "steps": [{"seq": 0, "name": "s", "kind": "filter"}]});
    let job = push(base.clone()).unwrap();
    assert_eq!(job.idempotency_key, format!("{id}:1:steps:0"));
    let mut other = base.clone();
    other["id"] = json!(Uuid::now_v7());
    match push(other) {
        Err(Error::Validation { field, .. }) => assert_eq!(field.as_deref(), Some("id")),
        other => panic!("{other:?}"),
    }
    let mut empty = base.clone();
    empty["steps"] = json!([]);
    assert!(matches!(push(empty), Err(Error::Validation { .. })));
    let mut twice = base.clone();
    twice["steps"] = json!([{"seq": 0, "name": "s", "kind": "filter"},
                            {"seq": 0, "name": "t", "kind": "rank"}]);
    match push(twice) {
        Err(Error::Validation { field, .. }) => {
            assert_eq!(field.as_deref(), Some("steps[1].seq"))
        }
        other => panic!("{other:?}"),
    }
    match push(json!({"pipeline": "p", "steps": []})) {
        // The missing field is named, though serde reports it at the enclosing object.
        Err(Error::Validation { field, .. }) => {
            assert_eq!(field.as_deref(), Some("started_at"))
        }
        other => panic!("{other:?}"),
    }
}
