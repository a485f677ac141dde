-- Drift alerts (issue #19): rules per team, the alerts they open and resolve, and each
-- webhook delivery attempt. Times are Unix ms.

-- A rule: watch `metric` of a pipeline (and step) over the last `window_minutes`, against a
-- `threshold` (comparison above/below) or against the same metric over the `baseline_days`
-- before the window (comparison shift: fires when the two differ by more than threshold).
-- The webhook secret is kept to sign deliveries (HMAC-SHA256); the API never returns it.
CREATE TABLE alert_rules (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id         INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    pipeline        TEXT    NOT NULL,
    step            TEXT,
    metric          TEXT    NOT NULL,
    reason          TEXT,
    comparison      TEXT    NOT NULL,
    threshold       REAL    NOT NULL,
    window_minutes  INTEGER NOT NULL,
    baseline_days   INTEGER,
    min_flows       INTEGER NOT NULL,
    webhook_url     TEXT,
    secret          TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_evaluated_at INTEGER,
    UNIQUE (team_id, name)
);

-- An alert: opened when its rule's condition starts to hold, kept (value updated) while it
-- holds, resolved when it stops. At most one open alert per rule.
CREATE TABLE alerts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id           INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    rule_id           INTEGER NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    state             TEXT    NOT NULL CHECK (state IN ('open', 'resolved')),
    opened_at         INTEGER NOT NULL,
    resolved_at       INTEGER,
    value             REAL    NOT NULL,
    baseline          REAL,
    flows             INTEGER NOT NULL,
    baseline_flows    INTEGER,
    example_flow_ids  TEXT    NOT NULL,  -- JSON array of flow ids
    updated_at        INTEGER NOT NULL
);
CREATE INDEX alerts_by_team ON alerts(team_id, opened_at DESC, id DESC);
CREATE UNIQUE INDEX alerts_one_open_per_rule ON alerts(rule_id) WHERE state = 'open';

-- Webhook deliveries: one row per attempt of one event (opened, resolved) of an alert. An
-- attempt that failed and is to be retried has `next_attempt_at`.
CREATE TABLE alert_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id         INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    event            TEXT    NOT NULL CHECK (event IN ('opened', 'resolved')),
    attempt          INTEGER NOT NULL,
    attempted_at     INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    delivered        INTEGER NOT NULL,
    next_attempt_at  INTEGER
);
CREATE INDEX alert_deliveries_by_alert ON alert_deliveries(alert_id, id);
CREATE INDEX alert_deliveries_due ON alert_deliveries(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
