//! Shared by the S3 tier's tests: the Garage connection (started by
//! `scripts/garage.sh`, configured through the standard AWS variables), unique key
//! prefixes, objects with known record counts, and trigger events shaped as AWS sends
//! them (keys URL-encoded, `+` for spaces).

#![allow(dead_code)]

pub mod es;

use std::io::Write;
use std::path::Path;

use std::collections::BTreeMap;

use indexer::{Backend, SearchRequest, SourceStatus, TantivyBackend, TantivyConfig};
use ingest::dead_letter::{DeadLetterEntry, DeadLetterStore};
use ingest::pipeline::PipelineConfig;
use ingest::redact::Redactor;
use ingest::s3::{S3Context, S3DeadLetter, S3Location};
use ingest::trigger::{handle_event, Deadline, HandlerReport};
use serde_json::{json, Map, Value};
use testkit::oracle::{Corpus, Observed, ObservedDeadLetter, ObservedSource};

pub const HOW_TO_RUN: &str =
    "the S3 tier needs Garage: run `scripts/test.sh` (installs and starts it), or `scripts/garage.sh start` and \
     `. target/garage/env` before `cargo test -- --ignored`";

/// A Garage connection for one test, with the runtime its client blocks on.
pub struct Garage {
    pub s3: S3Context,
    pub bucket: String,
    pub dl_bucket: String,
    // Declared last: dropped after the client that uses it.
    pub runtime: tokio::runtime::Runtime,
}

pub fn garage() -> Garage {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL is not set: {HOW_TO_RUN}"));
    assert!(endpoint.contains("127.0.0.1") || endpoint.contains("localhost"), "refusing a non-loopback S3: {endpoint}");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s3 = S3Context::from_env_blocking(runtime.handle().clone());
    let bucket = std::env::var("TIX_S3_TEST_BUCKET").unwrap_or_else(|_| "tix-logs-test".into());
    let dl_bucket = std::env::var("TIX_S3_TEST_DL_BUCKET").unwrap_or_else(|_| "tix-logs-dl".into());
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
    backend: &mut dyn Backend,
    dead_letter: &mut dyn DeadLetterStore,
) -> HandlerReport {
    handle_with(s3, event, backend, dead_letter, pipeline_config(), None)
}

/// [`handle`] with other pipeline settings or a deadline.
pub fn handle_with(
    s3: &S3Context,
    event: &Value,
    backend: &mut dyn Backend,
    dead_letter: &mut dyn DeadLetterStore,
    config: PipelineConfig,
    deadline: Option<Deadline>,
) -> HandlerReport {
    handle_event(event.to_string().as_bytes(), s3, backend, dead_letter, config, deadline, None).unwrap()
}

/// A prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tests/{test}/{nanos}-{}/", std::process::id())
}

/// `n` realistic booking events (all distinct for distinct seeds), as NDJSON.
pub fn ndjson(seed: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = fixtures::generate(&fixtures::GenConfig::new(seed, n), &mut out).unwrap();
    assert_eq!(stats.events, n);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// One S3 notification record for an uploaded object.
pub fn s3_record(bucket: &str, key: &str, etag: &str, size: usize) -> Value {
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "garage",
        "eventTime": "2024-02-06T00:00:11.407Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "tix-logs-ingest",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": fixtures::samples::aws_encode_key(key), "size": size, "eTag": etag.trim_matches('"'), "sequencer": "0065C1000000A0000B"}
        }
    })
}

/// An SQS event whose messages carry the given bodies.
pub fn sqs_event(messages: &[(String, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("receipt-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:garage:000000000000:tix-logs-ingest",
                "awsRegion": "garage"
            })
        })
        .collect();
    json!({ "Records": records })
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
pub fn count(backend: &dyn Backend) -> u64 {
    backend.count(&SearchRequest::default()).unwrap()
}

/// Every document id in the index, sorted (for "the same index" comparisons).
pub fn all_ids(backend: &dyn Backend) -> Vec<String> {
    let total = count(backend) as usize;
    let response = backend.search(&SearchRequest { limit: total.max(1), ..SearchRequest::default() }).unwrap();
    let mut ids: Vec<String> = response.hits.into_iter().map(|h| h.id).collect();
    ids.sort();
    ids
}

/// Every event in the index at `index`, by id; a doubled id fails here.
pub fn indexed(index: &Path) -> BTreeMap<String, Map<String, Value>> {
    let backend = TantivyBackend::open_for_reading(index).unwrap();
    let total = backend.count(&SearchRequest::default()).unwrap() as usize;
    let hits = backend.search(&SearchRequest { limit: total + 10, ..SearchRequest::default() }).unwrap().hits;
    assert_eq!(hits.len(), total);
    Observed::docs_by_id(hits.into_iter().map(|hit| (hit.id, hit.source)))
}

/// What a run left in the index at `index` and in the dead-letter entries read back from
/// its store, for the oracle.
pub fn observed(index: &Path, dead_letters: Vec<DeadLetterEntry>) -> Observed {
    let backend = TantivyBackend::open_for_reading(index).unwrap();
    Observed {
        docs: indexed(index),
        dead_letters: dead_letters
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
