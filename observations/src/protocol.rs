//! Messages between the dashboard page and its Web Worker, sent as JSON text. The worker owns
//! a step's observations (IndexedDB first, then the API) and answers filtered, sorted windows
//! of rows, so the page never parses, filters or sorts thousands of rows itself.

use flowtrail_types::Observation;
use serde::{Deserialize, Serialize};

use crate::filter::{ObservationFilter, Sort};

/// How long observations stay in IndexedDB. They never change once a flow has finished, so
/// the copy is always right; the limit only bounds the space used.
pub const CACHE_DAYS: f64 = 3.0;

/// The worker's IndexedDB database (the page deletes it at sign-out).
pub const DB_NAME: &str = "flowtrail";

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Load a step's observations (IndexedDB first when `cache`, else or then the API).
    Open {
        key: String,
        url: String,
        /// False while the flow runs: its steps may still be replaced.
        cache: bool,
    },
    /// Filter and sort the loaded step, answer `limit` rows from `offset`.
    Query {
        id: u64,
        key: String,
        filter: ObservationFilter,
        sort: Sort,
        offset: usize,
        limit: usize,
    },
    /// Drop every step of this flow (all versions) from memory and IndexedDB: the server says
    /// it no longer exists (deleted by retention).
    Forget { flow_id: String },
}

/// Where a step's observations came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// IndexedDB: no request was made.
    Cache,
    Network,
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker runs and takes messages.
    Ready,
    Opened {
        key: String,
        total: usize,
        source: Source,
        /// From the request to the rows being ready to filter (read or fetch, then parse).
        load_ms: f64,
    },
    Rows {
        id: u64,
        key: String,
        /// How many rows match in all.
        matching: usize,
        offset: usize,
        /// `(position in the step, observation)`, in sort order.
        rows: Vec<(u32, Observation)>,
        /// Time spent filtering and sorting (0 when the previous answer was reused).
        filter_ms: f64,
    },
    Failed {
        key: String,
        message: String,
        /// The browser said it has no network.
        offline: bool,
    },
}

/// The IndexedDB and worker key of a step's observations: `{flow_id}@v{version}/{seq}`. The
/// version is part of it because only a finished version's observations never change: a
/// copy kept under another version's key is never shown for this one.
pub fn step_key(flow_id: &str, version: u32, seq: u32) -> String {
    format!("{flow_id}@v{version}/{seq}")
}

/// Where the page asks for a step's observations: a finished flow's by its version (the
/// answer is immutable and may be kept), a running flow's without one (revalidated).
pub fn observations_url(flow_id: &str, version: u32, seq: u32, finished: bool) -> String {
    let url = format!("/api/v1/flows/{flow_id}/steps/{seq}/observations");
    if finished {
        format!("{url}?version={version}")
    } else {
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let message = ToWorker::Query {
            id: 7,
            key: step_key("f", 3, 2),
            filter: ObservationFilter {
                text: "case".into(),
                ..ObservationFilter::default()
            },
            sort: Sort::default(),
            offset: 40,
            limit: 80,
        };
        let json = serde_json::to_string(&message).unwrap();
        assert!(
            json.starts_with(r#"{"type":"query","id":7,"key":"f@v3/2""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<ToWorker>(&json).unwrap(), message);
        let ready: FromWorker = serde_json::from_str(r#"{"type":"ready"}"#).unwrap();
        assert_eq!(ready, FromWorker::Ready);
    }

    #[test]
    fn only_a_finished_versions_observations_are_asked_for_by_version() {
        assert_eq!(
            observations_url("f", 4, 2, true),
            "/api/v1/flows/f/steps/2/observations?version=4"
        );
        assert_eq!(
            observations_url("f", 4, 2, false),
            "/api/v1/flows/f/steps/2/observations"
        );
        assert_ne!(step_key("f", 4, 2), step_key("f", 5, 2));
    }
}
