//! Deadline-aware writes (test tier 4): with a deadline set ([`Backend::set_deadline`],
//! the Lambda's remaining time less its margin), no request, retry or backoff of the
//! Elasticsearch backend lasts past it, whatever the retry budget says. What cannot be
//! written in time is answered `Failed` (its object is redelivered), never rejected.

use std::time::{Duration, Instant};

use indexer::conformance::sample_docs;
use indexer::elasticsearch::config::RetryPolicy;
use indexer::{Backend, ElasticsearchBackend, EsConfig, Outcome, Store};
use testkit::es_server::{bulk_reply, error_body, Reply, Scripted};

/// A client whose own budget (two minutes, slow backoff) would outlive any deadline.
fn patient_backend(url: &str) -> ElasticsearchBackend {
    let mut config = EsConfig::new(url);
    config.request_timeout = Duration::from_secs(30);
    config.retry = RetryPolicy {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
        max_retries: 1_000,
        budget: Duration::from_secs(120),
    };
    ElasticsearchBackend::connect(config).expect("connect")
}

fn assert_all_failed_naming_the_deadline(outcomes: &[Outcome], sent: usize) {
    assert_eq!(outcomes.len(), sent, "one outcome per document");
    for outcome in outcomes {
        match outcome {
            Outcome::Failed { reason } => assert!(reason.contains("deadline"), "{reason}"),
            other => panic!("a document that could not be written in time must fail, not {other:?}"),
        }
    }
}

#[test]
fn item_429s_are_retried_only_until_the_deadline_then_the_items_fail() {
    let server = Scripted::start(|_, request| bulk_reply(request, |_, _| 429));
    let mut es = patient_backend(&server.url());
    let docs: Vec<_> = sample_docs().into_iter().take(4).collect();
    let started = Instant::now();
    es.set_deadline(Some(started + Duration::from_millis(800)));
    let outcomes = es.index_batch(&docs).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_300), "the deadline bounds the retries: took {took:?}");
    assert!(server.requests().len() >= 2, "it did retry before the deadline");
    assert_all_failed_naming_the_deadline(&outcomes, docs.len());
}

#[test]
fn a_request_hanging_past_the_deadline_is_cut_and_its_items_fail() {
    // The server answers after 20 s; the request timeout is 30 s; the deadline is 600 ms.
    let server =
        Scripted::start(|_, request| Reply::Delay(Duration::from_secs(20), Box::new(bulk_reply(request, |_, _| 201))));
    let mut es = patient_backend(&server.url());
    let docs: Vec<_> = sample_docs().into_iter().take(3).collect();
    let started = Instant::now();
    es.set_deadline(Some(started + Duration::from_millis(600)));
    let outcomes = es.index_batch(&docs).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_500), "the request timeout is cut to the deadline: took {took:?}");
    assert_all_failed_naming_the_deadline(&outcomes, docs.len());
}

#[test]
fn nothing_is_sent_once_the_deadline_has_passed() {
    let server = Scripted::start(|_, request| bulk_reply(request, |_, _| 201));
    let mut es = patient_backend(&server.url());
    let docs: Vec<_> = sample_docs().into_iter().take(2).collect();
    es.set_deadline(Some(Instant::now()));
    let outcomes = es.index_batch(&docs).unwrap();
    assert!(server.requests().is_empty(), "no request leaves after the deadline");
    assert_all_failed_naming_the_deadline(&outcomes, docs.len());
}

#[test]
fn clearing_the_deadline_restores_the_retry_budget() {
    // 503 twice, then success: with the deadline cleared the normal retries apply.
    let server = Scripted::start(|n, request| {
        if n < 2 {
            Reply::Json(503, error_body(503, "unavailable_shards_exception", "primary shard is not active"))
        } else {
            bulk_reply(request, |_, _| 201)
        }
    });
    let mut es = patient_backend(&server.url());
    let docs: Vec<_> = sample_docs().into_iter().take(2).collect();
    es.set_deadline(Some(Instant::now()));
    es.set_deadline(None);
    let outcomes = es.index_batch(&docs).unwrap();
    assert_eq!(outcomes, vec![Outcome::Indexed; 2]);
    assert_eq!(server.requests().len(), 3);
}

/// The Lambda calls the backend from `spawn_blocking`, inside its runtime's context,
/// where a thread may not enter the backend's own runtime: the requests then run on a
/// scoped thread. Dropping the backend there must not panic either.
#[test]
fn the_backend_works_and_drops_inside_another_runtimes_blocking_pool() {
    let server = Scripted::start(|_, _| {
        Reply::Json(200, r#"{"count":7,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0}}"#.into())
    });
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (counted, backend) = runtime.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let es = patient_backend(&url);
            (es.count(&indexer::SearchRequest::default()), es)
        })
        .await
        .unwrap()
    });
    assert_eq!(counted.unwrap(), 7);
    // Dropped inside the other runtime's context, as the Lambda's worker would be.
    runtime.block_on(async move { drop(backend) });
}
