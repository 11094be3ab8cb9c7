//! Test-only helpers shared by the integration tests of `ingest`, `indexer` and
//! `query-cli`: a fault-injecting TCP proxy for loopback servers (Garage, the scripted
//! Elasticsearch server) and the conservation oracle that judges a run from the index
//! and the dead-letter store alone.

pub mod fault_proxy;
pub mod oracle;
