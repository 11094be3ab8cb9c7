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
    #[error("{0}")]
    Other(String),
    /// The cluster is a search engine release without composable index templates
    /// (`PUT _index_template`): no retry or setting can help, the cluster must change.
    #[error(
        "the cluster runs {found}, which tix-logs does not support: it needs Elasticsearch 7.10 or later or \
         OpenSearch 1.0 or later (composable index templates, PUT _index_template); upgrade the cluster or \
         point TIX_ES_URL at a supported one"
    )]
    UnsupportedEngine { found: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
