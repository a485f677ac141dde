//! Recording a run of a pipeline, in memory, on the caller's thread: a [`Flow`], its
//! [`Step`]s, the [`Candidate`]s each step observes, and the [`CapturePolicy`] that decides
//! which of them are kept.
//!
//! Rules: recording never fails and never blocks on I/O (a value that does not serialise is
//! recorded as a string saying so); a flow or step dropped unfinished is recorded as failed;
//! counts are exact whatever the capture policy keeps.

mod candidate;
mod capture;
mod flow;
mod step;

pub use candidate::Candidate;
pub use capture::CapturePolicy;
pub use flow::Flow;
pub use step::{Step, StepRecorder};

use serde::Serialize;
use serde_json::Value;

/// A caller's value as JSON; one that does not serialise becomes a string saying why, so
/// recording never fails.
pub(crate) fn to_value(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| Value::String(format!("<unserialisable: {e}>")))
}
