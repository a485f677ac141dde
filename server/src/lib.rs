//! The `flowtrail` server: configuration, HTTP wiring and the commands of the binary.
//! Business rules live in `flowtrail-domain`; this crate only connects them to the world.

#![recursion_limit = "256"]

pub mod admission;
pub mod commands;
pub mod config;
pub mod http;
pub mod logging;
pub mod otlp;
pub mod security;
pub mod state;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::Request;
use flowtrail_domain::Services;
use leptos::config::LeptosOptions;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::SessionStore;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use state::{App, AppState, Metrics};

/// How the HTTP side is set up.
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub site_root: PathBuf,
    pub max_body_bytes: usize,
    pub secure_cookies: bool,
    /// Flows per second per API key (0: unlimited), and the burst above it.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Ingest answers 503 while the queue holds this many jobs (0: unbounded).
    pub max_queue_depth: u64,
}

impl HttpConfig {
    /// Defaults for `addr` and `site_root`: what tests and embedders start from.
    pub fn new(addr: SocketAddr, site_root: PathBuf) -> Self {
        HttpConfig {
            addr,
            site_root,
            max_body_bytes: 32 * 1024 * 1024,
            secure_cookies: false,
            rate_limit_per_second: 1_000,
            rate_limit_burst: 2_000,
            max_queue_depth: 100_000,
        }
    }
}

/// Builds the whole application: API, dashboard, sessions, request ids and tracing. With
/// Redis in `services`, rate limits and in-flight idempotency keys are shared by every server.
pub async fn build_app(services: Arc<Services>, config: &HttpConfig) -> anyhow::Result<Router> {
    Ok(build_app_and_state(services, config).await?.0)
}

/// [`build_app`], and the state its handlers share (what the OTLP/gRPC receiver,
/// [`otlp::grpc::serve`], answers with).
pub async fn build_app_and_state(
    services: Arc<Services>,
    config: &HttpConfig,
) -> anyhow::Result<(Router, AppState)> {
    let leptos = LeptosOptions::builder()
        .output_name("flowtrail")
        .site_root(config.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .env(leptos::config::Env::PROD)
        .build();
    let state = AppState(Arc::new(App {
        leptos,
        max_body_bytes: config.max_body_bytes,
        metrics: Metrics::default(),
        rate_limits: admission::RateLimits::new(
            config.rate_limit_per_second,
            config.rate_limit_burst,
            services.redis.clone(),
        ),
        depth_gate: admission::DepthGate::new(
            config.max_queue_depth,
            std::time::Duration::from_millis(250),
        ),
        in_flight: match &services.redis {
            Some(redis) => admission::InFlight::Redis(redis.clone()),
            None => admission::InFlight::default(),
        },
        services,
        closing: tokio::sync::watch::channel(false).0,
    }));
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %request_id,
        )
    });
    let router = Router::new()
        .merge(http::router())
        .merge(otlp::http::router())
        .merge(web::router(&state));
    // Sessions live in the metadata database of the profile.
    let router = match (&state.services.sqlite, &state.services.postgres) {
        (Some(db), _) => {
            // Session reads are frequent and writes rare: they use the read pool.
            let store = SqliteStore::new(db.read.clone())
                .with_table_name("sessions")
                .map_err(anyhow::Error::msg)?;
            store.migrate().await?;
            router.layer(session_layer(store, config))
        }
        (None, Some(db)) => {
            let store = PostgresStore::new(db.write.clone())
                .with_table_name("sessions")
                .map_err(anyhow::Error::msg)?;
            store.migrate().await?;
            router.layer(session_layer(store, config))
        }
        (None, None) => anyhow::bail!("sessions need the metadata database"),
    };
    let [nosniff, referrer, csp] = security::response_headers();
    // Served over HTTPS: browsers are told to keep to it (RFC 6797).
    let hsts = config.secure_cookies.then(|| {
        tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        )
    });
    let router = router
        .layer(tower::util::option_layer(hsts))
        .layer(axum::middleware::from_fn(
            security::refuse_cross_site_writes,
        ))
        .layer(nosniff)
        .layer(referrer)
        .layer(csp)
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state.clone());
    Ok((router, state))
}

/// The session cookie's name: over HTTPS (`--secure-cookies`) with the `__Host-` prefix,
/// which browsers accept only when `Secure`, without `Domain` and on path `/` — so no sibling
/// subdomain or plain-HTTP page can plant one (RFC 6265bis, "Cookie Name Prefixes").
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-flowtrail_session"
    } else {
        "flowtrail_session"
    }
}

/// Cookie sessions over `store`: HTTP-only, SameSite=Lax, path `/`, 7 days of inactivity;
/// `Secure` and `__Host-` named with `--secure-cookies`.
fn session_layer<S: SessionStore + Clone>(store: S, config: &HttpConfig) -> SessionManagerLayer<S> {
    SessionManagerLayer::new(store)
        .with_name(session_cookie_name(config.secure_cookies))
        .with_path("/")
        .with_secure(config.secure_cookies)
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)))
}

/// Where the built dashboard assets are when no `--site-root` is given: `target/site` beside
/// the binary's profile directory, else `./target/site`.
pub fn default_site_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .and_then(|dir| dir.parent())
                .map(|t| t.join("site"))
        })
        .filter(|dir| dir.join("pkg").is_dir())
        .unwrap_or_else(|| PathBuf::from("target/site"))
}
