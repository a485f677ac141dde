//! Invariants of the domain on generated inputs (proptest, issue #18), through its public
//! functions and, where storage is involved, through [`Services`] on the embedded profile
//! (SQLite and a payload directory in a temporary directory, the database queue):
//!
//! - [`merges`]: a flow delivered in pieces (pushes in any order and batching, retried,
//!   redelivered) is stored as the flow delivered at once, and every count derived from it —
//!   reason counts per bucket, step and code, funnels, largest drop — is exact;
//! - [`buckets`]: the hour and day buckets of the statistics — from RFC 3339 text to Unix
//!   milliseconds to buckets, in Rust and in SQL — and reason counts over any range;
//! - [`search`]: the text search's time-bucketed index pages in list order.
//!
//! Case counts: `PROPTEST_CASES` (default 512) for the properties of pure functions. A
//! property that opens a fresh database per case runs `PROPTEST_DB_CASES` cases when set,
//! else `PROPTEST_CASES` capped at [`DB_CASES_CAP`] (each case opens, migrates and drains
//! its own database).

mod buckets;
mod merges;
mod search;

use std::sync::Arc;
use std::time::Duration;

use flowtrail_domain::flows::{FlowCursor, FlowFilters};
use flowtrail_domain::ingest::processor::{self, ProcessorConfig};
use flowtrail_domain::{Services, StorageConfig};
use proptest::test_runner::Config;
use time::OffsetDateTime;
use uuid::Uuid;

/// At most this many cases of a database-backed property unless `PROPTEST_DB_CASES` says.
const DB_CASES_CAP: u32 = 32;

/// `PROPTEST_CASES`, default 512.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512)
}

/// The configuration of a property of pure functions.
fn config() -> Config {
    Config::with_cases(cases())
}

/// The configuration of a property that opens a database per case: `PROPTEST_DB_CASES`, or
/// `PROPTEST_CASES` capped at [`DB_CASES_CAP`].
fn db_config() -> Config {
    let cases = std::env::var("PROPTEST_DB_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| cases().min(DB_CASES_CAP));
    Config::with_cases(cases)
}

/// A runtime for one case: the engines a case opens, and their background tasks (the
/// queue's group commit, the processor), end with it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Services on a fresh embedded database in a temporary directory, and two teams.
struct Db {
    services: Arc<Services>,
    /// Team `default`.
    team: i64,
    /// A second team, `other`: the same flow id may be stored in both.
    other_team: i64,
    _dir: tempfile::TempDir,
}

async fn fresh() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let services = Services::open(&StorageConfig::embedded(dir.path()))
        .await
        .unwrap();
    let team = services.bootstrap(None).await.unwrap().id;
    let other_team = services.metadata.ensure_team("other").await.unwrap().id;
    Db {
        services: Arc::new(services),
        team,
        other_team,
        _dir: dir,
    }
}

/// Runs the ingest processor, claiming `batch` jobs at a time, until the queue is empty.
async fn drain(services: &Arc<Services>, batch: usize) {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let config = ProcessorConfig {
        batch,
        idle_poll: Duration::from_millis(5),
        ..ProcessorConfig::default()
    };
    let worker = tokio::spawn(processor::run(services.clone(), config, shutdown));
    while services.queue.depth().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.send(true).unwrap();
    worker.await.unwrap();
}

/// Unix milliseconds as an instant.
fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
}

/// Every page of `q` for `team`, the ids in the order served.
async fn every_page(services: &Services, team: i64, mut q: FlowFilters) -> Vec<Uuid> {
    let mut seen = Vec::new();
    loop {
        let page = services.metadata.list_flows(team, &q).await.unwrap();
        assert!(page.flows.len() <= q.limit as usize);
        seen.extend(page.flows.iter().map(|s| s.id));
        match page.next_cursor {
            Some(cursor) => q.cursor = Some(FlowCursor::decode(&cursor).unwrap()),
            None => return seen,
        }
    }
}
