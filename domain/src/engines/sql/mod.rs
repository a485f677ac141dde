//! The SQL layer both databases share.
//!
//! Every statement here is written once, with `$n` placeholders (SQLite reads `$1` as the
//! first parameter, like PostgreSQL) and `CAST(.. AS ..)` where PostgreSQL needs a type for a
//! possibly-`NULL` parameter. [`on_pool!`] runs the same code on whichever pool is
//! configured; what really differs per dialect is asked of [`SqlDatabase`] (e.g.
//! [`SqlDatabase::skip_locked`]) or lives in [`super::sqlite`] / [`super::postgres`].

mod accounts;
mod alerts;
pub(crate) mod flows;
mod metadata;
mod queue;
mod retention;
pub(crate) mod rows;
mod stats;
pub(crate) mod writes;

pub use metadata::SqlMetadata;
pub use queue::SqlQueue;

use super::{postgres, sqlite};

/// The configured SQL database: the embedded SQLite file or a PostgreSQL server.
#[derive(Clone)]
pub enum SqlDatabase {
    Sqlite(sqlite::Database),
    Postgres(postgres::Database),
}

impl SqlDatabase {
    /// The statement that opens a write transaction. SQLite's `BEGIN IMMEDIATE` takes the
    /// write lock at once: a transaction that reads before it writes would otherwise fail
    /// with `SQLITE_BUSY` (without waiting) when another process — `flowtrail admin …` beside
    /// a running server — committed in between; this way it waits (`busy_timeout`).
    pub(crate) fn begin_write(&self) -> &'static str {
        match self {
            SqlDatabase::Sqlite(_) => "BEGIN IMMEDIATE",
            SqlDatabase::Postgres(_) => "BEGIN",
        }
    }

    /// The row-locking clause of a queue claim: PostgreSQL lets concurrent workers skip
    /// each other's rows; SQLite has one writer, so it needs none.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self {
            SqlDatabase::Sqlite(_) => "",
            SqlDatabase::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The entries of the JSON object in `column` (a step's `reasons`, code → count) as a
    /// `FROM` item aliased `j` with a `key` column, and the SQL of an entry's value as an
    /// integer: SQLite's `json_each`, PostgreSQL's `json_each_text`.
    pub(crate) fn json_object_entries(&self, column: &str) -> (String, &'static str) {
        json_object_entries_in(matches!(self, SqlDatabase::Postgres(_)), column)
    }

    /// A query answering the rows of `from` (a `SELECT` naming `columns`) as one JSON text:
    /// an array of arrays, ordered by `order` when given (an order costs a sort: give none
    /// when the caller does not need one), `[]` when there is none. SQLite spells the
    /// aggregate `json_group_array(json_array(..))`, PostgreSQL `json_agg(json_build_array(..))`.
    pub(crate) fn json_rows(&self, columns: &str, order: Option<&str>, from: &str) -> String {
        let order = order.map(|o| format!(" ORDER BY {o}")).unwrap_or_default();
        match self {
            SqlDatabase::Sqlite(_) => {
                format!("SELECT json_group_array(json_array({columns}){order}) FROM ({from}) x")
            }
            SqlDatabase::Postgres(_) => format!(
                "SELECT coalesce(json_agg(json_build_array({columns}){order}), '[]')::TEXT \
                 FROM ({from}) x"
            ),
        }
    }
}

/// Runs `$body` with `$pool` bound to the database's `$role` pool (`read` or `write`),
/// whichever engine it is: the code is written once and compiled for both.
macro_rules! on_pool {
    ($db:expr, $role:ident, |$pool:ident| $body:expr) => {
        match $db {
            $crate::engines::sql::SqlDatabase::Sqlite(db) => {
                let $pool = &db.$role;
                $body
            }
            $crate::engines::sql::SqlDatabase::Postgres(db) => {
                let $pool = &db.$role;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// [`SqlDatabase::json_object_entries`] for a dialect known only by whether it is PostgreSQL
/// (a query builder generic over the database, `flows::push_flow_filters`).
pub(crate) fn json_object_entries_in(postgres: bool, column: &str) -> (String, &'static str) {
    if postgres {
        (
            format!("json_each_text({column}::JSON) j"),
            "j.value::BIGINT",
        )
    } else {
        (format!("json_each({column}) j"), "j.value")
    }
}
