//! The backend conformance suite against the tantivy backend, each check in a fresh
//! temporary index.

use indexer::{Backend, Store, TantivyBackend, TantivyConfig};

fn fresh_tantivy() -> impl Fn() -> TantivyBackend {
    || {
        let dir = tempfile::tempdir().expect("tempdir");
        // The directory must outlive the backend; leak it for the test's lifetime.
        let path = dir.keep();
        let config = TantivyConfig { threads: 1, heap_bytes: 32 << 20, ..TantivyConfig::default() };
        let backend = TantivyBackend::open_for_writing(&path, config).expect("open tantivy index");
        backend.with_event_id_key(indexer::conformance::sample_id_key())
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

/// A fresh index holding the conformance suite's sample events, and their ids.
fn sample_index() -> (TantivyBackend, Vec<String>) {
    let mut backend = fresh_tantivy()();
    backend.ensure_ready().unwrap();
    let docs = indexer::conformance::sample_docs();
    backend.index_batch(&docs).unwrap();
    backend.flush().unwrap();
    (backend, docs.into_iter().map(|d| d.id.to_string()).collect())
}

fn count(backend: &dyn Store, query: &str) -> u64 {
    let request = indexer::backend::SearchRequest { query: query.to_string(), ..Default::default() };
    backend.count(&request).unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// tantivy's own set syntax (`field: IN [a b]`), which Elasticsearch's query string
/// lacks: on numbers (columns, asked as ranges), on `event_id` and on `_id` (id columns).
#[test]
fn sets_of_numbers_and_ids_match_each_member() {
    let (backend, ids) = sample_index();
    let backend = &backend;
    assert_eq!(count(backend, "amount: IN [5000 15000 999]"), 2);
    assert_eq!(count(backend, "event_id: IN [evt-0001 evt-0002 evt-9999]"), 2);
    assert_eq!(count(backend, &format!("_id: IN [{} {}]", ids[3], ids[4])), 2);
    assert_eq!(count(backend, &format!("_id:{}", ids[3].to_uppercase())), 0, "ids are case-sensitive");
}

/// Ids are keyed: `event_id:X` is answered through the id key of the PII key the index
/// was ingested with; without a key it is refused (an unkeyed id would confirm guesses),
/// and under another key it finds nothing.
#[test]
fn event_id_queries_need_the_key_the_index_was_ingested_with() {
    let ids: Vec<String> = indexer::conformance::sample_docs().into_iter().map(|d| d.id.to_string()).collect();
    let path = tempfile::tempdir().unwrap().keep();
    let config = TantivyConfig { threads: 1, heap_bytes: 32 << 20, ..TantivyConfig::default() };
    let mut writer = TantivyBackend::open_for_writing(&path, config).unwrap();
    writer.ensure_ready().unwrap();
    writer.index_batch(&indexer::conformance::sample_docs()).unwrap();
    writer.flush().unwrap();
    drop(writer);

    let keyless = TantivyBackend::open_for_reading(&path).unwrap();
    for query in ["event_id:evt-0007", "event_id: IN [evt-0001 evt-0002]", "type:x OR event_id:evt-0007"] {
        let request = indexer::backend::SearchRequest { query: query.into(), ..Default::default() };
        let err = keyless.count(&request).unwrap_err().to_string();
        assert!(err.contains("TIX_PII_KEY") && err.contains("keyed"), "{query}: {err}");
    }
    assert_eq!(count(&keyless, &format!("_id:{}", ids[7])), 1, "_id needs no key");
    assert_eq!(count(&keyless, "booking_id:BK-20240205-000103"), 2, "other fields need no key");

    let keyed =
        TantivyBackend::open_for_reading(&path).unwrap().with_event_id_key(indexer::conformance::sample_id_key());
    assert_eq!(count(&keyed, "event_id:evt-0007"), 1);
    let other = indexer::doc_id::EventIdKey::new(b"another-key-of-at-least-32-bytes-0123456");
    let wrong = TantivyBackend::open_for_reading(&path).unwrap().with_event_id_key(other);
    assert_eq!(count(&wrong, "event_id:evt-0007"), 0);
}

/// The sample events all fall on 2024-02-05, so the shared table cannot tell "that day"
/// from "everything"; the neighbouring days can.
#[test]
fn a_date_alone_matches_that_utc_day_only() {
    let (backend, ids) = sample_index();
    let backend = &backend;
    assert_eq!(count(backend, "ts:2024-02-05"), ids.len() as u64);
    assert_eq!(count(backend, "ts:2024-02-04"), 0);
    assert_eq!(count(backend, "ts:2024-02-06"), 0);
}

/// tantivy keeps an id as two 64-bit columns (`tantivy::ids::IdKey`) and a per-segment id set
/// (`tantivy::id_set`); ids that share their high half are still told apart by the other, both
/// for duplicates and for queries.
#[test]
fn ids_sharing_their_high_half_stay_distinct() {
    let mut backend = fresh_tantivy()();
    backend.ensure_ready().unwrap();
    let high = "0123456789abcdef";
    let template = indexer::conformance::sample_docs().remove(0);
    let doc_with = |id: String| indexer::IndexDoc { id: id.parse().unwrap(), ..template.clone() };
    let (a, b, c) =
        (format!("{high}0000000000000001"), format!("{high}0000000000000002"), format!("{high}ffffffffffffffff"));
    let outcomes = |backend: &mut TantivyBackend, ids: &[&String]| {
        backend.index_batch(&ids.iter().map(|id| doc_with(id.to_string())).collect::<Vec<_>>()).unwrap()
    };
    use indexer::Outcome::{Duplicate, Indexed};

    // Before a commit (the pending set) ...
    assert_eq!(outcomes(&mut backend, &[&a, &b, &a]), vec![Indexed, Indexed, Duplicate]);
    backend.flush().unwrap();
    // ... and after it (the committed id set).
    assert_eq!(outcomes(&mut backend, &[&b, &c, &a, &c]), vec![Duplicate, Indexed, Duplicate, Duplicate]);
    backend.flush().unwrap();

    let backend = &backend;
    assert_eq!(count(backend, &format!("_id:{a}")), 1);
    assert_eq!(count(backend, &format!("_id:{c}")), 1);
    assert_eq!(count(backend, &format!("_id:{high}0000000000000003")), 0, "same half, no such id");
    assert_eq!(count(backend, &format!("NOT _id:{b}")), 2);
    assert_eq!(count(backend, &format!("_id: IN [{a} {c} {high}0000000000000003]")), 2);
    let hits = backend
        .search(&indexer::backend::SearchRequest { query: format!("_id:{c}"), limit: 5, ..Default::default() })
        .unwrap()
        .hits;
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), vec![c.as_str()], "hits carry the whole id");
}
