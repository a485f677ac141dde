//! [`AlertStore`]: what drift alerts need of the SQL database (one implementation for both
//! engines, `engines::sql::alerts`).

use async_trait::async_trait;
use flowtrail_types::alerts::{
    Alert, AlertDelivery, AlertEvent, AlertRule, AlertRuleInput, AlertState,
};

use crate::Result;

/// A rule as the evaluator reads it: its team, its stored fields (the secret included) and
/// its public form.
#[derive(Debug, Clone)]
pub struct StoredRule {
    pub team_id: i64,
    pub input: AlertRuleInput,
    pub rule: AlertRule,
}

/// The numbers of one evaluation of a rule whose condition held (or stopped holding).
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub value: f64,
    pub baseline: Option<f64>,
    pub flows: u64,
    pub baseline_flows: Option<u64>,
}

/// A delivery due again: the alert, the event, and the attempts made so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub alert_id: i64,
    pub event: AlertEvent,
    pub attempts: u32,
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    /// The team's rules, by name.
    async fn alert_rules(&self, team_id: i64) -> Result<Vec<AlertRule>>;
    /// One rule of the team, with its stored fields.
    async fn alert_rule(&self, team_id: i64, rule_id: i64) -> Result<Option<StoredRule>>;
    /// Every rule of every team (what one evaluation measures).
    async fn all_alert_rules(&self) -> Result<Vec<StoredRule>>;
    /// Stores a new rule. Errors: `Conflict` when the team has a rule of that name or
    /// already [`flowtrail_types::alerts::MAX_ALERT_RULES`].
    async fn create_alert_rule(
        &self,
        team_id: i64,
        rule: &AlertRuleInput,
        now_ms: i64,
    ) -> Result<AlertRule>;
    /// Replaces a rule's fields; `None` when the team has no such rule. Errors: `Conflict`
    /// on a name another rule has.
    async fn update_alert_rule(
        &self,
        team_id: i64,
        rule_id: i64,
        rule: &AlertRuleInput,
        now_ms: i64,
    ) -> Result<Option<AlertRule>>;
    /// Deletes a rule with its alerts and their deliveries; whether the team had it.
    async fn delete_alert_rule(&self, team_id: i64, rule_id: i64) -> Result<bool>;
    /// Records that the rule was measured at `now_ms`.
    async fn rule_evaluated(&self, rule_id: i64, now_ms: i64) -> Result<()>;
    /// The rule's open alert, if any.
    async fn open_alert(&self, rule_id: i64) -> Result<Option<i64>>;
    /// Opens an alert for the rule; its id. Errors: `Conflict` if one is open already.
    async fn open_new_alert(
        &self,
        team_id: i64,
        rule_id: i64,
        measured: &Measured,
        examples: &[uuid::Uuid],
        now_ms: i64,
    ) -> Result<i64>;
    /// Updates an open alert's numbers (`resolve`: and resolves it at `now_ms`).
    async fn update_alert(
        &self,
        alert_id: i64,
        measured: &Measured,
        resolve: bool,
        now_ms: i64,
    ) -> Result<()>;
    /// The team's alerts, newest first (`state`: only those).
    async fn alerts(
        &self,
        team_id: i64,
        state: Option<AlertState>,
        limit: u32,
    ) -> Result<Vec<Alert>>;
    /// One alert (any team), with its team.
    async fn alert(&self, alert_id: i64) -> Result<Option<(i64, Alert)>>;
    /// Records a delivery attempt; an earlier attempt of the same event is no longer due.
    async fn record_delivery(&self, alert_id: i64, delivery: &AlertDelivery) -> Result<()>;
    /// Deliveries whose next attempt is due at `now_ms`, oldest first.
    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<DueDelivery>>;
    /// Flows of the team that started in `[since_ms, until_ms)`, per pipeline and UTC day:
    /// `(pipeline, day start in Unix ms, flows, failed)`, in no order; days without flows
    /// are left out. Exact for any range; reads the hourly flow counts, not every flow.
    async fn flow_counts_by_day(
        &self,
        team_id: i64,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<(String, i64, u64, u64)>>;
    /// Flows of the team's pipeline that started in `[since_ms, until_ms)` (with tag `(key,
    /// value)` when given): all, and failed.
    async fn flow_counts(
        &self,
        team_id: i64,
        pipeline: &str,
        since_ms: i64,
        until_ms: i64,
        tag: Option<&(String, String)>,
    ) -> Result<(u64, u64)>;
}
