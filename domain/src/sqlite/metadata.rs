//! [`MetadataStore`] on SQLite.

use async_trait::async_trait;
use flowtrail_types::{FlowDetail, FlowPage, FlowSummary, SdkInfo};
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{Database, search};
use crate::auth::{Role, Scope};
use crate::millis::{hour_floor, now_ms, to_ms};
use crate::payloads::PayloadRef;
use crate::rows::{
    FLOW_COLUMNS, FunnelTuple, UserKey, corrupt, flow_summary, funnel_row, parse_json,
    push_flow_filters, step_summary,
};
use crate::store::{
    ApiKey, FlowCursor, FlowQuery, FlowWrite, FunnelRow, Membership, MetadataStore, ReasonRow,
    StatsQuery, StepPayloads, Team, UpsertOutcome, User, search_words,
};
use crate::{Error, Result};

/// Metadata in the embedded SQLite database.
#[derive(Clone)]
pub struct SqliteMetadata {
    db: Database,
}

impl SqliteMetadata {
    pub fn new(db: Database) -> Self {
        SqliteMetadata { db }
    }
}

impl SqliteMetadata {
    async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT t.id, t.slug, m.role FROM memberships m JOIN teams t ON t.id = m.team_id \
             WHERE m.user_id = ? ORDER BY t.id",
        )
        .bind(user_id)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok(Membership {
                    team: Team {
                        id: row.try_get("id")?,
                        slug: row.try_get("slug")?,
                    },
                    role: Role::parse(&role).ok_or_else(|| corrupt("role"))?,
                })
            })
            .collect()
    }

    async fn user_where(&self, key: UserKey<'_>) -> Result<Option<User>> {
        let query = match key {
            UserKey::Email(email) => {
                sqlx::query("SELECT id, email, password_hash FROM users WHERE email = ?")
                    .bind(email.to_string())
            }
            UserKey::Id(id) => {
                sqlx::query("SELECT id, email, password_hash FROM users WHERE id = ?").bind(id)
            }
        };
        let Some(row) = query.fetch_optional(&self.db.read).await? else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        Ok(Some(User {
            id,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            memberships: self.memberships(id).await?,
        }))
    }
}

#[async_trait]
impl MetadataStore for SqliteMetadata {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.db.read).await?;
        Ok(())
    }

    async fn ensure_team(&self, slug: &str) -> Result<Team> {
        sqlx::query(
            "INSERT INTO teams (slug, created_at) VALUES (?, ?) ON CONFLICT (slug) DO NOTHING",
        )
        .bind(slug)
        .bind(now_ms())
        .execute(&self.db.write)
        .await?;
        self.team_by_slug(slug)
            .await?
            .ok_or_else(|| Error::Internal("team vanished after insert".into()))
    }

    async fn team_by_slug(&self, slug: &str) -> Result<Option<Team>> {
        let row = sqlx::query("SELECT id, slug FROM teams WHERE slug = ?")
            .bind(slug)
            .fetch_optional(&self.db.read)
            .await?;
        row.map(|row| {
            Ok(Team {
                id: row.try_get("id")?,
                slug: row.try_get("slug")?,
            })
        })
        .transpose()
    }

    async fn user_count(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.db.read)
            .await?;
        Ok(count as u64)
    }

    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        team_id: i64,
        role: Role,
    ) -> Result<i64> {
        let mut tx = self.db.write.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (email, password_hash, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (email) DO NOTHING RETURNING id",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            return Err(Error::Conflict(format!(
                "a user with e-mail {email} already exists"
            )));
        };
        let user_id: i64 = row.try_get("id")?;
        sqlx::query("INSERT INTO memberships (team_id, user_id, role) VALUES (?, ?, ?)")
            .bind(team_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(user_id)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.user_where(UserKey::Email(email)).await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.user_where(UserKey::Id(id)).await
    }

    async fn create_api_key(
        &self,
        team_id: i64,
        name: &str,
        scope: Scope,
        display_prefix: &str,
        hash: &str,
    ) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_keys (team_id, name, scope, key_prefix, key_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(team_id)
        .bind(name)
        .bind(scope.as_str())
        .bind(display_prefix)
        .bind(hash)
        .bind(now_ms())
        .fetch_one(&self.db.write)
        .await?;
        Ok(id)
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(
            "SELECT k.id, k.name, k.scope, t.id AS team_id, t.slug FROM api_keys k \
             JOIN teams t ON t.id = k.team_id WHERE k.key_hash = ? AND k.revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.db.read)
        .await?;
        row.map(|row| {
            let scope: String = row.try_get("scope")?;
            Ok(ApiKey {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                scope: Scope::parse(&scope).ok_or_else(|| corrupt("key scope"))?,
                team: Team {
                    id: row.try_get("team_id")?,
                    slug: row.try_get("slug")?,
                },
            })
        })
        .transpose()
    }

    async fn upsert_flows(&self, writes: &[FlowWrite<'_>]) -> Result<Vec<UpsertOutcome>> {
        let mut tx = self.db.write.begin().await?;
        let outcomes = super::writes::write_batch(&mut tx, writes).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn list_flows(&self, team_id: i64, query: &FlowQuery) -> Result<FlowPage> {
        let limit = query.limit.clamp(1, 500) as usize;
        // One more than a page, to know whether there is a next one.
        let want = limit + 1;
        let mut flows = match query.text.as_deref().map(fts_query) {
            None => {
                let mut sql = flows_where(team_id, query, None);
                sql.push(" ORDER BY f.started_at DESC, f.id DESC LIMIT ")
                    .push_bind(want as i64);
                let rows = sql.build().fetch_all(&self.db.read).await?;
                rows.iter().map(flow_summary).collect::<Result<Vec<_>>>()?
            }
            // The user asked for text and typed nothing searchable: nothing matches.
            Some(None) => Vec::new(),
            Some(Some(fts)) => self.search_flows(team_id, query, &fts, want).await?,
        };
        let next_cursor = if flows.len() > limit {
            flows.truncate(limit);
            flows.last().map(|last| {
                FlowCursor {
                    started_at_ms: to_ms(last.started_at),
                    id: last.id,
                }
                .encode()
            })
        } else {
            None
        };
        Ok(FlowPage { flows, next_cursor })
    }

    async fn reason_counts(&self, team_id: i64, query: &StatsQuery) -> Result<Vec<ReasonRow>> {
        // One JSON array instead of a row per (bucket, pipeline, step, code): sqlx hands SQLite
        // rows over one at a time between threads, and a month of hours is thousands of rows.
        let json: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(b, name, step, code, n) \
                                     ORDER BY b, name, step, code) \
             FROM (SELECT r.bucket - r.bucket % ?1 AS b, p.name, r.step, r.code, \
                          SUM(r.count) AS n \
                   FROM reason_counts r JOIN pipelines p ON p.id = r.pipeline_id \
                   WHERE r.team_id = ?2 AND r.bucket >= ?3 AND r.bucket < ?4 \
                     AND (?5 IS NULL OR p.name = ?5) AND (?6 IS NULL OR r.step = ?6) \
                   GROUP BY b, p.name, r.step, r.code HAVING SUM(r.count) > 0)",
        )
        .bind(query.bucket_ms)
        .bind(team_id)
        .bind(hour_floor(to_ms(query.since)))
        .bind(to_ms(query.until))
        .bind(&query.pipeline)
        .bind(&query.step)
        .fetch_one(&self.db.read)
        .await?;
        let rows: Vec<(i64, String, String, String, i64)> = parse_json(&json, "reason counts")?;
        Ok(rows
            .into_iter()
            .map(|(bucket_ms, pipeline, step, code, count)| ReasonRow {
                bucket_ms,
                pipeline,
                step,
                code,
                count: count.max(0) as u64,
            })
            .collect())
    }

    async fn funnel_rows(
        &self,
        team_id: i64,
        query: &StatsQuery,
        flow_cap: u32,
    ) -> Result<Vec<FunnelRow>> {
        let pipelines: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, name FROM pipelines WHERE team_id = ?1 AND (?2 IS NULL OR name = ?2) \
             ORDER BY name",
        )
        .bind(team_id)
        .bind(&query.pipeline)
        .fetch_all(&self.db.read)
        .await?;
        // One query per pipeline, all at once: each walks its own newest flows.
        let per_pipeline = pipelines
            .into_iter()
            .map(|(id, name)| self.funnel_of(team_id, query, flow_cap, id, name));
        let rows = futures::future::try_join_all(per_pipeline).await?;
        Ok(rows.into_iter().flatten().collect())
    }

    async fn get_flow(&self, team_id: i64, flow_id: Uuid) -> Result<Option<FlowDetail>> {
        let id = flow_id.hyphenated().to_string();
        let Some(row) = sqlx::query(&format!(
            "SELECT {FLOW_COLUMNS}, f.input, f.output, f.sdk_name, f.sdk_version FROM flows f \
             JOIN pipelines p ON p.id = f.pipeline_id WHERE f.team_id = ? AND f.id = ?"
        ))
        .bind(team_id)
        .bind(&id)
        .fetch_optional(&self.db.read)
        .await?
        else {
            return Ok(None);
        };
        let input: String = row.try_get("input")?;
        let output: String = row.try_get("output")?;
        let sdk = match (
            row.try_get::<Option<String>, _>("sdk_name")?,
            row.try_get::<Option<String>, _>("sdk_version")?,
        ) {
            (Some(name), Some(version)) => Some(SdkInfo { name, version }),
            _ => None,
        };
        let steps = sqlx::query(
            "SELECT seq, name, kind, status, started_at, ended_at, input, output, reasoning, \
             candidates_in, candidates_out, reasons, capture, observation_count, boundaries \
             FROM steps WHERE team_id = ? AND flow_id = ? ORDER BY seq",
        )
        .bind(team_id)
        .bind(&id)
        .fetch_all(&self.db.read)
        .await?;
        Ok(Some(FlowDetail {
            summary: flow_summary(&row)?,
            input: parse_json(&input, "flow input")?,
            output: parse_json(&output, "flow output")?,
            sdk,
            steps: steps.iter().map(step_summary).collect::<Result<_>>()?,
        }))
    }

    async fn flow_payloads(&self, team_id: i64, flow_id: Uuid) -> Result<StepPayloads> {
        let rows = sqlx::query(
            "SELECT seq, payload_key, payload_sha256, payload_bytes, payload_inline FROM steps \
             WHERE team_id = ? AND flow_id = ? AND payload_key IS NOT NULL",
        )
        .bind(team_id)
        .bind(flow_id.hyphenated().to_string())
        .fetch_all(&self.db.read)
        .await?;
        let mut payloads = StepPayloads::new();
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            if let Some(reference) = payload_ref(&row)? {
                payloads.insert(seq as u32, reference);
            }
        }
        Ok(payloads)
    }

    async fn step_payload(
        &self,
        team_id: i64,
        flow_id: Uuid,
        seq: u32,
    ) -> Result<Option<Option<PayloadRef>>> {
        let row = sqlx::query(
            "SELECT payload_key, payload_sha256, payload_bytes, payload_inline FROM steps \
             WHERE team_id = ? AND flow_id = ? AND seq = ?",
        )
        .bind(team_id)
        .bind(flow_id.hyphenated().to_string())
        .bind(i64::from(seq))
        .fetch_optional(&self.db.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(payload_ref(&row)?))
    }
}

impl SqliteMetadata {
    /// The funnel rows of one pipeline: its newest `flow_cap` flows in the range, their steps'
    /// counts — as one JSON array rather than thousands of rows (see `reason_counts`).
    async fn funnel_of(
        &self,
        team_id: i64,
        query: &StatsQuery,
        flow_cap: u32,
        pipeline_id: i64,
        pipeline: String,
    ) -> Result<Vec<FunnelRow>> {
        let json: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(s.flow_id, s.seq, s.name, s.kind, \
                                                s.candidates_in, s.candidates_out)) \
             FROM (SELECT id FROM flows WHERE team_id = ?1 AND pipeline_id = ?2 \
                   AND started_at >= ?3 AND started_at < ?4 \
                   ORDER BY started_at DESC, id DESC LIMIT ?5) f \
             JOIN steps s ON s.team_id = ?1 AND s.flow_id = f.id \
             WHERE s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL \
               AND (?6 IS NULL OR s.name = ?6)",
        )
        .bind(team_id)
        .bind(pipeline_id)
        .bind(to_ms(query.since))
        .bind(to_ms(query.until))
        .bind(i64::from(flow_cap))
        .bind(&query.step)
        .fetch_one(&self.db.read)
        .await?;
        let rows: Vec<FunnelTuple> = parse_json(&json, "funnel rows")?;
        rows.into_iter()
            .map(|row| funnel_row(&pipeline, row))
            .collect()
    }

    /// The first `want` flows of a text search, in list order. The walk goes newest first over
    /// the search index's time-ordered rowids and stops at `want` matches; the oldest bucket
    /// it reached may have more matches than it saw, so that bucket is read again whole, in
    /// `(started_at, id)` order, before the page is cut.
    async fn search_flows(
        &self,
        team_id: i64,
        query: &FlowQuery,
        fts: &str,
        want: usize,
    ) -> Result<Vec<FlowSummary>> {
        let (lo, hi) = search_range(query);
        if lo >= hi {
            return Ok(Vec::new());
        }
        let mut sql = flows_where(team_id, query, Some((fts, lo, hi)));
        sql.push(" ORDER BY flow_search.rowid DESC LIMIT ")
            .push_bind(want as i64);
        let rows = sql.build().fetch_all(&self.db.read).await?;
        let mut flows = Vec::with_capacity(rows.len());
        for row in &rows {
            let rowid: i64 = row.try_get("search_rowid")?;
            flows.push((search::bucket_of_rowid(rowid), flow_summary(row)?));
        }
        if let Some(&(last, _)) = flows.last().filter(|_| flows.len() == want) {
            flows.retain(|(bucket, _)| *bucket > last);
            let range = (
                search::first_rowid(last).max(lo),
                search::first_rowid(last + 1).min(hi),
            );
            let mut sql = flows_where(team_id, query, Some((fts, range.0, range.1)));
            sql.push(" ORDER BY f.started_at DESC, f.id DESC LIMIT ")
                .push_bind(want as i64);
            for row in sql.build().fetch_all(&self.db.read).await? {
                flows.push((last, flow_summary(&row)?));
            }
        }
        let mut flows: Vec<FlowSummary> = flows.into_iter().map(|(_, flow)| flow).collect();
        flows.sort_by_key(|flow| std::cmp::Reverse((flow.started_at, flow.id)));
        flows.truncate(want);
        Ok(flows)
    }
}

/// The flows of a team that pass every filter of `query` but the text, as a `SELECT` to
/// which the caller adds the order and the limit. With `search` (an FTS5 query and a rowid
/// range), only the flows whose search document matches, walked from the search index.
fn flows_where<'q>(
    team_id: i64,
    query: &'q FlowQuery,
    search: Option<(&'q str, i64, i64)>,
) -> QueryBuilder<'q, Sqlite> {
    let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT ");
    sql.push(FLOW_COLUMNS);
    match search {
        None => {
            sql.push(" FROM flows f JOIN pipelines p ON p.id = f.pipeline_id WHERE true");
        }
        Some((fts, lo, hi)) => {
            sql.push(
                ", flow_search.rowid AS search_rowid FROM flow_search \
                 JOIN flow_search_ids d ON d.id = flow_search.rowid \
                 JOIN flows f ON f.team_id = d.team_id AND f.id = d.flow_id \
                 JOIN pipelines p ON p.id = f.pipeline_id \
                 WHERE flow_search MATCH ",
            )
            .push_bind(fts)
            .push(" AND flow_search.rowid >= ")
            .push_bind(lo)
            .push(" AND flow_search.rowid < ")
            .push_bind(hi);
        }
    }
    sql.push(" AND f.team_id = ").push_bind(team_id);
    push_flow_filters(&mut sql, query);
    sql
}

/// The search index rowids `[lo, hi)` that can hold a flow in the query's time range and
/// after its cursor, so the walk starts at the right bucket instead of filtering its way there.
fn search_range(query: &FlowQuery) -> (i64, i64) {
    let lo = query.since.map_or(i64::MIN, |since| {
        search::first_rowid(search::bucket(to_ms(since)))
    });
    let ends = [
        query.until.map(|until| to_ms(until).saturating_sub(1)),
        query.cursor.as_ref().map(|cursor| cursor.started_at_ms),
    ];
    let hi = ends
        .into_iter()
        .flatten()
        .map(|last| search::first_rowid(search::bucket(last) + 1))
        .min()
        .unwrap_or(i64::MAX);
    (lo, hi)
}

/// An FTS5 query for what the user typed: every word a phrase of its tokens, quoted (so no
/// operator or column filter can be injected), the last token a prefix.
fn fts_query(text: &str) -> Option<String> {
    let phrases: Vec<String> = search_words(text)
        .into_iter()
        .map(|tokens| format!("\"{}\"*", tokens.join(" ")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" AND "))
}

/// The payload columns of a step row.
fn payload_ref(row: &sqlx::sqlite::SqliteRow) -> Result<Option<PayloadRef>> {
    let key: Option<String> = row.try_get("payload_key")?;
    let sha: Option<String> = row.try_get("payload_sha256")?;
    let bytes: Option<i64> = row.try_get("payload_bytes")?;
    let inline: Option<Vec<u8>> = row.try_get("payload_inline")?;
    Ok(match (key, sha, bytes) {
        (Some(key), Some(sha256), Some(bytes)) => Some(PayloadRef {
            key,
            inline: inline.map(bytes::Bytes::from),
            sha256,
            bytes: bytes as u64,
        }),
        _ => None,
    })
}
