//! Crash test of the retention sweeper: the real `flowtrail admin sweep` is killed with
//! SIGKILL at random moments, and once aborted right after a batch's rows were deleted and
//! before its objects were; a last sweep then completes, and `flowtrail admin check-storage`
//! finds no orphan object and no row whose object is missing. On both profiles (in the
//! scale-out pass: PostgreSQL and S3).

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use flowtrail_domain::Services;
use flowtrail_domain::ingest::{self, processor};
use flowtrail_test_support::engines;
use flowtrail_types::admin::RetentionPolicy;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

const EXPIRED: usize = 400;
const KEPT: usize = 20;

fn flow(n: usize, days_ago: i64) -> Vec<u8> {
    let started = OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    serde_json::to_vec(&json!({
        "id": Uuid::now_v7(),
        "version": 1,
        "pipeline": "ranker",
        "status": "succeeded",
        "started_at": started.format(&Rfc3339).unwrap(),
        "steps": [{
            "seq": 1, "name": "judge", "kind": "judge",
            "candidates_in": 3, "candidates_out": 1, "reasons": {"off_topic": 2},
            "observations": [{"candidate_id": format!("C{n}"), "verdict": "rejected",
                              "reasons": [{"code": "off_topic"}]}]
        }]
    }))
    .unwrap()
}

/// Runs a worker until the queue is empty.
async fn drain(services: &Arc<Services>) {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(processor::run(
        services.clone(),
        Default::default(),
        shutdown,
    ));
    while services.queue.depth().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    worker.await.unwrap();
}

/// `flowtrail <args>` on the test's storage.
fn command(storage: &flowtrail_domain::StorageConfig, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowtrail"));
    command.args(args).arg("--data-dir").arg(&storage.data_dir);
    if let Some(url) = &storage.database_url {
        command.env("FLOWTRAIL_DATABASE_URL", url);
    }
    if let Some(url) = &storage.object_store_url {
        command.env("FLOWTRAIL_OBJECT_STORE_URL", url);
    }
    command
        .env("FLOWTRAIL_PAYLOAD_INLINE_MAX_BYTES", "0")
        .env("FLOWTRAIL_RETENTION_BATCH", "10")
        .env("FLOWTRAIL_RETENTION_PAUSE_MS", "20")
        // A killed sweeper's lease lapses quickly, so the next sweep may start.
        .env("FLOWTRAIL_RETENTION_LEASE_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run(storage: &flowtrail_domain::StorageConfig, args: &[&str]) -> Output {
    command(storage, args).output().unwrap()
}

#[tokio::test]
async fn a_sweep_killed_at_any_moment_completes_later_without_orphans_or_dangling_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = engines::storage(dir.path()).await;
    storage.payload_inline_max = 0;
    let services = Arc::new(Services::open(&storage).await.unwrap());
    let team = services.bootstrap(None).await.unwrap();
    for n in 0..EXPIRED + KEPT {
        let days_ago = if n < EXPIRED { 30 } else { 1 };
        ingest::submit(&services, team.id, None, &flow(n, days_ago), None)
            .await
            .unwrap();
    }
    drain(&services).await;
    assert_eq!(
        services.payloads.list().await.unwrap().len(),
        EXPIRED + KEPT
    );
    services
        .set_retention_policy(
            team.id,
            &RetentionPolicy {
                default_days: Some(7),
                ..RetentionPolicy::default()
            },
        )
        .await
        .unwrap();

    // Aborted right after a batch's rows are gone and before its objects are.
    let aborted = command(&storage, &["admin", "sweep"])
        .env("FLOWTRAIL_FAULT", "sweep_after_commit")
        .output()
        .unwrap();
    assert!(!aborted.status.success(), "{aborted:?}");
    let check = services.check_storage().await.unwrap();
    assert!(
        check.queued_deletions > 0,
        "the batch's objects wait in the queue: {check:?}"
    );
    assert!(check.missing_objects.is_empty(), "{check:?}");

    // Killed with SIGKILL at random moments.
    for delay_ms in [150, 420, 90, 700] {
        tokio::time::sleep(Duration::from_millis(1_100)).await; // the lease lapses
        let mut child = command(&storage, &["admin", "sweep"]).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = child.kill();
        let _ = child.wait();
        let check = services.check_storage().await.unwrap();
        assert!(
            check.missing_objects.is_empty(),
            "after a kill at {delay_ms} ms: {check:?}"
        );
    }

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let done = run(&storage, &["admin", "sweep"]);
    assert!(done.status.success(), "{done:?}");
    let report: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert!(
        report["flows"].as_u64().unwrap() <= EXPIRED as u64,
        "{report}"
    );
    let checked = run(&storage, &["admin", "check-storage"]);
    assert!(
        checked.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let check = services.check_storage().await.unwrap();
    assert!(check.is_clean(), "{check:?}");
    assert_eq!(
        (check.objects, check.queued_deletions),
        (KEPT as u64, 0),
        "{check:?}"
    );
    let page = services
        .metadata
        .list_flows(team.id, &flowtrail_types::FlowFilters::default())
        .await
        .unwrap();
    assert_eq!(page.flows.len(), KEPT, "only the recent flows are left");
}

#[tokio::test]
async fn check_storage_lists_orphans_and_missing_objects_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = engines::storage(dir.path()).await;
    storage.payload_inline_max = 0;
    let services = Arc::new(Services::open(&storage).await.unwrap());
    let team = services.bootstrap(None).await.unwrap();
    for n in 0..2 {
        ingest::submit(&services, team.id, None, &flow(n, 1), None)
            .await
            .unwrap();
    }
    drain(&services).await;
    let clean = run(&storage, &["admin", "check-storage"]);
    assert!(clean.status.success(), "{clean:?}");

    // One object deleted behind the rows' back: the row's object is missing.
    let objects = services.payloads.list().await.unwrap();
    services.payloads.delete(&objects[0].0).await.unwrap();
    let broken = run(&storage, &["admin", "check-storage"]);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(
        out.contains(&format!("missing object: {}", objects[0].0)),
        "{out}"
    );

    // On the embedded profile: an object no row refers to, written an hour ago, is an orphan
    // (a younger one may belong to an ingest in progress and is only counted).
    if storage.object_store_url.is_none() {
        let path = dir.path().join("payloads/t1/flows/stray/v1/s1-0.json.zst");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"stray").unwrap();
        let report = services.check_storage().await.unwrap();
        assert_eq!(report.recent_unreferenced, 1, "{report:?}");
        assert!(report.orphan_objects.is_empty(), "{report:?}");
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let orphaned = run(&storage, &["admin", "check-storage"]);
        assert_eq!(orphaned.status.code(), Some(1));
        let out = String::from_utf8_lossy(&orphaned.stdout);
        assert!(
            out.contains("orphan object: t1/flows/stray/v1/s1-0.json.zst"),
            "{out}"
        );
        // --delete-orphans deletes it, and exits 1 only for the missing object left.
        let repaired = run(&storage, &["admin", "check-storage", "--delete-orphans"]);
        let out = String::from_utf8_lossy(&repaired.stdout);
        assert!(
            out.contains("deleted orphan object: t1/flows/stray/v1/s1-0.json.zst"),
            "{repaired:?}"
        );
        assert_eq!(repaired.status.code(), Some(1), "{repaired:?}");
        assert!(!path.exists());
        let report = services.check_storage().await.unwrap();
        assert!(report.orphan_objects.is_empty(), "{report:?}");
        assert_eq!(report.missing_objects, vec![objects[0].0.clone()]);
    }
    // On any profile, --delete-orphans never deletes an object a row refers to.
    let before = services.payloads.list().await.unwrap().len();
    let again = run(&storage, &["admin", "check-storage", "--delete-orphans"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "the missing object is still missing"
    );
    assert_eq!(services.payloads.list().await.unwrap().len(), before);
}
