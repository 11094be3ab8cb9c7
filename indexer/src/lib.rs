//! tix-logs indexer: what an indexed booking event is ([`schema`]), the [`Backend`]
//! contract ([`backend`]) and its implementations ([`tantivy_backend`]).

pub mod backend;
pub mod conformance;
pub mod error;
pub mod schema;
pub mod tantivy_backend;

pub use backend::{AggSpec, Backend, Hit, IndexDoc, Outcome, SearchRequest, SearchResponse, SortSpec, SourceRecord, SourceStatus};
pub use error::{Error, Result};
pub use tantivy_backend::{TantivyBackend, TantivyConfig};
