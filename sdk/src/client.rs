//! The handle a pipeline holds: it starts flows and hands finished ones to the sender.
//! Rules: cheap to clone (every clone shares one sender); [`Client::send`] never blocks and
//! never fails; [`Client::flush`] and [`Client::shutdown`] return within their timeout.

use std::sync::Arc;
use std::time::Duration;

use crate::sender::Sender;
use crate::{CapturePolicy, Config, Error, Flow, FlowRecord, Replay, Stats};

/// Sends flows to Flow Trail from a background thread (the sender). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    sender: Arc<Sender>,
    /// The default [`CapturePolicy`] of this client's steps.
    pub(crate) capture: CapturePolicy,
    /// Whether finished steps are pushed at once ([`Config::push_steps`]).
    pub(crate) push_steps: bool,
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

    /// A client with every setting spelt out.
    pub fn with_config(config: Config) -> Result<Self, Error> {
        Ok(Client {
            capture: config.capture,
            push_steps: config.push_steps,
            sender: Arc::new(Sender::start(config)?),
        })
    }

    /// Starts recording a run of `pipeline` whose boundaries answer from `replay` instead of
    /// calling out. The run is recorded and sent like any other, tagged `replay_of`.
    pub fn replay(&self, pipeline: impl Into<String>, replay: Replay) -> Flow {
        Flow::start(self.clone(), pipeline, Some(replay))
    }

    /// Starts recording a run of `pipeline`.
    pub fn flow(&self, pipeline: impl Into<String>) -> Flow {
        Flow::start(self.clone(), pipeline, None)
    }

    /// Queues a finished flow record for sending. Never blocks; a full queue drops and counts.
    pub fn send(&self, record: FlowRecord) {
        self.sender.enqueue(record);
    }

    /// Waits until everything queued so far is delivered or given up, at most `timeout`.
    /// Returns whether it got there in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.sender.flush(timeout)
    }

    /// Flushes, then stops the sender thread. Returns within `timeout`.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.sender.shutdown(timeout)
    }

    /// Counters of what happened to the flows handed to this client.
    pub fn stats(&self) -> Stats {
        self.sender.stats()
    }
}
