//! Command line and environment: every flag has a `FLOWTRAIL_<FLAG>` variable. This is the only
//! place that reads the environment. Secrets are never printed (no `Debug` on what holds them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flowtrail_domain::accounts::{Role, Scope};
use flowtrail_domain::{QueueEngine, StorageConfig};

/// Flow Trail: an X-Ray for multi-step decision pipelines.
#[derive(Parser)]
#[command(name = "flowtrail", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log as JSON lines (for log shippers) instead of text.
    #[arg(long, env = "FLOWTRAIL_LOG_JSON", global = true)]
    pub log_json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// API, dashboard and workers in one process.
    Serve(ServeArgs),
    /// Ingest workers only (scale-out: run many against shared engines).
    Worker(WorkerArgs),
    /// Apply database migrations and exit.
    Migrate(StorageArgs),
    /// Write the flows the list's filters select to stdout, as JSON Lines, CSV or Parquet,
    /// at the level of flows, steps or observations (what `GET /api/v1/export` answers);
    /// progress and totals on stderr.
    Export(ExportArgs),
    /// Write a debugging bundle of flows (steps, observations, a SHA-256 manifest) to stdout,
    /// as `GET /api/v1/flows/{id}/bundle` answers it.
    Bundle(BundleArgs),
    /// Load a debugging bundle (`.ft`) into this deployment: every checksum verified first,
    /// all flows in one transaction, original ids kept, marked imported; importing twice
    /// writes nothing new. Prints what it did as JSON.
    Import(ImportArgs),
    /// Administration.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Where data lives. No URL = the embedded default under `--data-dir`.
#[derive(Args, Clone)]
pub struct StorageArgs {
    /// Directory of the embedded default: SQLite file, queue and payload directory.
    #[arg(long, env = "FLOWTRAIL_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Metadata database URL (`sqlite:…`); default: `<data-dir>/flowtrail.db`.
    #[arg(long, env = "FLOWTRAIL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Payload store URL (`file:///…`); default: `<data-dir>/payloads`.
    #[arg(long, env = "FLOWTRAIL_OBJECT_STORE_URL", hide_env_values = true)]
    pub object_store_url: Option<String>,
    /// Redis URL (scale-out): the ingest queue (Redis Streams), payload cache, live-update
    /// fan-out, and rate limits and in-flight idempotency keys shared by every server.
    #[arg(long, env = "FLOWTRAIL_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key Flow Trail writes (to share one Redis between deployments).
    #[arg(long, env = "FLOWTRAIL_REDIS_PREFIX", default_value = "flowtrail")]
    pub redis_prefix: String,
    /// Where the ingest queue lives: `redis` (Redis Streams; needs `appendonly yes`,
    /// `appendfsync always`, `maxmemory-policy noeviction`), `database` (a table of the
    /// metadata database), or `auto` (Redis when a Redis URL is given).
    #[arg(long, env = "FLOWTRAIL_QUEUE", value_enum, default_value_t = QueueArg::Auto)]
    pub queue: QueueArg,
    /// Bytes of observation payloads cached in each process (0: none); with Redis, payloads
    /// are also shared through Redis for an hour.
    #[arg(long, env = "FLOWTRAIL_PAYLOAD_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub payload_cache_bytes: u64,
    /// Observation payloads up to this many compressed bytes live inline in SQL; larger
    /// ones in the object store.
    #[arg(long, env = "FLOWTRAIL_PAYLOAD_INLINE_MAX_BYTES", default_value_t = 256 * 1024)]
    pub payload_inline_max_bytes: usize,
    /// S3 endpoint for an `s3://` object store (a local S3-compatible server, MinIO…).
    #[arg(long, env = "AWS_ENDPOINT_URL", hide = true)]
    pub aws_endpoint_url: Option<String>,
    #[arg(long, env = "AWS_REGION", hide = true)]
    pub aws_region: Option<String>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide = true, hide_env_values = true)]
    pub aws_access_key_id: Option<String>,
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub aws_secret_access_key: Option<String>,
    #[arg(long, env = "AWS_SESSION_TOKEN", hide = true, hide_env_values = true)]
    pub aws_session_token: Option<String>,
    /// Allow a plain-HTTP S3 endpoint.
    #[arg(long, env = "AWS_ALLOW_HTTP", hide = true)]
    pub aws_allow_http: bool,
    /// How long an Idempotency-Key is remembered after its flow is stored, in hours.
    #[arg(long, env = "FLOWTRAIL_IDEMPOTENCY_WINDOW_HOURS", default_value_t = 24)]
    pub idempotency_window_hours: u64,
}

impl StorageArgs {
    /// The domain's storage configuration, or why this one cannot be used.
    pub fn storage(&self) -> anyhow::Result<StorageConfig> {
        Ok(StorageConfig {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            object_store_url: self.object_store_url.clone(),
            payload_inline_max: self.payload_inline_max_bytes,
            s3: flowtrail_domain::payloads::S3Config {
                endpoint: self.aws_endpoint_url.clone(),
                region: self.aws_region.clone(),
                access_key_id: self.aws_access_key_id.clone(),
                secret_access_key: self.aws_secret_access_key.clone(),
                session_token: self.aws_session_token.clone(),
                allow_http: self.aws_allow_http,
            },
            redis_url: self.redis_url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            queue: match self.queue {
                QueueArg::Auto => QueueEngine::Auto,
                QueueArg::Database => QueueEngine::Database,
                QueueArg::Redis => QueueEngine::Redis,
            },
            payload_cache_bytes: self.payload_cache_bytes,
        })
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on.
    #[arg(long, env = "FLOWTRAIL_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Address of the OTLP/gRPC receiver (`TraceService/Export`); `0` turns it off. OTLP/HTTP
    /// (`POST /v1/traces`) is always served on `--addr`.
    #[arg(long, env = "FLOWTRAIL_OTLP_GRPC_ADDR", default_value = "127.0.0.1:4317", value_parser = optional_addr)]
    pub otlp_grpc_addr: OptionalAddr,
    /// Directory of the built dashboard assets (`pkg/`); default: `target/site` next to the
    /// binary, else `./target/site`.
    #[arg(long, env = "FLOWTRAIL_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// E-mail of the first admin, created on the first start with an empty database.
    #[arg(long, env = "FLOWTRAIL_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of the first admin.
    #[arg(long, env = "FLOWTRAIL_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Ingest worker tasks in this process (0: leave ingest to `flowtrail worker`).
    #[arg(long, env = "FLOWTRAIL_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Seconds a worker holds a claimed job; a crashed worker's jobs are taken again after it.
    #[arg(long, env = "FLOWTRAIL_JOB_LEASE_SECONDS", default_value_t = 30)]
    pub job_lease_seconds: u64,
    /// Largest accepted request body, compressed and decompressed, in bytes.
    #[arg(long, env = "FLOWTRAIL_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Served over HTTPS: session cookies `Secure` and named `__Host-flowtrail_session`, and
    /// `Strict-Transport-Security` on every answer.
    #[arg(long, env = "FLOWTRAIL_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Flows per second per API key (token bucket; 0 = unlimited).
    #[arg(long, env = "FLOWTRAIL_RATE_LIMIT_PER_SECOND", default_value_t = 1_000)]
    pub rate_limit_per_second: u32,
    /// Burst above the rate an API key may send at once.
    #[arg(long, env = "FLOWTRAIL_RATE_LIMIT_BURST", default_value_t = 2_000)]
    pub rate_limit_burst: u32,
    /// Ingest answers 503 + Retry-After while the queue holds this many flows (0 = unbounded).
    #[arg(long, env = "FLOWTRAIL_MAX_QUEUE_DEPTH", default_value_t = 100_000)]
    pub max_queue_depth: u64,
    /// Seconds between retention sweeps (one sweeper works at a time per deployment).
    #[arg(
        long,
        env = "FLOWTRAIL_RETENTION_INTERVAL_SECONDS",
        default_value_t = 300
    )]
    pub retention_interval_seconds: u64,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Seconds between evaluations of the drift alert rules (one evaluator works at a time
    /// per deployment; 0 = this process does not evaluate).
    #[arg(long, env = "FLOWTRAIL_ALERT_INTERVAL_SECONDS", default_value_t = 60)]
    pub alert_interval_seconds: u64,
    /// On SIGTERM or Ctrl-C, seconds to let requests in progress finish; connections still
    /// open after that (a client that never finishes its request) are closed.
    #[arg(long, env = "FLOWTRAIL_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
    /// Seconds a client has to send a whole request head (request line and headers) before
    /// its connection is closed; an idle keep-alive connection is closed after it too (slow
    /// HTTP, "slowloris", OWASP's Denial of Service cheat sheet). 1–3600.
    #[arg(
        long,
        env = "FLOWTRAIL_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub header_read_timeout_seconds: u64,
    /// The longest a request body may stall between two of its chunks before the request is
    /// answered 400 `malformed_json` (slow POST). 1–3600.
    #[arg(
        long,
        env = "FLOWTRAIL_BODY_IDLE_TIMEOUT_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub body_idle_timeout_seconds: u64,
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Worker tasks in this process.
    #[arg(long, env = "FLOWTRAIL_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Seconds a worker holds a claimed job; a crashed worker's jobs are taken again after it.
    #[arg(long, env = "FLOWTRAIL_JOB_LEASE_SECONDS", default_value_t = 30)]
    pub job_lease_seconds: u64,
    /// Seconds between retention sweeps (one sweeper works at a time per deployment).
    #[arg(
        long,
        env = "FLOWTRAIL_RETENTION_INTERVAL_SECONDS",
        default_value_t = 300
    )]
    pub retention_interval_seconds: u64,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Seconds between evaluations of the drift alert rules (one evaluator works at a time
    /// per deployment; 0 = this process does not evaluate).
    #[arg(long, env = "FLOWTRAIL_ALERT_INTERVAL_SECONDS", default_value_t = 60)]
    pub alert_interval_seconds: u64,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a user; the password is read from standard input.
    CreateUser(CreateUserArgs),
    /// Create a team (nothing happens when it exists) and print its slug.
    CreateTeam(CreateTeamArgs),
    /// Create an API key and print it, alone, on standard output. It is shown only once.
    CreateApiKey(CreateApiKeyArgs),
    /// Run one retention sweep now; prints flows and bytes deleted as JSON.
    Sweep(SweepArgs),
    /// Evaluate every drift alert rule once now and deliver what fires; prints what it did
    /// as JSON (rules, opened, kept, resolved, too_few_flows, failed, delivered,
    /// delivery_failures).
    EvaluateAlerts(EvaluateAlertsArgs),
    /// List orphan payload objects and rows whose payload is missing; exit 1 if any.
    CheckStorage(CheckStorageArgs),
    /// Inspect and redrive the dead-letter queue (jobs that failed permanently).
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Team slug.
    #[arg(long, env = "FLOWTRAIL_TEAM", default_value = "default")]
    pub team: String,
    /// The flows list's filters as a query string (`GET /api/v1/flows`'s parameters), in one
    /// argument or several, e.g. `pipeline=competitor_selection&status=failed` or
    /// `pipeline=competitor_selection status=failed`; combined with the filter options below.
    /// None: every flow.
    pub filters: Vec<String>,
    /// Only flows of this pipeline.
    #[arg(long, help_heading = "Filters")]
    pub pipeline: Option<String>,
    /// Only flows with this status (`running`, `succeeded`, `failed`).
    #[arg(long, help_heading = "Filters")]
    pub status: Option<String>,
    /// Only flows with this tag, as `key:value`; repeat for several (all must match).
    #[arg(long, help_heading = "Filters")]
    pub tag: Vec<String>,
    /// Only flows started at or after this time (RFC 3339, or a date).
    #[arg(long, help_heading = "Filters")]
    pub since: Option<String>,
    /// Only flows started before this time (RFC 3339, or a date).
    #[arg(long, help_heading = "Filters")]
    pub until: Option<String>,
    /// Only flows with this text in reasoning, reasons or names.
    #[arg(long, short = 'q', help_heading = "Filters")]
    pub q: Option<String>,
    /// With `--min-eliminated`: only flows where a step of this kind eliminated that share.
    #[arg(long, help_heading = "Filters")]
    pub step_kind: Option<String>,
    /// Share of a step's `candidates_in` not in its `candidates_out`, 0 to 1.
    #[arg(long, help_heading = "Filters")]
    pub min_eliminated: Option<String>,
    /// Only flows with a step of this name (with `--reason`: the step that counted it).
    #[arg(long, help_heading = "Filters")]
    pub step: Option<String>,
    /// Only flows where a step counted at least one rejection with this reason code.
    #[arg(long, help_heading = "Filters")]
    pub reason: Option<String>,
    /// The file format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// What one row is.
    #[arg(long, value_enum, default_value_t = ExportLevel::Flows)]
    pub level: ExportLevel,
    /// Write to this file instead of stdout (`-` is stdout); it appears only once the export
    /// is complete (a failed export leaves no partial file behind). A symbolic link is
    /// followed (the file it names is replaced, with its mode); a FIFO or a device is
    /// written in place.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
}

impl ExportArgs {
    /// The filters as one query string: the positional arguments joined by `&`, then the filter
    /// options, form-encoded.
    pub fn query(&self) -> String {
        let mut parts: Vec<String> = self
            .filters
            .iter()
            .map(|part| {
                part.trim()
                    .trim_start_matches('?')
                    .trim_matches('&')
                    .to_owned()
            })
            .filter(|part| !part.is_empty())
            .collect();
        let options = [
            ("pipeline", &self.pipeline),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
            ("q", &self.q),
            ("step_kind", &self.step_kind),
            ("min_eliminated", &self.min_eliminated),
            ("step", &self.step),
            ("reason", &self.reason),
        ];
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        let mut any = false;
        for (name, value) in options {
            if let Some(value) = value {
                encoded.append_pair(name, value);
                any = true;
            }
        }
        for tag in &self.tag {
            encoded.append_pair("tag", tag);
            any = true;
        }
        if any {
            parts.push(encoded.finish());
        }
        parts.join("&")
    }
}

/// `flowtrail export --format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    /// JSON Lines: one object per row.
    Jsonl,
    /// CSV with a header row (cells a spreadsheet would run as formulas are neutralised).
    Csv,
    /// Apache Parquet, zstd, the schema of ARCHITECTURE.md ("Exports").
    Parquet,
}

/// `flowtrail export --level`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportLevel {
    /// A row per flow.
    Flows,
    /// A row per step, with its flow's id.
    Steps,
    /// A row per stored observation, with its flow's id and step.
    Observations,
}

#[derive(Args)]
pub struct BundleArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Team slug.
    #[arg(long, env = "FLOWTRAIL_TEAM", default_value = "default")]
    pub team: String,
    /// The flows' ids (1 to 100).
    #[arg(required = true, num_args = 1..)]
    pub ids: Vec<uuid::Uuid>,
    /// Write to this file instead of stdout (`-` is stdout), as `flowtrail export -o` does:
    /// complete or not at all, links followed, a FIFO or a device written in place.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Team slug the flows are imported into.
    #[arg(long, env = "FLOWTRAIL_TEAM", default_value = "default")]
    pub team: String,
    /// The bundle (`.ft`); `-` reads standard input.
    pub file: PathBuf,
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List dead jobs, newest first, one JSON object per line.
    List(DlqListArgs),
    /// Put dead jobs back in the queue with fresh attempts; prints how many.
    Redrive(DlqRedriveArgs),
}

#[derive(Args)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Only this team's jobs.
    #[arg(long, env = "FLOWTRAIL_TEAM")]
    pub team: Option<String>,
    #[arg(long, env = "FLOWTRAIL_LIMIT", default_value_t = 100)]
    pub limit: u32,
}

#[derive(Args)]
pub struct DlqRedriveArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Only this job (default: every dead job).
    #[arg(long, env = "FLOWTRAIL_ID")]
    pub id: Option<i64>,
    /// Only this team's jobs.
    #[arg(long, env = "FLOWTRAIL_TEAM")]
    pub team: Option<String>,
}

#[derive(Args)]
pub struct CreateUserArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[arg(long, env = "FLOWTRAIL_EMAIL")]
    pub email: String,
    /// Read the password from the first line of standard input.
    #[arg(long, env = "FLOWTRAIL_PASSWORD_STDIN", required = true)]
    pub password_stdin: bool,
    /// Team slug (created if missing).
    #[arg(long, env = "FLOWTRAIL_TEAM", default_value = "default")]
    pub team: String,
    #[arg(long, env = "FLOWTRAIL_ROLE", value_enum, default_value_t = RoleArg::Member)]
    pub role: RoleArg,
}

#[derive(Args)]
pub struct CreateApiKeyArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Team slug (created if missing).
    #[arg(long, env = "FLOWTRAIL_TEAM", default_value = "default")]
    pub team: String,
    /// A name to tell keys apart (e.g. the pipeline using it).
    #[arg(long, env = "FLOWTRAIL_NAME")]
    pub name: String,
    /// What the key may do.
    #[arg(long, env = "FLOWTRAIL_SCOPE", value_enum, default_value_t = ScopeArg::All)]
    pub scope: ScopeArg,
}

#[derive(Args)]
pub struct CreateTeamArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The team's slug: 1 to 64 of a-z, 0-9, `-` and `_`.
    #[arg(long, env = "FLOWTRAIL_TEAM_NAME")]
    pub name: String,
}

#[derive(Args)]
pub struct StorageOnlyArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `flowtrail admin check-storage`.
#[derive(Args)]
pub struct CheckStorageArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Also delete the orphan objects (unreferenced and older than 15 minutes: left by a
    /// process killed between writing a flow's objects and its rows) that still no row
    /// refers to; exit 1 only if rows whose payload is missing remain.
    #[arg(long)]
    pub delete_orphans: bool,
}

/// How the retention sweeper deletes (shared by `serve`, `worker` and `admin sweep`).
#[derive(Args, Clone)]
pub struct RetentionArgs {
    /// Most flows deleted per transaction (fewer while a batch holds the write lock over
    /// 50 ms).
    #[arg(long, env = "FLOWTRAIL_RETENTION_BATCH", default_value_t = 500)]
    pub retention_batch: u32,
    /// Least pause between batches, in milliseconds (the sweep also pauses as long as its
    /// last batch took, leaving the database to ingest).
    #[arg(long, env = "FLOWTRAIL_RETENTION_PAUSE_MS", default_value_t = 50)]
    pub retention_pause_ms: u64,
    /// Seconds a sweeper's lease lasts without renewal (it renews it every batch): after a
    /// crash, the next sweep of the deployment starts at most this long after.
    #[arg(long, env = "FLOWTRAIL_RETENTION_LEASE_SECONDS", default_value_t = 60)]
    pub retention_lease_seconds: u64,
}

impl RetentionArgs {
    pub fn options(&self) -> flowtrail_domain::retention::SweepOptions {
        flowtrail_domain::retention::SweepOptions {
            batch: self.retention_batch.max(1),
            pause: std::time::Duration::from_millis(self.retention_pause_ms),
            lease: std::time::Duration::from_secs(self.retention_lease_seconds.max(1)),
            ..flowtrail_domain::retention::SweepOptions::default()
        }
    }
}

#[derive(Args)]
pub struct EvaluateAlertsArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum QueueArg {
    Auto,
    Database,
    Redis,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Member,
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Member => Role::Member,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    Ingest,
    Read,
    All,
    Admin,
}

impl From<ScopeArg> for Scope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::Ingest => Scope::Ingest,
            ScopeArg::Read => Scope::Read,
            ScopeArg::All => Scope::All,
            ScopeArg::Admin => Scope::Admin,
        }
    }
}

/// A listener's address, or none (`0` on the command line: the listener is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

/// Parses an [`OptionalAddr`]: a socket address, or `0` for none.
fn optional_addr(text: &str) -> Result<OptionalAddr, String> {
    match text.trim() {
        "0" | "" => Ok(OptionalAddr(None)),
        addr => addr.parse().map(|a| OptionalAddr(Some(a))).map_err(|e| {
            format!("{addr:?} is not an address like 127.0.0.1:4317 (or 0 for off): {e}")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_consistent_and_the_otlp_grpc_address_can_be_turned_off() {
        Cli::command().debug_assert();
        let serve =
            |args: &[&str]| match Cli::try_parse_from([&["flowtrail", "serve"], args].concat())
                .unwrap()
                .command
            {
                Command::Serve(args) => args.otlp_grpc_addr,
                _ => unreachable!("serve parses as serve"),
            };
        assert_eq!(
            serve(&[]),
            OptionalAddr(Some("127.0.0.1:4317".parse().unwrap()))
        );
        assert_eq!(serve(&["--otlp-grpc-addr", "0"]), OptionalAddr(None));
        assert_eq!(
            serve(&["--otlp-grpc-addr", "0.0.0.0:14317"]),
            OptionalAddr(Some("0.0.0.0:14317".parse().unwrap()))
        );
        assert!(Cli::try_parse_from(["flowtrail", "serve", "--otlp-grpc-addr", "nope"]).is_err());
    }
}
