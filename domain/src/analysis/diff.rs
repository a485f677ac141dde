//! The difference between two flows: steps matched by name then `seq`, counts, reasons,
//! candidates added and removed, verdicts changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flowtrail_types::{
    Capture, FlowDiff, Observation, Pair, StepDiff, StepSummary, ValueChange, VerdictChange,
};
use serde_json::Value;
use uuid::Uuid;

use super::journey::observations_by_step;
use crate::{Result, Services};

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
            parent_seq: None,
            span_id: None,
            parent_span_id: None,
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
}
