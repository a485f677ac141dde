//! Record why a multi-step decision pipeline chose its output, and send it to Flow Trail.
//!
//! ```no_run
//! use flowtrail_sdk::{Candidate, Client, StepKind};
//!
//! let client = Client::from_env()?; // FLOWTRAIL_URL, FLOWTRAIL_API_KEY
//! let mut flow = client.flow("competitor_selection").input(serde_json::json!({"asin": "B0STAND42"}));
//! let mut step = flow.step("price_filter", StepKind::Filter);
//! step.observe(Candidate::rejected("B0CASE0001").reason("price_out_of_range", "9.99 < 22.50"));
//! step.finish();
//! flow.succeed(serde_json::json!({"selected": "B0STAND43"}));
//! client.shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), flowtrail_sdk::Error>(())
//! ```
//!
//! Recording is in memory; sending happens on a background thread with retries, so the
//! pipeline is never blocked or broken by the backend. What cannot be delivered is counted in
//! [`Stats`], never raised in the caller's path.

#![warn(missing_docs)]

mod sender;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

pub use flowtrail_types::{
    Capture, FlowRecord, FlowStatus, Observation, Reason, StepKind, Verdict,
};

pub use flowtrail_types::Boundary;
use flowtrail_types::{SdkInfo, StepRecord};
use sender::Sender;
pub use sender::Stats;

/// Errors of setting up a client, and of replays. Recording and sending never return
/// errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A variable [`Client::from_env`] needs is not set.
    #[error("{0} is not set")]
    MissingEnv(&'static str),
    /// The URL is not `http://…` or `https://…`.
    #[error("invalid Flow Trail URL {0:?}")]
    InvalidUrl(String),
    /// The HTTP client or the sender thread could not be started.
    #[error("the HTTP client could not be built: {0}")]
    Http(String),
    /// The spool directory cannot be created.
    #[error("{0}")]
    Spool(String),
    /// A replayed boundary has no recorded call left under its name.
    #[error(
        "boundary {name:?} was not recorded (or was called more often than recorded); a replay never calls out"
    )]
    ReplayMissing {
        /// The boundary's name.
        name: String,
    },
    /// A replayed boundary was called with another input than the recorded call.
    #[error(
        "boundary {name:?} was called with {given} but recorded with {recorded}; the code or its inputs changed"
    )]
    ReplayMismatch {
        /// The boundary's name.
        name: String,
        /// The input of the recorded call.
        recorded: Value,
        /// The input of this call.
        given: Value,
    },
    /// The recorded output does not fit the type the caller expects.
    #[error("the recorded output of boundary {name:?} does not fit the expected type: {why}")]
    ReplayOutput {
        /// The boundary's name.
        name: String,
        /// Why it does not deserialise.
        why: String,
    },
    /// The recorded flow could not be fetched.
    #[error("the recorded flow could not be fetched: {0}")]
    ReplayFetch(String),
}

/// The recorded calls of a flow's boundaries ([`Step::boundary`]), to run the pipeline again
/// against them: each boundary answers with its recorded outputs, in order, instead of calling
/// out, and fails when its input differs from the recording or nothing was recorded.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    source: Option<Uuid>,
    calls: std::collections::HashMap<String, std::collections::VecDeque<Boundary>>,
}

impl Replay {
    fn add<'a>(source: Uuid, boundaries: impl IntoIterator<Item = &'a Boundary>) -> Self {
        let mut replay = Replay {
            source: Some(source),
            ..Replay::default()
        };
        for boundary in boundaries {
            replay
                .calls
                .entry(boundary.name.clone())
                .or_default()
                .push_back(boundary.clone());
        }
        replay
    }

    /// The calls recorded in a flow record, step by step.
    pub fn from_record(record: &FlowRecord) -> Self {
        Self::add(record.id, record.steps.iter().flat_map(|s| &s.boundaries))
    }

    /// The calls recorded in a stored flow (`GET /api/v1/flows/{id}`).
    pub fn from_detail(detail: &flowtrail_types::FlowDetail) -> Self {
        Self::add(
            detail.summary.id,
            detail.steps.iter().flat_map(|s| &s.boundaries),
        )
    }

    /// Fetches stored flow `flow_id` from the server with a key of scope `read` or `all`.
    /// Blocks the calling thread for at most `timeout`.
    pub fn fetch(
        url: &str,
        api_key: &str,
        flow_id: Uuid,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let endpoint = format!("{}/api/v1/flows/{flow_id}", url.trim_end_matches('/'));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::ReplayFetch(e.to_string()))?;
        let detail = runtime.block_on(async {
            let http = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| Error::ReplayFetch(e.to_string()))?;
            let response = http
                .get(&endpoint)
                .bearer_auth(api_key)
                .send()
                .await
                .map_err(|e| Error::ReplayFetch(e.to_string()))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| Error::ReplayFetch(e.to_string()))?;
            if !status.is_success() {
                return Err(Error::ReplayFetch(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            serde_json::from_slice::<flowtrail_types::FlowDetail>(&body)
                .map_err(|e| Error::ReplayFetch(e.to_string()))
        })?;
        Ok(Self::from_detail(&detail))
    }

    /// How many recorded calls are left unanswered.
    pub fn remaining(&self) -> usize {
        self.calls.values().map(|q| q.len()).sum()
    }
}

/// How a [`Client`] sends.
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
    /// ([`Step::capture`]).
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
        }
    }
}

/// What a step keeps of its candidates. Whatever is kept, `candidates_in`,
/// `candidates_out` and the reason histogram are counted from every candidate observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapturePolicy {
    /// Every candidate.
    Full,
    /// Every kept or selected candidate, and the first `rejected_per_reason` rejected
    /// candidates of each reason code (those without a reason count as one code).
    Sampled {
        /// Rejected candidates kept per reason code.
        rejected_per_reason: usize,
    },
    /// No candidate: counts and the reason histogram only.
    CountsOnly,
}

impl Default for CapturePolicy {
    /// Sampled, 50 rejected per reason: a 5,000 → 30 filter keeps its 30 survivors and a few
    /// hundred rejections that explain the rest; a small step keeps everything.
    fn default() -> Self {
        CapturePolicy::Sampled {
            rejected_per_reason: 50,
        }
    }
}

/// A closure called with each object member's key and value, which it may change.
pub type Mask = Arc<dyn Fn(&str, &mut Value) + Send + Sync>;

/// Masks values before a flow leaves the process: every object key named in `fields`
/// (compared without case, at any depth of inputs, outputs and candidate attributes) has its
/// value replaced by `"[redacted]"`, then `mask`, if set, may change any value it likes.
#[derive(Clone, Default)]
pub struct Redaction {
    /// Object keys whose values are replaced, compared without case.
    pub fields: Vec<String>,
    /// Called on every object member after the named fields are masked.
    pub mask: Option<Mask>,
}

impl std::fmt::Debug for Redaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redaction")
            .field("fields", &self.fields)
            .field("mask", &self.mask.as_ref().map(|_| "closure"))
            .finish()
    }
}

impl Redaction {
    /// Masks the named fields.
    pub fn fields<I, S>(fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Redaction {
            fields: fields.into_iter().map(Into::into).collect(),
            mask: None,
        }
    }

    /// Also calls `mask(key, value)` on every object member (after the named fields).
    pub fn with_mask(mut self, mask: impl Fn(&str, &mut Value) + Send + Sync + 'static) -> Self {
        self.mask = Some(Arc::new(mask));
        self
    }

    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.mask.is_none()
    }

    fn apply(&self, value: &mut Value) {
        match value {
            Value::Object(members) => self.apply_members(members),
            Value::Array(items) => items.iter_mut().for_each(|item| self.apply(item)),
            _ => {}
        }
    }

    fn apply_members(&self, members: &mut serde_json::Map<String, Value>) {
        for (key, member) in members.iter_mut() {
            if self.fields.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                *member = Value::String("[redacted]".into());
            } else {
                self.apply(member);
            }
            if let Some(mask) = &self.mask {
                mask(key, member);
            }
        }
    }

    /// Masks a whole flow record in place.
    pub fn redact(&self, record: &mut FlowRecord) {
        if self.is_empty() {
            return;
        }
        self.apply(&mut record.input);
        self.apply(&mut record.output);
        for step in &mut record.steps {
            self.apply(&mut step.input);
            self.apply(&mut step.output);
            for observation in &mut step.observations {
                self.apply_members(&mut observation.attributes);
            }
        }
    }
}

/// Sends flows to Flow Trail from a background thread. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    sender: Arc<Sender>,
    capture: CapturePolicy,
    push_steps: bool,
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
        let mut flow = self.flow(pipeline);
        if let Some(source) = replay.source {
            flow.record
                .tags
                .insert("replay_of".into(), source.to_string());
        }
        flow.replay = Some(replay);
        flow
    }

    /// Starts recording a run of `pipeline`.
    pub fn flow(&self, pipeline: impl Into<String>) -> Flow {
        Flow {
            replay: None,
            client: self.clone(),
            record: FlowRecord {
                sdk: Some(SdkInfo {
                    name: "flowtrail-rust".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                ..FlowRecord::new(Uuid::now_v7(), pipeline, OffsetDateTime::now_utc())
            },
            sent: false,
        }
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

    /// Flushes, then stops the background thread. Returns within `timeout`.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.sender.shutdown(timeout)
    }

    /// Counters of what happened to the flows handed to this client.
    pub fn stats(&self) -> Stats {
        self.sender.stats()
    }
}

fn to_value(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| Value::String(format!("<unserialisable: {e}>")))
}

/// One run of a pipeline being recorded. Finish it with [`Flow::succeed`] or [`Flow::fail`];
/// dropped unfinished, it is sent as failed.
pub struct Flow {
    client: Client,
    record: FlowRecord,
    sent: bool,
    replay: Option<Replay>,
}

impl Flow {
    /// The flow's id (UUIDv7), e.g. to log or link to `/flows/{id}`.
    pub fn id(&self) -> Uuid {
        self.record.id
    }

    /// A small summary of what the flow was asked.
    pub fn input(mut self, input: impl Serialize) -> Self {
        self.record.input = to_value(input);
        self
    }

    /// A tag to filter flows by (`env=prod`, `seller=…`).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.record.tags.insert(key.into(), value.into());
        self
    }

    /// Starts the next step. It is added to the flow when finished or dropped.
    pub fn step(&mut self, name: impl Into<String>, kind: StepKind) -> Step<'_> {
        let seq = self
            .record
            .steps
            .iter()
            .map(|s| s.seq + 1)
            .max()
            .unwrap_or(0);
        let policy = self.client.capture;
        Step {
            flow: self,
            record: StepRecord {
                started_at: Some(OffsetDateTime::now_utc()),
                ..StepRecord::new(seq, name, kind)
            },
            finished: false,
            tally: Tally::new(policy),
        }
    }

    /// Ends the flow successfully with `output` and queues it for sending.
    pub fn succeed(mut self, output: impl Serialize) {
        self.record.output = to_value(output);
        self.finish(FlowStatus::Succeeded, None);
    }

    /// Ends the flow as failed with `error` and queues it for sending.
    pub fn fail(mut self, error: impl Into<String>) {
        self.finish(FlowStatus::Failed, Some(error.into()));
    }

    /// Queues an incremental push of one finished step (see [`Config::push_steps`]); each
    /// push takes the next version, so the finished record, one version later, supersedes
    /// them all.
    fn push(&mut self, step: &StepRecord) {
        let mut push = FlowRecord {
            version: self.record.version,
            status: FlowStatus::Running,
            steps: vec![step.clone()],
            ..FlowRecord::new(
                self.record.id,
                self.record.pipeline.clone(),
                self.record.started_at,
            )
        };
        push.input = self.record.input.clone();
        push.tags = self.record.tags.clone();
        push.sdk = self.record.sdk.clone();
        self.record.version += 1;
        self.client.send(push);
    }

    fn finish(&mut self, status: FlowStatus, error: Option<String>) {
        if self.sent {
            return;
        }
        self.sent = true;
        self.record.status = status;
        self.record.error = error;
        self.record.ended_at = Some(OffsetDateTime::now_utc());
        let record = std::mem::replace(&mut self.record, empty_record());
        self.client.send(record);
    }
}

fn empty_record() -> FlowRecord {
    FlowRecord::new(Uuid::nil(), "", OffsetDateTime::UNIX_EPOCH)
}

impl Drop for Flow {
    fn drop(&mut self) {
        if !self.sent {
            let error = if std::thread::panicking() {
                "the pipeline panicked"
            } else {
                "the flow was dropped without succeed() or fail()"
            };
            self.finish(FlowStatus::Failed, Some(error.into()));
        }
    }
}

/// One step being recorded: a guard. Added to its flow on [`Step::finish`] or [`Step::fail`];
/// dropped unfinished (an early return, a `?`, a panic), it is added as failed.
pub struct Step<'a> {
    flow: &'a mut Flow,
    record: StepRecord,
    finished: bool,
    tally: Tally,
}

/// Exact counts of everything observed in a step, and what the policy keeps.
struct Tally {
    policy: CapturePolicy,
    seen: u64,
    passed: u64,
    /// Rejected candidates per reason code (each counted once per code).
    reasons: std::collections::BTreeMap<String, u64>,
    /// Rejected candidates kept so far per primary reason code (sampling).
    kept_per_reason: std::collections::HashMap<String, usize>,
    sampled_out: bool,
}

impl Tally {
    fn new(policy: CapturePolicy) -> Self {
        Tally {
            policy,
            seen: 0,
            passed: 0,
            reasons: Default::default(),
            kept_per_reason: Default::default(),
            sampled_out: false,
        }
    }

    /// Counts `observation`; whether the policy keeps it.
    fn count(&mut self, observation: &Observation) -> bool {
        self.seen += 1;
        if observation.verdict.passes() {
            self.passed += 1;
        }
        if observation.verdict == Verdict::Rejected {
            for reason in &observation.reasons {
                match self.reasons.get_mut(&reason.code) {
                    Some(n) => *n += 1,
                    None => {
                        self.reasons.insert(reason.code.clone(), 1);
                    }
                }
            }
        }
        let keep = match self.policy {
            CapturePolicy::Full => true,
            CapturePolicy::CountsOnly => false,
            CapturePolicy::Sampled { .. } if observation.verdict != Verdict::Rejected => true,
            CapturePolicy::Sampled {
                rejected_per_reason,
            } => {
                let code = observation.reasons.first().map_or("", |r| r.code.as_str());
                let kept = match self.kept_per_reason.get_mut(code) {
                    Some(kept) => kept,
                    None => self.kept_per_reason.entry(code.to_string()).or_insert(0),
                };
                if *kept < rejected_per_reason {
                    *kept += 1;
                    true
                } else {
                    false
                }
            }
        };
        if !keep {
            self.sampled_out = true;
        }
        keep
    }
}

impl Step<'_> {
    /// What the step was given (a small summary).
    pub fn input(&mut self, input: impl Serialize) -> &mut Self {
        self.record.input = to_value(input);
        self
    }

    /// What the step produced (a small summary).
    pub fn output(&mut self, output: impl Serialize) -> &mut Self {
        self.record.output = to_value(output);
        self
    }

    /// The step's explanation of what it did and why.
    pub fn reasoning(&mut self, text: impl Into<String>) -> &mut Self {
        self.record.reasoning = Some(text.into());
        self
    }

    /// Exact number of candidates received, when not every one is observed.
    pub fn candidates_in(&mut self, n: u64) -> &mut Self {
        self.record.candidates_in = Some(n);
        self
    }

    /// Exact number of candidates passed on, when not every one is observed.
    pub fn candidates_out(&mut self, n: u64) -> &mut Self {
        self.record.candidates_out = Some(n);
        self
    }

    /// Records one candidate's fate. It always counts; whether it is kept follows the step's
    /// [`CapturePolicy`].
    pub fn observe(&mut self, candidate: Candidate) -> &mut Self {
        if self.tally.count(&candidate.0) {
            self.record.observations.push(candidate.0);
        }
        self
    }

    /// What this step keeps of its candidates (default: the client's [`Config::capture`]).
    /// Set it before observing: candidates already observed were kept or not by the old policy.
    pub fn capture(&mut self, policy: CapturePolicy) -> &mut Self {
        self.tally.policy = policy;
        self
    }

    /// Calls a non-deterministic dependency (an LLM, a search API) through a recorded
    /// boundary: `step.boundary("llm.keywords", &prompt, || llm(&prompt))`. The input and
    /// output are recorded in the step. In a flow started with [`Client::replay`], `call` is
    /// never run: the next recorded output of `name` is returned, or an error when the input
    /// differs from the recording or no call is left.
    pub fn boundary<I, O>(
        &mut self,
        name: &str,
        input: &I,
        call: impl FnOnce() -> O,
    ) -> Result<O, Error>
    where
        I: Serialize + ?Sized,
        O: Serialize + serde::de::DeserializeOwned,
    {
        let given = to_value(input);
        let Some(replay) = self.flow.replay.as_mut() else {
            let output = call();
            self.record.boundaries.push(Boundary {
                name: name.to_string(),
                input: given,
                output: to_value(&output),
            });
            return Ok(output);
        };
        let recorded = replay
            .calls
            .get_mut(name)
            .and_then(|calls| calls.pop_front())
            .ok_or_else(|| Error::ReplayMissing {
                name: name.to_string(),
            })?;
        if recorded.input != given {
            return Err(Error::ReplayMismatch {
                name: name.to_string(),
                recorded: recorded.input,
                given,
            });
        }
        let output =
            serde_json::from_value(recorded.output.clone()).map_err(|e| Error::ReplayOutput {
                name: name.to_string(),
                why: e.to_string(),
            })?;
        self.record.boundaries.push(recorded);
        Ok(output)
    }

    /// Adds the step to its flow as succeeded.
    pub fn finish(mut self) {
        self.close(FlowStatus::Succeeded);
    }

    /// Adds the step to its flow as failed.
    pub fn fail(mut self, reasoning: impl Into<String>) {
        self.record.reasoning = Some(reasoning.into());
        self.close(FlowStatus::Failed);
    }

    fn close(&mut self, status: FlowStatus) {
        if self.finished {
            return;
        }
        self.finished = true;
        let mut record = std::mem::replace(&mut self.record, placeholder_step());
        record.status = status;
        record.ended_at = Some(OffsetDateTime::now_utc());
        // Counts stay exact whatever is captured: from every candidate observed, unless the
        // caller gave them (it may see more candidates than it observes).
        let tally = std::mem::replace(&mut self.tally, Tally::new(CapturePolicy::Full));
        if tally.seen > 0 {
            record.candidates_in.get_or_insert(tally.seen);
            record.candidates_out.get_or_insert(tally.passed);
            if record.reasons.is_empty() {
                record.reasons = tally.reasons;
            }
        }
        record.capture = match tally.policy {
            CapturePolicy::CountsOnly => Capture::CountsOnly,
            _ if tally.sampled_out => Capture::Sampled,
            _ => Capture::Full,
        };
        if self.flow.client.push_steps {
            self.flow.push(&record);
        }
        self.flow.record.steps.push(record);
    }
}

fn placeholder_step() -> StepRecord {
    StepRecord::new(0, "", StepKind::Custom)
}

impl Drop for Step<'_> {
    /// A step dropped unfinished (an early return, a `?`, a panic) is recorded as failed.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if self.record.reasoning.is_none() {
            let why = if std::thread::panicking() {
                "the pipeline panicked during this step"
            } else {
                "the step ended without finish() (an early return or an error)"
            };
            self.record.reasoning = Some(why.into());
        }
        self.close(FlowStatus::Failed);
    }
}

/// A candidate's fate, built fluently: `Candidate::rejected("B0…").score(0.1).reason(…)`.
#[derive(Debug, Clone)]
pub struct Candidate(Observation);

impl Candidate {
    /// A candidate with this verdict.
    pub fn new(id: impl Into<String>, verdict: Verdict) -> Self {
        Candidate(Observation {
            candidate_id: id.into(),
            verdict,
            score: None,
            reasons: Vec::new(),
            attributes: Default::default(),
        })
    }

    /// A candidate the step passed on.
    pub fn kept(id: impl Into<String>) -> Self {
        Self::new(id, Verdict::Kept)
    }

    /// A candidate the step eliminated; say why with [`Candidate::reason`].
    pub fn rejected(id: impl Into<String>) -> Self {
        Self::new(id, Verdict::Rejected)
    }

    /// The candidate the step (usually the last) chose.
    pub fn selected(id: impl Into<String>) -> Self {
        Self::new(id, Verdict::Selected)
    }

    /// The step's score for it; NaN and infinities are not recorded.
    pub fn score(mut self, score: f64) -> Self {
        self.0.score = score.is_finite().then_some(score);
        self
    }

    /// A reason: a stable `code` for machines, a `text` for people.
    pub fn reason(mut self, code: impl Into<String>, text: impl Into<String>) -> Self {
        self.0.reasons.push(Reason {
            code: code.into(),
            text: Some(text.into()),
        });
        self
    }

    /// A free attribute (`price`, `rating`, `category`…).
    pub fn attr(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        self.0.attributes.insert(key.into(), to_value(value));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_client() -> Client {
        // Port 9 (discard) refuses connections: nothing is delivered, nothing breaks.
        let mut config = Config::new("http://127.0.0.1:9", "ftk_test");
        config.max_attempts = 1;
        Client::with_config(config).unwrap()
    }

    #[test]
    fn steps_get_sequence_numbers_and_exact_counts() {
        let client = offline_client();
        let mut flow = client.flow("p");
        {
            let mut step = flow.step("filter", StepKind::Filter);
            step.observe(Candidate::kept("a"))
                .observe(Candidate::rejected("b").reason("price", "too cheap"))
                .observe(Candidate::rejected("c").reason("price", "too dear"));
            step.finish();
        }
        {
            let mut step = flow.step("rank", StepKind::Rank);
            step.candidates_in(5000).candidates_out(30);
            step.finish();
        }
        let early_return = |flow: &mut Flow| -> Result<(), &'static str> {
            let _step = flow.step("judge", StepKind::Judge);
            Err("the model timed out")?;
            Ok(())
        };
        assert!(early_return(&mut flow).is_err());
        let steps = &flow.record.steps;
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[2].status, FlowStatus::Failed, "dropped unfinished");
        assert!(
            steps[2]
                .reasoning
                .as_deref()
                .unwrap()
                .contains("without finish()")
        );
        assert_eq!((steps[0].seq, steps[1].seq), (0, 1));
        assert_eq!(steps[0].candidates_in, Some(3));
        assert_eq!(steps[0].candidates_out, Some(1));
        assert_eq!(steps[0].reasons["price"], 2);
        assert_eq!(steps[1].candidates_in, Some(5000));
        assert_eq!(steps[1].status, FlowStatus::Succeeded);
        flow.succeed("done");
        assert!(client.shutdown(Duration::from_secs(5)));
    }

    #[test]
    fn a_dropped_flow_is_sent_as_failed_and_an_unreachable_server_is_counted() {
        let client = offline_client();
        drop(client.flow("p"));
        assert!(client.flush(Duration::from_secs(5)));
        let stats = client.stats();
        assert_eq!(stats.queued, 1);
        assert_eq!(stats.failed, 1);
        assert_eq!(stats.sent, 0);
    }

    fn filter_step(flow: &mut Flow, policy: Option<CapturePolicy>) {
        let mut step = flow.step("filter", StepKind::Filter);
        if let Some(policy) = policy {
            step.capture(policy);
        }
        for i in 0..5_000 {
            let candidate = match i % 250 {
                0 => Candidate::kept(format!("K{i}")),
                1..=99 => Candidate::rejected(format!("P{i}")).reason("price", "out of range"),
                100..=199 => Candidate::rejected(format!("C{i}"))
                    .reason("category", "off category")
                    .reason("price", "also out of range"),
                _ => Candidate::rejected(format!("N{i}")),
            };
            step.observe(candidate);
        }
    }

    #[test]
    fn capture_policies_keep_counts_exact_whatever_they_keep() {
        let client = offline_client();
        let mut flow = client.flow("p");
        filter_step(&mut flow, None); // the default: sampled, 50 rejected per reason
        filter_step(&mut flow, Some(CapturePolicy::Full));
        filter_step(&mut flow, Some(CapturePolicy::CountsOnly));
        filter_step(
            &mut flow,
            Some(CapturePolicy::Sampled {
                rejected_per_reason: 3,
            }),
        );
        let steps = &flow.record.steps;
        for step in steps {
            assert_eq!(step.candidates_in, Some(5_000));
            assert_eq!(step.candidates_out, Some(20));
            assert_eq!(step.reasons["price"], 20 * 99 + 20 * 100);
            assert_eq!(step.reasons["category"], 20 * 100);
        }
        let (sampled, full, counts, small) = (&steps[0], &steps[1], &steps[2], &steps[3]);
        assert_eq!(sampled.capture, Capture::Sampled);
        // Every survivor, then 50 per primary reason (price, category, none).
        assert_eq!(sampled.observations.len(), 20 + 50 * 3);
        assert!(
            sampled
                .observations
                .iter()
                .filter(|o| o.verdict.passes())
                .count()
                == 20
        );
        assert_eq!(full.capture, Capture::Full);
        assert_eq!(full.observations.len(), 5_000);
        assert_eq!(counts.capture, Capture::CountsOnly);
        assert!(counts.observations.is_empty());
        assert_eq!(small.observations.len(), 20 + 3 * 3);
        // A small step keeps everything under the default policy, and says so.
        let mut flow = client.flow("p");
        {
            let mut step = flow.step("tiny", StepKind::Filter);
            step.observe(Candidate::kept("a"))
                .observe(Candidate::rejected("b").reason("price", "x"));
        }
        assert_eq!(flow.record.steps[0].capture, Capture::Full);
        assert_eq!(flow.record.steps[0].observations.len(), 2);
    }

    #[test]
    fn non_finite_scores_are_not_recorded() {
        assert_eq!(Candidate::kept("a").score(f64::NAN).0.score, None);
        assert_eq!(Candidate::kept("a").score(0.5).0.score, Some(0.5));
    }
}
