//! Flow Trail's domain: everything that is neither HTTP nor UI.
//!
//! [`Services`] bundles the storage engines behind their traits — metadata
//! ([`store::MetadataStore`]), the ingest queue ([`queue::IngestQueue`]) and payloads
//! ([`payloads::PayloadStore`] over `object_store`) — and is what the HTTP handlers, the
//! dashboard's server functions and the workers call. Which engines are used is decided once,
//! in [`Services::open`], from a [`StorageConfig`].

pub mod auth;
mod error;
pub mod ingest;
pub mod millis;
pub mod payloads;
pub mod postgres;
pub mod queue;
mod rows;
pub mod sqlite;
pub mod store;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::{Error, Result};

use auth::{NewApiKey, Role, Scope};
use ingest::Limits;
use payloads::PayloadStore;
use queue::IngestQueue;
use store::{MetadataStore, Team};

/// E-mail addresses are compared without case (stored lower-cased, on every engine).
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Which storage engines to use. Empty URLs mean the embedded default under `data_dir`.
#[derive(Clone)]
pub struct StorageConfig {
    /// Holds the SQLite file (`flowtrail.db`) and the payload directory (`payloads/`).
    pub data_dir: PathBuf,
    /// `sqlite:…` (default: `data_dir/flowtrail.db`); `postgres://…` at scale.
    pub database_url: Option<String>,
    /// `file:///…` (default: `data_dir/payloads`); `s3://bucket/prefix` at scale.
    pub object_store_url: Option<String>,
    /// Observation payloads up to this many (compressed) bytes are kept inline in SQL.
    pub payload_inline_max: usize,
    /// Endpoint and credentials for an `s3://` object store.
    pub s3: payloads::S3Config,
}

impl StorageConfig {
    /// The embedded default under `data_dir`: SQLite file and payload directory.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        StorageConfig {
            data_dir: data_dir.into(),
            database_url: None,
            object_store_url: None,
            payload_inline_max: payloads::DEFAULT_INLINE_MAX,
            s3: payloads::S3Config::default(),
        }
    }
}

impl std::fmt::Debug for StorageConfig {
    // URLs may carry passwords: show only their scheme.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = |url: &Option<String>| {
            url.as_deref()
                .map(|u| u.split(':').next().unwrap_or("").to_string())
        };
        f.debug_struct("StorageConfig")
            .field("data_dir", &self.data_dir)
            .field("database", &scheme(&self.database_url))
            .field("object_store", &scheme(&self.object_store_url))
            .finish()
    }
}

/// The engines, opened and ready.
pub struct Services {
    pub metadata: Arc<dyn MetadataStore>,
    pub queue: Arc<dyn IngestQueue>,
    pub payloads: PayloadStore,
    pub limits: Limits,
    /// The SQLite database of the embedded profile (sessions live there too).
    pub sqlite: Option<sqlite::Database>,
    /// The PostgreSQL database of the scale-out profile (sessions live there too).
    pub postgres: Option<postgres::Database>,
}

impl Services {
    /// Opens the configured engines and applies pending migrations.
    pub async fn open(config: &StorageConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Config(format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        enum Engine {
            Sqlite(sqlite::Database),
            Postgres(postgres::Database),
        }
        let engine = match config.database_url.as_deref() {
            None => Engine::Sqlite(sqlite::open_file(&config.data_dir.join("flowtrail.db")).await?),
            Some(url) if url.starts_with("sqlite:") => Engine::Sqlite(sqlite::open_url(url).await?),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Engine::Postgres(postgres::open_url(url).await?)
            }
            Some(url) => {
                return Err(Error::Config(format!(
                    "unsupported database URL scheme in {:?}: use sqlite: or postgres://",
                    url.split(':').next().unwrap_or_default()
                )));
            }
        };
        let mut payloads = match config.object_store_url.as_deref() {
            None => PayloadStore::local(&config.data_dir.join("payloads"))?,
            Some(url) if url.starts_with("file://") => {
                PayloadStore::local(&PathBuf::from(&url["file://".len()..]))?
            }
            Some(url) if url.starts_with("s3://") => PayloadStore::s3(url, &config.s3)?,
            Some(url) => {
                return Err(Error::Config(format!(
                    "unsupported object store URL {:?}: use file:///path or s3://bucket/prefix",
                    url.split(':').next().unwrap_or_default()
                )));
            }
        };
        payloads.inline_max = config.payload_inline_max;
        payloads.ping().await.map_err(|e| {
            Error::Config(format!(
                "the object store does not answer ({e}); check its URL, endpoint and credentials"
            ))
        })?;
        let services = match engine {
            Engine::Sqlite(db) => {
                sqlite::migrate(&db).await?;
                Services {
                    metadata: Arc::new(sqlite::SqliteMetadata::new(db.clone())),
                    queue: Arc::new(sqlite::SqliteQueue::start(&db)),
                    payloads,
                    limits: Limits::default(),
                    sqlite: Some(db),
                    postgres: None,
                }
            }
            Engine::Postgres(db) => {
                postgres::migrate(&db).await?;
                Services {
                    metadata: Arc::new(postgres::PgMetadata::new(db.clone())),
                    queue: Arc::new(postgres::PgQueue::start(&db)),
                    payloads,
                    limits: Limits::default(),
                    sqlite: None,
                    postgres: Some(db),
                }
            }
        };
        Ok(services)
    }

    /// First start: team `default`, and the first admin when credentials are given and no user
    /// exists yet.
    pub async fn bootstrap(&self, admin: Option<(&str, &str)>) -> Result<Team> {
        let team = self.metadata.ensure_team("default").await?;
        if let Some((email, password)) = admin
            && self.metadata.user_count().await? == 0
        {
            self.create_user(email, password, &team.slug, Role::Admin)
                .await?;
            tracing::info!(email, "created the first admin");
        }
        Ok(team)
    }

    /// Creates a user in `team` (created if missing) with an argon2id password hash.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        team: &str,
        role: Role,
    ) -> Result<i64> {
        let email = normalize_email(email);
        if !email.contains('@') || email.len() > 254 {
            return Err(Error::invalid("email", "an e-mail address is needed"));
        }
        if password.chars().count() < 8 {
            return Err(Error::invalid(
                "password",
                "passwords have at least 8 characters",
            ));
        }
        let team = self.metadata.ensure_team(team).await?;
        let hash = auth::hash_password(password)?;
        self.metadata
            .create_user(&email, &hash, team.id, role)
            .await
    }

    /// Creates an API key for `team` and returns its secret, which is never stored.
    pub async fn create_api_key(&self, team: &str, name: &str, scope: Scope) -> Result<String> {
        let team = self
            .metadata
            .team_by_slug(team)
            .await?
            .ok_or(Error::NotFound("team"))?;
        let key = NewApiKey::generate()?;
        self.metadata
            .create_api_key(team.id, name, scope, &key.display_prefix, &key.hash)
            .await?;
        Ok(key.secret)
    }

    /// The user whose e-mail and password match.
    pub async fn authenticate(&self, email: &str, password: &str) -> Result<Option<store::User>> {
        let user = self.metadata.user_by_email(&normalize_email(email)).await?;
        Ok(user.filter(|u| auth::verify_password(password, &u.password_hash)))
    }

    /// The live API key with this secret.
    pub async fn api_key(&self, secret: &str) -> Result<Option<store::ApiKey>> {
        self.metadata
            .api_key_by_hash(&auth::hash_api_key(secret))
            .await
    }
}
