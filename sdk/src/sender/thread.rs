//! The sender thread: takes flows from the queue one at a time, redacts and delivers each,
//! and between flows sends spooled ones again.
//!
//! Rules: flows in memory go first; spooled flows are tried only when the queue is empty, one
//! attempt each, and not again for a while after the server failed to answer; a flow still
//! undeliverable after its attempts goes to the spool (waiting for room is fine here: this is
//! not the caller's thread), or counts as failed without one. The thread ends once the queue
//! is closed and empty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtrail_types::FlowRecord;

use super::Shared;
use super::spool::oldest_spooled;
use super::stats::Counters;
use crate::Config;

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
    /// Still undeliverable after every attempt.
    Unreachable,
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
                    let attempts = self.config.max_attempts;
                    match runtime.block_on(self.deliver(&record, attempts)) {
                        Outcome::Sent => Counters::add(&self.shared.counters.sent),
                        Outcome::Refused => Counters::add(&self.shared.counters.failed),
                        Outcome::Unreachable => {
                            spool_after = Instant::now() + Duration::from_secs(5);
                            match &self.shared.spool {
                                // Waiting for room is fine here: this is not the caller's
                                // thread, and the spool is local I/O.
                                Some(spool) => self.shared.spool(spool, record, true, true),
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
}
