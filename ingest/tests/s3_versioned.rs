//! One identity for an object on a versioned bucket (issue #15): an object the Lambda
//! ingested from a notification carrying a `versionId` is the same source as the object
//! an `s3://` backfill lists, so the backfill skips it and no record without `event_id`
//! is indexed twice. Judged by the conservation oracle over the index, the checkpoints
//! and the dead-letter store, not by counters.
//!
//! What is simulated: Garage has no bucket versioning. It answers `PutObject` with an
//! `x-amz-version-id`, but ignores `versionId` on GET and HEAD and serves the current
//! object (checked by hand: `GET key?versionId=abc123` answers 200 with the current
//! body). So the events here are shaped as a versioned bucket's notifications, carrying
//! the version id Garage gave at upload, and the version pin itself is not exercised;
//! the ETag identity, the `HeadObject` of an event without ETag and the `If-Match` on the
//! ETag are.
//!
//! Ignored by a plain `cargo test`; `scripts/test.sh` runs it with Garage up.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use indexer::Backend;
use ingest::pipeline::{Pipeline, SourceOutcome};
use serde_json::{json, Value};
use support::*;
use testkit::oracle::{self, Corpus};

/// Uploads `body` and returns (ETag, version id) as Garage answers `PutObject`.
fn put_versioned(garage: &Garage, key: &str, body: Vec<u8>) -> (String, String) {
    let put = garage.s3.client().put_object().bucket(&garage.bucket).key(key).body(ByteStream::from(body)).send();
    let output = garage.runtime.block_on(put).unwrap();
    let version = output.version_id().expect("Garage answers PutObject with a version id").to_string();
    (output.e_tag().unwrap().to_string(), version)
}

/// A versioned bucket's `ObjectCreated:Put` record: `versionId`, and `eTag` when given.
fn versioned_record(garage: &Garage, key: &str, size: usize, etag: Option<&str>, version: &str) -> Value {
    let mut record = s3_record(&garage.bucket, key, etag.unwrap_or_default(), size);
    let object = record["s3"]["object"].as_object_mut().unwrap();
    object.insert("versionId".into(), json!(version));
    if etag.is_none() {
        object.remove("eTag");
    }
    record
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn an_object_notified_with_a_version_id_and_then_backfilled_is_indexed_once() {
    let garage = garage();
    let prefix = unique_prefix("versioned");
    // Every 7th record has no event_id: its id comes from the object's identity, so a
    // second identity for the same object would index it again.
    let corpus = Corpus::generate(3, 120, 15_015);
    let mut records = Vec::new();
    for (i, file) in corpus.files().iter().enumerate() {
        let key = format!("{prefix}{}", file.file_name().unwrap().to_string_lossy());
        let body = std::fs::read(file).unwrap();
        let size = body.len();
        let (etag, version) = put_versioned(&garage, &key, body);
        match i {
            // As S3 notifies a versioned bucket: version id and ETag.
            0 => records.push(versioned_record(&garage, &key, size, Some(etag.trim_matches('"')), &version)),
            // A version id alone: the handler asks HeadObject for the ETag.
            1 => records.push(versioned_record(&garage, &key, size, None, &version)),
            // No notification: only the backfill finds it.
            _ => {}
        }
    }
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);

    let report = handle(&garage.s3, &json!({ "Records": records }), &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.sources.len(), 2);
    assert!(report.sources.iter().all(|s| s.outcome == SourceOutcome::Completed), "{:?}", report.sources);
    let notified = count(&backend);
    assert!(notified > 0);

    // `tix-logs ingest s3://bucket/prefix`: the same listing, the same pipeline.
    let location = format!("s3://{}/{prefix}", garage.bucket);
    let sources = ingest::s3::sources_for(&location, &garage.s3).unwrap().unwrap();
    assert_eq!(sources.len(), 3);
    let mut outcomes = Vec::new();
    let summary = {
        let mut pipeline = Pipeline::new(&mut backend, &mut dead_letter, pipeline_config());
        for source in &sources {
            outcomes.push(pipeline.ingest(source.as_ref()).unwrap().outcome);
        }
        pipeline.finish().unwrap()
    };
    Box::new(backend).close().unwrap();

    // Each good record once, each bad one dead-lettered once, one checkpoint per object.
    oracle::check(&corpus, &observed(index.path(), dead_letter.read_all().unwrap()), None);
    assert_eq!(
        outcomes,
        [SourceOutcome::Skipped, SourceOutcome::Skipped, SourceOutcome::Completed],
        "the notified objects are the backfill's objects: {summary:?}"
    );
}
