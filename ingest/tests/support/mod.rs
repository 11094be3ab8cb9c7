//! Shared by the S3 tier's tests: ingest's S3 client on `testkit`'s Garage harness,
//! unique key prefixes, objects with known record counts, trigger events shaped as AWS
//! sends them (`testkit::garage`), and what a run left in an index for the oracle.

// Each test binary uses its own part of the support, re-exports included.
#![allow(dead_code, unused_imports)]

pub mod es;

use std::collections::BTreeMap;
use std::path::Path;

pub use fixtures::samples::gzip;
use indexer::{Backend, SearchRequest, Store, TantivyBackend, TantivyConfig};
use ingest::dead_letter::{DeadLetterEntry, DeadLetterStore};
use ingest::pipeline::PipelineConfig;
use ingest::redact::Redactor;
use ingest::s3::{S3Context, S3DeadLetter, S3Location};
use ingest::trigger::{handle_event, Deadline, HandlerReport};
use serde_json::{json, Map, Value};
/// `n` realistic booking events (all distinct for distinct seeds), as NDJSON.
pub use testkit::events::generated as ndjson;
pub use testkit::garage::{s3_record, sqs_event, HOW_TO_RUN};
use testkit::oracle::{Corpus, Observed, ObservedDeadLetter};

/// A Garage connection for one test, with the runtime its client blocks on.
pub struct Garage {
    pub s3: S3Context,
    pub bucket: String,
    pub dl_bucket: String,
    // Declared last: dropped after the client that uses it.
    pub runtime: tokio::runtime::Runtime,
}

pub fn garage() -> Garage {
    let testkit::garage::Garage { bucket, dl_bucket, runtime, .. } = testkit::garage::Garage::from_env();
    let s3 = S3Context::from_env_blocking(runtime.handle().clone());
    Garage { s3, bucket, dl_bucket, runtime }
}

impl Garage {
    /// A dead-letter store on a prefix of its own.
    pub fn dead_letter(&self, prefix: &str) -> S3DeadLetter {
        S3DeadLetter::new(self.s3.clone(), S3Location { bucket: self.dl_bucket.clone(), prefix: prefix.to_string() })
    }

    /// Uploads and returns the ETag Garage gives the object.
    pub fn put(&self, key: &str, body: Vec<u8>) -> String {
        self.s3.put(&self.bucket, key, body).unwrap()
    }

    /// Uploads an object and returns the S3 notification announcing it (an SQS body).
    pub fn notify(&self, key: &str, body: Vec<u8>) -> String {
        let size = body.len();
        let etag = self.put(key, body);
        json!({ "Records": [s3_record(&self.bucket, key, &etag, size)] }).to_string()
    }
}

/// Runs `event` through the trigger handler with the test pipeline settings.
pub fn handle(
    s3: &S3Context,
    event: &Value,
    backend: &mut impl Backend,
    dead_letter: &mut dyn DeadLetterStore,
) -> HandlerReport {
    handle_with(s3, event, backend, dead_letter, pipeline_config(), None)
}

/// [`handle`] with other pipeline settings or a deadline.
pub fn handle_with(
    s3: &S3Context,
    event: &Value,
    backend: &mut impl Backend,
    dead_letter: &mut dyn DeadLetterStore,
    config: PipelineConfig,
    deadline: Option<Deadline>,
) -> HandlerReport {
    handle_event(event.to_string().as_bytes(), s3, backend, dead_letter, config, deadline, None).unwrap()
}

/// A prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    testkit::garage::unique_prefix("tests", test)
}

pub fn tantivy(dir: &Path) -> TantivyBackend {
    let mut backend = TantivyBackend::open_for_writing(dir, TantivyConfig::default()).unwrap();
    backend.ensure_ready().unwrap();
    backend
}

pub fn pipeline_config() -> PipelineConfig {
    PipelineConfig::new(Redactor::new(b"test-pii-key-for-the-tests-0123456789"))
}

/// Events in the index, counted by the backend.
pub fn count(backend: &dyn Store) -> u64 {
    backend.count(&SearchRequest::default()).unwrap()
}

/// Every document id in the index, sorted (for "the same index" comparisons).
pub fn all_ids(backend: &dyn Store) -> Vec<String> {
    let total = count(backend) as usize;
    let response = backend.search(&SearchRequest { limit: total.max(1), ..SearchRequest::default() }).unwrap();
    let mut ids: Vec<String> = response.hits.into_iter().map(|h| h.id).collect();
    ids.sort();
    ids
}

/// Every event in the index at `index`, by id; a doubled id fails here.
pub fn indexed(index: &Path) -> BTreeMap<String, Map<String, Value>> {
    testkit::oracle::stored_docs(&TantivyBackend::open_for_reading(index).unwrap())
}

/// What a run left in the index at `index` and in the dead-letter entries read back from
/// its store, for the oracle.
pub fn observed(index: &Path, dead_letters: Vec<DeadLetterEntry>) -> Observed {
    let backend = TantivyBackend::open_for_reading(index).unwrap();
    Observed::of_store(&backend, observed_dead_letters(dead_letters))
}

/// Dead-letter entries as the oracle reads them.
pub fn observed_dead_letters(entries: Vec<DeadLetterEntry>) -> Vec<ObservedDeadLetter> {
    entries.into_iter().map(|e| ObservedDeadLetter { source: e.source, record: e.record, reason: e.reason }).collect()
}

/// Uploads every object of `corpus` under `prefix` and returns the SQS event naming them,
/// message `m{i}` for object `i`.
pub fn upload_corpus(garage: &Garage, corpus: &Corpus, prefix: &str) -> Value {
    let messages: Vec<(String, String)> = corpus
        .files()
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let key = format!("{prefix}{}", file.file_name().unwrap().to_string_lossy());
            (format!("m{i}"), garage.notify(&key, std::fs::read(file).unwrap()))
        })
        .collect();
    sqs_event(&messages)
}
