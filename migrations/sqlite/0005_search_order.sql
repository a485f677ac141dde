-- The full-text index in time order: a search document's rowid is its flow's time bucket
-- (started_at clamped to ±2^42 ms, shifted to be non-negative, in units of 2^11 ms) shifted
-- left by 30 bits, plus a counter within the bucket (domain/src/sqlite/search.rs). A text
-- search then walks the index newest first and stops at a page.
DROP TABLE flow_search;
DROP TABLE flow_search_ids;
CREATE TABLE flow_search_ids (
    id       INTEGER PRIMARY KEY,
    team_id  INTEGER NOT NULL,
    flow_id  TEXT    NOT NULL,
    UNIQUE (team_id, flow_id)
);
CREATE VIRTUAL TABLE flow_search USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO flow_search_ids (id, team_id, flow_id)
SELECT (b.bucket << 30) + row_number() OVER (PARTITION BY b.bucket ORDER BY b.team_id, b.id) - 1,
       b.team_id, b.id
FROM (SELECT team_id, id,
             (min(max(started_at, -4398046511104), 4398046511103) + 4398046511104) >> 11 AS bucket
      FROM flows) b;
INSERT INTO flow_search (rowid, body)
SELECT d.id, p.name || ' ' || coalesce(f.error, '') || ' ' || coalesce((
    SELECT group_concat(s.name || ' ' || coalesce(s.reasoning, '') || ' ' || s.reasons
        || ' ' || coalesce(s.search_text, ''), ' ')
    FROM steps s WHERE s.team_id = f.team_id AND s.flow_id = f.id), '')
FROM flow_search_ids d
JOIN flows f ON f.team_id = d.team_id AND f.id = d.flow_id
JOIN pipelines p ON p.id = f.pipeline_id;
