//! What the server's test files share: a fresh embedded data directory with its services, an
//! API key, and the application built over them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use flowtrail_domain::auth::Scope;
use flowtrail_domain::{Services, StorageConfig};
use flowtrail_server::{HttpConfig, build_app};

#[path = "../../../domain/tests/support/engines.rs"]
mod engines;

/// A fresh, bootstrapped embedded profile and its application.
pub struct Fixture {
    pub router: Router,
    pub services: Arc<Services>,
    /// An API key with scope `all` in team `default`.
    pub key: String,
    pub dir: tempfile::TempDir,
}

/// A fixture whose HTTP configuration `adjust` may change from the defaults.
pub async fn fixture(addr: SocketAddr, adjust: impl FnOnce(&mut HttpConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = StorageConfig::embedded(dir.path());
    // In the scale-out pass, the same tests run on a fresh PostgreSQL database.
    if let Some(admin_url) = engines::scale_engine("FLOWTRAIL_TEST_DATABASE_URL") {
        let name = format!("flowtrail_test_{}", uuid::Uuid::now_v7().simple());
        let url = flowtrail_domain::postgres::create_database(&admin_url, &name).await;
        storage.database_url = Some(url.unwrap());
    }
    // With `scripts/with-s3.sh`: every payload in a real S3-compatible server.
    if let Some(url) = engines::scale_engine("FLOWTRAIL_TEST_OBJECT_STORE_URL") {
        let var = |name: &str| std::env::var(name).ok();
        storage.object_store_url = Some(format!("{url}/{}", uuid::Uuid::now_v7().simple()));
        storage.payload_inline_max = 0;
        storage.s3 = flowtrail_domain::payloads::S3Config {
            endpoint: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION"),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: None,
            allow_http: true,
        };
    }
    // With `scripts/with-redis.sh`: the Redis queue, cache, events, rate limits and in-flight
    // keys in a real Redis, under a prefix of this fixture's own.
    if let Some(url) = engines::scale_engine("FLOWTRAIL_TEST_REDIS_URL") {
        storage.redis_url = Some(url);
        storage.redis_prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    }
    let services = Arc::new(Services::open(&storage).await.unwrap());
    services.bootstrap(None).await.unwrap();
    let key = services
        .create_api_key("default", "test", Scope::All)
        .await
        .unwrap();
    let mut config = HttpConfig::new(addr, dir.path().join("site"));
    adjust(&mut config);
    let router = build_app(services.clone(), &config).await.unwrap();
    Fixture {
        router,
        services,
        key,
        dir,
    }
}
