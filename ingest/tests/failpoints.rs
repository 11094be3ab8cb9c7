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
//! Built only with `--features failpoints` (scripts/test.sh runs it).

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use indexer::{Backend, SearchRequest, SourceStatus, TantivyBackend, TantivyConfig};
use ingest::dead_letter::LocalDeadLetter;
use ingest::pipeline::{Pipeline, PipelineConfig, RunSummary};
use ingest::redact::Redactor;
use ingest::source::{local_sources, SourceObject};
use serde_json::{Map, Value};

const SOURCES: u64 = 4;
const RECORDS_PER_SOURCE: u64 = 600;

/// Objects whose every record's fate is known by construction.
struct Corpus {
    dir: tempfile::TempDir,
    /// (file name, 1-based record number) of every record that must be rejected.
    bad: BTreeSet<(String, u64)>,
    good: u64,
}

fn corpus() -> Corpus {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = BTreeSet::new();
    let mut good = 0;
    for source in 0..SOURCES {
        let name = format!("part-{source}.ndjson");
        let mut generated = Vec::new();
        fixtures::generate(&fixtures::GenConfig::new(9_000 + source, RECORDS_PER_SOURCE), &mut generated).unwrap();
        let mut out = String::new();
        for (i, line) in String::from_utf8(generated).unwrap().lines().enumerate() {
            let ordinal = i as u64 + 1;
            let mut record: Map<String, Value> = serde_json::from_str(line).unwrap();
            if ordinal.is_multiple_of(7) {
                // Positional ids for some: they derive from the file and the position.
                record.remove("event_id");
            }
            if ordinal.is_multiple_of(53) {
                record.insert("latency_ms".into(), Value::String("slow".into()));
                bad.insert((name.clone(), ordinal));
            } else {
                good += 1;
            }
            out.push_str(&Value::Object(record).to_string());
            out.push('\n');
        }
        std::fs::write(dir.path().join(&name), out).unwrap();
    }
    Corpus { dir, bad, good }
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

/// Every event in the index, by id; a doubled id fails here.
fn indexed(index: &Path) -> BTreeMap<String, Map<String, Value>> {
    let backend = TantivyBackend::open_for_reading(index).unwrap();
    let total = backend.count(&SearchRequest::default()).unwrap() as usize;
    let hits = backend.search(&SearchRequest { limit: total + 10, ..SearchRequest::default() }).unwrap().hits;
    assert_eq!(hits.len(), total);
    let mut by_id = BTreeMap::new();
    for hit in hits {
        let id = hit.id.clone();
        assert!(by_id.insert(id.clone(), hit.source).is_none(), "{id} is indexed twice");
    }
    by_id
}

fn file_sources(dir: &Path) -> Vec<Box<dyn SourceObject>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    names.sort();
    local_sources(&names.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()).unwrap()
}

/// The oracle: checks a finished index and dead-letter store against the corpus and the
/// fault-free reference.
fn check(corpus: &Corpus, index: &Path, dead_letter: &Path, reference: &BTreeMap<String, Map<String, Value>>) {
    let docs = indexed(index);
    assert_eq!(docs.len() as u64, corpus.good, "every good record indexed, none twice");
    assert_eq!(
        docs.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "nothing indexed that was not sent"
    );
    for (id, doc) in &docs {
        assert_eq!(doc, &reference[id], "{id}: the stored document is the validated, redacted record");
    }
    let entries = LocalDeadLetter::read_all(dead_letter).unwrap();
    let mut rejected = BTreeSet::new();
    for entry in &entries {
        let record = entry.record.unwrap_or_else(|| panic!("a failed-object entry is left: {entry:?}"));
        let file = Path::new(&entry.source).file_name().unwrap().to_string_lossy().to_string();
        assert!(entry.reason.contains("latency_ms"), "{entry:?}");
        assert!(rejected.insert((file, record)), "dead-lettered twice: {entry:?}");
    }
    assert_eq!(rejected, corpus.bad, "exactly the bad records are dead-lettered");
    let backend = TantivyBackend::open_for_reading(index).unwrap();
    let sources = backend.sources().unwrap();
    assert_eq!(sources.len() as u64, SOURCES);
    for source in &sources {
        assert_eq!(source.status, SourceStatus::Completed, "{source:?}");
    }
}

fn fault_free(corpus: &Corpus) -> BTreeMap<String, Map<String, Value>> {
    let out = tempfile::tempdir().unwrap();
    let (index, dead_letter) = (out.path().join("index"), out.path().join("dl"));
    run(&index, &dead_letter, &file_sources(corpus.dir.path())).unwrap();
    let reference = indexed(&index);
    check(corpus, &index, &dead_letter, &reference);
    reference
}

#[test]
fn crashes_at_every_failpoint_converge_to_the_fault_free_index() {
    let scenario = fail::FailScenario::setup();
    let corpus = corpus();
    let sources = file_sources(corpus.dir.path());
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
        check(&corpus, &index, &dead_letter, &reference);

        // Liveness: once the faults stop, a new object goes in.
        let new_object = out.path().join("new.ndjson");
        let mut generated = Vec::new();
        fixtures::generate(&fixtures::GenConfig::new(9_999, 40), &mut generated).unwrap();
        std::fs::write(&new_object, generated).unwrap();
        let summary = run(&index, &dead_letter, &local_sources(&[new_object.display().to_string()]).unwrap()).unwrap();
        assert_eq!((summary.objects, summary.indexed, summary.objects_failed), (1, 40, 0), "{what}");
        assert_eq!(indexed(&index).len() as u64, corpus.good + 40, "{what}");
    }
    scenario.teardown();
}
