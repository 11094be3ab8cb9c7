//! Elasticsearch wire protocol (test tier 4): the real client against a scripted HTTP
//! server on 127.0.0.1 that answers with documented Elasticsearch responses.
//!
//! Each case asserts what the client sent (method, path, headers, the NDJSON action and
//! source lines) and that the no-loss rule holds: one outcome per document, and
//! indexed + duplicate + rejected + failed = sent. The query-translation goldens live in
//! `tests/golden/` (regenerate with `TIX_UPDATE_GOLDEN=1` after a deliberate change and
//! review the diff); the hand-written `response_*.json` files are Elasticsearch-shaped
//! answers whose parsed form must equal what the tantivy backend returns for the same
//! request on the same data.
//!
//! The scripted server lives in `testkit::es_server` (shared with the end-to-end suites);
//! it also speaks HTTPS ([`Scripted::start_tls`], with a certificate made fresh for each
//! test) to check that certificate verification fails closed.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use indexer::conformance::sample_docs;
use indexer::elasticsearch::config::{RetryPolicy, Secret};
use indexer::elasticsearch::{mapping, query};
use indexer::{
    AggSpec, Backend, ElasticsearchBackend, Error, EsAuth, EsConfig, IndexDoc, Outcome, SearchRequest, SortSpec,
    SourceRecord, Store,
};
use serde_json::{json, Map, Value};
use support::{golden_dir, read_golden, tantivy_answer};
use testkit::es_server::{
    bulk_ok, bulk_reply, bulk_reply_with_blocks, error_body, remembering_cluster, self_signed, Reply, Request, Scripted,
};
use testkit::fault_proxy::{Fault, FaultProxy};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const API_KEY_ID: &str = "tix-ingest";
const API_KEY_SECRET: &str = "s3cr3t-api-key-value";

/// Fast retries so every case runs in well under a second.
fn test_config(url: &str) -> EsConfig {
    indexer::conformance::es_settings::fast_config(
        url,
        EsAuth::ApiKey(Secret::new(format!("{API_KEY_ID}:{API_KEY_SECRET}"))),
    )
}

fn backend(server: &Scripted) -> ElasticsearchBackend {
    ElasticsearchBackend::connect(test_config(&server.url())).expect("connect")
}

fn docs(n: usize) -> Vec<IndexDoc> {
    sample_docs().into_iter().take(n).collect()
}

fn ids(docs: &[IndexDoc]) -> Vec<String> {
    docs.iter().map(|d| d.id.to_hex()).collect()
}

fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The headers every bulk request carries: NDJSON, the API key, no proxy games.
fn assert_bulk_headers(request: &Request) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path(), "/_bulk");
    assert!(request.query().starts_with("filter_path="), "{}", request.target);
    assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
    let expected = format!("ApiKey {}", base64(format!("{API_KEY_ID}:{API_KEY_SECRET}").as_bytes()));
    assert_eq!(request.header("authorization"), Some(expected.as_str()));
}

/// The body holds exactly `expected`, in order: a `create` action naming the daily
/// index and the id, then the event with `@timestamp` in place of `ts`.
fn assert_bulk_body(request: &Request, expected: &[&IndexDoc]) {
    let lines = request.bulk_lines();
    assert_eq!(lines.len(), expected.len(), "documents in the request");
    for ((action, source), doc) in lines.iter().zip(expected) {
        assert_eq!(
            action,
            &json!({"create": {"_index": mapping::daily_index("tix-bookings", doc.ts_millis), "_id": doc.id.to_hex()}}),
            "action line"
        );
        let source = source.as_object().expect("source is an object");
        assert!(source.get("ts").is_none(), "ts is an alias in Elasticsearch and must not be written");
        assert_eq!(source.get("@timestamp"), doc.doc.get("ts"));
        let mut back = source.clone();
        let ts = back.remove("@timestamp").unwrap();
        back.insert("ts".into(), ts);
        assert_eq!(&back, &doc.doc, "the event is sent unchanged");
    }
}

/// The no-loss rule: one outcome per document, each in exactly one class.
fn assert_no_loss(outcomes: &[Outcome], sent: usize) -> (usize, usize, usize, usize) {
    assert_eq!(outcomes.len(), sent, "one outcome per document");
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let indexed = count(|o| matches!(o, Outcome::Indexed));
    let duplicate = count(|o| matches!(o, Outcome::Duplicate));
    let rejected = count(|o| matches!(o, Outcome::Rejected { .. }));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    assert_eq!(indexed + duplicate + rejected + failed, sent);
    (indexed, duplicate, rejected, failed)
}

// ---------------------------------------------------------------------------------------
// Bulk cases
// ---------------------------------------------------------------------------------------

#[test]
fn all_ok_sends_create_actions_with_daily_index_id_and_api_key() {
    let server = Scripted::start(|_, r| bulk_ok(r));
    let mut es = backend(&server);
    let docs = docs(5);
    let outcomes = es.index_batch(&docs).unwrap();
    assert_eq!(assert_no_loss(&outcomes, 5), (5, 0, 0, 0));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_bulk_headers(&requests[0]);
    assert_bulk_body(&requests[0], &docs.iter().collect::<Vec<_>>());
}

#[test]
fn basic_auth_is_sent_as_an_authorization_header() {
    let server = Scripted::start(|_, r| bulk_ok(r));
    let mut config = test_config(&server.url());
    config.auth = EsAuth::Basic { username: "elastic".into(), password: Secret::new("changeme-pw") };
    let mut es = ElasticsearchBackend::connect(config).unwrap();
    es.index_batch(&docs(1)).unwrap();
    let expected = format!("Basic {}", base64(b"elastic:changeme-pw"));
    assert_eq!(server.requests()[0].header("authorization"), Some(expected.as_str()));
}

#[test]
fn mixed_items_resend_only_the_429s_and_classify_the_rest() {
    // By position: 201, 409, 429, 400, 200, 429, 404, 201; the retry then succeeds. The
    // 404 is `index_not_found_exception` (a cluster that does not create indices on
    // write): the client creates the index and sends that item again, never rejects it.
    let first = [201, 409, 429, 400, 200, 429, 404, 201];
    let server = Scripted::start(move |n, r| match (r.method.as_str(), r.path()) {
        ("PUT", index) => Reply::Json(
            200,
            json!({"acknowledged": true, "shards_acknowledged": true, "index": index.trim_start_matches('/')})
                .to_string(),
        ),
        _ if n == 0 => bulk_reply(r, |i, _| first[i]),
        _ => bulk_ok(r),
    });
    let mut es = backend(&server);
    let docs = docs(8);
    let outcomes = es.index_batch(&docs).unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 3, "the batch, the missing index created, one retry");
    assert_bulk_body(&requests[0], &docs.iter().collect::<Vec<_>>());
    assert_eq!(requests[1].method, "PUT");
    assert_eq!(requests[1].path(), format!("/{}", mapping::daily_index("tix-bookings", docs[6].ts_millis)));
    assert!(requests[1].body.is_empty(), "the index template gives the new index its mappings");
    assert_bulk_headers(&requests[2]);
    assert_bulk_body(&requests[2], &[&docs[2], &docs[5], &docs[6]]);

    assert_eq!(outcomes[0], Outcome::Indexed);
    assert_eq!(outcomes[1], Outcome::Duplicate);
    assert_eq!(outcomes[2], Outcome::Indexed, "429 then 201");
    match &outcomes[3] {
        Outcome::Rejected { reason } => {
            assert!(reason.contains("document_parsing_exception"), "{reason}");
            assert!(reason.contains("number_format_exception"), "{reason}");
        }
        other => panic!("400 must be rejected, got {other:?}"),
    }
    assert_eq!(outcomes[4], Outcome::Indexed);
    assert_eq!(outcomes[5], Outcome::Indexed);
    assert_eq!(outcomes[6], Outcome::Indexed, "404 index_not_found, index created, then 201");
    assert_eq!(outcomes[7], Outcome::Indexed);
    assert_eq!(assert_no_loss(&outcomes, 8), (6, 1, 1, 0));
}

/// A cluster with `action.auto_create_index: false` whose credentials may not create
/// indices either: the run stops with an error naming the setting, nothing is rejected.
#[test]
fn a_missing_index_that_cannot_be_created_stops_the_run_and_rejects_nothing() {
    let server = Scripted::start(|_, r| match (r.method.as_str(), r.path()) {
        ("PUT", _) => Reply::Json(
            403,
            error_body(
                403,
                "security_exception",
                "action [indices:admin/create] is unauthorized for API key id [tix-ingest] of user [tix]",
            ),
        ),
        _ => bulk_reply(r, |_, _| 404),
    });
    let mut es = backend(&server);
    let error = es.index_batch(&docs(3)).unwrap_err();
    assert!(matches!(error, Error::IndexMissing { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("action.auto_create_index") && text.contains("create_index"), "{text}");
    assert!(text.contains("tix-bookings-2*"), "names the daily indices' pattern: {text}");
    assert!(!text.contains(API_KEY_SECRET), "{text}");
    let paths: Vec<String> = server.requests().iter().map(|r| format!("{} {}", r.method, r.path())).collect();
    assert_eq!(paths.len(), 2, "one bulk, one PUT, no loop: {paths:?}");
}

/// An index that stays missing after it was created (e.g. deleted at once by a policy)
/// stops the run instead of looping.
#[test]
fn an_index_still_missing_after_creation_stops_the_run() {
    let server = Scripted::start(|_, r| match r.method.as_str() {
        "PUT" => Reply::Json(200, json!({"acknowledged": true}).to_string()),
        _ => bulk_reply(r, |_, _| 404),
    });
    let mut es = backend(&server);
    let error = es.index_batch(&docs(2)).unwrap_err();
    assert!(matches!(error, Error::IndexMissing { .. }), "{error:?}");
    assert_eq!(server.requests().len(), 3, "bulk, PUT, bulk, then stop");
}

/// Per-item errors that the cluster's state causes stop the run: no document is rejected.
#[test]
fn a_closed_index_stops_the_run_instead_of_rejecting_its_documents() {
    let server = Scripted::start(|_, r| {
        let Reply::Json(_, body) = bulk_reply(r, |_, _| 201) else { unreachable!() };
        let mut value: Value = serde_json::from_str(&body).unwrap();
        for item in value["items"].as_array_mut().unwrap() {
            let index = item["create"]["_index"].as_str().unwrap().to_string();
            let id = item["create"]["_id"].as_str().unwrap().to_string();
            *item = json!({"create": {"_index": index, "_id": id, "status": 400,
                "error": {"type": "index_closed_exception", "reason": "closed", "index": index}}});
        }
        value["errors"] = json!(true);
        Reply::Json(200, value.to_string())
    });
    let mut es = backend(&server);
    let error = es.index_batch(&docs(3)).unwrap_err();
    match &error {
        Error::Cluster(text) => assert!(text.contains("index_closed_exception") && text.contains("_open"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn persistent_429_items_fail_after_bounded_retries_never_rejected() {
    let docs = docs(4);
    let accepted = docs[0].id.to_hex();
    let server = Scripted::start(move |_, r| bulk_reply(r, |_, id| if id == accepted { 201 } else { 429 }));
    let mut es = backend(&server);
    let outcomes = es.index_batch(&docs).unwrap();
    let requests = server.requests();
    // The first try, then max_retries (3) retries of the three 429 items.
    assert_eq!(requests.len(), 4);
    for request in &requests[1..] {
        assert_eq!(request.bulk_ids(), [docs[1].id.to_hex(), docs[2].id.to_hex(), docs[3].id.to_hex()]);
    }
    assert_eq!(outcomes[0], Outcome::Indexed);
    for outcome in &outcomes[1..] {
        assert!(
            matches!(outcome, Outcome::Failed { reason } if reason.contains("es_rejected_execution_exception") && reason.contains("gave up")),
            "{outcome:?}"
        );
    }
    assert_eq!(assert_no_loss(&outcomes, 4), (1, 0, 0, 3));
}

#[test]
fn http_429_until_the_time_budget_runs_out_fails_the_batch() {
    let server = Scripted::start(|_, _| {
        Reply::Json(429, error_body(429, "es_rejected_execution_exception", "rejected execution of write operation"))
    });
    let mut config = test_config(&server.url());
    config.retry = RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(40),
        max_retries: 1_000,
        budget: Duration::from_millis(250),
    };
    let mut es = ElasticsearchBackend::connect(config).unwrap();
    let started = Instant::now();
    let outcomes = es.index_batch(&docs(3)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by the budget");
    let requests = server.requests().len();
    assert!((2..40).contains(&requests), "{requests} requests");
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::Failed { reason } if reason.contains("budget") && reason.contains("429")),
            "{outcome:?}"
        );
    }
    assert_eq!(assert_no_loss(&outcomes, 3), (0, 0, 0, 3));
}

#[test]
fn http_413_splits_the_batch_until_it_fits_and_rejects_a_single_huge_document() {
    let mut docs = docs(7);
    docs[4].doc.insert("notes".into(), json!("x".repeat(20_000)));
    // The "cluster" takes bodies up to 8 KB (http.max_content_length).
    let server =
        Scripted::start(|_, r| if r.body.len() > 8_000 { Reply::Json(413, String::new()) } else { bulk_ok(r) });
    let mut es = backend(&server);
    let outcomes = es.index_batch(&docs).unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 4 {
            assert!(matches!(outcome, Outcome::Rejected { reason } if reason.contains("413")), "{outcome:?}");
        } else {
            assert_eq!(outcome, &Outcome::Indexed, "doc {i}");
        }
    }
    assert_eq!(assert_no_loss(&outcomes, 7), (6, 0, 1, 0));
    // Every small document was accepted exactly once; the large one was tried alone.
    let accepted: Vec<String> =
        server.requests().iter().filter(|r| r.body.len() <= 8_000).flat_map(|r| r.bulk_ids()).collect();
    let mut expected: Vec<String> =
        docs.iter().enumerate().filter(|(i, _)| *i != 4).map(|(_, d)| d.id.to_hex()).collect();
    let mut sorted = accepted.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    assert!(server.requests().iter().any(|r| r.bulk_ids() == [docs[4].id.to_hex()]));
}

#[test]
fn http_503_retries_the_whole_request() {
    let server = Scripted::start(|n, r| {
        if n == 0 {
            Reply::Json(
                503,
                error_body(
                    503,
                    "unavailable_shards_exception",
                    "[tix-bookings-2024.02.05][0] primary shard is not active",
                ),
            )
        } else {
            bulk_ok(r)
        }
    });
    let mut es = backend(&server);
    let outcomes = es.index_batch(&docs(6)).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body, "the same request again");
    assert_eq!(assert_no_loss(&outcomes, 6), (6, 0, 0, 0));
}

#[test]
fn a_dropped_connection_retries_the_whole_request() {
    let server = Scripted::start(|n, r| if n == 0 { Reply::Drop } else { bulk_ok(r) });
    let mut es = backend(&server);
    let outcomes = es.index_batch(&docs(6)).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(assert_no_loss(&outcomes, 6), (6, 0, 0, 0));
}

#[test]
fn a_slow_server_times_out_and_the_request_is_retried() {
    let server = Scripted::start(|n, r| {
        if n == 0 {
            Reply::Delay(Duration::from_millis(1_500), Box::new(bulk_ok(r)))
        } else {
            bulk_ok(r)
        }
    });
    let mut config = test_config(&server.url());
    config.request_timeout = Duration::from_millis(300);
    let mut es = ElasticsearchBackend::connect(config).unwrap();
    let outcomes = es.index_batch(&docs(3)).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(assert_no_loss(&outcomes, 3), (3, 0, 0, 0));
}

#[test]
fn malformed_and_misaligned_responses_are_retried_not_misclassified() {
    let server = Scripted::start(|n, r| match n {
        // Cut off mid-body.
        0 => Reply::Json(200, r#"{"took":3,"errors":false,"items":[{"create":{"_index":"tix-"#.into()),
        // One item short: positions cannot be trusted.
        1 => {
            let Reply::Json(_, body) = bulk_ok(r) else { unreachable!() };
            let mut value: Value = serde_json::from_str(&body).unwrap();
            value["items"].as_array_mut().unwrap().pop();
            Reply::Json(200, value.to_string())
        }
        // Items for other ids (another request's answer).
        2 => bulk_reply(r, |_, _| 201).rewrite_ids(),
        _ => bulk_ok(r),
    });
    let mut es = backend(&server);
    let outcomes = es.index_batch(&docs(4)).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "three bad answers, then a good one");
    assert!(requests.windows(2).all(|w| w[0].body == w[1].body));
    assert_eq!(assert_no_loss(&outcomes, 4), (4, 0, 0, 0));
}

#[test]
fn http_401_is_an_auth_error_not_rejected_data_and_leaks_no_secret() {
    let server = Scripted::start(|_, _| {
        Reply::Json(
            401,
            error_body(
                401,
                "security_exception",
                "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
            ),
        )
    });
    let mut es = backend(&server);
    let err = es.index_batch(&docs(3)).unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("401") && text.contains("unable to authenticate"), "{text}");
    assert!(!text.contains(API_KEY_SECRET) && !text.contains(&base64(API_KEY_SECRET.as_bytes())), "{text}");
    assert_eq!(server.requests().len(), 1, "credentials are not retried");

    let err = es.count(&SearchRequest::default()).unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
}

#[test]
fn item_level_403_stops_the_run_as_an_auth_error() {
    let server = Scripted::start(|_, r| {
        let Reply::Json(_, body) = bulk_ok(r) else { unreachable!() };
        let body = body.replacen(
            "\"status\":201",
            r#""status":403,"error":{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized for API key id [tix-ingest]"}"#,
            1,
        );
        Reply::Json(200, body)
    });
    let mut es = backend(&server);
    let err = es.index_batch(&docs(2)).unwrap_err();
    assert!(matches!(&err, Error::Auth(m) if m.contains("unauthorized")), "{err:?}");
}

/// What an operator must read when a write block stops the run: a block, not credentials,
/// and how to lift it.
fn assert_blocked_error(err: &Error, block: &str) {
    let Error::Blocked(message) = err else { panic!("a write block must be Error::Blocked, got {err:?}") };
    assert!(message.contains(block), "{message}");
    let text = err.to_string();
    assert!(text.contains("write-blocked") && !text.contains("credentials"), "{text}");
    for advice in ["watermark", "index.blocks.write", "read_only_allow_delete"] {
        assert!(text.contains(advice), "the message names {advice}: {text}");
    }
}

#[test]
fn an_index_write_block_on_items_stops_the_run_as_blocked_and_rejects_nothing() {
    let docs = docs(4);
    // Documents of two days; the older day's index has `index.blocks.write` (as ILM's
    // readonly action leaves it).
    let blocked: Vec<String> = vec![docs[1].id.to_hex(), docs[2].id.to_hex()];
    let server = Scripted::start(move |_, r| bulk_reply_with_blocks(r, &blocked, 403));
    let mut es = backend(&server);
    let err = es.index_batch(&docs).unwrap_err();
    assert_blocked_error(&err, "FORBIDDEN/8/index write");
    assert_eq!(server.requests().len(), 1, "a block an operator set is not retried");
}

#[test]
fn a_cluster_read_only_block_on_the_whole_request_stops_the_run_as_blocked() {
    let reason = "blocked by: [FORBIDDEN/6/cluster read-only (api)];";
    let server = Scripted::start(move |_, _| Reply::Json(403, error_body(403, "cluster_block_exception", reason)));
    let mut es = backend(&server);
    let err = es.index_batch(&docs(3)).unwrap_err();
    assert_blocked_error(&err, "FORBIDDEN/6/cluster read-only");
    assert_eq!(server.requests().len(), 1);
    // Setup calls are told apart the same way.
    let err = es.ensure_ready().unwrap_err();
    assert_blocked_error(&err, "FORBIDDEN/6/cluster read-only");
}

#[test]
fn the_flood_stage_block_is_retried_until_lifted_or_fails_the_items_never_rejects_them() {
    // Lifted after two answers (the cluster frees disk and removes the block itself).
    let docs = docs(3);
    let ids: Vec<String> = docs.iter().map(|d| d.id.to_hex()).collect();
    let server = Scripted::start(move |n, r| if n < 2 { bulk_reply_with_blocks(r, &ids, 429) } else { bulk_ok(r) });
    let mut es = backend(&server);
    let outcomes = es.index_batch(&docs).unwrap();
    assert_eq!(assert_no_loss(&outcomes, 3), (3, 0, 0, 0));
    assert_eq!(server.requests().len(), 3);

    // Never lifted: the blocked items fail after the retries (their source is retried
    // later), the others are indexed.
    let blocked = vec![docs[0].id.to_hex(), docs[2].id.to_hex()];
    let server = Scripted::start(move |_, r| bulk_reply_with_blocks(r, &blocked, 429));
    let mut es = backend(&server);
    let outcomes = es.index_batch(&docs).unwrap();
    assert_eq!(outcomes[1], Outcome::Indexed);
    for outcome in [&outcomes[0], &outcomes[2]] {
        assert!(
            matches!(outcome, Outcome::Failed { reason } if reason.contains("flood-stage watermark") && reason.contains("gave up")),
            "{outcome:?}"
        );
    }
    assert_eq!(assert_no_loss(&outcomes, 3), (1, 0, 0, 2));
    assert_eq!(server.requests().len(), 4, "the first try and three retries");
}

/// The first `_bulk` answer is lost mid-body after the cluster stored everything, so the
/// client must retry without knowing what happened.
#[test]
fn an_answer_lost_after_the_cluster_indexed_makes_the_retry_duplicates_not_doubles() {
    let (server, ledger) = remembering_cluster(|n, reply| match reply {
        Reply::Json(status, body) if n == 0 => Reply::Cut { status, sent: body.len() / 2, body },
        reply => reply,
    });
    let mut es = backend(&server);
    let docs = docs(6);
    let outcomes = es.index_batch(&docs).unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the cut answer, then one retry");
    assert_eq!(requests[0].body, requests[1].body, "the whole request again: the cut answer proves nothing");
    assert_eq!(assert_no_loss(&outcomes, 6), (0, 6, 0, 0), "every retried document is a duplicate: {outcomes:?}");
    let ledger = ledger.lock().unwrap();
    ledger.assert_holds_each_once(&ids(&docs));
    assert_eq!(ledger.stored_after_each, [6, 6], "the retry added nothing");
}

// ---------------------------------------------------------------------------------------
// A faulty network between the client and the cluster (testkit's fault proxy)
// ---------------------------------------------------------------------------------------

/// A client for the cluster behind `proxy`.
fn backend_through(proxy: &FaultProxy, request_timeout: Duration) -> ElasticsearchBackend {
    let mut config = test_config(&proxy.url());
    config.request_timeout = request_timeout;
    ElasticsearchBackend::connect(config).expect("connect")
}

#[test]
fn latency_below_the_timeout_costs_time_but_no_retry() {
    let server = Scripted::start(|_, r| bulk_ok(r));
    let latency = Duration::from_millis(150);
    let proxy = FaultProxy::start_with(&server.url(), move |_| Fault::Latency(latency));
    let mut es = backend_through(&proxy, Duration::from_secs(2));
    let docs = docs(5);
    let started = Instant::now();
    let outcomes = es.index_batch(&docs).unwrap();
    assert!(started.elapsed() >= latency, "the answer was delayed: {:?}", started.elapsed());
    assert_eq!(assert_no_loss(&outcomes, 5), (5, 0, 0, 0));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "nothing was retried");
    assert_bulk_body(&requests[0], &docs.iter().collect::<Vec<_>>());
}

#[test]
fn a_stalled_answer_times_out_and_the_retry_finds_each_document_stored_once() {
    // The first connection forwards the request, then 20 bytes of the answer (part of
    // the status line), then nothing; later connections pass.
    let (server, ledger) = remembering_cluster(|_, reply| reply);
    let proxy = FaultProxy::start(&server.url(), vec![Fault::StallAfter(20)]);
    let mut es = backend_through(&proxy, Duration::from_millis(400));
    let docs = docs(5);
    let outcomes = es.index_batch(&docs).unwrap();

    assert_eq!(proxy.connections(), 2, "the stalled connection, then a fresh one for the retry");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
    // The cluster stored the documents before its answer stalled: the retry finds them.
    assert_eq!(assert_no_loss(&outcomes, 5), (0, 5, 0, 0), "{outcomes:?}");
    ledger.lock().unwrap().assert_holds_each_once(&ids(&docs));
}

#[test]
fn a_bandwidth_limited_answer_still_completes() {
    let server = Scripted::start(|_, r| bulk_ok(r));
    let rate = 20_000;
    let proxy = FaultProxy::start_with(&server.url(), move |_| Fault::Bandwidth(rate));
    let mut es = backend_through(&proxy, Duration::from_secs(5));
    let docs = sample_docs();
    let started = Instant::now();
    let outcomes = es.index_batch(&docs).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(assert_no_loss(&outcomes, docs.len()), (docs.len(), 0, 0, 0));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "nothing was retried");
    // The answer crossed the throttled link at about `rate` bytes per second.
    let Reply::Json(_, answer) = bulk_ok(&requests[0]) else { unreachable!() };
    let throttled = Duration::from_secs_f64(answer.len() as f64 / rate as f64);
    assert!(throttled >= Duration::from_millis(200), "an answer of {} bytes is a real test", answer.len());
    assert!(elapsed >= throttled.mul_f64(0.9), "{elapsed:?} for {} bytes at {rate} B/s", answer.len());
}

#[test]
fn large_inputs_are_cut_into_bounded_requests_with_a_few_in_flight() {
    let server = Scripted::start(|_, r| bulk_ok(r));
    let mut config = test_config(&server.url());
    config.batch_docs = 10;
    config.max_in_flight = 2;
    let mut es = ElasticsearchBackend::connect(config).unwrap();
    let docs = sample_docs();
    let outcomes = es.index_batch(&docs).unwrap();
    assert_eq!(assert_no_loss(&outcomes, docs.len()), (docs.len(), 0, 0, 0));
    let requests = server.requests();
    assert_eq!(requests.len(), docs.len().div_ceil(10));
    assert!(requests.iter().all(|r| r.bulk_ids().len() <= 10));
    let mut sent: Vec<String> = requests.iter().flat_map(|r| r.bulk_ids()).collect();
    sent.sort();
    let mut expected: Vec<String> = docs.iter().map(|d| d.id.to_hex()).collect();
    expected.sort();
    assert_eq!(sent, expected, "each document sent exactly once");
}

#[test]
fn an_unreachable_cluster_fails_the_items_within_the_budget() {
    // A port nothing listens on: connection refused every time.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = test_config(&format!("http://127.0.0.1:{port}"));
    config.retry.max_retries = 2;
    let mut es = ElasticsearchBackend::connect(config).unwrap();
    let outcomes = es.index_batch(&docs(2)).unwrap();
    for outcome in &outcomes {
        assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome:?}");
    }
    let err = es.ensure_ready().unwrap_err();
    assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

/// A healthy cluster behind TLS: setup calls are acknowledged and every document is created.
fn https_cluster(identity: &rcgen::CertifiedKey) -> Scripted {
    Scripted::start_tls(identity, |_, r| match (r.method.as_str(), r.path()) {
        ("PUT", "/_index_template/tix-bookings") => Reply::Json(200, r#"{"acknowledged":true}"#.into()),
        ("PUT", "/tix-bookings-sources") => Reply::Json(
            200,
            r#"{"acknowledged":true,"shards_acknowledged":true,"index":"tix-bookings-sources"}"#.into(),
        ),
        ("POST", "/_bulk") => bulk_ok(r),
        _ => Reply::Json(404, "{}".into()),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Nothing the client sent can be read off the wire: every connection opened with a TLS
/// handshake record, and no request line, credential or document id appears in clear.
fn assert_nothing_readable_on_the_wire(server: &Scripted, docs: &[IndexDoc]) {
    let wire = server.wire();
    assert!(!wire.is_empty(), "the client connected");
    let mut secrets: Vec<Vec<u8>> = vec![
        b"_bulk".to_vec(),
        b"_index_template".to_vec(),
        API_KEY_SECRET.as_bytes().to_vec(),
        base64(format!("{API_KEY_ID}:{API_KEY_SECRET}").as_bytes()).into_bytes(),
    ];
    secrets.extend(docs.iter().map(|d| d.id.to_hex().into_bytes()));
    for bytes in &wire {
        assert_eq!(bytes.first(), Some(&0x16), "a connection starts with a TLS handshake record");
        for secret in &secrets {
            assert!(!contains(bytes, secret), "{:?} readable on the wire", String::from_utf8_lossy(secret));
        }
    }
}

#[test]
fn tls_with_an_untrusted_certificate_fails_closed_and_sends_nothing() {
    let (identity, _pem) = self_signed(&["127.0.0.1", "localhost"]);
    let server = https_cluster(&identity);
    let mut es = ElasticsearchBackend::connect(test_config(&server.url())).unwrap();

    let err = es.ensure_ready().unwrap_err();
    assert!(matches!(&err, Error::Certificate(m) if m.contains("invalid peer certificate")), "{err}");
    let docs = docs(4);
    let outcomes = es.index_batch(&docs).unwrap();
    for outcome in &outcomes {
        assert!(matches!(outcome, Outcome::Failed { reason } if reason.contains("certificate")), "{outcome:?}");
    }
    assert_eq!(assert_no_loss(&outcomes, 4), (0, 0, 0, 4));

    assert!(server.requests().is_empty(), "no request got past a handshake");
    assert_nothing_readable_on_the_wire(&server, &docs);
    let errors = server.handshake_errors_when(2);
    assert!(errors.iter().all(|e| e.contains("alert")), "the client aborted: {errors:?}");
    assert_eq!(errors.len(), 2, "one handshake for the setup, one for the bulk: a certificate is not retried");
    assert!(err.to_string().contains("TIX_ES_CA_CERT"), "the error says what to do: {err}");
}

#[test]
fn tls_with_the_private_ca_configured_verifies_and_indexes() {
    let (identity, pem) = self_signed(&["127.0.0.1", "localhost"]);
    let server = https_cluster(&identity);
    let mut config = test_config(&server.url());
    config.ca_cert = Some(pem.path().to_path_buf());
    let mut es = ElasticsearchBackend::connect(config.clone()).unwrap();

    es.ensure_ready().unwrap();
    let docs = docs(4);
    let outcomes = es.index_batch(&docs).unwrap();
    assert_eq!(assert_no_loss(&outcomes, 4), (4, 0, 0, 0));
    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path()).collect();
    // `GET /` first: the engine decides the template (a 404 there is an unknown engine).
    assert_eq!(paths, ["/", "/_index_template/tix-bookings", "/tix-bookings-sources", "/_bulk"]);
    assert_bulk_headers(&requests[3]);
    assert_bulk_body(&requests[3], &docs.iter().collect::<Vec<_>>());
    assert_nothing_readable_on_the_wire(&server, &docs);
    assert!(server.handshake_errors().is_empty(), "{:?}", server.handshake_errors());

    // The certificate names localhost too.
    config.url = server.url().replace("127.0.0.1", "localhost");
    ElasticsearchBackend::connect(config).unwrap().ensure_ready().unwrap();
}

#[test]
fn tls_trusting_another_ca_or_a_certificate_for_another_host_still_fails() {
    let (identity, _) = self_signed(&["127.0.0.1", "localhost"]);
    let (_, other_pem) = self_signed(&["127.0.0.1", "localhost"]);
    let err = setup_error_trusting(&identity, other_pem.path());
    assert!(matches!(&err, Error::Certificate(m) if m.contains("certificate")), "{err}");

    // Trusted, but issued for another host: the name is still checked.
    let (elsewhere, elsewhere_pem) = self_signed(&["es.example.com"]);
    let err = setup_error_trusting(&elsewhere, elsewhere_pem.path());
    assert!(matches!(&err, Error::Certificate(m) if m.contains("certificate not valid for name")), "{err}");
}

/// The error of `ensure_ready` against an HTTPS cluster serving `identity`, with the CA
/// file `ca_pem` trusted; no request may get through the handshake.
fn setup_error_trusting(identity: &rcgen::CertifiedKey, ca_pem: &Path) -> Error {
    let server = https_cluster(identity);
    let mut config = test_config(&server.url());
    config.ca_cert = Some(ca_pem.to_path_buf());
    let err = ElasticsearchBackend::connect(config).unwrap().ensure_ready().unwrap_err();
    assert!(server.requests().is_empty(), "nothing got past the handshake");
    err
}

// ---------------------------------------------------------------------------------------
// Setup, checkpoints, flush
// ---------------------------------------------------------------------------------------

#[test]
fn ensure_ready_installs_the_template_and_the_sources_index_idempotently() {
    let server = Scripted::start(|_, r| {
        match (r.method.as_str(), r.path()) {
        ("PUT", "/_index_template/tix-bookings") => Reply::Json(200, r#"{"acknowledged":true}"#.into()),
        ("PUT", "/tix-bookings-sources") => Reply::Json(
            400,
            json!({"error": {"root_cause": [{"type": "resource_already_exists_exception", "reason": "index [tix-bookings-sources/abc] already exists", "index_uuid": "abc", "index": "tix-bookings-sources"}],
                   "type": "resource_already_exists_exception", "reason": "index [tix-bookings-sources/abc] already exists", "index_uuid": "abc", "index": "tix-bookings-sources"}, "status": 400})
            .to_string(),
        ),
        _ => Reply::Json(404, "{}".into()),
    }
    });
    let mut es = backend(&server);
    es.ensure_ready().unwrap();
    es.ensure_ready().unwrap();
    let requests = server.requests();
    // Each run: GET / (answered 404 here: an unknown engine), the template, the sources index.
    assert_eq!(requests.len(), 6);
    assert_eq!(requests[0].target, "/");
    assert_eq!(requests[1].target, "/_index_template/tix-bookings", "no stray query string");
    assert_eq!(requests[1].json(), mapping::index_template("tix-bookings", true));
    assert_eq!(requests[1].header("content-type"), Some("application/json"));
    assert_eq!(requests[2].json(), mapping::sources_index_body());
}

#[test]
fn ensure_ready_falls_back_on_clusters_older_than_8_14() {
    let server = Scripted::start(|_, r| {
        if r.path() == "/_index_template/tix-bookings" && r.json().to_string().contains("ignore_dynamic_beyond_limit") {
            let reason = "unknown setting [index.mapping.total_fields.ignore_dynamic_beyond_limit] please check that any required plugins are installed, or check the breaking changes documentation for removed settings";
            Reply::Json(400, error_body(400, "illegal_argument_exception", reason))
        } else {
            Reply::Json(200, r#"{"acknowledged":true}"#.into())
        }
    });
    let mut es = backend(&server);
    es.ensure_ready().unwrap();
    // GET / names no version here (an unknown engine), so the newest template is tried
    // first; engines known to be older never get the setting (tests/es_compat.rs).
    let requests = server.requests();
    assert_eq!(requests[1].json(), mapping::index_template("tix-bookings", true));
    assert_eq!(requests[2].json(), mapping::index_template("tix-bookings", false));
}

#[test]
fn checkpoints_are_written_at_flush_without_forcing_a_refresh() {
    let (server, record) = checkpoint_server();
    let mut es = backend(&server);
    es.record_source(&record).unwrap();
    assert_eq!(es.source_record(&record.key).unwrap(), Some(record.clone()), "pending records are visible");
    assert!(server.requests().is_empty(), "nothing is written before flush");
    es.flush().unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the checkpoint write alone: no _refresh per commit");
    let lines = requests[0].bulk_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].0, json!({"index": {"_index": "tix-bookings-sources", "_id": record.key}}));
    assert_eq!(lines[0].1, serde_json::to_value(&record).unwrap());

    // A checkpoint is read back with GET _doc, which is real-time: no refresh needed.
    assert_eq!(es.source_record(&record.key).unwrap(), Some(record.clone()), "read back from the cluster");
    assert_eq!(es.source_record("ffffffffffffffffffffffffffffffff").unwrap(), None);
    assert!(server.requests().iter().all(|r| !r.path().ends_with("/_refresh")));
}

#[test]
fn a_refresh_after_each_flush_is_sent_only_when_asked_for() {
    let (server, record) = checkpoint_server();
    let mut config = test_config(&server.url());
    config.refresh_on_flush = true;
    let mut es = ElasticsearchBackend::connect(config).unwrap();
    es.record_source(&record).unwrap();
    es.flush().unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].method, "POST");
    assert_eq!(requests[1].path(), "/tix-bookings-*/_refresh");
}

/// A cluster holding one checkpoint record, which `_bulk` and `_refresh` also answer.
fn checkpoint_server() -> (Scripted, SourceRecord) {
    let record = SourceRecord {
        source: "s3://bookings/2024/02/05/day.ndjson.gz?versionId=3HL4kqtJlcpXroDTDmJ".into(),
        ..indexer::conformance::sample_source_record()
    };
    let stored = serde_json::to_value(&record).unwrap();
    let server = Scripted::start(move |_, r| match (r.method.as_str(), r.path()) {
        ("POST", "/_bulk") => bulk_ok(r),
        ("POST", "/tix-bookings-*/_refresh") => {
            Reply::Json(200, r#"{"_shards":{"total":4,"successful":2,"failed":0}}"#.into())
        }
        ("GET", "/tix-bookings-sources/_doc/0123456789abcdef0123456789abcdef") => Reply::Json(
            200,
            json!({"_index": "tix-bookings-sources", "_id": "0123456789abcdef0123456789abcdef", "_version": 1,
                   "_seq_no": 0, "_primary_term": 1, "found": true, "_source": stored})
            .to_string(),
        ),
        ("GET", path) if path.starts_with("/tix-bookings-sources/_doc/") => Reply::Json(
            404,
            json!({"_index": "tix-bookings-sources", "_id": path.rsplit('/').next(), "found": false}).to_string(),
        ),
        _ => Reply::Json(400, "{}".into()),
    });
    (server, record)
}

// ---------------------------------------------------------------------------------------
// Query translation: golden request bodies and recorded responses
// ---------------------------------------------------------------------------------------

/// The queries of the conformance suite's query-syntax table, whose request bodies the
/// goldens pin (the live tier runs the table itself against a cluster).
fn conformance_queries() -> Vec<&'static str> {
    indexer::conformance::query_syntax_cases().into_iter().map(|(query, _)| query).collect()
}

fn aggregation_request() -> SearchRequest {
    let aggs = ["terms:venue", "terms:payment.method", "terms:client.app", "date_histogram:ts:1h", "stats:amount"]
        .iter()
        .map(|spec| AggSpec::parse(spec).unwrap())
        .collect();
    SearchRequest { limit: 0, aggs, ..SearchRequest::default() }
}

fn follow_query_request() -> SearchRequest {
    SearchRequest {
        query: "venue:\"Olympic Hall\"".into(),
        limit: 0,
        aggs: vec![AggSpec::parse("terms:type:20").unwrap()],
        ..SearchRequest::default()
    }
}

fn sorted_request() -> SearchRequest {
    SearchRequest { limit: 5, sort: Some(SortSpec::parse("-amount")), ..SearchRequest::default() }
}

/// Every golden file: name and the bodies the translation produces now.
fn golden_files() -> Vec<(&'static str, Value)> {
    let docs = sample_docs();
    let count_bodies = |queries: &[&str]| -> Value {
        let map: Map<String, Value> = queries
            .iter()
            .map(|q| {
                (q.to_string(), query::count_body(&SearchRequest { query: q.to_string(), ..SearchRequest::default() }))
            })
            .collect();
        Value::Object(map)
    };
    let range = SearchRequest {
        since_ms: Some(docs[4].ts_millis),
        until_ms: Some(docs[20].ts_millis),
        ..SearchRequest::default()
    };
    let range_and_query = SearchRequest { query: "service:payment".into(), ..range.clone() };
    vec![
        ("query_syntax_count_bodies.json", count_bodies(&conformance_queries())),
        ("malformed_queries_count_bodies.json", count_bodies(&["amount:[1 TO", "venue:\"unclosed"])),
        (
            "time_range_count_bodies.json",
            json!({"since_until": query::count_body(&range), "since_until_and_query": query::count_body(&range_and_query)}),
        ),
        (
            "hits_sorted_search_bodies.json",
            json!({
                "amount_desc_limit_5": query::search_body(&sorted_request()),
                "newest_first_limit_3": query::search_body(&SearchRequest { limit: 3, ..SearchRequest::default() }),
                "oldest_first_limit_1": query::search_body(&SearchRequest { limit: 1, sort: Some(SortSpec::parse("ts")), ..SearchRequest::default() }),
            }),
        ),
        ("aggregations_search_body.json", query::search_body(&aggregation_request())),
        ("aggregations_follow_query_search_body.json", query::search_body(&follow_query_request())),
        ("index_template.json", mapping::index_template("tix-bookings", true)),
    ]
}

#[test]
fn conformance_queries_translate_to_the_golden_request_bodies() {
    let update = std::env::var_os("TIX_UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (name, actual) in golden_files() {
        if update {
            let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
            std::fs::write(golden_dir().join(name), text).unwrap();
            continue;
        }
        if read_golden(name) != actual {
            mismatches.push(format!("{name}:\n{}", serde_json::to_string_pretty(&actual).unwrap()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "request bodies differ from tests/golden (rerun with TIX_UPDATE_GOLDEN=1 if the change is deliberate):\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn golden_query_bodies_use_query_string_with_the_tantivy_defaults() {
    let bodies = read_golden("query_syntax_count_bodies.json");
    for query in conformance_queries() {
        let filter = &bodies[query]["query"]["bool"]["filter"][0]["query_string"];
        assert_eq!(filter["query"], query);
        assert_eq!(filter["default_field"], "message");
        assert_eq!(filter["default_operator"], "OR");
    }
    let search = read_golden("aggregations_search_body.json");
    assert_eq!(search["size"], 0);
    assert_eq!(search["track_total_hits"], true);
    assert_eq!(search["aggs"]["date_histogram:ts:1h"]["date_histogram"]["field"], "ts", "ts works through the alias");
}

/// Aggregations compared by meaning: the same buckets (as a set, since ties may come in
/// another order), counts and statistics; keys compared as numbers or instants, since
/// tantivy writes `1707091200000.0` and `2024-02-05T00:00:00Z` where Elasticsearch writes
/// `1707091200000` and `2024-02-05T00:00:00.000Z`.
fn normalized_aggregations(aggregations: &Map<String, Value>) -> BTreeMap<String, Value> {
    let key_of = |bucket: &Value| -> String {
        if let Some(text) = bucket.get("key_as_string").and_then(Value::as_str) {
            return chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.timestamp_millis().to_string())
                .unwrap_or(text.into());
        }
        match &bucket["key"] {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN).to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    aggregations
        .iter()
        .map(|(spec, result)| {
            let normalized = match result.get("buckets").and_then(Value::as_array) {
                Some(buckets) => {
                    let set: BTreeMap<String, u64> =
                        buckets.iter().map(|b| (key_of(b), b["doc_count"].as_u64().unwrap_or(u64::MAX))).collect();
                    json!({
                        "buckets": set,
                        "sum_other_doc_count": result.get("sum_other_doc_count"),
                        "doc_count_error_upper_bound": result.get("doc_count_error_upper_bound"),
                    })
                }
                None => {
                    let stats: BTreeMap<String, f64> = result
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(f64::NAN)))
                        .collect();
                    json!(stats)
                }
            };
            (spec.clone(), normalized)
        })
        .collect()
}

/// Serves a recorded response to the real backend and checks it asked for the golden
/// body and answers what tantivy answers.
fn recorded_search_matches_tantivy(request: SearchRequest, golden_body: Value, response_file: &'static str) {
    let recorded = read_golden(response_file).to_string();
    let server = Scripted::start(move |_, _| Reply::Json(200, recorded.clone()));
    let es = backend(&server);
    let from_es = es.search(&request).unwrap();
    let sent = &server.requests()[0];
    assert_eq!((sent.method.as_str(), sent.path()), ("POST", "/tix-bookings-2*/_search"));
    assert_eq!(sent.json(), golden_body);

    let from_tantivy = tantivy_answer(&request);
    assert_eq!(from_es.total, from_tantivy.total, "total");
    assert_eq!(from_es.hits, from_tantivy.hits, "hits: same ids, same events (ts back in place)");
    assert_eq!(
        from_es.aggregations.keys().collect::<Vec<_>>().len(),
        from_tantivy.aggregations.len(),
        "one result per --agg spec"
    );
    assert_eq!(normalized_aggregations(&from_es.aggregations), normalized_aggregations(&from_tantivy.aggregations));
    // The JSON output shape (`--format json`) has the same keys on both backends.
    let es_json = serde_json::to_value(&from_es).unwrap();
    let tantivy_json = serde_json::to_value(&from_tantivy).unwrap();
    assert_eq!(
        es_json.as_object().unwrap().keys().collect::<Vec<_>>(),
        tantivy_json.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    for (spec, result) in &from_es.aggregations {
        let mut es_keys: Vec<&String> = result.as_object().unwrap().keys().collect();
        let mut tantivy_keys: Vec<&String> = from_tantivy.aggregations[spec].as_object().unwrap().keys().collect();
        es_keys.sort();
        tantivy_keys.sort();
        assert_eq!(es_keys, tantivy_keys, "{spec}: same fields");
    }
}

#[test]
fn recorded_aggregation_response_parses_like_tantivy() {
    recorded_search_matches_tantivy(
        aggregation_request(),
        read_golden("aggregations_search_body.json"),
        "response_aggregations.json",
    );
}

/// The recorded hits carry the ids of `conformance::sample_docs`: if the way those ids
/// are derived changes, update `_id` in `golden/response_hits_sorted.json`.
#[test]
fn recorded_sorted_hits_response_parses_like_tantivy() {
    let golden = read_golden("hits_sorted_search_bodies.json")["amount_desc_limit_5"].clone();
    recorded_search_matches_tantivy(sorted_request(), golden, "response_hits_sorted.json");
}

#[test]
fn recorded_filtered_aggregation_response_parses_like_tantivy() {
    recorded_search_matches_tantivy(
        follow_query_request(),
        read_golden("aggregations_follow_query_search_body.json"),
        "response_aggregations_follow_query.json",
    );
}

#[test]
fn count_goes_to_the_count_api_and_query_errors_carry_the_reason() {
    let server = Scripted::start(|_, r| {
        if r.json().to_string().contains("amount:[1 TO") {
            Reply::Json(400, json!({"error": {
                "root_cause": [{"type": "query_shard_exception", "reason": "Failed to parse query [amount:[1 TO]", "index_uuid": "x", "index": "tix-bookings-2024.02.05"}],
                "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query", "grouped": true,
                "failed_shards": [{"shard": 0, "index": "tix-bookings-2024.02.05", "node": "n1", "reason": {
                    "type": "query_shard_exception", "reason": "Failed to parse query [amount:[1 TO]",
                    "caused_by": {"type": "parse_exception", "reason": "Cannot parse 'amount:[1 TO': Encountered \"<EOF>\" at line 1, column 11."}}}]},
                "status": 400}).to_string())
        } else {
            Reply::Json(200, r#"{"count":16,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0}}"#.into())
        }
    });
    let es = backend(&server);
    let request = SearchRequest { query: "venue:\"Olympic Hall\"".into(), ..SearchRequest::default() };
    assert_eq!(es.count(&request).unwrap(), 16);
    let sent = &server.requests()[0];
    assert_eq!((sent.method.as_str(), sent.path()), ("POST", "/tix-bookings-2*/_count"));
    assert_eq!(sent.json(), read_golden("query_syntax_count_bodies.json")["venue:\"Olympic Hall\""]);

    let err = es.count(&SearchRequest { query: "amount:[1 TO".into(), ..SearchRequest::default() }).unwrap_err();
    assert!(matches!(&err, Error::Query { message, .. } if message.contains("Failed to parse query")), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// Benchmark
// ---------------------------------------------------------------------------------------

/// An "accept everything" answer built without a JSON library, so the server is not the
/// bottleneck being measured.
fn fast_bulk_ok(request: &Request) -> Reply {
    let mut out = String::with_capacity(request.body.len() / 8);
    out.push_str(r#"{"errors":false,"items":["#);
    let mut first = true;
    for line in request.body.split(|&b| b == b'\n').step_by(2) {
        let Some(at) = line.windows(7).position(|w| w == b"\"_id\":\"") else {
            continue;
        };
        let rest = &line[at + 7..];
        let end = rest.iter().position(|&b| b == b'"').unwrap_or(0);
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(r#"{"create":{"_id":""#);
        out.push_str(std::str::from_utf8(&rest[..end]).unwrap());
        out.push_str(r#"","status":201}}"#);
    }
    out.push_str("]}");
    Reply::Json(200, out)
}

#[test]
#[ignore = "benchmark: cargo test --release -p indexer --test es_wire -- --ignored --nocapture bench"]
fn bench_bulk_encode_vs_send() {
    let base = sample_docs();
    let n = 200_000;
    let docs: Vec<IndexDoc> = (0..n)
        .map(|i| {
            let mut doc = base[i % base.len()].clone();
            doc.id = indexer::doc_id::DocId::from_u128(i as u128 * 7_919);
            doc.ts_millis += (i / base.len()) as i64 * 60_000;
            doc
        })
        .collect();
    let config = EsConfig::new("http://127.0.0.1:9");
    let encoder = indexer::elasticsearch::bulk::BulkEncoder {
        prefix: config.index_prefix.clone(),
        max_bytes: config.batch_bytes,
        max_docs: config.batch_docs,
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    const ROUNDS: usize = 5;

    let mut bytes = 0usize;
    let mut encode_secs = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut from = 0;
        bytes = 0;
        while from < docs.len() {
            let (batch, next) = encoder.encode_next(&docs, from);
            bytes += batch.body.len();
            from = next;
        }
        encode_secs.push(started.elapsed().as_secs_f64());
    }

    let server = Scripted::start_with(false, |_, r| fast_bulk_ok(r));
    let mut es = ElasticsearchBackend::connect(EsConfig::new(server.url())).unwrap();
    let mut send_secs = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let outcomes = es.index_batch(&docs).unwrap();
        send_secs.push(started.elapsed().as_secs_f64());
        assert_eq!(assert_no_loss(&outcomes, n), (n, 0, 0, 0));
    }
    let requests = server.requests();
    let received: usize = requests.iter().map(|r| r.body_len).sum();
    assert_eq!(received, bytes * ROUNDS, "the server received every encoded byte once");

    let mb = bytes as f64 / 1e6;
    let (encode_rate, send_rate) = (mb / median(encode_secs), mb / median(send_secs));
    println!(
        "bulk benchmark: {n} docs, {mb:.1} MB of NDJSON in {} requests per round, median of {ROUNDS} rounds\n  \
         encode only:                        {encode_rate:.0} MB/s\n  \
         index_batch (encode+send+classify): {send_rate:.0} MB/s ({:.0}% of encode)",
        requests.len() / ROUNDS,
        100.0 * send_rate / encode_rate
    );
}
