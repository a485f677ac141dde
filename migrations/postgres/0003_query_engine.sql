-- Query engine: the largest elimination on each flow, full-text search, and exact reason
-- histograms rolled up per hour.

ALTER TABLE flows
    ADD COLUMN top_seq BIGINT,
    ADD COLUMN top_step TEXT,
    ADD COLUMN top_kind TEXT,
    ADD COLUMN top_in BIGINT,
    ADD COLUMN top_out BIGINT,
    -- pipeline, error, step names, reasoning, reason codes, observation text
    ADD COLUMN search TSVECTOR;
CREATE INDEX flows_search ON flows USING GIN (search);

ALTER TABLE steps ADD COLUMN search_text TEXT;

CREATE TABLE reason_counts (
    team_id      BIGINT NOT NULL,
    pipeline_id  BIGINT NOT NULL,
    step         TEXT   NOT NULL,
    bucket       BIGINT NOT NULL,  -- start of the hour, Unix ms
    code         TEXT   NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (team_id, bucket, pipeline_id, step, code)
);

UPDATE flows SET (top_seq, top_step, top_kind, top_in, top_out) = (
    SELECT s.seq, s.name, s.kind, s.candidates_in, s.candidates_out FROM steps s
    WHERE s.team_id = flows.team_id AND s.flow_id = flows.id
      AND s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL
    ORDER BY s.candidates_in - s.candidates_out DESC, s.seq LIMIT 1
);
INSERT INTO reason_counts (team_id, pipeline_id, step, bucket, code, count)
SELECT f.team_id, f.pipeline_id, s.name, f.started_at - f.started_at % 3600000, j.key, SUM(j.value::BIGINT)
FROM steps s JOIN flows f ON f.team_id = s.team_id AND f.id = s.flow_id,
     json_each_text(s.reasons::JSON) j
GROUP BY 1, 2, 3, 4, 5;
UPDATE flows f SET search = to_tsvector('simple', p.name || ' ' || coalesce(f.error, '') || ' ' || coalesce((
    SELECT string_agg(s.name || ' ' || coalesce(s.reasoning, '') || ' ' || s.reasons, ' ')
    FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id), ''))
FROM pipelines p WHERE p.id = f.pipeline_id;
