-- Every candidate id findable (issue #14, item 6). A tsvector holds at most 1 MB, so a flow's
-- search document is indexed up to its first 100,000 characters (search_partial says when it
-- was longer), and every candidate id of every step is kept here, matched whole by `q`.
-- Flows stored before this migration are found by their indexed text, as before.
CREATE TABLE flow_candidates (
    team_id       BIGINT NOT NULL,
    candidate_id  TEXT   NOT NULL,
    flow_id       TEXT   NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (team_id, candidate_id, flow_id, seq)
);
CREATE INDEX flow_candidates_by_flow ON flow_candidates (team_id, flow_id, seq);
ALTER TABLE flows ADD COLUMN search_partial BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX flows_search_partial ON flows (team_id) WHERE search_partial;
