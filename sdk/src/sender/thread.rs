//! The sender thread: takes flows from the queue one at a time, redacts and delivers each,
//! and between flows sends spooled ones again.
//!
//! Rules: flows in memory go first; spooled flows are tried only when the queue is empty, one
//! attempt each, and not again for a while after the server failed to answer; a flow still
//! undeliverable after its attempts goes to the spool (waiting for room is fine here: this is
//! not the caller's thread), or counts as failed without one. The thread ends once the queue
//! is closed and empty.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flowtrail_types::FlowRecord;

use super::Shared;
use super::spool::oldest_spooled;
use super::stats::Counters;
use crate::{Config, limits};

/// What runs on the `flowtrail-sender` thread.
pub(super) struct SenderThread {
    /// `{url}/api/v1/flows`.
    pub(super) endpoint: String,
    pub(super) config: Config,
    pub(super) http: reqwest::Client,
    pub(super) shared: Arc<Shared>,
}

/// How a delivery ended.
pub(super) enum Outcome {
    Sent,
    Refused,
    /// 413: larger than the server takes.
    TooLarge,
    /// Still undeliverable after every attempt.
    Unreachable,
    /// 401/403: the key is refused (with the server's answer), not the flow.
    Unauthorized(String),
}

impl SenderThread {
    pub(super) fn run(self) {
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
                        state.in_flight_id = Some(record.id);
                        break Next::Record(record);
                    }
                    if state.closed {
                        break Next::Stop;
                    }
                    if self.config.spool_dir.is_some() && Instant::now() >= spool_after {
                        break Next::Spooled;
                    }
                    state = self.shared.wait(state, Duration::from_millis(500));
                }
            };
            match next {
                Next::Stop => break,
                Next::Record(mut record) => {
                    self.config.redaction.redact(&mut record);
                    self.fit(&mut record);
                    let mut record: Arc<FlowRecord> = Arc::from(record);
                    {
                        let mut state = self.shared.lock();
                        if state.in_flight_abandoned {
                            // Shutdown counted it dropped while its mask ran: the spool can
                            // still keep it (redacted now); without one it stays dropped.
                            drop(state);
                            self.keep_abandoned(record);
                            self.settled();
                            continue;
                        }
                        // Shutdown spools this copy if the request is still under way then.
                        state.in_flight_record = Some(record.clone());
                    }
                    let attempts = self.config.max_attempts;
                    let outcome = self.deliver_fitted(&runtime, &mut record, attempts);
                    let (spooled_by_shutdown, abandoned) = {
                        let mut state = self.shared.lock();
                        state.in_flight_record = None;
                        // From here this thread settles it: shutdown leaves it alone.
                        state.in_flight_id = None;
                        (
                            std::mem::take(&mut state.in_flight_spooled),
                            state.in_flight_abandoned,
                        )
                    };
                    if abandoned {
                        // Counted dropped by shutdown: moved to `sent` if it got there.
                        if let Outcome::Sent = outcome {
                            self.shared.counters.dropped.fetch_sub(1, Ordering::Relaxed);
                            Counters::add(&self.shared.counters.sent);
                            self.shared.notice(format!(
                                "flow {} was delivered after all, after shutdown",
                                record.id
                            ));
                        }
                    } else if !spooled_by_shutdown {
                        // A flow shutdown spooled is counted there (and sent again, under the
                        // same idempotency key, from the spool).
                        self.settle(record, outcome, attempts, &mut spool_after);
                    }
                }
                Next::Spooled => {
                    if !self.send_one_spooled(&runtime) {
                        spool_after = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            self.settled();
        }
    }

    /// Marks the flow in flight settled and wakes whoever waits for it.
    fn settled(&self) {
        {
            let mut state = self.shared.lock();
            state.in_flight = false;
            state.in_flight_id = None;
            state.in_flight_abandoned = false;
        }
        self.shared.changed.notify_all();
    }

    /// A flow shutdown counted dropped before it was redacted: written to the spool after all
    /// when there is one (and counted there instead), else left dropped.
    fn keep_abandoned(&self, record: Arc<FlowRecord>) {
        if let Some(spool) = &self.shared.spool {
            self.shared.counters.dropped.fetch_sub(1, Ordering::Relaxed);
            self.shared.notice(format!(
                "flow {} written to the spool after all, once its mask returned",
                record.id
            ));
            let record = Arc::try_unwrap(record).unwrap_or_else(|r| (*r).clone());
            self.shared.spool(spool, Box::new(record), true, true);
        }
    }

    /// Counts how a flow taken from the queue settled; an unreachable one goes to the spool.
    fn settle(
        &self,
        record: Arc<FlowRecord>,
        outcome: Outcome,
        attempts: u32,
        spool_after: &mut Instant,
    ) {
        match outcome {
            Outcome::Sent => Counters::add(&self.shared.counters.sent),
            Outcome::Refused | Outcome::TooLarge => Counters::add(&self.shared.counters.failed),
            // A refused key is a configuration to fix, not a bad flow: the spool keeps it.
            Outcome::Unauthorized(why) => {
                *spool_after = Instant::now() + Duration::from_secs(5);
                match &self.shared.spool {
                    Some(spool) => {
                        self.shared.notice(format!(
                            "the server refused the API key ({why}): flow {} is kept in the \
                             spool until the key is accepted",
                            record.id
                        ));
                        let record = Arc::try_unwrap(record).unwrap_or_else(|r| (*r).clone());
                        self.shared.spool(spool, Box::new(record), true, true)
                    }
                    None => {
                        Counters::add(&self.shared.counters.failed);
                        self.shared.notice(format!(
                            "flow {} lost: the server refused the API key ({why}) and there is \
                             no spool_dir",
                            record.id
                        ));
                    }
                }
            }
            Outcome::Unreachable => {
                *spool_after = Instant::now() + Duration::from_secs(5);
                match &self.shared.spool {
                    // Waiting for room is fine here: this is not the caller's thread, and
                    // the spool is local I/O.
                    Some(spool) => {
                        let record = Arc::try_unwrap(record).unwrap_or_else(|r| (*r).clone());
                        self.shared.spool(spool, Box::new(record), true, true)
                    }
                    None => {
                        Counters::add(&self.shared.counters.failed);
                        self.shared.notice(format!(
                            "flow {} lost: not acknowledged in {attempts} attempts (no answer, \
                             or 408/409/429/5xx) and there is no spool_dir",
                            record.id
                        ));
                    }
                }
            }
        }
    }

    /// Fits `record` to the server's limits, counting and telling what changed.
    fn fit(&self, record: &mut FlowRecord) {
        let fitted = limits::fit(record);
        if !fitted.is_empty() {
            Counters::add(&self.shared.counters.adjusted);
            self.shared.notice(format!(
                "flow {} changed to fit the server's limits: {fitted}",
                record.id
            ));
        }
    }

    /// Delivers `record` (fitted); a flow the server finds too large is shrunk
    /// ([`limits::shrink`]) and tried once more.
    fn deliver_fitted(
        &self,
        runtime: &tokio::runtime::Runtime,
        record: &mut Arc<FlowRecord>,
        attempts: u32,
    ) -> Outcome {
        match runtime.block_on(self.deliver(record, attempts)) {
            Outcome::TooLarge => {}
            other => return other,
        }
        let record = Arc::make_mut(record);
        let shrunk = limits::shrink(record);
        if shrunk.is_empty() {
            self.shared.notice(format!(
                "the server refused flow {}: 413 payload_too_large (its parts are all small: \
                 raise the server's --max-body-bytes)",
                record.id
            ));
            return Outcome::TooLarge;
        }
        Counters::add(&self.shared.counters.adjusted);
        self.shared.notice(format!(
            "flow {} was larger than the server takes (413): shrunk and sent again: {shrunk}",
            record.id
        ));
        let outcome = runtime.block_on(self.deliver(record, attempts));
        if let Outcome::TooLarge = outcome {
            self.shared.notice(format!(
                "the server refused flow {} even shrunk: 413 payload_too_large",
                record.id
            ));
        }
        outcome
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
        let Some(mut record) = record else {
            // Not ours, or damaged: moved aside (never sent, never deleted) and told.
            // A name of its own: an earlier file moved aside under the same name stays.
            let aside =
                path.with_extension(format!("{}.unreadable", uuid::Uuid::now_v7().simple()));
            let _ = std::fs::rename(&path, &aside);
            self.shared.notice(format!(
                "spool file {} is not a flow record: moved aside to {}",
                path.display(),
                aside.display()
            ));
            return true;
        };
        // Spooled by an earlier version, or evicted from a full queue before it was fitted.
        self.fit(&mut record);
        let mut record = Arc::new(record);
        // One attempt: new flows must not wait behind a backlog the server is refusing.
        match self.deliver_fitted(runtime, &mut record, 1) {
            Outcome::Sent => Counters::add(&self.shared.counters.sent),
            Outcome::Refused | Outcome::TooLarge => Counters::add(&self.shared.counters.failed),
            Outcome::Unreachable => return false, // stays in the spool for later
            Outcome::Unauthorized(why) => {
                // Stays in the spool until the key is accepted; told once per pass.
                self.shared.notice(format!(
                    "the server refused the API key ({why}): spooled flows stay in the spool"
                ));
                return false;
            }
        }
        Counters::add(&self.shared.counters.unspooled);
        let _ = std::fs::remove_file(&path);
        true
    }
}
