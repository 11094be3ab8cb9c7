//! The backend conformance suite: written once, run against every [`Backend`]. Behind
//! the `conformance` feature: tests and test doubles use it, the shipped binaries do not.
//!
//! Each check indexes a small, fixed set of booking events and compares the backend's
//! answers with what a plain Rust predicate over the same events says, so the expected
//! figures are computed, not typed in. Use [`conformance_tests!`](crate::conformance_tests)
//! to turn the checks into `#[test]` functions for a backend factory.

use serde_json::{json, Map, Value};

#[cfg(feature = "elasticsearch")]
pub mod es_settings;
mod korean;
mod nested_aggs;
mod report;

pub use korean::{korean_docs, korean_empty_queries, korean_query_cases, korean_text_search};
pub use nested_aggs::nested_aggregations;
pub use report::booking_report;

use crate::backend::{AggSpec, Backend, IndexDoc, Outcome, SearchRequest, SortSpec, SourceRecord, SourceStatus, Store};

/// A fresh, empty backend for one check.
pub trait Factory {
    type Backend: Backend;
    fn make(&self) -> Self::Backend;
}

impl<B: Backend, F: Fn() -> B> Factory for F {
    type Backend = B;
    fn make(&self) -> B {
        self()
    }
}

/// The PII key the suite's ids derive from, as the ingester derives them from
/// `TIX_PII_KEY`. A backend answers `event_id:X` only with its id key
/// ([`sample_id_key`]; tantivy: `TantivyBackend::with_event_id_key`).
pub const SAMPLE_PII_KEY: &[u8] = b"conformance-suite-pii-key-0123456789abcdef";

/// The id key of [`SAMPLE_PII_KEY`].
pub fn sample_id_key() -> crate::doc_id::EventIdKey {
    crate::doc_id::EventIdKey::new(SAMPLE_PII_KEY)
}

/// The fixed events of the suite: varied types, venues, amounts, times and shapes.
pub fn sample_docs() -> Vec<IndexDoc> {
    let types = [
        "booking.requested",
        "seat.locked",
        "booking.confirmed",
        "booking.cancelled",
        "payment.failed",
        "refund.issued",
    ];
    let venues = ["Olympic Hall", "Riverside Arena", "Old Town Theatre"];
    let levels = ["info", "info", "warn", "error"];
    let methods = ["card", "paypal", "voucher"];
    let base_ms: i64 = 1_707_091_200_000; // 2024-02-05T00:00:00Z
    let ids = sample_id_key();
    (0..48i64)
        .map(|i| {
            let ts_millis = base_ms + i * 15 * 60_000; // every 15 minutes over 12 hours
            let mut doc = Map::new();
            doc.insert("ts".into(), json!(format_ts(ts_millis)));
            doc.insert("type".into(), json!(types[(i % 6) as usize]));
            doc.insert("event_id".into(), json!(format!("evt-{i:04}")));
            doc.insert("service".into(), json!(if i % 2 == 0 { "booking-api" } else { "payment" }));
            doc.insert("level".into(), json!(levels[(i % 4) as usize]));
            doc.insert("booking_id".into(), json!(format!("BK-20240205-{:06}", 100 + i / 2)));
            doc.insert("customer_id".into(), json!(format!("CU-{:06}", i % 7)));
            doc.insert("venue".into(), json!(venues[(i % 3) as usize]));
            if i % 5 == 0 {
                doc.insert("seat".into(), json!(["A-1", format!("A-{}", 2 + i % 3)]));
            } else {
                doc.insert("seat".into(), json!(format!("B-{}", i % 9)));
            }
            doc.insert("currency".into(), json!("EUR"));
            doc.insert("payment".into(), json!({"method": methods[(i % 3) as usize], "status": "ok"}));
            doc.insert("amount".into(), json!(5_000 + i * 5_000));
            doc.insert("latency_ms".into(), json!(10.5 + i as f64));
            doc.insert(
                "message".into(),
                json!(if i % 4 == 0 {
                    format!("seat lock expired for booking {i}")
                } else {
                    format!("payment processed in {i} ms")
                }),
            );
            doc.insert("client".into(), json!({"app": if i % 2 == 0 { "ios" } else { "web" }, "version": "5.2.1"}));
            // Ids derive from event_id as the ingester derives them.
            let id = ids.doc_id(&format!("evt-{i:04}"));
            IndexDoc { id, ts_millis, doc, unseen_source: false }
        })
        .collect()
}

fn format_ts(ms: i64) -> String {
    crate::civil::rfc3339_millis(ms)
}

fn s<'a>(doc: &'a IndexDoc, field: &str) -> &'a str {
    doc.doc.get(field).and_then(Value::as_str).unwrap_or("")
}

fn n(doc: &IndexDoc, field: &str) -> f64 {
    doc.doc.get(field).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn loaded<F: Factory>(factory: &F) -> (F::Backend, Vec<IndexDoc>) {
    let docs = sample_docs();
    (loaded_with(factory, &docs), docs)
}

/// A ready backend holding `docs`, every one indexed (not a duplicate) and flushed.
fn loaded_with<F: Factory>(factory: &F, docs: &[IndexDoc]) -> F::Backend {
    let mut backend = factory.make();
    backend.ensure_ready().expect("ensure_ready");
    let outcomes = backend.index_batch(docs).expect("index_batch");
    assert!(outcomes.iter().all(|o| *o == Outcome::Indexed), "{outcomes:?}");
    backend.flush().expect("flush");
    backend
}

fn count(backend: &dyn Store, query: &str) -> u64 {
    backend
        .count(&SearchRequest { query: query.into(), ..SearchRequest::default() })
        .unwrap_or_else(|e| panic!("count {query:?}: {e}"))
}

/// Every indexed document is counted, and a batch answers one outcome per document.
pub fn indexes_and_counts_every_document(factory: &impl Factory) {
    let (backend, docs) = loaded(factory);
    assert_eq!(count(&backend, ""), docs.len() as u64);
}

/// Re-sending the same documents changes nothing: every one is a duplicate.
pub fn reingesting_the_same_documents_reports_duplicates_and_changes_nothing(factory: &impl Factory) {
    let (mut backend, docs) = loaded(factory);
    let outcomes = backend.index_batch(&docs).expect("index_batch");
    assert!(outcomes.iter().all(|o| *o == Outcome::Duplicate), "{outcomes:?}");
    backend.flush().expect("flush");
    assert_eq!(count(&backend, ""), docs.len() as u64);
}

/// Duplicates inside one batch are caught before anything is committed.
pub fn duplicates_within_one_batch_are_caught(factory: &impl Factory) {
    let mut backend = factory.make();
    backend.ensure_ready().expect("ensure_ready");
    let docs = sample_docs();
    let twice: Vec<IndexDoc> = docs.iter().take(3).chain(docs.iter().take(3)).cloned().collect();
    let outcomes = backend.index_batch(&twice).expect("index_batch");
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Indexed).count(), 3);
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Duplicate).count(), 3);
    backend.flush().expect("flush");
    assert_eq!(count(&backend, ""), 3);
}

/// Which of [`sample_docs`] a query must match.
pub type Predicate = fn(&IndexDoc) -> bool;

/// The query-syntax table: each query with the predicate it must match over
/// [`sample_docs`]. The Elasticsearch wire tests pin the request body of each.
pub fn query_syntax_cases() -> Vec<(&'static str, Predicate)> {
    vec![
        ("type:booking.cancelled", |d| s(d, "type") == "booking.cancelled"),
        ("venue:\"Olympic Hall\"", |d| s(d, "venue") == "Olympic Hall"),
        ("type:booking.cancelled AND venue:\"Olympic Hall\"", |d| {
            s(d, "type") == "booking.cancelled" && s(d, "venue") == "Olympic Hall"
        }),
        ("type:booking.cancelled OR type:refund.issued", |d| {
            matches!(s(d, "type"), "booking.cancelled" | "refund.issued")
        }),
        ("NOT level:info", |d| s(d, "level") != "info"),
        ("venue:\"Riverside Arena\" AND NOT level:info", |d| {
            s(d, "venue") == "Riverside Arena" && s(d, "level") != "info"
        }),
        ("amount:[100000 TO 200000]", |d| (100_000.0..=200_000.0).contains(&n(d, "amount"))),
        ("amount:{100000 TO 200000}", |d| n(d, "amount") > 100_000.0 && n(d, "amount") < 200_000.0),
        ("latency_ms:[20 TO *]", |d| n(d, "latency_ms") >= 20.0),
        ("ts:[2024-02-05T06:00:00Z TO 2024-02-05T08:00:00Z}", |d| {
            d.ts_millis >= 1_707_112_800_000 && d.ts_millis < 1_707_120_000_000
        }),
        ("booking_id:BK-20240205-000110", |d| s(d, "booking_id") == "BK-20240205-000110"),
        ("booking_id:\"BK-20240205-000110\"", |d| s(d, "booking_id") == "BK-20240205-000110"),
        ("seat:A-1", |d| d.doc.get("seat").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "A-1"))),
        ("payment.method:paypal", |d| d.doc["payment"]["method"] == "paypal"),
        ("client.app:ios", |d| d.doc["client"]["app"] == "ios"),
        ("expired", |d| s(d, "message").contains("expired")),
        ("message:\"seat lock expired\"", |d| s(d, "message").contains("seat lock expired")),
        ("(type:seat.locked OR type:payment.failed) AND service:payment", |d| {
            matches!(s(d, "type"), "seat.locked" | "payment.failed") && s(d, "service") == "payment"
        }),
        ("event_id:evt-0007", |d| s(d, "event_id") == "evt-0007"),
        // Exact values of numbers and times, and a date alone as the whole day.
        ("amount:150000", |d| n(d, "amount") == 150_000.0),
        ("latency_ms:20.5", |d| n(d, "latency_ms") == 20.5),
        ("NOT amount:150000", |d| n(d, "amount") != 150_000.0),
        ("ts:\"2024-02-05T06:00:00.000Z\"", |d| d.ts_millis == 1_707_112_800_000),
        ("ts:2024-02-05 AND level:error", |d| s(d, "level") == "error"),
    ]
}

/// Every query of [`query_syntax_cases`] counts what its predicate selects.
pub fn query_syntax_matches_the_reference_predicates(factory: &impl Factory) {
    let (backend, docs) = loaded(factory);
    for (query, predicate) in query_syntax_cases() {
        let expected = docs.iter().filter(|d| predicate(d)).count() as u64;
        assert!(expected > 0, "the suite's data must exercise {query:?}");
        assert_eq!(count(&backend, query), expected, "query {query:?}");
    }
    let by_id = format!("_id:{}", docs[7].id);
    assert_eq!(count(&backend, &by_id), 1, "query {by_id:?}");
}

/// `since` is inclusive, `until` exclusive, combined with the query.
pub fn time_range_is_inclusive_since_and_exclusive_until(factory: &impl Factory) {
    let (backend, docs) = loaded(factory);
    let since = docs[4].ts_millis;
    let until = docs[20].ts_millis;
    let request = SearchRequest { since_ms: Some(since), until_ms: Some(until), ..SearchRequest::default() };
    assert_eq!(backend.count(&request).expect("count"), 16);
    let request = SearchRequest { query: "service:payment".into(), ..request };
    let expected = docs[4..20].iter().filter(|d| s(d, "service") == "payment").count() as u64;
    assert_eq!(backend.count(&request).expect("count"), expected);
}

/// Hits come back whole, with their ids, sorted and limited as asked.
pub fn hits_are_sorted_limited_and_returned_whole(factory: &impl Factory) {
    let (backend, docs) = loaded(factory);
    let response = backend
        .search(&SearchRequest { limit: 5, sort: Some(SortSpec::parse("-amount")), ..SearchRequest::default() })
        .expect("search");
    assert_eq!(response.total, docs.len() as u64);
    let amounts: Vec<f64> = response.hits.iter().map(|h| h.source["amount"].as_f64().unwrap_or(0.0)).collect();
    let mut expected: Vec<f64> = docs.iter().map(|d| n(d, "amount")).collect();
    expected.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(amounts, expected[..5].to_vec());
    let first = &response.hits[0];
    let original = docs.iter().find(|d| d.id.to_string() == first.id).expect("hit id is a sent id");
    assert_eq!(first.source, original.doc, "the stored event comes back unchanged");

    let newest = backend.search(&SearchRequest { limit: 3, ..SearchRequest::default() }).expect("search");
    let times: Vec<&str> = newest.hits.iter().map(|h| h.source["ts"].as_str().unwrap_or("")).collect();
    assert_eq!(times, [s(&docs[47], "ts"), s(&docs[46], "ts"), s(&docs[45], "ts")], "default order is newest first");

    let oldest = backend
        .search(&SearchRequest { limit: 1, sort: Some(SortSpec::parse("ts")), ..SearchRequest::default() })
        .expect("search");
    assert_eq!(oldest.hits[0].id, docs[0].id.to_string());
}

/// terms, date_histogram and stats answer in Elasticsearch's shape with the right figures.
pub fn aggregations_answer_in_elasticsearch_shape(factory: &impl Factory) {
    let (backend, docs) = loaded(factory);
    let aggs: Vec<AggSpec> =
        ["terms:venue", "terms:payment.method", "terms:client.app", "date_histogram:ts:1h", "stats:amount"]
            .iter()
            .map(|spec| AggSpec::parse(spec).expect("spec"))
            .collect();
    let response = backend.search(&SearchRequest { limit: 0, aggs, ..SearchRequest::default() }).expect("search");
    assert!(response.hits.is_empty());

    let bucket_counts = |spec: &str| -> Vec<(String, u64)> {
        let result = &response.aggregations[spec];
        result["buckets"]
            .as_array()
            .unwrap_or_else(|| panic!("{spec}: no buckets in {result}"))
            .iter()
            .map(|b| {
                let key = b
                    .get("key_as_string")
                    .or(b.get("key"))
                    .map(|k| k.as_str().map(str::to_string).unwrap_or(k.to_string()))
                    .unwrap_or_default();
                (key, b["doc_count"].as_u64().unwrap_or(0))
            })
            .collect()
    };
    let venues = bucket_counts("terms:venue");
    assert_eq!(venues.len(), 3);
    assert!(venues.iter().all(|(_, c)| *c == 16), "{venues:?}");
    let methods = bucket_counts("terms:payment.method");
    assert_eq!(methods.iter().map(|(_, c)| c).sum::<u64>(), docs.len() as u64);
    let apps = bucket_counts("terms:client.app");
    assert_eq!(apps.iter().map(|(_, c)| c).sum::<u64>(), docs.len() as u64, "{apps:?}");
    let hours = bucket_counts("date_histogram:ts:1h");
    assert_eq!(hours.len(), 12, "{hours:?}");
    assert!(hours.iter().all(|(_, c)| *c == 4), "{hours:?}");
    assert!(hours[0].0.starts_with("2024-02-05T00:00:00"), "{hours:?}");

    let stats = &response.aggregations["stats:amount"];
    let amounts: Vec<f64> = docs.iter().map(|d| n(d, "amount")).collect();
    assert_eq!(stats["count"].as_u64(), Some(docs.len() as u64), "{stats}");
    assert_eq!(stats["min"].as_f64(), Some(5_000.0));
    assert_eq!(stats["max"].as_f64(), amounts.iter().cloned().reduce(f64::max));
    assert_eq!(stats["sum"].as_f64(), Some(amounts.iter().sum()));
}

/// Aggregations follow the query and the time range.
pub fn aggregations_follow_the_query(factory: &impl Factory) {
    let (backend, docs) = loaded(factory);
    let request = SearchRequest {
        query: "venue:\"Olympic Hall\"".into(),
        limit: 0,
        aggs: vec![AggSpec::parse("terms:type:20").expect("spec")],
        ..SearchRequest::default()
    };
    let response = backend.search(&request).expect("search");
    let total: u64 = response.aggregations["terms:type:20"]["buckets"]
        .as_array()
        .map(|b| b.iter().map(|b| b["doc_count"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert_eq!(total, docs.iter().filter(|d| s(d, "venue") == "Olympic Hall").count() as u64);
    assert_eq!(response.total, total);
}

/// The source checkpoint the suite records: a completed object with one rejection.
pub fn sample_source_record() -> SourceRecord {
    SourceRecord {
        key: "0123456789abcdef0123456789abcdef".into(),
        source: "/logs/day.ndjson".into(),
        status: SourceStatus::Completed,
        records: 48,
        valid: 47,
        indexed: 47,
        duplicates: 0,
        rejected: 1,
        failure: None,
        first_event: Some("2024-02-05T00:00:00.000Z".into()),
        last_event: Some("2024-02-05T11:45:00.000Z".into()),
        updated_at: "2024-02-06T00:00:00.000Z".into(),
        resume: None,
    }
}

/// A recorded source is found again after a flush and listed by `sources`.
pub fn source_records_are_committed_with_the_documents(factory: &impl Factory) {
    let (mut backend, _) = loaded(factory);
    let record = sample_source_record();
    backend.record_source(&record).expect("record_source");
    backend.flush().expect("flush");
    assert_eq!(backend.source_record(&record.key).expect("source_record"), Some(record.clone()));
    let updated =
        SourceRecord { status: SourceStatus::Failed, failure: Some("gzip stream truncated".into()), ..record.clone() };
    backend.record_source(&updated).expect("record_source");
    backend.flush().expect("flush");
    assert_eq!(backend.sources().expect("sources"), vec![updated], "a source has one record, the latest");
    assert_eq!(count(&backend, ""), 48, "source records are not events");
}

/// Malformed queries and aggregations are errors, not empty results.
pub fn malformed_queries_are_errors(factory: &impl Factory) {
    let (backend, _) = loaded(factory);
    for query in ["amount:[1 TO", "venue:\"unclosed"] {
        assert!(
            backend.count(&SearchRequest { query: query.into(), ..SearchRequest::default() }).is_err(),
            "{query:?}"
        );
    }
}

/// Generates one `#[test]` per conformance check for a factory expression. Attributes
/// after the factory go on every test, e.g.
/// `conformance_tests!(factory(), #[ignore = "needs a live cluster"])`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_tests!(@each $factory; [$(#[$attr])*];
            indexes_and_counts_every_document,
            reingesting_the_same_documents_reports_duplicates_and_changes_nothing,
            duplicates_within_one_batch_are_caught,
            query_syntax_matches_the_reference_predicates,
            time_range_is_inclusive_since_and_exclusive_until,
            hits_are_sorted_limited_and_returned_whole,
            aggregations_answer_in_elasticsearch_shape,
            aggregations_follow_the_query,
            source_records_are_committed_with_the_documents,
            malformed_queries_are_errors,
            korean_text_search,
            nested_aggregations,
            booking_report
        );
    };
    (@each $factory:expr; $attrs:tt; $($name:ident),*) => {
        $( $crate::conformance_tests!(@one $factory; $attrs; $name); )*
    };
    (@one $factory:expr; [$(#[$attr:meta])*]; $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            let factory = $factory;
            $crate::conformance::$name(&factory);
        }
    };
}
