//! Storage engines, behind the traits the capabilities use.
//!
//! - [`sql`]: what SQLite and PostgreSQL share — one implementation of
//!   [`crate::flows::MetadataStore`] and of the database-table [`crate::ingest::IngestQueue`],
//!   written once with `$n` placeholders (both engines read them).
//! - [`sqlite`] and [`postgres`]: only what really differs — connecting, durability checks,
//!   migrations, batch writes (SQLite's `json_each` batches vs PostgreSQL's per-flow
//!   statements), full-text search (FTS5 vs `tsvector`) and the statistics' JSON functions.
//! - [`redis`]: the scale-out queue (Streams), payload cache, shared rate limits and the
//!   live-event fan-out.

pub mod postgres;
pub mod redis;
pub mod sql;
pub mod sqlite;
