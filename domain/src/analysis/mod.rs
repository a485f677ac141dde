//! Analysis: questions that combine stored rows with observation payloads — a candidate's
//! journey through a flow ([`journey`]), the difference between two flows ([`diff`]), and
//! reason statistics and funnels ([`stats`]). Only the metadata store's traits and the
//! payload store are used, so every engine answers the same way.

pub mod diff;
pub mod insights;
pub mod journey;
pub mod stats;

pub use diff::diff;
pub use journey::{journey, observed_anywhere};
pub use stats::{FUNNEL_FLOW_CAP, FunnelRow, ReasonRow, StatsQuery, funnels, reason_stats};
