//! One run of a pipeline being recorded. Rules: a flow is queued for sending exactly once —
//! on [`Flow::succeed`], [`Flow::fail`], or as failed when dropped unfinished; its steps get
//! sequence numbers in the order they start; with [`Config::push_steps`](crate::Config::push_steps) each
//! finished step is also queued at once, one version per push, so the finished record (one
//! version later) supersedes them.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use flowtrail_types::StepRecord;

use super::step::StepRecorder;
use super::{Step, to_value};
use crate::{Client, FlowRecord, FlowStatus, Replay, StepKind};

/// One run of a pipeline being recorded. Finish it with [`Flow::succeed`] or [`Flow::fail`];
/// dropped unfinished, it is sent as failed.
pub struct Flow {
    pub(crate) client: Client,
    pub(crate) record: FlowRecord,
    sent: bool,
    /// The recorded calls its boundaries answer from, in a replayed flow.
    pub(crate) replay: Option<Replay>,
    /// The `seq` of the next step started.
    next_seq: u32,
}

impl Flow {
    /// Starts recording a run of `pipeline`; with `replay`, tagged `replay_of` its source.
    pub(crate) fn start(
        client: Client,
        pipeline: impl Into<String>,
        replay: Option<Replay>,
    ) -> Self {
        let sdk = client.sdk.clone();
        let mut flow = Flow {
            replay: None,
            next_seq: 0,
            client,
            record: FlowRecord {
                sdk: Some(sdk),
                ..FlowRecord::new(Uuid::now_v7(), pipeline, OffsetDateTime::now_utc())
            },
            sent: false,
        };
        if let Some(replay) = replay {
            if let Some(source) = replay.source() {
                flow.record
                    .tags
                    .insert("replay_of".into(), source.to_string());
            }
            flow.replay = Some(replay);
        }
        flow
    }

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
        let recorder = self.begin_step(name, kind);
        Step::start(self, recorder)
    }

    /// Starts the next step as a [`StepRecorder`] that does not borrow the flow (steps get
    /// their `seq` in the order they start, also when several are open at once); add it
    /// with [`Flow::end_step`].
    pub fn begin_step(&mut self, name: impl Into<String>, kind: StepKind) -> StepRecorder {
        let seq = self.next_seq;
        self.next_seq += 1;
        StepRecorder::start(seq, name.into(), kind, self.client.capture)
    }

    /// What is recorded so far (read-only): input, output, tags and the steps that ended.
    pub fn record(&self) -> &FlowRecord {
        &self.record
    }

    /// The client this flow is sent through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Adds a step started with [`Flow::begin_step`], ended with `status` now (pushed at
    /// once too when the client says so).
    pub fn end_step(&mut self, recorder: StepRecorder, status: FlowStatus) {
        let capped = recorder.capped();
        let record = recorder.close(status);
        if let Some(left_out) = capped {
            self.client.adjusted(format!(
                "flow {}: step {} ({:?}) kept the first {} observations, the most a step \
                 stores; {left_out} more were counted but not kept (it says sampled)",
                self.record.id,
                record.seq,
                record.name,
                flowtrail_types::limits::MAX_OBSERVATIONS_PER_STEP,
            ));
        }
        self.add_step(record);
    }

    /// Sets the flow's output (what [`Flow::succeed`] records), for bindings that finish
    /// the flow later.
    pub fn set_output(&mut self, output: impl Serialize) {
        self.record.output = to_value(output);
    }

    /// Sets the flow's input after it started.
    pub fn set_input(&mut self, input: impl Serialize) {
        self.record.input = to_value(input);
    }

    /// Adds a tag after the flow started.
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.record.tags.insert(key.into(), value.into());
    }

    /// Ends the flow as succeeded with the output set so far ([`Flow::set_output`]).
    pub fn succeed_as_set(mut self) {
        self.finish(FlowStatus::Succeeded, None);
    }

    /// Forgets the flow without sending it: for a copy that is not this process's to send
    /// (a flow a parent process had open when it forked).
    pub fn discard(mut self) {
        self.sent = true;
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

    /// Adds a finished step; pushes it at once too when the client says so.
    pub(super) fn add_step(&mut self, step: StepRecord) {
        if self.client.push_steps {
            self.push(&step);
        }
        self.record.steps.push(step);
    }

    /// Queues an incremental push of one finished step (see
    /// [`Config::push_steps`](crate::Config::push_steps)); each push takes the next version, so
    /// the finished record, one version later, supersedes them all.
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
        // A replay that made fewer calls than were recorded did not take the same path.
        if let Some(replay) = &self.replay
            && replay.remaining() > 0
        {
            self.client.notice(format!(
                "replayed flow {} ended with {} recorded call(s) not made: the run took another \
                 path than the recording",
                self.record.id,
                replay.remaining()
            ));
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::test_support::offline_client;

    #[test]
    fn recorders_open_at_once_get_their_own_seqs_and_a_discarded_flow_is_not_sent() {
        use crate::{FlowStatus, StepKind};
        let client = offline_client();
        let mut flow = client.flow("p");
        let a = flow.begin_step("a", StepKind::Filter);
        let b = flow.begin_step("b", StepKind::Rank);
        assert_eq!((a.seq(), b.seq()), (0, 1));
        flow.end_step(b, FlowStatus::Succeeded);
        flow.end_step(a, FlowStatus::Failed);
        let steps = &flow.record.steps;
        assert_eq!(
            (steps[0].seq, steps[1].seq),
            (1, 0),
            "in the order they ended"
        );
        assert_eq!(steps[1].status, FlowStatus::Failed);
        flow.discard();
        assert!(client.flush(Duration::from_secs(5)));
        assert_eq!(client.stats().queued, 0, "a discarded flow is never queued");
        // A new sender (what a forked child does) takes the clients' flows from now on.
        client.restart_after_fork().unwrap();
        drop(client.flow("q"));
        assert!(client.flush(Duration::from_secs(5)));
        let stats = client.stats();
        assert_eq!((stats.queued, stats.failed), (1, 1));
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
}
