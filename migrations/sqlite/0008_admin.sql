-- The admin side (issue #15): API key scope 'admin' and last use, pins, retention policies
-- and runs, deferred payload deletions, usage counters, and a lease so that one sweeper runs
-- at a time per deployment.

-- SQLite cannot change a CHECK constraint: api_keys is rebuilt (nothing refers to it).
CREATE TABLE api_keys_v2 (
    id            INTEGER PRIMARY KEY,
    team_id       INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    scope         TEXT    NOT NULL CHECK (scope IN ('ingest', 'read', 'all', 'admin')),
    key_prefix    TEXT    NOT NULL,
    key_hash      TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    last_used_at  INTEGER          -- updated at most once a minute per key
);
INSERT INTO api_keys_v2 (id, team_id, name, scope, key_prefix, key_hash, created_at, revoked_at)
SELECT id, team_id, name, scope, key_prefix, key_hash, created_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_v2 RENAME TO api_keys;
CREATE INDEX api_keys_by_team ON api_keys(team_id);

-- A pinned flow is never deleted by retention.
ALTER TABLE flows ADD COLUMN pinned_at INTEGER;
CREATE INDEX flows_pinned ON flows(team_id, pipeline_id, started_at) WHERE pinned_at IS NOT NULL;

-- Retention: '' is the team default, any other value a pipeline's override.
-- days NULL = keep forever.
CREATE TABLE retention_policies (
    team_id   INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    pipeline  TEXT    NOT NULL,
    days      INTEGER,
    PRIMARY KEY (team_id, pipeline)
);

-- One row per team and sweep; finished_at NULL while running (or if the sweep was killed).
CREATE TABLE retention_runs (
    id             INTEGER PRIMARY KEY,
    team_id        INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    flows_deleted  INTEGER NOT NULL DEFAULT 0,
    bytes_deleted  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX retention_runs_by_team ON retention_runs(team_id, started_at DESC);

-- Object-store payloads whose rows are gone, written in the transaction that deletes the
-- rows; the objects are deleted after it commits, then these rows. A crash in between
-- leaves rows here, and the next sweep finishes the job: no orphan object, no row pointing
-- at a deleted object.
CREATE TABLE payload_deletions (
    key        TEXT    PRIMARY KEY,
    queued_at  INTEGER NOT NULL
);

-- Named leases (the retention sweeper holds 'retention' while it runs).
CREATE TABLE leases (
    name    TEXT    PRIMARY KEY,
    holder  TEXT    NOT NULL,
    until   INTEGER NOT NULL
);

-- Usage per team, UTC day (Unix ms of its midnight) and pipeline ('' when the request was
-- refused before its pipeline was known).
CREATE TABLE usage_daily (
    team_id       INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    day           INTEGER NOT NULL,
    pipeline      TEXT    NOT NULL,
    flows         INTEGER NOT NULL DEFAULT 0,
    steps         INTEGER NOT NULL DEFAULT 0,
    observations  INTEGER NOT NULL DEFAULT 0,
    bytes         INTEGER NOT NULL DEFAULT 0,
    rejected      INTEGER NOT NULL DEFAULT 0,
    rate_limited  INTEGER NOT NULL DEFAULT 0,
    replayed      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, day, pipeline)
);

-- Idempotency keys of a deleted flow are found by flow.
CREATE INDEX ingest_jobs_by_flow ON ingest_jobs(team_id, flow_id);
