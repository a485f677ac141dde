//! Record/replay boundaries: a non-deterministic dependency (an LLM, a search API) called
//! through [`Step::boundary`] has its input and output recorded in the step; a flow started
//! with [`Client::replay`](crate::Client::replay) answers each boundary from a [`Replay`].
//!
//! Rules: a replayed boundary never calls out; it answers with the recorded outputs of its
//! name, in order, and fails ([`Error::ReplayMissing`], [`Error::ReplayMismatch`],
//! [`Error::ReplayOutput`]) rather than guess when the recording does not fit.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::recording::to_value;
use crate::{Boundary, Error, FlowRecord, Step};

/// The recorded calls of a flow's boundaries ([`Step::boundary`]), to run the pipeline again
/// against them: each boundary answers with its recorded outputs, in order, instead of calling
/// out, and fails when its input differs from the recording or nothing was recorded.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    source: Option<Uuid>,
    /// The pipeline the calls were recorded in, if known.
    pipeline: Option<String>,
    calls: HashMap<String, VecDeque<Boundary>>,
}

impl Replay {
    fn add<'a>(
        source: Uuid,
        pipeline: &str,
        boundaries: impl IntoIterator<Item = &'a Boundary>,
    ) -> Self {
        let mut replay = Replay {
            source: Some(source),
            pipeline: Some(pipeline.to_string()),
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
        Self::add(
            record.id,
            &record.pipeline,
            record.steps.iter().flat_map(|s| &s.boundaries),
        )
    }

    /// The calls recorded in a stored flow (`GET /api/v1/flows/{id}`).
    pub fn from_detail(detail: &flowtrail_types::FlowDetail) -> Self {
        Self::add(
            detail.summary.id,
            &detail.summary.pipeline,
            detail.steps.iter().flat_map(|s| &s.boundaries),
        )
    }

    /// Fetches stored flow `flow_id` from the server with a key of scope `read` or `all`.
    /// Blocks the calling thread for at most `timeout`. A flow acknowledged a moment ago may
    /// not be stored yet: a 404 is asked again every 100 ms for up to 2 s (within `timeout`).
    /// Errors: [`Error::ReplayFetch`] with the server's answer or the network's error.
    pub fn fetch(
        url: &str,
        api_key: &str,
        flow_id: Uuid,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let endpoint = format!(
            "{}/api/v1/flows/{flow_id}",
            url.trim().trim_end_matches('/')
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::ReplayFetch(e.to_string()))?;
        let started = std::time::Instant::now();
        let settle = timeout.min(Duration::from_secs(2));
        let detail = runtime.block_on(async {
            let http = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| Error::ReplayFetch(e.to_string()))?;
            loop {
                let response = http
                    .get(&endpoint)
                    .bearer_auth(api_key.trim())
                    .send()
                    .await
                    .map_err(|e| Error::ReplayFetch(e.to_string()))?;
                let status = response.status();
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| Error::ReplayFetch(e.to_string()))?;
                if status == reqwest::StatusCode::NOT_FOUND && started.elapsed() < settle {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                if !status.is_success() {
                    return Err(Error::ReplayFetch(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body)
                    )));
                }
                return serde_json::from_slice::<flowtrail_types::FlowDetail>(&body)
                    .map_err(|e| Error::ReplayFetch(e.to_string()));
            }
        })?;
        Ok(Self::from_detail(&detail))
    }

    /// How many recorded calls are left unanswered.
    pub fn remaining(&self) -> usize {
        self.calls.values().map(|q| q.len()).sum()
    }

    /// The pipeline the calls were recorded in, if known.
    pub fn pipeline(&self) -> Option<&str> {
        self.pipeline.as_deref()
    }

    /// The flow the calls were recorded in, if known.
    pub(crate) fn source(&self) -> Option<Uuid> {
        self.source
    }

    /// Takes the next recorded call of `name`, which must have been made with `given`.
    pub(crate) fn answer(&mut self, name: &str, given: Value) -> Result<Boundary, Error> {
        let recorded = self
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
        Ok(recorded)
    }
}

impl crate::Flow {
    /// Whether this flow answers its boundaries from a recording
    /// ([`Client::replay`](crate::Client::replay)).
    pub fn is_replay(&self) -> bool {
        self.replay.is_some()
    }

    /// In a replayed flow, the next recorded call of boundary `name`, which must have been
    /// made with `given` (errors as [`Step::boundary`]'s); `None` in a flow that is not a
    /// replay. For bindings that run the call themselves, without holding the flow.
    pub fn replay_answer(&mut self, name: &str, given: Value) -> Option<Result<Boundary, Error>> {
        let mut given = given;
        // The recording holds the input as it was sent: masked by the client's redaction.
        if self.replay.is_some() {
            self.client.redaction().redact_value(&mut given);
        }
        self.replay
            .as_mut()
            .map(|replay| replay.answer(name, given))
    }
}

impl Step<'_> {
    /// Calls a non-deterministic dependency (an LLM, a search API) through a recorded
    /// boundary: `step.boundary("llm.keywords", &prompt, || llm(&prompt))`. The input and
    /// output are recorded in the step. In a flow started with
    /// [`Client::replay`](crate::Client::replay), `call` is never run: the next recorded output
    /// of `name` is returned, or an error when the input differs from the recording
    /// ([`Error::ReplayMismatch`]), no call is left ([`Error::ReplayMissing`]) or the recorded
    /// output does not deserialise as `O` ([`Error::ReplayOutput`]).
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
        if !self.flow.is_replay() {
            let output = call();
            self.recorder_mut().push_boundary(Boundary {
                name: name.to_string(),
                input: given,
                output: to_value(&output),
                error: None,
            });
            return Ok(output);
        }
        let recorded = self
            .flow
            .replay_answer(name, given)
            .expect("a replayed flow answers")?;
        if let Some(error) = &recorded.error {
            return Err(Error::ReplayOutput {
                name: name.to_string(),
                why: format!(
                    "the recorded call failed: {}: {}",
                    error.kind, error.message
                ),
            });
        }
        let output =
            serde_json::from_value(recorded.output.clone()).map_err(|e| Error::ReplayOutput {
                name: name.to_string(),
                why: e.to_string(),
            })?;
        self.recorder_mut().push_boundary(recorded);
        Ok(output)
    }
}
