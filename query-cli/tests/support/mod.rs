//! Shared by the CLI's S3-tier tests (`s3_cli`, `es_cli`, `reconcile`): the Garage
//! connection that `scripts/garage.sh` starts (configured through the standard AWS
//! variables), key prefixes no other test or earlier run uses, and what an index and
//! its dead letters hold, for the oracle (`s3_cli`, `redrive_cli`).

#![allow(dead_code)]

use std::path::Path;

use indexer::{Backend, SearchRequest, SourceStatus, TantivyBackend};
use ingest::dead_letter::DeadLetterEntry;
use ingest::s3::S3Context;
use testkit::oracle::{Observed, ObservedDeadLetter, ObservedSource};

/// A Garage connection, with the runtime its client blocks on.
pub struct Garage {
    pub s3: S3Context,
    pub bucket: String,
    pub dl_bucket: String,
    // Declared last: dropped after the client that uses it.
    _runtime: tokio::runtime::Runtime,
}

pub fn garage() -> Garage {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL is not set: run scripts/test.sh (starts Garage)");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s3 = S3Context::from_env_blocking(runtime.handle().clone());
    Garage {
        s3,
        bucket: std::env::var("TIX_S3_TEST_BUCKET").unwrap_or_else(|_| "tix-logs-test".into()),
        dl_bucket: std::env::var("TIX_S3_TEST_DL_BUCKET").unwrap_or_else(|_| "tix-logs-dl".into()),
        _runtime: runtime,
    }
}

/// `cli-tests/TEST/NANOS-PID/`: a prefix of its own for each test run.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("cli-tests/{test}/{nanos}-{}/", std::process::id())
}

/// What the index at `index` and the given dead-letter entries hold, for the oracle.
pub fn observe(index: &Path, entries: Vec<DeadLetterEntry>) -> Observed {
    let backend = TantivyBackend::open_for_reading(index).unwrap();
    let total = backend.count(&SearchRequest::default()).unwrap() as usize;
    let hits = backend.search(&SearchRequest { limit: total + 10, ..SearchRequest::default() }).unwrap().hits;
    Observed {
        docs: Observed::docs_by_id(hits.into_iter().map(|hit| (hit.id, hit.source))),
        dead_letters: entries
            .into_iter()
            .map(|e| ObservedDeadLetter { source: e.source, record: e.record, reason: e.reason })
            .collect(),
        sources: backend
            .sources()
            .unwrap()
            .into_iter()
            .map(|s| ObservedSource { source: s.source, completed: s.status == SourceStatus::Completed })
            .collect(),
    }
}
