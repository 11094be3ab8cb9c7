//! Conformance: Korean full text. A noun finds its inflected forms (`예약` → `예약을`,
//! `예약했습니다`), phrases match in order, one syllable matches only a one-syllable word,
//! keyword fields stay exact, and Latin text is searched as before.
//!
//! The expected answers are computed from the messages by plain string predicates: a
//! Korean query of two or more syllables matches exactly the messages that contain it
//! (what bigram indexing promises when the Hangul is not glued to Latin letters or
//! digits, which none of these messages does).

use serde_json::{json, Map};

use super::{count, loaded_with, s, Factory, Predicate};
use crate::backend::{IndexDoc, SearchRequest, Store};

/// (message, venue) of the Korean suite's events.
const EVENTS: &[(&str, &str)] = &[
    ("고객이 예약을 취소했습니다", "서울 올림픽홀"),
    ("예약 요청이 접수되었습니다", "부산아레나"),
    ("좌석 잠금이 만료되었습니다", "서울 올림픽홀"),
    ("결제가 완료되었습니다", "부산아레나"),
    ("예약했습니다", "서울 올림픽홀"),
    ("BK-20240205-000101 예약이 확정되었습니다", "Olympic Hall"),
    ("요청된 예약이 없습니다", "부산아레나"),
    ("결제 취소 요청", "서울 올림픽홀"),
    ("약 10분 후 다시 시도합니다", "Olympic Hall"),
    ("Payment failed for booking BK-20240205-000102", "Olympic Hall"),
    ("payment processed in 12 ms", "Riverside Arena"),
    ("seat lock expired for booking 7", "Riverside Arena"),
];

/// The Korean suite's events: Korean, mixed and Latin messages, Korean venue names.
pub fn korean_docs() -> Vec<IndexDoc> {
    let base_ms: i64 = 1_707_091_200_000; // 2024-02-05T00:00:00Z
    EVENTS
        .iter()
        .enumerate()
        .map(|(i, (message, venue))| {
            let ts_millis = base_ms + i as i64 * 60_000;
            let event_id = format!("evt-ko-{i:04}");
            let mut doc = Map::new();
            doc.insert("ts".into(), json!(super::format_ts(ts_millis)));
            doc.insert("type".into(), json!("booking.requested"));
            doc.insert("event_id".into(), json!(event_id));
            doc.insert("venue".into(), json!(venue));
            doc.insert("message".into(), json!(message));
            let id = super::sample_id_key().doc_id(&event_id);
            IndexDoc { id, ts_millis, doc, unseen_source: false }
        })
        .collect()
}

fn message(doc: &IndexDoc) -> &str {
    s(doc, "message")
}

/// Whether a whitespace-separated word of the message is `word` (lowercased).
fn has_word(doc: &IndexDoc, word: &str) -> bool {
    message(doc).split_whitespace().any(|w| w.to_lowercase() == word)
}

/// Each query of the Korean suite with the events it must match. The Elasticsearch
/// wire tests pin the request body of each.
pub fn korean_query_cases() -> Vec<(&'static str, Predicate)> {
    vec![
        ("취소", |d| message(d).contains("취소")),
        ("예약", |d| message(d).contains("예약")),
        ("예약을", |d| message(d).contains("예약을")),
        ("예약이", |d| message(d).contains("예약이")),
        ("\"예약 요청\"", |d| message(d).contains("예약 요청")),
        ("좌석", |d| message(d).contains("좌석")),
        ("결제", |d| message(d).contains("결제")),
        ("message:완료", |d| message(d).contains("완료")),
        ("취소 AND 예약", |d| message(d).contains("취소") && message(d).contains("예약")),
        ("취소 OR 좌석", |d| message(d).contains("취소") || message(d).contains("좌석")),
        ("예약 AND NOT 취소", |d| message(d).contains("예약") && !message(d).contains("취소")),
        // One syllable matches only a one-syllable word, not every word holding it.
        ("약", |d| has_word(d, "약")),
        ("Payment", |d| has_word(d, "payment")),
        ("PAYMENT AND failed", |d| has_word(d, "payment") && has_word(d, "failed")),
        ("venue:\"서울 올림픽홀\"", |d| s(d, "venue") == "서울 올림픽홀"),
        ("venue:부산아레나", |d| s(d, "venue") == "부산아레나"),
        ("venue:\"서울 올림픽홀\" AND 예약", |d| {
            s(d, "venue") == "서울 올림픽홀" && message(d).contains("예약")
        }),
        ("\"BK-20240205-000101\" AND 확정", |d| {
            message(d).contains("BK-20240205-000101") && message(d).contains("확정")
        }),
    ]
}

/// Queries that must match nothing: keyword fields are exact, phrases keep their order.
pub fn korean_empty_queries() -> Vec<&'static str> {
    vec!["venue:서울", "venue:올림픽홀", "\"요청 예약\"", "예약요청"]
}

/// Korean nouns find their inflected forms, phrases still match, Latin text is unchanged.
pub fn korean_text_search(factory: &impl Factory) {
    let docs = korean_docs();
    let backend = loaded_with(factory, &docs);
    let backend = &backend;
    assert_eq!(count(backend, ""), docs.len() as u64);

    for (query, predicate) in korean_query_cases() {
        let expected: Vec<String> = docs.iter().filter(|d| predicate(d)).map(|d| d.id.to_string()).collect();
        assert!(!expected.is_empty(), "the suite's data must exercise {query:?}");
        assert_eq!(count(backend, query), expected.len() as u64, "count of {query:?}");
        let request = SearchRequest { query: query.into(), limit: docs.len(), ..SearchRequest::default() };
        let response = backend.search(&request).unwrap_or_else(|e| panic!("search {query:?}: {e}"));
        let mut found: Vec<String> = response.hits.iter().map(|h| h.id.clone()).collect();
        found.sort_unstable();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(found, expected, "hits of {query:?}");
    }
    for query in korean_empty_queries() {
        assert_eq!(count(backend, query), 0, "query {query:?}");
    }
}
