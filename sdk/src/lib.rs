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
//! Recording is in memory; sending happens on a background thread (the sender) with retries,
//! so the pipeline is never blocked or broken by the backend. What cannot be delivered is
//! counted in [`Stats`], never raised in the caller's path.
//!
//! Where things live: [`Client`] (`client`) hands flows to the sender (`sender/`); a [`Flow`],
//! its [`Step`]s, their [`Candidate`]s and the [`CapturePolicy`] that samples them are in
//! `recording/`; [`Step::boundary`] and [`Replay`] in `boundary`; [`Redaction`] in
//! `redaction`; [`Config`] in `config`; [`Error`] in `error`; fitting a record to the server's
//! ingest limits before it is sent in `limits`.

#![warn(missing_docs)]

mod boundary;
mod client;
mod config;
mod error;
mod limits;
mod recording;
mod redaction;
mod sender;
#[cfg(test)]
mod test_support;

pub use flowtrail_types::{
    Capture, FlowRecord, FlowStatus, Observation, Reason, SdkInfo, StepKind, Verdict,
};

pub use boundary::Replay;
pub use client::Client;
pub use config::Config;
pub use error::Error;
pub use flowtrail_types::{Boundary, BoundaryError};
pub use recording::{Candidate, CapturePolicy, Flow, Step, StepRecorder};
pub use redaction::{Mask, Redaction};
pub use sender::Stats;
