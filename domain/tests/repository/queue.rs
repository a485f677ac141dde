//! The ingest queue: dedup, leases, retries, the dead-letter queue, an engine that fails.

use std::time::Duration;

use flowtrail_domain::ingest::processor::{self, ProcessorConfig};
use flowtrail_domain::ingest::{EnqueueOutcome, NewJob};
use flowtrail_domain::payloads::PayloadStore;
use flowtrail_domain::{Error, Services, ingest};
use uuid::Uuid;

use crate::fixture::{flow, fresh};
use flowtrail_domain::flows::WriteMode;

/// A queue job of `team` under idempotency key `key`, carrying `body`.
fn job(team: i64, key: &str, body: &str) -> NewJob {
    NewJob {
        team_id: team,
        idempotency_key: key.into(),
        body_sha256: format!("sha-of-{body}"),
        flow_id: Uuid::now_v7(),
        flow_version: 1,
        body: body.as_bytes().to_vec(),
        request_id: Some("req-1".into()),
        // Not the default, so a queue that forgot the mode fails the claim checks.
        mode: WriteMode::MergeSteps,
        usage: Default::default(),
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
    assert_eq!(
        first[0].mode,
        WriteMode::MergeSteps,
        "the mode travels with the job"
    );
    assert!(
        q.claim(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    q.complete(first[0].id).await.unwrap();
    q.retry(&first[1], "engine down", Duration::from_secs(3600))
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
    // The first claim's lease lapsed: what its worker reports changes nothing.
    q.bury(&crashed[0], "stale claim").await.unwrap();
    q.retry(&crashed[0], "stale claim", Duration::ZERO)
        .await
        .unwrap();
    assert!(
        q.dead_letters(None, 10).await.unwrap().is_empty(),
        "a lapsed claim buries nothing"
    );
    q.bury(&again[0], "invalid").await.unwrap();
    q.bury(&again[0], "invalid").await.unwrap();
    let dead = q.dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "dead-lettered once: {dead:?}");
    assert_eq!(dead[0].last_error.as_deref(), Some("invalid"));
    assert_eq!(q.depth().await.unwrap(), 1, "dead jobs leave the queue");
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

/// Runs a worker until `done` holds (or fails the test after 10 s).
async fn work_until<F, Fut>(services: std::sync::Arc<Services>, config: ProcessorConfig, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(processor::run(services, config, shutdown));
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
    let fast = ProcessorConfig {
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        idle_poll: Duration::from_millis(10),
        ..ProcessorConfig::default()
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
async fn a_flow_that_fails_its_batch_never_delays_the_others() {
    use flowtrail_types::{Capture, FlowRecord};
    let f = fresh().await;
    let other_team = f.services.metadata.ensure_team("other").await.unwrap().id;
    // Two flows of one pipeline in one hour whose reason counts, summed in one batch, pass
    // 2^63 (each count is within the documented maximum, 2^53).
    let huge = |n: i64| -> FlowRecord {
        let mut record = flow("dedupe", n, &[]);
        record.steps = (0..600)
            .map(|seq| {
                let mut step = crate::fixture::step(
                    seq,
                    "dedupe",
                    flowtrail_types::StepKind::Filter,
                    (1 << 53, 0),
                );
                step.reasons = std::collections::BTreeMap::from([("dup".to_string(), 1 << 53)]);
                step.capture = Capture::CountsOnly;
                step
            })
            .collect();
        record
    };
    let (first, second) = (huge(0), huge(1));
    let normal = flow("competitor_selection", 2, &[]);
    for (team, record) in [(f.team, &first), (f.team, &second), (other_team, &normal)] {
        let body = serde_json::to_vec(record).unwrap();
        let job = ingest::prepare(&f.services.limits, team, None, &body, None).unwrap();
        ingest::enqueue(&f.services, job).await.unwrap();
    }
    let services = f.services.clone();
    let config = ProcessorConfig {
        idle_poll: Duration::from_millis(10),
        backoff_base: Duration::from_secs(60),
        ..ProcessorConfig::default()
    };
    // The other team's flow is stored on the first pass, not after retries.
    work_until(std::sync::Arc::new(f.services.clone()), config, || {
        let services = services.clone();
        let id = normal.id;
        async move {
            services
                .metadata
                .get_flow(other_team, id)
                .await
                .unwrap()
                .is_some()
        }
    })
    .await;
    assert!(
        f.services
            .metadata
            .get_flow(f.team, first.id)
            .await
            .unwrap()
            .is_some(),
        "the first large flow is stored alone"
    );
}
