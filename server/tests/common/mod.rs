//! What the server's test files share: a fresh embedded data directory with its services, an
//! API key, and the application built over them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use flowtrail_domain::Services;
use flowtrail_domain::accounts::Scope;
use flowtrail_server::{HttpConfig, build_app};
use flowtrail_test_support::engines;

/// A fresh, bootstrapped embedded profile and its application.
pub struct Fixture {
    pub router: Router,
    pub services: Arc<Services>,
    /// An API key with scope `all` in team `default`.
    pub key: String,
    /// An API key with scope `admin` in team `default`.
    #[allow(dead_code)] // not every test binary uses every field
    pub admin_key: String,
    /// What `services` was opened with (a second server may open it too).
    #[allow(dead_code)] // not every test binary uses every field
    pub storage: flowtrail_domain::StorageConfig,
    pub dir: tempfile::TempDir,
}

/// A fixture whose HTTP configuration `adjust` may change from the defaults.
#[allow(dead_code)] // not every test binary uses every helper
pub async fn fixture(addr: SocketAddr, adjust: impl FnOnce(&mut HttpConfig)) -> Fixture {
    fixture_with(addr, |_| {}, adjust).await
}

/// A fixture whose storage (`adjust_storage`) and HTTP configuration may change.
pub async fn fixture_with(
    addr: SocketAddr,
    adjust_storage: impl FnOnce(&mut flowtrail_domain::StorageConfig),
    adjust: impl FnOnce(&mut HttpConfig),
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default; in the scale-out pass a fresh PostgreSQL database, every payload
    // in S3, and the Redis queue, cache, events, rate limits and in-flight keys in Redis, each
    // under a name of this fixture's own.
    let mut storage = engines::storage(dir.path()).await;
    adjust_storage(&mut storage);
    let services = Arc::new(Services::open(&storage).await.unwrap());
    services.bootstrap(None).await.unwrap();
    let key = services
        .create_api_key("default", "test", Scope::All)
        .await
        .unwrap();
    let admin_key = services
        .create_api_key("default", "admin", Scope::Admin)
        .await
        .unwrap();
    let mut config = HttpConfig::new(addr, dir.path().join("site"));
    adjust(&mut config);
    let router = build_app(services.clone(), &config).await.unwrap();
    Fixture {
        router,
        services,
        key,
        admin_key,
        storage,
        dir,
    }
}
