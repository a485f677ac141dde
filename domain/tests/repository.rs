//! Repository and queue conformance suite. Every test gets a fresh, migrated database and
//! talks to the engines only through their traits, so the same suite runs against each
//! backend: the embedded default, then (`FLOWTRAIL_TEST_ENGINES=scale`) PostgreSQL, S3 and Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use flowtrail_domain::auth::{Role, Scope};
use flowtrail_domain::ingest::{self, Limits};
use flowtrail_domain::payloads::PayloadStore;
use flowtrail_domain::queue::{EnqueueOutcome, NewJob};
use flowtrail_domain::store::{FlowCursor, FlowQuery, StepPayloads, UpsertOutcome, WriteMode};
use flowtrail_domain::worker::{self, WorkerConfig};
use flowtrail_domain::{Error, Services, StorageConfig};
use flowtrail_types::{
    Attributes, Capture, FlowRecord, FlowStatus, Observation, Reason, StepKind, StepRecord, Verdict,
};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

mod support;
use support::engines;

fn s3_from_env() -> flowtrail_domain::payloads::S3Config {
    let var = |name: &str| std::env::var(name).ok();
    flowtrail_domain::payloads::S3Config {
        endpoint: var("AWS_ENDPOINT_URL"),
        region: var("AWS_REGION"),
        access_key_id: var("AWS_ACCESS_KEY_ID"),
        secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
        session_token: None,
        allow_http: true,
    }
}

struct Fixture {
    services: Services,
    team: i64,
    _dir: tempfile::TempDir,
}

/// A fresh, migrated database: SQLite by default; in the scale-out pass, a new database on the
/// PostgreSQL server of `scripts/with-postgres.sh`.
async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageConfig::embedded(dir.path());
    if let Some(admin_url) = engines::scale_engine("FLOWTRAIL_TEST_DATABASE_URL") {
        let name = format!("flowtrail_test_{}", Uuid::now_v7().simple());
        let url = flowtrail_domain::postgres::create_database(&admin_url, &name).await;
        config.database_url = Some(url.unwrap());
    }
    // With `scripts/with-s3.sh`: every payload in a real S3-compatible server.
    if let Some(url) = engines::scale_engine("FLOWTRAIL_TEST_OBJECT_STORE_URL") {
        config.object_store_url = Some(format!("{url}/{}", Uuid::now_v7().simple()));
        config.payload_inline_max = 0;
        config.s3 = s3_from_env();
    }
    // With `scripts/with-redis.sh`: the Redis Streams queue, the payload cache and events, under
    // a prefix of this fixture's own.
    if let Some(url) = engines::scale_engine("FLOWTRAIL_TEST_REDIS_URL") {
        config.redis_url = Some(url);
        config.redis_prefix = format!("test-{}", Uuid::now_v7().simple());
    }
    let services = Services::open(&config).await.unwrap();
    let team = services.bootstrap(None).await.unwrap().id;
    Fixture {
        services,
        team,
        _dir: dir,
    }
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000 + seconds).unwrap()
}

fn observation(id: &str, verdict: Verdict, code: Option<&str>) -> Observation {
    let mut attributes = Attributes::new();
    attributes.insert("price".into(), json!(9.99));
    Observation {
        candidate_id: id.into(),
        verdict,
        score: Some(0.5),
        reasons: code
            .map(|c| {
                vec![Reason {
                    code: c.into(),
                    text: Some(format!("{id} failed {c}")),
                }]
            })
            .unwrap_or_default(),
        attributes,
    }
}

fn step(seq: u32, name: &str, kind: StepKind, counts: (u64, u64)) -> StepRecord {
    StepRecord {
        seq,
        name: name.into(),
        kind,
        status: FlowStatus::Succeeded,
        started_at: Some(at(0)),
        ended_at: Some(at(1)),
        input: json!({"seq": seq}),
        output: json!({"kept": counts.1}),
        reasoning: Some(format!("{name} reasoning about laptop stands")),
        candidates_in: Some(counts.0),
        candidates_out: Some(counts.1),
        reasons: BTreeMap::new(),
        capture: Capture::Sampled,
        observations: Vec::new(),
        boundaries: Vec::new(),
    }
}

fn flow(pipeline: &str, started: i64, tags: &[(&str, &str)]) -> FlowRecord {
    let mut filter = step(1, "price_filter", StepKind::Filter, (5000, 30));
    filter.reasons = BTreeMap::from([("price_out_of_range".to_string(), 4100)]);
    filter.observations = vec![
        observation("B0CASE0001", Verdict::Rejected, Some("price_out_of_range")),
        observation("B0STAND0042", Verdict::Kept, None),
    ];
    FlowRecord {
        id: Uuid::now_v7(),
        version: 1,
        pipeline: pipeline.into(),
        status: FlowStatus::Succeeded,
        started_at: at(started),
        ended_at: Some(at(started + 2)),
        input: json!({"title": "laptop stand"}),
        output: json!({"selected": "B0STAND0042"}),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        error: None,
        sdk: None,
        steps: vec![
            step(0, "keywords", StepKind::Generate, (0, 0)),
            filter,
            step(2, "rank", StepKind::Rank, (30, 30)),
        ],
    }
}

async fn store(f: &Fixture, record: &FlowRecord) {
    let outcome = f
        .services
        .metadata
        .upsert_flow(f.team, record, &StepPayloads::new())
        .await
        .unwrap();
    assert_eq!(outcome, UpsertOutcome::Written);
}

fn query() -> FlowQuery {
    FlowQuery {
        limit: 50,
        ..FlowQuery::default()
    }
}

async fn ids(f: &Fixture, q: &FlowQuery) -> Vec<Uuid> {
    let page = f.services.metadata.list_flows(f.team, q).await.unwrap();
    page.flows.iter().map(|s| s.id).collect()
}

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
async fn flows_are_scoped_to_their_team() {
    let f = fresh().await;
    let other = f.services.metadata.ensure_team("other").await.unwrap();
    let record = flow("p", 0, &[]);
    store(&f, &record).await;
    let metadata = &f.services.metadata;
    assert!(
        metadata
            .get_flow(other.id, record.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        metadata
            .list_flows(other.id, &query())
            .await
            .unwrap()
            .flows
            .is_empty()
    );
    assert!(
        metadata
            .step_payload(other.id, record.id, 1)
            .await
            .unwrap()
            .is_none()
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
async fn list_filters_combine_and_match_what_was_sent() {
    let f = fresh().await;
    let a = flow(
        "competitor_selection",
        10,
        &[("env", "prod"), ("seller", "S1")],
    );
    let b = flow("competitor_selection", 20, &[("env", "dev")]);
    let mut c = flow("categorization", 30, &[("env", "prod")]);
    c.status = FlowStatus::Failed;
    c.steps[1].candidates_out = Some(4900); // eliminates only 2 %
    c.steps[1].name = "category_gate".into();
    c.steps[1].reasoning = Some("checks the taxonomy".into());
    for record in [&a, &b, &c] {
        store(&f, record).await;
    }

    assert_eq!(
        ids(&f, &query()).await,
        vec![c.id, b.id, a.id],
        "newest first"
    );
    let by_pipeline = FlowQuery {
        pipeline: Some("competitor_selection".into()),
        ..query()
    };
    assert_eq!(ids(&f, &by_pipeline).await, vec![b.id, a.id]);
    let failed = FlowQuery {
        status: Some(FlowStatus::Failed),
        ..query()
    };
    assert_eq!(ids(&f, &failed).await, vec![c.id]);
    let tagged = FlowQuery {
        tags: vec![
            ("env".into(), "prod".into()),
            ("seller".into(), "S1".into()),
        ],
        ..query()
    };
    assert_eq!(ids(&f, &tagged).await, vec![a.id]);
    let window = FlowQuery {
        since: Some(at(15)),
        until: Some(at(30)),
        ..query()
    };
    assert_eq!(
        ids(&f, &window).await,
        vec![b.id],
        "since inclusive, until exclusive"
    );
    let text = FlowQuery {
        text: Some("TAXONOMY".into()),
        ..query()
    };
    assert_eq!(
        ids(&f, &text).await,
        vec![c.id],
        "case-insensitive text in reasoning"
    );
    let reason_code = FlowQuery {
        text: Some("price_out_of_range".into()),
        ..query()
    };
    assert_eq!(ids(&f, &reason_code).await.len(), 3, "text in reason codes");
    let literal = FlowQuery {
        text: Some("100%_".into()),
        ..query()
    };
    assert!(
        ids(&f, &literal).await.is_empty(),
        "punctuation is neither a wildcard nor an operator"
    );
    let drastic = FlowQuery {
        step_kind: Some(StepKind::Filter),
        min_eliminated: Some(0.9),
        ..query()
    };
    assert_eq!(ids(&f, &drastic).await, vec![b.id, a.id]);
    let ranks = FlowQuery {
        step_kind: Some(StepKind::Rank),
        min_eliminated: Some(0.5),
        ..query()
    };
    assert!(ids(&f, &ranks).await.is_empty());
}

#[tokio::test]
async fn cursor_pagination_returns_every_flow_exactly_once() {
    let f = fresh().await;
    let mut sent = Vec::new();
    for i in 0..23 {
        // Pairs share a start time, so the id breaks ties.
        let record = flow("p", i / 2, &[]);
        store(&f, &record).await;
        sent.push(record.id);
    }
    let q = FlowQuery {
        limit: 5,
        ..query()
    };
    let seen = every_page(&f, q).await;
    let mut expected = sent.clone();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(seen.len(), 23);
}

#[tokio::test]
async fn users_and_keys() {
    let f = fresh().await;
    let s = &f.services;
    let id = s
        .create_user("Ana@Example.com", "long enough", "default", Role::Admin)
        .await
        .unwrap();
    assert!(matches!(
        s.create_user("ana@example.com", "long enough", "default", Role::Member)
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.create_user("bob@example.com", "short", "default", Role::Member)
            .await,
        Err(Error::Validation { .. })
    ));
    let user = s
        .authenticate("ana@example.com", "long enough")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, id);
    assert_eq!(user.memberships[0].role, Role::Admin);
    assert_eq!(user.memberships[0].team.slug, "default");
    assert!(
        s.authenticate("ana@example.com", "wrong")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!user.password_hash.contains("long enough"));

    let secret = s
        .create_api_key("default", "pipeline", Scope::Ingest)
        .await
        .unwrap();
    let key = s.api_key(&secret).await.unwrap().unwrap();
    assert_eq!(
        (key.scope, key.team.id, key.name.as_str()),
        (Scope::Ingest, f.team, "pipeline")
    );
    assert!(s.api_key("ftk_not_a_key").await.unwrap().is_none());
    assert!(matches!(
        s.create_api_key("nope", "x", Scope::All).await,
        Err(Error::NotFound("team"))
    ));
}

fn job(team: i64, key: &str, body: &str) -> NewJob {
    NewJob {
        team_id: team,
        idempotency_key: key.into(),
        body_sha256: format!("sha-of-{body}"),
        flow_id: Uuid::now_v7(),
        flow_version: 1,
        body: body.as_bytes().to_vec(),
        request_id: Some("req-1".into()),
    }
}

#[tokio::test]
async fn the_queue_dedups_by_team_and_key() {
    let f = fresh().await;
    let q = &f.services.queue;
    let other = f.services.metadata.ensure_team("other").await.unwrap().id;
    assert_eq!(
        q.enqueue(job(f.team, "k1", "a")).await.unwrap(),
        EnqueueOutcome::Accepted
    );
    assert_eq!(
        q.enqueue(job(f.team, "k1", "a")).await.unwrap(),
        EnqueueOutcome::Replayed
    );
    assert_eq!(
        q.enqueue(job(f.team, "k1", "b")).await.unwrap(),
        EnqueueOutcome::KeyReused
    );
    assert_eq!(
        q.enqueue(job(other, "k1", "b")).await.unwrap(),
        EnqueueOutcome::Accepted
    );
    assert_eq!(q.depth().await.unwrap(), 2);
}

#[tokio::test]
async fn claimed_jobs_are_leased_retried_and_buried() {
    let f = fresh().await;
    let q = &f.services.queue;
    q.enqueue(job(f.team, "k1", "a")).await.unwrap();
    q.enqueue(job(f.team, "k2", "b")).await.unwrap();

    let first = q.claim(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].attempts, 1);
    assert_eq!(first[0].request_id.as_deref(), Some("req-1"));
    assert!(
        q.claim(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    q.complete(first[0].id).await.unwrap();
    q.retry(first[1].id, "engine down", Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(
        q.claim(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "not before run_after"
    );
    assert_eq!(q.depth().await.unwrap(), 1);

    q.enqueue(job(f.team, "k3", "c")).await.unwrap();
    let crashed = q.claim(1, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = q.claim(1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        again[0].id, crashed[0].id,
        "an expired lease is claimed again"
    );
    assert_eq!(again[0].attempts, 2);
    q.bury(again[0].id, "invalid").await.unwrap();
    assert_eq!(q.depth().await.unwrap(), 1, "dead jobs leave the queue");
}

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
        .expect("the filter step has observations");
    let json = f.services.payloads.get_json(&reference).await.unwrap();
    let observations: Vec<Observation> = serde_json::from_slice(&json).unwrap();
    assert_eq!(observations, record.steps[1].observations);
    assert_eq!(
        f.services
            .metadata
            .step_payload(f.team, record.id, 0)
            .await
            .unwrap(),
        Some(None),
        "a step without observations has no payload"
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

/// Runs a worker until `done` holds (or fails the test after 10 s).
async fn work_until<F, Fut>(services: std::sync::Arc<Services>, config: WorkerConfig, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker::run(services, config, shutdown));
    for _ in 0..500 {
        if done().await {
            let _ = stop.send(true);
            task.await.unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the worker never got there");
}

#[tokio::test]
async fn poison_goes_to_the_dead_letter_queue_and_redrive_brings_it_back() {
    let f = fresh().await;
    let fast = WorkerConfig {
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        idle_poll: Duration::from_millis(10),
        ..WorkerConfig::default()
    };
    // A permanent error (the body is not a flow) is buried at once, without retries.
    f.services
        .queue
        .enqueue(job(f.team, "poison", "not zstd json"))
        .await
        .unwrap();
    let shared = std::sync::Arc::new(f.services.clone());
    let q = f.services.queue.clone();
    work_until(shared.clone(), fast.clone(), || async {
        q.depth().await.unwrap() == 0
    })
    .await;
    let dead = f
        .services
        .queue
        .dead_letters(Some(f.team), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "permanent errors are not retried");
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("decompress"),
        "{dead:?}"
    );
    assert_eq!(dead[0].request_id.as_deref(), Some("req-1"));

    // A transient error (the payload store is broken) is retried, then buried.
    let broken_dir = f._dir.path().join("broken");
    std::fs::create_dir(&broken_dir).unwrap();
    let mut broken_store = PayloadStore::local(&broken_dir).unwrap();
    broken_store.inline_max = 0; // every payload goes to the (broken) object store
    let broken = std::sync::Arc::new(f.services.clone().with_payloads(broken_store));
    std::fs::remove_dir(&broken_dir).unwrap();
    std::fs::write(&broken_dir, b"a file where a directory should be").unwrap();
    let record = flow("p", 0, &[]);
    ingest::submit(
        &broken,
        f.team,
        None,
        &serde_json::to_vec(&record).unwrap(),
        None,
    )
    .await
    .unwrap();
    let q = f.services.queue.clone();
    let team = f.team;
    work_until(broken.clone(), fast.clone(), || async {
        q.dead_letters(Some(team), 10).await.unwrap().len() == 2
    })
    .await;
    let dead = f
        .services
        .queue
        .dead_letters(Some(f.team), 10)
        .await
        .unwrap();
    assert_eq!(dead[0].flow_id, record.id);
    assert_eq!(dead[0].attempts, 3, "retried up to max_attempts");

    // Fixed, redriven: stored. The poison, redriven too, dies again.
    std::fs::remove_file(&broken_dir).unwrap();
    std::fs::create_dir(&broken_dir).unwrap();
    assert_eq!(
        f.services
            .queue
            .redrive(Some(f.team), Some(dead[0].id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        f.services
            .queue
            .redrive(Some(f.team), Some(dead[0].id))
            .await
            .unwrap(),
        0
    );
    let metadata = f.services.metadata.clone();
    work_until(broken.clone(), fast.clone(), || async {
        metadata.get_flow(team, record.id).await.unwrap().is_some()
    })
    .await;
    assert_eq!(f.services.queue.redrive(None, None).await.unwrap(), 1);
    let q = f.services.queue.clone();
    work_until(broken, fast, || async { q.depth().await.unwrap() == 0 }).await;
    let dead = f.services.queue.dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "only the poison is dead again");
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

#[tokio::test]
async fn a_batch_of_flows_is_written_in_one_go_with_per_flow_outcomes() {
    use flowtrail_domain::store::FlowWrite;
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
        },
        FlowWrite {
            team_id: f.team,
            flow: &fresh_one,
            payloads: &none,
            mode: WriteMode::Replace,
        },
    ];
    let outcomes = f.services.metadata.upsert_flows(&writes).await.unwrap();
    assert_eq!(outcomes, vec![UpsertOutcome::Stale, UpsertOutcome::Written]);
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
async fn an_enqueue_that_cannot_commit_is_unavailable_not_internal() {
    let f = fresh().await;
    // Break the queue under the running engine: its table, or its Redis stream.
    if let Some(redis) = &f.services.redis {
        let mut conn = redis.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(redis.key("q:stream"))
            .arg("not a stream")
            .query_async(&mut conn)
            .await
            .unwrap();
        let error = f
            .services
            .queue
            .enqueue(job(f.team, "k", "a"))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
        return;
    }
    let dropped = match (&f.services.sqlite, &f.services.postgres) {
        (Some(db), _) => sqlx::query("DROP TABLE ingest_jobs")
            .execute(&db.write)
            .await
            .map(|_| ()),
        (None, Some(db)) => sqlx::query("DROP TABLE ingest_jobs")
            .execute(&db.write)
            .await
            .map(|_| ()),
        (None, None) => panic!("no database"),
    };
    dropped.unwrap();
    let error = f
        .services
        .queue
        .enqueue(job(f.team, "k", "a"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    assert!(
        error.is_transient(),
        "answered 503 + Retry-After, never 500"
    );
}

/// Submits each record through the ingest path (payloads stored) and stores every job.
async fn ingest_all(f: &Fixture, records: &[FlowRecord]) {
    for record in records {
        let body = serde_json::to_vec(record).unwrap();
        ingest::submit(&f.services, f.team, None, &body, None)
            .await
            .unwrap();
    }
    let jobs = f
        .services
        .queue
        .claim(records.len() + 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), records.len());
    for job in &jobs {
        ingest::store_job(&f.services, job).await.unwrap();
    }
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
    assert_eq!(pushed, UpsertOutcome::Written);
    let pushed = push_steps(
        &f,
        id,
        head(1, json!([step_json(0, "retrieve", (900, 500))])),
    )
    .await;
    assert_eq!(
        pushed,
        UpsertOutcome::Written,
        "an older push still adds its step"
    );
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
    let stats = flowtrail_domain::query::reason_stats(
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
        Err(Error::Validation { field, .. }) => assert_eq!(field, None),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn full_text_search_finds_reason_texts_and_candidate_ids() {
    let f = fresh().await;
    let mut a = flow("competitor_selection", 10, &[]);
    a.steps[1].observations[0].reasons[0].text = Some("priced like a phone case".into());
    let mut b = flow("competitor_selection", 20, &[]);
    b.steps[1].observations[0].candidate_id = "B0LAMP0007".into();
    b.steps[1].observations[0].reasons[0].text = Some("too pricey".into());
    b.error = Some("judge timed out".into());
    ingest_all(&f, &[a.clone(), b.clone()]).await;
    let search = |text: &str| FlowQuery {
        text: Some(text.into()),
        ..query()
    };
    assert_eq!(
        ids(&f, &search("phone case")).await,
        vec![a.id],
        "reason text"
    );
    assert_eq!(
        ids(&f, &search("Phone")).await,
        vec![a.id],
        "case-insensitive"
    );
    assert_eq!(
        ids(&f, &search("B0LAMP")).await,
        vec![b.id],
        "candidate id prefix"
    );
    assert_eq!(ids(&f, &search("b0case0001")).await, vec![a.id]);
    assert_eq!(
        ids(&f, &search("timed out")).await,
        vec![b.id],
        "flow error"
    );
    assert_eq!(
        ids(&f, &search("price_out_of_range laptop")).await,
        vec![b.id, a.id],
        "every word must match"
    );
    assert!(ids(&f, &search("phone lamp")).await.is_empty());
    for hostile in [
        "\"",
        "* OR",
        "body:x",
        "NEAR(a b)",
        "a\" OR \"b",
        "((",
        "-",
        "'; --",
    ] {
        let page = f
            .services
            .metadata
            .list_flows(f.team, &search(hostile))
            .await;
        assert!(
            page.is_ok(),
            "{hostile:?} is text, never query syntax: {page:?}"
        );
    }
    assert!(
        ids(&f, &search("*")).await.is_empty(),
        "nothing searchable matches nothing"
    );
    // The document follows the newest version.
    let mut b2 = b.clone();
    b2.version = 2;
    b2.error = None;
    store(&f, &b2).await;
    assert!(ids(&f, &search("timed")).await.is_empty());
}

/// Pages `q` to the end and returns every id in the order served.
async fn every_page(f: &Fixture, mut q: FlowQuery) -> Vec<Uuid> {
    let mut seen = Vec::new();
    loop {
        let page = f.services.metadata.list_flows(f.team, &q).await.unwrap();
        assert!(page.flows.len() <= q.limit as usize);
        seen.extend(page.flows.iter().map(|s| s.id));
        match page.next_cursor {
            Some(cursor) => q.cursor = Some(FlowCursor::decode(&cursor).unwrap()),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn text_search_pages_in_list_order_whatever_the_start_times() {
    use flowtrail_domain::store::FlowWrite;
    let f = fresh().await;
    let ms =
        |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    let base = 1_790_000_000_000_i64;
    // Start times within one second and across seconds, shared to the millisecond (the id
    // breaks the tie), before 1970, and past what the search index orders exactly (year 2500).
    let mut starts: Vec<i64> = (0..24).map(|i| base + (i * 7919) % 5000).collect();
    starts.extend([
        base,
        base,
        base + 1,
        -86_400_000,
        16_725_225_600_000,
        16_725_225_600_000,
    ]);
    let mut records: Vec<FlowRecord> = starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            // Every third flow is in pipeline "other" and never mentions a phone case.
            let matching = i % 3 != 0;
            let mut record = flow(if matching { "phone" } else { "other" }, 0, &[]);
            record.started_at = ms(start);
            record.ended_at = None;
            if matching {
                record.steps[1].observations[0].reasons[0].text = Some("a phone case".into());
            }
            record
        })
        .collect();
    // Half in one batch (one statement numbers many documents of a bucket), half one by one.
    let none = StepPayloads::new();
    let writes: Vec<FlowWrite> = records[..15]
        .iter()
        .map(|flow| FlowWrite {
            team_id: f.team,
            flow,
            payloads: &none,
            mode: WriteMode::Replace,
        })
        .collect();
    f.services.metadata.upsert_flows(&writes).await.unwrap();
    for record in &records[15..] {
        store(&f, record).await;
    }
    // New versions that move to other buckets, and one that stays in its own.
    for (i, shift) in [(1, 9_000), (2, -3_000), (4, 0)] {
        records[i].version = 2;
        records[i].started_at = ms(starts[i] + shift);
        store(&f, &records[i]).await;
    }
    let mut matching: Vec<&FlowRecord> = records.iter().filter(|r| r.pipeline == "phone").collect();
    matching.sort_by_key(|r| std::cmp::Reverse((r.started_at, r.id)));
    let expected: Vec<Uuid> = matching.iter().map(|r| r.id).collect();
    assert_eq!(
        every_page(
            &f,
            FlowQuery {
                pipeline: Some("phone".into()),
                ..query()
            }
        )
        .await,
        expected,
        "the list without text"
    );
    for limit in [1, 2, 3, 7, 50] {
        let q = FlowQuery {
            text: Some("phone case".into()),
            limit,
            ..query()
        };
        assert_eq!(every_page(&f, q).await, expected, "limit {limit}");
    }
    // A time range cuts the same order; its bounds fall inside search buckets.
    let (since, until) = (base + 1_000, base + 3_500);
    let in_range: Vec<Uuid> = matching
        .iter()
        .filter(|r| r.started_at >= ms(since) && r.started_at < ms(until))
        .map(|r| r.id)
        .collect();
    assert!(in_range.len() >= 4, "{in_range:?}");
    for limit in [1, 3, 50] {
        let q = FlowQuery {
            text: Some("phone".into()),
            since: Some(ms(since)),
            until: Some(ms(until)),
            limit,
            ..query()
        };
        assert_eq!(every_page(&f, q).await, in_range, "range, limit {limit}");
    }
}

fn stats_query(pipeline: Option<&str>) -> flowtrail_domain::store::StatsQuery {
    flowtrail_domain::store::StatsQuery {
        pipeline: pipeline.map(str::to_string),
        step: None,
        since: at(-86_400 * 3),
        until: at(86_400 * 3),
        bucket_ms: 86_400_000,
    }
}

#[tokio::test]
async fn reason_stats_are_exact_sums_per_bucket_and_funnels_are_medians() {
    let f = fresh().await;
    // Three flows of one pipeline in three different hours, one of another pipeline.
    let mut sent = Vec::new();
    for (i, (rejected, out)) in [(4100u64, 30u64), (100, 50), (7, 1)]
        .into_iter()
        .enumerate()
    {
        let mut record = flow("competitor_selection", i as i64 * 3_600, &[]);
        record.steps[1].reasons = BTreeMap::from([
            ("price_out_of_range".to_string(), rejected),
            ("rating_below".to_string(), i as u64),
        ]);
        record.steps[1].candidates_out = Some(out);
        sent.push(record);
    }
    let mut other = flow("categorization", 0, &[]);
    other.steps[1].reasons = BTreeMap::from([("wrong_taxonomy".to_string(), 12)]);
    sent.push(other);
    for record in &sent {
        store(&f, record).await;
    }
    // Storing a flow again (retry or newer version) must not count it twice.
    store(&f, &sent[0]).await;

    let hourly = flowtrail_domain::store::StatsQuery {
        bucket_ms: 3_600_000,
        ..stats_query(Some("competitor_selection"))
    };
    let stats = flowtrail_domain::query::reason_stats(
        &f.services,
        f.team,
        &hourly,
        flowtrail_types::StatsBucket::Hour,
    )
    .await
    .unwrap();
    let totals: Vec<_> = stats
        .totals
        .iter()
        .map(|t| (t.code.as_str(), t.count))
        .collect();
    assert_eq!(
        totals,
        vec![("price_out_of_range", 4207), ("rating_below", 3)]
    );
    let price_buckets: Vec<_> = stats
        .buckets
        .iter()
        .filter(|b| b.code == "price_out_of_range")
        .map(|b| b.count)
        .collect();
    assert_eq!(
        price_buckets,
        vec![4100, 100, 7],
        "one bucket per hour, oldest first"
    );
    assert!(stats.buckets.windows(2).all(|w| w[0].start <= w[1].start));
    assert!(
        stats.buckets.iter().all(|b| b.count > 0),
        "zero counts are left out"
    );

    let funnel = &stats.funnels[0];
    assert_eq!(
        (funnel.pipeline.as_str(), funnel.flows, funnel.capped),
        ("competitor_selection", 3, false)
    );
    let names: Vec<_> = funnel.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["keywords", "price_filter", "rank"],
        "in seq order"
    );
    let filter = &funnel.steps[1];
    assert_eq!(
        (filter.runs, filter.median_in, filter.median_out),
        (3, 5000.0, 30.0)
    );

    // Every pipeline, daily; the step filter narrows it.
    let all = flowtrail_domain::query::reason_stats(
        &f.services,
        f.team,
        &stats_query(None),
        flowtrail_types::StatsBucket::Day,
    )
    .await
    .unwrap();
    assert_eq!(all.funnels.len(), 2);
    assert!(
        all.totals
            .iter()
            .any(|t| t.pipeline == "categorization" && t.count == 12)
    );
    assert_eq!(
        all.buckets
            .iter()
            .map(|b| b.start)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
    let outside = flowtrail_domain::store::StatsQuery {
        since: at(86_400 * 10),
        until: at(86_400 * 11),
        ..stats_query(None)
    };
    let empty = flowtrail_domain::query::reason_stats(
        &f.services,
        f.team,
        &outside,
        flowtrail_types::StatsBucket::Day,
    )
    .await
    .unwrap();
    assert!(empty.totals.is_empty() && empty.funnels.is_empty());
}

#[tokio::test]
async fn a_candidate_journey_tells_absent_from_unknown() {
    let f = fresh().await;
    let mut record = flow("competitor_selection", 0, &[]);
    // Step 0 kept everything it saw (full), step 1 a sample, step 2 counts only.
    record.steps[0].capture = Capture::Full;
    record.steps[0].observations = vec![
        observation("B0CASE0001", Verdict::Kept, None),
        observation("B0STAND0042", Verdict::Kept, None),
    ];
    record.steps[0].candidates_in = Some(2);
    record.steps[0].candidates_out = Some(2);
    record.steps[2].capture = Capture::CountsOnly;
    ingest_all(&f, std::slice::from_ref(&record)).await;

    let journey = flowtrail_domain::query::journey(&f.services, f.team, record.id, "B0CASE0001")
        .await
        .unwrap()
        .unwrap();
    let presence: Vec<_> = journey.steps.iter().map(|s| s.presence).collect();
    use flowtrail_types::Presence::*;
    assert_eq!(presence, vec![Observed, Observed, Unknown]);
    assert_eq!(journey.final_verdict, Some(Verdict::Rejected));
    let at = journey.eliminated_at.unwrap();
    assert_eq!((at.seq, at.step.as_str()), (1, "price_filter"));
    assert_eq!(at.reasons[0].code, "price_out_of_range");
    assert_eq!(journey.steps[1].score, Some(0.5));
    assert_eq!(journey.steps[1].attributes["price"], json!(9.99));

    let stranger = flowtrail_domain::query::journey(&f.services, f.team, record.id, "B0NOPE")
        .await
        .unwrap()
        .unwrap();
    let presence: Vec<_> = stranger.steps.iter().map(|s| s.presence).collect();
    assert_eq!(
        presence,
        vec![Absent, Unknown, Unknown],
        "sampled is unknown, not absent"
    );
    assert!(!flowtrail_domain::query::observed_anywhere(&stranger));
    assert!(
        flowtrail_domain::query::journey(&f.services, f.team, Uuid::now_v7(), "x")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_diff_names_added_removed_and_changed_candidates_per_step() {
    let f = fresh().await;
    let good = flow("competitor_selection", 0, &[]);
    let mut bad = flow("competitor_selection", 100, &[]);
    bad.input = json!({"title": "laptop stand", "category": "Phone Cases"});
    // In the bad run the case passes the filter, the stand is rejected, a lamp appears.
    bad.steps[1].observations = vec![
        observation("B0CASE0001", Verdict::Kept, None),
        observation("B0STAND0042", Verdict::Rejected, Some("category_mismatch")),
        observation("B0LAMP0007", Verdict::Kept, None),
    ];
    bad.steps[1].reasons = BTreeMap::from([("category_mismatch".to_string(), 4000)]);
    bad.steps[1].reasoning = Some("category gate".into());
    bad.steps.remove(2);
    bad.steps.push(step(3, "judge", StepKind::Judge, (30, 1)));
    ingest_all(&f, &[good.clone(), bad.clone()]).await;

    let diff = flowtrail_domain::query::diff(&f.services, f.team, good.id, bad.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        diff.input.as_ref().unwrap().b["category"],
        json!("Phone Cases")
    );
    assert!(diff.output.is_none(), "same output");
    let names: Vec<_> = diff
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.seq_a, s.seq_b))
        .collect();
    assert_eq!(
        names,
        vec![
            ("keywords", Some(0), Some(0)),
            ("price_filter", Some(1), Some(1)),
            ("rank", Some(2), None),
            ("judge", None, Some(3)),
        ]
    );
    let filter = &diff.steps[1];
    assert_eq!(filter.added, vec!["B0LAMP0007".to_string()]);
    assert!(filter.removed.is_empty());
    let changed: Vec<_> = filter
        .verdict_changed
        .iter()
        .map(|c| (c.candidate_id.as_str(), c.a, c.b))
        .collect();
    assert_eq!(
        changed,
        vec![
            ("B0CASE0001", Verdict::Rejected, Verdict::Kept),
            ("B0STAND0042", Verdict::Kept, Verdict::Rejected),
        ]
    );
    assert_eq!(
        filter.verdict_changed[0].reasons_a[0].code,
        "price_out_of_range"
    );
    assert_eq!(
        filter.verdict_changed[1].reasons_b[0].code,
        "category_mismatch"
    );
    assert_eq!(filter.reasons["price_out_of_range"].a, 4100);
    assert_eq!(filter.reasons["price_out_of_range"].b, 0);
    assert_eq!(filter.reasons["category_mismatch"].b, 4000);
    assert!(!filter.exact, "sampled steps compare samples");
    assert!(filter.reasoning.is_some());
    assert!(diff.steps[0].reasoning.is_none() && diff.steps[0].added.is_empty());
    assert!(
        flowtrail_domain::query::diff(&f.services, f.team, good.id, Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
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
    let write = |flow, mode| flowtrail_domain::store::FlowWrite {
        team_id: f.team,
        flow,
        payloads: &none,
        mode,
    };
    let writes = [
        write(&partial, WriteMode::MergeSteps),
        write(&other, WriteMode::Replace),
        write(&finished, WriteMode::Replace),
        write(&late, WriteMode::MergeSteps),
    ];
    let outcomes = f.services.metadata.upsert_flows(&writes).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            UpsertOutcome::Written,
            UpsertOutcome::Written,
            UpsertOutcome::Written,
            UpsertOutcome::Stale
        ]
    );
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
