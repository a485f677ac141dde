//! Flows: how a record is written (and when a write is stale), how the list is filtered and
//! paged, and what is derived from a record for search and statistics.
//!
//! - [`store`]: [`FlowStore`], what every SQL engine answers about flows;
//! - [`derived`]: search text, stored step columns — computed once for every engine;
//! - [`export`]: every selected flow, its steps or its observations, as a stream of rows;
//! - the list's filters are one vocabulary shared with the dashboard and the browser:
//!   [`FlowFilters`] (in `flowtrail-types`), applied in SQL by `engines/sql/flows.rs`.

pub mod bundle;
pub mod derived;
pub mod export;
pub mod store;

use std::collections::BTreeMap;

use flowtrail_types::{FlowStatus, FlowSummary};

pub use derived::{boundaries_json, observation_text, search_query, search_words};
pub use flowtrail_types::{FlowCursor, FlowFilters, Share};
pub use store::FlowStore;

use crate::payloads::PayloadRef;

/// Where each step's observation payload was stored, by `seq`.
pub type StepPayloads = BTreeMap<u32, PayloadRef>;

/// A step's observations as stored, and which version of which flow they belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPayload {
    /// `None` when the step recorded no observations.
    pub payload: Option<PayloadRef>,
    /// The stored version of the flow.
    pub flow_version: u32,
    /// The stored status of the flow: a running flow's steps may still be replaced, a
    /// finished version's never are.
    pub flow_status: FlowStatus,
}

impl StepPayload {
    /// Whether these observations are final: the flow is finished, so its version `N` is
    /// never written again (see [`Precedence::of`]).
    pub fn is_final(&self) -> bool {
        self.flow_status != FlowStatus::Running
    }
}

/// One flow to write in a batch.
pub struct FlowWrite<'a> {
    pub team_id: i64,
    pub flow: &'a flowtrail_types::FlowRecord,
    pub payloads: &'a StepPayloads,
    pub mode: WriteMode,
    /// The flow comes from a debugging bundle ([`crate::flows::bundle`]): its row is marked
    /// `imported_at` (the write's time). A native write clears the mark.
    pub imported: bool,
}

impl FlowWrite<'_> {
    /// [`Precedence::of`] for this write, with the import rule: a flow from a bundle never
    /// replaces a flow stored at the same or a newer version, running or finished — a running
    /// one may have had steps pushed since the bundle was made, and an old bundle must not roll
    /// a live flow back. (Over a lower version the ordinary rule applies.)
    pub fn precedence(&self, stored: Option<(u32, FlowStatus)>) -> Precedence {
        match stored {
            Some((stored_version, _)) if self.imported && self.flow.version <= stored_version => {
                Precedence::Stale
            }
            _ => Precedence::of(self.mode, self.flow.version, self.flow.status, stored),
        }
    }

    /// The object-store keys of the payloads put for this write (inline payloads have
    /// none). A write that does not go ahead (stale, or in conflict) queues them for
    /// deletion in its transaction — the sweep deletes those no step row refers to — so no
    /// object is left behind by a write that stored nothing.
    pub fn object_keys(&self) -> impl Iterator<Item = &str> {
        self.payloads
            .values()
            .filter(|payload| payload.inline.is_none())
            .map(|payload| payload.key.as_str())
    }

    /// The summary a whole-record write leaves stored (`ingested_at_ms`: when it was
    /// written): what its live event carries, without reading it back. Times at the stored
    /// precision (milliseconds); the largest drop by the one rule
    /// ([`flowtrail_types::Elimination::largest`], the SQL's twin).
    pub fn replaced_summary(&self, ingested_at_ms: i64) -> FlowSummary {
        use crate::millis::{from_ms, to_ms};
        let flow = self.flow;
        FlowSummary {
            id: flow.id,
            version: flow.version,
            pipeline: flow.pipeline.clone(),
            status: flow.status,
            started_at: from_ms(to_ms(flow.started_at)),
            ended_at: flow.ended_at.map(|at| from_ms(to_ms(at))),
            tags: flow.tags.clone(),
            error: flow.error.clone(),
            step_count: flow.steps.len() as u32,
            ingested_at: from_ms(ingested_at_ms),
            largest_elimination: flowtrail_types::Elimination::largest(&flow.steps),
            imported_at: self.imported.then(|| from_ms(ingested_at_ms)),
        }
    }

    /// Whether the write replaces the flow's tags: a whole record always does; a steps push
    /// only when it carries some (a push never erases what it does not carry).
    pub fn rewrites_tags(&self) -> bool {
        self.mode != WriteMode::MergeSteps || !self.flow.tags.is_empty()
    }
}

/// How a write combines with what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// The record is the whole flow: it replaces the stored one unless that one is newer.
    #[default]
    Replace,
    /// The record carries some steps of a running flow (`POST /api/v1/flows/{id}/steps`):
    /// they replace the stored steps with the same `seq` and the others stay. See
    /// [`Precedence::of`] for when the flow's own fields are taken; fields the push does not
    /// carry (output, error, end; an absent input, tags or SDK) are never erased.
    MergeSteps,
    /// OpenTelemetry spans of one trace (`POST /v1/traces`, OTLP/gRPC). Queued, the job's
    /// body is a [`crate::otlp::SpanBatch`]; the processor assembles it with the stored flow
    /// into a whole record of the next version ([`crate::otlp::assemble`]) and writes that
    /// in this mode: like [`WriteMode::Replace`], but only over the version it was assembled
    /// from (compare-and-set), so two batches of a trace stored at once never lose a span.
    Spans,
}

impl WriteMode {
    /// The stored spelling (`ingest_jobs.mode`, the Redis job's `mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Replace => "replace",
            WriteMode::MergeSteps => "merge_steps",
            WriteMode::Spans => "spans",
        }
    }

    /// Parses [`WriteMode::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "replace" => Some(WriteMode::Replace),
            "merge_steps" => Some(WriteMode::MergeSteps),
            "spans" => Some(WriteMode::Spans),
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
    /// A [`WriteMode::Spans`] write found another version than the one it was assembled
    /// from; nothing changed, and the job is assembled again.
    Conflict,
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
    /// Nothing: a newer version is stored, or (for a steps push) the flow is finished — a
    /// stale write or a late push, whatever its version, never reopens or erases a finished
    /// flow.
    Stale,
    /// Nothing: an assembled write ([`WriteMode::Spans`]) was assembled from another version
    /// than the stored one.
    Conflict,
    /// The steps, and the flow's own fields when `header` is true.
    Write { header: bool },
}

impl Precedence {
    /// The rule, given the write's mode, version and status and what is stored:
    /// - A **finished flow is final**: only a whole finished record of a higher version
    ///   replaces it (a correction). A running record, a steps push or an older or equal
    ///   version changes nothing, so a retry changes nothing and what was answered for a
    ///   finished version (observations served as immutable under `?version=N`) never changes.
    /// - A **running flow is provisional**: a whole finished record replaces it whatever its
    ///   version (the run's final word: steps pushed with higher versions while it ran never
    ///   hide it); a whole running record replaces it unless the stored version is newer.
    /// - A **steps push** merges its steps into a running flow only, and brings the flow's own
    ///   fields only when its version is at least the stored one.
    /// - An **assembled write** (spans) replaces exactly the version it was assembled from
    ///   (`version - 1`; nothing stored for version 1), else it is a conflict. The assembly
    ///   itself keeps a finished flow finished ([`crate::otlp::assemble`]).
    pub fn of(
        mode: WriteMode,
        version: u32,
        status: FlowStatus,
        stored: Option<(u32, FlowStatus)>,
    ) -> Self {
        let Some((stored_version, stored_status)) = stored else {
            return match mode {
                WriteMode::Spans if version != 1 => Precedence::Conflict,
                _ => Precedence::Write { header: true },
            };
        };
        let finished = |s: FlowStatus| s != FlowStatus::Running;
        match mode {
            WriteMode::Replace if finished(stored_status) => {
                if finished(status) && version > stored_version {
                    Precedence::Write { header: true }
                } else {
                    Precedence::Stale
                }
            }
            WriteMode::Replace if finished(status) || version >= stored_version => {
                Precedence::Write { header: true }
            }
            WriteMode::Replace => Precedence::Stale,
            WriteMode::MergeSteps if finished(stored_status) => Precedence::Stale,
            WriteMode::MergeSteps => Precedence::Write {
                header: stored_version <= version,
            },
            WriteMode::Spans if stored_version.checked_add(1) == Some(version) => {
                Precedence::Write { header: true }
            }
            WriteMode::Spans => Precedence::Conflict,
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
        search_complete: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assembled_write_replaces_only_the_version_it_was_assembled_from() {
        use FlowStatus::{Running, Succeeded};
        let spans = |version, stored| Precedence::of(WriteMode::Spans, version, Running, stored);
        let write = Precedence::Write { header: true };
        assert_eq!(spans(1, None), write);
        assert_eq!(
            spans(2, None),
            Precedence::Conflict,
            "assembled from a flow since deleted"
        );
        assert_eq!(spans(3, Some((2, Running))), write);
        assert_eq!(
            spans(3, Some((2, Succeeded))),
            write,
            "a late span's step is added"
        );
        assert_eq!(
            spans(3, Some((3, Running))),
            Precedence::Conflict,
            "another batch won"
        );
        assert_eq!(spans(2, Some((3, Running))), Precedence::Conflict);
    }

    #[test]
    fn an_imported_flow_never_rolls_back_a_running_one() {
        use FlowStatus::{Running, Succeeded};
        let record = |version, status| flowtrail_types::FlowRecord {
            version,
            status,
            ..serde_json::from_value(serde_json::json!({
                "id": "0193a1b2-0000-7000-8000-000000000001",
                "pipeline": "p",
                "started_at": "2026-11-30T10:00:00Z",
                "status": "running",
                "steps": []
            }))
            .unwrap()
        };
        let payloads = StepPayloads::new();
        let import = |flow: &flowtrail_types::FlowRecord, stored| {
            FlowWrite {
                team_id: 1,
                flow,
                payloads: &payloads,
                mode: WriteMode::Replace,
                imported: true,
            }
            .precedence(stored)
        };
        let write = Precedence::Write { header: true };
        let running = |v| record(v, Running);
        let finished = |v| record(v, Succeeded);
        assert_eq!(import(&running(1), None), write);
        assert_eq!(
            import(&running(1), Some((1, Running))),
            Precedence::Stale,
            "the same running version again: steps pushed since stay"
        );
        assert_eq!(import(&running(1), Some((2, Running))), Precedence::Stale);
        assert_eq!(import(&running(3), Some((2, Running))), write);
        assert_eq!(
            import(&finished(1), Some((1, Running))),
            Precedence::Stale,
            "steps pushed since stay"
        );
        assert_eq!(
            import(&finished(1), Some((6, Running))),
            Precedence::Stale,
            "never back to a lower version"
        );
        assert_eq!(import(&finished(7), Some((6, Running))), write);
        assert_eq!(
            import(&finished(1), Some((1, Succeeded))),
            Precedence::Stale
        );
        // A native write keeps the ordinary rule.
        let native = FlowWrite {
            team_id: 1,
            flow: &running(1),
            payloads: &payloads,
            mode: WriteMode::Replace,
            imported: false,
        };
        assert_eq!(native.precedence(Some((1, Running))), write);
    }

    #[test]
    fn a_late_push_never_reopens_a_finished_flow() {
        use FlowStatus::{Failed, Running, Succeeded};
        let push =
            |version, stored| Precedence::of(WriteMode::MergeSteps, version, Running, stored);
        assert_eq!(push(4, Some((4, Succeeded))), Precedence::Stale);
        assert_eq!(
            push(5, Some((4, Succeeded))),
            Precedence::Stale,
            "never reopened"
        );
        assert_eq!(push(9, Some((4, Failed))), Precedence::Stale);
        assert_eq!(
            push(2, Some((3, Running))),
            Precedence::Write { header: false }
        );
        assert_eq!(push(1, None), Precedence::Write { header: true });
        let replace =
            |version, status, stored| Precedence::of(WriteMode::Replace, version, status, stored);
        let write = Precedence::Write { header: true };
        assert_eq!(replace(2, Running, Some((3, Running))), Precedence::Stale);
        assert_eq!(
            replace(2, Succeeded, Some((3, Running))),
            write,
            "the finished record supersedes pushes of higher versions"
        );
        assert_eq!(
            replace(3, Succeeded, Some((3, Succeeded))),
            Precedence::Stale,
            "a finished version is final"
        );
        assert_eq!(replace(3, Running, Some((3, Running))), write);
        assert_eq!(
            replace(4, Failed, Some((3, Succeeded))),
            write,
            "a correction"
        );
        assert_eq!(
            replace(9, Running, Some((3, Succeeded))),
            Precedence::Stale,
            "a finished flow is never reopened"
        );
    }
}
