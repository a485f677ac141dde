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
    pub dir: tempfile::TempDir,
}

/// A fixture whose HTTP configuration `adjust` may change from the defaults.
pub async fn fixture(addr: SocketAddr, adjust: impl FnOnce(&mut HttpConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default; in the scale-out pass a fresh PostgreSQL database, every payload
    // in S3, and the Redis queue, cache, events, rate limits and in-flight keys in Redis, each
    // under a name of this fixture's own.
    let storage = engines::storage(dir.path()).await;
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
