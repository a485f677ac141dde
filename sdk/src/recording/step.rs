//! One step of a flow being recorded: a guard borrowed from its [`Flow`]. Rules: a step is
//! added to its flow exactly once — on [`Step::finish`], [`Step::fail`], or as failed when
//! dropped unfinished (an early return, a `?`, a panic); `candidates_in`, `candidates_out` and
//! the reason histogram are counted from every candidate observed unless the caller set them.
//! Its recorded calls ([`Step::boundary`]) are in `crate::boundary`.

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use flowtrail_types::{Boundary, StepRecord};

use super::capture::Tally;
use super::{Candidate, CapturePolicy, Flow, to_value};
use crate::{FlowStatus, StepKind};

/// A step being recorded that owns its record instead of borrowing its [`Flow`]: what a
/// [`Step`] holds, and what a binding keeps across calls (a Python `with flow.step(…)`
/// block, several steps open at once on threads or tasks). Started with
/// [`Flow::begin_step`], added with [`Flow::end_step`]; dropped without it, it is lost.
pub struct StepRecorder {
    pub(crate) record: StepRecord,
    tally: Tally,
}

impl StepRecorder {
    /// Step number `seq`, keeping candidates by `policy`.
    pub(super) fn start(seq: u32, name: String, kind: StepKind, policy: CapturePolicy) -> Self {
        StepRecorder {
            record: StepRecord {
                started_at: Some(OffsetDateTime::now_utc()),
                ..StepRecord::new(seq, name, kind)
            },
            tally: Tally::new(policy),
        }
    }

    /// The step's number in its flow (0 for the first step started).
    pub fn seq(&self) -> u32 {
        self.record.seq
    }

    /// What is recorded so far (read-only): input, output, reasoning, the counts set by the
    /// caller (those counted from observations are filled in when the step ends).
    pub fn record(&self) -> &StepRecord {
        &self.record
    }

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

    /// The step inside which this one ran (its `seq`), for nested steps.
    pub fn parent(&mut self, seq: u32) -> &mut Self {
        self.record.parent_seq = Some(seq);
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

    /// [`StepRecorder::observe`], with attributes made by `attributes` only when the
    /// candidate is kept: a binding converts a host language's values only for what is
    /// recorded (nothing under [`CapturePolicy::CountsOnly`] or for a sampled-out rejection).
    pub fn observe_with(
        &mut self,
        candidate: Candidate,
        attributes: impl FnOnce() -> Map<String, Value>,
    ) -> &mut Self {
        let mut observation = candidate.0;
        if self.tally.count(&observation) {
            observation.attributes.extend(attributes());
            self.record.observations.push(observation);
        }
        self
    }

    /// Counts one candidate (always: counts and reasons stay exact) and answers whether the
    /// capture policy keeps it; add a kept one with [`StepRecorder::keep`]. For bindings that
    /// build a kept candidate's attributes outside their own locks.
    pub fn admit(&mut self, candidate: &Candidate) -> bool {
        self.tally.count(&candidate.0)
    }

    /// Adds a candidate [`StepRecorder::admit`] kept.
    pub fn keep(&mut self, candidate: Candidate) -> &mut Self {
        self.record.observations.push(candidate.0);
        self
    }

    /// How many candidates the policy would have kept beyond the most a step stores
    /// ([`MAX_OBSERVATIONS_PER_STEP`](flowtrail_types::limits::MAX_OBSERVATIONS_PER_STEP)), if
    /// any.
    pub(crate) fn capped(&self) -> Option<u64> {
        self.tally.capped()
    }

    /// What this step keeps of its candidates. Set it before observing: candidates already
    /// observed were kept or not by the old policy.
    pub fn capture(&mut self, policy: CapturePolicy) -> &mut Self {
        self.tally.set_policy(policy);
        self
    }

    /// Adds a recorded call of a boundary (see [`Step::boundary`]).
    pub fn push_boundary(&mut self, boundary: Boundary) -> &mut Self {
        self.record.boundaries.push(boundary);
        self
    }

    /// The finished record: status, end time, and the counts the tally made.
    pub(super) fn close(self, status: FlowStatus) -> StepRecord {
        let mut record = self.record;
        record.status = status;
        record.ended_at = Some(OffsetDateTime::now_utc());
        self.tally.summarise(&mut record);
        record
    }
}

/// One step being recorded: a guard. Added to its flow on [`Step::finish`] or [`Step::fail`];
/// dropped unfinished (an early return, a `?`, a panic), it is added as failed.
pub struct Step<'a> {
    pub(crate) flow: &'a mut Flow,
    /// `None` once added to the flow.
    pub(crate) inner: Option<StepRecorder>,
}

impl<'a> Step<'a> {
    /// `recorder`, added to `flow` when finished or dropped.
    pub(super) fn start(flow: &'a mut Flow, recorder: StepRecorder) -> Self {
        Step {
            flow,
            inner: Some(recorder),
        }
    }
}

impl Step<'_> {
    pub(crate) fn recorder_mut(&mut self) -> &mut StepRecorder {
        self.inner
            .as_mut()
            .expect("a step is only added to its flow when it is consumed or dropped")
    }

    /// What the step was given (a small summary).
    pub fn input(&mut self, input: impl Serialize) -> &mut Self {
        self.recorder_mut().input(input);
        self
    }

    /// What the step produced (a small summary).
    pub fn output(&mut self, output: impl Serialize) -> &mut Self {
        self.recorder_mut().output(output);
        self
    }

    /// The step's explanation of what it did and why.
    pub fn reasoning(&mut self, text: impl Into<String>) -> &mut Self {
        self.recorder_mut().reasoning(text);
        self
    }

    /// Exact number of candidates received, when not every one is observed.
    pub fn candidates_in(&mut self, n: u64) -> &mut Self {
        self.recorder_mut().candidates_in(n);
        self
    }

    /// Exact number of candidates passed on, when not every one is observed.
    pub fn candidates_out(&mut self, n: u64) -> &mut Self {
        self.recorder_mut().candidates_out(n);
        self
    }

    /// Records one candidate's fate. It always counts; whether it is kept follows the step's
    /// [`CapturePolicy`].
    pub fn observe(&mut self, candidate: Candidate) -> &mut Self {
        self.recorder_mut().observe(candidate);
        self
    }

    /// What this step keeps of its candidates (default: the client's
    /// [`Config::capture`](crate::Config::capture)). Set it before observing: candidates
    /// already observed were kept or not by the old policy.
    pub fn capture(&mut self, policy: CapturePolicy) -> &mut Self {
        self.recorder_mut().capture(policy);
        self
    }

    /// Adds the step to its flow as succeeded.
    pub fn finish(mut self) {
        self.close(FlowStatus::Succeeded);
    }

    /// Adds the step to its flow as failed.
    pub fn fail(mut self, reasoning: impl Into<String>) {
        self.recorder_mut().reasoning(reasoning);
        self.close(FlowStatus::Failed);
    }

    fn close(&mut self, status: FlowStatus) {
        if let Some(recorder) = self.inner.take() {
            self.flow.end_step(recorder, status);
        }
    }
}

impl Drop for Step<'_> {
    /// A step dropped unfinished (an early return, a `?`, a panic) is recorded as failed.
    fn drop(&mut self) {
        let Some(recorder) = self.inner.as_mut() else {
            return;
        };
        if recorder.record.reasoning.is_none() {
            let why = if std::thread::panicking() {
                "the pipeline panicked during this step"
            } else {
                "the step ended without finish() (an early return or an error)"
            };
            recorder.record.reasoning = Some(why.into());
        }
        self.close(FlowStatus::Failed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::test_support::offline_client;
    use crate::{Candidate, Flow, FlowStatus, StepKind};

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
        // The server is unreachable: the flow is lost (counted), and shutdown says so.
        assert!(!client.shutdown(Duration::from_secs(5)));
        let stats = client.stats();
        assert_eq!((stats.failed, stats.pending), (1, 0), "{stats:?}");
    }
}
