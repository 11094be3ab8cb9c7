//! Korean full text on Elasticsearch/OpenSearch, checked without a cluster: the request
//! bodies of the Korean conformance queries (golden file), the analyzer the template
//! installs, and that the tantivy tokenizer yields the tokens Lucene's `standard`
//! tokenizer with `cjk_width`, `lowercase` and `cjk_bigram` yields, on published
//! Lucene/Elasticsearch examples and on sentences cut by the same documented rules.
//!
//! Regenerate the golden file with `TIX_UPDATE_GOLDEN=1` after a deliberate change and
//! review the diff.

use std::path::PathBuf;

use indexer::conformance::{korean_empty_queries, korean_query_cases};
use indexer::elasticsearch::{mapping, query};
use indexer::text::{quote_cjk_terms, token_texts, tokens, ES_ANALYZER};
use indexer::SearchRequest;
use serde_json::{json, Map, Value};

const GOLDEN: &str = "korean_count_bodies.json";

fn all_queries() -> Vec<&'static str> {
    korean_query_cases().into_iter().map(|(q, _)| q).chain(korean_empty_queries()).collect()
}

fn count_bodies() -> Value {
    let map: Map<String, Value> = all_queries()
        .into_iter()
        .map(|q| (q.to_string(), query::count_body(&SearchRequest { query: q.into(), ..SearchRequest::default() })))
        .collect();
    Value::Object(map)
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden").join(GOLDEN)
}

#[test]
fn korean_queries_translate_to_the_golden_request_bodies() {
    let actual = count_bodies();
    if std::env::var_os("TIX_UPDATE_GOLDEN").is_some() {
        std::fs::write(golden_path(), serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(golden_path())
        .unwrap_or_else(|e| panic!("{}: {e}; run with TIX_UPDATE_GOLDEN=1 to create it", golden_path().display()));
    let golden: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        golden,
        actual,
        "request bodies differ from tests/golden/{GOLDEN} (rerun with TIX_UPDATE_GOLDEN=1 if deliberate):\n{}",
        serde_json::to_string_pretty(&actual).unwrap()
    );
}

/// query_string ORs the bigrams of an unquoted word; every bare Korean word searching
/// `message` must reach Elasticsearch quoted (a phrase, as tantivy's parser makes it),
/// and keyword-field values and phrases as written.
#[test]
fn bare_korean_words_reach_query_string_as_phrases() {
    let bodies = count_bodies();
    let sent = |q: &str| bodies[q]["query"]["bool"]["filter"][0]["query_string"]["query"].as_str().unwrap().to_string();
    assert_eq!(sent("예약을"), "\"예약을\"");
    assert_eq!(sent("취소 AND 예약"), "\"취소\" AND \"예약\"");
    assert_eq!(sent("message:완료"), "message:\"완료\"");
    assert_eq!(sent("\"예약 요청\""), "\"예약 요청\"");
    assert_eq!(sent("venue:부산아레나"), "venue:부산아레나");
    assert_eq!(sent("venue:\"서울 올림픽홀\" AND 예약"), "venue:\"서울 올림픽홀\" AND \"예약\"");
    assert_eq!(sent("Payment"), "Payment", "Latin queries are sent as before");
    for q in all_queries() {
        let filter = &bodies[q]["query"]["bool"]["filter"][0]["query_string"];
        assert_eq!(filter["query"], json!(quote_cjk_terms(q)), "{q}");
        assert_eq!(filter["default_field"], "message");
        assert_eq!(filter["default_operator"], "OR");
    }
}

/// The template's analyzer, pinned: only parts built into Elasticsearch 7.10+ and every
/// OpenSearch, in the order that makes the tantivy tokenizer's terms.
#[test]
fn the_template_installs_the_bigram_analyzer_on_message() {
    for dynamic in [true, false] {
        let template = mapping::index_template("tix-bookings", dynamic);
        assert_eq!(
            template["template"]["settings"]["index.analysis"],
            json!({"analyzer": {"tix_message": {
                "type": "custom",
                "tokenizer": "standard",
                "filter": ["cjk_width", "lowercase", "cjk_bigram"]
            }}})
        );
        assert_eq!(
            template["template"]["mappings"]["properties"]["message"],
            json!({"type": "text", "analyzer": "tix_message"})
        );
        assert_eq!(template["_meta"]["template_version"], json!(mapping::TEMPLATE_VERSION));
    }
    assert_eq!(ES_ANALYZER, "tix_message");
    let text = serde_json::to_string(&mapping::index_template("tix-bookings", true)).unwrap();
    assert!(!text.contains("nori"), "no plugin analyzers");
}

/// (text, the tokens Lucene's standard tokenizer + cjk_width + lowercase + cjk_bigram
/// produce), each with its source.
fn lucene_vectors() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        // Elasticsearch reference, "CJK bigram token filter", analyze API example
        // (tokenizer standard, filter cjk_bigram).
        (
            "東京都は、日本の首都であり",
            vec!["東京", "京都", "都は", "日本", "本の", "の首", "首都", "都で", "であ", "あり"],
        ),
        // Lucene TestCJKBigramFilter.testAllScripts.
        (
            "多くの学生が試験に落ちた。",
            vec!["多く", "くの", "の学", "学生", "生が", "が試", "試験", "験に", "に落", "落ち", "ちた"],
        ),
        // Lucene TestCJKAnalyzer.testJa2 (CJKAnalyzer = standard + cjk_width + lowercase +
        // cjk_bigram + English stop words, none of which occur here).
        ("一 二三四 五六七八九 十", vec!["一", "二三", "三四", "五六", "六七", "七八", "八九", "十"]),
        // Lucene TestCJKAnalyzer.testC.
        ("abc defgh ijklmn opqrstu vwxy z", vec!["abc", "defgh", "ijklmn", "opqrstu", "vwxy", "z"]),
        // Lucene TestCJKAnalyzer.testFinalOffset.
        ("あいtest", vec!["あい", "test"]),
        ("testあい    ", vec!["test", "あい"]),
        // Lucene TestCJKAnalyzer.testMix and testMix2.
        ("あいうえおabcかきくけこ", vec!["あい", "いう", "うえ", "えお", "abc", "かき", "きく", "くけ", "けこ"]),
        (
            "あいうえおabんcかきくけ こ",
            vec!["あい", "いう", "うえ", "えお", "ab", "ん", "c", "かき", "きく", "くけ", "こ"],
        ),
        // Lucene TestCJKAnalyzer.testNonIdeographic.
        ("一 روبرت موير", vec!["一", "روبرت", "موير"]),
        // Lucene TestCJKAnalyzer.testSurrogates (characters outside the BMP).
        ("𩬅艱鍟䇹愯瀛", vec!["𩬅艱", "艱鍟", "鍟䇹", "䇹愯", "愯瀛"]),
        // Lucene TestStandardAnalyzer.testKoreanSA: the standard tokenizer keeps each
        // Korean word whole ("안녕하세요", "한글입니다") and types it <HANGUL>
        // (TestICUTokenizerCJK.testKoreanTypes), so CJKBigramFilter bigrams each word.
        ("안녕하세요 한글입니다", vec!["안녕", "녕하", "하세", "세요", "한글", "글입", "입니", "니다"]),
        // The suite's sentences, cut by the same documented rules: Hangul words whole,
        // then bigrammed; a one-syllable word is a unigram (cjk_bigram's
        // output_unigrams=false: "a CJK character is output in unigram form when it has
        // no adjacent characters").
        ("고객이 예약을 취소했습니다", vec!["고객", "객이", "예약", "약을", "취소", "소했", "했습", "습니", "니다"]),
        ("예약 요청이 접수되었습니다", vec!["예약", "요청", "청이", "접수", "수되", "되었", "었습", "습니", "니다"]),
        ("약 10분 후", vec!["약", "10분", "후"]),
        // Hyphens split ("BK", "20240205", "000101"; UAX#29 has no rule joining across
        // "-"); Hangul glued to digits is one <ALPHANUM> token (UAX#29 WB9/WB10), which
        // CJKBigramFilter passes through unchanged.
        (
            "BK-20240205-000101 예약이 확정되었습니다",
            vec!["bk", "20240205", "000101", "예약", "약이", "확정", "정되", "되었", "었습", "습니", "니다"],
        ),
        (
            "Payment failed for booking BK-20240205-000102",
            vec!["payment", "failed", "for", "booking", "bk", "20240205", "000102"],
        ),
        // cjk_width folds full-width ASCII before lowercase (Lucene CJKWidthFilter).
        ("ＰＡＹＭＥＮＴ 완료", vec!["payment", "완료"]),
    ]
}

#[test]
fn the_tantivy_tokenizer_gives_lucenes_cjk_bigram_tokens() {
    for (text, expected) in lucene_vectors() {
        assert_eq!(token_texts(text), expected, "{text:?}");
        // Lucene gives every bigram a position increment of 1: phrases rely on it.
        let positions: Vec<usize> = tokens(text).into_iter().map(|(_, p)| p).collect();
        assert_eq!(positions, (0..expected.len()).collect::<Vec<_>>(), "{text:?}");
    }
}
