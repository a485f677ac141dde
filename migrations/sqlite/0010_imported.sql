-- Flows loaded from a debugging bundle (`flowtrail import`, `POST /api/v1/import`) keep their
-- ids and say so: when they were imported (Unix ms); NULL for flows this deployment ingested.
-- A later native write of the flow (a newer version sent by an SDK) clears it.
ALTER TABLE flows ADD COLUMN imported_at INTEGER;
