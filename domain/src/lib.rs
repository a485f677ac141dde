//! Flow Trail's domain: everything that is neither HTTP nor UI. Folders by capability, the
//! storage engines underneath:
//!
//! | folder | what lives there |
//! |---|---|
//! | [`ingest`] | parsing and validation rules, the durable queue's contract, the processor that stores queued jobs |
//! | [`flows`] | writing flows (version precedence), the list's paging, data derived for search and statistics |
//! | [`analysis`] | journeys, diffs, reason statistics and funnels |
//! | [`accounts`] | teams, users, roles, API keys, credentials |
//! | [`payloads`] | observation payloads: encoding, checksums, object store, caches |
//! | [`events`] | live updates of flows as they land |
//! | [`retention`] | retention policies, previews, pins, the sweeper, the storage check |
//! | [`usage`] | per-day usage counters (accepted, rejected, rate-limited, replayed) |
//! | [`engines`] | SQL shared by SQLite and PostgreSQL, what differs per dialect, Redis |
//!
//! [`Services`] bundles the engines behind their traits — metadata ([`MetadataStore`]), the
//! ingest queue ([`ingest::IngestQueue`]) and payloads ([`payloads::PayloadStore`] over
//! `object_store`) — and is what the HTTP handlers, the dashboard's server functions and the
//! ingest processor call. Which engines are used is decided once, in [`Services::open`].

pub mod accounts;
pub mod alerts;
pub mod analysis;
pub mod engines;
mod error;
pub mod events;
pub mod flows;
pub mod ingest;
pub mod millis;
pub mod otlp;
pub mod payloads;
pub mod retention;
mod services;
pub mod usage;

pub use error::{Error, Result};
pub use services::{QueueEngine, Services, StorageConfig};

/// Everything the metadata database stores: accounts and flows. One implementation serves
/// both SQL engines (`engines::sql::SqlMetadata`).
#[async_trait::async_trait]
pub trait MetadataStore:
    accounts::AccountStore + alerts::AlertStore + flows::FlowStore + retention::RetentionStore
{
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
}
