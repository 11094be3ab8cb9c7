//! Elasticsearch settings for tests against a loopback server: millisecond backoffs and
//! a few retries. They live in `indexer::conformance::es_settings` (indexer's own wire
//! tests use them, and cannot depend on testkit's `backend` feature without a cycle);
//! re-exported here beside the other harnesses.

pub use indexer::conformance::es_settings::{fast_config, fast_retry};
