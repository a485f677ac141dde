//! [`MetadataStore`] on PostgreSQL: the same statements as the SQLite one, in PostgreSQL's
//! dialect (`$n` parameters, `ILIKE`, `FOR UPDATE SKIP LOCKED`).

use async_trait::async_trait;
use flowtrail_types::{FlowDetail, FlowPage, FlowRecord, SdkInfo};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::Database;
use crate::auth::{Role, Scope};
use crate::millis::{now_ms, to_ms};
use crate::payloads::PayloadRef;
use crate::rows::{
    FLOW_COLUMNS, UserKey, corrupt, flow_summary, json_text, parse_json, step_summary,
};
use crate::store::{
    ApiKey, FlowCursor, FlowQuery, FlowWrite, Membership, MetadataStore, StepPayloads, Team,
    UpsertOutcome, User,
};
use crate::{Error, Result};

/// Metadata in PostgreSQL.
#[derive(Clone)]
pub struct PgMetadata {
    db: Database,
}

impl PgMetadata {
    pub fn new(db: Database) -> Self {
        PgMetadata { db }
    }
}

impl PgMetadata {
    async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT t.id, t.slug, m.role FROM memberships m JOIN teams t ON t.id = m.team_id \
             WHERE m.user_id = $1 ORDER BY t.id",
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
                sqlx::query("SELECT id, email, password_hash FROM users WHERE email = $1")
                    .bind(email.to_string())
            }
            UserKey::Id(id) => {
                sqlx::query("SELECT id, email, password_hash FROM users WHERE id = $1").bind(id)
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
impl MetadataStore for PgMetadata {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.db.read).await?;
        Ok(())
    }

    async fn ensure_team(&self, slug: &str) -> Result<Team> {
        sqlx::query(
            "INSERT INTO teams (slug, created_at) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING",
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
        let row = sqlx::query("SELECT id, slug FROM teams WHERE slug = $1")
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
            "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) \
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
        sqlx::query("INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)")
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
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
             JOIN teams t ON t.id = k.team_id WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
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

    async fn upsert_flow(
        &self,
        team_id: i64,
        flow: &FlowRecord,
        payloads: &StepPayloads,
    ) -> Result<UpsertOutcome> {
        let mut tx = self.db.write.begin().await?;
        let outcome = write_flow(&mut tx, team_id, flow, payloads).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn upsert_flows(&self, writes: &[FlowWrite<'_>]) -> Result<Vec<UpsertOutcome>> {
        let mut tx = self.db.write.begin().await?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for write in writes {
            outcomes.push(write_flow(&mut tx, write.team_id, write.flow, write.payloads).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn list_flows(&self, team_id: i64, query: &FlowQuery) -> Result<FlowPage> {
        let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
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
            let pattern = format!(
                "%{}%",
                text.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            sql.push(" AND (p.name ILIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR EXISTS (SELECT 1 FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id AND (s.name ILIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR s.reasoning ILIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR s.reasons ILIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')))");
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

    async fn get_flow(&self, team_id: i64, flow_id: Uuid) -> Result<Option<FlowDetail>> {
        let id = flow_id.hyphenated().to_string();
        let Some(row) = sqlx::query(&format!(
            "SELECT {FLOW_COLUMNS}, f.input, f.output, f.sdk_name, f.sdk_version FROM flows f \
             JOIN pipelines p ON p.id = f.pipeline_id WHERE f.team_id = $1 AND f.id = $2"
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
             candidates_in, candidates_out, reasons, capture, observation_count \
             FROM steps WHERE team_id = $1 AND flow_id = $2 ORDER BY seq",
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

    async fn step_payload(
        &self,
        team_id: i64,
        flow_id: Uuid,
        seq: u32,
    ) -> Result<Option<Option<PayloadRef>>> {
        let row = sqlx::query(
            "SELECT payload_key, payload_sha256, payload_bytes, payload_inline FROM steps \
             WHERE team_id = $1 AND flow_id = $2 AND seq = $3",
        )
        .bind(team_id)
        .bind(flow_id.hyphenated().to_string())
        .bind(i64::from(seq))
        .fetch_optional(&self.db.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key: Option<String> = row.try_get("payload_key")?;
        let sha: Option<String> = row.try_get("payload_sha256")?;
        let bytes: Option<i64> = row.try_get("payload_bytes")?;
        let inline: Option<Vec<u8>> = row.try_get("payload_inline")?;
        Ok(Some(match (key, sha, bytes) {
            (Some(key), Some(sha256), Some(bytes)) => Some(PayloadRef {
                key,
                inline: inline.map(bytes::Bytes::from),
                sha256,
                bytes: bytes as u64,
            }),
            _ => None,
        }))
    }
}

/// Writes one flow with its steps and tags inside the caller's transaction, unless a newer
/// version is stored.
async fn write_flow(
    conn: &mut PgConnection,
    team_id: i64,
    flow: &FlowRecord,
    payloads: &StepPayloads,
) -> Result<UpsertOutcome> {
    let flow_id = flow.id.hyphenated().to_string();
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT version FROM flows WHERE team_id = $1 AND id = $2")
            .bind(team_id)
            .bind(&flow_id)
            .fetch_optional(&mut *conn)
            .await?;
    if stored.is_some_and(|version| version > i64::from(flow.version)) {
        return Ok(UpsertOutcome::Stale);
    }
    sqlx::query("INSERT INTO pipelines (team_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(team_id)
        .bind(&flow.pipeline)
        .execute(&mut *conn)
        .await?;
    let pipeline_id: i64 =
        sqlx::query_scalar("SELECT id FROM pipelines WHERE team_id = $1 AND name = $2")
            .bind(team_id)
            .bind(&flow.pipeline)
            .fetch_one(&mut *conn)
            .await?;
    for table in ["steps", "flow_tags"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE team_id = $1 AND flow_id = $2"
        ))
        .bind(team_id)
        .bind(&flow_id)
        .execute(&mut *conn)
        .await?;
    }
    let tags = serde_json::to_string(&flow.tags).map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO flows (team_id, id, version, pipeline_id, status, started_at, ended_at, \
         input, output, tags, error, sdk_name, sdk_version, step_count, ingested_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (team_id, id) DO UPDATE SET version = excluded.version, \
         pipeline_id = excluded.pipeline_id, status = excluded.status, \
         started_at = excluded.started_at, ended_at = excluded.ended_at, \
         input = excluded.input, output = excluded.output, tags = excluded.tags, \
         error = excluded.error, sdk_name = excluded.sdk_name, \
         sdk_version = excluded.sdk_version, step_count = excluded.step_count, \
         ingested_at = excluded.ingested_at",
    )
    .bind(team_id)
    .bind(&flow_id)
    .bind(i64::from(flow.version))
    .bind(pipeline_id)
    .bind(flow.status.as_str())
    .bind(to_ms(flow.started_at))
    .bind(flow.ended_at.map(to_ms))
    .bind(json_text(&flow.input)?)
    .bind(json_text(&flow.output)?)
    .bind(tags)
    .bind(&flow.error)
    .bind(flow.sdk.as_ref().map(|s| s.name.as_str()))
    .bind(flow.sdk.as_ref().map(|s| s.version.as_str()))
    .bind(flow.steps.len() as i64)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    for (key, value) in &flow.tags {
        sqlx::query("INSERT INTO flow_tags (team_id, flow_id, key, value) VALUES ($1, $2, $3, $4)")
            .bind(team_id)
            .bind(&flow_id)
            .bind(key)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    for step in &flow.steps {
        let payload = payloads.get(&step.seq);
        let reasons = serde_json::to_string(&step.effective_reasons())
            .map_err(|e| Error::Internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO steps (team_id, flow_id, seq, name, kind, status, started_at, \
             ended_at, input, output, reasoning, candidates_in, candidates_out, reasons, \
             capture, observation_count, payload_key, payload_sha256, payload_bytes, \
             payload_inline) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(team_id)
        .bind(&flow_id)
        .bind(i64::from(step.seq))
        .bind(&step.name)
        .bind(step.kind.as_str())
        .bind(step.status.as_str())
        .bind(step.started_at.map(to_ms))
        .bind(step.ended_at.map(to_ms))
        .bind(json_text(&step.input)?)
        .bind(json_text(&step.output)?)
        .bind(&step.reasoning)
        .bind(step.effective_candidates_in().map(|n| n as i64))
        .bind(step.effective_candidates_out().map(|n| n as i64))
        .bind(reasons)
        .bind(step.capture.as_str())
        .bind(step.observations.len() as i64)
        .bind(payload.map(|p| p.key.as_str()))
        .bind(payload.map(|p| p.sha256.as_str()))
        .bind(payload.map(|p| p.bytes as i64))
        .bind(payload.and_then(|p| p.inline.as_deref()))
        .execute(&mut *conn)
        .await?;
    }
    Ok(UpsertOutcome::Written)
}
