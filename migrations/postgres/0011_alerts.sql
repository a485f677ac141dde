-- Drift alerts (issue #19). (The SQLite migration of the same name has the comments.)

CREATE TABLE alert_rules (
    id              BIGSERIAL PRIMARY KEY,
    team_id         BIGINT  NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    pipeline        TEXT    NOT NULL,
    step            TEXT,
    metric          TEXT    NOT NULL,
    reason          TEXT,
    comparison      TEXT    NOT NULL,
    threshold       DOUBLE PRECISION NOT NULL,
    window_minutes  BIGINT  NOT NULL,
    baseline_days   BIGINT,
    min_flows       BIGINT  NOT NULL,
    webhook_url     TEXT,
    secret          TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    last_evaluated_at BIGINT,
    UNIQUE (team_id, name)
);

CREATE TABLE alerts (
    id                BIGSERIAL PRIMARY KEY,
    team_id           BIGINT  NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    rule_id           BIGINT  NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    state             TEXT    NOT NULL CHECK (state IN ('open', 'resolved')),
    opened_at         BIGINT  NOT NULL,
    resolved_at       BIGINT,
    value             DOUBLE PRECISION NOT NULL,
    baseline          DOUBLE PRECISION,
    flows             BIGINT  NOT NULL,
    baseline_flows    BIGINT,
    example_flow_ids  TEXT    NOT NULL,
    updated_at        BIGINT  NOT NULL
);
CREATE INDEX alerts_by_team ON alerts(team_id, opened_at DESC, id DESC);
CREATE UNIQUE INDEX alerts_one_open_per_rule ON alerts(rule_id) WHERE state = 'open';

CREATE TABLE alert_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    alert_id         BIGINT  NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    event            TEXT    NOT NULL CHECK (event IN ('opened', 'resolved')),
    attempt          BIGINT  NOT NULL,
    attempted_at     BIGINT  NOT NULL,
    status_code      BIGINT,
    error            TEXT,
    delivered        BIGINT  NOT NULL,
    next_attempt_at  BIGINT
);
CREATE INDEX alert_deliveries_by_alert ON alert_deliveries(alert_id, id);
CREATE INDEX alert_deliveries_due ON alert_deliveries(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
