-- Steps that came from OpenTelemetry spans (POST /v1/traces, OTLP/gRPC) keep their span's
-- identity, so a re-sent span replaces its step instead of adding one, and the span they
-- ran inside. `parent_seq` is the parent step's seq (native records may set it too).
ALTER TABLE steps ADD COLUMN span_id TEXT;
ALTER TABLE steps ADD COLUMN parent_span_id TEXT;
ALTER TABLE steps ADD COLUMN parent_seq INTEGER;

-- Queue jobs of mode 'spans': one OTLP request's spans of one trace (domain/src/otlp).
-- SQLite cannot change a CHECK constraint: ingest_jobs is rebuilt (nothing refers to it).
CREATE TABLE ingest_jobs_v2 (
    id               INTEGER PRIMARY KEY,
    team_id          INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    idempotency_key  TEXT    NOT NULL,
    body_sha256      TEXT    NOT NULL,
    flow_id          TEXT    NOT NULL,
    flow_version     INTEGER NOT NULL,
    body             BLOB,             -- zstd JSON; NULL once done
    request_id       TEXT,
    state            TEXT    NOT NULL DEFAULT 'queued'
                             CHECK (state IN ('queued', 'claimed', 'done', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_after        INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT,
    enqueued_at      INTEGER NOT NULL,
    finished_at      INTEGER,
    mode             TEXT    NOT NULL DEFAULT 'replace'
                             CHECK (mode IN ('replace', 'merge_steps', 'spans')),
    UNIQUE (team_id, idempotency_key)
);
INSERT INTO ingest_jobs_v2 (id, team_id, idempotency_key, body_sha256, flow_id, flow_version,
    body, request_id, state, attempts, run_after, lease_until, last_error, enqueued_at,
    finished_at, mode)
SELECT id, team_id, idempotency_key, body_sha256, flow_id, flow_version, body, request_id,
    state, attempts, run_after, lease_until, last_error, enqueued_at, finished_at, mode
FROM ingest_jobs;
DROP TABLE ingest_jobs;
ALTER TABLE ingest_jobs_v2 RENAME TO ingest_jobs;
CREATE INDEX ingest_jobs_ready ON ingest_jobs(state, run_after) WHERE state IN ('queued', 'claimed');
CREATE INDEX ingest_jobs_by_flow ON ingest_jobs(team_id, flow_id);
