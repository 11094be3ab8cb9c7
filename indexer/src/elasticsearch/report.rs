//! The booking report's facts on Elasticsearch/OpenSearch, gathered by aggregations: the
//! cluster groups the events by `booking_id` and answers one bucket per booking, so no
//! event travels to the client. Request bodies and response reading are pure; the paging
//! loop ([`gather`]) gets the cluster through a closure (the backend's `_search` call).
//!
//! A bounded window pages a `composite` aggregation over the bookings with a
//! `booking.requested` event inside the window, then asks for the facts of each page's
//! bookings (a `terms` aggregation restricted to those ids, over all their events, since
//! a booking's other events may lie outside the window). An open window pages one
//! `composite` aggregation over every booking with the same per-booking sub-aggregations.
//!
//! Per booking (`booking_sub_aggs`): the report event types it has (`terms` on `type`),
//! its earliest `booking.requested` event (`top_hits`, size 1, oldest first) and the
//! seats of its `booking.confirmed` events (`terms` on `show_id`, then on `seat`, which
//! holds one indexed value per seat of an array; events without `show_id` through a
//! `missing` bucket, which take the request's show). Every bucket count is bounded; a
//! truncated seat list is an error, never a silently shorter list. So are failed shards
//! and refusals: an incomplete answer must not pass for a report.

use serde_json::{json, Value};

use super::query;
use crate::backend::SearchRequest;
use crate::report::{BookingFacts, EventFlag, EventFlags, ReportWindow, RequestFacts, REPORT_EVENT_TYPES};
use crate::schema::{ES_TIMESTAMP, TYPE};
use crate::{Error, Result};

const BOOKING_ID: &str = "booking_id";
const SHOW_ID: &str = "show_id";
const SEAT: &str = "seat";
const VENUE: &str = "venue";
const REQUESTED: &str = "booking.requested";
const CONFIRMED: &str = "booking.confirmed";

/// Bookings per page. Each booking costs the cluster about a dozen buckets (its types,
/// shows and seats), so a page stays well below `search.max_buckets` (65,535 by default
/// since Elasticsearch 7.9, and on OpenSearch).
pub const PAGE_SIZE: usize = 1000;
/// Distinct shows among one booking's confirmed events the report reads.
pub const SHOWS_PER_BOOKING: usize = 100;
/// Distinct seats per show of one booking the report reads.
pub const SEATS_PER_SHOW: usize = 1000;

/// The name of the per-booking aggregation in every body.
const BOOKINGS: &str = "bookings";

/// Gathers the facts of every booking `window` admits, each once. `search` posts a
/// `_search` body to the event indices and answers the HTTP status and the JSON body
/// (401/403 already turned into [`Error::Auth`] by the caller).
pub fn gather(
    window: &ReportWindow,
    page_size: usize,
    mut search: impl FnMut(&Value) -> Result<(u16, Value)>,
) -> Result<Vec<BookingFacts>> {
    let page_size = page_size.max(1);
    let mut facts = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let page = if window.is_open() {
            let body = open_window_body(after.as_ref(), page_size);
            let answer = answer_of(search(&body)?, "reading the bookings")?;
            let page = read_composite_page(&answer)?;
            for (booking_id, bucket) in &page.buckets {
                facts.push(read_booking(booking_id, bucket)?);
            }
            page
        } else {
            let body = requested_in_window_body(window, after.as_ref(), page_size);
            let answer = answer_of(search(&body)?, "listing the bookings requested in the window")?;
            let page = read_composite_page(&answer)?;
            let ids: Vec<&str> = page.buckets.iter().map(|(id, _)| id.as_str()).collect();
            if !ids.is_empty() {
                let answer = answer_of(search(&facts_body(&ids))?, "reading the bookings' events")?;
                for booking in read_facts_of_ids(&answer)? {
                    // A later request inside the window does not make an earlier one's
                    // booking belong to it.
                    if window.admits(&booking) {
                        facts.push(booking);
                    }
                }
            }
            page
        };
        // Fewer buckets than asked for means the last page; composite aggregations fill
        // every page but the last.
        match page.after_key {
            Some(key) if page.buckets.len() >= page_size => after = Some(key),
            _ => return Ok(facts),
        }
    }
}

/// Phase 1 of a bounded window: one page of the ids of bookings with a
/// `booking.requested` event inside the window.
pub fn requested_in_window_body(window: &ReportWindow, after: Option<&Value>, page_size: usize) -> Value {
    let range = query::query_clause(&SearchRequest {
        query: String::new(),
        since_ms: window.since_ms,
        until_ms: window.until_ms,
        ..SearchRequest::default()
    });
    let mut filters = vec![json!({"term": {TYPE: REQUESTED}})];
    // The time range as the search translation writes it (same bounds, same format).
    if let Some(range_filters) = range.pointer("/bool/filter").and_then(Value::as_array) {
        filters.extend(range_filters.iter().cloned());
    }
    let composite = composite_agg(after, page_size);
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": {"bool": {"filter": filters}},
        "aggs": {BOOKINGS: composite}
    })
}

/// Phase 2 of a bounded window: the facts of the given bookings, over all their report
/// events whatever their time.
pub fn facts_body(ids: &[&str]) -> Value {
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": {"bool": {"filter": [
            {"terms": {BOOKING_ID: ids}},
            {"terms": {TYPE: report_types()}}
        ]}},
        "aggs": {BOOKINGS: {
            // The query leaves exactly these ids, so each shard has at most `size` of them
            // and the default shard_size (size × 1.5 + 10) returns every one: exact.
            "terms": {"field": BOOKING_ID, "size": ids.len().max(1)},
            "aggs": booking_sub_aggs()
        }}
    })
}

/// An open window: one page of every booking with a report event, with its facts.
pub fn open_window_body(after: Option<&Value>, page_size: usize) -> Value {
    let mut composite = composite_agg(after, page_size);
    composite["aggs"] = booking_sub_aggs();
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": {"bool": {"filter": [{"terms": {TYPE: report_types()}}]}},
        "aggs": {BOOKINGS: composite}
    })
}

fn report_types() -> Vec<&'static str> {
    REPORT_EVENT_TYPES.iter().map(|(name, _)| *name).collect()
}

fn composite_agg(after: Option<&Value>, page_size: usize) -> Value {
    let mut composite = json!({
        "size": page_size,
        "sources": [{BOOKING_ID: {"terms": {"field": BOOKING_ID}}}]
    });
    if let Some(after) = after {
        composite["after"] = after.clone();
    }
    json!({"composite": composite})
}

/// What one booking's bucket holds: see the module documentation.
fn booking_sub_aggs() -> Value {
    let seats = json!({"seats": {"terms": {"field": SEAT, "size": SEATS_PER_SHOW}}});
    json!({
        // The queries keep only report types, so every type fits and the count is exact.
        "types": {"terms": {"field": TYPE, "size": REPORT_EVENT_TYPES.len()}},
        "requested": {
            "filter": {"term": {TYPE: REQUESTED}},
            "aggs": {"first": {"top_hits": {
                "size": 1,
                "sort": [{ES_TIMESTAMP: {"order": "asc"}}],
                "_source": {"includes": [VENUE, SHOW_ID]}
            }}}
        },
        "confirmed": {
            "filter": {"term": {TYPE: CONFIRMED}},
            "aggs": {
                "shows": {"terms": {"field": SHOW_ID, "size": SHOWS_PER_BOOKING}, "aggs": seats.clone()},
                "no_show": {"missing": {"field": SHOW_ID}, "aggs": seats}
            }
        }
    })
}

/// The body of a successful answer; anything else is an operational error. A search that
/// some shards could not answer would give a report with bookings missing, so it is an
/// error too.
pub fn answer_of((status, body): (u16, Value), step: &str) -> Result<Value> {
    if status != 200 {
        let reason = super::client::reason_of(&body);
        let hint = if reason.contains("too_many_buckets") {
            "the cluster's search.max_buckets is below what a page of 1,000 bookings needs: set it to at least \
             20000 (the default is 65535)"
        } else if status == 404 {
            "an event index went away while the report ran (deleted by retention?): run the report again"
        } else if status == 400 {
            "the cluster refused the report's aggregations: it needs Elasticsearch 7.10+ or OpenSearch 1.3+ and \
             indices made from the tix-logs index template (booking_id, type, show_id, seat as keywords)"
        } else {
            "check the cluster's health and run the report again"
        };
        return Err(Error::Http {
            status,
            message: format!("booking report: {step}: Elasticsearch answered HTTP {status}: {reason}; {hint}"),
        });
    }
    if let Some((failed, reason)) = super::query::shard_failure(&body) {
        return Err(Error::Incomplete(format!(
            "booking report: {step}: {failed} shard(s) failed, the report would be incomplete: {reason}; run it \
             again, and if it fails again check the cluster (GET _cluster/health)"
        )));
    }
    if body.get("timed_out").and_then(Value::as_bool) == Some(true) {
        return Err(Error::Incomplete(format!(
            "booking report: {step}: the search timed out on the cluster (search.default_search_timeout), the \
             report would be incomplete: raise or remove that setting, or run the report when the cluster is less \
             busy"
        )));
    }
    Ok(body)
}

/// One page of a composite aggregation: each bucket's booking id and the bucket, and the
/// key to continue after.
#[derive(Debug)]
pub struct CompositePage {
    pub buckets: Vec<(String, Value)>,
    pub after_key: Option<Value>,
}

/// Reads the `bookings` composite aggregation of an answer. No aggregation at all is an
/// empty page only when no index was searched (no event indices yet).
pub fn read_composite_page(answer: &Value) -> Result<CompositePage> {
    let Some(agg) = answer.pointer("/aggregations/bookings") else {
        return if no_index_searched(answer) {
            Ok(CompositePage { buckets: vec![], after_key: None })
        } else {
            Err(unreadable("no aggregations.bookings in the answer"))
        };
    };
    let mut buckets = Vec::new();
    for bucket in buckets_of(agg, "bookings")? {
        let id = bucket
            .pointer("/key/booking_id")
            .and_then(Value::as_str)
            .ok_or_else(|| unreadable("a bookings bucket without key.booking_id"))?;
        buckets.push((id.to_string(), bucket.clone()));
    }
    Ok(CompositePage { buckets, after_key: agg.get("after_key").filter(|k| k.is_object()).cloned() })
}

/// Reads the per-booking `terms` aggregation of a phase-2 answer.
pub fn read_facts_of_ids(answer: &Value) -> Result<Vec<BookingFacts>> {
    let Some(agg) = answer.pointer("/aggregations/bookings") else {
        return if no_index_searched(answer) {
            Ok(vec![])
        } else {
            Err(unreadable("no aggregations.bookings in the answer"))
        };
    };
    buckets_of(agg, "bookings")?
        .iter()
        .map(|bucket| {
            let id = bucket
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| unreadable("a bookings bucket without a key"))?;
            read_booking(id, bucket)
        })
        .collect()
}

/// An answer over no index at all (the pattern matched none): Elasticsearch then leaves
/// the aggregations out.
fn no_index_searched(answer: &Value) -> bool {
    answer.pointer("/_shards/total").and_then(Value::as_u64) == Some(0)
}

/// The facts of one booking from its bucket's sub-aggregations.
pub fn read_booking(booking_id: &str, bucket: &Value) -> Result<BookingFacts> {
    let mut flags = EventFlags::default();
    for types in buckets_of(sub(bucket, "types", booking_id)?, "types")? {
        if let Some(flag) = types.get("key").and_then(Value::as_str).and_then(EventFlag::of_type) {
            flags.insert(flag);
        }
    }

    let requested = sub(bucket, "requested", booking_id)?;
    let request = match requested.get("doc_count").and_then(Value::as_u64) {
        Some(0) => None,
        _ => {
            let hit = requested
                .pointer("/first/hits/hits/0")
                .ok_or_else(|| unreadable(&format!("booking {booking_id}: requested.first has no hit")))?;
            Some(read_request(booking_id, hit)?)
        }
    };

    let confirmed = sub(bucket, "confirmed", booking_id)?;
    let mut confirmed_seats = Vec::new();
    let shows = sub(confirmed, "shows", booking_id)?;
    check_complete(shows, booking_id, "shows of its confirmed events", SHOWS_PER_BOOKING)?;
    for show in buckets_of(shows, "confirmed.shows")? {
        let show_id =
            show.get("key").and_then(Value::as_str).ok_or_else(|| unreadable("a shows bucket without a key"))?;
        for seat in seats_of(show, booking_id)? {
            confirmed_seats.push((show_id.to_string(), seat));
        }
    }
    let no_show = sub(confirmed, "no_show", booking_id)?;
    // A confirmed event without a show is for the show its booking requested; with no
    // known show there is no pair to report.
    if let Some(show_id) = request.as_ref().and_then(|r| r.show_id.as_ref()) {
        for seat in seats_of(no_show, booking_id)? {
            confirmed_seats.push((show_id.clone(), seat));
        }
    }
    confirmed_seats.sort();
    confirmed_seats.dedup();
    Ok(BookingFacts { booking_id: booking_id.to_string(), request, flags, confirmed_seats })
}

fn read_request(booking_id: &str, hit: &Value) -> Result<RequestFacts> {
    // The sort value of a date field is its epoch milliseconds, whatever the text in
    // `_source` looked like.
    let ts_millis = match hit.pointer("/sort/0") {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
    .ok_or_else(|| unreadable(&format!("booking {booking_id}: the request hit has no numeric sort value")))?;
    let text = |field: &str| hit.pointer(&format!("/_source/{field}")).and_then(Value::as_str).map(str::to_string);
    Ok(RequestFacts { ts_millis, venue: text(VENUE), show_id: text(SHOW_ID) })
}

fn seats_of(parent: &Value, booking_id: &str) -> Result<Vec<String>> {
    let seats = sub(parent, "seats", booking_id)?;
    check_complete(seats, booking_id, "seats of one show", SEATS_PER_SHOW)?;
    buckets_of(seats, "seats")?
        .iter()
        .map(|b| {
            b.get("key")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| unreadable("a seats bucket without a key"))
        })
        .collect()
}

/// A `terms` aggregation that left buckets out says so in `sum_other_doc_count`.
fn check_complete(terms: &Value, booking_id: &str, what: &str, limit: usize) -> Result<()> {
    if terms.get("sum_other_doc_count").and_then(Value::as_u64).unwrap_or(0) > 0 {
        return Err(Error::Incomplete(format!(
            "booking report: booking {booking_id} has more than {limit} {what}; the report reads at most {limit} and \
             will not show a shortened list: check that booking's events"
        )));
    }
    Ok(())
}

fn sub<'a>(bucket: &'a Value, name: &str, booking_id: &str) -> Result<&'a Value> {
    bucket.get(name).ok_or_else(|| unreadable(&format!("booking {booking_id}: no {name} aggregation")))
}

fn buckets_of<'a>(agg: &'a Value, name: &str) -> Result<&'a [Value]> {
    agg.get("buckets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| unreadable(&format!("{name} without buckets")))
}

fn unreadable(what: &str) -> Error {
    Error::Malformed {
        message: format!(
            "booking report: unreadable Elasticsearch answer ({what}); the cluster may not be Elasticsearch 7.10+ or \
             OpenSearch 1.x/2.x"
        ),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded() -> ReportWindow {
        ReportWindow { since_ms: Some(1_000), until_ms: Some(2_000) }
    }

    /// A booking bucket as Elasticsearch documents each sub-aggregation's answer.
    fn bucket(
        types: &[&str],
        request: Option<(i64, &str, Option<&str>)>,
        shows: &[(&str, &[&str])],
        no_show: &[&str],
    ) -> Value {
        let terms = |keys: &[&str], extra: Value| -> Value {
            let buckets: Vec<Value> = keys
                .iter()
                .map(|k| {
                    let mut b = json!({"key": k, "doc_count": 1});
                    if let Value::Object(more) = &extra {
                        b.as_object_mut().unwrap().extend(more.clone());
                    }
                    b
                })
                .collect();
            json!({"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": buckets})
        };
        let hits: Vec<Value> = request
            .iter()
            .map(|(ts, venue, show)| {
                let mut source = json!({"venue": venue});
                if let Some(show) = show {
                    source["show_id"] = json!(show);
                }
                json!({"_index": "tix-bookings-1970.01.01", "_id": "x", "_score": null, "_source": source, "sort": [ts]})
            })
            .collect();
        let show_buckets: Vec<Value> = shows
            .iter()
            .map(|(show, seats)| json!({"key": show, "doc_count": 1, "seats": terms(seats, Value::Null)}))
            .collect();
        json!({
            "doc_count": 3,
            "types": terms(types, Value::Null),
            "requested": {"doc_count": hits.len(), "first": {"hits": {
                "total": {"value": hits.len(), "relation": "eq"}, "max_score": null, "hits": hits}}},
            "confirmed": {"doc_count": shows.len() + usize::from(!no_show.is_empty()),
                "shows": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": show_buckets},
                "no_show": {"doc_count": usize::from(!no_show.is_empty()), "seats": terms(no_show, Value::Null)}}
        })
    }

    fn ok(body: Value) -> Result<(u16, Value)> {
        Ok((200, body))
    }

    fn shards() -> Value {
        json!({"total": 3, "successful": 3, "skipped": 0, "failed": 0})
    }

    #[test]
    fn a_bucket_reads_into_flags_request_and_sorted_distinct_seats() {
        let b = bucket(
            &["booking.requested", "booking.confirmed", "seat.locked"],
            Some((1_500, "Olympic Hall", Some("SH-1"))),
            &[("SH-2", &["B-1", "A-1"]), ("SH-1", &["A-2"])],
            &["A-2", "C-3"],
        );
        let facts = read_booking("BK-1", &b).unwrap();
        assert_eq!(
            facts.request,
            Some(RequestFacts { ts_millis: 1_500, venue: Some("Olympic Hall".into()), show_id: Some("SH-1".into()) })
        );
        assert!(facts.flags.contains(EventFlag::Requested) && facts.flags.contains(EventFlag::Confirmed));
        assert!(!facts.flags.contains(EventFlag::Cancelled));
        let pairs: Vec<(&str, &str)> = facts.confirmed_seats.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
        assert_eq!(pairs, [("SH-1", "A-2"), ("SH-1", "C-3"), ("SH-2", "A-1"), ("SH-2", "B-1")]);
    }

    #[test]
    fn confirmed_seats_without_any_show_give_no_pair() {
        let b = bucket(&["booking.confirmed"], None, &[], &["A-1"]);
        let facts = read_booking("BK-2", &b).unwrap();
        assert_eq!(facts.request, None);
        assert!(facts.confirmed_seats.is_empty());
    }

    #[test]
    fn truncated_seat_lists_and_missing_sub_aggregations_are_errors() {
        let mut b = bucket(&["booking.confirmed"], None, &[("SH-1", &["A-1"])], &[]);
        b["confirmed"]["shows"]["buckets"][0]["seats"]["sum_other_doc_count"] = json!(4);
        let err = read_booking("BK-3", &b).unwrap_err().to_string();
        assert!(err.contains("BK-3") && err.contains("more than 1000"), "{err}");
        let mut b = bucket(&["booking.confirmed"], None, &[], &[]);
        b.as_object_mut().unwrap().remove("types");
        assert!(read_booking("BK-3", &b).unwrap_err().to_string().contains("no types aggregation"));
        let mut b = bucket(&["booking.requested"], Some((1, "V", None)), &[], &[]);
        b["requested"]["first"]["hits"]["hits"][0].as_object_mut().unwrap().remove("sort");
        assert!(read_booking("BK-3", &b).unwrap_err().to_string().contains("sort value"));
    }

    #[test]
    fn failures_are_errors_never_empty_pages() {
        let failed = json!({"_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 1,
            "failures": [{"shard": 0, "index": "tix-bookings-2024.02.05", "node": "n1",
                "reason": {"type": "illegal_argument_exception", "reason": "boom"}}]}});
        let err = answer_of((200, failed), "step").unwrap_err().to_string();
        assert!(err.contains("1 shard(s) failed") && err.contains("boom"), "{err}");
        let err = answer_of((200, json!({"timed_out": true, "_shards": shards()})), "step").unwrap_err().to_string();
        assert!(err.contains("timed out"), "{err}");
        let missing =
            json!({"error": {"type": "index_not_found_exception", "reason": "no such index [x]"}, "status": 404});
        let err = answer_of((404, missing), "step").unwrap_err().to_string();
        assert!(err.contains("HTTP 404") && err.contains("index_not_found_exception"), "{err}");
        // Shards answered but the aggregation is missing: not an empty report.
        let err = read_composite_page(&json!({"_shards": shards(), "hits": {"hits": []}})).unwrap_err().to_string();
        assert!(err.contains("unreadable"), "{err}");
        // No index matched the pattern: nothing was searched, nothing is there.
        let none = json!({"_shards": {"total": 0, "successful": 0, "skipped": 0, "failed": 0}, "hits": {"hits": []}});
        assert!(read_composite_page(&none).unwrap().buckets.is_empty());
    }

    #[test]
    fn bounded_windows_page_ids_then_read_each_page_and_drop_earlier_requests() {
        // Three pages of two ids (the last short); BK-4's earliest request precedes the
        // window although a later one is inside it.
        let pages = [vec!["BK-1", "BK-2"], vec!["BK-3", "BK-4"], vec!["BK-5"]];
        let mut sent = Vec::new();
        let facts = gather(&bounded(), 2, |body| {
            sent.push(body.clone());
            if body["aggs"]["bookings"].get("composite").is_some() {
                let n = sent.iter().filter(|b| b["aggs"]["bookings"].get("composite").is_some()).count() - 1;
                let buckets: Vec<Value> =
                    pages[n].iter().map(|id| json!({"key": {"booking_id": id}, "doc_count": 1})).collect();
                let after = json!({"booking_id": pages[n].last().unwrap()});
                return ok(json!({"_shards": shards(), "aggregations": {"bookings": {"after_key": after, "buckets": buckets}}}));
            }
            let ids = body.pointer("/query/bool/filter/0/terms/booking_id").unwrap().as_array().unwrap().clone();
            let buckets: Vec<Value> = ids
                .iter()
                .map(|id| {
                    let ts = if id == "BK-4" { 500 } else { 1_200 };
                    let mut b = bucket(&["booking.requested"], Some((ts, "V", Some("S"))), &[], &[]);
                    b["key"] = id.clone();
                    b
                })
                .collect();
            ok(json!({"_shards": shards(), "aggregations": {"bookings": {"buckets": buckets}}}))
        })
        .unwrap();
        let ids: Vec<&str> = facts.iter().map(|f| f.booking_id.as_str()).collect();
        assert_eq!(ids, ["BK-1", "BK-2", "BK-3", "BK-5"]);
        assert_eq!(sent.len(), 6, "three id pages, three fact requests, nothing after the short page");
        assert_eq!(sent[0]["aggs"]["bookings"]["composite"].get("after"), None);
        assert_eq!(sent[2]["aggs"]["bookings"]["composite"]["after"], json!({"booking_id": "BK-2"}));
        assert_eq!(sent[4]["aggs"]["bookings"]["composite"]["after"], json!({"booking_id": "BK-4"}));
        assert_eq!(sent[3]["aggs"]["bookings"]["terms"]["size"], 2);
    }

    #[test]
    fn open_windows_page_one_composite_until_no_after_key() {
        let mut calls = 0;
        let facts = gather(&ReportWindow::default(), 1, |body| {
            calls += 1;
            assert!(body["aggs"]["bookings"]["aggs"]["types"].is_object(), "sub-aggregations sit beside composite");
            let page = match calls {
                1 => json!({"after_key": {"booking_id": "BK-1"}, "buckets": [{"key": {"booking_id": "BK-1"}, "doc_count": 1}]}),
                _ => json!({"buckets": []}),
            };
            let mut page = page;
            if calls == 1 {
                let mut b = bucket(&["booking.confirmed"], None, &[("S", &["A-1"])], &[]);
                b["key"] = json!({"booking_id": "BK-1"});
                page["buckets"][0] = b;
            }
            ok(json!({"_shards": shards(), "aggregations": {"bookings": page}}))
        })
        .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].confirmed_seats, vec![("S".to_string(), "A-1".to_string())]);
    }

    /// Every `terms` aggregation names its size (a composite's sources page instead).
    fn assert_terms_sized(value: &Value) {
        if let Value::Object(map) = value {
            for (key, inner) in map {
                match key.as_str() {
                    "sources" => continue,
                    "terms" if inner.get("field").is_some() => assert!(inner.get("size").is_some(), "{inner}"),
                    _ => assert_terms_sized(inner),
                }
            }
        }
    }

    #[test]
    fn bodies_ask_for_nothing_but_bounded_aggregations() {
        for body in [
            requested_in_window_body(&bounded(), None, PAGE_SIZE),
            facts_body(&["BK-1"]),
            open_window_body(Some(&json!({"booking_id": "BK-1"})), PAGE_SIZE),
        ] {
            assert_eq!(body["size"], 0);
            assert_eq!(body["track_total_hits"], false);
            assert_terms_sized(&body);
        }
        let body = requested_in_window_body(&ReportWindow { since_ms: None, until_ms: Some(5) }, None, 10);
        assert_eq!(
            body["query"],
            json!({"bool": {"filter": [{"term": {"type": "booking.requested"}},
                {"range": {"@timestamp": {"lt": 5, "format": "epoch_millis"}}}]}})
        );
    }
}
