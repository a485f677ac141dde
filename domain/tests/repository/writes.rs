//! Flow writes: a flow round trip, versions, batches, and steps pushed while a flow runs.

use std::time::Duration;

use flowtrail_domain::flows::{FlowFilters, StepPayloads, UpsertOutcome, WriteMode};
use flowtrail_domain::ingest;
use flowtrail_types::{Capture, FlowStatus, StepKind};
use serde_json::json;
use uuid::Uuid;

use crate::fixture::{Fixture, flow, fresh, ids, query, stats_query, step, store};

#[tokio::test]
async fn a_flow_round_trips_with_steps_in_order() {
    let f = fresh().await;
    let record = flow("competitor_selection", 0, &[("env", "prod")]);
    store(&f, &record).await;
    let detail = f
        .services
        .metadata
        .get_flow(f.team, record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.summary.pipeline, "competitor_selection");
    assert_eq!(detail.summary.step_count, 3);
    assert_eq!(detail.summary.tags["env"], "prod");
    assert_eq!(detail.summary.started_at, record.started_at);
    assert_eq!(detail.input, record.input);
    let seqs: Vec<u32> = detail.steps.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2]);
    let filter = &detail.steps[1];
    assert_eq!(filter.kind, StepKind::Filter);
    assert_eq!(
        (filter.candidates_in, filter.candidates_out),
        (Some(5000), Some(30))
    );
    assert_eq!(filter.reasons["price_out_of_range"], 4100);
    assert_eq!(filter.capture, Capture::Sampled);
    assert_eq!(filter.observation_count, 2);
    assert_eq!(
        filter.reasoning.as_deref(),
        Some("price_filter reasoning about laptop stands")
    );
}

#[tokio::test]
async fn an_older_version_never_overwrites_a_newer_one() {
    let f = fresh().await;
    let mut v2 = flow("p", 0, &[]);
    v2.version = 2;
    v2.steps.truncate(2);
    store(&f, &v2).await;
    let mut v1 = v2.clone();
    v1.version = 1;
    v1.steps = vec![step(0, "only", StepKind::Custom, (1, 1))];
    let outcome = f
        .services
        .metadata
        .upsert_flow(f.team, &v1, &StepPayloads::new())
        .await
        .unwrap();
    assert_eq!(outcome, UpsertOutcome::Stale);
    let detail = f
        .services
        .metadata
        .get_flow(f.team, v2.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((detail.summary.version, detail.steps.len()), (2, 2));

    let mut v3 = v2.clone();
    v3.version = 3;
    v3.steps = vec![step(0, "replaced", StepKind::Custom, (1, 1))];
    store(&f, &v3).await;
    let detail = f
        .services
        .metadata
        .get_flow(f.team, v2.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.steps.len(), 1);
    assert_eq!(detail.steps[0].name, "replaced");
}

#[tokio::test]
async fn a_batch_of_flows_is_written_in_one_go_with_per_flow_outcomes() {
    use flowtrail_domain::flows::FlowWrite;
    let f = fresh().await;
    let mut newer = flow("p", 0, &[]);
    newer.version = 3;
    store(&f, &newer).await;
    let mut stale = newer.clone();
    stale.version = 2;
    let fresh_one = flow("p", 1, &[]);
    let none = StepPayloads::new();
    let writes = [
        FlowWrite {
            team_id: f.team,
            flow: &stale,
            payloads: &none,
            mode: WriteMode::Replace,
            imported: false,
        },
        FlowWrite {
            team_id: f.team,
            flow: &fresh_one,
            payloads: &none,
            mode: WriteMode::Replace,
            imported: false,
        },
    ];
    let outcomes = f.services.metadata.upsert_flows(&writes).await.unwrap();
    assert_eq!(written(&outcomes), vec![false, true]);
    assert_eq!(ids(&f, &query()).await, vec![fresh_one.id, newer.id]);
    let kept = f
        .services
        .metadata
        .get_flow(f.team, newer.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.summary.version, 3);
}

#[tokio::test]
async fn a_batch_naming_a_flow_twice_applies_the_writes_in_order() {
    let f = fresh().await;
    let finished = flow("competitor_selection", 0, &[("env", "prod")]);
    let mut partial = finished.clone();
    partial.status = FlowStatus::Running;
    partial.steps.truncate(1);
    partial.steps[0].name = "early_keywords".into();
    let mut finished = finished;
    finished.version = 2;
    let mut late = partial.clone();
    late.version = 2; // a push as new as the finished record: stale
    let other = flow("categorization", 5, &[]);
    let none = StepPayloads::new();
    let write = |flow, mode| flowtrail_domain::flows::FlowWrite {
        team_id: f.team,
        flow,
        payloads: &none,
        mode,
        imported: false,
    };
    let writes = [
        write(&partial, WriteMode::MergeSteps),
        write(&other, WriteMode::Replace),
        write(&finished, WriteMode::Replace),
        write(&late, WriteMode::MergeSteps),
    ];
    let outcomes = f.services.metadata.upsert_flows(&writes).await.unwrap();
    assert_eq!(written(&outcomes), vec![true, true, true, false]);
    // The write returns what the live event needs: the flow as stored after each write.
    let UpsertOutcome::Written(last) = &outcomes[2] else {
        unreachable!()
    };
    assert_eq!(last.id, outcomes_flow_id(&writes[2]));
    let stored = f
        .services
        .metadata
        .get_flow(f.team, finished.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.summary.status, FlowStatus::Succeeded);
    assert_eq!(
        stored
            .steps
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["keywords", "price_filter", "rank"]
    );
    assert_eq!(stored.summary.tags["env"], "prod");
    assert_eq!(ids(&f, &query()).await, vec![other.id, finished.id]);
}

/// Submits a steps push for `id` and stores it.
async fn push_steps(f: &Fixture, id: Uuid, body: serde_json::Value) -> UpsertOutcome {
    let job = ingest::prepare_steps(
        &f.services.limits,
        f.team,
        id,
        None,
        &serde_json::to_vec(&body).unwrap(),
        None,
    )
    .unwrap();
    ingest::enqueue(&f.services, job).await.unwrap();
    let jobs = f
        .services
        .queue
        .claim(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let outcome = ingest::store_job(&f.services, &jobs[0]).await.unwrap();
    f.services.queue.complete_many(&[jobs[0].id]).await.unwrap();
    outcome
}

#[tokio::test]
async fn pushed_steps_merge_by_seq_and_the_finished_flow_supersedes_them() {
    let f = fresh().await;
    let id = Uuid::now_v7();
    let head = |version: u32, steps: serde_json::Value| {
        json!({"version": version, "pipeline": "competitor_selection",
               "started_at": "2026-11-21T10:00:00Z", "tags": {"env": "prod"}, "steps": steps})
    };
    let step_json = |seq: u32, name: &str, counts: (u64, u64)| {
        json!({"seq": seq, "name": name, "kind": "filter", "status": "succeeded",
               "candidates_in": counts.0, "candidates_out": counts.1,
               "reasons": {"too_far": counts.0 - counts.1},
               "reasoning": format!("{name} reasoning")})
    };
    // Pushes arrive out of order: version 2 (step 1) before version 1 (step 0).
    let pushed = push_steps(&f, id, head(2, json!([step_json(1, "price", (500, 50))]))).await;
    assert!(pushed.is_written());
    let pushed = push_steps(
        &f,
        id,
        head(1, json!([step_json(0, "retrieve", (900, 500))])),
    )
    .await;
    assert!(pushed.is_written(), "an older push still adds its step");
    let detail = f
        .services
        .metadata
        .get_flow(f.team, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.summary.status, FlowStatus::Running);
    assert_eq!(detail.summary.version, 2);
    assert_eq!(detail.summary.step_count, 2);
    assert_eq!(
        detail.steps.iter().map(|s| s.seq).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let largest = detail.summary.largest_elimination.clone().unwrap();
    assert_eq!((largest.seq, largest.eliminated), (1, 450));
    // A re-pushed step replaces its namesake by seq, it is not added twice.
    push_steps(&f, id, head(3, json!([step_json(1, "price", (500, 10))]))).await;
    push_steps(
        &f,
        id,
        head(3, json!([step_json(0, "retrieve", (900, 800))])),
    )
    .await;
    let detail = f
        .services
        .metadata
        .get_flow(f.team, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.summary.step_count, 2);
    assert_eq!(detail.steps[1].candidates_out, Some(10));
    let largest = detail.summary.largest_elimination.unwrap();
    assert_eq!(
        (largest.seq, largest.step.as_str(), largest.eliminated),
        (1, "price", 490)
    );

    // The finished record (higher version) replaces every pushed step.
    let mut finished = flow("competitor_selection", 0, &[]);
    finished.id = id;
    finished.version = 4;
    store(&f, &finished).await;
    let detail = f
        .services
        .metadata
        .get_flow(f.team, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.summary.status, FlowStatus::Succeeded);
    assert_eq!(
        detail
            .steps
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["keywords", "price_filter", "rank"]
    );
    // A late push never reopens a finished flow.
    let late = push_steps(&f, id, head(4, json!([step_json(7, "late", (5, 1))]))).await;
    assert_eq!(late, UpsertOutcome::Stale);
    let detail = f
        .services
        .metadata
        .get_flow(f.team, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.summary.step_count, 3);

    // Reason counts followed every replacement: only the finished flow's histogram is left.
    let stats = flowtrail_domain::analysis::reason_stats(
        &f.services,
        f.team,
        &stats_query(None),
        flowtrail_types::StatsBucket::Day,
    )
    .await
    .unwrap();
    let totals: Vec<_> = stats
        .totals
        .iter()
        .map(|t| (t.step.as_str(), t.code.as_str(), t.count))
        .collect();
    assert_eq!(totals, vec![("price_filter", "price_out_of_range", 4100)]);
}

/// Which outcomes wrote their flow.
fn written(outcomes: &[UpsertOutcome]) -> Vec<bool> {
    outcomes.iter().map(UpsertOutcome::is_written).collect()
}

fn outcomes_flow_id(write: &flowtrail_domain::flows::FlowWrite<'_>) -> uuid::Uuid {
    write.flow.id
}

#[tokio::test]
async fn a_push_never_reopens_a_finished_flow_nor_erases_what_it_does_not_carry() {
    let f = fresh().await;
    let id = Uuid::now_v7();
    let step_json = |seq: u32| {
        json!({"seq": seq, "name": format!("s{seq}"), "kind": "filter", "status": "succeeded",
               "candidates_in": 10, "candidates_out": 5})
    };
    // A first push with input and tags, then one without: the second erases nothing.
    let first = json!({"version": 1, "pipeline": "p", "started_at": "2026-11-21T10:00:00Z",
                       "input": {"title": "laptop stand"}, "tags": {"env": "prod"},
                       "sdk": {"name": "flowtrail-rust", "version": "0.1.0"},
                       "steps": [step_json(0)]});
    assert!(push_steps(&f, id, first).await.is_written());
    let bare = json!({"version": 2, "pipeline": "p", "started_at": "2026-11-21T10:00:00Z",
                      "steps": [step_json(1)]});
    assert!(push_steps(&f, id, bare).await.is_written());
    let running = f
        .services
        .metadata
        .get_flow(f.team, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.summary.version, 2);
    assert_eq!(running.input, json!({"title": "laptop stand"}));
    assert_eq!(
        running.summary.tags.get("env").map(String::as_str),
        Some("prod")
    );
    assert!(running.sdk.is_some());
    assert_eq!(running.summary.step_count, 2);
    let tagged = FlowFilters {
        tags: vec![("env".into(), "prod".into())],
        ..query()
    };
    assert_eq!(
        ids(&f, &tagged).await,
        vec![id],
        "the tag row survived the bare push"
    );

    // The finished record, version 4; then a push of a higher version arrives late.
    let mut finished = flow("p", 0, &[("env", "prod")]);
    finished.id = id;
    finished.version = 4;
    store(&f, &finished).await;
    let before = f
        .services
        .metadata
        .get_flow(f.team, id)
        .await
        .unwrap()
        .unwrap();
    let late = json!({"version": 5, "pipeline": "p", "started_at": "2026-11-21T10:00:00Z",
                      "steps": [step_json(9)]});
    assert_eq!(push_steps(&f, id, late).await, UpsertOutcome::Stale);
    let after = f
        .services
        .metadata
        .get_flow(f.team, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.summary.status, FlowStatus::Succeeded);
    assert_eq!(after, before, "nothing of the finished flow changed");
}

#[tokio::test]
async fn a_tag_key_holding_a_colon_can_be_filtered_on() {
    let f = fresh().await;
    let tagged = flow("p", 0, &[("k8s:namespace", "prod"), ("url", "http://x:1/")]);
    let other = flow("p", 1, &[("k8s", "namespace:prod")]);
    for record in [&tagged, &other] {
        store(&f, record).await;
    }
    let by = |query: &str| FlowFilters {
        limit: 50,
        ..FlowFilters::from_query(query).unwrap()
    };
    assert_eq!(
        ids(&f, &by("tag=k8s%5C%3Anamespace%3Aprod")).await,
        vec![tagged.id]
    );
    assert_eq!(
        ids(&f, &by("tag=k8s%3Anamespace%3Aprod")).await,
        vec![other.id]
    );
    assert_eq!(
        ids(&f, &by("tag=url%3Ahttp%3A%2F%2Fx%3A1%2F")).await,
        vec![tagged.id]
    );
}

#[tokio::test]
async fn a_write_returns_the_summary_the_list_then_shows() {
    use flowtrail_domain::flows::FlowWrite;
    let f = fresh().await;
    let mut record = flow("summaries", 0, &[("env", "prod")]);
    record.started_at += time::Duration::microseconds(1_234_567);
    record.steps[1].candidates_in = Some(10);
    record.steps[1].candidates_out = Some(1);
    let none = StepPayloads::new();
    let write = FlowWrite {
        team_id: f.team,
        flow: &record,
        payloads: &none,
        mode: WriteMode::Replace,
        imported: false,
    };
    let outcome = f
        .services
        .metadata
        .upsert_flows(std::slice::from_ref(&write))
        .await
        .unwrap();
    let UpsertOutcome::Written(written) = &outcomes_first(outcome) else {
        panic!("written");
    };
    let listed = f
        .services
        .metadata
        .get_flow(f.team, record.id)
        .await
        .unwrap()
        .unwrap()
        .summary;
    assert_eq!(
        **written, listed,
        "the live event carries what the list shows"
    );
}

fn outcomes_first(outcomes: Vec<UpsertOutcome>) -> UpsertOutcome {
    outcomes.into_iter().next().unwrap()
}

#[tokio::test]
async fn the_finished_record_ends_a_run_whatever_the_versions_of_its_pushes() {
    let f = fresh().await;
    let id = Uuid::now_v7();
    // A client numbered its pushes 5 and 6, then sent its finished record as version 2.
    for (version, seq) in [(5, 0), (6, 1)] {
        let push = json!({"version": version, "pipeline": "p",
                          "started_at": "2026-11-21T10:00:00Z",
                          "steps": [{"seq": seq, "name": "pushed", "kind": "filter"}]});
        assert!(push_steps(&f, id, push).await.is_written());
    }
    let mut finished = flow("p", 0, &[]);
    finished.id = id;
    finished.version = 2;
    let outcome = f
        .services
        .metadata
        .upsert_flow(f.team, &finished, &Default::default())
        .await
        .unwrap();
    assert!(
        outcome.is_written(),
        "accepted with 202, so stored: {outcome:?}"
    );
    let stored = |f: &Fixture| {
        let (metadata, team) = (f.services.metadata.clone(), f.team);
        async move { metadata.get_flow(team, id).await.unwrap().unwrap() }
    };
    let after = stored(&f).await;
    assert_eq!(after.summary.status, FlowStatus::Succeeded);
    assert_eq!(after.summary.version, 2);
    assert_eq!(after.steps.len(), finished.steps.len());

    // A whole running record of a higher version never reopens it; a finished one corrects it.
    let mut rerun = finished.clone();
    rerun.version = 9;
    rerun.status = FlowStatus::Running;
    rerun.ended_at = None;
    let outcome = f
        .services
        .metadata
        .upsert_flow(f.team, &rerun, &Default::default())
        .await
        .unwrap();
    assert_eq!(outcome, UpsertOutcome::Stale);
    assert_eq!(stored(&f).await, after);
    let mut corrected = finished.clone();
    corrected.version = 10;
    corrected.error = Some("judge timed out".into());
    corrected.status = FlowStatus::Failed;
    store(&f, &corrected).await;
    let last = stored(&f).await;
    assert_eq!(
        (last.summary.version, last.summary.status),
        (10, FlowStatus::Failed)
    );
}
