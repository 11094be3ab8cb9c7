//! Nested aggregations on the Elasticsearch wire: the request bodies nested `--agg`
//! specs translate to (pinned in `tests/golden/aggregations_nested_search_body.json`;
//! regenerate with `TIX_UPDATE_GOLDEN=1` after a deliberate change and review the diff),
//! and a response in Elasticsearch's documented shape for the conformance sample events
//! (`tests/golden/response_aggregations_nested.json`: terms buckets by doc_count then
//! key, `doc_count_error_upper_bound`, `sum_other_doc_count`, `key_as_string`,
//! cardinality `{"value": N}`), served to the real backend, whose parsed answer must
//! equal what the tantivy backend returns for the same request on the same data.

mod support;

use std::collections::BTreeMap;

use indexer::elasticsearch::query;
use indexer::{AggSpec, ElasticsearchBackend, EsConfig, SearchRequest, SearchResponse, Store};
use serde_json::{json, Map, Value};
use support::{golden_dir, read_golden, tantivy_answer};
use testkit::es_server::{Reply, Scripted};

/// The nested specs of the recorded response: terms>date_histogram, metric siblings,
/// `min=N` over terms on a multi-valued field, three levels, and cardinality alone.
const NESTED_SPECS: &[&str] = &[
    "terms:venue>date_histogram:ts:6h",
    "terms:type:3>stats:amount,cardinality:booking_id",
    "terms:customer_id:10:min=7>terms:seat:3",
    "terms:level>terms:venue:2>cardinality:customer_id",
    "terms:seat:5:min=5",
    "cardinality:customer_id",
];

fn nested_request() -> SearchRequest {
    let aggs = NESTED_SPECS.iter().map(|spec| AggSpec::parse(spec).unwrap()).collect();
    SearchRequest { limit: 0, aggs, ..SearchRequest::default() }
}

const BODY_GOLDEN: &str = "aggregations_nested_search_body.json";

#[test]
fn nested_specs_translate_to_the_golden_request_body() {
    let actual = query::search_body(&nested_request());
    if std::env::var_os("TIX_UPDATE_GOLDEN").is_some() {
        std::fs::write(golden_dir().join(BODY_GOLDEN), serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    assert_eq!(
        read_golden(BODY_GOLDEN),
        actual,
        "request body differs from tests/golden/{BODY_GOLDEN} (rerun with TIX_UPDATE_GOLDEN=1 if deliberate):\n{}",
        serde_json::to_string_pretty(&actual).unwrap()
    );
}

#[test]
fn golden_nested_body_uses_names_elasticsearch_accepts_and_sub_aggs_under_aggs() {
    let body = read_golden(BODY_GOLDEN);
    let aggs = body["aggs"].as_object().unwrap();
    // Elasticsearch refuses `[`, `]` and `>` in aggregation names, at every level.
    fn names_ok(aggs: &Map<String, Value>) -> bool {
        aggs.iter().all(|(name, request)| {
            !name.contains(['[', ']', '>']) && request.get("aggs").and_then(Value::as_object).is_none_or(names_ok)
        })
    }
    assert!(names_ok(aggs), "{body}");
    let per_day = &aggs["terms:venue»date_histogram:ts:6h"];
    assert_eq!(per_day["terms"], json!({"field": "venue", "size": 10}));
    assert_eq!(
        per_day["aggs"]["date_histogram:ts:6h"],
        json!({"date_histogram": {"field": "ts", "fixed_interval": "6h", "min_doc_count": 1}})
    );
    assert_eq!(aggs["terms:customer_id:10:min=7»terms:seat:3"]["terms"]["min_doc_count"], 7);
    assert_eq!(
        aggs["terms:level»terms:venue:2»cardinality:customer_id"]["aggs"]["terms:venue:2"]["aggs"]
            ["cardinality:customer_id"],
        json!({"cardinality": {"field": "customer_id"}})
    );
    assert_eq!(aggs["cardinality:customer_id"], json!({"cardinality": {"field": "customer_id"}}));
}

/// A result compared by meaning, level by level: buckets as a set keyed by their key
/// (numbers and instants as epoch milliseconds: tantivy writes `1707091200000.0` and
/// `2024-02-05T00:00:00Z` where Elasticsearch writes `1707091200000` and
/// `2024-02-05T00:00:00.000Z`), each with its count and sub-results; the other fields as
/// numbers. The field names are kept, so a missing or extra field differs.
fn normalized(result: &Value) -> Value {
    let Some(object) = result.as_object() else {
        return result.clone();
    };
    let mut out = BTreeMap::new();
    for (name, value) in object {
        let normal = match (name.as_str(), value) {
            ("buckets", Value::Array(buckets)) => {
                let set: BTreeMap<String, Value> = buckets
                    .iter()
                    .map(|bucket| {
                        let key = match bucket.get("key_as_string").and_then(Value::as_str) {
                            Some(text) => chrono::DateTime::parse_from_rfc3339(text)
                                .map(|t| t.timestamp_millis().to_string())
                                .unwrap_or(text.into()),
                            None => match &bucket["key"] {
                                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN).to_string(),
                                other => other.as_str().map(str::to_string).unwrap_or(other.to_string()),
                            },
                        };
                        let mut rest = bucket.as_object().cloned().unwrap_or_default();
                        rest.remove("key");
                        rest.remove("key_as_string");
                        (key, normalized(&Value::Object(rest)))
                    })
                    .collect();
                json!(set)
            }
            (_, Value::Number(n)) => json!(n.as_f64()),
            (_, Value::Object(_)) => normalized(value),
            _ => value.clone(),
        };
        out.insert(name.clone(), normal);
    }
    json!(out)
}

#[test]
fn recorded_nested_response_parses_like_tantivy() {
    let request = nested_request();
    let recorded = read_golden("response_aggregations_nested.json").to_string();
    let server = Scripted::start(move |_, _| Reply::Json(200, recorded.clone()));
    let es = ElasticsearchBackend::connect(EsConfig::new(server.url())).expect("connect");
    let from_es = es.search(&request).unwrap();
    let sent = &server.requests()[0];
    assert_eq!((sent.method.as_str(), sent.path()), ("POST", "/tix-bookings-2*/_search"));
    assert_eq!(sent.json(), read_golden(BODY_GOLDEN));

    let from_tantivy = tantivy_answer(&request);
    assert_eq!(from_es.total, from_tantivy.total, "total");
    let specs = |r: &SearchResponse| {
        let mut specs = r.aggregations.keys().cloned().collect::<Vec<_>>();
        specs.sort();
        specs
    };
    let mut expected: Vec<&str> = NESTED_SPECS.to_vec();
    expected.sort();
    assert_eq!(specs(&from_es), expected, "keyed by spec text");
    assert_eq!(specs(&from_tantivy), expected, "keyed by spec text");
    for spec in NESTED_SPECS {
        let (es, tantivy) = (&from_es.aggregations[*spec], &from_tantivy.aggregations[*spec]);
        assert_eq!(normalized(es), normalized(tantivy), "{spec}:\nES {es}\ntantivy {tantivy}");
        // Bucket order is part of the answer (tables and bars show it): by count, then key.
        let keys = |r: &Value| -> Vec<Value> {
            r.get("buckets")
                .and_then(Value::as_array)
                .map(|b| b.iter().map(|b| b["key"].clone()).collect())
                .unwrap_or_default()
        };
        if spec.starts_with("terms:") {
            assert_eq!(keys(es), keys(tantivy), "{spec}: bucket order");
        }
    }
    assert_eq!(from_es.aggregations["cardinality:customer_id"], json!({"value": 7}));
}
