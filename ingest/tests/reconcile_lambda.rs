//! The Lambda's scheduled reconcile (`{"reconcile": {"prefix": ..., "since": ...,
//! "ingest": ...}}`, sent by EventBridge Scheduler) through the real trigger handler
//! against Garage: objects uploaded without notifications are found missing, ingested
//! once with `"ingest": true`, and a second run finds none missing; a run cut short by
//! the deadline reports what it left for the next one. Judged by the conservation
//! oracle over the index, checkpoints and dead letters.
//!
//! Ignored by a plain `cargo test`; `scripts/test.sh` runs it with Garage up.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indexer::{Backend, TantivyBackend};
use ingest::pipeline::{Progress, SourceReport};
use ingest::trigger::handle_event;
use serde_json::{json, Value};
use support::*;
use testkit::oracle::{self, Corpus};

/// Uploads every corpus object under `prefix` without any notification; their keys.
fn upload_silently(garage: &Garage, corpus: &Corpus, prefix: &str) -> Vec<String> {
    corpus
        .files()
        .iter()
        .map(|file| {
            let key = format!("{prefix}{}", file.file_name().unwrap().to_string_lossy());
            garage.put(&key, std::fs::read(file).unwrap());
            key
        })
        .collect()
}

fn reconcile(location: &str, ingest: bool) -> Value {
    json!({"reconcile": {"prefix": location, "since": "1h", "ingest": ingest}})
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_scheduled_reconcile_finds_lost_notifications_and_ingests_them_once() {
    let garage = garage();
    let prefix = unique_prefix("reconcile-lambda");
    let location = format!("s3://{}/{prefix}", garage.bucket);
    let corpus = Corpus::generate(4, 90, 4_004);
    let keys = upload_silently(&garage, &corpus, &prefix);
    // A folder marker: never missing.
    garage.put(&format!("{prefix}sub/"), Vec::new());
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);

    // Only the first object's notification arrived.
    let size = std::fs::metadata(&corpus.files()[0]).unwrap().len() as usize;
    let etag = garage.s3.head_etag(&garage.bucket, &keys[0], None).unwrap();
    let notification = json!({"Records": [s3_record(&garage.bucket, &keys[0], &etag, size)]});
    assert!(handle(&garage.s3, &notification, &mut backend, &mut dead_letter).failed.is_empty());
    let after_notification = count(&backend);

    let report = handle(&garage.s3, &reconcile(&location, false), &mut backend, &mut dead_letter);
    let found = report.reconciliation.as_ref().expect("a reconcile request is reported");
    assert_eq!(found.location, location);
    assert_eq!(found.reconciliation.missing, keys[1..], "{found:?}");
    assert_eq!((found.reconciliation.completed, found.reconciliation.skipped), (1, 1), "{found:?}");
    assert_eq!(found.remaining, None, "nothing ingested without \"ingest\": {found:?}");
    assert!(report.failed.is_empty() && !report.must_fail_invocation(), "missing objects fail nothing: {report:?}");
    assert_eq!(count(&backend), after_notification, "a report-only run writes nothing");

    let report = handle(&garage.s3, &reconcile(&location, true), &mut backend, &mut dead_letter);
    assert_eq!(count(&backend), corpus.good(), "every good record of every object is in the store now");
    let filled = report.reconciliation.as_ref().unwrap();
    assert_eq!(filled.reconciliation.missing, keys[1..], "what was found: {filled:?}");
    assert_eq!(filled.remaining.as_deref(), Some(&[][..]), "{filled:?}");
    assert_eq!(report.summary.objects, 3, "{:?}", report.summary);
    assert!(report.failed.is_empty(), "{report:?}");

    let report = handle(&garage.s3, &reconcile(&location, true), &mut backend, &mut dead_letter);
    let again = report.reconciliation.as_ref().unwrap();
    assert!(again.reconciliation.missing.is_empty() && again.reconciliation.failed.is_empty(), "{again:?}");
    assert_eq!(again.reconciliation.completed, 4, "{again:?}");
    assert_eq!(report.summary.objects, 0, "nothing left to ingest: {:?}", report.summary);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["reconciliation"]["completed"], 4, "the report serialises: {json}");

    Box::new(backend).close().unwrap();
    oracle::check(&corpus, &observed(index.path(), dead_letter.read_all().unwrap()), None);
}

/// Stops taking work once the first object finished: the deadline, made deterministic.
struct StopAfterFirst(Arc<AtomicBool>);

impl Progress for StopAfterFirst {
    fn source_finished(&self, _report: &SourceReport) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn objects_the_deadline_leaves_are_reported_and_the_next_run_takes_them() {
    let garage = garage();
    let prefix = unique_prefix("reconcile-deadline");
    let location = format!("s3://{}/{prefix}", garage.bucket);
    let corpus = Corpus::generate(3, 60, 5_005);
    let keys = upload_silently(&garage, &corpus, &prefix);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);

    let stop = Arc::new(AtomicBool::new(false));
    let mut config = pipeline_config();
    let flag = stop.clone();
    config.should_stop = Some(Arc::new(move || flag.load(Ordering::SeqCst)));
    let event = reconcile(&location, true).to_string();
    let progress = Arc::new(StopAfterFirst(stop));
    let report =
        handle_event(event.as_bytes(), &garage.s3, &mut backend, &mut dead_letter, config, None, Some(progress))
            .unwrap();
    // Three objects of the same size and number of bad records: the first third.
    assert_eq!(count(&backend), corpus.good() / 3, "one object ingested, the rest left for the next run");
    let cut = report.reconciliation.as_ref().unwrap();
    assert_eq!(cut.reconciliation.missing, keys, "{cut:?}");
    assert_eq!(cut.remaining.as_deref(), Some(&keys[1..]), "the rest is left for the next run: {cut:?}");
    assert_eq!(report.summary.objects, 1, "{:?}", report.summary);
    assert!(report.failed.is_empty() && !report.must_fail_invocation(), "not an invocation failure: {report:?}");

    let report = handle(&garage.s3, &reconcile(&location, true), &mut backend, &mut dead_letter);
    let next = report.reconciliation.as_ref().unwrap();
    assert_eq!(next.reconciliation.missing, keys[1..], "{next:?}");
    assert_eq!(next.remaining.as_deref(), Some(&[][..]), "{next:?}");
    Box::new(backend).close().unwrap();
    oracle::check(&corpus, &observed(index.path(), dead_letter.read_all().unwrap()), None);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_malformed_request_or_a_dead_letter_prefix_inside_the_reconciled_one_fails_the_run() {
    let garage = garage();
    let prefix = unique_prefix("reconcile-refused");
    let location = format!("s3://{}/{prefix}", garage.bucket);
    garage.put(&format!("{prefix}part-0.ndjson"), ndjson(1, 5));
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let run =
        |event: Value, dead_letter: &mut dyn ingest::dead_letter::DeadLetterStore, backend: &mut TantivyBackend| {
            handle_event(event.to_string().as_bytes(), &garage.s3, backend, dead_letter, pipeline_config(), None, None)
        };

    let mut dead_letter = garage.dead_letter(&prefix);
    let error = run(json!({"reconcile": {"prefix": location, "ingst": true}}), &mut dead_letter, &mut backend)
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown field \"ingst\""), "{error}");

    // Dead letters written inside the reconciled prefix would be ingested next time.
    let mut inside = ingest::s3::S3DeadLetter::new(
        garage.s3.clone(),
        ingest::s3::S3Location { bucket: garage.bucket.clone(), prefix: format!("{prefix}dead/") },
    );
    let error = run(reconcile(&location, true), &mut inside, &mut backend).unwrap_err().to_string();
    assert!(error.contains("choose a dead-letter prefix outside"), "{error}");
    assert_eq!(count(&backend), 0, "nothing ingested");
    // Reporting only writes no dead letters: allowed.
    let report = run(reconcile(&location, false), &mut inside, &mut backend).unwrap();
    assert_eq!(report.reconciliation.unwrap().reconciliation.missing.len(), 1);
}
