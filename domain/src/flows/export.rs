//! Export: every flow the list's filters select, at one of three levels (flows, their steps,
//! their steps' observations), produced page by page into a bounded channel — memory stays
//! the same whatever the size; the receiver's pace sets the producer's.

use flowtrail_types::{FlowFilters, FlowSummary, Observation, StepSummary};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::payloads::PayloadRef;
use crate::{Error, Result, Services};

/// What one exported row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Flows,
    Steps,
    Observations,
}

impl Level {
    /// Parses `flows`, `steps` or `observations`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "flows" => Some(Level::Flows),
            "steps" => Some(Level::Steps),
            "observations" => Some(Level::Observations),
            _ => None,
        }
    }
}

/// One exported row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Row {
    /// A flow as the list shows it.
    Flow(FlowSummary),
    /// A step (without its observations) and its flow's id.
    Step {
        flow_id: Uuid,
        #[serde(flatten)]
        step: StepSummary,
    },
    /// An observation with its flow's id and its step's seq and name.
    Observation {
        flow_id: Uuid,
        seq: u32,
        step: String,
        #[serde(flatten)]
        observation: Observation,
    },
}

/// Flows read per page of the export.
const PAGE: u32 = 200;

impl Services {
    /// Sends every row of `level` for the flows `filters` select (newest first, steps in
    /// order, observations as stored) to `rows`, and how many flows there were. Stops early,
    /// without an error, when the receiver is gone. `filters.limit` and `cursor` are the
    /// export's own. Errors: storage, a payload failing its checksum.
    pub async fn export(
        &self,
        team_id: i64,
        mut filters: FlowFilters,
        level: Level,
        rows: mpsc::Sender<Row>,
    ) -> Result<u64> {
        filters.limit = PAGE;
        filters.cursor = None;
        let mut flows = 0;
        loop {
            let page = self.metadata.list_flows(team_id, &filters).await?;
            // A page's steps in one statement, not one per flow.
            let mut steps = match level {
                Level::Flows => Default::default(),
                Level::Steps | Level::Observations => {
                    let ids: Vec<Uuid> = page.flows.iter().map(|f| f.id).collect();
                    self.metadata.flows_steps(team_id, &ids).await?
                }
            };
            for summary in page.flows {
                flows += 1;
                let flow_steps = steps.remove(&summary.id).unwrap_or_default();
                if !self.export_flow(summary, flow_steps, level, &rows).await? {
                    return Ok(flows);
                }
            }
            match page
                .next_cursor
                .as_deref()
                .and_then(flowtrail_types::FlowCursor::decode)
            {
                Some(cursor) => filters.cursor = Some(cursor),
                None => return Ok(flows),
            }
        }
    }

    /// The rows of one flow (`steps`: its steps as stored, in seq order; none for a flow
    /// deleted meanwhile); `false` once the receiver is gone.
    async fn export_flow(
        &self,
        summary: FlowSummary,
        steps: Vec<(StepSummary, Option<PayloadRef>)>,
        level: Level,
        rows: &mpsc::Sender<Row>,
    ) -> Result<bool> {
        let flow_id = summary.id;
        match level {
            Level::Flows => Ok(rows.send(Row::Flow(summary)).await.is_ok()),
            Level::Steps => {
                for (step, _) in steps {
                    if rows.send(Row::Step { flow_id, step }).await.is_err() {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Level::Observations => {
                for (step, reference) in steps {
                    let Some(reference) = reference else {
                        continue;
                    };
                    let json = self.payloads.get_json(&reference).await?;
                    let observations: Vec<Observation> =
                        serde_json::from_slice(&json).map_err(|e| Error::Malformed {
                            message: format!("stored observations do not read back: {e}"),
                        })?;
                    for observation in observations {
                        let row = Row::Observation {
                            flow_id,
                            seq: step.seq,
                            step: step.name.clone(),
                            observation,
                        };
                        if rows.send(row).await.is_err() {
                            return Ok(false);
                        }
                    }
                }
                Ok(true)
            }
        }
    }
}
