//! Large integers never change without a word: within 64 bits they reach the tantivy
//! `_source` and the Elasticsearch bulk body exact; beyond 64 bits, or in `amount` /
//! `latency_ms` beyond what a double holds, the record is rejected with a reason naming
//! the field.

use indexer::{IndexDoc, SearchRequest, Store, TantivyBackend, TantivyConfig};
use ingest::dead_letter::LocalDeadLetter;
use ingest::pipeline::{Pipeline, PipelineConfig};
use ingest::redact::Redactor;
use ingest::Limits;
use serde_json::Value;

const KEY: &[u8] = b"large-integers-test-key-of-32-bytes-0123";

/// Kept: integers that fit in 64 bits (u64::MAX, i64::MIN, 2^53 + 1), anywhere but in
/// the double-indexed fields; an amount that is an exact double.
const KEPT: &str = r#"{"ts":"2024-02-05T10:00:00Z","type":"t","booking_id":"BK-1","big_u":18446744073709551615,"big_i":-9223372036854775808,"nested":{"odd":[9007199254740993]},"amount":1152921504606846976,"latency_ms":9007199254740992}"#;

/// Rejected, with the reason each must give.
const REJECTED: [(&str, &str); 5] = [
    (
        r#"{"ts":"2024-02-05T10:00:01Z","type":"t","booking_id":"BK-2","amount":9007199254740993}"#,
        "amount: integer beyond ±2^53",
    ),
    (
        r#"{"ts":"2024-02-05T10:00:02Z","type":"t","booking_id":"BK-3","latency_ms":-9007199254740993}"#,
        "latency_ms: integer beyond ±2^53",
    ),
    (
        r#"{"ts":"2024-02-05T10:00:03Z","type":"t","booking_id":"BK-4","big":18446744073709551616}"#,
        "field `big`: integer beyond 64 bits",
    ),
    (
        r#"{"ts":"2024-02-05T10:00:04Z","type":"t","booking_id":"BK-5","s":"1e99 \" 7","a":{"b":[1,2.5,-9223372036854775809]}}"#,
        "field `a.b`: integer beyond 64 bits",
    ),
    (
        r#"{"ts":"2024-02-05T10:00:05Z","type":"t","booking_id":"BK-6","amount":18446744073709551615}"#,
        "amount: integer beyond ±2^53",
    ),
];

fn check_kept(doc: &serde_json::Map<String, Value>, at: &str) {
    assert_eq!(doc["big_u"].as_u64(), Some(u64::MAX), "{at}");
    assert_eq!(doc["big_i"].as_i64(), Some(i64::MIN), "{at}");
    assert_eq!(doc["nested"]["odd"][0].as_u64(), Some(9_007_199_254_740_993), "{at}");
    assert_eq!(doc["amount"].as_u64(), Some(1 << 60), "{at}");
}

#[test]
fn integers_stay_exact_in_tantivy_or_the_record_is_rejected_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let mut text = format!("{KEPT}\n");
    for (line, _) in REJECTED {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();
    let config = TantivyConfig { threads: 1, heap_bytes: 32 << 20, ..TantivyConfig::default() };
    let mut backend = TantivyBackend::open_for_writing(&dir.path().join("index"), config).unwrap();
    let mut dead_letter = LocalDeadLetter::new(&dir.path().join("dl"));
    let sources = ingest::source::local_sources(&[input.display().to_string()]).unwrap();
    let summary = {
        let mut pipeline = Pipeline::new(&mut backend, &mut dead_letter, PipelineConfig::new(Redactor::new(KEY)));
        pipeline.ingest(sources[0].as_ref()).unwrap();
        pipeline.finish().unwrap()
    };
    assert_eq!((summary.indexed, summary.rejected), (1, REJECTED.len() as u64));

    let hits = backend.search(&SearchRequest { limit: 10, ..SearchRequest::default() }).unwrap().hits;
    assert_eq!(hits.len(), 1);
    check_kept(&hits[0].source, "tantivy _source");
    let range = |q: &str| backend.count(&SearchRequest { query: q.into(), ..SearchRequest::default() }).unwrap();
    assert_eq!(range("amount:1152921504606846976"), 1, "the indexed amount is the stored one");

    let mut reasons: Vec<String> =
        LocalDeadLetter::read_all(&dir.path().join("dl")).unwrap().into_iter().map(|e| e.reason).collect();
    reasons.sort();
    let mut want: Vec<&str> = REJECTED.iter().map(|(_, reason)| *reason).collect();
    want.sort();
    for (reason, want) in reasons.iter().zip(&want) {
        assert!(reason.starts_with(want), "{reason:?} should start with {want:?}");
    }
}

#[test]
fn integers_stay_exact_in_the_elasticsearch_bulk_body() {
    let mut event = ingest::validate::parse_and_validate(KEPT.as_bytes(), &Limits::default()).unwrap();
    Redactor::new(KEY).redact_event(&mut event.doc);
    let doc = IndexDoc {
        id: indexer::doc_id::DocId::from_u128(0),
        ts_millis: event.ts_millis,
        doc: event.doc,
        unseen_source: false,
    };
    let mut body = Vec::new();
    indexer::elasticsearch::bulk::write_event_source(&mut body, &doc);
    let text = String::from_utf8(body).unwrap();
    for literal in ["18446744073709551615", "-9223372036854775808", "[9007199254740993]", "1152921504606846976"] {
        assert!(text.contains(literal), "{literal} missing in {text}");
    }
    let parsed: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    check_kept(&parsed, "bulk body");
    for (line, want) in REJECTED {
        let rejection = ingest::validate::parse_and_validate(line.as_bytes(), &Limits::default()).unwrap_err();
        assert!(rejection.reason.starts_with(want), "{:?} should start with {want:?}", rejection.reason);
    }
}
