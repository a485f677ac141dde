//! [`Services`]: the storage engines, opened once from a [`StorageConfig`] and handed to the
//! HTTP handlers, the dashboard's server functions and the ingest processor.

use std::path::PathBuf;
use std::sync::Arc;

use crate::accounts::{Role, Team, api_key_cache};
use crate::engines::redis::Redis;
use crate::engines::redis::queue::RedisQueue;
use crate::engines::sql::{SqlDatabase, SqlMetadata, SqlQueue};
use crate::engines::{postgres, sqlite};
use crate::events::Events;
use crate::ingest::{IngestQueue, Limits};
use crate::payloads::{self, PayloadCache, PayloadStore};
use crate::{Error, MetadataStore, Result};

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
    pub(crate) api_keys: crate::accounts::ApiKeyCache,
    /// Sign-in attempts per address and per client (in this process).
    pub(crate) sign_in_throttle: Arc<crate::accounts::throttle::SignInThrottle>,
    /// Usage counts of this process not yet in the database.
    pub usage: Arc<crate::usage::UsageMeter>,
    /// When this process's retention sweeper runs.
    pub retention_schedule: Arc<crate::retention::RetentionSchedule>,
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
                let queue = RedisQueue::open(redis.clone()).await?;
                Some(Arc::new(queue) as Arc<dyn IngestQueue>)
            }
            _ => None,
        };
        let events = match &redis {
            Some(redis) => Events::shared(redis.clone()),
            None => Events::local(),
        };
        let (database, sqlite, postgres) = match engine {
            Engine::Sqlite(db) => {
                sqlite::migrate(&db).await?;
                (SqlDatabase::Sqlite(db.clone()), Some(db), None)
            }
            Engine::Postgres(db) => {
                postgres::migrate(&db).await?;
                (SqlDatabase::Postgres(db.clone()), None, Some(db))
            }
        };
        let metadata: Arc<dyn MetadataStore> = Arc::new(SqlMetadata::new(database.clone()));
        let queue = redis_queue.unwrap_or_else(|| Arc::new(SqlQueue::start(database)));
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
            sign_in_throttle: Default::default(),
            usage: Default::default(),
            retention_schedule: Default::default(),
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
}
