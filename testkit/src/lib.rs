//! Test-only helpers shared by the integration tests of `ingest`, `indexer` and
//! `query-cli`: the Garage harness of the S3 tier, a fault-injecting TCP proxy for
//! loopback servers (Garage, the scripted Elasticsearch server), the scripted
//! Elasticsearch server itself (answers scripted per request, or a stateful fake cluster
//! with switchable faults), builders of booking events, and the conservation oracle that
//! judges a run from the index and the dead-letter store alone.
//!
//! With the `backend` feature (which depends on `indexer`): an in-memory store
//! implementing the backend contract ([`memory`]), fast Elasticsearch test settings
//! ([`es`]), and reading what a store holds for the oracle.

#[cfg(feature = "backend")]
pub mod es;
pub mod es_server;
pub mod events;
pub mod fault_proxy;
pub mod garage;
pub mod lambda_api;
#[cfg(feature = "backend")]
pub mod memory;
pub mod oracle;
pub mod pii;
pub mod sigv4_gate;
pub mod ssm_server;

pub use es_server::{FakeCluster, Ledger, Reply, Request, Scripted};
