//! Server functions of the pipeline pages (`/pipelines`, `/pipelines/{name}`): any member of
//! the session's team may read them, as the flows list.

#[cfg(feature = "ssr")]
use flowtrail_types::StatsBucket;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::ssr;

/// The range `/pipelines/{name}` shows by default: the last 7 days.
pub const DEFAULT_RANGE_DAYS: i64 = 7;

/// Ranges up to this long are bucketed by hour unless `bucket` says otherwise.
pub const HOURLY_UP_TO_HOURS: i64 = 48;

/// Most buckets one range may be cut into (a year by day; 83 days by hour).
pub const MAX_BUCKETS: i64 = 2_000;

/// What `/pipelines/{name}` carries in its URL, as typed (parsed by [`pipeline_insight`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InsightParams {
    pub since: Option<String>,
    pub until: Option<String>,
    /// `hour` or `day`.
    pub bucket: Option<String>,
    /// `key:value`: only flows with this tag (`version:v42`).
    pub tag: Option<String>,
    /// The side compared with: another range (`vs_until` defaults to `vs_since` plus the
    /// first range's length), another tag value over the same range (`vs_tag`), or both.
    pub vs_since: Option<String>,
    pub vs_until: Option<String>,
    pub vs_tag: Option<String>,
    /// The page address's whole query string as sent, when read from an address: then it
    /// alone is read — decoded as the flows list decodes its own
    /// ([`flowtrail_types::filters::decode_query`]), a parameter given twice refused rather
    /// than one picked, as the flows list refuses it.
    pub query: Option<String>,
}

impl InsightParams {
    /// The parameters the page reads, in URL order.
    pub const NAMES: [&'static str; 7] = [
        "since", "until", "bucket", "tag", "vs_since", "vs_until", "vs_tag",
    ];

    /// The parameters of the page address's query string `raw` (with or without its `?`):
    /// the first non-blank value of each name, decoded once
    /// ([`crate::format::query_pairs`]), and `raw` itself as [`InsightParams::query`].
    pub fn from_query(raw: &str) -> InsightParams {
        let raw = raw.strip_prefix('?').unwrap_or(raw);
        let pairs = crate::format::query_pairs(raw);
        let first = |name: &str| crate::format::first_value(&pairs, name);
        InsightParams {
            since: first("since"),
            until: first("until"),
            bucket: first("bucket"),
            tag: first("tag"),
            vs_since: first("vs_since"),
            vs_until: first("vs_until"),
            vs_tag: first("vs_tag"),
            query: Some(raw.to_string()),
        }
    }

    /// The non-blank parameters, in URL order.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("since", &self.since),
            ("until", &self.until),
            ("bucket", &self.bucket),
            ("tag", &self.tag),
            ("vs_since", &self.vs_since),
            ("vs_until", &self.vs_until),
            ("vs_tag", &self.vs_tag),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        })
        .collect()
    }
}

/// `/pipelines` as HTML: every pipeline of the session's team at a glance.
#[server(prefix = "/fn")]
pub async fn pipelines_html() -> Result<String, ServerFnError> {
    let (_, membership) = ssr::signed_in().await?;
    let overview = flowtrail_domain::analysis::insights::overview(
        &*ssr::services()?,
        membership.team.id,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .map_err(ssr::internal)?;
    Ok(crate::pages::pipelines::render::overview(overview))
}

/// `/pipelines/{name}` as HTML: one pipeline of the session's team over a range (and beside a
/// second one). 404 when the team has no such pipeline; 422 for a time the flows list would
/// refuse (same parser, same message), a range that ends before it starts, or more than
/// [`MAX_BUCKETS`] buckets.
#[server(prefix = "/fn", input = leptos::server_fn::codec::Json)]
pub async fn pipeline_html(name: String, params: InsightParams) -> Result<String, ServerFnError> {
    use flowtrail_domain::analysis::insights::{InsightQuery, Side, pipeline};
    use time::{Duration, OffsetDateTime};
    let (_, membership) = ssr::signed_in().await?;
    let unprocessable =
        |message: String| ssr::refuse(http::StatusCode::UNPROCESSABLE_ENTITY, message);
    // One time parameter, read by the flows list's parser (so the same words are accepted).
    let time = |field: &'static str, text: &str| {
        flowtrail_types::filters::parse_time(field, text).map_err(|e| unprocessable(e.message))
    };
    let decoded = match &params.query {
        Some(raw) => Some(
            flowtrail_types::filters::decode_query(raw).map_err(|e| unprocessable(e.message))?,
        ),
        None => None,
    };
    let pairs: Vec<(&str, &str)> = match &decoded {
        Some(decoded) => decoded
            .iter()
            .map(|(name, value)| (name.as_str(), value.trim()))
            .filter(|(_, value)| !value.is_empty())
            .collect(),
        None => params.pairs(),
    };
    // Only this page's parameters (`pairs` may hold others: a link's tracking ones).
    let pairs: Vec<(&str, &str)> = pairs
        .into_iter()
        .filter(|(name, _)| InsightParams::NAMES.contains(name))
        .collect();
    if let Some(name) = flowtrail_types::filters::repeated(&pairs, None) {
        return Err(unprocessable(format!("{name} is given more than once.")));
    }
    let get = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let until = match get("until") {
        Some(text) => time("until", text)?,
        None => OffsetDateTime::now_utc(),
    };
    let since = match get("since") {
        Some(text) => time("since", text)?,
        // Kept in the years a time may be written in, as the statistics API keeps it.
        None => until
            .checked_sub(Duration::days(DEFAULT_RANGE_DAYS))
            .unwrap_or(flowtrail_types::rfc3339::MIN)
            .max(flowtrail_types::rfc3339::MIN),
    };
    if since >= until {
        return Err(unprocessable("since must be before until.".into()));
    }
    let length = until - since;
    // One tag parameter, read by the flows list's parser (`key:value`).
    let tag = |field: &'static str, text: &str| -> Result<(String, String), ServerFnError> {
        let filters = flowtrail_types::FlowFilters::from_pairs([("tag", text)])
            .map_err(|e| unprocessable(e.message.replace("tag", field)))?;
        filters
            .tags
            .into_iter()
            .next()
            .ok_or_else(|| unprocessable(format!("{field} is key:value, like version:v42.")))
    };
    let range = Side {
        since,
        until,
        tag: get("tag").map(|t| tag("tag", t)).transpose()?,
    };
    let vs_tag = get("vs_tag").map(|t| tag("vs_tag", t)).transpose()?;
    let versus = match (get("vs_since"), get("vs_until")) {
        (None, None) => vs_tag.map(|vs_tag| Side {
            tag: Some(vs_tag),
            ..range.clone()
        }),
        (Some(a), b) => {
            let vs_since = time("vs_since", a)?;
            let vs_until = match b {
                Some(b) => time("vs_until", b)?,
                // A range past the last representable time is refused, not overflowed.
                None => vs_since.checked_add(length).ok_or_else(|| {
                    unprocessable(
                        "vs_since plus the range's length is past the last time a range may \
                         end; give vs_until."
                            .into(),
                    )
                })?,
            };
            if vs_since >= vs_until {
                return Err(unprocessable("vs_since must be before vs_until.".into()));
            }
            Some(Side {
                since: vs_since,
                until: vs_until,
                tag: vs_tag.or_else(|| range.tag.clone()),
            })
        }
        (None, Some(_)) => {
            return Err(unprocessable(
                "vs_until needs vs_since (the start of the range compared with).".into(),
            ));
        }
    };
    let bucket = match get("bucket") {
        Some("hour") => StatsBucket::Hour,
        Some("day") => StatsBucket::Day,
        Some(other) => {
            return Err(unprocessable(format!(
                "bucket is hour or day, not {other:?}."
            )));
        }
        None if length <= Duration::hours(HOURLY_UP_TO_HOURS) => StatsBucket::Hour,
        None => StatsBucket::Day,
    };
    let longest = versus
        .as_ref()
        .map_or(length, |side| (side.until - side.since).max(length));
    if longest.whole_milliseconds() / i128::from(bucket.millis()) > i128::from(MAX_BUCKETS) {
        let advice = match bucket {
            StatsBucket::Hour => "choose day buckets or a shorter range",
            StatsBucket::Day => "choose a shorter range",
        };
        return Err(unprocessable(format!(
            "At most {MAX_BUCKETS} buckets per range: {advice}."
        )));
    }
    let query = InsightQuery {
        pipeline: name,
        range,
        versus,
        bucket,
    };
    let insight = pipeline(&*ssr::services()?, membership.team.id, &query)
        .await
        .map_err(ssr::internal)?
        .ok_or_else(|| {
            ssr::refuse(
                http::StatusCode::NOT_FOUND,
                format!("Your team has no pipeline named {:?}.", query.pipeline),
            )
        })?;
    Ok(crate::pages::pipelines::render::pipeline(insight, &params))
}
