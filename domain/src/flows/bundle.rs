//! **Debugging bundles**: whole flows (their steps and every stored observation) in one file
//! that another Flow Trail deployment imports as they were — same ids, same versions — marked
//! as imported.
//!
//! A bundle (`.ft`, media type [`MEDIA_TYPE`]) is a POSIX tar archive compressed with zstd:
//!
//! | entry | holds |
//! |---|---|
//! | `manifest.json` | [`Manifest`]: the format and its version, when and by what it was made, and per flow its id, version, pipeline, path, size and SHA-256 |
//! | `SHA256SUMS` | the same checksums in `sha256sum` format, so `tar --zstd -xf x.ft && sha256sum -c SHA256SUMS` checks a bundle without Flow Trail |
//! | `flows/<id>.json` | the flow as a flow record (the body of `POST /api/v1/flows`), observations included |
//!
//! Importing ([`read`], then [`Services::import_bundle`]) verifies everything before it
//! writes anything: the archive reads whole, every file is in the manifest and every file of
//! the manifest is there with its size and checksum, and every record passes the checks of
//! ingest. Then all flows are written in one transaction, so a bundle is imported whole or not
//! at all; importing it again writes nothing new (the version rule of every write,
//! [`super::Precedence`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use flowtrail_types::{FlowRecord, Observation, StepRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{FlowWrite, StepPayloads, UpsertOutcome, WriteMode};
use crate::events::FlowLanded;
use crate::ingest::validate::{Limits, validate};
use crate::payloads::PayloadStore;
use crate::{Error, Result, Services};

/// The media type of a bundle.
pub const MEDIA_TYPE: &str = "application/vnd.flowtrail.bundle";

/// The `format` of a bundle's manifest.
pub const FORMAT: &str = "flowtrail-bundle";

/// The newest `format_version` this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Most flows one bundle holds.
pub const MAX_FLOWS: usize = 100;

/// The first four bytes of a zstd frame (RFC 8878, section 3.1.1: `0xFD2FB528` little-endian).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Most bytes a bundle may unpack to (its tar archive), for `flowtrail import` and the API's
/// import alike; a bundle is never made larger. A larger one is refused before it is read
/// further, so a small file cannot unpack into a memory exhaustion. 256 MiB: 100 flows of
/// 2.5 MiB, or 8 flows at the default 32 MiB request limit; making or importing one holds
/// about twice that in memory.
pub const MAX_UNPACKED_BYTES: u64 = 256 << 20;

/// Bundles made at once per process ([`Services::bundle`] holds one in memory, up to
/// [`MAX_UNPACKED_BYTES`]); more wait their turn, so concurrent downloads cannot add up.
static MAKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// `manifest.json`: what a bundle holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    #[serde(with = "flowtrail_types::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `flowtrail <version>`.
    pub created_by: String,
    /// One entry per flow, in the order asked for.
    pub flows: Vec<ManifestEntry>,
}

/// One flow of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub id: Uuid,
    pub version: u32,
    pub pipeline: String,
    /// The file in the archive: `flows/<id>.json`.
    pub path: String,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The file's SHA-256, 64 lowercase hex digits.
    pub sha256: String,
}

/// What importing a bundle did, per flow in the manifest's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Flows written now.
    pub imported: u64,
    /// Flows left as they were: the same or a newer version was already stored.
    pub skipped: u64,
    pub flows: Vec<ImportedFlow>,
}

/// One flow of an [`ImportReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedFlow {
    pub id: Uuid,
    pub version: u32,
    pub pipeline: String,
    /// `imported` or `skipped`.
    pub outcome: String,
}

/// The path of a flow's file in a bundle.
fn flow_path(id: Uuid) -> String {
    format!("flows/{}.json", id.hyphenated())
}

/// A bundle refused: `field` names the entry at fault (`manifest.json`, `flows/<id>.json`).
fn refused(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Validation {
        field: Some(field.into()),
        message: message.into(),
    }
}

/// `sha256sum`'s lines for the manifest's files.
fn sha256sums(manifest: &Manifest) -> String {
    manifest
        .flows
        .iter()
        .map(|entry| format!("{}  {}\n", entry.sha256, entry.path))
        .collect()
}

impl Services {
    /// A stored flow as the flow record it was sent as, observations included (read from the
    /// payload store, each checked against its SHA-256); `None` if the team has no such flow.
    /// Errors: storage, [`Error::Integrity`].
    pub async fn flow_record(&self, team_id: i64, flow_id: Uuid) -> Result<Option<FlowRecord>> {
        match self.metadata.get_flow(team_id, flow_id).await? {
            Some(detail) => Ok(Some(self.stored_record(team_id, detail).await?.0)),
            None => Ok(None),
        }
    }

    /// A stored flow's `detail` as a whole flow record (observations read back from the
    /// payload store, each checked against its SHA-256), and where its steps' observations
    /// are, by seq. Errors: storage, [`Error::Integrity`].
    pub(crate) async fn stored_record(
        &self,
        team_id: i64,
        detail: flowtrail_types::FlowDetail,
    ) -> Result<(FlowRecord, StepPayloads)> {
        let payloads = self
            .metadata
            .flow_payloads(team_id, detail.summary.id)
            .await?;
        let mut steps = Vec::with_capacity(detail.steps.len());
        for step in detail.steps {
            let observations: Vec<Observation> = match payloads.get(&step.seq) {
                Some(reference) if step.observation_count > 0 => {
                    let json = self.payloads.get_json(reference).await?;
                    serde_json::from_slice(&json).map_err(|e| {
                        Error::Integrity(format!("stored observations do not read back: {e}"))
                    })?
                }
                _ => Vec::new(),
            };
            steps.push(StepRecord {
                seq: step.seq,
                name: step.name,
                kind: step.kind,
                status: step.status,
                started_at: step.started_at,
                ended_at: step.ended_at,
                input: step.input,
                output: step.output,
                reasoning: step.reasoning,
                candidates_in: step.candidates_in,
                candidates_out: step.candidates_out,
                reasons: step.reasons,
                capture: step.capture,
                observations,
                boundaries: step.boundaries,
                parent_seq: step.parent_seq,
                span_id: step.span_id,
                parent_span_id: step.parent_span_id,
            });
        }
        let summary = detail.summary;
        let record = FlowRecord {
            id: summary.id,
            version: summary.version,
            pipeline: summary.pipeline,
            status: summary.status,
            started_at: summary.started_at,
            ended_at: summary.ended_at,
            input: detail.input,
            output: detail.output,
            tags: summary.tags,
            error: summary.error,
            sdk: detail.sdk,
            steps,
        };
        Ok((record, payloads))
    }

    /// The bundle of flows `ids` of the team (1 to [`MAX_FLOWS`], each once), as the bytes of
    /// a `.ft` file. Errors: [`Error::Validation`] for no, too many or repeated ids;
    /// [`Error::NotFound`] when one is not the team's (the message names it);
    /// [`Error::TooLarge`] when they would unpack to more than [`MAX_UNPACKED_BYTES`] (no
    /// import would take the bundle); storage.
    pub async fn bundle(&self, team_id: i64, ids: &[Uuid]) -> Result<Vec<u8>> {
        check_ids(ids)?;
        let _turn = MAKING
            .acquire()
            .await
            .map_err(|e| Error::Internal(format!("the bundle semaphore closed: {e}")))?;
        let mut unpacked = 0u64;
        let mut files = Vec::with_capacity(ids.len());
        let mut entries = Vec::with_capacity(ids.len());
        for &id in ids {
            let record = self
                .flow_record(team_id, id)
                .await?
                .ok_or(Error::NotFound("flow"))?;
            let json = serde_json::to_vec(&record)
                .map_err(|e| Error::Internal(format!("a flow record does not serialize: {e}")))?;
            // A bundle no import could take is refused here, not discovered there.
            unpacked = unpacked.saturating_add(json.len() as u64 + 1024);
            if unpacked > MAX_UNPACKED_BYTES {
                return Err(Error::TooLarge(format!(
                    "these flows hold more than {MAX_UNPACKED_BYTES} bytes, the most one bundle \
                     imports: bundle fewer at a time"
                )));
            }
            entries.push(ManifestEntry {
                id,
                version: record.version,
                pipeline: record.pipeline.clone(),
                path: flow_path(id),
                bytes: json.len() as u64,
                sha256: hex::encode(Sha256::digest(&json)),
            });
            files.push(json);
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            created_at: OffsetDateTime::now_utc(),
            created_by: format!("flowtrail {}", env!("CARGO_PKG_VERSION")),
            flows: entries,
        };
        write(&manifest, &files)
    }

    /// Imports a bundle into the team: [`read`] checks all of it, then the flows are written
    /// in one transaction, each marked imported, keeping its id and version. A flow whose same
    /// or newer version is stored is skipped, so importing twice writes nothing the second
    /// time. `max_unpacked`: the most bytes the bundle may unpack to. Errors:
    /// [`Error::Validation`] naming the entry at fault (nothing is written); storage.
    pub async fn import_bundle(
        &self,
        team_id: i64,
        bundle: &[u8],
        max_unpacked: u64,
    ) -> Result<ImportReport> {
        // A flow's steps may have been pushed in several requests, each within the step limit:
        // what a deployment stored, another takes, whatever the total.
        let limits = Limits {
            max_steps: usize::MAX,
            ..self.limits.clone()
        };
        let (_, records) = read(bundle, &limits, max_unpacked)?;
        let mut payloads = Vec::with_capacity(records.len());
        for record in &records {
            let mut stored = StepPayloads::new();
            for step in record.steps.iter().filter(|s| !s.observations.is_empty()) {
                let encoded = PayloadStore::encode(
                    team_id,
                    record.id,
                    record.version,
                    step.seq,
                    &step.observations,
                )?;
                stored.insert(step.seq, self.payloads.put(&encoded).await?);
            }
            payloads.push(stored);
        }
        let writes: Vec<FlowWrite<'_>> = records
            .iter()
            .zip(&payloads)
            .map(|(flow, payloads)| FlowWrite {
                team_id,
                flow,
                payloads,
                mode: WriteMode::Replace,
                imported: true,
            })
            .collect();
        let outcomes = self.metadata.upsert_flows(&writes).await?;
        let mut report = ImportReport {
            imported: 0,
            skipped: 0,
            flows: Vec::with_capacity(records.len()),
        };
        let mut landed = Vec::new();
        for (record, outcome) in records.iter().zip(outcomes) {
            let outcome = match outcome {
                UpsertOutcome::Written(summary) => {
                    report.imported += 1;
                    landed.push(FlowLanded {
                        team_id,
                        flow: *summary,
                    });
                    "imported"
                }
                UpsertOutcome::Stale | UpsertOutcome::Conflict => {
                    report.skipped += 1;
                    "skipped"
                }
            };
            report.flows.push(ImportedFlow {
                id: record.id,
                version: record.version,
                pipeline: record.pipeline.clone(),
                outcome: outcome.into(),
            });
        }
        self.events.publish(landed).await;
        Ok(report)
    }
}

/// Whether `ids` can be one bundle: 1 to [`MAX_FLOWS`], each once. Errors:
/// [`Error::Validation`] of field `id`.
pub fn check_ids(ids: &[Uuid]) -> Result<()> {
    if ids.is_empty() || ids.len() > MAX_FLOWS {
        return Err(refused(
            "id",
            format!("a bundle holds 1 to {MAX_FLOWS} flows (got {})", ids.len()),
        ));
    }
    if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
        return Err(refused("id", "a flow id is given twice"));
    }
    Ok(())
}

/// The bytes of a bundle holding `files` (the flows' JSON, in the manifest's order).
fn write(manifest: &Manifest, files: &[Vec<u8>]) -> Result<Vec<u8>> {
    let internal = |e: std::io::Error| Error::Internal(format!("a bundle does not write: {e}"));
    let manifest_json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Internal(format!("a manifest does not serialize: {e}")))?;
    let mtime = manifest.created_at.unix_timestamp().max(0) as u64;
    let encoder = zstd::stream::write::Encoder::new(Vec::new(), 3)?;
    let mut archive = tar::Builder::new(encoder);
    let mut append = |path: &str, data: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        archive.append_data(&mut header, path, data)
    };
    append("manifest.json", &manifest_json).map_err(internal)?;
    append("SHA256SUMS", sha256sums(manifest).as_bytes()).map_err(internal)?;
    for (entry, data) in manifest.flows.iter().zip(files) {
        append(&entry.path, data).map_err(internal)?;
    }
    let encoder = archive.into_inner().map_err(internal)?;
    encoder.finish().map_err(internal)
}

/// Reads and checks a whole bundle: the manifest and the flow records in its order, each
/// record checked as ingest checks it (`limits`). Errors, all [`Error::Validation`] with
/// the entry at fault as `field` — not one zstd frame of a tar, truncated or damaged, bytes
/// after its end — or [`Error::TooLarge`] past `max_unpacked` bytes unpacked; no `manifest.json`, another format or a newer version;
/// an entry other than the manifest's files and `SHA256SUMS`, or one twice; a file missing
/// or of another size or SHA-256 than the manifest says (the message gives both checksums);
/// `SHA256SUMS` disagreeing with the manifest; a record that is not a valid flow record or
/// whose id or version is not the manifest's.
pub fn read(
    bundle: &[u8],
    limits: &Limits,
    max_unpacked: u64,
) -> Result<(Manifest, Vec<FlowRecord>)> {
    // One zstd frame and nothing after it: bytes appended to a bundle (a second bundle, a
    // stray download) are refused, not ignored. (RFC 8878, section 3.1: a frame's size is
    // known from its header and blocks.)
    if bundle.get(..4) != Some(&ZSTD_MAGIC[..]) {
        return Err(refused(
            "bundle",
            "not a Flow Trail bundle: it does not start as a zstd frame (RFC 8878)",
        ));
    }
    match zstd::zstd_safe::find_frame_compressed_size(bundle) {
        Ok(size) if size == bundle.len() => {}
        Ok(size) => {
            return Err(refused(
                "bundle",
                format!(
                    "{} bytes follow the bundle's end (at byte {size}): the file is two files \
                     joined, or damaged",
                    bundle.len() - size
                ),
            ));
        }
        Err(_) => {
            return Err(refused(
                "bundle",
                "the bundle is truncated or damaged: its zstd frame does not end where the \
                 file ends",
            ));
        }
    }
    // Unpacked as it is read, never more than `max_unpacked` bytes of it: a small file
    // that would unpack to gigabytes (zeros after the archive, an entry claiming a huge
    // size) is refused having held no more than what it really stored.
    let decoder = zstd::stream::read::Decoder::new(bundle)
        .map_err(|e| refused("bundle", format!("not a Flow Trail bundle: {e}")))?;
    let files = entries(decoder, max_unpacked)?;
    let manifest_json = files
        .get("manifest.json")
        .ok_or_else(|| refused("manifest.json", "the bundle has no manifest.json"))?;
    let manifest: Manifest = serde_json::from_slice(manifest_json)
        .map_err(|e| refused("manifest.json", format!("manifest.json does not read: {e}")))?;
    if manifest.format != FORMAT {
        return Err(refused(
            "manifest.json",
            format!("format is {:?}, not {FORMAT:?}", manifest.format),
        ));
    }
    if manifest.format_version > FORMAT_VERSION {
        return Err(refused(
            "manifest.json",
            format!(
                "format_version {} is newer than this build reads ({FORMAT_VERSION}): upgrade Flow Trail",
                manifest.format_version
            ),
        ));
    }
    if manifest.flows.is_empty() || manifest.flows.len() > MAX_FLOWS {
        return Err(refused(
            "manifest.json",
            format!("a bundle holds 1 to {MAX_FLOWS} flows"),
        ));
    }
    let mut expected: BTreeSet<&str> = ["manifest.json", "SHA256SUMS"].into();
    for entry in &manifest.flows {
        if entry.path != flow_path(entry.id) || !expected.insert(&entry.path) {
            return Err(refused(
                "manifest.json",
                format!("{:?} is not the one path of flow {}", entry.path, entry.id),
            ));
        }
    }
    if let Some(extra) = files.keys().find(|path| !expected.contains(path.as_str())) {
        return Err(refused(
            extra.clone(),
            format!("{extra} is not in the manifest"),
        ));
    }
    match files.get("SHA256SUMS") {
        None => return Err(refused("SHA256SUMS", "the bundle has no SHA256SUMS")),
        Some(sums) if sums.as_slice() != sha256sums(&manifest).as_bytes() => {
            return Err(refused(
                "SHA256SUMS",
                "SHA256SUMS disagrees with manifest.json",
            ));
        }
        Some(_) => {}
    }
    let mut records = Vec::with_capacity(manifest.flows.len());
    for entry in &manifest.flows {
        let data = files
            .get(&entry.path)
            .ok_or_else(|| refused(&entry.path, format!("{} is missing", entry.path)))?;
        let actual = hex::encode(Sha256::digest(data));
        if data.len() as u64 != entry.bytes || actual != entry.sha256 {
            return Err(refused(
                &entry.path,
                format!(
                    "checksum mismatch for {}: the manifest says SHA-256 {} ({} bytes), the file has {} ({} bytes)",
                    entry.path,
                    entry.sha256,
                    entry.bytes,
                    actual,
                    data.len()
                ),
            ));
        }
        let in_file = |error: Error| match error {
            Error::Validation { field, message } => refused(
                match field {
                    Some(field) => format!("{}: {field}", entry.path),
                    None => entry.path.clone(),
                },
                message,
            ),
            Error::Malformed { message } => refused(&entry.path, message),
            other => other,
        };
        let record = crate::ingest::parse::parse_flow(data).map_err(in_file)?;
        validate(&record, limits).map_err(in_file)?;
        if record.id != entry.id
            || record.version != entry.version
            || record.pipeline != entry.pipeline
        {
            return Err(refused(
                &entry.path,
                format!(
                    "the record is flow {} version {} of pipeline {:?}, the manifest says {} \
                     version {} of {:?}",
                    record.id,
                    record.version,
                    record.pipeline,
                    entry.id,
                    entry.version,
                    entry.pipeline
                ),
            ));
        }
        records.push(record);
    }
    Ok((manifest, records))
}

/// The regular files of a tar archive read from `tar`, by path. Errors: a damaged archive,
/// an entry that is not a regular file, a path twice, anything but zero padding after the
/// end-of-archive blocks (POSIX.1-1988 ustar: two zero blocks end an archive) — all
/// [`Error::Validation`]; [`Error::TooLarge`] once the archive reads past `max` bytes or
/// its entries claim more, before their bytes are held.
fn entries(tar: impl Read, max: u64) -> Result<BTreeMap<String, Vec<u8>>> {
    let over = std::cell::Cell::new(false);
    let too_large = || {
        Error::TooLarge(format!(
            "the bundle unpacks to more than {max} bytes, the most one import takes: bundle \
             fewer flows at a time"
        ))
    };
    let failed = |e: std::io::Error, what: &str| {
        if over.get() {
            too_large()
        } else {
            refused("bundle", printable(&format!("{what}: {e}")))
        }
    };
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(Bounded {
        inner: tar,
        left: max,
        over: &over,
    });
    let mut claimed = 0u64;
    for entry in archive
        .entries()
        .map_err(|e| failed(e, "the archive is damaged"))?
    {
        let mut entry = entry.map_err(|e| {
            failed(
                e,
                "not a Flow Trail bundle (a zstd-compressed tar), truncated or damaged",
            )
        })?;
        // A path as the archive spells it, control characters escaped: it goes into
        // messages a terminal prints.
        let path = printable(&String::from_utf8_lossy(&entry.path_bytes()));
        // A directory entry (`flows/`, as `tar -c` of an unpacked bundle writes it) holds
        // nothing; anything else that is not a regular file is refused.
        if entry.header().entry_type() == tar::EntryType::Directory && entry.size() == 0 {
            continue;
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(refused(
                path.clone(),
                format!("{path} is not a regular file"),
            ));
        }
        claimed = claimed.saturating_add(entry.size());
        if claimed > max {
            return Err(too_large());
        }
        let mut data = Vec::with_capacity(entry.size().min(1 << 20) as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| failed(e, "the archive is damaged"))?;
        if files.insert(path.clone(), data).is_some() {
            return Err(refused(
                path.clone(),
                format!("{path} is in the archive twice"),
            ));
        }
    }
    let mut rest = archive.into_inner();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = match rest.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(e, "the archive is damaged")),
        };
        if buffer[..n].iter().any(|&b| b != 0) {
            return Err(refused(
                "bundle",
                "bytes other than zeros follow the archive's end: the bundle is damaged",
            ));
        }
    }
    Ok(files)
}

/// `text` with control characters (CR, LF, ANSI escapes, …) and backslashes escaped as in
/// Rust string literals; printable characters, non-ASCII ones included, are left alone.
fn printable(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || c == '\\' {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A reader that yields at most `left` more bytes of `inner`, and sets `over` (then fails)
/// when `inner` holds more.
struct Bounded<'a, R> {
    inner: R,
    left: u64,
    over: &'a std::cell::Cell<bool>,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.over.set(true);
                    Err(std::io::Error::other(
                        "more bytes than a bundle may unpack to",
                    ))
                }
            };
        }
        let wanted = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..wanted])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn record(id: Uuid) -> FlowRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "version": 2, "pipeline": "p", "status": "succeeded",
            "started_at": "2026-11-21T10:00:00Z",
            "steps": [{"seq": 1, "name": "f", "kind": "filter", "candidates_in": 2,
                       "candidates_out": 1, "reasons": {"r": 1}, "capture": "full",
                       "observations": [
                           {"candidate_id": "a", "verdict": "kept"},
                           {"candidate_id": "b", "verdict": "rejected",
                            "reasons": [{"code": "r", "text": "t"}]}]}]
        }))
        .unwrap()
    }

    fn bundle_of(records: &[FlowRecord]) -> (Manifest, Vec<Vec<u8>>) {
        let files: Vec<Vec<u8>> = records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap())
            .collect();
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            created_at: OffsetDateTime::UNIX_EPOCH,
            created_by: "test".into(),
            flows: records
                .iter()
                .zip(&files)
                .map(|(r, f)| ManifestEntry {
                    id: r.id,
                    version: r.version,
                    pipeline: r.pipeline.clone(),
                    path: flow_path(r.id),
                    bytes: f.len() as u64,
                    sha256: hex::encode(Sha256::digest(f)),
                })
                .collect(),
        };
        (manifest, files)
    }

    fn field(error: Error) -> String {
        match error {
            Error::Validation { field, .. } => field.unwrap_or_default(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn a_bundle_reads_back_as_written() {
        let records = vec![record(Uuid::now_v7()), record(Uuid::now_v7())];
        let (manifest, files) = bundle_of(&records);
        let bytes = write(&manifest, &files).unwrap();
        let (read_manifest, read_records) = read(&bytes, &limits(), MAX_UNPACKED_BYTES).unwrap();
        assert_eq!(read_manifest, manifest);
        assert_eq!(read_records, records);
    }

    #[test]
    fn a_changed_file_is_refused_naming_it_and_both_checksums() {
        let records = vec![record(Uuid::now_v7())];
        let (manifest, mut files) = bundle_of(&records);
        let original = manifest.flows[0].sha256.clone();
        // Same size, one byte changed: "kept" → "kepT" would break validation; change the
        // pipeline's name instead so the record stays valid.
        let text = String::from_utf8(files[0].clone()).unwrap();
        files[0] = text
            .replace("\"pipeline\":\"p\"", "\"pipeline\":\"q\"")
            .into_bytes();
        let bytes = write(&manifest, &files).unwrap();
        match read(&bytes, &limits(), MAX_UNPACKED_BYTES).unwrap_err() {
            Error::Validation { field, message } => {
                assert_eq!(field.as_deref(), Some(manifest.flows[0].path.as_str()));
                assert!(message.contains(&original), "{message}");
                assert!(message.contains("checksum mismatch"), "{message}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn truncated_foreign_and_oversized_inputs_are_refused() {
        let records = vec![record(Uuid::now_v7())];
        let (manifest, files) = bundle_of(&records);
        let bytes = write(&manifest, &files).unwrap();
        for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(
                field(read(&bytes[..cut], &limits(), MAX_UNPACKED_BYTES).unwrap_err()),
                "bundle"
            );
        }
        assert_eq!(
            field(read(b"{\"id\": 1}", &limits(), MAX_UNPACKED_BYTES).unwrap_err()),
            "bundle"
        );
        // A zstd stream of zeros larger than the bound.
        let zeros = zstd::stream::encode_all(std::io::repeat(0).take(1 << 20), 1).unwrap();
        let error = read(&zeros, &limits(), 1 << 19).unwrap_err();
        assert!(error.to_string().contains("more than"), "{error}");
    }

    #[test]
    fn files_outside_the_manifest_and_a_forged_record_are_refused() {
        let id = Uuid::now_v7();
        let (manifest, files) = bundle_of(&[record(id)]);
        // A record whose id is another flow's, with a manifest agreeing on the file.
        let other = record(Uuid::now_v7());
        let forged_file = serde_json::to_vec(&other).unwrap();
        let mut forged = manifest.clone();
        forged.flows[0].bytes = forged_file.len() as u64;
        forged.flows[0].sha256 = hex::encode(Sha256::digest(&forged_file));
        let error = read(
            &write(&forged, &[forged_file]).unwrap(),
            &limits(),
            MAX_UNPACKED_BYTES,
        )
        .unwrap_err();
        assert!(error.to_string().contains("the manifest says"), "{error}");
        // A manifest naming a path that is not its flow's.
        let mut renamed = manifest.clone();
        renamed.flows[0].path = "flows/another-name.json".into();
        assert_eq!(
            field(
                read(
                    &write(&renamed, &files).unwrap(),
                    &limits(),
                    MAX_UNPACKED_BYTES
                )
                .unwrap_err()
            ),
            "manifest.json"
        );
        // A record breaking ingest's rules is refused with its path and field.
        let mut bad = record(id);
        bad.steps[0].name = String::new();
        let (manifest, files) = bundle_of(&[bad]);
        let error = field(
            read(
                &write(&manifest, &files).unwrap(),
                &limits(),
                MAX_UNPACKED_BYTES,
            )
            .unwrap_err(),
        );
        assert!(error.starts_with(&flow_path(id)), "{error}");
    }

    /// The bundle `bytes` unpacked, changed by `change`, packed again (a valid archive).
    fn repack(bytes: &[u8], change: impl Fn(&mut BTreeMap<String, Vec<u8>>)) -> Vec<u8> {
        let tar_bytes = zstd::stream::decode_all(bytes).unwrap();
        let mut files = entries(tar_bytes.as_slice(), MAX_UNPACKED_BYTES).unwrap();
        change(&mut files);
        let mut archive = tar::Builder::new(Vec::new());
        for (path, data) in &files {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            archive
                .append_data(&mut header, path, data.as_slice())
                .unwrap();
        }
        zstd::stream::encode_all(archive.into_inner().unwrap().as_slice(), 3).unwrap()
    }

    #[test]
    fn a_bomb_is_refused_before_its_bytes_are_held_and_paths_are_printable() {
        // An entry whose header claims more than the bound: refused from its header.
        let mut header = tar::Header::new_ustar();
        header.set_path("flows/huge.json").unwrap();
        header.set_size(1 << 40);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut tar_bytes = header.as_bytes().to_vec();
        tar_bytes.extend_from_slice(&[b'x'; 4096]);
        let bundle = zstd::stream::encode_all(tar_bytes.as_slice(), 1).unwrap();
        let error = read(&bundle, &limits(), MAX_UNPACKED_BYTES).unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)), "{error}");
        // 64 MiB of zeros after a valid archive, bound 1 MiB: refused at the bound.
        let (manifest, files) = bundle_of(&[record(Uuid::now_v7())]);
        let mut tar_bytes =
            zstd::stream::decode_all(write(&manifest, &files).unwrap().as_slice()).unwrap();
        tar_bytes.resize(64 << 20, 0);
        let bomb = zstd::stream::encode_all(tar_bytes.as_slice(), 19).unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let error = read(&bomb, &limits(), 1 << 20).unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)), "{error}");
        // Within the bound the same zeros are padding, and the bundle reads.
        assert!(read(&bomb, &limits(), 128 << 20).is_ok());
        // A directory entry (a bundle unpacked and packed again with `tar -c`) is skipped.
        let mut tar_bytes =
            zstd::stream::decode_all(write(&manifest, &files).unwrap().as_slice()).unwrap();
        let end = tar_bytes.len() - 1024;
        let mut directory = tar::Header::new_ustar();
        directory.set_path("flows/").unwrap();
        directory.set_size(0);
        directory.set_mode(0o755);
        directory.set_entry_type(tar::EntryType::Directory);
        directory.set_cksum();
        tar_bytes.splice(end..end, directory.as_bytes().iter().copied());
        let repacked = zstd::stream::encode_all(tar_bytes.as_slice(), 3).unwrap();
        assert!(read(&repacked, &limits(), MAX_UNPACKED_BYTES).is_ok());
        // A path with a newline and an ANSI escape is named escaped.
        let forged = repack(&write(&manifest, &files).unwrap(), |files| {
            files.insert("evil\n\u{1b}[31mred".into(), b"x".to_vec());
        });
        let error = read(&forged, &limits(), MAX_UNPACKED_BYTES).unwrap_err();
        let text = error.to_string();
        assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("evil\\n\\u{1b}[31mred"), "{text}");
    }

    #[test]
    fn anything_joined_missing_or_disagreeing_is_refused() {
        let records = vec![record(Uuid::now_v7())];
        let (manifest, files) = bundle_of(&records);
        let bytes = write(&manifest, &files).unwrap();
        assert!(read(&repack(&bytes, |_| {}), &limits(), MAX_UNPACKED_BYTES).is_ok());
        // Two bundles joined (`cat a.ft a.ft`): a second zstd frame.
        let joined = [bytes.clone(), bytes.clone()].concat();
        let error = read(&joined, &limits(), MAX_UNPACKED_BYTES).unwrap_err();
        assert!(error.to_string().contains("follow the bundle"), "{error}");
        // Bytes after the archive's end, inside the frame.
        let mut tar_bytes = zstd::stream::decode_all(bytes.as_slice()).unwrap();
        tar_bytes.extend_from_slice(b"trailing junk");
        let junk = zstd::stream::encode_all(tar_bytes.as_slice(), 3).unwrap();
        let error = read(&junk, &limits(), MAX_UNPACKED_BYTES).unwrap_err();
        assert!(error.to_string().contains("follow the archive"), "{error}");
        // No SHA256SUMS.
        let unsummed = repack(&bytes, |files| {
            files.remove("SHA256SUMS");
        });
        assert_eq!(
            field(read(&unsummed, &limits(), MAX_UNPACKED_BYTES).unwrap_err()),
            "SHA256SUMS"
        );
        // A manifest naming another pipeline than the record's.
        let mut renamed = manifest.clone();
        renamed.flows[0].pipeline = "another".into();
        let error = read(
            &write(&renamed, &files).unwrap(),
            &limits(),
            MAX_UNPACKED_BYTES,
        )
        .unwrap_err();
        assert!(error.to_string().contains("\"another\""), "{error}");
        // Not a zstd frame at all: refused from the first bytes.
        let error = read(&[0u8; 64], &limits(), MAX_UNPACKED_BYTES).unwrap_err();
        assert!(error.to_string().contains("zstd frame"), "{error}");
    }
}
