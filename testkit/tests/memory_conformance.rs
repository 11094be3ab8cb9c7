//! The backend conformance suite against the in-memory backend, each check on a fresh
//! store: the third implementation beside tantivy and Elasticsearch, so the suite's
//! expectations are not one backend's accidents.

#![cfg(feature = "backend")]

use testkit::memory::MemoryBackend;

indexer::conformance_tests!(MemoryBackend::new);

use indexer::conformance::sample_docs;
use indexer::{Backend, Outcome, SearchRequest, Store};

fn count(store: &dyn Store, query: &str) -> u64 {
    store.count(&SearchRequest { query: query.into(), ..SearchRequest::default() }).unwrap()
}

/// What the suite does not ask but the tests that use the store rely on: clones share
/// one store, writes are visible at flush, duplicates are found before it, and closing
/// discards what was not flushed.
#[test]
fn clones_share_one_store_whose_writes_show_at_flush() {
    let docs = sample_docs();
    let mut first = MemoryBackend::new();
    let mut second = first.clone();
    assert_eq!(first.index_batch(&docs[..2]).unwrap(), [Outcome::Indexed, Outcome::Indexed]);
    assert_eq!(second.index_batch(&docs[1..3]).unwrap(), [Outcome::Duplicate, Outcome::Indexed]);
    assert_eq!(count(&first, ""), 0, "nothing is visible before a flush");
    second.flush().unwrap();
    assert_eq!(count(&first, ""), 3);
    assert_eq!(first.documents().len(), 3);

    first.index_batch(&docs[3..5]).unwrap();
    first.close().unwrap();
    assert_eq!(count(&second, ""), 3, "closing discards what was not flushed");
    assert_eq!(second.index_batch(&docs[3..4]).unwrap(), [Outcome::Indexed], "and forgets its ids");
}

/// tantivy's set syntax and a few spellings the suite's table does not hold.
#[test]
fn sets_ranges_and_grouping_select_what_they_say() {
    let docs = sample_docs();
    let mut store = MemoryBackend::new();
    store.index_batch(&docs).unwrap();
    store.flush().unwrap();
    assert_eq!(count(&store, "amount: IN [5000 15000 999]"), 2);
    assert_eq!(count(&store, &format!("_id: IN [{} {}]", docs[3].id, docs[4].id)), 2);
    assert_eq!(count(&store, "booking_id:[BK-20240205-000100 TO BK-20240205-000101]"), 4);
    assert_eq!(count(&store, "NOT (level:info OR level:warn)"), 12);
    assert_eq!(count(&store, "level:error level:warn"), 24, "juxtaposition is OR");
    assert_eq!(count(&store, "ts:2024-02-04"), 0);
    for malformed in ["(level:info", "level:info)", "AND", "amount:[1 2]", "amount:abc", "ts:yesterday"] {
        let request = SearchRequest { query: malformed.into(), ..SearchRequest::default() };
        assert!(store.count(&request).is_err(), "{malformed:?}");
    }
}

/// Scripted outcomes stand in for a refusal or an unfinished write, and a failing flush
/// loses what it would have committed.
#[test]
fn scripted_answers_and_failing_flushes_behave_as_told() {
    let docs = sample_docs();
    let mut store = MemoryBackend::new();
    store.answer(docs[0].id, Outcome::Rejected { reason: "mapper_parsing_exception".into() });
    store.answer(docs[1].id, Outcome::Failed { reason: "429".into() });
    let outcomes = store.index_batch(&docs[..3]).unwrap();
    assert_eq!(outcomes[2], Outcome::Indexed);
    assert!(matches!(&outcomes[0], Outcome::Rejected { reason } if reason.contains("mapper")), "{outcomes:?}");
    assert!(matches!(&outcomes[1], Outcome::Failed { .. }), "{outcomes:?}");
    store.flush().unwrap();
    assert_eq!(store.ids(), [docs[2].id].into_iter().collect());

    let mut failing = MemoryBackend::new();
    failing.fail_flushes();
    failing.index_batch(&docs[..2]).unwrap();
    assert!(failing.flush().is_err());
    assert!(failing.ids().is_empty());
    assert_eq!(failing.index_batch(&docs[..1]).unwrap(), [Outcome::Indexed], "the lost write is forgotten");
}
