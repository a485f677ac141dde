//! Flows: how a record is written (and when a write is stale), how the list is filtered and
//! paged, and what is derived from a record for search and statistics.
//!
//! - [`store`]: [`FlowStore`], what every SQL engine answers about flows;
//! - [`derived`]: search text, stored step columns — computed once for every engine;
//! - the list's filters are one vocabulary shared with the dashboard and the browser:
//!   [`FlowFilters`] (in `flowtrail-types`), applied in SQL by `engines/sql/flows.rs`.

pub mod derived;
pub mod store;

use std::collections::BTreeMap;

use flowtrail_types::{FlowStatus, FlowSummary};

pub use derived::{SEARCH_TEXT_MAX, boundaries_json, observation_text, search_query, search_words};
pub use flowtrail_types::{FlowCursor, FlowFilters, Share};
pub use store::FlowStore;

use crate::payloads::PayloadRef;

/// Where each step's observation payload was stored, by `seq`.
pub type StepPayloads = BTreeMap<u32, PayloadRef>;

/// One flow to write in a batch.
pub struct FlowWrite<'a> {
    pub team_id: i64,
    pub flow: &'a flowtrail_types::FlowRecord,
    pub payloads: &'a StepPayloads,
    pub mode: WriteMode,
}

/// How a write combines with what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// The record is the whole flow: it replaces the stored one unless that one is newer.
    #[default]
    Replace,
    /// The record carries some steps of a running flow (`POST /api/v1/flows/{id}/steps`):
    /// they replace the stored steps with the same `seq` and the others stay. See
    /// [`Precedence::of`] for when the flow's own fields are taken.
    MergeSteps,
}

impl WriteMode {
    /// The stored spelling (`ingest_jobs.mode`, the Redis job's `mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Replace => "replace",
            WriteMode::MergeSteps => "merge_steps",
        }
    }

    /// Parses [`WriteMode::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "replace" => Some(WriteMode::Replace),
            "merge_steps" => Some(WriteMode::MergeSteps),
            _ => None,
        }
    }
}

/// What became of a write.
#[derive(Debug, Clone, PartialEq)]
pub enum UpsertOutcome {
    /// The flow was written; its summary as stored now (what a live event carries).
    Written(Box<FlowSummary>),
    /// A newer version is already stored; nothing changed.
    Stale,
}

impl UpsertOutcome {
    /// Whether the flow was written.
    pub fn is_written(&self) -> bool {
        matches!(self, UpsertOutcome::Written(_))
    }
}

/// **Version precedence**, the rule every engine applies before writing a flow: what a write
/// may change, given the version and status already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precedence {
    /// Nothing: a newer version is stored, or (for a steps push) the flow is finished with
    /// a version at least the push's — a stale write or a late push never reopens or erases a
    /// finished flow.
    Stale,
    /// The steps, and the flow's own fields when `header` is true.
    Write { header: bool },
}

impl Precedence {
    /// The rule: a whole record replaces the stored flow unless the stored version is newer;
    /// a steps push merges its steps into a running flow (or a finished one of an older
    /// version) and brings the flow's own fields only when its version is at least the
    /// stored one.
    pub fn of(mode: WriteMode, version: u32, stored: Option<(u32, FlowStatus)>) -> Self {
        let Some((stored_version, stored_status)) = stored else {
            return Precedence::Write { header: true };
        };
        match mode {
            WriteMode::Replace if stored_version > version => Precedence::Stale,
            WriteMode::Replace => Precedence::Write { header: true },
            WriteMode::MergeSteps
                if stored_status != FlowStatus::Running && stored_version >= version =>
            {
                Precedence::Stale
            }
            WriteMode::MergeSteps => Precedence::Write {
                header: stored_version <= version,
            },
        }
    }
}

/// Cuts a page from `rows` fetched with one row more than `limit`: the page, and the cursor
/// of the next page when there is one.
pub fn page(mut rows: Vec<FlowSummary>, limit: u32) -> flowtrail_types::FlowPage {
    let limit = limit as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| {
            FlowCursor {
                started_at_ms: crate::millis::to_ms(last.started_at),
                id: last.id,
            }
            .encode()
        })
    } else {
        None
    };
    flowtrail_types::FlowPage {
        flows: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_push_never_reopens_a_finished_flow() {
        use FlowStatus::{Running, Succeeded};
        let push = |version, stored| Precedence::of(WriteMode::MergeSteps, version, stored);
        assert_eq!(push(4, Some((4, Succeeded))), Precedence::Stale);
        assert_eq!(
            push(2, Some((3, Running))),
            Precedence::Write { header: false }
        );
        assert_eq!(push(1, None), Precedence::Write { header: true });
        let replace = |version, stored| Precedence::of(WriteMode::Replace, version, stored);
        assert_eq!(replace(2, Some((3, Running))), Precedence::Stale);
        assert_eq!(
            replace(3, Some((3, Succeeded))),
            Precedence::Write { header: true }
        );
    }
}
