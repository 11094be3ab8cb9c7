//! Helpers shared by the Elasticsearch wire tests: the golden files under
//! `tests/golden` and the tantivy backend's answer on the conformance data.

use std::path::PathBuf;

use indexer::conformance::sample_docs;
use indexer::{Backend, SearchRequest, SearchResponse, Store, TantivyBackend, TantivyConfig};
use serde_json::Value;

pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

pub fn read_golden(name: &str) -> Value {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with TIX_UPDATE_GOLDEN=1 to create it", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The tantivy backend's answer for `request` on the conformance data.
pub fn tantivy_answer(request: &SearchRequest) -> SearchResponse {
    let dir = tempfile::tempdir().unwrap();
    let mut tantivy = TantivyBackend::open_for_writing(
        dir.path(),
        TantivyConfig { threads: 1, heap_bytes: 32 << 20, ..TantivyConfig::default() },
    )
    .unwrap();
    tantivy.index_batch(&sample_docs()).unwrap();
    tantivy.flush().unwrap();
    tantivy.search(request).unwrap()
}
