//! Shared state of the HTTP server.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::FromRef;
use flowtrail_domain::Services;
use leptos::config::LeptosOptions;

use crate::admission::{DepthGate, InFlight, RateLimits};

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

/// What every handler may use.
pub struct App {
    /// Storage engines, queue and ingest limits.
    pub services: Arc<Services>,
    /// How the dashboard is rendered and where its assets are.
    pub leptos: LeptosOptions,
    /// Largest request body, compressed and decompressed.
    pub max_body_bytes: usize,
    /// Counters exposed on `/metrics`.
    pub metrics: Metrics,
    /// Token bucket per API key.
    pub rate_limits: RateLimits,
    /// Bound on the ingest queue's depth.
    pub depth_gate: DepthGate,
    /// Idempotency keys being accepted right now.
    pub in_flight: InFlight,
    /// Becomes `true` when the process shuts down: long-lived answers (the event stream)
    /// end on it, so a graceful shutdown does not wait for their clients to leave.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// Ends every long-lived answer (the server is shutting down). Idempotent.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`App::close_streams`] was called (at once if it already was).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut closing = self.closing.subscribe();
        async move {
            // An error means the sender is gone: the server is gone too.
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }
}

/// Process-wide counters (Prometheus text on `/metrics`).
#[derive(Default)]
pub struct Metrics {
    /// Flows acknowledged with 202 (replays excluded).
    pub flows_accepted: AtomicU64,
    /// Repeats answered from the idempotency record.
    pub flows_replayed: AtomicU64,
    /// Ingest requests refused with a 4xx.
    pub flows_rejected: AtomicU64,
    /// Ingest requests refused by the rate limit (429).
    pub flows_rate_limited: AtomicU64,
    /// Ingest requests refused because the queue is full or storage is down (503).
    pub flows_unavailable: AtomicU64,
    /// Observation payloads whose checksum did not match.
    pub integrity_failures: AtomicU64,
}

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
