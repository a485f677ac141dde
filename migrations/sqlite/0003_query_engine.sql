-- Query engine: the largest elimination on each flow, full-text search, and exact reason
-- histograms rolled up per hour.

-- The step that eliminated the most candidates (candidates_in - candidates_out), per flow.
ALTER TABLE flows ADD COLUMN top_seq INTEGER;
ALTER TABLE flows ADD COLUMN top_step TEXT;
ALTER TABLE flows ADD COLUMN top_kind TEXT;
ALTER TABLE flows ADD COLUMN top_in INTEGER;
ALTER TABLE flows ADD COLUMN top_out INTEGER;

-- Text drawn from a step's observations (candidate ids, reason codes and texts), capped.
ALTER TABLE steps ADD COLUMN search_text TEXT;


-- One search document per flow: pipeline, error, step names, reasoning, reason codes,
-- observation text. FTS5 rowids are integers, flows have text ids: flow_search_ids maps them.
CREATE TABLE flow_search_ids (
    id       INTEGER PRIMARY KEY,
    team_id  INTEGER NOT NULL,
    flow_id  TEXT    NOT NULL,
    UNIQUE (team_id, flow_id)
);
CREATE VIRTUAL TABLE flow_search USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
);

-- Exact reason histograms per pipeline, step name and hour (by the flow's started_at).
-- Maintained in the same transaction as the steps: added when a step is written, subtracted
-- when it is replaced.
CREATE TABLE reason_counts (
    team_id      INTEGER NOT NULL,
    pipeline_id  INTEGER NOT NULL,
    step         TEXT    NOT NULL,
    bucket       INTEGER NOT NULL,  -- start of the hour, Unix ms
    code         TEXT    NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (team_id, bucket, pipeline_id, step, code)
) WITHOUT ROWID;

-- Backfill what was stored before this migration.
UPDATE flows SET (top_seq, top_step, top_kind, top_in, top_out) = (
    SELECT s.seq, s.name, s.kind, s.candidates_in, s.candidates_out FROM steps s
    WHERE s.team_id = flows.team_id AND s.flow_id = flows.id
      AND s.candidates_in IS NOT NULL AND s.candidates_out IS NOT NULL
    ORDER BY s.candidates_in - s.candidates_out DESC, s.seq LIMIT 1
);
INSERT INTO reason_counts (team_id, pipeline_id, step, bucket, code, count)
SELECT f.team_id, f.pipeline_id, s.name, f.started_at - f.started_at % 3600000, j.key, SUM(j.value)
FROM steps s JOIN flows f ON f.team_id = s.team_id AND f.id = s.flow_id, json_each(s.reasons) j
WHERE true
GROUP BY 1, 2, 3, 4, 5;
INSERT INTO flow_search_ids (team_id, flow_id) SELECT team_id, id FROM flows;
INSERT INTO flow_search (rowid, body)
SELECT d.id, p.name || ' ' || coalesce(f.error, '') || ' ' || coalesce((
    SELECT group_concat(s.name || ' ' || coalesce(s.reasoning, '') || ' ' || s.reasons, ' ')
    FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id), '')
FROM flow_search_ids d
JOIN flows f ON f.team_id = d.team_id AND f.id = d.flow_id
JOIN pipelines p ON p.id = f.pipeline_id;
