//! Which engines a suite runs on. `scripts/test.sh` runs every suite once on the embedded
//! default (SQLite, a local directory, the in-process queue) and then, with
//! `FLOWTRAIL_TEST_ENGINES=scale`, the repository, API, live and crash suites again on the
//! PostgreSQL, S3-compatible server and Redis that `scripts/with-*.sh` started.

use std::path::Path;

use flowtrail_domain::StorageConfig;
use flowtrail_domain::payloads::S3Config;
use uuid::Uuid;

/// The URL in `name` when this is the scale-out pass; `None` on the embedded default.
///
/// # Panics
///
/// In the scale-out pass, when `name` is not set: the suite was not started through the
/// `scripts/with-*.sh` wrappers.
pub fn scale_engine(name: &str) -> Option<String> {
    if std::env::var("FLOWTRAIL_TEST_ENGINES").as_deref() != Ok("scale") {
        return None;
    }
    Some(std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through scripts/with-postgres.sh scripts/with-s3.sh scripts/with-redis.sh")
    }))
}

/// The S3 endpoint and credentials from the standard `AWS_*` variables (which
/// `scripts/with-s3.sh` exports), plain HTTP allowed for the local server.
pub fn s3_from_env() -> S3Config {
    let var = |name: &str| std::env::var(name).ok();
    S3Config {
        endpoint: var("AWS_ENDPOINT_URL"),
        region: var("AWS_REGION"),
        access_key_id: var("AWS_ACCESS_KEY_ID"),
        secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
        session_token: None,
        allow_http: true,
    }
}

/// In the scale-out pass, the URL of a fresh database `{prefix}_{uuid}` created on the
/// PostgreSQL server of `scripts/with-postgres.sh`; `None` on the embedded default (SQLite).
///
/// # Panics
///
/// When the database cannot be created.
pub async fn scale_database(prefix: &str) -> Option<String> {
    let admin_url = scale_engine("FLOWTRAIL_TEST_DATABASE_URL")?;
    let name = format!("{prefix}_{}", Uuid::now_v7().simple());
    Some(
        flowtrail_domain::engines::postgres::create_database(&admin_url, &name)
            .await
            .unwrap(),
    )
}

/// Storage for one test under `dir`, of its own on every engine: the embedded default, or in
/// the scale-out pass a fresh PostgreSQL database, every payload in S3 under a fresh prefix,
/// and the Redis queue, cache, events, rate limits and in-flight keys under a fresh prefix.
///
/// # Panics
///
/// In the scale-out pass, when an engine's URL is not set or the database cannot be created.
pub async fn storage(dir: &Path) -> StorageConfig {
    let mut config = StorageConfig::embedded(dir);
    // In the scale-out pass, the same tests run on a fresh PostgreSQL database.
    config.database_url = scale_database("flowtrail_test").await;
    // With `scripts/with-s3.sh`: every payload in a real S3-compatible server.
    if let Some(url) = scale_engine("FLOWTRAIL_TEST_OBJECT_STORE_URL") {
        config.object_store_url = Some(format!("{url}/{}", Uuid::now_v7().simple()));
        config.payload_inline_max = 0;
        config.s3 = s3_from_env();
    }
    // With `scripts/with-redis.sh`: everything Redis holds, under a prefix of this test's own.
    if let Some(url) = scale_engine("FLOWTRAIL_TEST_REDIS_URL") {
        config.redis_url = Some(url);
        config.redis_prefix = format!("test-{}", Uuid::now_v7().simple());
    }
    config
}
