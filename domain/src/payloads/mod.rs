//! Observation payloads: one compressed, checksummed object per step.
//!
//! A step's observations are immutable once sent, so they are stored as one zstd-compressed
//! JSON array under a key derived from the flow, its version and the step, with the SHA-256 of
//! the stored bytes recorded in SQL. Every read verifies that checksum: a mismatch is an
//! [`Error::Integrity`], never served. The engine is any `object_store` (local directory by
//! default, S3 at scale).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flowtrail_types::Observation;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::engines::redis::Redis;
use crate::{Error, Result};

/// zstd level for payloads: level 3 compresses observation JSON ~7x at ~800 MB/s here.
const ZSTD_LEVEL: i32 = 3;

/// Where a step's observations live and how to check them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRef {
    /// Object-store key (also names an inline payload).
    pub key: String,
    /// The stored bytes themselves when the payload is small enough to live in SQL.
    pub inline: Option<Bytes>,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
    /// Size of the stored (compressed) bytes.
    pub bytes: u64,
}

/// An encoded payload, ready to be put.
pub struct EncodedPayload {
    pub reference: PayloadRef,
    pub data: Bytes,
}

/// The observation payload store.
#[derive(Clone)]
pub struct PayloadStore {
    store: Arc<dyn ObjectStore>,
    /// Read cache of object-store payloads (keys are content-derived and payloads immutable,
    /// so nothing is ever invalidated).
    cache: Option<PayloadCache>,
    /// Root of a local store: its files are fsynced after each put, which `object_store`'s
    /// local backend does not do.
    local_root: Option<PathBuf>,
    /// Payloads up to this size (compressed) are kept inline in SQL.
    pub inline_max: usize,
}

/// S3 endpoint and credentials (from the standard `AWS_*` variables, read by the server's
/// configuration). Unset fields fall back to the S3 client's defaults.
#[derive(Clone, Default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Allow plain-HTTP endpoints (a local S3-compatible server).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Config {
    // Credentials are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

/// Default largest inline payload.
pub const DEFAULT_INLINE_MAX: usize = 256 * 1024;

impl PayloadStore {
    /// Wraps any object store.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        PayloadStore {
            store,
            cache: None,
            local_root: None,
            inline_max: DEFAULT_INLINE_MAX,
        }
    }

    /// A store in an S3 bucket: `url` is `s3://bucket/optional/prefix`.
    pub fn s3(url: &str, s3: &S3Config) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| Error::Config(format!("{url:?} is not an s3:// URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Config("the s3:// URL names no bucket".into()));
        }
        // A stalled store must not hold a worker for minutes: short timeouts, few retries;
        // the worker's own backoff takes over from there.
        // (Client options first: they replace the whole set, `allow_http` included.)
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(10)),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            })
            .with_allow_http(s3.allow_http);
        let settings = [
            (&s3.endpoint, AmazonS3ConfigKey::Endpoint),
            (&s3.region, AmazonS3ConfigKey::Region),
            (&s3.access_key_id, AmazonS3ConfigKey::AccessKeyId),
            (&s3.secret_access_key, AmazonS3ConfigKey::SecretAccessKey),
            (&s3.session_token, AmazonS3ConfigKey::Token),
        ];
        for (value, key) in settings {
            if let Some(value) = value {
                builder = builder.with_config(key, value);
            }
        }
        let store = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot configure the S3 store: {e}")))?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(PayloadStore::new(store))
    }

    /// A store in a local directory, created if missing.
    pub fn local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let root = dir.canonicalize()?;
        // Deleting a flow's last object also removes its emptied directories.
        let store = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(PayloadStore {
            local_root: Some(root),
            ..PayloadStore::new(Arc::new(store))
        })
    }

    /// Encodes a step's observations: JSON array, zstd, SHA-256.
    pub fn encode(
        team_id: i64,
        flow_id: Uuid,
        version: u32,
        seq: u32,
        observations: &[Observation],
    ) -> Result<EncodedPayload> {
        let json = serde_json::to_vec(observations)
            .map_err(|e| Error::Internal(format!("observations do not serialise: {e}")))?;
        let compressed = zstd::bulk::compress(&json, ZSTD_LEVEL)?;
        let sha256 = hex::encode(Sha256::digest(&compressed));
        let key = format!(
            "t{team_id}/flows/{flow_id}/v{version}/s{seq}-{}.json.zst",
            &sha256[..16]
        );
        Ok(EncodedPayload {
            reference: PayloadRef {
                key,
                inline: None,
                sha256,
                bytes: compressed.len() as u64,
            },
            data: Bytes::from(compressed),
        })
    }

    /// Stores an encoded payload and returns where it is: inline when small enough, else in
    /// the object store (durably: a local file is fsynced with its directory). Keys are
    /// content-derived, so a repeat is harmless.
    pub async fn put(&self, payload: &EncodedPayload) -> Result<PayloadRef> {
        if payload.data.len() <= self.inline_max {
            return Ok(PayloadRef {
                inline: Some(payload.data.clone()),
                ..payload.reference.clone()
            });
        }
        let path = ObjectPath::parse(&payload.reference.key)
            .map_err(|e| Error::Internal(format!("bad payload key: {e}")))?;
        self.store
            .put(&path, PutPayload::from_bytes(payload.data.clone()))
            .await?;
        if let Some(root) = &self.local_root {
            let file = root.join(&payload.reference.key);
            tokio::task::spawn_blocking(move || sync_file_and_dir(&file))
                .await
                .map_err(|e| Error::Internal(format!("fsync task failed: {e}")))??;
        }
        Ok(payload.reference.clone())
    }

    /// Reads a payload, verifies its checksum and returns the decompressed JSON array.
    pub async fn get_json(&self, reference: &PayloadRef) -> Result<Vec<u8>> {
        let stored = match &reference.inline {
            Some(bytes) => {
                verify(reference, bytes)?;
                bytes.clone()
            }
            None => self.read_stored(reference).await?,
        };
        zstd::stream::decode_all(stored.as_ref())
            .map_err(|e| Error::Integrity(format!("{} does not decompress: {e}", reference.key)))
    }

    /// An object-store payload, verified: from the cache when it holds a good copy, else from
    /// the store (and then cached). Each copy is hashed once.
    async fn read_stored(&self, reference: &PayloadRef) -> Result<Bytes> {
        let Some(cache) = &self.cache else {
            let bytes = self.fetch(&reference.key).await?;
            verify(reference, &bytes)?;
            return Ok(bytes);
        };
        if let Some(bytes) = cache.get(&reference.key).await {
            if verify(reference, &bytes).is_ok() {
                return Ok(bytes);
            }
            tracing::warn!(key = %reference.key, "a cached payload was corrupt; reading the store");
            cache.forget(&reference.key).await;
        }
        let bytes = self.fetch(&reference.key).await?;
        verify(reference, &bytes)?;
        cache.put(&reference.key, bytes.clone());
        Ok(bytes)
    }

    /// Serves payloads read from the object store through `cache` from now on.
    pub fn with_cache(mut self, cache: PayloadCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The payload cache, if any.
    pub fn cache(&self) -> Option<&PayloadCache> {
        self.cache.as_ref()
    }

    async fn fetch(&self, key: &str) -> Result<Bytes> {
        let path =
            ObjectPath::parse(key).map_err(|e| Error::Internal(format!("bad payload key: {e}")))?;
        Ok(self.store.get(&path).await?.bytes().await?)
    }

    /// Deletes an object-store payload (an absent one is no error) and drops it from this
    /// process's cache and the shared Redis cache. Other processes' memory caches may keep
    /// a copy, but no row refers to the key any more, so it is never read again.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path =
            ObjectPath::parse(key).map_err(|e| Error::Internal(format!("bad payload key: {e}")))?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(cache) = &self.cache {
            cache.forget(key).await;
        }
        Ok(())
    }

    /// Every object in the store with when it was last written.
    pub async fn list(&self) -> Result<Vec<(String, time::OffsetDateTime)>> {
        use futures::TryStreamExt;
        let objects: Vec<object_store::ObjectMeta> = self.store.list(None).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|meta| {
                let at = time::OffsetDateTime::from_unix_timestamp(meta.last_modified.timestamp())
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                (meta.location.to_string(), at)
            })
            .collect())
    }

    /// Whether the engine answers (for readiness): a `HEAD` of a key that is never written,
    /// whose "not found" is the answer — one request whatever the bucket holds (a listing
    /// could walk a large prefix on some S3-compatible servers).
    pub async fn ping(&self) -> Result<()> {
        match self.store.head(&ObjectPath::from("readyz/probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A size-bounded in-process cache in front of an optional shared Redis cache (entries
/// expire after an hour there). Both are best-effort: a miss or an unreachable Redis falls
/// through to the object store, and every read is still checked against its SHA-256.
#[derive(Clone)]
pub struct PayloadCache {
    memory: moka::sync::Cache<String, Bytes>,
    redis: Option<Redis>,
}

/// How long a payload stays in the shared Redis cache.
pub const REDIS_CACHE_TTL_SECONDS: u64 = 3600;

impl PayloadCache {
    /// Keeps up to `memory_bytes` of payloads in this process, and shares them through
    /// `redis` when given.
    pub fn new(memory_bytes: u64, redis: Option<Redis>) -> Self {
        let memory = moka::sync::Cache::builder()
            .max_capacity(memory_bytes)
            .weigher(|key: &String, value: &Bytes| {
                u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
            })
            .build();
        PayloadCache { memory, redis }
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        if let Some(bytes) = self.memory.get(key) {
            return Some(bytes);
        }
        let redis = self.redis.as_ref()?;
        let mut conn = redis.fast.clone();
        let found: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET")
            .arg(redis.key(&format!("payload:{key}")))
            .query_async(&mut conn)
            .await;
        match found {
            Ok(Some(bytes)) => {
                let bytes = Bytes::from(bytes);
                self.memory.insert(key.to_string(), bytes.clone());
                Some(bytes)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(%error, "payload cache unavailable (Redis)");
                None
            }
        }
    }

    fn put(&self, key: &str, bytes: Bytes) {
        self.memory.insert(key.to_string(), bytes.clone());
        let Some(redis) = self.redis.clone() else {
            return;
        };
        let name = redis.key(&format!("payload:{key}"));
        tokio::spawn(async move {
            let mut conn = redis.fast.clone();
            let stored: redis::RedisResult<()> = redis::cmd("SET")
                .arg(name)
                .arg(bytes.as_ref())
                .arg("EX")
                .arg(REDIS_CACHE_TTL_SECONDS)
                .query_async(&mut conn)
                .await;
            if let Err(error) = stored {
                tracing::debug!(%error, "could not share a payload in the cache (Redis)");
            }
        });
    }

    pub(crate) async fn forget(&self, key: &str) {
        self.memory.invalidate(key);
        if let Some(redis) = &self.redis {
            let mut conn = redis.fast.clone();
            let _: redis::RedisResult<()> = redis::cmd("DEL")
                .arg(redis.key(&format!("payload:{key}")))
                .query_async(&mut conn)
                .await;
        }
    }

    /// Whether `key` is in this process's memory (for tests).
    pub fn holds(&self, key: &str) -> bool {
        self.memory.contains_key(key)
    }
}

/// Checks stored bytes against the SHA-256 recorded for them.
fn verify(reference: &PayloadRef, bytes: &[u8]) -> Result<()> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != reference.sha256 {
        return Err(Error::Integrity(format!(
            "{} has SHA-256 {actual}, expected {}",
            reference.key, reference.sha256
        )));
    }
    Ok(())
}

fn sync_file_and_dir(file: &Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::{Attributes, Reason, Verdict};

    fn observations() -> Vec<Observation> {
        (0..50)
            .map(|i| Observation {
                candidate_id: format!("B0{i:08}"),
                verdict: if i % 3 == 0 {
                    Verdict::Kept
                } else {
                    Verdict::Rejected
                },
                score: Some(i as f64 / 50.0),
                reasons: vec![Reason {
                    code: "price_out_of_range".into(),
                    text: Some(format!("{i}.99 is out of range")),
                }],
                attributes: Attributes::new(),
            })
            .collect()
    }

    #[tokio::test]
    async fn large_payloads_go_to_the_object_store_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PayloadStore::local(dir.path()).unwrap();
        store.inline_max = 0;
        let id = Uuid::now_v7();
        let encoded = PayloadStore::encode(1, id, 1, 2, &observations()).unwrap();
        let prefix = format!("t1/flows/{id}/v1/s2-");
        assert!(encoded.reference.key.starts_with(&prefix));
        let stored = store.put(&encoded).await.unwrap();
        assert_eq!(stored.inline, None);
        assert!(dir.path().join(&stored.key).is_file());
        let json = store.get_json(&stored).await.unwrap();
        let back: Vec<Observation> = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, observations());
        assert!(stored.bytes < json.len() as u64, "compressed");
    }

    #[tokio::test]
    async fn a_tampered_payload_is_an_integrity_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PayloadStore::local(dir.path()).unwrap();
        store.inline_max = 0;
        let encoded = PayloadStore::encode(1, Uuid::now_v7(), 1, 0, &observations()).unwrap();
        let stored = store.put(&encoded).await.unwrap();
        let file = dir.path().join(&stored.key);
        let mut data = std::fs::read(&file).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::write(&file, data).unwrap();
        let err = store.get_json(&stored).await.unwrap_err();
        assert!(matches!(err, Error::Integrity(_)), "{err:?}");
    }

    #[tokio::test]
    async fn small_payloads_stay_inline_and_are_verified_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = PayloadStore::local(dir.path()).unwrap();
        let encoded = PayloadStore::encode(1, Uuid::now_v7(), 1, 0, &observations()).unwrap();
        let stored = store.put(&encoded).await.unwrap();
        assert_eq!(stored.inline.as_ref(), Some(&encoded.data));
        assert!(
            !dir.path().join(&stored.key).exists(),
            "nothing in the object store"
        );
        assert!(store.get_json(&stored).await.is_ok());
        let mut tampered = stored.clone();
        let mut bytes = tampered.inline.take().unwrap().to_vec();
        bytes[0] ^= 1;
        tampered.inline = Some(Bytes::from(bytes));
        assert!(matches!(
            store.get_json(&tampered).await,
            Err(Error::Integrity(_))
        ));
    }
}
