//! [`MetadataStore`] on SQLite.

use async_trait::async_trait;
use flowtrail_types::{FlowDetail, FlowPage, SdkInfo, StepKind};
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::Database;
use crate::auth::{Role, Scope};
use crate::millis::{hour_floor, now_ms, to_ms};
use crate::payloads::PayloadRef;
use crate::rows::{FLOW_COLUMNS, UserKey, corrupt, flow_summary, parse_json, step_summary};
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
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {FLOW_COLUMNS} FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
             WHERE f.team_id = "
        ));
        sql.push_bind(team_id);
        if let Some(pipeline) = &query.pipeline {
            sql.push(" AND p.name = ").push_bind(pipeline.clone());
        }
        if let Some(status) = query.status {
            sql.push(" AND f.status = ").push_bind(status.as_str());
        }
        if let Some(since) = query.since {
            sql.push(" AND f.started_at >= ").push_bind(to_ms(since));
        }
        if let Some(until) = query.until {
            sql.push(" AND f.started_at < ").push_bind(to_ms(until));
        }
        for (key, value) in &query.tags {
            sql.push(
                " AND EXISTS (SELECT 1 FROM flow_tags t WHERE t.team_id = f.team_id \
                 AND t.flow_id = f.id AND t.key = ",
            )
            .push_bind(key.clone())
            .push(" AND t.value = ")
            .push_bind(value.clone())
            .push(")");
        }
        if let Some(text) = &query.text {
            match fts_query(text) {
                // The user asked for text and typed nothing searchable: nothing matches.
                None => {
                    sql.push(" AND 0 = 1");
                }
                // The matching flows (a temporary set), then the flows index newest first.
                Some(fts) => {
                    sql.push(
                        " AND f.id IN (SELECT d.flow_id FROM flow_search JOIN flow_search_ids d \
                         ON d.id = flow_search.rowid WHERE flow_search MATCH ",
                    )
                    .push_bind(fts)
                    .push(" AND d.team_id = f.team_id)");
                }
            }
        }
        if query.step_kind.is_some() || query.min_eliminated.is_some() {
            sql.push(
                " AND EXISTS (SELECT 1 FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id",
            );
            if let Some(kind) = query.step_kind {
                sql.push(" AND s.kind = ").push_bind(kind.as_str());
            }
            if let Some(share) = query.min_eliminated {
                sql.push(" AND s.candidates_in > 0 AND (s.candidates_in - s.candidates_out) >= ")
                    .push_bind(share)
                    .push(" * s.candidates_in");
            }
            sql.push(")");
        }
        if let Some(cursor) = query.cursor {
            sql.push(" AND (f.started_at < ")
                .push_bind(cursor.started_at_ms)
                .push(" OR (f.started_at = ")
                .push_bind(cursor.started_at_ms)
                .push(" AND f.id < ")
                .push_bind(cursor.id.hyphenated().to_string())
                .push("))");
        }
        let limit = query.limit.clamp(1, 500);
        sql.push(" ORDER BY f.started_at DESC, f.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = sql.build().fetch_all(&self.db.read).await?;
        let mut flows = rows.iter().map(flow_summary).collect::<Result<Vec<_>>>()?;
        let next_cursor = if flows.len() > limit as usize {
            flows.truncate(limit as usize);
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
        let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT r.bucket - r.bucket % ?1 AS b, p.name, r.step, r.code, SUM(r.count) \
             FROM reason_counts r JOIN pipelines p ON p.id = r.pipeline_id \
             WHERE r.team_id = ?2 AND r.bucket >= ?3 AND r.bucket < ?4 \
               AND (?5 IS NULL OR p.name = ?5) AND (?6 IS NULL OR r.step = ?6) \
             GROUP BY b, p.name, r.step, r.code HAVING SUM(r.count) > 0 \
             ORDER BY b, p.name, r.step, r.code",
        )
        .bind(query.bucket_ms)
        .bind(team_id)
        .bind(hour_floor(to_ms(query.since)))
        .bind(to_ms(query.until))
        .bind(&query.pipeline)
        .bind(&query.step)
        .fetch_all(&self.db.read)
        .await?;
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
        let mut out = Vec::new();
        for (pipeline_id, pipeline) in pipelines {
            let rows: Vec<(String, i64, String, String, i64, i64)> = sqlx::query_as(
                "SELECT s.flow_id, s.seq, s.name, s.kind, s.candidates_in, s.candidates_out \
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
            .fetch_all(&self.db.read)
            .await?;
            for (flow_id, seq, step, kind, input, output) in rows {
                out.push(FunnelRow {
                    pipeline: pipeline.clone(),
                    flow_id,
                    seq: seq as u32,
                    step,
                    kind: StepKind::parse(&kind).ok_or_else(|| corrupt("step kind"))?,
                    candidates_in: input.max(0) as u64,
                    candidates_out: output.max(0) as u64,
                });
            }
        }
        Ok(out)
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
