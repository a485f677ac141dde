//! The sender: a bounded in-memory queue, one sender thread that delivers from it, one spool
//! thread that writes to disk what cannot be delivered now.
//!
//! Rules: the caller's side never blocks and never fails — a full queue evicts its *oldest*
//! flow (to the spool when there is one, else it is dropped) and counts it; each flow is
//! retried with exponential backoff and full jitter, honouring `Retry-After`, under one
//! idempotency key so a retry never stores it twice; a 4xx other than 408/409/429 is final
//! (counted as failed); a flow still undelivered after its attempts goes to the spool. Spooled
//! flows are sent again when the server answers, by this process or the next one.
//!
//! Here: [`Sender`], the handle a client holds, and the queue it shares with the threads. The
//! sender thread is in `thread`, one flow's delivery (attempts, backoff) in `delivery`, the
//! spool in `spool`, the counters in `stats`.

mod delivery;
mod spool;
mod stats;
mod thread;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flowtrail_types::FlowRecord;

use crate::{Config, Error};
use spool::Spool;
use stats::Counters;
pub use stats::Stats;
use thread::SenderThread;

/// The queue, as the caller's side and the sender thread see it.
#[derive(Default)]
struct State {
    items: VecDeque<Box<FlowRecord>>,
    /// A flow taken by the sender thread and not settled yet.
    in_flight: bool,
    /// Its id, from the moment it is taken (before it is redacted), for notices.
    in_flight_id: Option<uuid::Uuid>,
    /// That flow, once redacted and fitted: what shutdown spools if its request is still
    /// under way (the request may yet succeed: the spooled copy is sent again under the same
    /// idempotency key, which the server answers without storing it twice).
    in_flight_record: Option<Arc<FlowRecord>>,
    /// Set by shutdown when it spooled `in_flight_record`: the flow is counted as spooled.
    in_flight_spooled: bool,
    /// Set by shutdown when it could not spool the flow in flight (no spool, or its mask was
    /// still running): the flow is counted dropped, and moved to `sent` or `spooled` if the
    /// sender thread still gets it there.
    in_flight_abandoned: bool,
    closed: bool,
    /// Whether a flow handed over after the queue closed was told (once).
    told_closed: bool,
}

/// What the handle and its threads share.
struct Shared {
    state: Mutex<State>,
    /// What a binding should tell its user (see [`Sender::take_notices`]).
    notices: Mutex<Notices>,
    /// Signalled when a flow arrives, settles, or the queue closes.
    changed: Condvar,
    counters: Counters,
    capacity: usize,
    spool: Option<Spool>,
}

/// The latest notices, at most [`Notices::KEPT`], and how many older ones were left out.
#[derive(Default)]
struct Notices {
    kept: VecDeque<String>,
    left_out: u64,
}

impl Notices {
    const KEPT: usize = 100;
}

impl Shared {
    /// Keeps `text` for [`Sender::take_notices`] and logs it (`tracing`, warning level).
    fn notice(&self, text: String) {
        tracing::warn!("flowtrail: {text}");
        let mut notices = self
            .notices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if notices.kept.len() == Notices::KEPT {
            notices.kept.pop_front();
            notices.left_out += 1;
        }
        notices.kept.push_back(text);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for [`Shared::changed`] at most `timeout`; a poisoned lock is taken over.
    fn wait<'a>(&self, state: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(state, timeout)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0
    }
}

/// The handle a client holds: queues flows for the sender thread, waits for them, counts them.
pub(crate) struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Starts the sender thread (and the spool thread when [`Config::spool_dir`] is set).
    /// Fails on a URL that is not `http(s)://…` or does not parse, a key that cannot be an
    /// HTTP header (white space around it is trimmed), an HTTP client or a thread that cannot be
    /// built, or a spool directory that cannot be created.
    pub(crate) fn start(mut config: Config) -> Result<Self, Error> {
        let base = config.url.trim().trim_end_matches('/').to_string();
        // A URL that does not parse (`http://[::1`) would fail every request as if the
        // server were down: refused here instead.
        if !(base.starts_with("http://") || base.starts_with("https://"))
            || reqwest::Url::parse(&base).is_err()
        {
            return Err(Error::InvalidUrl(config.url));
        }
        // A key read from a file ends with a newline: white space around it is not the key.
        config.api_key = config.api_key.trim().to_string();
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", config.api_key)).map_err(
            |_| Error::InvalidKey("it holds a control character (a line break?)".into()),
        )?;
        let http = reqwest::Client::builder()
            // A zero timeout would fail every request: at least a millisecond.
            .timeout(config.request_timeout.max(Duration::from_millis(1)))
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
                let (spool, writer) = Spool::open(dir, config.queue_capacity.max(1))?;
                (Some(spool), Some(writer))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            notices: Mutex::default(),
            changed: Condvar::new(),
            counters: Counters::default(),
            capacity: config.queue_capacity.max(1),
            spool,
        });
        if let Some(writer) = spooled {
            let (shared, redaction, max) = (
                shared.clone(),
                config.redaction.clone(),
                config.spool_max_bytes,
            );
            spawn(
                "flowtrail-spool",
                Box::new(move || writer.run(&shared, max, &redaction)),
            )?;
        }
        let sender_thread = SenderThread {
            endpoint: format!("{base}/api/v1/flows"),
            config,
            http,
            shared: shared.clone(),
        };
        spawn("flowtrail-sender", Box::new(move || sender_thread.run()))?;
        Ok(Sender { shared })
    }

    /// Queues a flow: O(1), never blocks on I/O.
    pub(crate) fn enqueue(&self, record: FlowRecord) {
        let shared = &self.shared;
        Counters::add(&shared.counters.queued);
        let evicted = {
            let mut state = shared.lock();
            if state.closed {
                let first = !std::mem::replace(&mut state.told_closed, true);
                drop(state);
                Counters::add(&shared.counters.dropped);
                if first {
                    shared.notice(format!(
                        "flow {} dropped: the client is shut down (later flows handed to it are \
                         counted in dropped, not told one by one)",
                        record.id
                    ));
                }
                return;
            }
            state.items.push_back(Box::new(record));
            (state.items.len() > shared.capacity)
                .then(|| state.items.pop_front())
                .flatten()
        };
        shared.changed.notify_all();
        if let Some(oldest) = evicted {
            shared.evict(oldest, "the queue is full (queue_capacity)");
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
            state = shared.wait(state, left);
        }
    }

    /// Waits for the spool thread to have written what it was handed (true without a spool).
    fn spool_settled(&self, deadline: Instant) -> bool {
        self.shared
            .spool
            .as_ref()
            .is_none_or(|spool| spool.settled(deadline))
    }

    /// Stops taking flows, sends what it can within `timeout`, spools the rest (or counts it
    /// dropped, with one notice for all the flows still queued). Returns within `timeout`
    /// (plus the time to write the spool): whether every flow ever handed to this sender was
    /// sent or spooled — none dropped or refused (`failed`), now or earlier, none pending.
    ///
    /// A flow whose request is still under way is spooled (the spooled copy is sent again
    /// under the same idempotency key); one that cannot be (no spool, or its mask is still
    /// running) is counted dropped with a notice, and moved to `sent` or `spooled` if the
    /// sender thread still gets it there. After shutdown the sender thread makes no new
    /// attempt.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        // Keep a slice of the time to put what is left in the spool.
        let margin = (timeout / 5).min(Duration::from_millis(500));
        self.flush(timeout.saturating_sub(margin));
        let (left, in_flight, abandoned) = {
            let mut state = self.shared.lock();
            state.closed = true;
            let mut abandoned = None;
            // Taken but not redacted yet: its mask is still running.
            let masking = state.in_flight_record.is_none();
            let in_flight = match (&self.shared.spool, state.in_flight_record.take()) {
                (Some(_), Some(record)) => {
                    state.in_flight_spooled = true;
                    Some(record)
                }
                _ => {
                    // `in_flight_id` is cleared once the thread settles the flow itself.
                    if !state.in_flight_spooled && !state.in_flight_abandoned {
                        abandoned = state.in_flight_id.map(|id| (id, masking));
                        state.in_flight_abandoned = abandoned.is_some();
                    }
                    None
                }
            };
            (
                state.items.drain(..).collect::<Vec<_>>(),
                in_flight,
                abandoned,
            )
        };
        self.shared.changed.notify_all();
        // A request hung on the network: its flow goes to the spool too, redacted already.
        if let (Some(spool), Some(record)) = (&self.shared.spool, in_flight) {
            let record = Arc::try_unwrap(record).unwrap_or_else(|r| (*r).clone());
            self.shared.spool(spool, Box::new(record), true, true);
        }
        if let Some((id, masking)) = abandoned {
            Counters::add(&self.shared.counters.dropped);
            let why = if masking {
                "its mask was still running"
            } else {
                "it was still being sent and there is no spool_dir"
            };
            self.shared.notice(format!(
                "flow {id} dropped: {why} when shutdown's time ran out"
            ));
        }
        match &self.shared.spool {
            Some(_) => {
                for record in left {
                    self.shared.evict(record, "it was still queued at shutdown");
                }
            }
            None if !left.is_empty() => {
                let count = left.len() as u64;
                self.shared
                    .counters
                    .dropped
                    .fetch_add(count, Ordering::Relaxed);
                let ids: Vec<String> = left.iter().take(3).map(|r| r.id.to_string()).collect();
                let more = if left.len() > 3 { ", …" } else { "" };
                self.shared.notice(format!(
                    "{count} flow(s) dropped: still queued at shutdown and there is no \
                     spool_dir ({}{more})",
                    ids.join(", ")
                ));
            }
            None => {}
        }
        // The threads end by themselves: the sender thread once closed and idle, the spool
        // thread when the last handle to it goes. A request hung on the network is not waited
        // for: its flow is spooled above, or counted dropped.
        let deadline = (started + timeout).max(Instant::now() + margin);
        self.spool_settled(deadline);
        let stats = self.stats();
        stats.dropped == 0 && stats.failed == 0 && stats.pending == 0
    }

    /// Tells the user something (a notice, not counted).
    pub(crate) fn notice(&self, text: String) {
        self.shared.notice(text);
    }

    /// Tells (a notice) and counts (`adjusted`) a change made to a flow so the server
    /// takes it.
    pub(crate) fn adjusted(&self, notice: String) {
        Counters::add(&self.shared.counters.adjusted);
        self.shared.notice(notice);
    }

    /// What happened since the last call that the user should know about, oldest first: a
    /// flow the server refused (with its answer), one changed to fit the server's limits (what
    /// changed), one lost (why). At most the latest 100 are kept; older ones are summed up in
    /// a last line. For bindings that log on the caller's side (Python's `logging`); each is
    /// also logged with `tracing` when it happens.
    pub(crate) fn take_notices(&self) -> Vec<String> {
        let mut notices = self
            .shared
            .notices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut taken: Vec<String> = notices.kept.drain(..).collect();
        if notices.left_out > 0 {
            taken.insert(
                0,
                format!(
                    "{} earlier notices left out",
                    std::mem::take(&mut notices.left_out)
                ),
            );
        }
        taken
    }

    /// The counters now; `pending` is what is queued, in flight, or handed to the spool.
    pub(crate) fn stats(&self) -> Stats {
        let in_memory = {
            let state = self.shared.lock();
            state.items.len() as u64
                + u64::from(
                    state.in_flight && !state.in_flight_spooled && !state.in_flight_abandoned,
                )
        };
        self.shared.counters.snapshot(in_memory)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}
