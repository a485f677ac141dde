//! A candidate's journey through one flow: per step, observed (with verdict, score,
//! reasons), absent (the step kept every candidate) or unknown (it kept a sample).

use std::collections::BTreeMap;

use flowtrail_types::{
    CandidateJourney, Capture, EliminationCut, JourneyElimination, JourneyStep, Observation,
    Presence, StepSummary, Verdict,
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
            cut: flow
                .steps
                .iter()
                .find(|step| step.seq == s.seq)
                .and_then(|step| {
                    let stored = observations.get(&s.seq)?;
                    let candidate = stored.iter().find(|o| o.candidate_id == candidate_id)?;
                    Some(cut(step, stored, candidate))
                }),
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

/// How far `candidate`, eliminated at `step`, was from the cut, among the step's `stored`
/// observations ("why not this candidate?").
pub fn cut(step: &StepSummary, stored: &[Observation], candidate: &Observation) -> EliminationCut {
    let kept: Vec<&Observation> = stored
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Kept | Verdict::Selected))
        .collect();
    let lowest_kept_score = kept.iter().filter_map(|o| o.score).min_by(f64::total_cmp);
    let scores: Vec<f64> = stored.iter().filter_map(|o| o.score).collect();
    let position = candidate.score.map(|own| {
        1 + scores
            .iter()
            .filter(|other| other.total_cmp(&own).is_gt())
            .count() as u64
    });
    // The kept candidate nearest in score (the first kept one when nobody has a score).
    let nearest_kept = match candidate.score {
        Some(own) => kept
            .iter()
            .filter(|o| o.score.is_some())
            .min_by(|a, b| {
                let distance = |o: &&&Observation| (o.score.unwrap_or(own) - own).abs();
                distance(a).total_cmp(&distance(b))
            })
            .or(kept.first()),
        None => kept.first(),
    }
    .map(|o| (*o).clone());
    EliminationCut {
        score: candidate.score,
        lowest_kept_score,
        score_gap: candidate
            .score
            .zip(lowest_kept_score)
            .map(|(own, low)| score_difference(low, own)),
        position,
        ranked: scores.len() as u64,
        kept: step.candidates_out,
        nearest_kept,
        exact: step.capture == Capture::Full,
    }
}

/// Whether some step observed the candidate.
pub fn observed_anywhere(journey: &CandidateJourney) -> bool {
    journey
        .steps
        .iter()
        .any(|s| s.presence == Presence::Observed)
}

/// `a − b` for two scores as sent in decimal, rounded to 12 significant digits of the larger
/// score: the binary difference of `0.7` and `0.48` is `0.21999999999999997`, which no one
/// sent, while the error of a subtraction is below the larger operand's last digit (about
/// 16 significant digits), so the rounding drops only that error — and keeps a difference of
/// tiny scores (`4e-13 − 1e-13` is `3e-13`, not 0).
fn score_difference(a: f64, b: f64) -> f64 {
    let difference = a - b;
    let magnitude = a.abs().max(b.abs());
    if difference == 0.0 || !magnitude.is_normal() {
        return difference;
    }
    let places = 12 - magnitude.log10().floor() as i32;
    let factor = 10f64.powi(places.clamp(-300, 300));
    let rounded = (difference * factor).round() / factor;
    if rounded.is_finite() {
        rounded
    } else {
        difference
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::StepKind;

    fn observation(id: &str, verdict: Verdict, score: Option<f64>) -> Observation {
        serde_json::from_value(serde_json::json!({
            "candidate_id": id, "verdict": verdict.as_str(), "score": score,
        }))
        .unwrap()
    }

    fn step(capture: Capture, kept: u64) -> StepSummary {
        let mut step: StepSummary = serde_json::from_value(serde_json::json!({
            "seq": 3, "name": "judge", "kind": StepKind::Judge.as_str(), "status": "succeeded",
            "input": null, "output": null, "reasoning": null, "candidates_in": 5,
            "candidates_out": kept, "reasons": {}, "capture": capture.as_str(),
            "observation_count": 5,
        }))
        .unwrap();
        step.capture = capture;
        step
    }

    #[test]
    fn a_rejected_candidate_is_measured_against_the_lowest_kept_and_its_nearest() {
        let stored = vec![
            observation("best", Verdict::Kept, Some(0.9)),
            observation("cut", Verdict::Kept, Some(0.55)),
            observation("case", Verdict::Rejected, Some(0.41)),
            observation("tie", Verdict::Rejected, Some(0.41)),
            observation("worst", Verdict::Rejected, Some(0.1)),
        ];
        let cut = cut(&step(Capture::Full, 2), &stored, &stored[2]);
        assert_eq!(cut.lowest_kept_score, Some(0.55));
        // 0.55 − 0.41 is 0.14000000000000007 in binary: the gap reads as sent, 0.14.
        assert_eq!(cut.score_gap, Some(0.14));
        assert_eq!(score_difference(0.7, 0.48), 0.22);
        assert_eq!(score_difference(4e-13, 1e-13), 3e-13);
        assert_eq!(score_difference(1_000_000.7, 1_000_000.48), 0.22);
        assert_eq!(score_difference(0.5, 0.5), 0.0);
        assert!(score_difference(1e-300, -1e-300) > 0.0);
        assert_eq!((cut.position, cut.ranked, cut.kept), (Some(3), 5, Some(2)));
        assert_eq!(cut.nearest_kept.unwrap().candidate_id, "cut");
        assert!(cut.exact);
        // A sampled step says so; without scores there is no place, but still a neighbour.
        let unscored = vec![
            observation("a", Verdict::Selected, None),
            observation("b", Verdict::Rejected, None),
        ];
        let cut = super::cut(&step(Capture::Sampled, 1), &unscored, &unscored[1]);
        assert_eq!(
            (cut.position, cut.score_gap, cut.exact),
            (None, None, false)
        );
        assert_eq!(cut.nearest_kept.unwrap().candidate_id, "a");
    }
}
