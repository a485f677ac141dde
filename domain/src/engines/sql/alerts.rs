//! [`AlertStore`] in SQL, the same statements on SQLite and PostgreSQL.

use async_trait::async_trait;
use flowtrail_types::alerts::{
    Alert, AlertComparison, AlertDelivery, AlertEvent, AlertMetric, AlertRule, AlertRuleInput,
    AlertState, MAX_ALERT_RULES,
};
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use super::{SqlMetadata, on_pool, stats};
use crate::alerts::store::{AlertStore, DueDelivery, Measured, StoredRule};
use crate::millis::from_ms;
use crate::{Error, Result};

const RULE_COLUMNS: &str = "id, team_id, name, pipeline, step, metric, reason, comparison, \
     threshold, window_minutes, baseline_days, min_flows, webhook_url, secret, created_at, \
     updated_at, last_evaluated_at, interval_minutes";

/// An alert's columns: the rule's name as it is now, its terms as they were when the alert
/// opened (migration `alert_terms`).
const ALERT_COLUMNS: &str = "a.id, a.team_id, a.rule_id, r.name, a.pipeline, a.step, a.metric, \
     a.reason, a.comparison, a.threshold, a.state, a.opened_at, a.resolved_at, a.value, \
     a.baseline, a.flows, a.baseline_flows, a.example_flow_ids";

fn corrupt(what: &str) -> Error {
    Error::Integrity(format!("a stored {what} cannot be read"))
}

fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// A rule from the columns [`RULE_COLUMNS`].
fn stored_rule<R>(row: &R) -> Result<StoredRule>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let metric = AlertMetric::parse(&row.try_get::<String, _>("metric")?)
        .ok_or_else(|| corrupt("alert rule metric"))?;
    let comparison = AlertComparison::parse(&row.try_get::<String, _>("comparison")?)
        .ok_or_else(|| corrupt("alert rule comparison"))?;
    let input = AlertRuleInput {
        name: row.try_get("name")?,
        pipeline: row.try_get("pipeline")?,
        step: row.try_get("step")?,
        metric,
        reason: row.try_get("reason")?,
        comparison,
        threshold: row.try_get("threshold")?,
        window_minutes: count(row.try_get("window_minutes")?),
        interval_minutes: count(row.try_get("interval_minutes")?),
        baseline_days: row.try_get::<Option<i64>, _>("baseline_days")?.map(count),
        min_flows: count(row.try_get("min_flows")?),
        webhook_url: row.try_get("webhook_url")?,
        secret: row.try_get("secret")?,
    };
    let rule = AlertRule {
        id: row.try_get("id")?,
        name: input.name.clone(),
        pipeline: input.pipeline.clone(),
        step: input.step.clone(),
        metric,
        reason: input.reason.clone(),
        comparison,
        threshold: input.threshold,
        window_minutes: input.window_minutes,
        interval_minutes: input.interval_minutes,
        baseline_days: input.baseline_days,
        min_flows: input.min_flows,
        webhook_url: input.webhook_url.clone(),
        has_secret: input.secret.is_some(),
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
        last_evaluated_at: row
            .try_get::<Option<i64>, _>("last_evaluated_at")?
            .map(from_ms),
    };
    Ok(StoredRule {
        team_id: row.try_get("team_id")?,
        input,
        rule,
    })
}

/// An alert (without its deliveries) from the columns [`ALERT_COLUMNS`]; its team.
fn alert<R>(row: &R) -> Result<(i64, Alert)>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'a> usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let examples: String = row.try_get("example_flow_ids")?;
    let example_flow_ids: Vec<Uuid> =
        serde_json::from_str(&examples).map_err(|_| corrupt("alert's example flows"))?;
    let state = AlertState::parse(&row.try_get::<String, _>("state")?)
        .ok_or_else(|| corrupt("alert state"))?;
    Ok((
        row.try_get("team_id")?,
        Alert {
            id: row.try_get("id")?,
            rule_id: row.try_get("rule_id")?,
            // Positional: both tables have a `name`... and now the terms' names too.
            rule_name: row.try_get(3usize)?,
            pipeline: row.try_get("pipeline")?,
            step: row.try_get("step")?,
            metric: AlertMetric::parse(&row.try_get::<String, _>("metric")?)
                .ok_or_else(|| corrupt("alert rule metric"))?,
            reason: row.try_get("reason")?,
            comparison: AlertComparison::parse(&row.try_get::<String, _>("comparison")?)
                .ok_or_else(|| corrupt("alert rule comparison"))?,
            threshold: row.try_get("threshold")?,
            state,
            opened_at: from_ms(row.try_get("opened_at")?),
            resolved_at: row.try_get::<Option<i64>, _>("resolved_at")?.map(from_ms),
            value: row.try_get("value")?,
            baseline: row.try_get("baseline")?,
            flows: u64::try_from(row.try_get::<i64, _>("flows")?).unwrap_or(0),
            baseline_flows: row
                .try_get::<Option<i64>, _>("baseline_flows")?
                .map(|n| u64::try_from(n).unwrap_or(0)),
            example_flow_ids,
            deliveries: Vec::new(),
        },
    ))
}

/// A delivery from `event, attempt, attempted_at, status_code, error, delivered,
/// next_attempt_at`, and its alert (`alert_id`).
fn delivery<R>(row: &R) -> Result<(i64, AlertDelivery)>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let event = AlertEvent::parse(&row.try_get::<String, _>("event")?)
        .ok_or_else(|| corrupt("delivery event"))?;
    Ok((
        row.try_get("alert_id")?,
        AlertDelivery {
            event,
            attempt: count(row.try_get("attempt")?),
            attempted_at: from_ms(row.try_get("attempted_at")?),
            status_code: row
                .try_get::<Option<i64>, _>("status_code")?
                .and_then(|code| u16::try_from(code).ok()),
            error: row.try_get("error")?,
            delivered: row.try_get::<i64, _>("delivered")? != 0,
            next_attempt_at: row
                .try_get::<Option<i64>, _>("next_attempt_at")?
                .map(from_ms),
        },
    ))
}

/// `query` with a rule's thirteen stored fields bound: the `alert_rules` columns from `name`
/// to `secret`, then `interval_minutes` (the same for `INSERT` and `UPDATE`).
macro_rules! bind_rule {
    ($query:expr, $rule:expr) => {
        $query
            .bind(&$rule.name)
            .bind(&$rule.pipeline)
            .bind(&$rule.step)
            .bind($rule.metric.as_str())
            .bind(&$rule.reason)
            .bind($rule.comparison.as_str())
            .bind($rule.threshold)
            .bind(i64::from($rule.window_minutes))
            .bind($rule.baseline_days.map(i64::from))
            .bind(i64::from($rule.min_flows))
            .bind(&$rule.webhook_url)
            .bind(&$rule.secret)
            .bind(i64::from($rule.interval_minutes))
    };
}

/// A unique-constraint violation: the rule's name is taken.
fn name_taken(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::Conflict("the team has an alert rule of that name".into())
        }
        _ => error.into(),
    }
}

impl SqlMetadata {
    /// Attaches their deliveries to alerts.
    async fn with_deliveries(&self, mut alerts: Vec<Alert>) -> Result<Vec<Alert>> {
        if alerts.is_empty() {
            return Ok(alerts);
        }
        let ids: Vec<i64> = alerts.iter().map(|a| a.id).collect();
        let list = serde_json::to_string(&ids).map_err(|e| Error::Internal(e.to_string()))?;
        let sql = format!(
            "SELECT alert_id, event, attempt, attempted_at, status_code, error, delivered, \
             next_attempt_at FROM alert_deliveries \
             WHERE alert_id IN (SELECT CAST(value AS BIGINT) FROM ({}) ids) ORDER BY id",
            self.db.json_text_values("$1")
        );
        let deliveries: Vec<(i64, AlertDelivery)> = on_pool!(&self.db, read, |pool| {
            let rows = sqlx::query(&sql).bind(&list).fetch_all(pool).await?;
            rows.iter().map(delivery).collect::<Result<_>>()?
        });
        for (alert_id, delivery) in deliveries {
            if let Some(alert) = alerts.iter_mut().find(|a| a.id == alert_id) {
                alert.deliveries.push(delivery);
            }
        }
        Ok(alerts)
    }
}

#[async_trait]
impl AlertStore for SqlMetadata {
    async fn alert_rules(&self, team_id: i64) -> Result<Vec<AlertRule>> {
        let sql =
            format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE team_id = $1 ORDER BY name, id");
        let rules: Vec<StoredRule> = on_pool!(&self.db, read, |pool| {
            let rows = sqlx::query(&sql).bind(team_id).fetch_all(pool).await?;
            rows.iter().map(stored_rule).collect::<Result<_>>()?
        });
        Ok(rules.into_iter().map(|r| r.rule).collect())
    }

    async fn alert_rule(&self, team_id: i64, rule_id: i64) -> Result<Option<StoredRule>> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE team_id = $1 AND id = $2");
        on_pool!(&self.db, read, |pool| {
            let row = sqlx::query(&sql)
                .bind(team_id)
                .bind(rule_id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(stored_rule).transpose()
        })
    }

    async fn all_alert_rules(&self) -> Result<Vec<StoredRule>> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY id");
        on_pool!(&self.db, read, |pool| {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter().map(stored_rule).collect()
        })
    }

    async fn create_alert_rule(
        &self,
        team_id: i64,
        rule: &AlertRuleInput,
        now_ms: i64,
    ) -> Result<AlertRule> {
        let existing: i64 = on_pool!(&self.db, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM alert_rules WHERE team_id = $1")
                .bind(team_id)
                .fetch_one(pool)
                .await?
        });
        if existing >= MAX_ALERT_RULES as i64 {
            return Err(Error::Conflict(format!(
                "a team has at most {MAX_ALERT_RULES} alert rules: delete one first"
            )));
        }
        let id: i64 = on_pool!(&self.db, write, |pool| {
            let query = sqlx::query_scalar(
                "INSERT INTO alert_rules (team_id, name, pipeline, step, metric, reason, \
                 comparison, threshold, window_minutes, baseline_days, min_flows, webhook_url, \
                 secret, interval_minutes, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
                 RETURNING id",
            )
            .bind(team_id);
            bind_rule!(query, rule)
                .bind(now_ms)
                .fetch_one(pool)
                .await
                .map_err(name_taken)?
        });
        self.alert_rule(team_id, id)
            .await?
            .map(|stored| stored.rule)
            .ok_or(Error::NotFound("alert rule"))
    }

    async fn update_alert_rule(
        &self,
        team_id: i64,
        rule_id: i64,
        rule: &AlertRuleInput,
        now_ms: i64,
    ) -> Result<Option<AlertRule>> {
        let changed = on_pool!(&self.db, write, |pool| {
            let query = sqlx::query(
                "UPDATE alert_rules SET name = $3, pipeline = $4, step = $5, metric = $6, \
                 reason = $7, comparison = $8, threshold = $9, window_minutes = $10, \
                 baseline_days = $11, min_flows = $12, webhook_url = $13, secret = $14, \
                 interval_minutes = $15, updated_at = $16 WHERE team_id = $1 AND id = $2",
            )
            .bind(team_id)
            .bind(rule_id);
            bind_rule!(query, rule)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(name_taken)?
                .rows_affected()
        });
        if changed == 0 {
            return Ok(None);
        }
        Ok(self.alert_rule(team_id, rule_id).await?.map(|s| s.rule))
    }

    async fn delete_alert_rule(&self, team_id: i64, rule_id: i64) -> Result<bool> {
        on_pool!(&self.db, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM alert_deliveries WHERE alert_id IN \
                 (SELECT id FROM alerts WHERE team_id = $1 AND rule_id = $2)",
            )
            .bind(team_id)
            .bind(rule_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM alerts WHERE team_id = $1 AND rule_id = $2")
                .bind(team_id)
                .bind(rule_id)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM alert_rules WHERE team_id = $1 AND id = $2")
                .bind(team_id)
                .bind(rule_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(deleted > 0)
        })
    }

    async fn rule_evaluated(&self, rule_id: i64, now_ms: i64) -> Result<()> {
        on_pool!(&self.db, write, |pool| {
            sqlx::query("UPDATE alert_rules SET last_evaluated_at = $2 WHERE id = $1")
                .bind(rule_id)
                .bind(now_ms)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn open_alert(&self, rule_id: i64) -> Result<Option<i64>> {
        on_pool!(&self.db, read, |pool| {
            Ok(
                sqlx::query_scalar("SELECT id FROM alerts WHERE rule_id = $1 AND state = 'open'")
                    .bind(rule_id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    async fn open_new_alert(
        &self,
        team_id: i64,
        rule_id: i64,
        measured: &Measured,
        examples: &[Uuid],
        now_ms: i64,
    ) -> Result<i64> {
        let examples =
            serde_json::to_string(examples).map_err(|e| Error::Internal(e.to_string()))?;
        on_pool!(&self.db, write, |pool| {
            // The rule's terms are copied in: what the alert says stays what fired.
            Ok(sqlx::query_scalar(
                "INSERT INTO alerts (team_id, rule_id, state, opened_at, value, baseline, \
                 flows, baseline_flows, example_flow_ids, updated_at, \
                 pipeline, step, metric, reason, comparison, threshold) \
                 SELECT $1, $2, 'open', $3, $4, $5, $6, $7, $8, $3, \
                 r.pipeline, r.step, r.metric, r.reason, r.comparison, r.threshold \
                 FROM alert_rules r WHERE r.id = $2 RETURNING id",
            )
            .bind(team_id)
            .bind(rule_id)
            .bind(now_ms)
            .bind(measured.value)
            .bind(measured.baseline)
            .bind(i64::try_from(measured.flows).unwrap_or(i64::MAX))
            .bind(
                measured
                    .baseline_flows
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            )
            .bind(&examples)
            .fetch_one(pool)
            .await
            .map_err(|error| match &error {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    Error::Conflict("the rule has an open alert".into())
                }
                _ => error.into(),
            })?)
        })
    }

    async fn update_alert(
        &self,
        alert_id: i64,
        measured: &Measured,
        resolve: bool,
        now_ms: i64,
    ) -> Result<()> {
        on_pool!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE alerts SET value = $2, baseline = $3, flows = $4, baseline_flows = $5, \
                 updated_at = $6, \
                 state = CASE WHEN $7 THEN 'resolved' ELSE state END, \
                 resolved_at = CASE WHEN $7 THEN $6 ELSE resolved_at END \
                 WHERE id = $1 AND state = 'open'",
            )
            .bind(alert_id)
            .bind(measured.value)
            .bind(measured.baseline)
            .bind(i64::try_from(measured.flows).unwrap_or(i64::MAX))
            .bind(
                measured
                    .baseline_flows
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            )
            .bind(now_ms)
            .bind(resolve)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn alerts(
        &self,
        team_id: i64,
        state: Option<AlertState>,
        limit: u32,
    ) -> Result<Vec<Alert>> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN alert_rules r ON r.id = a.rule_id \
             WHERE a.team_id = $1 AND (CAST($2 AS TEXT) IS NULL OR a.state = $2) \
             ORDER BY a.opened_at DESC, a.id DESC LIMIT $3"
        );
        let alerts: Vec<Alert> = on_pool!(&self.db, read, |pool| {
            let rows = sqlx::query(&sql)
                .bind(team_id)
                .bind(state.map(AlertState::as_str))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| alert(row).map(|(_, alert)| alert))
                .collect::<Result<_>>()?
        });
        self.with_deliveries(alerts).await
    }

    async fn alert(&self, alert_id: i64) -> Result<Option<(i64, Alert)>> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN alert_rules r ON r.id = a.rule_id \
             WHERE a.id = $1"
        );
        let found = on_pool!(&self.db, read, |pool| {
            let row = sqlx::query(&sql)
                .bind(alert_id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(alert).transpose()?
        });
        let Some((team_id, found)) = found else {
            return Ok(None);
        };
        let mut with = self.with_deliveries(vec![found]).await?;
        Ok(with.pop().map(|alert| (team_id, alert)))
    }

    async fn record_delivery(&self, alert_id: i64, delivery: &AlertDelivery) -> Result<()> {
        let to_ms = |at: time::OffsetDateTime| crate::millis::to_ms(at);
        on_pool!(&self.db, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE alert_deliveries SET next_attempt_at = NULL \
                 WHERE alert_id = $1 AND event = $2",
            )
            .bind(alert_id)
            .bind(delivery.event.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO alert_deliveries (alert_id, event, attempt, attempted_at, \
                 status_code, error, delivered, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(alert_id)
            .bind(delivery.event.as_str())
            .bind(i64::from(delivery.attempt))
            .bind(to_ms(delivery.attempted_at))
            .bind(delivery.status_code.map(i64::from))
            .bind(&delivery.error)
            .bind(i64::from(delivery.delivered))
            .bind(delivery.next_attempt_at.map(to_ms))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<DueDelivery>> {
        let rows: Vec<(i64, String, i64)> = on_pool!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT alert_id, event, attempt FROM alert_deliveries \
                 WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at, id LIMIT $2",
            )
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(alert_id, event, attempts)| {
                let event = AlertEvent::parse(&event).ok_or_else(|| corrupt("delivery event"))?;
                Ok(DueDelivery {
                    alert_id,
                    event,
                    attempts: count(attempts),
                })
            })
            .collect()
    }

    async fn flow_counts_by_day(
        &self,
        team_id: i64,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<(String, i64, u64, u64)>> {
        stats::flow_counts(&self.db, team_id, None, (since_ms, until_ms), 86_400_000).await
    }

    async fn flow_counts(
        &self,
        team_id: i64,
        pipeline: &str,
        since_ms: i64,
        until_ms: i64,
        tag: Option<&(String, String)>,
    ) -> Result<(u64, u64)> {
        if tag.is_none() {
            // From the hourly flow counts: the range's days, summed.
            let rows = stats::flow_counts(
                &self.db,
                team_id,
                Some(pipeline),
                (since_ms, until_ms),
                86_400_000,
            )
            .await?;
            return Ok(rows
                .into_iter()
                .fold((0, 0), |(all, failed), (_, _, flows, fails)| {
                    (all + flows, failed + fails)
                }));
        }
        let (all, failed): (i64, i64) = on_pool!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT CAST(COUNT(*) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN f.status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM flows f JOIN pipelines p ON p.id = f.pipeline_id \
                 WHERE f.team_id = $1 AND p.team_id = $1 AND p.name = $2 \
                   AND f.started_at >= $3 AND f.started_at < $4 \
                   AND (CAST($5 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM flow_tags t \
                       WHERE t.team_id = f.team_id AND t.flow_id = f.id AND t.key = $5 \
                         AND t.value = $6))",
            )
            .bind(team_id)
            .bind(pipeline)
            .bind(since_ms)
            .bind(until_ms)
            .bind(tag.map(|(key, _)| key))
            .bind(tag.map(|(_, value)| value))
            .fetch_one(pool)
            .await?
        });
        Ok((
            u64::try_from(all).unwrap_or(0),
            u64::try_from(failed).unwrap_or(0),
        ))
    }
}
