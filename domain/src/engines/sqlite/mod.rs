//! What is SQLite's own in the embedded profile (metadata and the ingest queue in one file):
//! opening it durably, its migrations, batch writes through `json_each` ([`writes`]) and FTS5
//! search ([`search`]). Everything else is the shared SQL of `engines/sql`.
//!
//! Rules: WAL with `synchronous=FULL`, so a committed transaction survives a crash or a power
//! cut; foreign keys on; explicit column lists; times as Unix milliseconds.

pub(crate) mod search;
pub(crate) mod writes;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Error, Result};

/// Migrations of the embedded profile, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// The embedded database: one writer connection, several readers.
///
/// SQLite admits one writer at a time. Writers on separate connections would wait for each
/// other inside SQLite's busy handler, which sleeps and retries; with a single write
/// connection they queue fairly in the pool instead, and readers (WAL) never wait for them.
#[derive(Clone)]
pub struct Database {
    /// Every write goes through this pool of one connection.
    pub write: SqlitePool,
    /// Reads, concurrent with the writer.
    pub read: SqlitePool,
}

/// Opens (creating if needed) the SQLite database at `path`.
pub async fn open_file(path: &Path) -> Result<Database> {
    open(
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
}

/// Opens a database from a `sqlite:` URL.
pub async fn open_url(url: &str) -> Result<Database> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("bad SQLite URL {url:?}: {e}")))?
        .create_if_missing(true);
    open(options).await
}

async fn open(options: SqliteConnectOptions) -> Result<Database> {
    let options = options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-32000");
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .after_release(leave_no_transaction_open)
        .connect_with(options.clone())
        .await?;
    assert_durable(&write).await?;
    let read = SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .after_release(leave_no_transaction_open)
        .connect_with(options)
        .await?;
    Ok(Database { write, read })
}

/// Keeps a connection in the pool only if no transaction is open on it (sqlx's count of
/// them). A `COMMIT` that fails with `SQLITE_FULL` is rolled back by SQLite itself, and the
/// `ROLLBACK` sqlx then sends fails ("no transaction is active"): its count stays at one and
/// every later `BEGIN` on that connection fails — one full disk would stop all writes for
/// good (found by `scripts/faults/disk_full.py`). Such a connection is closed instead, and
/// the pool opens a fresh one. (A transaction dropped without commit is closed the same way:
/// its rollback may not have run yet. Only error paths pay for the new connection.)
fn leave_no_transaction_open(
    connection: &mut sqlx::SqliteConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, std::result::Result<bool, sqlx::Error>> {
    use sqlx::Connection;
    let keep = !connection.is_in_transaction();
    Box::pin(async move { Ok(keep) })
}

/// Refuses to run unless commits are durable: WAL and `synchronous=FULL` (2).
async fn assert_durable(pool: &SqlitePool) -> Result<()> {
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await?;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool)
        .await?;
    if !journal.eq_ignore_ascii_case("wal") || synchronous != 2 {
        return Err(Error::Config(format!(
            "SQLite must run with journal_mode=wal and synchronous=FULL, found {journal} and {synchronous}"
        )));
    }
    Ok(())
}

/// Applies pending migrations; start-up stops if one fails.
pub async fn migrate(db: &Database) -> Result<()> {
    MIGRATOR.run(&db.write).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fills the disk (here: the database at its `max_page_count`) fails with
    /// `SQLITE_FULL`, reported as such — and the next write works once there is room: the
    /// failed transaction must not leave the pool's one writer stuck "in a transaction".
    #[tokio::test]
    async fn a_full_disk_fails_one_write_not_every_write_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_file(&dir.path().join("full.db")).await.unwrap();
        sqlx::query("CREATE TABLE t (v BLOB)")
            .execute(&db.write)
            .await
            .unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&db.write)
            .await
            .unwrap();
        // The limit holds for this connection only: the pool's next one has room again.
        sqlx::query(&format!("PRAGMA max_page_count = {}", pages + 2))
            .execute(&db.write)
            .await
            .unwrap();
        let write = |bytes: usize| {
            let pool = db.write.clone();
            async move {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query("INSERT INTO t (v) VALUES (?)")
                    .bind(vec![7u8; bytes])
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, crate::Error>(())
            }
        };
        let full = write(1 << 20).await.unwrap_err();
        assert!(full.is_storage_full(), "{full}");
        assert!(full.is_transient(), "{full}");
        write(100).await.expect("the writer recovers");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&db.read)
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }
}
