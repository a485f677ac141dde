//! The handle a pipeline holds: it starts flows and hands finished ones to the sender.
//! Rules: cheap to clone (every clone shares one sender); [`Client::send`] never blocks and
//! never fails; [`Client::flush`] and [`Client::shutdown`] return within their timeout.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::sender::Sender;
use crate::{CapturePolicy, Config, Error, Flow, FlowRecord, Replay, SdkInfo, Stats};

/// Sends flows to Flow Trail from a background thread (the sender). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    /// The sender every clone shares; replaced (never dropped) in a forked child
    /// ([`Client::restart_after_fork`]).
    sender: Arc<ArcSwap<Sender>>,
    /// What the sender was started with, to start another after a fork.
    config: Arc<Config>,
    /// The default [`CapturePolicy`] of this client's steps.
    pub(crate) capture: CapturePolicy,
    /// Whether finished steps are pushed at once ([`Config::push_steps`]).
    pub(crate) push_steps: bool,
    /// Which SDK records ([`Config::sdk`]).
    pub(crate) sdk: SdkInfo,
}

impl Client {
    /// A client for the server at `url` with `api_key`.
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> Result<Self, Error> {
        Self::with_config(Config::new(url, api_key))
    }

    /// A client from `FLOWTRAIL_URL` and `FLOWTRAIL_API_KEY`.
    pub fn from_env() -> Result<Self, Error> {
        let url = std::env::var("FLOWTRAIL_URL").map_err(|_| Error::MissingEnv("FLOWTRAIL_URL"))?;
        let key = std::env::var("FLOWTRAIL_API_KEY")
            .map_err(|_| Error::MissingEnv("FLOWTRAIL_API_KEY"))?;
        Self::new(url, key)
    }

    /// A client with every setting spelt out. Errors: [`Error::InvalidUrl`] and the like
    /// from starting the sender.
    pub fn with_config(config: Config) -> Result<Self, Error> {
        let sender = Sender::start(config.clone())?;
        Ok(Client {
            capture: config.capture,
            push_steps: config.push_steps,
            sdk: config.sdk.clone(),
            sender: Arc::new(ArcSwap::from_pointee(sender)),
            config: Arc::new(config),
        })
    }

    /// In a child process made by `fork(2)`, starts a new sender for this client and every
    /// clone of it: the parent's sender threads do not exist in the child and its queue's
    /// lock may be held forever, so the old sender is abandoned without being touched (its
    /// memory is leaked; the flows it held are the parent's to send). Call it in the child
    /// right after the fork, before any other use (Python: `os.register_at_fork`). Errors:
    /// as [`Client::with_config`]; the client then keeps the abandoned sender and its
    /// flows are dropped.
    pub fn restart_after_fork(&self) -> Result<(), Error> {
        let fresh = Arc::new(Sender::start((*self.config).clone())?);
        let abandoned = self.sender.swap(fresh);
        std::mem::forget(abandoned);
        Ok(())
    }

    /// Starts recording a run of `pipeline` whose boundaries answer from `replay` instead of
    /// calling out. The run is recorded and sent like any other, tagged `replay_of`. A
    /// `pipeline` other than the recording's is told (a notice), not refused.
    pub fn replay(&self, pipeline: impl Into<String>, replay: Replay) -> Flow {
        let pipeline = pipeline.into();
        if let Some(recorded) = replay.pipeline()
            && recorded != pipeline
        {
            self.sender.load().notice(format!(
                "replaying a flow of pipeline {recorded:?} as pipeline {pipeline:?}: is that \
                 the pipeline you meant?"
            ));
        }
        Flow::start(self.clone(), pipeline, Some(replay))
    }

    /// Starts recording a run of `pipeline`.
    pub fn flow(&self, pipeline: impl Into<String>) -> Flow {
        Flow::start(self.clone(), pipeline, None)
    }

    /// Queues a finished flow record for sending. Never blocks; a full queue drops and counts.
    pub fn send(&self, record: FlowRecord) {
        self.sender.load().enqueue(record);
    }

    /// Waits until everything queued so far is delivered or given up, at most `timeout`.
    /// Returns whether it got there in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.sender.load().flush(timeout)
    }

    /// Flushes, then stops the sender thread; what is left goes to the spool, or is counted
    /// dropped (with a notice) without one. Returns within `timeout` (plus the time to write
    /// the spool): whether every flow handed to this client was sent or spooled — `false`
    /// when one was lost at any time (dropped, or refused by the server: see [`Client::stats`])
    /// or is still pending.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.sender.load().shutdown(timeout)
    }

    /// What this client masks before anything leaves the process.
    pub(crate) fn redaction(&self) -> &crate::Redaction {
        &self.config.redaction
    }

    /// Tells the user something (a notice, not counted).
    pub(crate) fn notice(&self, text: String) {
        self.sender.load().notice(text);
    }

    /// Tells and counts a change made to a flow so the server takes it.
    pub(crate) fn adjusted(&self, notice: String) {
        self.sender.load().adjusted(notice);
    }

    /// What happened since the last call that the user should know about, oldest first: a
    /// flow the server refused (with its answer), one changed to fit the server's limits
    /// (what changed), one lost (why). The latest 100 are kept. Each is also logged with
    /// `tracing` when it happens; a binding logs them in its own language's way.
    pub fn take_notices(&self) -> Vec<String> {
        self.sender.load().take_notices()
    }

    /// Counters of what happened to the flows handed to this client.
    pub fn stats(&self) -> Stats {
        self.sender.load().stats()
    }
}
