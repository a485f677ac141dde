-- Observation payloads up to a configurable size (default 256 KiB compressed) are kept inline
-- in the step row; larger ones stay in the object store under payload_key.
ALTER TABLE steps ADD COLUMN payload_inline BYTEA;
