//! Pipeline insights (the `/pipelines` pages): each pipeline at a glance, and one pipeline's
//! funnel, reason mix over time and elimination shares over a range beside another range.
//!
//! Flow counts come from the flows table and reason counts from the per-step histograms
//! (exact); medians and share distributions from the newest [`FUNNEL_FLOW_CAP`] flows of a
//! range per pipeline, marked `capped` exactly when the range held more.

use std::collections::{BTreeMap, HashMap};

use flowtrail_types::insights::{
    DayFlows, OVERVIEW_DAYS, PipelineInsight, PipelineSummary, PipelinesOverview, RangeInsight,
    ReasonMixBucket, SHARE_BINS, ShareDistribution, StepReasonMix, StepShift,
};
use flowtrail_types::{Funnel, StatsBucket};
use time::OffsetDateTime;

use super::stats::{FUNNEL_FLOW_CAP, FunnelRow, StatsQuery, funnels};
use crate::millis::{bound_ms, from_ms, to_ms, utc};
use crate::{Result, Services};

const DAY_MS: i64 = 86_400_000;

/// Every pipeline of the team with its flows per day over the last [`OVERVIEW_DAYS`] UTC days
/// (today so far included), its flows and failures of the last 7 days, its median funnel of
/// those 7 days, and the step whose median elimination share moved most in the 24 hours
/// before `now` against the 7 days before them.
///
/// Errors: storage.
pub async fn overview(
    services: &Services,
    team_id: i64,
    now: OffsetDateTime,
) -> Result<PipelinesOverview> {
    let now_ms = to_ms(now);
    let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let first_day = today - (i64::from(OVERVIEW_DAYS) - 1) * DAY_MS;
    let range = |since_ms: i64, until_ms: i64| StatsQuery {
        pipeline: None,
        step: None,
        since: from_ms(since_ms),
        until: from_ms(until_ms),
        bucket_ms: DAY_MS,
        tag: None,
    };
    let (week, recent, baseline) = (
        range(now_ms - 7 * DAY_MS, now_ms),
        range(now_ms - DAY_MS, now_ms),
        range(now_ms - 8 * DAY_MS, now_ms - DAY_MS),
    );
    let meta = &services.metadata;
    let (names, per_day, week_counts, week_rows, recent_rows, baseline_rows) = futures::try_join!(
        meta.pipelines(team_id),
        meta.flow_counts_by_day(team_id, first_day, today + DAY_MS),
        meta.flow_counts_by_day(team_id, now_ms - 7 * DAY_MS, now_ms),
        meta.funnel_rows(team_id, &week, FUNNEL_FLOW_CAP),
        meta.funnel_rows(team_id, &recent, FUNNEL_FLOW_CAP),
        meta.funnel_rows(team_id, &baseline, FUNNEL_FLOW_CAP),
    )?;
    let mut days: HashMap<(String, i64), (u64, u64)> = HashMap::new();
    for (pipeline, day, flows, failed) in per_day {
        let entry = days.entry((pipeline, day)).or_default();
        entry.0 += flows;
        entry.1 += failed;
    }
    let mut weeks: HashMap<String, (u64, u64)> = HashMap::new();
    for (pipeline, _, flows, failed) in week_counts {
        let entry = weeks.entry(pipeline).or_default();
        entry.0 += flows;
        entry.1 += failed;
    }
    let by_name = |funnels: Vec<Funnel>| -> HashMap<String, Funnel> {
        funnels
            .into_iter()
            .map(|f| (f.pipeline.clone(), f))
            .collect()
    };
    let mut week_funnels = by_name(funnels(week_rows));
    let (recent, baseline) = (
        by_name(funnels(recent_rows)),
        by_name(funnels(baseline_rows)),
    );
    let mut names: Vec<String> = names.into_iter().map(|(_, name)| name).collect();
    names.sort();
    names.dedup();
    let pipelines = names
        .into_iter()
        .map(|pipeline| {
            let days = (0..i64::from(OVERVIEW_DAYS))
                .map(|i| {
                    let start = first_day + i * DAY_MS;
                    let (flows, failed) = days
                        .get(&(pipeline.clone(), start))
                        .copied()
                        .unwrap_or_default();
                    DayFlows {
                        day: date(start),
                        flows,
                        failed,
                    }
                })
                .collect();
            let (flows_7d, failed_7d) = weeks.get(&pipeline).copied().unwrap_or_default();
            let mut funnel = week_funnels.remove(&pipeline);
            if let Some(funnel) = &mut funnel {
                funnel.capped = flows_7d > funnel.flows;
            }
            let mover = mover(recent.get(&pipeline), baseline.get(&pipeline));
            PipelineSummary {
                pipeline,
                days,
                flows_7d,
                failed_7d,
                funnel,
                mover,
            }
        })
        .collect();
    Ok(PipelinesOverview {
        now: utc(now),
        pipelines,
    })
}

/// The step of both funnels whose median elimination share changed most (the first such
/// step in the recent funnel's order on a tie); `None` when no step ran in both.
pub fn mover(recent: Option<&Funnel>, baseline: Option<&Funnel>) -> Option<StepShift> {
    let (recent, baseline) = (recent?, baseline?);
    let mut best: Option<StepShift> = None;
    // Only steps with a share on both sides (a step whose runs all took no candidates in
    // has none): a missing share is not a move from or to 0 %.
    for step in recent.steps.iter().filter(|s| s.runs > 0) {
        let Some(recent_share) = step.median_eliminated_share else {
            continue;
        };
        let Some((before, baseline_share)) = baseline
            .steps
            .iter()
            .filter(|b| b.name == step.name && b.runs > 0)
            .find_map(|b| Some((b, b.median_eliminated_share?)))
        else {
            continue;
        };
        let shift = StepShift {
            step: step.name.clone(),
            recent: recent_share,
            recent_runs: step.runs,
            baseline: baseline_share,
            baseline_runs: before.runs,
        };
        if best
            .as_ref()
            .is_none_or(|b| shift.change().abs() > b.change().abs())
        {
            best = Some(shift);
        }
    }
    best
}

/// One side of `/pipelines/{name}`: the flows that started in `[since, until)`, with `tag`
/// `(key, value)` when given.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub tag: Option<(String, String)>,
}

/// What `/pipelines/{name}` asks: a pipeline's side, bucketed by `bucket`, and optionally
/// beside a second side (another range, another tag value, or both).
#[derive(Debug, Clone, PartialEq)]
pub struct InsightQuery {
    pub pipeline: String,
    pub range: Side,
    pub versus: Option<Side>,
    pub bucket: StatsBucket,
}

/// One pipeline's insight; `None` when the team has no pipeline of that name.
///
/// Errors: storage.
pub async fn pipeline(
    services: &Services,
    team_id: i64,
    query: &InsightQuery,
) -> Result<Option<PipelineInsight>> {
    let names = services.metadata.pipelines(team_id).await?;
    if !names.iter().any(|(_, name)| *name == query.pipeline) {
        return Ok(None);
    }
    let first = range_insight(
        services,
        team_id,
        &query.pipeline,
        &query.range,
        query.bucket,
    );
    let versus = async {
        match &query.versus {
            Some(side) => range_insight(services, team_id, &query.pipeline, side, query.bucket)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (range, versus) = futures::try_join!(first, versus)?;
    Ok(Some(PipelineInsight {
        pipeline: query.pipeline.clone(),
        bucket: query.bucket,
        range,
        versus,
    }))
}

async fn range_insight(
    services: &Services,
    team_id: i64,
    pipeline: &str,
    side: &Side,
    bucket: StatsBucket,
) -> Result<RangeInsight> {
    let Side { since, until, tag } = side.clone();
    let query = StatsQuery {
        pipeline: Some(pipeline.to_string()),
        step: None,
        since,
        until,
        bucket_ms: bucket.millis(),
        tag: tag.clone(),
    };
    let meta = &services.metadata;
    let (reasons, rows, (flows, failed)) = futures::try_join!(
        meta.reason_counts(team_id, &query),
        meta.funnel_rows(team_id, &query, FUNNEL_FLOW_CAP),
        meta.flow_counts(
            team_id,
            pipeline,
            bound_ms(since),
            bound_ms(until),
            tag.as_ref()
        ),
    )?;
    let shares = share_distributions(&rows);
    let mut funnel = funnels(rows).into_iter().find(|f| f.pipeline == pipeline);
    if let Some(funnel) = &mut funnel {
        funnel.capped = flows > funnel.flows;
    }
    let capped = funnel.as_ref().is_some_and(|f| f.capped);
    // step -> code -> bucket start -> count
    let mut mix: BTreeMap<String, BTreeMap<String, BTreeMap<i64, u128>>> = BTreeMap::new();
    for row in reasons.into_iter().filter(|r| r.pipeline == pipeline) {
        *mix.entry(row.step)
            .or_default()
            .entry(row.code)
            .or_default()
            .entry(row.bucket_ms)
            .or_default() += row.count;
    }
    let mut order: Vec<String> = funnel
        .iter()
        .flat_map(|f| f.steps.iter().map(|s| s.name.clone()))
        .collect();
    for step in mix.keys().chain(shares.keys()) {
        if !order.contains(step) {
            order.push(step.clone());
        }
    }
    let steps = order
        .into_iter()
        .map(|step| {
            let codes = mix.remove(&step).unwrap_or_default();
            let (bins, counted) = shares.get(&step).cloned().unwrap_or_default();
            reason_mix(step, codes, bins, counted, capped)
        })
        .collect();
    Ok(RangeInsight {
        since: utc(since),
        until: utc(until),
        tag,
        flows,
        failed,
        funnel,
        steps,
    })
}

/// One step's mix from its counts per code and bucket.
fn reason_mix(
    step: String,
    codes: BTreeMap<String, BTreeMap<i64, u128>>,
    bins: Vec<u64>,
    counted: u64,
    capped: bool,
) -> StepReasonMix {
    let mut totals: Vec<(String, u128)> = codes
        .iter()
        .map(|(code, buckets)| (code.clone(), buckets.values().sum()))
        .collect();
    totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut starts: BTreeMap<i64, Vec<u128>> = BTreeMap::new();
    for (i, (code, _)) in totals.iter().enumerate() {
        for (start, count) in &codes[code] {
            starts
                .entry(*start)
                .or_insert_with(|| vec![0; totals.len()])[i] += count;
        }
    }
    StepReasonMix {
        step,
        codes: totals.iter().map(|(code, _)| code.clone()).collect(),
        totals: totals.iter().map(|(_, total)| *total).collect(),
        buckets: starts
            .into_iter()
            .map(|(start, counts)| ReasonMixBucket {
                start: from_ms(start),
                counts,
            })
            .collect(),
        shares: ShareDistribution {
            bins: if bins.is_empty() {
                vec![0; SHARE_BINS]
            } else {
                bins
            },
            flows: counted,
            capped,
        },
    }
}

/// Per step: flows per elimination-share bin, and flows counted (those whose step took
/// candidates in: [`FunnelRow::eliminated_share`]).
fn share_distributions(rows: &[FunnelRow]) -> HashMap<String, (Vec<u64>, u64)> {
    let mut out: HashMap<String, (Vec<u64>, u64)> = HashMap::new();
    for row in rows {
        let Some(share) = row.eliminated_share() else {
            continue;
        };
        let (bins, counted) = out
            .entry(row.step.clone())
            .or_insert_with(|| (vec![0; SHARE_BINS], 0));
        bins[ShareDistribution::bin(share)] += 1;
        *counted += 1;
    }
    out
}

/// `YYYY-MM-DD` of a Unix millisecond (UTC).
fn date(ms: i64) -> String {
    let d = from_ms(ms).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtrail_types::{FunnelStep, StepKind};

    fn funnel(steps: &[(&str, u64, f64)]) -> Funnel {
        Funnel {
            pipeline: "p".into(),
            flows: 10,
            capped: false,
            steps: steps
                .iter()
                .map(|(name, runs, share)| FunnelStep {
                    name: (*name).into(),
                    kind: StepKind::Filter,
                    runs: *runs,
                    median_in: 10.0,
                    median_out: 10.0 * (1.0 - share),
                    median_eliminated_share: Some(*share),
                })
                .collect(),
        }
    }

    #[test]
    fn the_mover_is_the_step_whose_share_moved_most_in_either_direction() {
        let recent = funnel(&[("a", 5, 0.2), ("b", 5, 0.1), ("c", 5, 0.9)]);
        let baseline = funnel(&[("a", 9, 0.25), ("b", 9, 0.6), ("d", 9, 0.0)]);
        let m = mover(Some(&recent), Some(&baseline)).unwrap();
        assert_eq!(m.step, "b");
        assert!((m.change() + 0.5).abs() < 1e-12);
        assert_eq!((m.recent_runs, m.baseline_runs), (5, 9));
        // A step that did not run in the baseline cannot have moved.
        let none = funnel(&[("a", 0, 0.2)]);
        assert_eq!(mover(Some(&recent), Some(&none)), None);
        assert_eq!(mover(None, Some(&baseline)), None);
    }

    #[test]
    fn a_reason_mix_orders_codes_by_total_and_aligns_every_bucket() {
        let mut codes: BTreeMap<String, BTreeMap<i64, u128>> = BTreeMap::new();
        codes.insert("a".into(), BTreeMap::from([(0, 1), (3_600_000, 1)]));
        codes.insert("b".into(), BTreeMap::from([(3_600_000, 5)]));
        let mix = reason_mix("s".into(), codes, Vec::new(), 0, false);
        assert_eq!(mix.codes, ["b", "a"]);
        assert_eq!(mix.totals, [5, 2]);
        assert_eq!(mix.buckets.len(), 2);
        assert_eq!(mix.buckets[0].counts, [0, 1]);
        assert_eq!(mix.buckets[1].counts, [5, 1]);
        assert_eq!(mix.shares.bins, vec![0; SHARE_BINS]);
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(DAY_MS * 365 - 1), "1970-12-31");
    }
}
