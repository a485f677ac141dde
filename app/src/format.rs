//! Pure formatting helpers of the dashboard (shared by server render and hydration, so both
//! print exactly the same text).

use flowtrail_types::{Elimination, StepSummary};
use serde_json::Value;
use time::OffsetDateTime;

/// `2026-11-21 10:00:02 UTC`.
pub fn timestamp(at: OffsetDateTime) -> String {
    // Every accepted time has a UTC form (flowtrail_types::rfc3339); never panic on one
    // that does not.
    let at = at.checked_to_offset(time::UtcOffset::UTC).unwrap_or(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `2026-11-21` (the UTC day).
pub fn date(at: OffsetDateTime) -> String {
    // Every accepted time has a UTC form (flowtrail_types::rfc3339); never panic on one
    // that does not.
    let at = at.checked_to_offset(time::UtcOffset::UTC).unwrap_or(at);
    format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

/// A size for people: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB` (powers of 1,024).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let decimals = if value < 10.0 { 1 } else { 0 };
    format!("{} {}", fixed(value, decimals), UNITS[unit])
}

/// A duration in whole seconds for people: `45 s`, `5 min`, `2 h 30 min`.
pub fn seconds(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ if (s % 3600) / 60 == 0 => format!("{} h", s / 3600),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A duration between two instants: `2.35 s`, `20 ms`, `3 min 4 s`.
pub fn duration(from: OffsetDateTime, to: Option<OffsetDateTime>) -> String {
    let Some(to) = to else { return "—".into() };
    let ms = (to - from).whole_milliseconds();
    if ms < 0 {
        "—".into()
    } else if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{} s", fixed(ms as f64 / 1000.0, 2))
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// `5,000`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `5,000 → 30` with the share eliminated, or what is known of it.
pub fn funnel(step: &StepSummary) -> String {
    match (step.candidates_in, step.candidates_out) {
        (Some(i), Some(o)) => match step.eliminated_ratio() {
            Some(r) if r > 0.0 => format!("{} → {} (−{})", count(i), count(o), percent(r)),
            _ => format!("{} → {}", count(i), count(o)),
        },
        (Some(i), None) => format!("{} in", count(i)),
        (None, Some(o)) => format!("{} out", count(o)),
        (None, None) => "—".into(),
    }
}

/// `99.4 %`, `12 %`.
pub fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p > 0.0 && p < 10.0 || p > 90.0 && p < 100.0 {
        format!("{} %", fixed(p, 1))
    } else {
        format!("{} %", fixed(p, 0))
    }
}

/// A score with three decimals, or a dash.
pub fn score(score: Option<f64>) -> String {
    score.map(|s| fixed(s, 3)).unwrap_or_else(|| "—".into())
}

/// A JSON value for a table cell: strings bare, the rest compact JSON.
pub fn value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// A JSON value shown in a `<pre>`: pretty, or a dash when empty.
pub fn pretty(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::Object(map) if map.is_empty() => "—".into(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// How deeply each step is nested (0 for a top-level step), by following `parent_seq` up to
/// [`MAX_SHOWN_DEPTH`]; a parent that is missing or a loop ends the chain.
pub fn depths(steps: &[StepSummary]) -> Vec<usize> {
    let parent: std::collections::HashMap<u32, Option<u32>> =
        steps.iter().map(|s| (s.seq, s.parent_seq)).collect();
    steps
        .iter()
        .map(|step| {
            let mut depth = 0;
            let mut at = step.parent_seq;
            while let Some(seq) = at
                && depth < MAX_SHOWN_DEPTH
                && seq != step.seq
            {
                let Some(next) = parent.get(&seq) else { break };
                depth += 1;
                at = *next;
            }
            depth
        })
        .collect()
}

/// Deepest nesting the step list indents.
pub const MAX_SHOWN_DEPTH: usize = 6;

/// Index of the step with the largest drop: where "why this output" usually starts. The one
/// definition of "largest drop" ([`Elimination::is_larger_drop_than`]: the larger share, then
/// the larger count, then the earlier step), the same as the flows list's; `None` when no
/// step eliminated anything.
pub fn largest_drop(steps: &[StepSummary]) -> Option<usize> {
    let largest = Elimination::largest_of_summaries(steps)?;
    steps.iter().position(|s| s.seq == largest.seq)
}

/// `price_out_of_range: 9.99 is below…; rating_below_threshold`.
pub fn reasons(reasons: &[flowtrail_types::Reason]) -> String {
    reasons
        .iter()
        .map(|r| match &r.text {
            Some(text) => format!("{}: {text}", r.code),
            None => r.code.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `12 ms`, `1.2 s`, `0.4 ms`.
pub fn millis(ms: f64) -> String {
    if ms >= 1_000.0 {
        format!("{} s", fixed(ms / 1_000.0, 1))
    } else if ms >= 10.0 {
        format!("{} ms", fixed(ms, 0))
    } else {
        format!("{} ms", fixed(ms, 1))
    }
}

/// `x` with `decimals` digits after the point, rounded half away from zero (`{:.N}` rounds
/// half to even on the binary value: 0.125 → "0.12"), and a dash for NaN or infinity.
pub fn fixed(x: f64, decimals: u32) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let scale = 10_u64.pow(decimals);
    let n = (x.abs() * scale as f64).round() as u64;
    let sign = if x < 0.0 && n > 0 { "-" } else { "" };
    let (whole, fraction) = (n / scale, n % scale);
    if decimals == 0 {
        format!("{sign}{whole}")
    } else {
        format!(
            "{sign}{whole}.{fraction:0width$}",
            width = decimals as usize
        )
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A URL query string (with or without its `?`) split into its pairs, each name and value
/// percent-decoded **once** (`+` a space) — bytes that are not UTF-8 replaced by U+FFFD, for
/// showing in a form only: what is parsed is the raw string, by
/// [`flowtrail_types::filters::decode_query`], which refuses them. (The router's own query
/// map decodes a value twice: `a%252Fb` would read as `a/b`.)
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    flowtrail_types::filters::decode_query_lossy(raw)
}

/// The first non-blank value of `name` among `pairs` ([`query_pairs`]).
pub fn first_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(n, v)| n == name && !v.trim().is_empty())
        .map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_decoded_once() {
        assert_eq!(
            query_pairs("?pipeline=a%252Fb&step=s+p%25ace%2F%C3%A9&tag=env:%2541&x&bad=%FF"),
            vec![
                ("pipeline".to_string(), "a%2Fb".to_string()),
                ("step".to_string(), "s p%ace/é".to_string()),
                ("tag".to_string(), "env:%41".to_string()),
                ("x".to_string(), String::new()),
                ("bad".to_string(), "\u{FFFD}".to_string()),
            ]
        );
        let pairs = query_pairs("q=&q=%20&q=b&q=c");
        assert_eq!(first_value(&pairs, "q").as_deref(), Some("b"));
        assert_eq!(first_value(&pairs, "none"), None);
        assert_eq!(encode("a%2Fb"), "a%252Fb");
    }
    use flowtrail_types::{Capture, StepKind, StepStatus};
    use std::collections::BTreeMap;

    fn step(seq: u32, i: Option<u64>, o: Option<u64>) -> StepSummary {
        StepSummary {
            seq,
            name: format!("s{seq}"),
            kind: StepKind::Filter,
            status: StepStatus::Succeeded,
            started_at: None,
            ended_at: None,
            input: Value::Null,
            output: Value::Null,
            reasoning: None,
            candidates_in: i,
            candidates_out: o,
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
    fn depths_follow_parents_and_stop_at_loops_and_missing_parents() {
        let mut steps: Vec<_> = (0..5).map(|seq| step(seq, None, None)).collect();
        steps[1].parent_seq = Some(0);
        steps[2].parent_seq = Some(1);
        steps[3].parent_seq = Some(9);
        steps[4].parent_seq = Some(4);
        assert_eq!(depths(&steps), [0, 1, 2, 0, 0]);
    }

    #[test]
    fn counts_and_funnels_read_like_people_write_them() {
        assert_eq!(count(5000), "5,000");
        assert_eq!(count(999), "999");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(
            funnel(&step(1, Some(5000), Some(30))),
            "5,000 → 30 (−99.4 %)"
        );
        assert_eq!(funnel(&step(1, None, None)), "—");
        assert_eq!(funnel(&step(1, Some(425), Some(425))), "425 → 425");
        // Steps that create candidates show their growth, never a negative elimination.
        assert_eq!(funnel(&step(1, Some(3), Some(5000))), "3 → 5,000");
        assert_eq!(funnel(&step(0, Some(0), Some(3))), "0 → 3");
        assert_eq!(percent(0.5), "50 %");
    }

    #[test]
    fn fixed_rounds_like_a_person() {
        assert_eq!(fixed(2.35, 2), "2.35");
        assert_eq!(fixed(0.0449, 1), "0.0");
        assert_eq!(fixed(99.95, 1), "100.0");
        assert_eq!(fixed(-1.26, 1), "-1.3");
        assert_eq!(fixed(-0.04, 1), "0.0");
        assert_eq!(fixed(12.5, 0), "13");
        assert_eq!(fixed(0.1234, 3), "0.123");
        assert_eq!(fixed(f64::NAN, 2), "—");
    }

    #[test]
    fn sizes_dates_and_seconds_read_like_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10 * 1024 * 1024), "10 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(date(OffsetDateTime::UNIX_EPOCH), "1970-01-01");
        assert_eq!(seconds(45), "45 s");
        assert_eq!(seconds(300), "5 min");
        assert_eq!(seconds(330), "5 min 30 s");
        assert_eq!(seconds(3600), "1 h");
        assert_eq!(seconds(9000), "2 h 30 min");
    }

    #[test]
    fn durations_pick_a_unit() {
        let t = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            duration(t, Some(t + time::Duration::milliseconds(20))),
            "20 ms"
        );
        assert_eq!(
            duration(t, Some(t + time::Duration::milliseconds(2350))),
            "2.35 s"
        );
        assert_eq!(duration(t, None), "—");
        assert_eq!(timestamp(t), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn the_largest_drop_is_found() {
        let steps = vec![
            step(0, Some(10), Some(10)),
            step(1, Some(5000), Some(30)),
            step(2, Some(30), Some(5)),
            step(3, None, None),
        ];
        assert_eq!(largest_drop(&steps), Some(1));
        assert_eq!(largest_drop(&steps[3..]), None);
        // A step that creates candidates or eliminates nothing is never the largest drop.
        assert_eq!(
            largest_drop(&[step(0, Some(3), Some(5000)), step(1, Some(7), Some(7))]),
            None
        );
        // The same share: the larger count; the same count too: the earlier step.
        assert_eq!(
            largest_drop(&[step(0, Some(10), Some(5)), step(1, Some(1000), Some(500))]),
            Some(1)
        );
        assert_eq!(
            largest_drop(&[step(4, Some(10), Some(5)), step(7, Some(10), Some(5))]),
            Some(0)
        );
    }

    #[test]
    fn the_largest_drop_is_the_larger_share_not_the_larger_count() {
        // 1,000 → 500 eliminates more candidates, 10 → 1 a larger share: the share wins.
        let steps = vec![step(1, Some(1000), Some(500)), step(2, Some(10), Some(1))];
        assert_eq!(largest_drop(&steps), Some(1));
        // The answer is an index into `steps`, not a `seq`.
        let steps = vec![step(5, Some(1000), Some(500)), step(9, Some(10), Some(1))];
        assert_eq!(largest_drop(&steps), Some(1));
    }
}
