//! The ingest crate's error and outcome vocabulary: why a record was rejected, why an
//! object failed, and the crate-level [`Error`] for operational failures.

use std::fmt;

/// The `kind` column of a dead-letter entry (ARCHITECTURE.md, "No loss, no doubles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RejectKind {
    /// The record parsed but breaks the booking-event contract (missing/wrong-typed field).
    Validation,
    /// The bytes are not a JSON object (bad JSON, invalid UTF-8, not an object, bad compression).
    Decode,
    /// A configured limit was passed (line size, nesting depth, decompressed size or ratio).
    Limit,
    /// The backend refused the document (e.g. Elasticsearch 400).
    Backend,
}

impl fmt::Display for RejectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectKind::Validation => "validation",
            RejectKind::Decode => "decode",
            RejectKind::Limit => "limit",
            RejectKind::Backend => "backend",
        })
    }
}

/// Why one record cannot be indexed. `reason` names the field when there is one
/// (`"amount: expected a number"`), never the record's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectKind,
    pub reason: String,
}

impl Rejection {
    pub fn validation(reason: impl Into<String>) -> Self {
        Rejection { kind: RejectKind::Validation, reason: reason.into() }
    }
    pub fn decode(reason: impl Into<String>) -> Self {
        Rejection { kind: RejectKind::Decode, reason: reason.into() }
    }
    pub fn limit(reason: impl Into<String>) -> Self {
        Rejection { kind: RejectKind::Limit, reason: reason.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.kind)
    }
}

/// Why an object could not be read to its end. Records read before the failure stay
/// indexed; the object gets one dead-letter entry and is reported as failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ObjectFailure {
    pub kind: RejectKind,
    pub reason: String,
    /// Offset in the decompressed stream where reading stopped, when known.
    pub offset: Option<u64>,
}

impl ObjectFailure {
    pub fn decode(reason: impl Into<String>, offset: Option<u64>) -> Self {
        ObjectFailure { kind: RejectKind::Decode, reason: reason.into(), offset }
    }
    pub fn limit(reason: impl Into<String>, offset: Option<u64>) -> Self {
        ObjectFailure { kind: RejectKind::Limit, reason: reason.into(), offset }
    }
}

/// Operational errors of the ingest crate: the run cannot go on (exit 2 in the CLI).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read source {source_name}: {error}")]
    Source { source_name: String, error: std::io::Error },
    #[error("dead-letter store {path}: {error}")]
    DeadLetter { path: String, error: std::io::Error },
    #[error(transparent)]
    Backend(#[from] indexer::Error),
    #[error("unreadable trigger event: {0}")]
    Event(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A reconciliation that must not run as asked (e.g. it would ingest its own dead
    /// letters).
    #[error("cannot reconcile {location}: {reason}")]
    Reconcile { location: String, reason: String },
    /// A secret's parameter could not be read at cold start (`crate::secrets`): the
    /// function must not start without it. Names the parameter, never its value.
    #[error("cannot read the SSM parameter {parameter:?} named by {variable}: {reason}. {advice}")]
    Secret { variable: &'static str, parameter: String, reason: String, advice: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
