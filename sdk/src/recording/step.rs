//! One step of a flow being recorded: a guard borrowed from its [`Flow`]. Rules: a step is
//! added to its flow exactly once — on [`Step::finish`], [`Step::fail`], or as failed when
//! dropped unfinished (an early return, a `?`, a panic); `candidates_in`, `candidates_out` and
//! the reason histogram are counted from every candidate observed unless the caller set them.
//! Its recorded calls ([`Step::boundary`]) are in `crate::boundary`.

use serde::Serialize;
use time::OffsetDateTime;

use flowtrail_types::StepRecord;

use super::capture::Tally;
use super::{Candidate, CapturePolicy, Flow, to_value};
use crate::{FlowStatus, StepKind};

/// One step being recorded: a guard. Added to its flow on [`Step::finish`] or [`Step::fail`];
/// dropped unfinished (an early return, a `?`, a panic), it is added as failed.
pub struct Step<'a> {
    pub(crate) flow: &'a mut Flow,
    pub(crate) record: StepRecord,
    finished: bool,
    tally: Tally,
}

impl<'a> Step<'a> {
    /// Step number `seq` of `flow`, keeping candidates by `policy`.
    pub(super) fn start(
        flow: &'a mut Flow,
        seq: u32,
        name: String,
        kind: StepKind,
        policy: CapturePolicy,
    ) -> Self {
        Step {
            flow,
            record: StepRecord {
                started_at: Some(OffsetDateTime::now_utc()),
                ..StepRecord::new(seq, name, kind)
            },
            finished: false,
            tally: Tally::new(policy),
        }
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

    /// What this step keeps of its candidates (default: the client's
    /// [`Config::capture`](crate::Config::capture)). Set it before observing: candidates
    /// already observed were kept or not by the old policy.
    pub fn capture(&mut self, policy: CapturePolicy) -> &mut Self {
        self.tally.set_policy(policy);
        self
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
        let tally = std::mem::replace(&mut self.tally, Tally::new(CapturePolicy::Full));
        tally.summarise(&mut record);
        self.flow.add_step(record);
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
        assert!(client.shutdown(Duration::from_secs(5)));
    }
}
