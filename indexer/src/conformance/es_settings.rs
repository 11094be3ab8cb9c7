//! Elasticsearch settings for tests against a loopback server (`testkit`'s scripted
//! server or fake cluster): millisecond backoffs and a few retries, so a fault that
//! outlasts them fails its items within a second instead of the production minutes.
//!
//! Here, behind the `conformance` feature, rather than in `testkit`: indexer's own wire
//! tests use them, and testkit depending on indexer for them would close a dependency
//! cycle through those tests. `testkit::es` re-exports them for the other crates.

use std::time::Duration;

use crate::retry::RetryPolicy;
use crate::{EsAuth, EsConfig};

/// Backoffs of 2 to 10 ms, three retries, five seconds in all.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
        max_retries: 3,
        budget: Duration::from_secs(5),
    }
}

/// A config for the server at `url` with `auth`, [`fast_retry`] and a two-second request
/// timeout; a test adjusts the fields it is about.
pub fn fast_config(url: &str, auth: EsAuth) -> EsConfig {
    let mut config = EsConfig::new(url);
    config.auth = auth;
    config.request_timeout = Duration::from_secs(2);
    config.retry = fast_retry();
    config
}
