//! Which engines a suite runs on. `scripts/test.sh` runs every suite once on the embedded
//! default (SQLite, a local directory, the in-process queue) and then, with
//! `FLOWTRAIL_TEST_ENGINES=scale`, the repository, API, live and crash suites again on the
//! PostgreSQL, S3-compatible server and Redis that `scripts/with-*.sh` started.

/// The URL in `name` when this is the scale-out pass; `None` on the embedded default.
pub fn scale_engine(name: &str) -> Option<String> {
    if std::env::var("FLOWTRAIL_TEST_ENGINES").as_deref() != Ok("scale") {
        return None;
    }
    Some(std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through scripts/with-postgres.sh scripts/with-s3.sh scripts/with-redis.sh")
    }))
}
