//! The crate's one error type. Rules: only setting up a client and replaying return errors;
//! recording and sending never do (what cannot be delivered is counted in [`crate::Stats`]).

use serde_json::Value;

/// Errors of setting up a client, and of replays. Recording and sending never return
/// errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A variable [`Client::from_env`](crate::Client::from_env) needs is not set.
    #[error("{0} is not set")]
    MissingEnv(&'static str),
    /// The URL is not `http://…` or `https://…`, or does not parse.
    #[error("invalid Flow Trail URL {0:?}")]
    InvalidUrl(String),
    /// An API key that cannot be sent in an HTTP header (a control character inside it).
    #[error("the API key cannot be sent: {0}")]
    InvalidKey(String),
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
