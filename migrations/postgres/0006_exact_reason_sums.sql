-- Reason counts that cannot overflow. A count is kept as count_hi * 2^32 + count_lo with
-- count_lo in [0, 2^32): each added step count (at most 2^53, validate.rs MAX_COUNT) adds at
-- most 2^21 to count_hi, so a row overflows only after 2^42 steps. A single BIGINT column
-- overflowed after 1,024 steps of 2^53 (issue #14, item 4). Sums are combined exactly in Rust
-- (domain/src/engines/sql/stats.rs).
ALTER TABLE reason_counts ADD COLUMN count_hi BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reason_counts ADD COLUMN count_lo BIGINT NOT NULL DEFAULT 0;
UPDATE reason_counts SET count_hi = count >> 32, count_lo = count & 4294967295;
ALTER TABLE reason_counts DROP COLUMN count;
