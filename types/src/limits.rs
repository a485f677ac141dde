//! What one flow record may carry: the server's default ingest limits (a record beyond them
//! answers 422 `validation_failed`), shared so that an SDK can fit a record to them before
//! sending instead of losing it whole. The server checks them in
//! `domain/src/ingest/validate.rs` (`Limits::default()` is made of these); they are not
//! configurable, so a record fitted to them passes those checks.

/// Steps in one flow.
pub const MAX_STEPS: usize = 1_000;
/// Observations stored for one step (counts may be larger: they are numbers).
pub const MAX_OBSERVATIONS_PER_STEP: usize = 100_000;
/// Bytes of a name: pipeline, step name, candidate id, reason code, tag key. Names must
/// also not be empty or only white space.
pub const MAX_NAME_BYTES: usize = 256;
/// Bytes of a text: reasoning, reason text, tag value, error.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Tags on one flow.
pub const MAX_TAGS: usize = 64;
/// Reasons on one observation.
pub const MAX_REASONS_PER_OBSERVATION: usize = 32;
/// Largest candidate count, reason count, and (exclusive) score magnitude: 2^53, exact in
/// every JSON reader and in SQL (IEEE 754 binary64 has a 53-bit significand).
pub const MAX_COUNT: u64 = 1 << 53;
/// Deepest nesting of arrays and objects in a whole record (`{` of the record is level 1).
/// The record's own structure takes up to 6 levels (flow → steps → step → observations →
/// observation → attributes); the rest is for free-form values.
pub const MAX_DEPTH: usize = 64;
