//! tix-logs indexer: what an indexed booking event is ([`schema`]), the [`Backend`]
//! contract ([`backend`]) and its implementations ([`tantivy_backend`], [`elasticsearch`]).

pub mod aws_http;
pub mod backend;
pub mod civil;
pub mod conformance;
pub mod elasticsearch;
pub mod encode;
pub mod error;
pub mod id_set;
pub mod ids;
pub mod report;
pub mod schema;
pub mod tantivy_backend;
mod tantivy_report;
pub mod text;

pub use backend::{
    AggSpec, Backend, Hit, IndexDoc, Outcome, ResumePoint, SearchRequest, SearchResponse, SortSpec, SourceRecord,
    SourceStatus,
};
pub use elasticsearch::{ElasticsearchBackend, EsAuth, EsConfig};
pub use encode::{DocEncoder, EncodedDoc};
pub use error::{Error, Result};
pub use tantivy_backend::{TantivyBackend, TantivyConfig, DEFAULT_HEAP_MB, DEFAULT_MAX_MERGE_DOCS};
