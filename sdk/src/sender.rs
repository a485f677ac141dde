//! The background sender: a bounded in-memory queue, one delivery thread, one spool thread.
//!
//! Rules: the caller's side never blocks and never fails — a full queue evicts its *oldest*
//! flow (to the spool when there is one, else it is dropped) and counts it; each flow is
//! retried with exponential backoff and full jitter, honouring `Retry-After`, under one
//! idempotency key so a retry never stores it twice; a 4xx other than 408/429 is final
//! (counted as failed); a flow still undelivered after its attempts goes to the spool. Spooled
//! flows are sent again when the server answers, by this process or the next one.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flowtrail_types::{FlowRecord, FlowStatus, StepsPush};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};

use crate::{Config, Error, Redaction};

/// What happened to the flows handed to a client. At every moment
/// `queued + unspooled = sent + failed + dropped + spooled + pending`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Flows handed to the client.
    pub queued: u64,
    /// Flows the server acknowledged (202).
    pub sent: u64,
    /// Retries made (all flows together).
    pub retried: u64,
    /// Flows lost: evicted from a full queue without a spool (or with a full one), or handed
    /// over after shutdown.
    pub dropped: u64,
    /// Flows given up: refused by the server (a 4xx), or out of attempts without a spool.
    pub failed: u64,
    /// Flows written to the spool directory.
    pub spooled: u64,
    /// Flows read back from the spool (written by this process or an earlier one) and settled:
    /// sent, or refused for good.
    pub unspooled: u64,
    /// Flows in memory or being sent right now.
    pub pending: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    spooled: AtomicU64,
    unspooled: AtomicU64,
    /// Handed to the spool thread, not written yet (part of `pending`).
    spooling: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct State {
    items: VecDeque<Box<FlowRecord>>,
    /// A flow taken by the delivery thread and not settled yet.
    in_flight: bool,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a flow arrives, settles, or the queue closes.
    changed: Condvar,
    counters: Counters,
    capacity: usize,
    spool: Option<Spool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands a flow to the spool thread, or counts it dropped; never blocks.
    fn evict(&self, record: Box<FlowRecord>) {
        let Some(spool) = &self.spool else {
            Counters::add(&self.counters.dropped);
            return;
        };
        self.counters.spooling.fetch_add(1, Ordering::Relaxed);
        if spool
            .writer
            .try_send(SpoolItem::Record(record, false))
            .is_err()
        {
            self.counters.spooling.fetch_sub(1, Ordering::Relaxed);
            Counters::add(&self.counters.dropped);
        }
    }
}

pub(crate) struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    pub(crate) fn start(config: Config) -> Result<Self, Error> {
        let base = config.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidUrl(config.url));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        // The threads are detached: they end by themselves once the sender is gone.
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| -> Result<(), Error> {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .map(drop)
                .map_err(|e| Error::Http(format!("cannot start the {name} thread: {e}")))
        };
        let (spool, spooled) = match &config.spool_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::Spool(format!("cannot create the spool {}: {e}", dir.display()))
                })?;
                let (writer, items) = mpsc::sync_channel(config.queue_capacity.max(1));
                (Some(Spool { writer }), Some((dir.clone(), items)))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            counters: Counters::default(),
            capacity: config.queue_capacity.max(1),
            spool,
        });
        if let Some((dir, items)) = spooled {
            let (shared, redaction, max) = (
                shared.clone(),
                config.redaction.clone(),
                config.spool_max_bytes,
            );
            spawn(
                "flowtrail-spool",
                Box::new(move || spool_thread(&shared, &dir, max, &redaction, items)),
            )?;
        }
        let worker = Worker {
            endpoint: format!("{base}/api/v1/flows"),
            config,
            http,
            shared: shared.clone(),
        };
        spawn("flowtrail-sender", Box::new(move || worker.run()))?;
        Ok(Sender { shared })
    }

    /// Queues a flow: O(1), never blocks on I/O.
    pub(crate) fn enqueue(&self, record: FlowRecord) {
        let shared = &self.shared;
        Counters::add(&shared.counters.queued);
        let evicted = {
            let mut state = shared.lock();
            if state.closed {
                drop(state);
                Counters::add(&shared.counters.dropped);
                return;
            }
            state.items.push_back(Box::new(record));
            (state.items.len() > shared.capacity)
                .then(|| state.items.pop_front())
                .flatten()
        };
        shared.changed.notify_all();
        if let Some(oldest) = evicted {
            shared.evict(oldest);
        }
    }

    /// Waits until every flow queued so far is settled (sent, failed, spooled or dropped), at
    /// most `timeout`. Whether it is.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let shared = &self.shared;
        let mut state = shared.lock();
        loop {
            if state.items.is_empty() && !state.in_flight {
                drop(state);
                return self.spool_settled(deadline);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Waits for the spool thread to have written what it was handed.
    fn spool_settled(&self, deadline: Instant) -> bool {
        let Some(spool) = &self.shared.spool else {
            return true;
        };
        loop {
            // The spool thread handles items in order: a marker answers once all is written.
            let (done, wait) = mpsc::channel();
            if spool.writer.try_send(SpoolItem::Marker(done)).is_ok() {
                return wait
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .is_ok();
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops taking flows, sends what it can within `timeout`, spools the rest (or counts it
    /// dropped). Returns within `timeout` (plus the time to write the spool); whether nothing
    /// is left pending.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        // Keep a slice of the time to put what is left in the spool.
        let margin = (timeout / 5).min(Duration::from_millis(500));
        let delivered = self.flush(timeout.saturating_sub(margin));
        let left: Vec<Box<FlowRecord>> = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.items.drain(..).collect()
        };
        self.shared.changed.notify_all();
        for record in left {
            self.shared.evict(record);
        }
        // The threads end by themselves: the delivery thread once closed and idle, the spool
        // thread when the last handle to it goes. A request hung on the network is not waited
        // for: it is what `pending` counts.
        let deadline = (started + timeout).max(Instant::now() + margin);
        let spooled = self.spool_settled(deadline);
        let idle = !self.shared.lock().in_flight;
        delivered || (spooled && idle)
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let pending = {
            let state = self.shared.lock();
            state.items.len() as u64 + u64::from(state.in_flight)
        } + c.spooling.load(Ordering::Relaxed);
        Stats {
            queued: c.queued.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            spooled: c.spooled.load(Ordering::Relaxed),
            unspooled: c.unspooled.load(Ordering::Relaxed),
            pending,
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

/// The channel to the spool's writer thread.
struct Spool {
    writer: SyncSender<SpoolItem>,
}

enum SpoolItem {
    /// A flow, and whether it is already redacted.
    Record(Box<FlowRecord>, bool),
    /// Answered once everything handed before it is written.
    Marker(mpsc::Sender<()>),
}

fn spool_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Writes flows to the spool directory (redacted first), one file each, atomically.
fn spool_thread(
    shared: &Shared,
    dir: &Path,
    max_bytes: u64,
    redaction: &Redaction,
    items: Receiver<SpoolItem>,
) {
    let mut size = spool_size(dir);
    for item in items {
        let (mut record, redacted) = match item {
            SpoolItem::Record(record, redacted) => (record, redacted),
            SpoolItem::Marker(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if !redacted {
            redaction.redact(&mut record);
        }
        match write_spooled(dir, &record) {
            Ok(bytes) if size + bytes <= max_bytes => {
                size += bytes;
                Counters::add(&shared.counters.spooled);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(spool_path(dir, &record));
                tracing::warn!("flowtrail: the spool is full; a flow was dropped");
                Counters::add(&shared.counters.dropped);
            }
            Err(error) => {
                tracing::warn!(%error, "flowtrail: cannot write the spool; a flow was dropped");
                Counters::add(&shared.counters.dropped);
            }
        }
        // Counted as spooled (or dropped) before it stops counting as pending.
        shared.counters.spooling.fetch_sub(1, Ordering::Relaxed);
        // Files sent meanwhile free room.
        if size > max_bytes / 2 {
            size = spool_size(dir);
        }
    }
}

fn spool_path(dir: &Path, record: &FlowRecord) -> PathBuf {
    dir.join(format!("{}.{}.json", record.id, record.version))
}

fn write_spooled(dir: &Path, record: &FlowRecord) -> std::io::Result<u64> {
    let body = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    let path = spool_path(dir, record);
    let partial = path.with_extension("partial");
    // Written whole, then renamed: a crash leaves a complete file or none. Not fsynced: the
    // spool outlives the process, not the machine.
    std::fs::write(&partial, &body)?;
    std::fs::rename(&partial, &path)?;
    Ok(body.len() as u64)
}

/// The oldest spooled flow, if any (file names start with a UUIDv7, so they sort by time).
fn oldest_spooled(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.into_iter().next()
}

struct Worker {
    endpoint: String,
    config: Config,
    http: reqwest::Client,
    shared: Arc<Shared>,
}

enum Attempt {
    Delivered,
    Final(String),
    Retry(Option<Duration>),
}

/// How a delivery ended.
enum Outcome {
    Sent,
    Refused,
    /// Still undeliverable after every attempt.
    Unreachable,
}

impl Worker {
    fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "flowtrail: cannot start the sender; flows will be spooled or dropped");
                self.shared.lock().closed = true;
                return;
            }
        };
        // Spooled flows are tried when the memory queue is empty, not before this instant.
        let mut spool_after = Instant::now();
        enum Next {
            Record(Box<FlowRecord>),
            Spooled,
            Stop,
        }
        loop {
            let next = {
                let mut state = self.shared.lock();
                loop {
                    if let Some(record) = state.items.pop_front() {
                        state.in_flight = true;
                        break Next::Record(record);
                    }
                    if state.closed {
                        break Next::Stop;
                    }
                    if self.config.spool_dir.is_some() && Instant::now() >= spool_after {
                        break Next::Spooled;
                    }
                    state = self
                        .shared
                        .changed
                        .wait_timeout(state, Duration::from_millis(500))
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
            };
            match next {
                Next::Stop => break,
                Next::Record(mut record) => {
                    self.config.redaction.redact(&mut record);
                    let attempts = self.config.max_attempts;
                    match runtime.block_on(self.deliver(&record, attempts)) {
                        Outcome::Sent => Counters::add(&self.shared.counters.sent),
                        Outcome::Refused => Counters::add(&self.shared.counters.failed),
                        Outcome::Unreachable => {
                            spool_after = Instant::now() + Duration::from_secs(5);
                            match &self.shared.spool {
                                // Waiting for room is fine here: this is not the caller's
                                // thread, and the spool is local I/O.
                                Some(spool) => {
                                    let counters = &self.shared.counters;
                                    counters.spooling.fetch_add(1, Ordering::Relaxed);
                                    if spool.writer.send(SpoolItem::Record(record, true)).is_err() {
                                        counters.spooling.fetch_sub(1, Ordering::Relaxed);
                                        Counters::add(&counters.dropped);
                                    }
                                }
                                None => Counters::add(&self.shared.counters.failed),
                            }
                        }
                    }
                }
                Next::Spooled => {
                    if !self.send_one_spooled(&runtime) {
                        spool_after = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            self.shared.lock().in_flight = false;
            self.shared.changed.notify_all();
        }
    }

    /// Sends the oldest spooled flow; whether there was one and it settled.
    fn send_one_spooled(&self, runtime: &tokio::runtime::Runtime) -> bool {
        let Some(dir) = &self.config.spool_dir else {
            return false;
        };
        let Some(path) = oldest_spooled(dir) else {
            return false;
        };
        let record: Option<FlowRecord> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let Some(record) = record else {
            tracing::warn!(path = %path.display(), "flowtrail: unreadable spool file removed");
            let _ = std::fs::remove_file(&path);
            return true;
        };
        // One attempt: new flows must not wait behind a backlog the server is refusing.
        match runtime.block_on(self.deliver(&record, 1)) {
            Outcome::Sent => Counters::add(&self.shared.counters.sent),
            Outcome::Refused => Counters::add(&self.shared.counters.failed),
            Outcome::Unreachable => return false, // stays in the spool for later
        }
        Counters::add(&self.shared.counters.unspooled);
        let _ = std::fs::remove_file(&path);
        true
    }

    async fn deliver(&self, record: &FlowRecord, attempts: u32) -> Outcome {
        // A running record carries the steps finished so far: an incremental push.
        let (endpoint, body) = if record.status == FlowStatus::Running {
            let push = StepsPush {
                id: Some(record.id),
                version: record.version,
                pipeline: record.pipeline.clone(),
                started_at: record.started_at,
                input: record.input.clone(),
                tags: record.tags.clone(),
                sdk: record.sdk.clone(),
                steps: record.steps.clone(),
            };
            (
                format!("{}/{}/steps", self.endpoint, record.id),
                serde_json::to_vec(&push),
            )
        } else {
            (self.endpoint.clone(), serde_json::to_vec(record))
        };
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "flowtrail: flow does not serialise; dropped");
                return Outcome::Refused;
            }
        };
        let (body, zstd) = if body.len() > self.config.compress_above {
            match zstd::bulk::compress(&body, 3) {
                Ok(compressed) => (compressed, true),
                Err(_) => (body, false),
            }
        } else {
            (body, false)
        };
        let key = format!("{}:{}", record.id, record.version);
        let attempts = attempts.max(1);
        for attempt in 1..=attempts {
            match self.attempt(&endpoint, &body, zstd, &key).await {
                Attempt::Delivered => return Outcome::Sent,
                Attempt::Final(why) => {
                    tracing::warn!(flow_id = %record.id, %why, "flowtrail: the server refused the flow");
                    return Outcome::Refused;
                }
                Attempt::Retry(_) if attempt == attempts => break,
                Attempt::Retry(retry_after) => {
                    Counters::add(&self.shared.counters.retried);
                    let ceiling = self
                        .config
                        .backoff_base
                        .saturating_mul(1 << (attempt - 1).min(10))
                        .min(Duration::from_secs(30));
                    let jitter = rand::rng().random_range(0..=ceiling.as_millis() as u64);
                    let delay = retry_after
                        .unwrap_or_default()
                        .max(Duration::from_millis(jitter));
                    tokio::time::sleep(delay).await;
                }
            }
        }
        Outcome::Unreachable
    }

    async fn attempt(&self, endpoint: &str, body: &[u8], zstd: bool, key: &str) -> Attempt {
        let mut request = self
            .http
            .post(endpoint)
            .bearer_auth(&self.config.api_key)
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(body.to_vec());
        if zstd {
            request = request.header(CONTENT_ENCODING, "zstd");
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Attempt::Delivered
                } else if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::CONFLICT
                    || status.is_server_error()
                {
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(60)));
                    Attempt::Retry(retry_after)
                } else {
                    let text = response.text().await.unwrap_or_default();
                    Attempt::Final(format!("{status}: {text}"))
                }
            }
            Err(_) => Attempt::Retry(None),
        }
    }
}
