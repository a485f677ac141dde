-- How a queued job's record combines with what is stored: 'replace' (a whole flow) or
-- 'merge_steps' (a steps push). Before this column, a push was marked by a prefix of its
-- body; jobs queued then are still read that way (domain/src/ingest/queue.rs).
ALTER TABLE ingest_jobs ADD COLUMN mode TEXT NOT NULL DEFAULT 'replace'
    CHECK (mode IN ('replace', 'merge_steps'));
