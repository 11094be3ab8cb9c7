//! The conservation oracle. A [`Corpus`] is a set of NDJSON objects whose every record's
//! fate is known by construction (good, or bad with a wrong-typed field); a test runs
//! tix-logs over it under some fault schedule, gathers what the run left in the index
//! and the dead-letter store into an [`Observed`], and [`check`]s it:
//! - every good record is indexed exactly once, and (given a fault-free reference run)
//!   stored exactly as the fault-free run stores it: validated and redacted; nothing is
//!   indexed that was not sent;
//! - every bad record has exactly one dead-letter entry, whose reason names its field,
//!   and no failed-object entry is left;
//! - every object is recorded completed, once.
//!
//! Counters and logs are never consulted: only the stores.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The field every bad record of a corpus carries with the wrong type.
pub const BAD_FIELD: &str = "latency_ms";

/// Objects whose every record's fate is known.
pub struct Corpus {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    /// (file name, 1-based record number) of every record that must be dead-lettered.
    bad: BTreeSet<(String, u64)>,
    good: u64,
}

impl Corpus {
    /// `sources` NDJSON files `part-N.ndjson` of `records_per_source` generated booking
    /// events each (seeded by `seed`). Every 7th record has no `event_id`, so its id
    /// derives from the file and its position; every 53rd has a string `latency_ms` and
    /// must be rejected.
    pub fn generate(sources: u64, records_per_source: u64, seed: u64) -> Corpus {
        let dir = tempfile::tempdir().expect("corpus directory");
        let mut corpus = Corpus { dir, files: Vec::new(), bad: BTreeSet::new(), good: 0 };
        for source in 0..sources {
            let name = format!("part-{source}.ndjson");
            let mut generated = Vec::new();
            fixtures::generate(&fixtures::GenConfig::new(seed + source, records_per_source), &mut generated)
                .expect("generate booking events");
            let mut out = String::new();
            for (i, line) in String::from_utf8(generated).expect("generator writes UTF-8").lines().enumerate() {
                let ordinal = i as u64 + 1;
                let mut record: Map<String, Value> = serde_json::from_str(line).expect("generator writes JSON");
                if ordinal.is_multiple_of(7) {
                    record.remove("event_id");
                }
                if ordinal.is_multiple_of(53) {
                    record.insert(BAD_FIELD.into(), Value::String("slow".into()));
                    corpus.bad.insert((name.clone(), ordinal));
                } else {
                    corpus.good += 1;
                }
                out.push_str(&Value::Object(record).to_string());
                out.push('\n');
            }
            let path = corpus.dir.path().join(&name);
            std::fs::write(&path, out).expect("write corpus object");
            corpus.files.push(path);
        }
        corpus
    }

    /// The objects, in name order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Records that must end indexed.
    pub fn good(&self) -> u64 {
        self.good
    }

    /// All records, good and bad.
    pub fn records(&self) -> u64 {
        self.good + self.bad.len() as u64
    }

    /// Writes a new object of `records` good events outside the corpus, for the liveness
    /// check after the faults stop.
    pub fn new_object(path: &Path, records: u64) -> PathBuf {
        let mut generated = Vec::new();
        fixtures::generate(&fixtures::GenConfig::new(0x11fe, records), &mut generated).expect("generate");
        std::fs::write(path, generated).expect("write the new object");
        path.to_path_buf()
    }
}

/// One dead-letter entry as the store holds it.
#[derive(Debug, Clone)]
pub struct ObservedDeadLetter {
    pub source: String,
    /// `None` for a failed-object entry.
    pub record: Option<u64>,
    pub reason: String,
}

/// One source's checkpoint record as the backend holds it.
#[derive(Debug, Clone)]
pub struct ObservedSource {
    pub source: String,
    pub completed: bool,
}

/// What a run left behind, read from the index and the dead-letter store.
#[derive(Debug, Default)]
pub struct Observed {
    pub docs: BTreeMap<String, Map<String, Value>>,
    pub dead_letters: Vec<ObservedDeadLetter>,
    pub sources: Vec<ObservedSource>,
}

impl Observed {
    /// Documents by id from `(id, stored document)` pairs; an id seen twice fails here.
    pub fn docs_by_id(
        hits: impl IntoIterator<Item = (String, Map<String, Value>)>,
    ) -> BTreeMap<String, Map<String, Value>> {
        let mut by_id = BTreeMap::new();
        for (id, doc) in hits {
            assert!(by_id.insert(id.clone(), doc).is_none(), "{id} is indexed twice");
        }
        by_id
    }

    /// The documents of a `tix-logs search --format json` answer, by id: how the CLI
    /// tests observe a store from outside, through the binary.
    pub fn docs_of_search_json(response: &Value) -> BTreeMap<String, Map<String, Value>> {
        let hits = response["hits"].as_array().expect("hits").iter().map(|hit| {
            let mut doc = hit.as_object().expect("hit").clone();
            let id = doc.remove("_id").and_then(|id| id.as_str().map(str::to_string)).expect("_id");
            (id, doc)
        });
        Self::docs_by_id(hits)
    }
}

#[cfg(feature = "backend")]
impl Observed {
    /// What `store` holds (every event by id, every source record) beside the given
    /// dead letters.
    pub fn of_store(store: &dyn indexer::Store, dead_letters: Vec<ObservedDeadLetter>) -> Observed {
        let sources = store
            .sources()
            .expect("the store lists its sources")
            .into_iter()
            .map(|s| ObservedSource { source: s.source, completed: s.status == indexer::SourceStatus::Completed })
            .collect();
        Observed { docs: stored_docs(store), dead_letters, sources }
    }
}

/// Every event `store` holds, by id; a doubled id fails here.
#[cfg(feature = "backend")]
pub fn stored_docs(store: &dyn indexer::Store) -> BTreeMap<String, Map<String, Value>> {
    let all = indexer::SearchRequest::default();
    let total = store.count(&all).expect("the store counts its events") as usize;
    let hits = store.search(&indexer::SearchRequest { limit: total + 10, ..all }).expect("the store searches").hits;
    assert_eq!(hits.len(), total, "every counted event is found");
    Observed::docs_by_id(hits.into_iter().map(|hit| (hit.id, hit.source)))
}

fn file_name(source: &str) -> String {
    // Local sources are paths, S3 sources `s3://bucket/key?versionId=...`.
    let without_version = source.split('?').next().unwrap_or(source);
    without_version.rsplit('/').next().unwrap_or(without_version).to_string()
}

/// Checks a finished run against the corpus and, when given, the documents a fault-free
/// run indexed (which must then be identical, id for id and field for field).
pub fn check(corpus: &Corpus, observed: &Observed, reference: Option<&BTreeMap<String, Map<String, Value>>>) {
    assert_eq!(observed.docs.len() as u64, corpus.good, "every good record indexed, none twice");
    if let Some(reference) = reference {
        assert_eq!(
            observed.docs.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>(),
            "nothing indexed that was not sent"
        );
        for (id, doc) in &observed.docs {
            assert_eq!(doc, &reference[id], "{id}: the stored document is the validated, redacted record");
        }
    }
    let mut rejected = BTreeSet::new();
    for entry in &observed.dead_letters {
        let record = entry.record.unwrap_or_else(|| panic!("a failed-object entry is left: {entry:?}"));
        assert!(entry.reason.contains(BAD_FIELD), "the reason names the field: {entry:?}");
        assert!(rejected.insert((file_name(&entry.source), record)), "dead-lettered twice: {entry:?}");
    }
    assert_eq!(rejected, corpus.bad, "exactly the bad records are dead-lettered");
    let mut completed = BTreeSet::new();
    for source in &observed.sources {
        assert!(source.completed, "every object completes: {source:?}");
        assert!(completed.insert(file_name(&source.source)), "one record per object: {source:?}");
    }
    let expected: BTreeSet<String> =
        corpus.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(completed, expected, "every object of the corpus is recorded completed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perfect(corpus: &Corpus) -> Observed {
        let mut observed = Observed::default();
        for (file, record) in &corpus.bad {
            observed.dead_letters.push(ObservedDeadLetter {
                source: format!("/tmp/{file}"),
                record: Some(*record),
                reason: format!("{BAD_FIELD}: expected a number"),
            });
        }
        for i in 0..corpus.good {
            observed.docs.insert(format!("id-{i}"), Map::new());
        }
        for file in corpus.files() {
            observed.sources.push(ObservedSource { source: file.display().to_string(), completed: true });
        }
        observed
    }

    #[test]
    fn the_oracle_accepts_a_perfect_run_and_catches_each_kind_of_loss() {
        let corpus = Corpus::generate(2, 120, 7);
        assert_eq!(corpus.records(), 240);
        assert_eq!(corpus.good(), 240 - 4, "records 53 and 106 of each object are bad");
        check(&corpus, &perfect(&corpus), None);
        let reference = perfect(&corpus).docs;
        check(&corpus, &perfect(&corpus), Some(&reference));

        type Damage = fn(&mut Observed);
        let damages: [(&str, Damage); 6] = [
            ("lost record", |o| {
                o.docs.pop_first();
            }),
            ("lost dead letter", |o| {
                o.dead_letters.pop();
            }),
            ("doubled dead letter", |o| o.dead_letters.push(o.dead_letters[0].clone())),
            ("failed-object entry left", |o| o.dead_letters[0].record = None),
            ("source not completed", |o| o.sources[0].completed = false),
            ("source missing", |o| {
                o.sources.pop();
            }),
        ];
        for (what, damage) in damages {
            let mut observed = perfect(&corpus);
            damage(&mut observed);
            let caught = std::panic::catch_unwind(|| check(&corpus, &observed, None)).is_err();
            assert!(caught, "the oracle misses: {what}");
        }
        let mut changed = perfect(&corpus);
        changed.docs.values_mut().next().unwrap().insert("x".into(), Value::Bool(true));
        assert!(std::panic::catch_unwind(|| check(&corpus, &changed, Some(&reference))).is_err(), "changed doc");
    }
}
