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
