//! S3 reads under network faults: a fault-injecting TCP proxy on 127.0.0.1 in front of
//! Garage (testkit's `FaultProxy`) breaks connections mid-body, answers `503 SlowDown`,
//! adds latency, throttles the bandwidth and stalls mid-body. Reads resume or retry, or
//! the object fails in bounded time; it is never acknowledged early, and nothing is
//! doubled.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ingest::pipeline::SourceOutcome;
use ingest::s3::{S3Context, S3DeadLetter};
use support::*;
use testkit::fault_proxy::{Fault, FaultProxy};
use testkit::oracle::{self, Corpus};

/// Garage's endpoint, for a proxy to stand in front of.
fn garage_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect(HOW_TO_RUN)
}

/// A proxy in front of Garage doing the same fault to every connection.
fn proxy(fault: Fault) -> FaultProxy {
    FaultProxy::start_with(&garage_endpoint(), move |_| fault.clone())
}

/// A proxy in front of Garage: connection `i` gets `plan[i]`, later ones pass.
fn proxy_planned(plan: Vec<Fault>) -> FaultProxy {
    FaultProxy::start(&garage_endpoint(), plan)
}

fn through(garage: &Garage, proxy: &FaultProxy) -> S3Context {
    let config = garage.s3.client().config().to_builder().endpoint_url(proxy.url()).build();
    S3Context::with_client(aws_sdk_s3::Client::from_conf(config), garage.runtime.handle().clone())
}

/// One object of `records` records whose fates are known (testkit's oracle corpus),
/// uploaded under a fresh prefix, and the SQS event naming it (message `m0`).
struct Object {
    corpus: Corpus,
    prefix: String,
    event: serde_json::Value,
}

fn object(garage: &Garage, test: &str, records: u64) -> Object {
    let corpus = Corpus::generate(1, records, 700);
    let prefix = unique_prefix(test);
    let event = upload_corpus(garage, &corpus, &prefix);
    Object { corpus, prefix, event }
}

impl Object {
    /// The oracle: the index at `index` and the test's dead-letter prefix hold exactly what
    /// a fault-free delivery of the same event leaves (each good record once, identical;
    /// each bad record dead-lettered once; the object completed).
    fn judge(&self, garage: &Garage, index: &Path) {
        let reference_index = tempfile::tempdir().unwrap();
        let reference_prefix = format!("{}-reference/", self.prefix.trim_end_matches('/'));
        let mut backend = tantivy(reference_index.path());
        let report = handle(&garage.s3, &self.event, &mut backend, &mut garage.dead_letter(&reference_prefix));
        assert!(report.failed.is_empty(), "the fault-free delivery: {:?}", report.failed);
        drop(backend);
        let reference = indexed(reference_index.path());
        oracle::check(
            &self.corpus,
            &observed(index, garage.dead_letter(&self.prefix).read_all().unwrap()),
            Some(&reference),
        );
    }
}

/// The failed-object entries (not the rejected records) in a dead-letter store.
fn failed_object_entries(dead_letter: &S3DeadLetter) -> usize {
    dead_letter.read_all().unwrap().iter().filter(|e| e.record.is_none()).count()
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_connection_cut_mid_body_is_resumed_and_every_record_lands_once() {
    let garage = garage();
    let object = object(&garage, "cut-once", 5_000);
    let proxy = proxy_planned(vec![Fault::CutResponseAfter(300_000)]);
    let s3 = through(&garage, &proxy);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let report = handle(&s3, &object.event, &mut backend, &mut garage.dead_letter(&object.prefix));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.sources[0].outcome, SourceOutcome::Completed);
    assert!(proxy.connections() >= 2, "the resume opened a new connection");
    drop(backend);
    object.judge(&garage, index.path());
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_connection_cut_on_every_attempt_fails_the_object_and_its_redelivery_completes_it() {
    let garage = garage();
    let object = object(&garage, "cut-always", 5_000);
    let proxy = proxy_planned(vec![Fault::CutResponseAfter(200_000); 8]);
    let s3 = through(&garage, &proxy);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&object.prefix);
    let report = handle(&s3, &object.event, &mut backend, &mut dead_letter);
    assert_eq!(report.batch_item_failures(), vec!["m0"], "not acknowledged: {:?}", report.sources);
    assert!(report.failed[0].reason.contains("resume"), "{}", report.failed[0].reason);
    let partial = count(&backend);
    assert!(partial < object.corpus.good(), "{partial}");
    assert_eq!(failed_object_entries(&dead_letter), 1, "one entry for the failed object");

    // The redelivery, on a healthy network, completes without doubling.
    let report = handle(&garage.s3, &object.event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.summary.duplicates, partial);
    drop(backend);
    object.judge(&garage, index.path());
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn throttling_is_retried_by_the_client() {
    let garage = garage();
    let proxy = proxy_planned(vec![Fault::s3_slow_down(), Fault::s3_slow_down()]);
    assert_all_land_once(&garage, &through(&garage, &proxy), "slowdown", 500);
    assert!(proxy.connections() >= 3, "two throttled attempts, then the real one");
}

/// Runs a one-object event through `s3`, then judges the result with the oracle.
fn assert_all_land_once(garage: &Garage, s3: &S3Context, test: &str, records: u64) -> Duration {
    let object = object(garage, test, records);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let started = Instant::now();
    let report = handle(s3, &object.event, &mut backend, &mut garage.dead_letter(&object.prefix));
    let took = started.elapsed();
    assert!(report.failed.is_empty(), "{test}: {:?}", report.failed);
    drop(backend);
    object.judge(garage, index.path());
    took
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn latency_on_every_request_slows_the_read_but_loses_nothing() {
    let garage = garage();
    let proxy = proxy(Fault::Latency(Duration::from_millis(150)));
    let took = assert_all_land_once(&garage, &through(&garage, &proxy), "latency", 2_000);
    assert!(took >= Duration::from_millis(150), "the latency was applied: {took:?}");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_bandwidth_limit_slows_the_read_but_loses_nothing() {
    let garage = garage();
    // About 0.95 MB of NDJSON at 400 kB/s.
    let proxy = proxy(Fault::Bandwidth(400_000));
    let took = assert_all_land_once(&garage, &through(&garage, &proxy), "bandwidth", 2_000);
    assert!(took >= Duration::from_secs(1), "the limit was applied: {took:?}");
}

/// A client whose body reads give up after `idle` without a byte.
fn impatient(garage: &Garage, proxy: &FaultProxy, idle: Duration) -> S3Context {
    through(garage, proxy).with_body_idle_timeout(idle)
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_body_that_stalls_mid_object_is_resumed_rather_than_waited_on_forever() {
    let garage = garage();
    let proxy = proxy_planned(vec![Fault::StallAfter(300_000)]);
    let took = assert_all_land_once(&garage, &impatient(&garage, &proxy, Duration::from_secs(2)), "stall-once", 5_000);
    assert!(took < Duration::from_secs(20), "resumed soon after the idle timeout: {took:?}");
    assert!(proxy.connections() >= 2, "the resume opened a new connection");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_body_that_stalls_on_every_attempt_fails_the_object_in_bounded_time() {
    let garage = garage();
    let object = object(&garage, "stall-always", 5_000);
    let proxy = proxy(Fault::StallAfter(200_000));
    let s3 = impatient(&garage, &proxy, Duration::from_secs(1));
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&object.prefix);
    let started = Instant::now();
    let report = handle(&s3, &object.event, &mut backend, &mut dead_letter);
    assert!(started.elapsed() < Duration::from_secs(30), "nothing hangs: {:?}", started.elapsed());
    assert_eq!(report.batch_item_failures(), vec!["m0"], "not acknowledged: {:?}", report.sources);
    assert!(report.failed[0].reason.contains("no data"), "{}", report.failed[0].reason);
    assert_eq!(failed_object_entries(&dead_letter), 1, "one entry for the failed object");

    let report = handle(&garage.s3, &object.event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    drop(backend);
    object.judge(&garage, index.path());
}
