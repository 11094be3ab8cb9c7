//! The backend conformance suite against the tantivy backend, each check in a fresh
//! temporary index.

use indexer::{Backend, TantivyBackend, TantivyConfig};

fn fresh_tantivy() -> impl Fn() -> Box<dyn Backend> {
    || {
        let dir = tempfile::tempdir().expect("tempdir");
        // The directory must outlive the backend; leak it for the test's lifetime.
        let path = dir.keep();
        let config = TantivyConfig { threads: 1, heap_bytes: 32 << 20, ..TantivyConfig::default() };
        Box::new(TantivyBackend::open_for_writing(&path, config).expect("open tantivy index")) as Box<dyn Backend>
    }
}

indexer::conformance_tests!(fresh_tantivy());

#[test]
fn a_second_writer_on_a_locked_index_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = TantivyConfig { threads: 1, heap_bytes: 32 << 20, ..TantivyConfig::default() };
    let _first = TantivyBackend::open_for_writing(dir.path(), config).unwrap();
    let err = TantivyBackend::open_for_writing(dir.path(), config).unwrap_err();
    assert!(matches!(err, indexer::Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
}

#[test]
fn searching_a_missing_index_says_to_ingest_first() {
    let dir = tempfile::tempdir().unwrap();
    let err = TantivyBackend::open_for_reading(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(err.contains("tix-logs ingest"), "{err}");
}

/// tantivy's own set syntax (`field: IN [a b]`), which Elasticsearch's query string
/// lacks: on numbers (columns, asked as ranges), on `event_id` and on `_id` (bytes terms).
#[test]
fn sets_of_numbers_and_ids_match_each_member() {
    use indexer::backend::SearchRequest;
    let mut backend = fresh_tantivy()();
    backend.ensure_ready().unwrap();
    let docs = indexer::conformance::sample_docs();
    backend.index_batch(&docs).unwrap();
    backend.flush().unwrap();
    let count = |query: String| {
        backend.count(&SearchRequest { query: query.clone(), ..SearchRequest::default() }).unwrap_or_else(|e| {
            panic!("{query}: {e}");
        })
    };
    assert_eq!(count("amount: IN [5000 15000 999]".into()), 2);
    assert_eq!(count("event_id: IN [evt-0001 evt-0002 evt-9999]".into()), 2);
    assert_eq!(count(format!("_id: IN [{} {}]", docs[3].id, docs[4].id)), 2);
    assert_eq!(count(format!("_id:{}", docs[3].id.to_uppercase())), 0, "ids are case-sensitive");
}
