//! What the test suites of several Flow Trail crates share (`flowtrail-domain`'s repository
//! suite, `flowtrail-server`'s API, live and crash suites), so that none of them includes
//! another crate's test files.
//!
//! Helpers that only one crate's tests use stay in that crate's `tests/` folder.

pub mod engines;
