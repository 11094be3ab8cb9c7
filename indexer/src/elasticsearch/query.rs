//! Search translation without I/O: the CLI's [`SearchRequest`] to Elasticsearch request
//! bodies, and Elasticsearch responses back to the [`SearchResponse`] the tantivy backend
//! returns.
//!
//! The query string goes to `query_string` with the defaults the tantivy backend's parser
//! uses (bare words search `message`, terms are OR-ed), so both backends agree. `ts`
//! works unchanged in queries, sorts and aggregations because the mapping makes it an
//! alias of `@timestamp`; sorts still name `@timestamp` directly.
//!
//! `event_id:X` is no id lookup here (tantivy's is, through the keyed id): Elasticsearch
//! indexes `event_id` as a keyword, so it matches the stored, redacted value, needs no
//! key, and confirms nothing a reader of `_source` cannot see anyway.

use serde_json::{json, Map, Value};

use super::bulk::event_from_source;
use crate::backend::{AggSpec, Hit, SearchRequest, SearchResponse};
use crate::schema::{ES_TIMESTAMP, MESSAGE, TS};
use crate::{Error, Result};

/// The `query` clause of a request: the user's query and the time range, as filters
/// (results are sorted by field, so relevance scores would be wasted work).
pub fn query_clause(request: &SearchRequest) -> Value {
    let mut filters = Vec::new();
    let text = request.query.trim();
    // Empty and `*` mean everything, as in the tantivy backend. (A bare `*` in
    // query_string would only match documents that have a `message`.)
    if !text.is_empty() && text != "*" {
        // query_string ORs the bigrams of an unquoted Korean word (`예약을` would match
        // `약을` alone); tantivy's parser makes them a phrase. Quoting the word gives
        // Elasticsearch the same phrase.
        let text = crate::text::quote_cjk_terms(text);
        filters.push(json!({"query_string": {
            "query": text,
            "default_field": MESSAGE,
            "default_operator": "OR"
        }}));
    }
    if request.since_ms.is_some() || request.until_ms.is_some() {
        let mut range = Map::new();
        if let Some(since) = request.since_ms {
            range.insert("gte".into(), json!(since));
        }
        if let Some(until) = request.until_ms {
            range.insert("lt".into(), json!(until));
        }
        range.insert("format".into(), json!("epoch_millis"));
        filters.push(json!({"range": {ES_TIMESTAMP: range}}));
    }
    if filters.is_empty() {
        json!({"match_all": {}})
    } else {
        json!({"bool": {"filter": filters}})
    }
}

/// The `_search` body: query, sort (default newest first), size, exact totals, and the
/// aggregations keyed by their spec text.
pub fn search_body(request: &SearchRequest) -> Value {
    let (field, descending) = match &request.sort {
        Some(sort) => (sort.field.as_str(), sort.descending),
        None => (TS, true),
    };
    let field = if field == TS { ES_TIMESTAMP } else { field };
    let mut body = json!({
        "query": query_clause(request),
        "sort": [{field: {"order": if descending { "desc" } else { "asc" }}}],
        "size": request.limit,
        "track_total_hits": true
    });
    if !request.aggs.is_empty() {
        let aggs: Map<String, Value> = request.aggs.iter().map(|a| (es_agg_name(a), a.request.clone())).collect();
        body["aggs"] = Value::Object(aggs);
    }
    body
}

/// The `_count` body.
pub fn count_body(request: &SearchRequest) -> Value {
    json!({"query": query_clause(request)})
}

/// Reads a `_search` response into the backend-neutral shape. Partial results (some
/// shards failed) are an error, never a silently smaller answer.
pub fn parse_search_response(body: &Value, request: &SearchRequest) -> Result<SearchResponse> {
    check_shards(body)?;
    let hits_obj = body
        .get("hits")
        .ok_or_else(|| Error::Malformed { message: "search response without hits".into(), source: None })?;
    let total = match hits_obj.get("total") {
        Some(Value::Object(t)) => t.get("value").and_then(Value::as_u64).unwrap_or(0),
        Some(other) => other.as_u64().unwrap_or(0),
        None => 0,
    };
    let mut hits = Vec::new();
    for hit in hits_obj.get("hits").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let id = hit.get("_id").and_then(Value::as_str).unwrap_or_default().to_string();
        let source = match hit.get("_source") {
            Some(Value::Object(map)) => event_from_source(map.clone()),
            _ => Map::new(),
        };
        hits.push(Hit { id, source });
    }
    let mut aggregations = Map::new();
    let returned = body.get("aggregations").and_then(Value::as_object);
    for agg in &request.aggs {
        let value = returned.and_then(|r| r.get(&es_agg_name(agg))).cloned().unwrap_or_else(|| empty_aggregation(agg));
        aggregations.insert(agg.spec.clone(), value);
    }
    Ok(SearchResponse { total, hits, aggregations })
}

/// Reads a `_count` response.
pub fn parse_count_response(body: &Value) -> Result<u64> {
    check_shards(body)?;
    body.get("count").and_then(Value::as_u64).ok_or_else(|| Error::Malformed {
        message: format!("count response without a count: {}", truncate(&body.to_string())),
        source: None,
    })
}

fn check_shards(body: &Value) -> Result<()> {
    match shard_failure(body) {
        None => Ok(()),
        Some((failed, reason)) => {
            Err(Error::Incomplete(format!("{failed} shard(s) failed, results would be incomplete: {reason}")))
        }
    }
}

/// How many shards failed to answer a search, and the first failure's reason; `None`
/// when every shard answered.
pub(super) fn shard_failure(body: &Value) -> Option<(u64, String)> {
    let failed = body.pointer("/_shards/failed").and_then(Value::as_u64).unwrap_or(0);
    if failed == 0 {
        return None;
    }
    let reason = body
        .pointer("/_shards/failures/0/reason")
        .map(|r| super::bulk::error_reason(json!({"error": r}).to_string().as_bytes()))
        .unwrap_or_else(|| "no reason given".into());
    Some((failed, reason))
}

/// The name an aggregation goes by in the request and response: its spec text, with
/// `>` (which Elasticsearch refuses in aggregation names, as it separates the steps of a
/// `buckets_path`) written `»`. Sub-aggregation names are single segments, without `>`.
pub fn es_agg_name(agg: &AggSpec) -> String {
    agg.spec.replace('>', "»")
}

/// What Elasticsearch would answer for an aggregation over no documents (it omits the
/// aggregations entirely when no index matches the pattern yet). Without buckets there
/// are no sub-aggregation results.
pub fn empty_aggregation(agg: &AggSpec) -> Value {
    match agg.kind() {
        "cardinality" => json!({"value": 0}),
        "terms" => {
            json!({"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": []})
        }
        "date_histogram" => json!({"buckets": []}),
        "stats" => json!({"count": 0, "min": null, "max": null, "avg": null, "sum": 0.0}),
        _ => json!({}),
    }
}

/// Turns a refused search (HTTP 400) into the error the CLI shows: a query error, or an
/// aggregation error when Elasticsearch blames an aggregation.
pub fn search_error(request: &SearchRequest, reason: String) -> Error {
    let lower = reason.to_lowercase();
    if !request.aggs.is_empty() && (lower.contains("aggregation") || lower.contains("fielddata")) {
        Error::Aggregation {
            spec: request.aggs.iter().map(|a| a.spec.as_str()).collect::<Vec<_>>().join(" "),
            message: reason,
        }
    } else {
        Error::Query { query: request.query.clone(), message: reason }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SortSpec;

    #[test]
    fn empty_and_star_queries_match_everything() {
        for query in ["", "  ", "*"] {
            let request = SearchRequest { query: query.into(), ..SearchRequest::default() };
            assert_eq!(count_body(&request), json!({"query": {"match_all": {}}}));
        }
    }

    #[test]
    fn event_id_queries_match_the_stored_keyword_and_derive_no_id() {
        let request = SearchRequest { query: "event_id:evt-0007".into(), ..SearchRequest::default() };
        let want = json!({"query": {"bool": {"filter": [{"query_string": {
            "query": "event_id:evt-0007", "default_field": "message", "default_operator": "OR"
        }}]}}});
        assert_eq!(count_body(&request), want);
    }

    #[test]
    fn time_range_is_gte_since_and_lt_until() {
        let request = SearchRequest { since_ms: Some(10), until_ms: Some(20), ..SearchRequest::default() };
        assert_eq!(
            query_clause(&request),
            json!({"bool": {"filter": [{"range": {"@timestamp": {"gte": 10, "lt": 20, "format": "epoch_millis"}}}]}})
        );
    }

    #[test]
    fn sort_defaults_to_newest_first_and_maps_ts() {
        let body = search_body(&SearchRequest::default());
        assert_eq!(body["sort"], json!([{"@timestamp": {"order": "desc"}}]));
        assert_eq!(body["track_total_hits"], true);
        let body =
            search_body(&SearchRequest { sort: Some(SortSpec::parse("amount")), limit: 3, ..SearchRequest::default() });
        assert_eq!(body["sort"], json!([{"amount": {"order": "asc"}}]));
        assert_eq!(body["size"], 3);
        assert!(body.get("aggs").is_none());
    }

    #[test]
    fn partial_shard_failures_are_errors() {
        let body = json!({"_shards": {"total": 2, "successful": 1, "failed": 1,
            "failures": [{"shard": 0, "index": "x", "reason": {"type": "illegal_argument_exception", "reason": "boom"}}]},
            "hits": {"total": {"value": 1, "relation": "eq"}, "hits": []}});
        let err = parse_search_response(&body, &SearchRequest::default()).unwrap_err().to_string();
        assert!(err.contains("boom"), "{err}");
    }

    #[test]
    fn missing_aggregations_answer_empty_shapes() {
        let request = SearchRequest { aggs: vec![AggSpec::parse("terms:venue").unwrap()], ..SearchRequest::default() };
        let body = json!({"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}});
        let response = parse_search_response(&body, &request).unwrap();
        assert_eq!(response.aggregations["terms:venue"]["buckets"], json!([]));
        let nested = AggSpec::parse("terms:venue>cardinality:booking_id").unwrap();
        let request = SearchRequest { aggs: vec![nested, AggSpec::parse("cardinality:seat").unwrap()], ..request };
        let response = parse_search_response(&body, &request).unwrap();
        assert_eq!(response.aggregations["terms:venue>cardinality:booking_id"]["buckets"], json!([]));
        assert_eq!(response.aggregations["cardinality:seat"], json!({"value": 0}));
    }

    #[test]
    fn nested_specs_go_by_names_elasticsearch_accepts_and_come_back_by_spec() {
        let request = SearchRequest {
            aggs: vec![AggSpec::parse("terms:venue>terms:type>stats:amount").unwrap()],
            ..SearchRequest::default()
        };
        let body = search_body(&request);
        let names: Vec<&String> = body["aggs"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["terms:venue»terms:type»stats:amount"]);
        assert_eq!(
            body["aggs"]["terms:venue»terms:type»stats:amount"]["aggs"]["terms:type"]["aggs"]["stats:amount"],
            json!({"stats": {"field": "amount"}})
        );
        let answer = json!({"hits": {"total": {"value": 1, "relation": "eq"}, "hits": []}, "aggregations": {
            "terms:venue»terms:type»stats:amount": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": []}}});
        let response = parse_search_response(&answer, &request).unwrap();
        assert_eq!(response.aggregations.keys().collect::<Vec<_>>(), ["terms:venue>terms:type>stats:amount"]);
    }
}
