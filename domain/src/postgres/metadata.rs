//! [`MetadataStore`] on PostgreSQL: the same statements as the SQLite one, in PostgreSQL's
//! dialect (`$n` parameters, `tsvector` search, `FOR UPDATE SKIP LOCKED`).

use async_trait::async_trait;
use flowtrail_types::{FlowDetail, FlowPage, FlowRecord, FlowStatus, SdkInfo};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::Database;
use crate::auth::{Role, Scope};
use crate::millis::{hour_floor, now_ms, to_ms};
use crate::payloads::PayloadRef;
use crate::rows::{
    FLOW_COLUMNS, FunnelTuple, UserKey, corrupt, flow_summary, funnel_row, json_text, parse_json,
    push_flow_filters, step_summary,
};
use crate::store::{
    ApiKey, FlowCursor, FlowQuery, FlowWrite, FunnelRow, Membership, MetadataStore, ReasonRow,
    StatsQuery, StepPayloads, Team, UpsertOutcome, User, WriteMode, boundaries_json,
    observation_text, search_words,
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

    async fn upsert_flows(&self, writes: &[FlowWrite<'_>]) -> Result<Vec<UpsertOutcome>> {
        let mut tx = self.db.write.begin().await?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for write in writes {
            outcomes.push(write_flow(&mut tx, write).await?);
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
        push_flow_filters(&mut sql, query);
        if let Some(text) = &query.text {
            let words: Vec<(&str, String)> = text
                .split_whitespace()
                .filter_map(|word| Some((word, ts_query(word)?)))
                .collect();
            if words.is_empty() {
                // The user asked for text and typed nothing searchable: nothing matches.
                sql.push(" AND FALSE");
            }
            // Every word: as PostgreSQL's own parser reads it (so `0.5x` or `9.99` match as
            // they were indexed), or as a phrase of its alphanumeric tokens with a prefix.
            for (word, tsquery) in words {
                sql.push(" AND f.search @@ (phraseto_tsquery('simple', ")
                    .push_bind(word.to_string())
                    .push(") || to_tsquery('simple', ")
                    .push_bind(tsquery)
                    .push("))");
            }
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
            "SELECT r.bucket - r.bucket % $1 AS b, p.name, r.step, r.code, SUM(r.count)::BIGINT \
             FROM reason_counts r JOIN pipelines p ON p.id = r.pipeline_id \
             WHERE r.team_id = $2 AND r.bucket >= $3 AND r.bucket < $4 \
               AND ($5::TEXT IS NULL OR p.name = $5) AND ($6::TEXT IS NULL OR r.step = $6) \
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
            "SELECT id, name FROM pipelines WHERE team_id = $1 AND ($2::TEXT IS NULL OR name = $2) \
             ORDER BY name",
        )
        .bind(team_id)
        .bind(&query.pipeline)
        .fetch_all(&self.db.read)
        .await?;
        // One query per pipeline, all at once: each walks its own newest flows.
        let per_pipeline = pipelines
            .into_iter()
            .map(|(pipeline_id, pipeline)| async move {
                let rows: Vec<FunnelTuple> = sqlx::query_as(
                    "SELECT s.flow_id, s.seq, s.name, s.kind, s.candidates_in, s.candidates_out \
                 FROM (SELECT id FROM flows WHERE team_id = $1 AND pipeline_id = $2 \
                   AND started_at >= $3 AND started_at < $4 \
                   ORDER BY started_at DESC, id DESC LIMIT $5) f \
                 JOIN steps s ON s.team_id = $1 AND s.flow_id = f.id \
                 WHERE s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL \
                   AND ($6::TEXT IS NULL OR s.name = $6)",
                )
                .bind(team_id)
                .bind(pipeline_id)
                .bind(to_ms(query.since))
                .bind(to_ms(query.until))
                .bind(i64::from(flow_cap))
                .bind(&query.step)
                .fetch_all(&self.db.read)
                .await?;
                rows.into_iter()
                    .map(|row| funnel_row(&pipeline, row))
                    .collect::<Result<Vec<_>>>()
            });
        let rows = futures::future::try_join_all(per_pipeline).await?;
        Ok(rows.into_iter().flatten().collect())
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
             candidates_in, candidates_out, reasons, capture, observation_count, boundaries \
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

    async fn flow_payloads(&self, team_id: i64, flow_id: Uuid) -> Result<StepPayloads> {
        let rows = sqlx::query(
            "SELECT seq, payload_key, payload_sha256, payload_bytes, payload_inline FROM steps \
             WHERE team_id = $1 AND flow_id = $2 AND payload_key IS NOT NULL",
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
             WHERE team_id = $1 AND flow_id = $2 AND seq = $3",
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

/// Writes one flow with its steps and tags inside the caller's transaction, unless what is
/// stored supersedes it (see [`WriteMode`]).
async fn write_flow(conn: &mut PgConnection, write: &FlowWrite<'_>) -> Result<UpsertOutcome> {
    let FlowWrite {
        team_id,
        flow,
        payloads,
        mode,
    } = *write;
    let flow_id = flow.id.hyphenated().to_string();
    let stored: Option<(i64, String)> =
        sqlx::query_as("SELECT version, status FROM flows WHERE team_id = $1 AND id = $2")
            .bind(team_id)
            .bind(&flow_id)
            .fetch_optional(&mut *conn)
            .await?;
    let version = i64::from(flow.version);
    let take_header = match (mode, &stored) {
        (_, None) => true,
        (WriteMode::Replace, Some((stored, _))) if *stored > version => {
            return Ok(UpsertOutcome::Stale);
        }
        (WriteMode::Replace, Some(_)) => true,
        (WriteMode::MergeSteps, Some((stored, status)))
            if status != FlowStatus::Running.as_str() && *stored >= version =>
        {
            return Ok(UpsertOutcome::Stale);
        }
        (WriteMode::MergeSteps, Some((stored, _))) => *stored <= version,
    };
    // Subtract the stored steps' reasons while the flow's pipeline and start are still the
    // stored ones; every remaining step is added back below.
    adjust_reason_counts(conn, team_id, &flow_id, -1).await?;
    let replaced_seqs = match mode {
        WriteMode::Replace => None,
        WriteMode::MergeSteps => Some(
            serde_json::to_string(&flow.steps.iter().map(|s| s.seq).collect::<Vec<_>>())
                .map_err(|e| Error::Internal(e.to_string()))?,
        ),
    };
    sqlx::query(
        "DELETE FROM steps WHERE team_id = $1 AND flow_id = $2 \
         AND ($3::TEXT IS NULL OR seq IN (SELECT value::BIGINT FROM json_array_elements_text($3::JSON)))",
    )
    .bind(team_id)
    .bind(&flow_id)
    .bind(&replaced_seqs)
    .execute(&mut *conn)
    .await?;
    if take_header {
        write_header(conn, team_id, &flow_id, flow).await?;
    }
    for step in &flow.steps {
        let payload = payloads.get(&step.seq);
        let reasons = serde_json::to_string(&step.effective_reasons())
            .map_err(|e| Error::Internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO steps (team_id, flow_id, seq, name, kind, status, started_at, \
             ended_at, input, output, reasoning, candidates_in, candidates_out, reasons, \
             capture, observation_count, payload_key, payload_sha256, payload_bytes, \
             payload_inline, search_text, boundaries) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
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
        .bind(observation_text(&step.observations))
        .bind(boundaries_json(step)?)
        .execute(&mut *conn)
        .await?;
    }
    adjust_reason_counts(conn, team_id, &flow_id, 1).await?;
    refresh_derived(conn, team_id, &flow_id).await?;
    Ok(UpsertOutcome::Written)
}

/// The flow's own row and its tags.
async fn write_header(
    conn: &mut PgConnection,
    team_id: i64,
    flow_id: &str,
    flow: &FlowRecord,
) -> Result<()> {
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
    sqlx::query("DELETE FROM flow_tags WHERE team_id = $1 AND flow_id = $2")
        .bind(team_id)
        .bind(flow_id)
        .execute(&mut *conn)
        .await?;
    let tags = serde_json::to_string(&flow.tags).map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO flows (team_id, id, version, pipeline_id, status, started_at, ended_at, \
         input, output, tags, error, sdk_name, sdk_version, step_count, ingested_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14) \
         ON CONFLICT (team_id, id) DO UPDATE SET version = excluded.version, \
         pipeline_id = excluded.pipeline_id, status = excluded.status, \
         started_at = excluded.started_at, ended_at = excluded.ended_at, \
         input = excluded.input, output = excluded.output, tags = excluded.tags, \
         error = excluded.error, sdk_name = excluded.sdk_name, \
         sdk_version = excluded.sdk_version, ingested_at = excluded.ingested_at",
    )
    .bind(team_id)
    .bind(flow_id)
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
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    for (key, value) in &flow.tags {
        sqlx::query("INSERT INTO flow_tags (team_id, flow_id, key, value) VALUES ($1, $2, $3, $4)")
            .bind(team_id)
            .bind(flow_id)
            .bind(key)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Adds (`sign` 1) or subtracts (`sign` -1) the flow's stored step histograms to the hourly
/// reason counts.
async fn adjust_reason_counts(
    conn: &mut PgConnection,
    team_id: i64,
    flow_id: &str,
    sign: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO reason_counts (team_id, pipeline_id, step, bucket, code, count) \
         SELECT f.team_id, f.pipeline_id, s.name, f.started_at - f.started_at % 3600000, j.key, \
                $1::BIGINT * SUM(j.value::BIGINT) \
         FROM steps s JOIN flows f ON f.team_id = s.team_id AND f.id = s.flow_id, \
              json_each_text(s.reasons::JSON) j \
         WHERE s.team_id = $2 AND s.flow_id = $3 \
         GROUP BY 1, 2, 3, 4, 5 \
         ON CONFLICT (team_id, bucket, pipeline_id, step, code) \
         DO UPDATE SET count = reason_counts.count + excluded.count",
    )
    .bind(sign)
    .bind(team_id)
    .bind(flow_id)
    .execute(&mut *conn)
    .await?;
    if sign < 0 {
        sqlx::query("DELETE FROM reason_counts WHERE team_id = $1 AND count = 0 AND bucket IN \
                     (SELECT started_at - started_at % 3600000 FROM flows WHERE team_id = $2 AND id = $3)")
            .bind(team_id)
            .bind(team_id)
            .bind(flow_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Recomputes what is derived from the flow's steps: their count, the largest elimination
/// and the search document.
async fn refresh_derived(conn: &mut PgConnection, team_id: i64, flow_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE flows f SET step_count = (SELECT COUNT(*) FROM steps s \
             WHERE s.team_id = f.team_id AND s.flow_id = f.id), \
         (top_seq, top_step, top_kind, top_in, top_out) = (\
             SELECT s.seq, s.name, s.kind, s.candidates_in, s.candidates_out FROM steps s \
             WHERE s.team_id = f.team_id AND s.flow_id = f.id \
               AND s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL \
             ORDER BY s.candidates_in - s.candidates_out DESC, s.seq LIMIT 1), \
         search = to_tsvector('simple', p.name || ' ' || coalesce(f.error, '') \
             || ' ' || coalesce((SELECT string_agg(s.name || ' ' || coalesce(s.reasoning, '') \
                 || ' ' || s.reasons || ' ' || coalesce(s.search_text, ''), ' ') \
             FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id), '')) \
         FROM pipelines p WHERE p.id = f.pipeline_id AND f.team_id = $1 AND f.id = $2",
    )
    .bind(team_id)
    .bind(flow_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A PostgreSQL `tsquery` for what the user typed: every word a phrase of its tokens (which
/// are alphanumeric, so no operator can be injected), the last token a prefix.
fn ts_query(text: &str) -> Option<String> {
    let phrases: Vec<String> = search_words(text)
        .into_iter()
        .map(|tokens| format!("({}:*)", tokens.join(" <-> ")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" & "))
}

/// The payload columns of a step row.
fn payload_ref(row: &sqlx::postgres::PgRow) -> Result<Option<PayloadRef>> {
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
