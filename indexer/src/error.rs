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
    /// A daily index does not exist and could not be created: the cluster refuses
    /// auto-creation (`action.auto_create_index`) and the explicit `PUT <index>` failed
    /// too. The documents are not at fault; nothing may be dead-lettered for it.
    #[error(
        "index {index} does not exist and could not be created ({reason}). The cluster refuses to create \
         indices on write (action.auto_create_index); either allow it for the daily indices \
         (PUT _cluster/settings {{\"persistent\":{{\"action.auto_create_index\":\"{pattern},-*\"}}}}) or \
         grant the ingest credentials the create_index privilege on {pattern}, then run again"
    )]
    IndexMissing { index: String, pattern: String, reason: String },
    /// The cluster's state refuses the write, whatever the documents hold (a closed
    /// index, the shard limit, an alias without a write index, an illegal index name):
    /// an operator has to act, so the run stops and no document is dead-lettered.
    #[error("the cluster refuses writes for a reason outside the documents: {0}")]
    Cluster(String),
    /// The store does not offer this operation (a test double without the booking
    /// report, say): no retry helps; use a backend that does.
    #[error("the {backend} backend cannot {operation}")]
    Unsupported { backend: &'static str, operation: &'static str },
    /// The cluster is a search engine release without composable index templates
    /// (`PUT _index_template`): no retry or setting can help, the cluster must change.
    #[error(
        "the cluster runs {found}, which tix-logs does not support: it needs Elasticsearch 7.10 or later or \
         OpenSearch 1.0 or later (composable index templates, PUT _index_template); upgrade the cluster or \
         point TIX_ES_URL at a supported one"
    )]
    UnsupportedEngine { found: String },
    /// The cluster's TLS certificate failed verification, as the TLS library's error in
    /// the transport error's chain says. No retry can change a certificate: its CA must
    /// be trusted (`TIX_ES_CA_CERT`) and it must name the host of `TIX_ES_URL`.
    #[error("backend unreachable: {0}")]
    Certificate(String),
    /// A setting is missing, malformed or contradicts another. `setting` names the
    /// variable (never its value, which may be a secret); `source` is the parser's or
    /// the file system's error when there is one.
    #[error("{message}")]
    Config {
        setting: &'static str,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The HTTP client or the runtime it runs on could not be set up.
    #[error("{what}")]
    Client {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// The cluster answered with a status the call cannot go on from (after the
    /// retries a busy cluster gets): `message` says which call and what to do.
    #[error("{message}")]
    Http { status: u16, message: String },
    /// An answer that cannot be read as what was asked for (a field missing, a stored
    /// checkpoint that does not parse): the cluster is not what it claims, or a bug.
    #[error("{message}")]
    Malformed {
        message: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    /// Shards that failed, a search that timed out or a list cut short would make the
    /// answer smaller than the truth: it is refused rather than returned. Running
    /// again may succeed.
    #[error("{0}")]
    Incomplete(String),
    /// The source checkpoints could not be written: the sources are not marked done and
    /// are read again by the next run (their documents are already acknowledged).
    #[error("writing source checkpoints to {index}: {reason}")]
    Checkpoint { index: String, reason: String },
    /// A broken invariant of this program (a request task panicked): neither the
    /// cluster's nor the data's fault.
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

/// The underlying error of a variant, when its type is not one this crate names.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// A [`Error::Config`] without an underlying error.
    pub fn config(setting: &'static str, message: impl Into<String>) -> Self {
        Error::Config { setting, message: message.into(), source: None }
    }

    /// An [`Error::Internal`] without an underlying error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal { message: message.into(), source: None }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `error` and each of its causes, leaving out a cause whose text is already there
/// (transport errors repeat their source's message): for places that can log only one
/// line of text, such as the Lambda's start-up refusal and a checkpoint's failure reason.
pub fn describe_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
