//! One run of a pipeline being recorded. Rules: a flow is queued for sending exactly once —
//! on [`Flow::succeed`], [`Flow::fail`], or as failed when dropped unfinished; its steps get
//! sequence numbers in the order they start; with [`Config::push_steps`](crate::Config::push_steps) each
//! finished step is also queued at once, one version per push, so the finished record (one
//! version later) supersedes them.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use flowtrail_types::{SdkInfo, StepRecord};

use super::{Step, to_value};
use crate::{Client, FlowRecord, FlowStatus, Replay, StepKind};

/// One run of a pipeline being recorded. Finish it with [`Flow::succeed`] or [`Flow::fail`];
/// dropped unfinished, it is sent as failed.
pub struct Flow {
    pub(super) client: Client,
    pub(crate) record: FlowRecord,
    sent: bool,
    /// The recorded calls its boundaries answer from, in a replayed flow.
    pub(crate) replay: Option<Replay>,
}

impl Flow {
    /// Starts recording a run of `pipeline`; with `replay`, tagged `replay_of` its source.
    pub(crate) fn start(
        client: Client,
        pipeline: impl Into<String>,
        replay: Option<Replay>,
    ) -> Self {
        let mut flow = Flow {
            replay: None,
            client,
            record: FlowRecord {
                sdk: Some(SdkInfo {
                    name: "flowtrail-rust".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
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
        let seq = self
            .record
            .steps
            .iter()
            .map(|s| s.seq + 1)
            .max()
            .unwrap_or(0);
        let policy = self.client.capture;
        Step::start(self, seq, name.into(), kind, policy)
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
