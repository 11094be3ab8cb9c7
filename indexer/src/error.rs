//! The indexer crate's error type.

/// What went wrong talking to a backend. Operational errors stop a run (exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("index at {path} is locked by another writer; wait for it to finish or remove a stale lock after checking no tix-logs process runs")]
    Locked { path: String },
    #[error("tantivy index {path}: {message}")]
    Tantivy { path: String, message: String },
    #[error("invalid query {query:?}: {message}")]
    Query { query: String, message: String },
    #[error("invalid aggregation {spec:?}: {message}")]
    Aggregation { spec: String, message: String },
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    #[error("backend refused credentials: {0}")]
    Auth(String),
    /// The cluster refuses every write to the index (a `cluster_block_exception` with
    /// HTTP 403): an operator has to lift the block, so retrying cannot help and the
    /// documents are not at fault.
    #[error("backend index is write-blocked: {0}")]
    Blocked(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
