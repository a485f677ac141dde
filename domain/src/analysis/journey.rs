//! A candidate's journey through one flow: per step, observed (with verdict, score,
//! reasons), absent (the step kept every candidate) or unknown (it kept a sample).

use std::collections::BTreeMap;

use flowtrail_types::{
    CandidateJourney, Capture, JourneyElimination, JourneyStep, Observation, Presence, StepSummary,
    Verdict,
};
use futures::future::try_join_all;
use uuid::Uuid;

use crate::{Error, Result, Services};

/// The observations of every step of a flow that stored some, by `seq`.
pub(super) async fn observations_by_step(
    services: &Services,
    team_id: i64,
    flow_id: Uuid,
    steps: &[StepSummary],
) -> Result<BTreeMap<u32, Vec<Observation>>> {
    let payloads = services.metadata.flow_payloads(team_id, flow_id).await?;
    let reads = steps
        .iter()
        .filter_map(|step| payloads.get(&step.seq).map(|p| (step.seq, p)))
        .map(|(seq, reference)| async move {
            let json = services.payloads.get_json(reference).await?;
            let observations: Vec<Observation> = serde_json::from_slice(&json)
                .map_err(|e| Error::Integrity(format!("stored observations: {e}")))?;
            Ok::<_, Error>((seq, observations))
        });
    Ok(try_join_all(reads).await?.into_iter().collect())
}

/// The candidate's verdict, score and reasons in every step of the flow; `None` when the
/// flow does not exist for this team.
pub async fn journey(
    services: &Services,
    team_id: i64,
    flow_id: Uuid,
    candidate_id: &str,
) -> Result<Option<CandidateJourney>> {
    let Some(flow) = services.metadata.get_flow(team_id, flow_id).await? else {
        return Ok(None);
    };
    let observations = observations_by_step(services, team_id, flow_id, &flow.steps).await?;
    let steps: Vec<JourneyStep> = flow
        .steps
        .iter()
        .map(|step| {
            let seen = observations
                .get(&step.seq)
                .and_then(|list| list.iter().find(|o| o.candidate_id == candidate_id));
            let presence = match (seen, step.capture) {
                (Some(_), _) => Presence::Observed,
                (None, Capture::Full) => Presence::Absent,
                (None, _) => Presence::Unknown,
            };
            JourneyStep {
                seq: step.seq,
                name: step.name.clone(),
                kind: step.kind,
                capture: step.capture,
                presence,
                verdict: seen.map(|o| o.verdict),
                score: seen.and_then(|o| o.score),
                reasons: seen.map(|o| o.reasons.clone()).unwrap_or_default(),
                attributes: seen.map(|o| o.attributes.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let eliminated_at = steps
        .iter()
        .find(|s| s.verdict == Some(Verdict::Rejected))
        .map(|s| JourneyElimination {
            seq: s.seq,
            step: s.name.clone(),
            reasons: s.reasons.clone(),
        });
    Ok(Some(CandidateJourney {
        flow_id,
        pipeline: flow.summary.pipeline,
        candidate_id: candidate_id.to_string(),
        final_verdict: steps.iter().rev().find_map(|s| s.verdict),
        eliminated_at,
        steps,
    }))
}

/// Whether some step observed the candidate.
pub fn observed_anywhere(journey: &CandidateJourney) -> bool {
    journey
        .steps
        .iter()
        .any(|s| s.presence == Presence::Observed)
}
