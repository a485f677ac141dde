//! The background sender: one thread with a small async runtime, a bounded queue in front.
//!
//! Rules: the caller's side never blocks (a full queue drops and counts); each flow is retried
//! with exponential backoff and full jitter, honouring `Retry-After`, under one idempotency key
//! so a retry never stores it twice; a 4xx other than 408/429 is final (counted as failed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowtrail_types::FlowRecord;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};

use crate::{Config, Error};

/// What happened to the flows handed to a client. `queued = sent + failed + dropped + pending`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Flows handed to the client.
    pub queued: u64,
    /// Flows the server acknowledged (202).
    pub sent: u64,
    /// Retries made (all flows together).
    pub retried: u64,
    /// Flows dropped because the queue was full.
    pub dropped: u64,
    /// Flows given up: refused by the server, or out of attempts.
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

enum Command {
    Send(Box<FlowRecord>),
    Flush(mpsc::Sender<()>),
}

pub(crate) struct Sender {
    queue: Mutex<Option<SyncSender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
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
        let (queue, commands) = mpsc::sync_channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            endpoint: format!("{base}/api/v1/flows"),
            config,
            http,
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("flowtrail-sender".into())
            .spawn(move || worker.run(commands))
            .map_err(|e| Error::Http(format!("cannot start the sender thread: {e}")))?;
        Ok(Sender {
            queue: Mutex::new(Some(queue)),
            thread: Mutex::new(Some(thread)),
            counters,
        })
    }

    fn queue(&self) -> Option<SyncSender<Command>> {
        self.queue.lock().ok().and_then(|q| q.clone())
    }

    pub(crate) fn enqueue(&self, record: FlowRecord) {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let accepted = self
            .queue()
            .is_some_and(|q| q.try_send(Command::Send(Box::new(record))).is_ok());
        if !accepted {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(queue) = self.queue() else {
            return true;
        };
        let (done, wait) = mpsc::channel();
        let mut command = Command::Flush(done);
        loop {
            match queue.try_send(command) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    command = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => return false,
            }
        }
        wait.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let flushed = self.flush(timeout);
        if let Ok(mut queue) = self.queue.lock() {
            queue.take(); // closing the channel ends the thread once it is idle
        }
        if flushed
            && let Ok(mut thread) = self.thread.lock()
            && let Some(handle) = thread.take()
        {
            let _ = handle.join();
        }
        flushed
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            queued: c.queued.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
    }
}

struct Worker {
    endpoint: String,
    config: Config,
    http: reqwest::Client,
    counters: Arc<Counters>,
}

enum Attempt {
    Delivered,
    Final(String),
    Retry(Option<Duration>),
}

impl Worker {
    fn run(self, commands: Receiver<Command>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "flowtrail: cannot start the sender; flows will be counted as failed");
                for command in commands {
                    match command {
                        Command::Send(_) => {
                            self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Command::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                return;
            }
        };
        loop {
            match commands.recv_timeout(Duration::from_secs(60)) {
                Ok(Command::Send(record)) => runtime.block_on(self.deliver(&record)),
                Ok(Command::Flush(done)) => {
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    async fn deliver(&self, record: &FlowRecord) {
        let body = match serde_json::to_vec(record) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "flowtrail: flow does not serialise; dropped");
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return;
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
        for attempt in 1..=self.config.max_attempts.max(1) {
            match self.attempt(&body, zstd, &key).await {
                Attempt::Delivered => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Attempt::Final(why) => {
                    tracing::warn!(flow_id = %record.id, %why, "flowtrail: the server refused the flow");
                    break;
                }
                Attempt::Retry(_) if attempt == self.config.max_attempts.max(1) => break,
                Attempt::Retry(retry_after) => {
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
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
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    async fn attempt(&self, body: &[u8], zstd: bool, key: &str) -> Attempt {
        let mut request = self
            .http
            .post(&self.endpoint)
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
