//! The dead-letter store: one NDJSON entry per rejected record or failed object.
//!
//! Entries of one source go to files named after the source's checkpoint key, one per
//! *segment*: the records one attempt read from a resume point on (see
//! [`segment_file_name`]). A segment is written beside its final name and renamed into
//! place before the checkpoint that covers it is committed, so a replay from the same
//! resume point replaces the segment instead of appending a second copy of each entry,
//! and the segments of an object read over several invocations never overlap.
//!
//! `tix-logs redrive` reads the store back segment by segment ([`SegmentStore`]) and
//! replaces each segment with what is left of it. Every entry of a record carries what
//! that needs to give the record the id it would have had ([`DeadLetterEntry::source_id`],
//! [`DeadLetterEntry::id`]); entries written before those fields existed still parse.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, RejectKind, Result};
use crate::id::{DocId, SourceIdentity};

/// Largest `raw` kept in an entry.
pub const MAX_RAW_BYTES: usize = 64 * 1024;

/// One dead-letter entry, as ARCHITECTURE.md ("No loss, no doubles") fixes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterEntry {
    pub source: String,
    /// 1-based record number within the object; `None` for a failed object.
    pub record: Option<u64>,
    /// Byte offset in the decompressed stream, when known.
    pub offset: Option<u64>,
    pub reason: String,
    pub kind: RejectKind,
    /// The redacted original, at most [`MAX_RAW_BYTES`].
    pub raw: String,
    /// When the entry was written (RFC 3339).
    pub at: String,
    /// The source's full identity, from which a record without `event_id` gets its
    /// positional id back. Absent in entries written before redrive existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<SourceRef>,
    /// The document id the record had or would have had, when it was known as the entry
    /// was written: the id of a document the backend refused, or the id from the
    /// unredacted `event_id` of a record that failed validation. `raw` holds the
    /// redacted `event_id`, which can hash differently when the id itself held PII.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl DeadLetterEntry {
    /// The entry of a record, with the identity redrive needs; `id` as
    /// [`DeadLetterEntry::id`] describes it.
    pub fn for_record(
        source: &SourceIdentity,
        record: u64,
        offset: u64,
        rejection: (RejectKind, String),
        raw: String,
        id: Option<DocId>,
    ) -> Self {
        DeadLetterEntry {
            source: source.display_name(),
            record: Some(record),
            offset: Some(offset),
            reason: rejection.1,
            kind: rejection.0,
            raw,
            at: crate::pipeline::now_rfc3339(),
            source_id: Some(SourceRef::from(source)),
            id: id.map(|id| id.to_hex()),
        }
    }
}

/// A [`SourceIdentity`] as a dead-letter entry stores it. The file's modification time
/// is a decimal string: it is an `i128` of nanoseconds, past what many JSON readers
/// keep exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceRef {
    S3 { bucket: String, key: String, version: String },
    File { path: String, size: u64, mtime_ns: String },
    Stream { name: String, nonce: String },
}

impl From<&SourceIdentity> for SourceRef {
    fn from(identity: &SourceIdentity) -> Self {
        match identity.clone() {
            SourceIdentity::S3 { bucket, key, version } => SourceRef::S3 { bucket, key, version },
            SourceIdentity::File { path, size, mtime_ns } => {
                SourceRef::File { path, size, mtime_ns: mtime_ns.to_string() }
            }
            SourceIdentity::Stream { name, nonce } => SourceRef::Stream { name, nonce },
        }
    }
}

impl SourceRef {
    /// The identity back; `None` when the stored modification time is not a number
    /// (an entry edited by hand).
    pub fn identity(&self) -> Option<SourceIdentity> {
        Some(match self.clone() {
            SourceRef::S3 { bucket, key, version } => SourceIdentity::S3 { bucket, key, version },
            SourceRef::File { path, size, mtime_ns } => {
                SourceIdentity::File { path, size, mtime_ns: mtime_ns.parse().ok()? }
            }
            SourceRef::Stream { name, nonce } => SourceIdentity::Stream { name, nonce },
        })
    }
}

/// One line of a segment as redrive reads it. A line that is not an entry (damaged,
/// edited by hand) is kept as it is, so rewriting a segment never drops it.
// Nearly every line is an entry: boxing it would add an allocation per line for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentLine {
    Entry(DeadLetterEntry),
    Unreadable(String),
}

impl SegmentLine {
    /// Parses one non-blank NDJSON line.
    pub fn parse(line: &str) -> Self {
        match serde_json::from_str(line) {
            Ok(entry) => SegmentLine::Entry(entry),
            Err(_) => SegmentLine::Unreadable(line.to_string()),
        }
    }

    fn to_line(&self) -> std::result::Result<String, serde_json::Error> {
        match self {
            SegmentLine::Entry(entry) => serde_json::to_string(entry),
            SegmentLine::Unreadable(line) => Ok(line.clone()),
        }
    }
}

/// The lines of a segment as NDJSON.
pub fn segment_text(lines: &[SegmentLine]) -> std::result::Result<String, serde_json::Error> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_line()?);
        text.push('\n');
    }
    Ok(text)
}

/// The lines of a segment's text, blank lines left out.
pub fn parse_segment(text: &str) -> Vec<SegmentLine> {
    text.lines().filter(|l| !l.trim().is_empty()).map(SegmentLine::parse).collect()
}

/// The dead-letter store as redrive sees it: named segments, each read whole and
/// replaced whole. Replacing is atomic per segment (a reader sees the old or the new
/// contents, never a mix), so a crash leaves every segment either as it was or as
/// redrive meant it.
pub trait SegmentStore {
    /// The segments' names, in order.
    fn segment_names(&self) -> Result<Vec<String>>;
    fn read_segment(&self, name: &str) -> Result<Vec<SegmentLine>>;
    /// Replaces the segment with `lines`; with none, removes it.
    fn replace_segment(&self, name: &str, lines: &[SegmentLine]) -> Result<()>;
}

/// The file (or object) name of the dead-letter segment of `source` that starts after
/// its record `resume_after` (0: the whole source): `KEY.ndjson`, or
/// `KEY.from-N.ndjson` for a segment that resumes after record N.
pub fn segment_file_name(source: &SourceIdentity, resume_after: u64) -> String {
    match resume_after {
        0 => format!("{}.ndjson", source.checkpoint_key()),
        n => format!("{}.from-{n}.ndjson", source.checkpoint_key()),
    }
}

/// Where dead-letter entries go.
pub trait DeadLetterStore: Send {
    /// Starts the entries of one source read from its record `resume_after + 1` on
    /// (see [`segment_file_name`]).
    fn begin(&mut self, source: &SourceIdentity, resume_after: u64) -> Result<Box<dyn DeadLetterFile>>;
    /// Human-readable location, for summaries.
    fn location(&self) -> String;
}

/// The entries of one source, published by [`DeadLetterFile::finish`].
pub trait DeadLetterFile: Send {
    fn write(&mut self, entry: &DeadLetterEntry) -> Result<()>;
    /// Makes the entries durable under their final name. Without entries nothing is
    /// left behind (and a stale file from an earlier attempt is removed).
    fn finish(self: Box<Self>) -> Result<()>;
}

/// A local directory of NDJSON files.
#[derive(Debug, Clone)]
pub struct LocalDeadLetter {
    dir: PathBuf,
}

impl LocalDeadLetter {
    pub fn new(dir: &Path) -> Self {
        LocalDeadLetter { dir: dir.to_path_buf() }
    }

    /// Reads every entry in the directory (for tests and audits).
    pub fn read_all(dir: &Path) -> Result<Vec<DeadLetterEntry>> {
        let io_error = |error| Error::DeadLetter { path: dir.display().to_string(), error };
        let mut entries = Vec::new();
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
            Err(e) => return Err(io_error(e)),
        };
        let mut paths: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(io_error)?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let entry = serde_json::from_str(line).map_err(|e| io_error(std::io::Error::other(e)))?;
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

impl SegmentStore for LocalDeadLetter {
    fn segment_names(&self) -> Result<Vec<String>> {
        let listing = match std::fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(Error::DeadLetter { path: self.dir.display().to_string(), error }),
        };
        let mut names: Vec<String> = listing
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.ends_with(".ndjson"))
            .collect();
        names.sort();
        Ok(names)
    }

    fn read_segment(&self, name: &str) -> Result<Vec<SegmentLine>> {
        let path = self.dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|error| Error::DeadLetter { path: path.display().to_string(), error })?;
        Ok(parse_segment(&text))
    }

    fn replace_segment(&self, name: &str, lines: &[SegmentLine]) -> Result<()> {
        let path = self.dir.join(name);
        let error = |error| Error::DeadLetter { path: path.display().to_string(), error };
        if lines.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(error(e)),
                _ => Ok(()),
            };
        }
        let text = segment_text(lines).map_err(|e| error(std::io::Error::other(e)))?;
        // Written beside and renamed over, as ingestion publishes segments: a crash
        // leaves the old segment or the new one.
        let partial = self.dir.join(format!("{name}.redrive-{}", std::process::id()));
        let written = File::create(&partial).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written.and_then(|_| std::fs::rename(&partial, &path)) {
            let _ = std::fs::remove_file(&partial);
            return Err(error(e));
        }
        if let Ok(dir) = File::open(&self.dir) {
            // Persist the rename itself; not all filesystems support it.
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl DeadLetterStore for LocalDeadLetter {
    fn begin(&mut self, source: &SourceIdentity, resume_after: u64) -> Result<Box<dyn DeadLetterFile>> {
        let final_path = self.dir.join(segment_file_name(source, resume_after));
        Ok(Box::new(LocalDeadLetterFile { dir: self.dir.clone(), final_path, writer: None, entries: 0 }))
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

struct LocalDeadLetterFile {
    dir: PathBuf,
    final_path: PathBuf,
    writer: Option<(PathBuf, BufWriter<File>)>,
    entries: u64,
}

impl LocalDeadLetterFile {
    fn error(&self, error: std::io::Error) -> Error {
        // A full disk is the operator's to fix: say how, and that nothing was acknowledged.
        let error = match error.kind() {
            std::io::ErrorKind::StorageFull => std::io::Error::new(
                error.kind(),
                format!(
                    "{error}. The filesystem holding {} is full: free space on it (or point the dead-letter \
                     store elsewhere) and run the ingest again; this source was not recorded as completed",
                    self.dir.display()
                ),
            ),
            _ => error,
        };
        Error::DeadLetter { path: self.final_path.display().to_string(), error }
    }
}

impl DeadLetterFile for LocalDeadLetterFile {
    fn write(&mut self, entry: &DeadLetterEntry) -> Result<()> {
        if self.writer.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| self.error(e))?;
            let partial = self.final_path.with_extension(format!("ndjson.partial-{}", std::process::id()));
            let file = File::create(&partial).map_err(|e| self.error(e))?;
            self.writer = Some((partial, BufWriter::new(file)));
        }
        let line = serde_json::to_string(entry).map_err(|e| self.error(std::io::Error::other(e)))?;
        let result = match self.writer.as_mut() {
            Some((_, writer)) => writer.write_all(line.as_bytes()).and_then(|_| writer.write_all(b"\n")),
            None => Ok(()),
        };
        result.map_err(|e| self.error(e))?;
        self.entries += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        match self.writer.take() {
            Some((partial, writer)) => {
                let file = writer.into_inner().map_err(|e| self.error(e.into_error()))?;
                file.sync_all().map_err(|e| self.error(e))?;
                std::fs::rename(&partial, &self.final_path).map_err(|e| self.error(e))?;
                if let Ok(dir) = File::open(&self.dir) {
                    // Persist the rename itself; not all filesystems support it.
                    let _ = dir.sync_all();
                }
                Ok(())
            }
            None => match std::fs::remove_file(&self.final_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.error(e)),
                _ => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(record: u64) -> DeadLetterEntry {
        DeadLetterEntry {
            source: "/x".into(),
            record: Some(record),
            offset: Some(0),
            reason: "amount: expected a number".into(),
            kind: RejectKind::Validation,
            raw: "{}".into(),
            at: "2024-02-05T00:00:00Z".into(),
            source_id: None,
            id: None,
        }
    }

    #[test]
    fn entries_written_before_redrive_existed_still_parse() {
        let old = r#"{"source":"/x","record":3,"offset":0,"reason":"r","kind":"limit","raw":"{}","at":"2024-02-05T00:00:00Z"}"#;
        let SegmentLine::Entry(parsed) = SegmentLine::parse(old) else { panic!("an old entry is an entry") };
        assert_eq!((parsed.source_id, parsed.id), (None, None));
        assert_eq!(SegmentLine::parse("{not json"), SegmentLine::Unreadable("{not json".into()));
    }

    #[test]
    fn a_source_identity_survives_the_entry_exactly() {
        for identity in [
            SourceIdentity::S3 { bucket: "b".into(), key: "k/x.gz".into(), version: "\"e\"".into() },
            SourceIdentity::File { path: "/x".into(), size: 7, mtime_ns: i128::MAX - 1 },
            SourceIdentity::Stream { name: "-".into(), nonce: "n".into() },
        ] {
            let entry =
                DeadLetterEntry::for_record(&identity, 4, 10, (RejectKind::Limit, "r".into()), "{}".into(), None);
            let line = serde_json::to_string(&entry).unwrap();
            let back: DeadLetterEntry = serde_json::from_str(&line).unwrap();
            assert_eq!(back.source_id.and_then(|s| s.identity()), Some(identity), "{line}");
        }
    }

    #[test]
    fn replacing_a_segment_keeps_unreadable_lines_and_an_empty_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDeadLetter::new(dir.path());
        let source = SourceIdentity::Stream { name: "a".into(), nonce: "1".into() };
        let mut file = LocalDeadLetter::new(dir.path()).begin(&source, 0).unwrap();
        file.write(&entry(1)).unwrap();
        file.finish().unwrap();
        let names = store.segment_names().unwrap();
        assert_eq!(names, vec![segment_file_name(&source, 0)]);
        let kept = vec![SegmentLine::Unreadable("{damaged".into()), SegmentLine::Entry(entry(2))];
        store.replace_segment(&names[0], &kept).unwrap();
        assert_eq!(store.read_segment(&names[0]).unwrap(), kept);
        assert_eq!(store.segment_names().unwrap(), names, "nothing left beside it");
        store.replace_segment(&names[0], &[]).unwrap();
        assert!(store.segment_names().unwrap().is_empty());
    }

    #[test]
    fn replaying_a_source_replaces_its_entries_instead_of_doubling_them() {
        let dir = tempfile::tempdir().unwrap();
        let source = SourceIdentity::Stream { name: "a".into(), nonce: "1".into() };
        let mut store = LocalDeadLetter::new(dir.path());
        for _ in 0..2 {
            let mut file = store.begin(&source, 0).unwrap();
            file.write(&entry(1)).unwrap();
            file.write(&entry(2)).unwrap();
            file.finish().unwrap();
        }
        assert_eq!(LocalDeadLetter::read_all(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn a_clean_replay_removes_the_stale_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = SourceIdentity::Stream { name: "a".into(), nonce: "1".into() };
        let mut store = LocalDeadLetter::new(dir.path());
        let mut file = store.begin(&source, 0).unwrap();
        file.write(&entry(1)).unwrap();
        file.finish().unwrap();
        store.begin(&source, 0).unwrap().finish().unwrap();
        assert!(LocalDeadLetter::read_all(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn unfinished_entries_are_not_published() {
        let dir = tempfile::tempdir().unwrap();
        let source = SourceIdentity::Stream { name: "a".into(), nonce: "1".into() };
        let mut store = LocalDeadLetter::new(dir.path());
        let mut file = store.begin(&source, 0).unwrap();
        file.write(&entry(1)).unwrap();
        drop(file);
        assert!(LocalDeadLetter::read_all(dir.path()).unwrap().is_empty());
    }
}
