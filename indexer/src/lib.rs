//! tix-logs indexer: what an indexed booking event is ([`schema`]), the storage
//! contract ([`backend`]: [`Store`] reads, [`Backend`] writes) and its implementations ([`tantivy`], [`elasticsearch`]).
//!
//! Each backend's heavy dependencies sit behind a default feature (`tantivy`,
//! `elasticsearch`); without them the crate is its pure core, which the fuzz targets build.

#[cfg(feature = "elasticsearch")]
pub mod aws_http;
pub mod backend;
pub mod civil;
pub mod doc_id;
// The backend conformance suite, for the backends' own tests and test doubles: not part
// of the shipped API.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod elasticsearch;
pub mod encode;
pub mod error;
pub mod report;
pub mod retry;
pub mod schema;
#[cfg(feature = "tantivy")]
pub mod tantivy;
pub mod text;

#[cfg(feature = "tantivy")]
pub use crate::tantivy::{TantivyBackend, TantivyConfig, TantivyReader, DEFAULT_HEAP_MB, DEFAULT_MAX_MERGE_DOCS};
pub use backend::{
    AggSpec, Backend, Hit, IndexDoc, Outcome, ResumePoint, SearchRequest, SearchResponse, SortSpec, SourceRecord,
    SourceStatus, Store,
};
#[cfg(feature = "elasticsearch")]
pub use elasticsearch::{ElasticsearchBackend, EsAuth, EsConfig};
pub use encode::{DocEncoder, EncodedDoc, JsonEncoder};
pub use error::{Error, Result};
