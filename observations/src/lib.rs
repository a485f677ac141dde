//! A step's observations in the dashboard: the [`filter`] and sort the Web Worker applies, and
//! the [`protocol`] between page and worker. Pure Rust with no browser dependency, so both
//! WASM bundles and the native tests share one definition.

pub mod filter;
pub mod protocol;
