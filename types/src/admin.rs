//! What the admin side answers (`/api/v1/admin/…` and the `/admin` pages): members, API
//! keys, retention and usage. Times are RFC 3339 in UTC; sizes are bytes; roles are
//! `admin`, `member`, `viewer`; key scopes `ingest`, `read`, `all`, `admin` (CONTRACT.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A user's membership of the team (`GET /api/v1/admin/members`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub user_id: i64,
    pub email: String,
    /// `admin`, `member` or `viewer`.
    pub role: String,
}

/// `{"members": [...]}`, ordered by e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Members {
    pub members: Vec<Member>,
}

/// Answer of adding a member (`POST /api/v1/admin/members`, 201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddedMember {
    #[serde(flatten)]
    pub member: Member,
    /// When the address had no account yet: the password it was created with, shown this
    /// once (only its argon2id hash is stored). `null` for an existing account.
    pub initial_password: Option<String>,
}

/// An API key as listed: never the key itself (`GET /api/v1/admin/api-keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyInfo {
    pub id: i64,
    pub name: String,
    /// `ingest`, `read`, `all` or `admin`.
    pub scope: String,
    /// The key's first characters (`ftk_` and a few more): enough to tell keys apart, not
    /// to use one.
    pub prefix: String,
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Updated at most once a minute.
    #[serde(default, with = "crate::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Set once revoked; a revoked key answers 401 everywhere within a second.
    #[serde(default, with = "crate::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// `{"api_keys": [...]}`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeys {
    pub api_keys: Vec<ApiKeyInfo>,
}

/// A new key (`POST /api/v1/admin/api-keys`, 201): `key` is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    pub key: String,
}

/// A team's retention policy (`GET`/`PUT /api/v1/admin/retention`): flows are deleted once
/// they started more than `days` days ago, unless pinned. `null` keeps them forever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// For every pipeline without an override: days, 1 to 36,500.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 36500))]
    pub default_days: Option<u32>,
    /// Per-pipeline overrides: a number of days, or `null` to keep that pipeline forever
    /// whatever the default.
    #[serde(default)]
    pub pipelines: BTreeMap<String, Option<u32>>,
}

/// Longest retention a policy may name: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Most per-pipeline overrides a policy may hold.
pub const MAX_RETENTION_OVERRIDES: usize = 1_000;

impl RetentionPolicy {
    /// The days that apply to `pipeline` (`None`: kept forever).
    pub fn days_for(&self, pipeline: &str) -> Option<u32> {
        match self.pipelines.get(pipeline) {
            Some(days) => *days,
            None => self.default_days,
        }
    }
}

/// What a policy would delete now, per pipeline (`POST /api/v1/admin/retention/preview`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelinePreview {
    pub pipeline: String,
    pub flows: u64,
    /// Stored (compressed) observation payload bytes of those flows.
    pub bytes: u64,
}

/// What saving and sweeping a policy would delete now: flows and payload bytes in all, per
/// pipeline (only pipelines losing something), and the oldest flow start that stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionPreview {
    pub flows: u64,
    pub bytes: u64,
    pub pipelines: Vec<PipelinePreview>,
    /// `started_at` of the oldest flow kept; `null` when none would be left.
    #[serde(default, with = "crate::rfc3339::option")]
    pub oldest_kept: Option<OffsetDateTime>,
}

/// One team's part of one sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionRun {
    #[serde(with = "crate::rfc3339")]
    pub started_at: OffsetDateTime,
    /// `null` while running, or when the sweep was stopped (the next one finishes its work).
    #[serde(default, with = "crate::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub flows_deleted: u64,
    pub bytes_deleted: u64,
}

/// `GET /api/v1/admin/retention`: the policy, when the sweeper runs, its last runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionState {
    #[serde(flatten)]
    pub policy: RetentionPolicy,
    /// Seconds between sweeps of this server.
    pub interval_seconds: u64,
    /// When this server's sweeper runs next (`null` when it does not run here).
    #[serde(default, with = "crate::rfc3339::option")]
    pub next_run_at: Option<OffsetDateTime>,
    /// Newest first, at most 20.
    pub runs: Vec<RetentionRun>,
}

/// Usage of one team on one UTC day by one pipeline (`GET /api/v1/admin/usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// `null` for requests refused before their pipeline was known.
    pub pipeline: Option<String>,
    /// Flow records and steps pushes accepted (202, not replays).
    pub flows: u64,
    pub steps: u64,
    pub observations: u64,
    /// Uncompressed JSON bytes accepted.
    pub bytes: u64,
    /// Requests refused with a 4xx other than 429.
    pub rejected: u64,
    pub rate_limited: u64,
    /// Repeats answered from an earlier acceptance (`Idempotent-Replayed: true`).
    pub replayed: u64,
}

/// `{"since", "until", "days": [...]}`, by day then pipeline. `since` and `until` are the
/// UTC midnights bounding the whole days the answer covers (`until` excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    #[serde(with = "crate::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "crate::rfc3339")]
    pub until: OffsetDateTime,
    pub days: Vec<UsageRow>,
}
