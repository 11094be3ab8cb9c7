//! Conformance: nested aggregations (`terms:venue>date_histogram:ts:1d`, siblings,
//! `min=N`, cardinality).
//!
//! The expected answer of every spec is computed by a small reference implementation of
//! Elasticsearch's semantics over the same events (terms: one count per document and
//! distinct value, buckets by count descending then key ascending, the rest summed in
//! `sum_other_doc_count`; date_histogram: UTC-aligned fixed intervals; stats;
//! cardinality: distinct values), then compared bucket by bucket, level by level.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::{loaded_with, sample_docs, Factory};
use crate::backend::{AggSpec, IndexDoc, SearchRequest, Store};

/// The specs checked, covering each nesting the CLI documents.
const SPECS: &[&str] = &[
    "terms:venue>terms:type",
    "terms:venue>date_histogram:ts:1h",
    "terms:type:4>stats:amount",
    "terms:venue>cardinality:booking_id",
    "terms:type:3>stats:latency_ms,cardinality:customer_id,terms:level",
    "terms:customer_id:10:min=7>cardinality:seat",
    "terms:seat:20:min=5",
    "terms:booking_id:5>terms:seat",
    "terms:show_id>cardinality:customer_id,stats:amount",
    "terms:level>terms:venue:2>date_histogram:ts:3h:min=2",
    "cardinality:customer_id",
    "cardinality:booking_id",
    "cardinality:seat",
    "cardinality:show_id",
];

/// The suite's events with a `show_id` (four shows), which the other checks do not need.
fn docs_with_shows() -> Vec<IndexDoc> {
    let mut docs = sample_docs();
    for (i, doc) in docs.iter_mut().enumerate() {
        doc.doc.insert("show_id".into(), json!(format!("SH-{:03}", (i * 5) % 4)));
    }
    docs
}

/// Terms aggregations with sub-aggregations answer in Elasticsearch's shape, with every
/// bucket, count, statistic and distinct count the reference computes.
pub fn nested_aggregations(factory: &impl Factory) {
    let docs = docs_with_shows();
    let backend = loaded_with(factory, &docs);

    let aggs: Vec<AggSpec> = SPECS.iter().map(|s| AggSpec::parse(s).expect("spec")).collect();
    let response =
        backend.search(&SearchRequest { limit: 0, aggs: aggs.clone(), ..SearchRequest::default() }).expect("search");
    let all: Vec<&IndexDoc> = docs.iter().collect();
    for agg in &aggs {
        let actual = response.aggregations.get(&agg.spec).unwrap_or_else(|| panic!("{}: no result", agg.spec));
        let expected = reference(&agg.request, &all);
        assert_eq!(normalized(&agg.request, actual), expected, "{}: answer {actual}", agg.spec);
        assert_eq!(agg.kind() == "terms", actual.get("sum_other_doc_count").is_some(), "{}: shape", agg.spec);
    }

    // The data exercises what the specs are for.
    let buckets = |spec: &str| response.aggregations[spec]["buckets"].as_array().cloned().unwrap_or_default();
    assert_eq!(buckets("terms:customer_id:10:min=7>cardinality:seat").len(), 6, "min=7 drops the customer with 6");
    assert!(response.aggregations["terms:type:3>stats:latency_ms,cardinality:customer_id,terms:level"]
        ["sum_other_doc_count"]
        .as_u64()
        .is_some_and(|n| n > 0));
    let seats = buckets("terms:seat:20:min=5");
    assert!(seats.iter().any(|b| b["key"] == "A-1" && b["doc_count"] == 10), "arrays count each value: {seats:?}");
    assert_eq!(buckets("terms:show_id>cardinality:customer_id,stats:amount").len(), 4);
    assert_eq!(response.aggregations["cardinality:booking_id"]["value"], 24);
}

/// A result reduced to what must agree: bucket keys (instants as epoch milliseconds),
/// counts and order, the other-count, each bucket's sub-results, statistics rounded to
/// 1e-6 and distinct counts.
fn normalized(request: &Value, result: &Value) -> Value {
    let kind = kind(request);
    match kind {
        "stats" => {
            let stat = |k: &str| result.get(k).and_then(Value::as_f64).map(|v| format!("{v:.6}"));
            json!({"count": result.get("count").and_then(Value::as_u64), "min": stat("min"), "max": stat("max"),
                "avg": stat("avg"), "sum": stat("sum")})
        }
        "cardinality" => json!({"value": result.get("value").and_then(Value::as_u64)}),
        _ => {
            let subs = sub_requests(request);
            let buckets: Vec<Value> = result
                .get("buckets")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|bucket| {
                    let key = match (kind, bucket.get("key_as_string").and_then(Value::as_str)) {
                        ("date_histogram", Some(text)) => chrono::DateTime::parse_from_rfc3339(text)
                            .map(|t| t.timestamp_millis().to_string())
                            .unwrap_or_else(|_| text.to_string()),
                        _ => match &bucket["key"] {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => format!("{}", n.as_f64().unwrap_or(f64::NAN) as i64),
                            other => other.to_string(),
                        },
                    };
                    let sub_results: Map<String, Value> = subs
                        .iter()
                        .map(|(name, sub)| (name.clone(), normalized(sub, bucket.get(name).unwrap_or(&Value::Null))))
                        .collect();
                    json!({"key": key, "doc_count": bucket.get("doc_count").and_then(Value::as_u64), "subs": sub_results})
                })
                .collect();
            let mut out = json!({"buckets": buckets});
            if kind == "terms" {
                out["sum_other_doc_count"] = json!(result.get("sum_other_doc_count").and_then(Value::as_u64));
            }
            out
        }
    }
}

/// The expected [`normalized`] result of `request` over `docs`.
fn reference(request: &Value, docs: &[&IndexDoc]) -> Value {
    let kind = kind(request);
    let body = &request[kind];
    let field = body["field"].as_str().unwrap_or_default();
    let min_doc_count = body.get("min_doc_count").and_then(Value::as_u64).unwrap_or(1) as usize;
    match kind {
        "stats" => {
            let values: Vec<f64> = docs.iter().filter_map(|d| d.doc.get(field).and_then(Value::as_f64)).collect();
            let sum: f64 = values.iter().sum();
            let stat = |v: Option<f64>| v.map(|v| format!("{v:.6}"));
            json!({"count": values.len() as u64,
                "min": stat(values.iter().cloned().reduce(f64::min)),
                "max": stat(values.iter().cloned().reduce(f64::max)),
                "avg": stat((!values.is_empty()).then(|| sum / values.len() as f64)),
                "sum": stat(Some(sum))})
        }
        "cardinality" => {
            let distinct: BTreeSet<String> = docs.iter().flat_map(|d| values_of(d, field)).collect();
            json!({"value": distinct.len() as u64})
        }
        "terms" => {
            let mut groups: BTreeMap<String, Vec<&IndexDoc>> = BTreeMap::new();
            for doc in docs {
                for value in values_of(doc, field) {
                    groups.entry(value).or_default().push(doc);
                }
            }
            let mut groups: Vec<(String, Vec<&IndexDoc>)> =
                groups.into_iter().filter(|(_, members)| members.len() >= min_doc_count).collect();
            // Count descending; ties by key ascending (the BTreeMap order, kept by a stable sort).
            groups.sort_by_key(|(_, members)| std::cmp::Reverse(members.len()));
            let size = body["size"].as_u64().unwrap_or(10) as usize;
            let other: usize = groups.iter().skip(size).map(|(_, members)| members.len()).sum();
            groups.truncate(size);
            json!({"buckets": reference_buckets(request, groups), "sum_other_doc_count": other as u64})
        }
        "date_histogram" => {
            let interval = interval_ms(body["fixed_interval"].as_str().unwrap_or_default());
            let mut groups: BTreeMap<i64, Vec<&IndexDoc>> = BTreeMap::new();
            for doc in docs {
                groups.entry(doc.ts_millis - doc.ts_millis.rem_euclid(interval)).or_default().push(doc);
            }
            let groups = groups
                .into_iter()
                .filter(|(_, members)| members.len() >= min_doc_count)
                .map(|(key, members)| (key.to_string(), members))
                .collect();
            json!({"buckets": reference_buckets(request, groups)})
        }
        other => panic!("no reference for {other}"),
    }
}

fn reference_buckets(request: &Value, groups: Vec<(String, Vec<&IndexDoc>)>) -> Vec<Value> {
    let subs = sub_requests(request);
    groups
        .into_iter()
        .map(|(key, members)| {
            let sub_results: Map<String, Value> =
                subs.iter().map(|(name, sub)| (name.clone(), reference(sub, &members))).collect();
            json!({"key": key, "doc_count": members.len() as u64, "subs": sub_results})
        })
        .collect()
}

fn kind(request: &Value) -> &str {
    request.as_object().and_then(|m| m.keys().find(|k| *k != "aggs")).map(String::as_str).unwrap_or("")
}

fn sub_requests(request: &Value) -> Vec<(String, Value)> {
    request.get("aggs").and_then(Value::as_object).map(|m| m.clone().into_iter().collect()).unwrap_or_default()
}

/// The distinct string values of a field of a document (arrays give each element).
fn values_of(doc: &IndexDoc, field: &str) -> BTreeSet<String> {
    match doc.doc.get(field) {
        Some(Value::String(s)) => BTreeSet::from([s.clone()]),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => BTreeSet::new(),
    }
}

fn interval_ms(interval: &str) -> i64 {
    let (number, unit) = interval.split_at(interval.len() - 1);
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => 86_400_000,
    };
    number.parse::<i64>().unwrap_or(1) * unit_ms
}
