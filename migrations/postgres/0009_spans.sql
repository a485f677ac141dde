-- Steps that came from OpenTelemetry spans (POST /v1/traces, OTLP/gRPC) keep their span's
-- identity, so a re-sent span replaces its step instead of adding one, and the span they
-- ran inside. `parent_seq` is the parent step's seq (native records may set it too).
ALTER TABLE steps ADD COLUMN span_id TEXT;
ALTER TABLE steps ADD COLUMN parent_span_id TEXT;
ALTER TABLE steps ADD COLUMN parent_seq BIGINT;

-- Queue jobs of mode 'spans': one OTLP request's spans of one trace (domain/src/otlp).
ALTER TABLE ingest_jobs DROP CONSTRAINT IF EXISTS ingest_jobs_mode_check;
ALTER TABLE ingest_jobs ADD CONSTRAINT ingest_jobs_mode_check
    CHECK (mode IN ('replace', 'merge_steps', 'spans'));
