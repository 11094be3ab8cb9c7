//! Crash tests: the pipeline "crashes" (a failpoint panics, and the backend is dropped
//! without its commit, as a killed process leaves it) after a bulk write before the
//! checkpoint, between batches of one object, before the commit, and in the middle of
//! the tantivy commit; then it restarts until a run completes. The conservation oracle
//! then checks, from the index and the dead-letter store only:
//! - every good record is indexed exactly once, and equals the record a fault-free run
//!   indexes (validated, redacted); nothing is indexed that was not sent;
//! - every bad record has exactly one dead-letter entry, with a reason naming its field;
//! - every source is recorded completed, and only because all its records are accounted;
//! - after the faults, a new object is ingested (liveness).
//!
//! The same oracle judges the Lambda handler crashing before its first batch, between
//! batches, after a bulk write, and after its commit but before it answered (the
//! acknowledgement is lost, so SQS redelivers everything), against objects in Garage.
//!
//! Built only with `--features failpoints` (scripts/test.sh runs it; the Garage case with
//! `--include-ignored` once Garage is up).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use indexer::{Backend, TantivyBackend, TantivyConfig};
use ingest::dead_letter::LocalDeadLetter;
use ingest::pipeline::{Pipeline, PipelineConfig, RunSummary};
use ingest::redact::Redactor;
use ingest::source::{local_sources, SourceObject};
use serde_json::{Map, Value};
use testkit::oracle::{self, Corpus, Observed};

mod support;

use support::{indexed, observed};

fn corpus() -> Corpus {
    Corpus::generate(4, 600, 9_000)
}

fn config() -> PipelineConfig {
    let mut config = PipelineConfig::new(Redactor::new(b"failpoint-key"));
    // Small batches and commits, so every failpoint is met in the middle of an object.
    config.batch_records = 100;
    config.commit_every_docs = 250;
    config
}

/// One run over every source; `Err` when a failpoint "crashed" it. The backend is
/// dropped on the way out without a flush, as a killed process leaves it.
fn run(index: &Path, dead_letter: &Path, sources: &[Box<dyn SourceObject>]) -> Result<RunSummary, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut backend = TantivyBackend::open_for_writing(index, TantivyConfig::default()).unwrap();
        backend.ensure_ready().unwrap();
        let mut store = LocalDeadLetter::new(dead_letter);
        let mut pipeline = Pipeline::new(&mut backend, &mut store, config());
        for source in sources {
            pipeline.ingest(source.as_ref()).unwrap();
        }
        let summary = pipeline.finish().unwrap();
        Box::new(backend).close().unwrap();
        summary
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or(panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn file_sources(corpus: &Corpus) -> Vec<Box<dyn SourceObject>> {
    local_sources(&corpus.files().iter().map(|p| p.display().to_string()).collect::<Vec<_>>()).unwrap()
}

/// The oracle over what the run left in the index and the local dead-letter store.
fn check(corpus: &Corpus, index: &Path, dead_letter: &Path, reference: Option<&BTreeMap<String, Map<String, Value>>>) {
    oracle::check(corpus, &observed(index, LocalDeadLetter::read_all(dead_letter).unwrap()), reference);
}

fn fault_free(corpus: &Corpus) -> BTreeMap<String, Map<String, Value>> {
    let out = tempfile::tempdir().unwrap();
    let (index, dead_letter) = (out.path().join("index"), out.path().join("dl"));
    run(&index, &dead_letter, &file_sources(corpus)).unwrap();
    let reference = indexed(&index);
    check(corpus, &index, &dead_letter, None);
    reference
}

#[test]
fn crashes_at_every_failpoint_converge_to_the_fault_free_index() {
    let scenario = fail::FailScenario::setup();
    let corpus = corpus();
    let sources = file_sources(&corpus);
    let reference = fault_free(&corpus);
    let schedules: [(&[(&str, &str)], &str); 6] = [
        (&[("pipeline.after_bulk", "3*off->1*panic(after bulk)->off")], "after a bulk write, before its checkpoint"),
        (&[("pipeline.between_batches", "8*off->1*panic(between)->off")], "between batches of one object"),
        (&[("pipeline.before_commit", "1*off->1*panic(before commit)->off")], "before a commit"),
        (&[("tantivy.during_commit", "2*off->1*panic(during commit)->off")], "during the tantivy commit"),
        (
            &[
                ("pipeline.after_bulk", "2*off->1*panic->5*off->1*panic->off"),
                ("tantivy.during_commit", "1*panic->off"),
            ],
            "repeated crashes at several points",
        ),
        (
            &[("pipeline.between_batches", "1*off->1*panic->1*off->1*panic->1*off->1*panic->off")],
            "three crashes in a row",
        ),
    ];
    for (faults, what) in schedules {
        let out = tempfile::tempdir().unwrap();
        let (index, dead_letter) = (out.path().join("index"), out.path().join("dl"));
        for (point, actions) in faults {
            fail::cfg(*point, actions).unwrap();
        }
        let mut crashes = 0;
        let summary = loop {
            match run(&index, &dead_letter, &sources) {
                Ok(summary) => break summary,
                Err(message) => {
                    crashes += 1;
                    assert!(crashes <= 10, "{what}: no run completes ({message})");
                }
            }
        };
        for (point, _) in faults {
            fail::remove(*point);
        }
        assert!(crashes > 0, "{what}: the failpoint was never reached");
        assert_eq!(summary.objects_failed, 0, "{what}");
        check(&corpus, &index, &dead_letter, Some(&reference));

        // Liveness: once the faults stop, a new object goes in.
        let new_object = Corpus::new_object(&out.path().join("new.ndjson"), 40);
        let summary = run(&index, &dead_letter, &local_sources(&[new_object.display().to_string()]).unwrap()).unwrap();
        assert_eq!((summary.objects, summary.indexed, summary.objects_failed), (1, 40, 0), "{what}");
        assert_eq!(indexed(&index).len() as u64, corpus.good() + 40, "{what}");
    }
    scenario.teardown();
}

/// One Lambda invocation on a fresh process: the backend is opened, the event handled,
/// and on a crash the backend is dropped without its commit. `Err` on a crash.
fn invoke(garage: &support::Garage, index: &Path, prefix: &str, event: &Value) -> Result<Vec<String>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut backend = support::tantivy(index);
        let mut dead_letter = garage.dead_letter(prefix);
        let report = support::handle_with(&garage.s3, event, &mut backend, &mut dead_letter, config(), None);
        Box::new(backend).close().unwrap();
        report.batch_item_failures()
    }))
    .map_err(|panic| format!("{panic:?}"))
}

fn observed_in_garage(garage: &support::Garage, index: &Path, prefix: &str) -> Observed {
    observed(index, garage.dead_letter(prefix).read_all().unwrap())
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn lambda_crashes_and_lost_acknowledgements_converge_under_redelivery() {
    let scenario = fail::FailScenario::setup();
    let garage = support::garage();
    let corpus = Corpus::generate(3, 500, 7_000);
    let prefix = support::unique_prefix("lambda-crash");
    let event = support::upload_corpus(&garage, &corpus, &prefix);

    let out = tempfile::tempdir().unwrap();
    let reference_index = out.path().join("reference");
    let dl_reference = format!("{prefix}dl-reference/");
    assert_eq!(invoke(&garage, &reference_index, &dl_reference, &event), Ok(vec![]));
    let reference = indexed(&reference_index);
    oracle::check(&corpus, &observed_in_garage(&garage, &reference_index, &dl_reference), None);

    let schedules: [(&str, &str, &str); 4] = [
        ("pipeline.between_batches", "1*panic(crash)->off", "before the first batch"),
        ("pipeline.between_batches", "7*off->1*panic(crash)->off", "between batches"),
        ("pipeline.after_bulk", "4*off->1*panic(crash)->off", "after a bulk write, before its checkpoint"),
        ("trigger.before_ack", "1*panic(crash)->off", "after the commit, before answering"),
    ];
    for (n, (point, actions, what)) in schedules.into_iter().enumerate() {
        let index = out.path().join(format!("index-{n}"));
        let dl_prefix = format!("{prefix}dl-{n}/");
        fail::cfg(point, actions).unwrap();
        let mut crashes = 0;
        loop {
            // SQS redelivers the whole batch after a crash (no answer), and the failed
            // messages after a partial answer.
            match invoke(&garage, &index, &dl_prefix, &event) {
                Ok(failures) if failures.is_empty() => break,
                Ok(failures) => panic!("{what}: a fault-free redelivery still fails {failures:?}"),
                Err(_) => crashes += 1,
            }
            assert!(crashes <= 3, "{what}: no invocation completes");
        }
        fail::remove(point);
        assert_eq!(crashes, 1, "{what}: the failpoint crashed the handler once");
        oracle::check(&corpus, &observed_in_garage(&garage, &index, &dl_prefix), Some(&reference));
        // A lost acknowledgement means a redelivery of completed work: nothing changes.
        assert_eq!(invoke(&garage, &index, &dl_prefix, &event), Ok(vec![]), "{what}");
        assert_eq!(indexed(&index), reference, "{what}: the redelivery changed nothing");
    }
    scenario.teardown();
}
