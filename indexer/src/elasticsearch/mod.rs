//! The production backend: an Elasticsearch or OpenSearch cluster, reached with the
//! official `elasticsearch` crate's `Transport`.
//!
//! The [`Backend`](crate::Backend) contract is synchronous, so the backend owns a small
//! tokio runtime (one worker thread for the requests in flight) and blocks on it. Call it
//! from a plain thread or from `spawn_blocking` (as the Lambda does); inside another
//! runtime's context the requests run on a scoped thread, since a thread may not enter
//! two runtimes.
//!
//! Everything that can be decided without I/O lives in pure submodules with their own
//! tests: [`engine`] (which engine and version answers, what it accepts, the lifecycle
//! policies), [`mapping`] (index names, template), [`bulk`] (request encoding, response
//! classification, the retry state machine) and [`query`] (search translation); when to
//! retry and how long to wait is [`crate::retry`]'s. They build without the
//! `elasticsearch` feature (the fuzz targets use them). The feature adds the client:
//! `config` (settings, secrets), `sigv4` (AWS request signing), the report's paging and
//! `client`, which only moves bytes and sleeps.
//!
//! Layout on the cluster: events in daily indices `PREFIX-YYYY.MM.DD` made from the
//! index template `PREFIX`; one checkpoint document per source in `PREFIX-sources`.

pub mod bulk;
pub mod engine;
pub mod mapping;
pub mod query;

#[cfg(feature = "elasticsearch")]
mod client;
#[cfg(feature = "elasticsearch")]
pub mod config;
#[cfg(feature = "elasticsearch")]
mod report;
#[cfg(feature = "elasticsearch")]
pub mod sigv4;

#[cfg(feature = "elasticsearch")]
pub use client::ElasticsearchBackend;
#[cfg(feature = "elasticsearch")]
pub use config::{EsAuth, EsConfig, RetryPolicy, Secret, DEFAULT_INDEX_PREFIX};
