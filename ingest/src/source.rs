//! Where records come from: local files, directories (recursively) and stdin, each with
//! the stable identity that positional document ids and checkpoints derive from.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::id::SourceIdentity;

/// One object to ingest.
pub trait SourceObject: Send + Sync {
    /// Who the object is, for ids, checkpoints and dead-letter entries.
    fn identity(&self) -> &SourceIdentity;
    /// Size in bytes when known (for progress).
    fn size_hint(&self) -> Option<u64>;
    /// Opens the object's raw (possibly compressed) bytes.
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>>;
}

/// A local file, identified by canonical path, size and modification time.
#[derive(Debug, Clone)]
pub struct LocalFile {
    path: PathBuf,
    size: u64,
    identity: SourceIdentity,
}

impl LocalFile {
    /// Reads the file's metadata to build its identity.
    pub fn new(path: &Path) -> Result<Self> {
        let source_error = |error| Error::Source { source_name: path.display().to_string(), error };
        let canonical = std::fs::canonicalize(path).map_err(source_error)?;
        let meta = std::fs::metadata(&canonical).map_err(source_error)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let identity = SourceIdentity::File { path: canonical.display().to_string(), size: meta.len(), mtime_ns };
        Ok(LocalFile { path: canonical, size: meta.len(), identity })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SourceObject for LocalFile {
    fn identity(&self) -> &SourceIdentity {
        &self.identity
    }
    fn size_hint(&self) -> Option<u64> {
        Some(self.size)
    }
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::fs::File::open(&self.path)?))
    }
}

/// Standard input. It has no stable identity, so records without `event_id` get ids
/// unique to this run (re-reading the same stream indexes them again).
pub struct Stdin {
    identity: SourceIdentity,
    taken: std::sync::Mutex<bool>,
}

impl Stdin {
    pub fn new() -> Self {
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        );
        Stdin { identity: SourceIdentity::Stream { name: "-".into(), nonce }, taken: std::sync::Mutex::new(false) }
    }
}

impl Default for Stdin {
    fn default() -> Self {
        Self::new()
    }
}

impl SourceObject for Stdin {
    fn identity(&self) -> &SourceIdentity {
        &self.identity
    }
    fn size_hint(&self) -> Option<u64> {
        None
    }
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        let mut taken = self.taken.lock().map_err(|_| std::io::Error::other("stdin lock poisoned"))?;
        if *taken {
            return Err(std::io::Error::other("stdin can be read only once"));
        }
        *taken = true;
        Ok(Box::new(std::io::stdin()))
    }
}

/// Expands command-line sources: files, directories (recursively, in name order,
/// skipping hidden entries) and `-` for stdin.
pub fn local_sources(args: &[String]) -> Result<Vec<Box<dyn SourceObject>>> {
    let mut out: Vec<Box<dyn SourceObject>> = Vec::new();
    for arg in args {
        if arg == "-" {
            out.push(Box::new(Stdin::new()));
            continue;
        }
        let path = Path::new(arg);
        let meta = std::fs::metadata(path).map_err(|error| Error::Source { source_name: arg.clone(), error })?;
        if meta.is_dir() {
            let walker = walkdir::WalkDir::new(path)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
            for entry in walker {
                let entry = entry.map_err(|e| Error::Source {
                    source_name: arg.clone(),
                    error: std::io::Error::other(e.to_string()),
                })?;
                if entry.file_type().is_file() {
                    out.push(Box::new(LocalFile::new(entry.path())?));
                }
            }
        } else {
            out.push(Box::new(LocalFile::new(path)?));
        }
    }
    Ok(out)
}

/// A reader that adds the bytes passing through it to a shared counter: the pipeline's
/// for the progress display and the source's report, the decoder's for the
/// compression-ratio check. Errors pass through untouched.
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R, count: Arc<AtomicU64>) -> Self {
        CountingReader { inner, count }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_expand_recursively_in_name_order_without_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/2.ndjson"), b"{}").unwrap();
        std::fs::write(dir.path().join("a.ndjson"), b"{}").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"{}").unwrap();
        let sources = local_sources(&[dir.path().display().to_string()]).unwrap();
        let names: Vec<String> = sources.iter().map(|s| s.identity().display_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[0].ends_with("a.ndjson") && names[1].ends_with("2.ndjson"), "{names:?}");
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let err = local_sources(&["/no/such/file.ndjson".into()]).err().unwrap().to_string();
        assert!(err.contains("/no/such/file.ndjson"), "{err}");
    }

    #[test]
    fn a_file_identity_changes_when_its_content_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        std::fs::write(&path, b"{}").unwrap();
        let before = LocalFile::new(&path).unwrap().identity().checkpoint_key();
        std::fs::write(&path, b"{}\n{}").unwrap();
        let after = LocalFile::new(&path).unwrap().identity().checkpoint_key();
        assert_ne!(before, after);
    }
}
