-- The admin side (issue #15): API key scope 'admin' and last use, pins, retention policies
-- and runs, deferred payload deletions, usage counters, and a lease so that one sweeper runs
-- at a time per deployment. (The SQLite migration of the same name has the comments.)

ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check
    CHECK (scope IN ('ingest', 'read', 'all', 'admin'));
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
CREATE INDEX api_keys_by_team ON api_keys(team_id);

ALTER TABLE flows ADD COLUMN pinned_at BIGINT;
CREATE INDEX flows_pinned ON flows(team_id, pipeline_id, started_at) WHERE pinned_at IS NOT NULL;

CREATE TABLE retention_policies (
    team_id   BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    pipeline  TEXT   NOT NULL,
    days      BIGINT,
    PRIMARY KEY (team_id, pipeline)
);

CREATE TABLE retention_runs (
    id             BIGSERIAL PRIMARY KEY,
    team_id        BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    started_at     BIGINT NOT NULL,
    finished_at    BIGINT,
    flows_deleted  BIGINT NOT NULL DEFAULT 0,
    bytes_deleted  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX retention_runs_by_team ON retention_runs(team_id, started_at DESC);

CREATE TABLE payload_deletions (
    key        TEXT   PRIMARY KEY,
    queued_at  BIGINT NOT NULL
);

CREATE TABLE leases (
    name    TEXT   PRIMARY KEY,
    holder  TEXT   NOT NULL,
    until   BIGINT NOT NULL
);

CREATE TABLE usage_daily (
    team_id       BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    day           BIGINT NOT NULL,
    pipeline      TEXT   NOT NULL,
    flows         BIGINT NOT NULL DEFAULT 0,
    steps         BIGINT NOT NULL DEFAULT 0,
    observations  BIGINT NOT NULL DEFAULT 0,
    bytes         BIGINT NOT NULL DEFAULT 0,
    rejected      BIGINT NOT NULL DEFAULT 0,
    rate_limited  BIGINT NOT NULL DEFAULT 0,
    replayed      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, day, pipeline)
);

CREATE INDEX ingest_jobs_by_flow ON ingest_jobs(team_id, flow_id);
