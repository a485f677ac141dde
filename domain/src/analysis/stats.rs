//! Reason statistics and funnels: exact reason counts per pipeline, step and time bucket
//! (from the per-step histograms, never from samples), and each pipeline's median funnel.

use std::collections::{BTreeMap, BTreeSet};

use flowtrail_types::{
    Elimination, Funnel, FunnelStep, ReasonBucket, ReasonCount, ReasonStats, StatsBucket,
};

use crate::millis::from_ms;
use crate::{Result, Services};
use flowtrail_types::StepKind;
use time::OffsetDateTime;

/// Filters of `GET /api/v1/stats/reasons`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsQuery {
    pub pipeline: Option<String>,
    pub step: Option<String>,
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    /// Bucket width in milliseconds (a whole number of hours).
    pub bucket_ms: i64,
    /// Only flows with this tag (`key`, `value`). Reason counts then come from the steps
    /// of the range, not the hourly rollups (which have no tags): exact, and as slow as the
    /// range is large.
    pub tag: Option<(String, String)>,
}

/// One (bucket, pipeline, step, code) count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonRow {
    pub bucket_ms: i64,
    pub pipeline: String,
    pub step: String,
    pub code: String,
    /// Exact: the sum of up to 2^42 step counts of at most 2^53 each.
    pub count: u128,
}

/// One step of one flow, for the funnels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelRow {
    pub pipeline: String,
    pub flow_id: String,
    pub seq: u32,
    pub step: String,
    pub kind: StepKind,
    pub candidates_in: u64,
    pub candidates_out: u64,
}

impl FunnelRow {
    /// The share of its candidates the step eliminated (0–1), or `None` when it took none in
    /// (`0 → 0` eliminated nothing of nothing: it is left out of every median, distribution
    /// and alert metric of elimination shares rather than counted as 0 %).
    pub fn eliminated_share(&self) -> Option<f64> {
        (self.candidates_in > 0).then(|| {
            Elimination::new(
                self.seq,
                "",
                self.kind,
                self.candidates_in,
                self.candidates_out,
            )
            .share
        })
    }
}

/// Funnel medians come from at most this many of the newest flows per pipeline in the range.
pub const FUNNEL_FLOW_CAP: u32 = 1_000;

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
    let mut totals: BTreeMap<(String, String, String), u128> = BTreeMap::new();
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
    let funnels = funnels(funnel_rows);
    Ok(ReasonStats {
        since: crate::millis::utc(query.since),
        until: crate::millis::utc(query.until),
        bucket,
        totals,
        buckets,
        funnels,
    })
}

/// The median funnel of each pipeline from its [`FunnelRow`]s (of flows up to
/// [`FUNNEL_FLOW_CAP`] per pipeline), by pipeline name; steps in the order they first ran.
pub fn funnels(funnel_rows: Vec<FunnelRow>) -> Vec<Funnel> {
    // pipeline -> step name -> (first seq seen, kind, ins, outs, shares); and flows per pipeline.
    type StepAcc = (u32, flowtrail_types::StepKind, Vec<u64>, Vec<u64>, Vec<f64>);
    let mut funnels: BTreeMap<String, (BTreeSet<String>, BTreeMap<String, StepAcc>)> =
        BTreeMap::new();
    for row in funnel_rows {
        let share = row.eliminated_share();
        let (flows, steps) = funnels.entry(row.pipeline.clone()).or_default();
        flows.insert(row.flow_id);
        let acc = steps
            .entry(row.step.clone())
            .or_insert_with(|| (row.seq, row.kind, Vec::new(), Vec::new(), Vec::new()));
        acc.0 = acc.0.min(row.seq);
        acc.2.push(row.candidates_in);
        acc.3.push(row.candidates_out);
        if let Some(share) = share {
            acc.4.push(share);
        }
    }
    funnels
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
                            median_eliminated_share: (!shares.is_empty())
                                .then(|| median_f64(&mut shares)),
                        },
                    )
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_that_took_no_candidates_has_no_elimination_share() {
        let row = |flow: &str, candidates_in: u64, candidates_out: u64| FunnelRow {
            pipeline: "p".into(),
            flow_id: flow.into(),
            seq: 1,
            step: "s".into(),
            kind: StepKind::Filter,
            candidates_in,
            candidates_out,
        };
        assert_eq!(row("a", 0, 0).eliminated_share(), None);
        assert_eq!(row("a", 10, 5).eliminated_share(), Some(0.5));
        // 10 → 5 and 0 → 0: the median share is that of the one run that had candidates.
        let funnel = &funnels(vec![row("a", 10, 5), row("b", 0, 0)])[0];
        assert_eq!(funnel.steps[0].runs, 2);
        assert_eq!(funnel.steps[0].median_eliminated_share, Some(0.5));
        assert_eq!(funnel.steps[0].median_in, 5.0);
        // Only 0 → 0 runs: no share at all, not 0 %.
        let funnel = &funnels(vec![row("a", 0, 0), row("b", 0, 0)])[0];
        assert_eq!(funnel.steps[0].median_eliminated_share, None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [5, 1, 3]), 3.0);
        assert_eq!(median(&mut [4, 1, 3, 2]), 2.5);
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median_f64(&mut [0.9, 0.1]), 0.5);
    }
}
