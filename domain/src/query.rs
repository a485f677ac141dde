//! Questions that combine stored rows with observation payloads: a candidate's journey
//! through a flow, the difference between two flows, and reason statistics. Only
//! [`crate::store::MetadataStore`] and the payload store are used, so every engine answers
//! the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flowtrail_types::{
    CandidateJourney, Capture, Elimination, FlowDiff, Funnel, FunnelStep, JourneyElimination,
    JourneyStep, Observation, Pair, Presence, ReasonBucket, ReasonCount, ReasonStats, StatsBucket,
    StepDiff, StepSummary, ValueChange, Verdict, VerdictChange,
};
use futures::future::try_join_all;
use serde_json::Value;
use uuid::Uuid;

use crate::millis::from_ms;
use crate::store::StatsQuery;
use crate::{Error, Result, Services};

/// Funnel medians come from at most this many of the newest flows per pipeline in the range.
pub const FUNNEL_FLOW_CAP: u32 = 1_000;

/// The observations of every step of a flow that stored some, by `seq`.
async fn observations_by_step(
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

/// Pairs the steps of two flows: by name (the k-th step of a name with the k-th of the same
/// name), then the rest by `seq`. Ordered by `a`'s steps, then `b`'s unmatched ones.
fn match_steps<'a>(
    a: &'a [StepSummary],
    b: &'a [StepSummary],
) -> Vec<(Option<&'a StepSummary>, Option<&'a StepSummary>)> {
    let mut taken = vec![false; b.len()];
    let mut pairs: Vec<(Option<&StepSummary>, Option<usize>)> = Vec::with_capacity(a.len());
    for step in a {
        let found = (0..b.len()).find(|&j| !taken[j] && b[j].name == step.name);
        if let Some(j) = found {
            taken[j] = true;
        }
        pairs.push((Some(step), found));
    }
    for pair in pairs.iter_mut().filter(|(_, found)| found.is_none()) {
        let seq = pair.0.map(|s| s.seq);
        if let Some(j) = (0..b.len()).find(|&j| !taken[j] && Some(b[j].seq) == seq) {
            taken[j] = true;
            pair.1 = Some(j);
        }
    }
    let mut out: Vec<_> = pairs
        .into_iter()
        .map(|(s, j)| (s, j.map(|j| &b[j])))
        .collect();
    out.extend(
        b.iter()
            .zip(taken)
            .filter(|(_, taken)| !taken)
            .map(|(step, _)| (None, Some(step))),
    );
    out
}

fn change(a: &Value, b: &Value) -> Option<ValueChange> {
    (a != b).then(|| ValueChange {
        a: a.clone(),
        b: b.clone(),
    })
}

/// What changed between flow `a` and flow `b`; `None` when either does not exist.
pub async fn diff(
    services: &Services,
    team_id: i64,
    a_id: Uuid,
    b_id: Uuid,
) -> Result<Option<FlowDiff>> {
    let (a, b) = futures::try_join!(
        services.metadata.get_flow(team_id, a_id),
        services.metadata.get_flow(team_id, b_id)
    )?;
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(None);
    };
    let (obs_a, obs_b) = futures::try_join!(
        observations_by_step(services, team_id, a_id, &a.steps),
        observations_by_step(services, team_id, b_id, &b.steps)
    )?;
    let empty = Vec::new();
    let steps = match_steps(&a.steps, &b.steps)
        .into_iter()
        .map(|(sa, sb)| {
            let list_a = sa.and_then(|s| obs_a.get(&s.seq)).unwrap_or(&empty);
            let list_b = sb.and_then(|s| obs_b.get(&s.seq)).unwrap_or(&empty);
            step_diff(sa, sb, list_a, list_b)
        })
        .collect();
    Ok(Some(FlowDiff {
        input: change(&a.input, &b.input),
        output: change(&a.output, &b.output),
        a: a.summary,
        b: b.summary,
        steps,
    }))
}

fn step_diff(
    a: Option<&StepSummary>,
    b: Option<&StepSummary>,
    list_a: &[Observation],
    list_b: &[Observation],
) -> StepDiff {
    let either = a.or(b).expect("a step pair holds at least one step");
    let by_id = |list: &[Observation]| -> HashMap<String, Observation> {
        list.iter()
            .map(|o| (o.candidate_id.clone(), o.clone()))
            .collect()
    };
    let (map_a, map_b) = (by_id(list_a), by_id(list_b));
    let both = a.is_some() && b.is_some();
    let mut added: Vec<String> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let mut verdict_changed = Vec::new();
    if both {
        added = map_b
            .keys()
            .filter(|id| !map_a.contains_key(*id))
            .cloned()
            .collect();
        removed = map_a
            .keys()
            .filter(|id| !map_b.contains_key(*id))
            .cloned()
            .collect();
        let mut changed: Vec<_> = map_a
            .iter()
            .filter_map(|(id, oa)| {
                let ob = map_b.get(id)?;
                (oa.verdict != ob.verdict).then(|| VerdictChange {
                    candidate_id: id.clone(),
                    a: oa.verdict,
                    b: ob.verdict,
                    score_a: oa.score,
                    score_b: ob.score,
                    reasons_a: oa.reasons.clone(),
                    reasons_b: ob.reasons.clone(),
                })
            })
            .collect();
        changed.sort_by(|x, y| x.candidate_id.cmp(&y.candidate_id));
        verdict_changed = changed;
        added.sort();
        removed.sort();
    }
    let reasons_a = a.map(|s| &s.reasons);
    let reasons_b = b.map(|s| &s.reasons);
    let codes: BTreeSet<&String> = reasons_a
        .into_iter()
        .chain(reasons_b)
        .flat_map(|r| r.keys())
        .collect();
    let count = |r: Option<&BTreeMap<String, u64>>, code: &str| {
        r.and_then(|r| r.get(code)).copied().unwrap_or(0)
    };
    let reasons = codes
        .into_iter()
        .filter_map(|code| {
            let pair = Pair {
                a: count(reasons_a, code),
                b: count(reasons_b, code),
            };
            (pair.a != pair.b).then(|| (code.clone(), pair))
        })
        .collect();
    let reasoning_a = a.and_then(|s| s.reasoning.clone());
    let reasoning_b = b.and_then(|s| s.reasoning.clone());
    StepDiff {
        name: either.name.clone(),
        kind: either.kind,
        seq_a: a.map(|s| s.seq),
        seq_b: b.map(|s| s.seq),
        candidates_in: Pair {
            a: a.and_then(|s| s.candidates_in),
            b: b.and_then(|s| s.candidates_in),
        },
        candidates_out: Pair {
            a: a.and_then(|s| s.candidates_out),
            b: b.and_then(|s| s.candidates_out),
        },
        reasons,
        added,
        removed,
        verdict_changed,
        exact: both
            && a.is_some_and(|s| s.capture == Capture::Full)
            && b.is_some_and(|s| s.capture == Capture::Full),
        input: a.zip(b).and_then(|(a, b)| change(&a.input, &b.input)),
        output: a.zip(b).and_then(|(a, b)| change(&a.output, &b.output)),
        reasoning: (both && reasoning_a != reasoning_b).then_some(Pair {
            a: reasoning_a,
            b: reasoning_b,
        }),
    }
}

fn median(values: &mut [u64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid] as f64
    } else {
        (values[mid - 1] as f64 + values[mid] as f64) / 2.0
    }
}

fn median_f64(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Reason histograms per pipeline / step / bucket, and the funnel of each pipeline.
pub async fn reason_stats(
    services: &Services,
    team_id: i64,
    query: &StatsQuery,
    bucket: StatsBucket,
) -> Result<ReasonStats> {
    let (rows, funnel_rows) = futures::try_join!(
        services.metadata.reason_counts(team_id, query),
        services
            .metadata
            .funnel_rows(team_id, query, FUNNEL_FLOW_CAP)
    )?;
    let mut totals: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for row in &rows {
        *totals
            .entry((row.pipeline.clone(), row.step.clone(), row.code.clone()))
            .or_default() += row.count;
    }
    let mut totals: Vec<ReasonCount> = totals
        .into_iter()
        .map(|((pipeline, step, code), count)| ReasonCount {
            pipeline,
            step,
            code,
            count,
        })
        .collect();
    totals.sort_by_key(|t| std::cmp::Reverse(t.count));
    let buckets = rows
        .into_iter()
        .map(|row| ReasonBucket {
            start: from_ms(row.bucket_ms),
            pipeline: row.pipeline,
            step: row.step,
            code: row.code,
            count: row.count,
        })
        .collect();
    // pipeline -> step name -> (first seq seen, kind, ins, outs, shares); and flows per pipeline.
    type StepAcc = (u32, flowtrail_types::StepKind, Vec<u64>, Vec<u64>, Vec<f64>);
    let mut funnels: BTreeMap<String, (BTreeSet<String>, BTreeMap<String, StepAcc>)> =
        BTreeMap::new();
    for row in funnel_rows {
        let (flows, steps) = funnels.entry(row.pipeline.clone()).or_default();
        flows.insert(row.flow_id);
        let acc = steps
            .entry(row.step.clone())
            .or_insert_with(|| (row.seq, row.kind, Vec::new(), Vec::new(), Vec::new()));
        acc.0 = acc.0.min(row.seq);
        acc.2.push(row.candidates_in);
        acc.3.push(row.candidates_out);
        acc.4.push(
            Elimination::new(row.seq, "", row.kind, row.candidates_in, row.candidates_out).share,
        );
    }
    let funnels = funnels
        .into_iter()
        .map(|(pipeline, (flows, steps))| {
            let mut steps: Vec<_> = steps.into_iter().collect();
            steps.sort_by_key(|(name, acc)| (acc.0, name.clone()));
            Funnel {
                pipeline,
                flows: flows.len() as u64,
                capped: flows.len() as u64 >= u64::from(FUNNEL_FLOW_CAP),
                steps: steps
                    .into_iter()
                    .map(
                        |(name, (_, kind, mut ins, mut outs, mut shares))| FunnelStep {
                            name,
                            kind,
                            runs: ins.len() as u64,
                            median_in: median(&mut ins),
                            median_out: median(&mut outs),
                            median_eliminated_share: median_f64(&mut shares),
                        },
                    )
                    .collect(),
            }
        })
        .collect();
    Ok(ReasonStats {
        since: query.since,
        until: query.until,
        bucket,
        totals,
        buckets,
        funnels,
    })
}

/// Whether some step observed the candidate.
pub fn observed_anywhere(journey: &CandidateJourney) -> bool {
    journey
        .steps
        .iter()
        .any(|s| s.presence == Presence::Observed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::{StepKind, StepStatus};

    fn step(seq: u32, name: &str) -> StepSummary {
        StepSummary {
            seq,
            name: name.into(),
            kind: StepKind::Filter,
            status: StepStatus::Succeeded,
            started_at: None,
            ended_at: None,
            input: Value::Null,
            output: Value::Null,
            reasoning: None,
            candidates_in: None,
            candidates_out: None,
            reasons: BTreeMap::new(),
            capture: Capture::Full,
            observation_count: 0,
            boundaries: Vec::new(),
        }
    }

    #[test]
    fn steps_match_by_name_then_by_seq() {
        let a = [
            step(1, "gen"),
            step(2, "filter"),
            step(3, "old"),
            step(4, "rank"),
        ];
        let b = [
            step(1, "gen"),
            step(2, "rank"),
            step(3, "new"),
            step(5, "extra"),
        ];
        let pairs: Vec<_> = match_steps(&a, &b)
            .into_iter()
            .map(|(x, y)| (x.map(|s| s.name.as_str()), y.map(|s| s.name.as_str())))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (Some("gen"), Some("gen")),
                // "filter" has no namesake; seq 2 in b is taken by "rank", so it stays alone.
                (Some("filter"), None),
                (Some("old"), Some("new")),
                (Some("rank"), Some("rank")),
                (None, Some("extra")),
            ]
        );
    }

    #[test]
    fn repeated_names_pair_in_order() {
        let a = [step(1, "judge"), step(2, "judge")];
        let b = [step(1, "judge"), step(7, "judge"), step(9, "judge")];
        let pairs: Vec<_> = match_steps(&a, &b)
            .into_iter()
            .map(|(x, y)| (x.map(|s| s.seq), y.map(|s| s.seq)))
            .collect();
        assert_eq!(
            pairs,
            vec![(Some(1), Some(1)), (Some(2), Some(7)), (None, Some(9))]
        );
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [5, 1, 3]), 3.0);
        assert_eq!(median(&mut [4, 1, 3, 2]), 2.5);
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median_f64(&mut [0.9, 0.1]), 0.5);
    }
}
