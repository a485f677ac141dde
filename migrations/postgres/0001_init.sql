-- Flow Trail, scale-out profile (PostgreSQL). Times are Unix milliseconds (BIGINT).
-- The same tables as migrations/sqlite, so one conformance suite covers both.
-- Never edit a migration after it has landed: add a new one.

CREATE TABLE teams (
    id          BIGSERIAL PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id             BIGSERIAL PRIMARY KEY,
    email          TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE memberships (
    team_id  BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role     TEXT    NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships(user_id);

-- Only a SHA-256 of each key is kept; the key itself is shown once at creation.
CREATE TABLE api_keys (
    id          BIGSERIAL PRIMARY KEY,
    team_id     BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    scope       TEXT    NOT NULL CHECK (scope IN ('ingest', 'read', 'all')),
    key_prefix  TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- The durable ingest queue. A row is acknowledged (202) only after its transaction commits.
-- state: queued -> claimed (lease_until) -> done | queued again (retry, not before run_after) | dead
CREATE TABLE ingest_jobs (
    id               BIGSERIAL PRIMARY KEY,
    team_id          BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    idempotency_key  TEXT    NOT NULL,
    body_sha256      TEXT    NOT NULL,
    flow_id          TEXT    NOT NULL,
    flow_version     BIGINT NOT NULL,
    body             BYTEA,             -- zstd JSON; NULL once done
    request_id       TEXT,
    state            TEXT    NOT NULL DEFAULT 'queued'
                             CHECK (state IN ('queued', 'claimed', 'done', 'dead')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    run_after        BIGINT NOT NULL,
    lease_until      BIGINT,
    last_error       TEXT,
    enqueued_at      BIGINT NOT NULL,
    finished_at      BIGINT,
    UNIQUE (team_id, idempotency_key)
);
CREATE INDEX ingest_jobs_ready ON ingest_jobs(state, run_after) WHERE state IN ('queued', 'claimed');

CREATE TABLE pipelines (
    id       BIGSERIAL PRIMARY KEY,
    team_id  BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name     TEXT    NOT NULL,
    UNIQUE (team_id, name)
);

CREATE TABLE flows (
    team_id      BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    id           TEXT    NOT NULL,
    version      BIGINT NOT NULL,
    pipeline_id  BIGINT NOT NULL REFERENCES pipelines(id),
    status       TEXT    NOT NULL,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    input        TEXT    NOT NULL,  -- JSON
    output       TEXT    NOT NULL,  -- JSON
    tags         TEXT    NOT NULL,  -- JSON object of strings
    error        TEXT,
    sdk_name     TEXT,
    sdk_version  TEXT,
    step_count   BIGINT NOT NULL,
    ingested_at  BIGINT NOT NULL,
    PRIMARY KEY (team_id, id)
);
-- The flows list: newest first, per team, optionally per pipeline.
CREATE INDEX flows_by_time ON flows(team_id, started_at DESC, id DESC);
CREATE INDEX flows_by_pipeline ON flows(team_id, pipeline_id, started_at DESC, id DESC);

CREATE TABLE flow_tags (
    team_id  BIGINT NOT NULL,
    flow_id  TEXT    NOT NULL,
    key      TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (team_id, flow_id, key),
    FOREIGN KEY (team_id, flow_id) REFERENCES flows(team_id, id) ON DELETE CASCADE
);
CREATE INDEX flow_tags_by_value ON flow_tags(team_id, key, value);

CREATE TABLE steps (
    team_id            BIGINT NOT NULL,
    flow_id            TEXT    NOT NULL,
    seq                BIGINT NOT NULL,
    name               TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    started_at         BIGINT,
    ended_at           BIGINT,
    input              TEXT    NOT NULL,  -- JSON
    output             TEXT    NOT NULL,  -- JSON
    reasoning          TEXT,
    candidates_in      BIGINT,
    candidates_out     BIGINT,
    reasons            TEXT    NOT NULL,  -- JSON: reason code -> count
    capture            TEXT    NOT NULL,
    observation_count  BIGINT NOT NULL,
    payload_key        TEXT,              -- object-store key of the zstd JSON observations
    payload_sha256     TEXT,              -- of the stored (compressed) bytes
    payload_bytes      BIGINT,
    PRIMARY KEY (team_id, flow_id, seq),
    FOREIGN KEY (team_id, flow_id) REFERENCES flows(team_id, id) ON DELETE CASCADE
);
CREATE INDEX steps_by_kind ON steps(team_id, kind);
