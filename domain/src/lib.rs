//! Flow Trail's domain: everything that is neither HTTP nor UI.
//!
//! [`Services`] bundles the storage engines behind their traits — metadata
//! ([`store::MetadataStore`]), the ingest queue ([`queue::IngestQueue`]) and payloads
//! ([`payloads::PayloadStore`] over `object_store`) — and is what the HTTP handlers, the
//! dashboard's server functions and the workers call. Which engines are used is decided once,
//! in [`Services::open`], from a [`StorageConfig`].

pub mod auth;
mod error;
pub mod events;
pub mod ingest;
pub mod millis;
pub mod payloads;
pub mod postgres;
pub mod query;
pub mod queue;
pub mod redis_engine;
mod rows;
pub mod sqlite;
pub mod store;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::{Error, Result};

use auth::{NewApiKey, Role, Scope};
use events::Events;
use ingest::Limits;
use payloads::{PayloadCache, PayloadStore};
use queue::IngestQueue;
use redis_engine::Redis;
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
    /// `redis://…`: the scale-out queue, payload cache and event fan-out (and, in the
    /// server, shared rate limits).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel.
    pub redis_prefix: String,
    /// Where the ingest queue lives.
    pub queue: QueueEngine,
    /// Bytes of object-store payloads cached in this process (0: no cache).
    pub payload_cache_bytes: u64,
}

/// Where the ingest queue lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueEngine {
    /// Redis Streams when a Redis URL is given, else the metadata database.
    #[default]
    Auto,
    /// A table of the metadata database (SQLite or PostgreSQL).
    Database,
    /// Redis Streams (needs a Redis URL and a durable Redis).
    Redis,
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
            redis_url: None,
            redis_prefix: "flowtrail".into(),
            queue: QueueEngine::Auto,
            payload_cache_bytes: 64 * 1024 * 1024,
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
            .field("redis", &scheme(&self.redis_url))
            .field("queue", &self.queue)
            .finish()
    }
}

/// The engines, opened and ready. Cheap to clone: handles only.
#[derive(Clone)]
pub struct Services {
    pub metadata: Arc<dyn MetadataStore>,
    pub queue: Arc<dyn IngestQueue>,
    pub payloads: PayloadStore,
    pub limits: Limits,
    /// The SQLite database of the embedded profile (sessions live there too).
    pub sqlite: Option<sqlite::Database>,
    /// The PostgreSQL database of the scale-out profile (sessions live there too).
    pub postgres: Option<postgres::Database>,
    /// Redis, when configured.
    pub redis: Option<Redis>,
    /// Flows as they land, for live updates.
    pub events: Events,
    /// Recently used API keys (by hash), so that ingest does not read the database per
    /// request and keeps working through a short database stall.
    api_keys: moka::sync::Cache<String, store::ApiKey>,
}

/// How long a looked-up API key is trusted without asking the database again (and so the
/// longest a revocation may take to reach every server).
pub const API_KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

fn api_key_cache() -> moka::sync::Cache<String, store::ApiKey> {
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(API_KEY_CACHE_TTL)
        .build()
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
        let redis = match config.redis_url.as_deref() {
            Some(url) => Some(Redis::connect(url, &config.redis_prefix).await?),
            None => None,
        };
        if config.payload_cache_bytes > 0 {
            payloads =
                payloads.with_cache(PayloadCache::new(config.payload_cache_bytes, redis.clone()));
        }
        payloads.ping().await.map_err(|e| {
            Error::Config(format!(
                "the object store does not answer ({e}); check its URL, endpoint and credentials"
            ))
        })?;
        let redis_queue = match (config.queue, &redis) {
            (QueueEngine::Redis, None) => {
                return Err(Error::Config(
                    "the Redis queue needs FLOWTRAIL_REDIS_URL".into(),
                ));
            }
            (QueueEngine::Auto | QueueEngine::Redis, Some(redis)) => {
                let queue = redis_engine::queue::RedisQueue::open(redis.clone()).await?;
                Some(Arc::new(queue) as Arc<dyn IngestQueue>)
            }
            _ => None,
        };
        let events = match &redis {
            Some(redis) => Events::shared(redis.clone()),
            None => Events::local(),
        };
        let (metadata, queue, sqlite, postgres) = match engine {
            Engine::Sqlite(db) => {
                sqlite::migrate(&db).await?;
                let metadata: Arc<dyn MetadataStore> =
                    Arc::new(sqlite::SqliteMetadata::new(db.clone()));
                let queue =
                    redis_queue.unwrap_or_else(|| Arc::new(sqlite::SqliteQueue::start(&db)));
                (metadata, queue, Some(db), None)
            }
            Engine::Postgres(db) => {
                postgres::migrate(&db).await?;
                let metadata: Arc<dyn MetadataStore> =
                    Arc::new(postgres::PgMetadata::new(db.clone()));
                let queue = redis_queue.unwrap_or_else(|| Arc::new(postgres::PgQueue::start(&db)));
                (metadata, queue, None, Some(db))
            }
        };
        Ok(Services {
            metadata,
            queue,
            payloads,
            limits: Limits::default(),
            sqlite,
            postgres,
            redis,
            events,
            api_keys: api_key_cache(),
        })
    }

    /// The same engines over another payload store (tests and tools).
    pub fn with_payloads(mut self, payloads: PayloadStore) -> Self {
        self.payloads = payloads;
        self
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

    /// The live API key with this secret (cached for [`API_KEY_CACHE_TTL`]; unknown keys
    /// are always looked up).
    pub async fn api_key(&self, secret: &str) -> Result<Option<store::ApiKey>> {
        let hash = auth::hash_api_key(secret);
        if let Some(key) = self.api_keys.get(&hash) {
            return Ok(Some(key));
        }
        let key = self.metadata.api_key_by_hash(&hash).await?;
        if let Some(key) = &key {
            self.api_keys.insert(hash, key.clone());
        }
        Ok(key)
    }
}
