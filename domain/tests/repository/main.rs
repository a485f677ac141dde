//! Repository and queue conformance suite. Every test gets a fresh, migrated database and
//! talks to the engines only through their traits, so the same suite runs against each
//! backend: the embedded default, then (`FLOWTRAIL_TEST_ENGINES=scale`) PostgreSQL, S3 and Redis.
//!
//! One module per resource; the records and the fresh database they share are in `fixture`.

mod fixture;

mod accounts;
mod analysis;
mod ingest;
mod list;
mod queue;
mod search;
mod writes;
