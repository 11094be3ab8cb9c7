//! The dead-letter store: one NDJSON entry per rejected record or failed object.
//!
//! Entries of one source go to files named after the source's checkpoint key, one per
//! *segment*: the records one attempt read from a resume point on (see
//! [`segment_file_name`]). A segment is written beside its final name and renamed into
//! place before the checkpoint that covers it is committed, so a replay from the same
//! resume point replaces the segment instead of appending a second copy of each entry,
//! and the segments of an object read over several invocations never overlap.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, RejectKind, Result};
use crate::id::SourceIdentity;

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
        }
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
