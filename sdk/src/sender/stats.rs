//! What happened to the flows handed to a client, counted without locks. Rules: every flow is
//! counted once when queued and once when it settles, so at every moment
//! `queued + unspooled = sent + failed + dropped + spooled + pending`; a flow handed to the
//! spool thread counts as pending until it is written (or dropped).

use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to the flows handed to a client. At every moment
/// `queued + unspooled = sent + failed + dropped + spooled + pending`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Flows handed to the client.
    pub queued: u64,
    /// Flows the server acknowledged (202).
    pub sent: u64,
    /// Retries made (all flows together).
    pub retried: u64,
    /// Flows lost: evicted from a full queue without a spool (or with a full one), or handed
    /// over after shutdown.
    pub dropped: u64,
    /// Flows given up: refused by the server (a 4xx), or out of attempts without a spool.
    pub failed: u64,
    /// Flows written to the spool directory.
    pub spooled: u64,
    /// Flows read back from the spool (written by this process or an earlier one) and settled:
    /// sent, or refused for good.
    pub unspooled: u64,
    /// Flows in memory or being sent right now.
    pub pending: u64,
    /// Flows changed before sending so the server takes them: a value cut to the server's
    /// ingest limits, or a flow shrunk after a 413 (each change is told in
    /// [`Client::take_notices`](crate::Client::take_notices)). Not part of the sum above:
    /// such a flow is also counted where it settled.
    pub adjusted: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) queued: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) spooled: AtomicU64,
    pub(super) unspooled: AtomicU64,
    pub(super) adjusted: AtomicU64,
    /// Handed to the spool thread, not written yet (part of `pending`).
    pub(super) spooling: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with `in_memory` flows queued or in flight (the spool's are added).
    pub(super) fn snapshot(&self, in_memory: u64) -> Stats {
        let pending = in_memory + self.spooling.load(Ordering::Relaxed);
        Stats {
            queued: self.queued.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            unspooled: self.unspooled.load(Ordering::Relaxed),
            pending,
            adjusted: self.adjusted.load(Ordering::Relaxed),
        }
    }
}
