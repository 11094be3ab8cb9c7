//! The booking report on Elasticsearch (test tier 4): `booking_facts` of the real
//! backend against a scripted server on 127.0.0.1.
//!
//! The server answers like Elasticsearch would over a small set of booking events: a
//! minimal evaluator (`Cluster`) filters the events by the request's query and computes
//! the request's aggregations as Elasticsearch documents them (composite, terms, filter,
//! missing, top_hits), in Elasticsearch's response shape. The facts the backend reads
//! from those answers must equal what plain Rust over the same events says
//! (`reference_facts`), so the expected figures are computed, not typed in.
//!
//! Goldens in `tests/golden/` (regenerate with `TIX_UPDATE_GOLDEN=1` after a deliberate
//! change and review the diff): `report_request_bodies.json`, the bodies the backend
//! sends, and `report_response_open_window.json`, one whole answer of the evaluator, to
//! keep its shape visibly Elasticsearch's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexer::elasticsearch::config::Secret;
use indexer::elasticsearch::mapping;
use indexer::report::{BookingFacts, EventFlag, EventFlags, ReportWindow, RequestFacts};
use indexer::{ElasticsearchBackend, Error, EsAuth, EsConfig, Store};
use serde_json::{json, Map, Value};
use testkit::es_server::{error_body, Reply, Request, Scripted};

// ---------------------------------------------------------------------------------------
// Events and the plain-Rust reference
// ---------------------------------------------------------------------------------------

/// 2024-02-05T00:00:00Z.
const T0: i64 = 1_707_091_200_000;
const HOUR: i64 = 3_600_000;

/// One stored event: its time and its fields as indexed (without the time).
#[derive(Debug, Clone)]
struct Event {
    ts: i64,
    fields: Map<String, Value>,
}

fn event(ts: i64, kind: &str, booking: &str, extra: Value) -> Event {
    let mut fields = Map::new();
    fields.insert("type".into(), json!(kind));
    if !booking.is_empty() {
        fields.insert("booking_id".into(), json!(booking));
    }
    if let Value::Object(extra) = extra {
        fields.extend(extra);
    }
    Event { ts, fields }
}

/// The window the bounded cases ask for: 2024-02-05, the whole UTC day.
fn window() -> ReportWindow {
    ReportWindow { since_ms: Some(T0), until_ms: Some(T0 + 24 * HOUR) }
}

/// A few bookings covering each rule of the facts.
fn small_events() -> Vec<Event> {
    let until = T0 + 24 * HOUR;
    vec![
        // Inside the window; a seat array and a repeated seat; a type outside the report.
        event(T0 + HOUR, "booking.requested", "BK-A", json!({"venue": "Olympic Hall", "show_id": "SH-1"})),
        event(T0 + HOUR + 1, "seat.locked", "BK-A", json!({"show_id": "SH-1", "seat": "A-1"})),
        event(T0 + 2 * HOUR, "booking.confirmed", "BK-A", json!({"show_id": "SH-1", "seat": ["A-1", "A-2"]})),
        event(T0 + 3 * HOUR, "booking.confirmed", "BK-A", json!({"show_id": "SH-1", "seat": "A-1"})),
        event(T0 + 3 * HOUR, "payment.captured", "BK-A", json!({})),
        // Requested before the window, requested again inside it: it belongs to the first.
        event(T0 - HOUR, "booking.requested", "BK-B", json!({"venue": "Riverside Arena", "show_id": "SH-7"})),
        event(T0 + 5 * HOUR, "booking.requested", "BK-B", json!({"venue": "Old Town Theatre", "show_id": "SH-8"})),
        event(T0 + 6 * HOUR, "booking.confirmed", "BK-B", json!({"show_id": "SH-7", "seat": "B-1"})),
        // No request stored: only an open window counts it.
        event(T0 + 2 * HOUR, "booking.confirmed", "BK-C", json!({"show_id": "SH-9", "seat": "C-1"})),
        // A confirmed event without show_id takes the request's show.
        event(T0 + 4 * HOUR, "booking.requested", "BK-D", json!({"venue": "Olympic Hall", "show_id": "SH-2"})),
        event(T0 + 5 * HOUR, "booking.confirmed", "BK-D", json!({"seat": ["D-2", "D-1"]})),
        event(T0 + 5 * HOUR, "booking.confirmed", "BK-D", json!({"show_id": "SH-3", "seat": "D-9"})),
        event(T0 + 7 * HOUR, "booking.cancelled", "BK-D", json!({})),
        // Requested at the window's exclusive end: outside.
        event(until, "booking.requested", "BK-E", json!({"venue": "Olympic Hall", "show_id": "SH-1"})),
        // Requested at the window's inclusive start, with the remaining flags.
        event(T0, "booking.requested", "BK-F", json!({"venue": "Riverside Arena", "show_id": "SH-4"})),
        event(T0 + HOUR, "payment.failed", "BK-F", json!({})),
        event(T0 + 2 * HOUR, "booking.expired", "BK-F", json!({})),
        event(T0 + 30 * HOUR, "refund.issued", "BK-F", json!({})),
        // A request without venue or show; its show-less seat has no pair.
        event(T0 + 8 * HOUR, "booking.requested", "BK-G", json!({})),
        event(T0 + 9 * HOUR, "booking.confirmed", "BK-G", json!({"seat": "G-1"})),
        // No booking id: no booking.
        event(T0 + 8 * HOUR, "booking.requested", "", json!({"venue": "Olympic Hall"})),
        // Only a type the report does not read.
        event(T0 + 8 * HOUR, "seat.locked", "BK-H", json!({"seat": "H-1"})),
    ]
}

/// Enough bookings for three pages of 1,000, with seats on every third.
fn many_events() -> Vec<Event> {
    let mut events = small_events();
    for i in 0..2_400i64 {
        let booking = format!("BK-{i:05}");
        let show = format!("SH-{}", i % 13);
        let ts = T0 + (i * 17_321) % (24 * HOUR);
        events.push(event(
            ts,
            "booking.requested",
            &booking,
            json!({"venue": format!("Venue {}", i % 5), "show_id": show}),
        ));
        if i % 3 == 0 {
            let seats = json!([format!("R{}-{}", i % 7, i % 11), format!("R{}-{}", i % 7, i % 11 + 1)]);
            events.push(event(ts + 60_000, "booking.confirmed", &booking, json!({"show_id": show, "seat": seats})));
        }
        if i % 4 == 0 {
            events.push(event(ts + 120_000, "payment.captured", &booking, json!({})));
        }
    }
    events
}

/// Values of a keyword field: one per element of an array.
fn values(event: &Event, field: &str) -> Vec<String> {
    match event.fields.get(field) {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

/// The report's facts, straight from the events: the contract in plain Rust. With an
/// open window, every booking with a report event; otherwise those the window admits.
fn reference_facts(events: &[Event], window: &ReportWindow) -> Vec<BookingFacts> {
    let mut by_booking: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for event in events {
        let kind = values(event, "type").pop().unwrap_or_default();
        if let (Some(booking), Some(_)) = (values(event, "booking_id").pop(), EventFlag::of_type(&kind)) {
            by_booking.entry(booking).or_default().push(event);
        }
    }
    let mut facts = Vec::new();
    for (booking_id, events) in by_booking {
        let of_type = |kind: &'static str| events.iter().filter(move |e| values(e, "type") == [kind]);
        let mut flags = EventFlags::default();
        for event in &events {
            flags.insert(EventFlag::of_type(&values(event, "type")[0]).unwrap());
        }
        let request = of_type("booking.requested").min_by_key(|e| e.ts).map(|e| RequestFacts {
            ts_millis: e.ts,
            venue: values(e, "venue").pop(),
            show_id: values(e, "show_id").pop(),
        });
        let mut seats = BTreeSet::new();
        for confirmed in of_type("booking.confirmed") {
            let show = values(confirmed, "show_id").pop().or_else(|| request.as_ref().and_then(|r| r.show_id.clone()));
            if let Some(show) = show {
                for seat in values(confirmed, "seat") {
                    seats.insert((show.clone(), seat));
                }
            }
        }
        let booking = BookingFacts { booking_id, request, flags, confirmed_seats: seats.into_iter().collect() };
        if window.admits(&booking) {
            facts.push(booking);
        }
    }
    facts
}

fn sorted(mut facts: Vec<BookingFacts>) -> Vec<BookingFacts> {
    facts.sort_by(|a, b| a.booking_id.cmp(&b.booking_id));
    facts
}

// ---------------------------------------------------------------------------------------
// The evaluator: Elasticsearch's documented query and aggregation semantics, for the
// clauses the report uses, over the events
// ---------------------------------------------------------------------------------------

struct Cluster {
    events: Vec<Event>,
}

impl Cluster {
    /// The `_search` answer to `body`, as Elasticsearch shapes it (`track_total_hits:
    /// false` leaves out `hits.total`).
    fn answer(&self, body: &Value) -> Value {
        assert_eq!(body["size"], 0, "the report never fetches events");
        assert_eq!(body["track_total_hits"], false);
        let docs: Vec<(usize, &Event)> =
            self.events.iter().enumerate().filter(|(_, e)| matches(&body["query"], e)).collect();
        json!({
            "took": 3,
            "timed_out": false,
            "_shards": {"total": 3, "successful": 3, "skipped": 0, "failed": 0},
            "hits": {"max_score": null, "hits": []},
            "aggregations": aggregations(body["aggs"].as_object().expect("aggs"), &docs)
        })
    }
}

fn matches(query: &Value, event: &Event) -> bool {
    let (kind, spec) = query.as_object().and_then(|q| q.iter().next()).expect("a query clause");
    match kind.as_str() {
        "match_all" => true,
        "bool" => {
            assert_eq!(spec.as_object().unwrap().len(), 1, "only bool.filter is used: {spec}");
            spec["filter"].as_array().unwrap().iter().all(|clause| matches(clause, event))
        }
        "term" => {
            let (field, value) = spec.as_object().unwrap().iter().next().unwrap();
            values(event, field).iter().any(|v| v == value.as_str().unwrap())
        }
        "terms" => {
            let (field, wanted) = spec.as_object().unwrap().iter().next().unwrap();
            let wanted = wanted.as_array().unwrap();
            values(event, field).iter().any(|v| wanted.iter().any(|w| w == v))
        }
        "range" => {
            let bounds = &spec["@timestamp"];
            assert_eq!(bounds["format"], "epoch_millis");
            bounds.get("gte").is_none_or(|b| event.ts >= b.as_i64().unwrap())
                && bounds.get("lt").is_none_or(|b| event.ts < b.as_i64().unwrap())
                && bounds.as_object().unwrap().keys().all(|k| matches!(k.as_str(), "gte" | "lt" | "format"))
        }
        other => panic!("the evaluator does not know the {other} query"),
    }
}

type Docs<'a> = [(usize, &'a Event)];

fn aggregations(specs: &Map<String, Value>, docs: &Docs) -> Value {
    let mut out = Map::new();
    for (name, spec) in specs {
        out.insert(name.clone(), aggregation(spec, docs));
    }
    Value::Object(out)
}

/// A bucket: its key and count, then its sub-aggregations.
fn bucket(key: Value, docs: &Docs, spec: &Value) -> Value {
    let mut bucket = json!({"key": key, "doc_count": docs.len()});
    if let Some(subs) = spec.get("aggs").and_then(Value::as_object) {
        bucket.as_object_mut().unwrap().extend(aggregations(subs, docs).as_object().unwrap().clone());
    }
    bucket
}

/// A single-bucket aggregation (filter, missing): its count, then its sub-aggregations.
fn single_bucket(docs: &Docs, spec: &Value) -> Value {
    let mut bucket = json!({"doc_count": docs.len()});
    if let Some(subs) = spec.get("aggs").and_then(Value::as_object) {
        bucket.as_object_mut().unwrap().extend(aggregations(subs, docs).as_object().unwrap().clone());
    }
    bucket
}

/// Documents per distinct value of `field`; a document with several values is in each of
/// their groups (once).
fn group_by<'a>(docs: &Docs<'a>, field: &str) -> BTreeMap<String, Vec<(usize, &'a Event)>> {
    let mut groups: BTreeMap<String, Vec<(usize, &Event)>> = BTreeMap::new();
    for &(id, event) in docs {
        for value in values(event, field).into_iter().collect::<BTreeSet<_>>() {
            groups.entry(value).or_default().push((id, event));
        }
    }
    groups
}

fn aggregation(spec: &Value, docs: &Docs) -> Value {
    let kind = spec.as_object().unwrap().keys().find(|k| *k != "aggs").expect("an aggregation kind").clone();
    let params = &spec[&kind];
    match kind.as_str() {
        // Buckets by ascending key after `after`, `size` of them; `after_key` is the last
        // bucket's key whenever the page has buckets.
        "composite" => {
            let sources = params["sources"].as_array().unwrap();
            assert_eq!(sources.len(), 1);
            let (name, source) = sources[0].as_object().unwrap().iter().next().unwrap();
            let field = source["terms"]["field"].as_str().unwrap();
            let after = params.get("after").map(|a| a[name].as_str().unwrap().to_string());
            let size = params["size"].as_u64().unwrap() as usize;
            let buckets: Vec<Value> = group_by(docs, field)
                .into_iter()
                .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
                .take(size)
                .map(|(key, group)| bucket(json!({name.as_str(): key}), &group, spec))
                .collect();
            let mut out = Map::new();
            if let Some(last) = buckets.last() {
                out.insert("after_key".into(), last["key"].clone());
            }
            out.insert("buckets".into(), Value::Array(buckets));
            Value::Object(out)
        }
        // The `size` most frequent terms (ties by ascending term); the documents of the
        // terms left out are counted in `sum_other_doc_count`.
        "terms" => {
            let field = params["field"].as_str().unwrap();
            let size = params["size"].as_u64().expect("every terms names its size") as usize;
            let mut groups: Vec<(String, Vec<(usize, &Event)>)> = group_by(docs, field).into_iter().collect();
            groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
            let other: usize = groups.iter().skip(size).map(|(_, g)| g.len()).sum();
            let buckets: Vec<Value> =
                groups.iter().take(size).map(|(key, group)| bucket(json!(key), group, spec)).collect();
            json!({"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets})
        }
        "filter" => {
            let kept: Vec<(usize, &Event)> = docs.iter().copied().filter(|(_, e)| matches(params, e)).collect();
            single_bucket(&kept, spec)
        }
        "missing" => {
            let field = params["field"].as_str().unwrap();
            let kept: Vec<(usize, &Event)> =
                docs.iter().copied().filter(|(_, e)| values(e, field).is_empty()).collect();
            single_bucket(&kept, spec)
        }
        // The first `size` documents by `@timestamp`; each hit carries its sort values
        // (a date sorts as epoch milliseconds) and the `_source` fields asked for.
        "top_hits" => {
            let sort = params["sort"].as_array().unwrap();
            assert_eq!(sort.len(), 1);
            let descending = sort[0]["@timestamp"]["order"] == "desc";
            let mut ordered: Vec<(usize, &Event)> = docs.to_vec();
            ordered.sort_by_key(|(id, e)| (if descending { -e.ts } else { e.ts }, *id));
            let includes: Vec<&str> =
                params["_source"]["includes"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
            let hits: Vec<Value> = ordered
                .iter()
                .take(params["size"].as_u64().unwrap() as usize)
                .map(|(id, e)| {
                    let source: Map<String, Value> = e
                        .fields
                        .iter()
                        .filter(|(k, _)| includes.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    json!({"_index": mapping::daily_index("tix-bookings", e.ts), "_id": format!("evt-{id:05}"),
                        "_score": null, "_source": source, "sort": [e.ts]})
                })
                .collect();
            json!({"hits": {"total": {"value": docs.len(), "relation": "eq"}, "max_score": null, "hits": hits}})
        }
        other => panic!("the evaluator does not know the {other} aggregation"),
    }
}

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn test_config(url: &str) -> EsConfig {
    let mut config = indexer::conformance::es_settings::fast_config(
        url,
        EsAuth::ApiKey(Secret::new("tix-report:s3cr3t-api-key-value")),
    );
    config.request_timeout = Duration::from_secs(5);
    config
}

/// A scripted server answering every search over `events`.
fn serving(events: Vec<Event>) -> (Scripted, ElasticsearchBackend) {
    let cluster = Arc::new(Cluster { events });
    let server = Scripted::start(move |_, request| Reply::Json(200, cluster.answer(&request.json()).to_string()));
    let es = ElasticsearchBackend::connect(test_config(&server.url())).expect("connect");
    (server, es)
}

fn assert_searches(requests: &[Request]) {
    for request in requests {
        assert_eq!((request.method.as_str(), request.path()), ("POST", "/tix-bookings-2*/_search"));
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
}

fn is_composite(request: &Request) -> bool {
    request.json()["aggs"]["bookings"].get("composite").is_some()
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

/// Compares `actual` with a golden file, or rewrites it under `TIX_UPDATE_GOLDEN`.
fn check_golden(name: &str, actual: &Value) {
    let path = golden_dir().join(name);
    if std::env::var_os("TIX_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(actual).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with TIX_UPDATE_GOLDEN=1 to create it", path.display()));
    let golden: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        &golden == actual,
        "{name} differs (rerun with TIX_UPDATE_GOLDEN=1 if the change is deliberate):\n{}",
        serde_json::to_string_pretty(actual).unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

#[test]
fn the_reference_sees_each_rule_of_the_small_set() {
    // Guards the reference itself: the cases below compare against it.
    let bounded: Vec<String> = reference_facts(&small_events(), &window()).into_iter().map(|f| f.booking_id).collect();
    assert_eq!(bounded, ["BK-A", "BK-D", "BK-F", "BK-G"]);
    let open = reference_facts(&small_events(), &ReportWindow::default());
    let ids: Vec<&str> = open.iter().map(|f| f.booking_id.as_str()).collect();
    assert_eq!(ids, ["BK-A", "BK-B", "BK-C", "BK-D", "BK-E", "BK-F", "BK-G"]);
    let seats = |id: &str| open.iter().find(|f| f.booking_id == id).unwrap().confirmed_seats.clone();
    let pairs = |list: &[(&str, &str)]| list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(seats("BK-A"), pairs(&[("SH-1", "A-1"), ("SH-1", "A-2")]));
    assert_eq!(seats("BK-D"), pairs(&[("SH-2", "D-1"), ("SH-2", "D-2"), ("SH-3", "D-9")]));
    assert_eq!(seats("BK-G"), vec![]);
    assert_eq!(open[1].request.as_ref().unwrap().ts_millis, T0 - HOUR, "BK-B belongs to its first request");
}

#[test]
fn request_bodies_match_the_golden_file() {
    let (server, es) = serving(small_events());
    es.booking_facts(&window()).unwrap();
    let bounded = server.requests();
    assert_eq!(bounded.len(), 2, "one page of ids, then their facts");
    es.booking_facts(&ReportWindow::default()).unwrap();
    let open = &server.requests()[2..];
    assert_eq!(open.len(), 1, "one short page");

    // A second page of each, from a set that needs three.
    let (server, es) = serving(many_events());
    es.booking_facts(&window()).unwrap();
    es.booking_facts(&ReportWindow::default()).unwrap();
    let paged: Vec<Request> = server.requests().into_iter().filter(is_composite).collect();
    let second_of = |open_window: bool| {
        paged.iter().filter(|r| r.json()["aggs"]["bookings"].get("aggs").is_some() == open_window).nth(1)
    };
    check_golden(
        "report_request_bodies.json",
        &json!({
            "window_ids_first_page": bounded[0].json(),
            "window_ids_next_page": second_of(false).expect("a second page of ids").json(),
            "window_facts_of_a_page": bounded[1].json(),
            "open_window_first_page": open[0].json(),
            "open_window_next_page": second_of(true).expect("a second open page").json(),
        }),
    );
}

/// One whole answer pinned as a file: the shape of every aggregation is visibly
/// Elasticsearch's, and the backend reads it into the reference facts.
#[test]
fn a_recorded_answer_reads_into_the_reference_facts() {
    let cluster = Cluster { events: small_events() };
    let (probe, es) = serving(small_events());
    es.booking_facts(&ReportWindow::default()).unwrap();
    let answer = cluster.answer(&probe.requests()[0].json());
    check_golden("report_response_open_window.json", &answer);

    let recorded = std::fs::read_to_string(golden_dir().join("report_response_open_window.json")).unwrap();
    let server = Scripted::start(move |_, _| Reply::Json(200, recorded.clone()));
    let es = ElasticsearchBackend::connect(test_config(&server.url())).unwrap();
    let facts = es.booking_facts(&ReportWindow::default()).unwrap();
    assert_eq!(sorted(facts), reference_facts(&small_events(), &ReportWindow::default()));
    assert_eq!(server.requests().len(), 1, "a page shorter than 1,000 is the last");
}

#[test]
fn a_bounded_window_pages_ids_and_reads_each_page_once() {
    let events = many_events();
    let (server, es) = serving(events.clone());
    let facts = es.booking_facts(&window()).unwrap();
    let requests = server.requests();
    assert_searches(&requests);
    assert_eq!(requests.len(), 6, "three pages of ids, each followed by its facts");
    let mut previous_after: Option<Value> = None;
    for pair in requests.chunks(2) {
        let (ids, facts_request) = (pair[0].json(), pair[1].json());
        let composite = &ids["aggs"]["bookings"]["composite"];
        // The after key sent is the one the previous page answered.
        assert_eq!(composite.get("after"), previous_after.as_ref());
        let answer = Cluster { events: events.clone() }.answer(&ids);
        previous_after = answer["aggregations"]["bookings"].get("after_key").cloned();
        let page_ids: Vec<Value> = answer["aggregations"]["bookings"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["key"]["booking_id"].clone())
            .collect();
        assert_eq!(facts_request["query"]["bool"]["filter"][0]["terms"]["booking_id"], json!(page_ids));
        assert_eq!(facts_request["aggs"]["bookings"]["terms"]["size"], page_ids.len());
    }
    let page_sizes: Vec<usize> = requests
        .chunks(2)
        .map(|pair| pair[1].json()["query"]["bool"]["filter"][0]["terms"]["booking_id"].as_array().unwrap().len())
        .collect();
    assert_eq!(page_sizes[..2], [1000, 1000]);
    assert!(page_sizes[2] < 1000, "{page_sizes:?}");

    let facts = sorted(facts);
    assert_eq!(facts.len(), reference_facts(&events, &window()).len());
    assert_eq!(facts, reference_facts(&events, &window()), "each admitted booking once, with the reference's facts");
}

#[test]
fn an_open_window_pages_one_composite_to_the_end() {
    let events = many_events();
    let (server, es) = serving(events.clone());
    let facts = es.booking_facts(&ReportWindow::default()).unwrap();
    let requests = server.requests();
    assert_searches(&requests);
    assert_eq!(requests.len(), 3, "2,407 bookings: pages of 1,000, 1,000 and 407");
    let afters: Vec<Value> = requests
        .iter()
        .map(|r| r.json()["aggs"]["bookings"]["composite"].get("after").cloned().unwrap_or(Value::Null))
        .collect();
    assert_eq!(afters[0], Value::Null);
    for n in 1..3 {
        let answer = Cluster { events: events.clone() }.answer(&requests[n - 1].json());
        assert_eq!(
            afters[n],
            answer["aggregations"]["bookings"]["after_key"],
            "page {n} continues after page {}",
            n - 1
        );
    }
    assert_eq!(sorted(facts), reference_facts(&events, &ReportWindow::default()));
}

#[test]
fn no_event_index_yet_is_an_empty_report() {
    // What Elasticsearch answers when the pattern matches no index: no aggregations.
    let server = Scripted::start(|_, _| {
        Reply::Json(
            200,
            json!({"took": 0, "timed_out": false,
            "_shards": {"total": 0, "successful": 0, "skipped": 0, "failed": 0},
            "hits": {"max_score": 0.0, "hits": []}})
            .to_string(),
        )
    });
    let es = ElasticsearchBackend::connect(test_config(&server.url())).unwrap();
    assert_eq!(es.booking_facts(&window()).unwrap(), vec![]);
    assert_eq!(es.booking_facts(&ReportWindow::default()).unwrap(), vec![]);
}

/// A shard failure in a phase: ids answer normally, the `fail_at`th search fails two of
/// three shards.
fn shard_failure_at(fail_at: usize, window: ReportWindow) -> Error {
    let cluster = Cluster { events: small_events() };
    let server = Scripted::start(move |n, request| {
        let mut answer = cluster.answer(&request.json());
        if n == fail_at {
            answer["_shards"] = json!({"total": 3, "successful": 1, "skipped": 0, "failed": 2, "failures": [
                {"shard": 0, "index": "tix-bookings-2024.02.05", "node": "Xk2bPq",
                 "reason": {"type": "circuit_breaking_exception",
                   "reason": "[parent] Data too large, data for [<reused_arrays>] would be [1031798784/984mb]",
                   "bytes_wanted": 1031798784, "bytes_limit": 1020054732, "durability": "TRANSIENT"}}]});
        }
        Reply::Json(200, answer.to_string())
    });
    let es = ElasticsearchBackend::connect(test_config(&server.url())).unwrap();
    es.booking_facts(&window).unwrap_err()
}

#[test]
fn failed_shards_in_any_phase_are_errors_not_a_smaller_report() {
    for (fail_at, window) in [(0, window()), (1, window()), (0, ReportWindow::default())] {
        let err = shard_failure_at(fail_at, window).to_string();
        assert!(err.contains("2 shard(s) failed") && err.contains("circuit_breaking_exception"), "{err}");
    }
}

#[test]
fn refused_credentials_are_the_auth_error() {
    for status in [401, 403] {
        let reason = if status == 401 {
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
        } else {
            "action [indices:data/read/search] is unauthorized for API key id [tix-report] of user [reporter] on indices [tix-bookings-2024.02.05]"
        };
        let server = Scripted::start(move |_, _| Reply::Json(status, error_body(status, "security_exception", reason)));
        let es = ElasticsearchBackend::connect(test_config(&server.url())).unwrap();
        for window in [window(), ReportWindow::default()] {
            let err = es.booking_facts(&window).unwrap_err();
            assert!(matches!(&err, Error::Auth(text) if text.contains(&status.to_string())), "{err:?}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
        assert_eq!(server.requests().len(), 2, "credentials are not retried");
    }
}

#[test]
fn a_missing_index_is_an_operational_error_not_an_empty_report() {
    // The second search (the facts of the first page) meets an index deleted meanwhile.
    let cluster = Cluster { events: small_events() };
    let server = Scripted::start(move |n, request| {
        if n == 1 {
            let mut body: Value = serde_json::from_str(&error_body(
                404,
                "index_not_found_exception",
                "no such index [tix-bookings-2024.02.05]",
            ))
            .unwrap();
            body["error"]["index"] = json!("tix-bookings-2024.02.05");
            body["error"]["resource.type"] = json!("index_or_alias");
            return Reply::Json(404, body.to_string());
        }
        Reply::Json(200, cluster.answer(&request.json()).to_string())
    });
    let es = ElasticsearchBackend::connect(test_config(&server.url())).unwrap();
    let err = es.booking_facts(&window()).unwrap_err();
    assert!(matches!(err, Error::Http { status: 404, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("HTTP 404") && text.contains("index_not_found_exception"), "{text}");
}

/// The backend conformance check of the report, against a scripted cluster that stores
/// what `_bulk` sends and answers searches with the evaluator: the facts the backend
/// reads from documented aggregation answers are the ones the check computes itself.
#[test]
fn the_conformance_report_check_passes_against_documented_answers() {
    let stored: Arc<std::sync::Mutex<Vec<Event>>> = Arc::default();
    let store = Arc::clone(&stored);
    let server = Scripted::start(move |_, request| match (request.method.as_str(), request.path()) {
        ("GET", "/") => Reply::Json(404, "{}".into()),
        ("POST", "/_bulk") => {
            for (action, source) in request.bulk_lines() {
                let index = action["create"]["_index"].as_str().unwrap_or_default();
                if index.starts_with("tix-bookings-2") {
                    let mut fields = source.as_object().unwrap().clone();
                    let ts = fields.shift_remove("@timestamp").unwrap();
                    let ts = chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap()).unwrap().timestamp_millis();
                    store.lock().unwrap().push(Event { ts, fields });
                }
            }
            testkit::es_server::bulk_ok(request)
        }
        ("POST", "/tix-bookings-2*/_search") => {
            let cluster = Cluster { events: store.lock().unwrap().clone() };
            Reply::Json(200, cluster.answer(&request.json()).to_string())
        }
        _ => Reply::Json(200, json!({"acknowledged": true}).to_string()),
    });
    let url = server.url();
    let factory = move || ElasticsearchBackend::connect(test_config(&url)).unwrap();
    indexer::conformance::booking_report(&factory);
    assert!(!stored.lock().unwrap().is_empty(), "the check's events went through _bulk");
}
