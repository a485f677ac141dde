//! What is PostgreSQL's own in the scale-out profile: connecting and refusing a server whose
//! commits are not durable (`fsync` or `synchronous_commit` off), its migrations, its writes
//! ([`writes`]) and `tsvector` search ([`search`]). Everything else is the shared SQL of
//! `engines/sql`, and the same conformance suite runs on both databases.

pub(crate) mod search;
pub(crate) mod writes;

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{Error, Result};

/// Migrations of the scale-out profile, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// PostgreSQL admits concurrent writers, so readers and writers share one pool; the two
/// names let the shared SQL code pick a pool the same way on both engines.
#[derive(Clone)]
pub struct Database {
    pub write: PgPool,
    pub read: PgPool,
}

/// Connects to the database at `url` (`postgres://…`).
pub async fn open_url(url: &str) -> Result<Database> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("bad PostgreSQL URL: {e}")))?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| Error::Config(format!("cannot connect to PostgreSQL: {e}")))?;
    assert_durable(&pool).await?;
    Ok(Database {
        write: pool.clone(),
        read: pool,
    })
}

/// Refuses to run unless a commit reaches disk before it is acknowledged.
async fn assert_durable(pool: &PgPool) -> Result<()> {
    let setting = |name: &'static str| async move {
        sqlx::query_scalar::<_, String>(&format!("SHOW {name}"))
            .fetch_one(pool)
            .await
    };
    let fsync = setting("fsync").await?;
    let synchronous_commit = setting("synchronous_commit").await?;
    if fsync != "on" || synchronous_commit == "off" {
        return Err(Error::Config(format!(
            "PostgreSQL must run with fsync=on and synchronous_commit on (found fsync={fsync}, \
             synchronous_commit={synchronous_commit}): an acknowledged flow could be lost"
        )));
    }
    Ok(())
}

/// Creates a new, empty database named `name` on the server of `admin_url` and returns its
/// URL (used by the test suites to give every test a fresh database).
pub async fn create_database(admin_url: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::invalid(
            "name",
            "database names are letters, digits and _",
        ));
    }
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .ok_or_else(|| Error::Config("the PostgreSQL URL names no database".into()))?;
    Ok(format!("{base}/{name}"))
}

/// Applies pending migrations; start-up stops if one fails.
pub async fn migrate(db: &Database) -> Result<()> {
    MIGRATOR.run(&db.write).await?;
    Ok(())
}
