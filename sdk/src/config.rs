//! How a [`Client`](crate::Client) sends: the server, the key, the queue, retries, the spool,
//! capture and redaction. Rules: every setting has a default ([`Config::new`]) except the
//! server and the key; nothing here reads the environment (only
//! [`Client::from_env`](crate::Client::from_env) does).

use std::time::Duration;

use crate::{CapturePolicy, Redaction, SdkInfo};

/// How a [`Client`](crate::Client) sends.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the server, e.g. `http://127.0.0.1:3000`.
    pub url: String,
    /// An API key with scope `ingest` or `all`.
    pub api_key: String,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Flows waiting to be sent; beyond it new flows are dropped and counted.
    pub queue_capacity: usize,
    /// Attempts per flow before it is given up (and counted as failed).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with full jitter.
    pub backoff_base: Duration,
    /// Bodies larger than this are sent zstd-compressed.
    pub compress_above: usize,
    /// What steps keep of their candidates unless a step says otherwise
    /// ([`Step::capture`](crate::Step::capture)).
    pub capture: CapturePolicy,
    /// A directory where flows that cannot be sent now are kept (the memory queue overflowed,
    /// the server stayed down, the process shut down first) and from which they are sent
    /// later, also by the next process. `None`: such flows are dropped and counted.
    pub spool_dir: Option<std::path::PathBuf>,
    /// Largest total size of the spool, in bytes; beyond it flows are dropped and counted.
    pub spool_max_bytes: u64,
    /// Masks values before anything leaves the process (or reaches the spool).
    pub redaction: Redaction,
    /// Also send each step as soon as it finishes (`POST /api/v1/flows/{id}/steps`), so a
    /// process that dies mid-run still leaves its partial trail. The finished flow, sent as
    /// usual, supersedes the pushed steps. Off by default: it costs a request per step.
    pub push_steps: bool,
    /// Which SDK records the flows (`sdk` in each flow record): `flowtrail-rust` and this
    /// crate's version unless a binding (the Python package) says otherwise.
    pub sdk: SdkInfo,
}

impl Config {
    /// Defaults for everything but the server and the key: 10 s per request, 1,000 flows in
    /// memory, 8 attempts from 200 ms, zstd above 16 KiB, sampled capture, no spool, no
    /// redaction.
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            api_key: api_key.into(),
            request_timeout: Duration::from_secs(10),
            queue_capacity: 1_000,
            max_attempts: 8,
            backoff_base: Duration::from_millis(200),
            compress_above: 16 * 1024,
            capture: CapturePolicy::default(),
            spool_dir: None,
            spool_max_bytes: 256 * 1024 * 1024,
            redaction: Redaction::default(),
            push_steps: false,
            sdk: SdkInfo {
                name: "flowtrail-rust".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
        }
    }
}
