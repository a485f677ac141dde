//! The spool: a directory of flows that could not be delivered now (evicted from a full queue,
//! out of attempts, or still queued at shutdown), sent again later by this process or the
//! next one that uses the directory.
//!
//! Rules: one file per flow, `{id}.{version}.json` (owner-only), written whole then renamed (a crash leaves
//! a complete file or none; not fsynced: the spool outlives the process, not the machine);
//! flows are redacted before they are written; the spool never grows past its byte limit
//! (what does not fit is dropped and counted); file names start with a UUIDv7, so the oldest
//! sorts first. Only the spool thread writes files; the sender thread reads and removes them.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::{Duration, Instant};

use flowtrail_types::FlowRecord;

use super::Shared;
use super::stats::Counters;
use crate::{Error, Redaction};

/// The channel to the spool's writer thread.
pub(super) struct Spool {
    writer: SyncSender<SpoolItem>,
}

/// The spool thread's end: the directory and what it is handed.
pub(super) struct SpoolWriter {
    dir: PathBuf,
    items: Receiver<SpoolItem>,
}

enum SpoolItem {
    /// A flow, and whether it is already redacted.
    Record(Box<FlowRecord>, bool),
    /// Answered once everything handed before it is written.
    Marker(mpsc::Sender<()>),
}

impl Spool {
    /// Creates the directory `dir` and a channel of `capacity` flows to its writer.
    pub(super) fn open(dir: &Path, capacity: usize) -> Result<(Spool, SpoolWriter), Error> {
        // A directory made here is owner-only (0700 on Unix); an existing one is left as is.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| Error::Spool(format!("cannot create the spool {}: {e}", dir.display())))?;
        let (writer, items) = mpsc::sync_channel(capacity);
        Ok((
            Spool { writer },
            SpoolWriter {
                dir: dir.to_path_buf(),
                items,
            },
        ))
    }

    /// Waits until the spool thread has written what it was handed, until `deadline` at most.
    /// Whether it has.
    pub(super) fn settled(&self, deadline: Instant) -> bool {
        loop {
            // The spool thread handles items in order: a marker answers once all is written.
            let (done, wait) = mpsc::channel();
            if self.writer.try_send(SpoolItem::Marker(done)).is_ok() {
                return wait
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .is_ok();
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Shared {
    /// Hands a flow to the spool thread, or counts it dropped (telling `why` it left the
    /// queue); never blocks.
    pub(super) fn evict(&self, record: Box<FlowRecord>, why: &str) {
        let Some(spool) = &self.spool else {
            Counters::add(&self.counters.dropped);
            self.notice(format!(
                "flow {} dropped: {why} and there is no spool_dir",
                record.id
            ));
            return;
        };
        self.spool(spool, record, false, false);
    }

    /// Hands a flow (`redacted` already or not) to the spool thread, waiting for room only when
    /// `wait`; a flow it cannot take is counted dropped.
    pub(super) fn spool(&self, spool: &Spool, record: Box<FlowRecord>, redacted: bool, wait: bool) {
        let counters = &self.counters;
        counters.spooling.fetch_add(1, Ordering::Relaxed);
        let item = SpoolItem::Record(record, redacted);
        let handed = if wait {
            spool.writer.send(item).is_ok()
        } else {
            spool.writer.try_send(item).is_ok()
        };
        if !handed {
            counters.spooling.fetch_sub(1, Ordering::Relaxed);
            Counters::add(&counters.dropped);
            self.notice("a flow was dropped: the spool thread is busy or gone".into());
        }
    }
}

impl SpoolWriter {
    /// The spool thread: writes flows to the directory (redacted first), one file each,
    /// atomically, keeping the total under `max_bytes`. Ends when every [`Spool`] is gone.
    pub(super) fn run(self, shared: &Shared, max_bytes: u64, redaction: &Redaction) {
        let dir = &self.dir;
        let mut size = spool_size(dir);
        for item in self.items {
            let (mut record, redacted) = match item {
                SpoolItem::Record(record, redacted) => (record, redacted),
                SpoolItem::Marker(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            if !redacted {
                redaction.redact(&mut record);
            }
            match write_spooled(dir, &record) {
                Ok(bytes) if size + bytes <= max_bytes => {
                    size += bytes;
                    Counters::add(&shared.counters.spooled);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(spool_path(dir, &record));
                    shared.notice(format!(
                        "flow {} dropped: the spool is full (spool_max_bytes {max_bytes})",
                        record.id
                    ));
                    Counters::add(&shared.counters.dropped);
                }
                Err(error) => {
                    shared.notice(format!(
                        "flow {} dropped: cannot write the spool: {error}",
                        record.id
                    ));
                    Counters::add(&shared.counters.dropped);
                }
            }
            // Counted as spooled (or dropped) before it stops counting as pending.
            shared.counters.spooling.fetch_sub(1, Ordering::Relaxed);
            // Files sent meanwhile free room.
            if size > max_bytes / 2 {
                size = spool_size(dir);
            }
        }
    }
}

fn spool_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn spool_path(dir: &Path, record: &FlowRecord) -> PathBuf {
    dir.join(format!("{}.{}.json", record.id, record.version))
}

fn write_spooled(dir: &Path, record: &FlowRecord) -> std::io::Result<u64> {
    let body = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    let path = spool_path(dir, record);
    let partial = path.with_extension("partial");
    // Written whole, then renamed: a crash leaves a complete file or none. Not fsynced: the
    // spool outlives the process, not the machine.
    // Owner-only (0600 on Unix): a spooled flow holds what the pipeline recorded.
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    std::io::Write::write_all(&mut file.open(&partial)?, &body)?;
    std::fs::rename(&partial, &path)?;
    Ok(body.len() as u64)
}

/// The oldest spooled flow, if any (file names start with a UUIDv7, so they sort by time).
pub(super) fn oldest_spooled(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.into_iter().next()
}
