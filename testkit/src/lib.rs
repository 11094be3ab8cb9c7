//! Test-only helpers shared by the integration tests of `ingest`, `indexer` and
//! `query-cli`: a fault-injecting TCP proxy for loopback servers (Garage, the scripted
//! Elasticsearch server), the scripted Elasticsearch server itself (answers scripted per
//! request, or a stateful fake cluster with switchable faults), and the conservation
//! oracle that judges a run from the index and the dead-letter store alone.

pub mod es_server;
pub mod fault_proxy;
pub mod lambda_api;
pub mod oracle;
pub mod pii;
pub mod sigv4_gate;
pub mod ssm_server;

pub use es_server::{FakeCluster, Ledger, Reply, Request, Scripted};
