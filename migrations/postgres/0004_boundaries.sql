-- Recorded calls across non-deterministic boundaries (a JSON array per step), for replays.
ALTER TABLE steps ADD COLUMN boundaries TEXT;
