//! S3 reads under network faults: a fault-injecting TCP proxy on 127.0.0.1 in front of
//! Garage (testkit's `FaultProxy`) breaks connections mid-body, answers `503 SlowDown`,
//! adds latency, throttles the bandwidth and stalls mid-body. Reads resume or retry, or
//! the object fails in bounded time; it is never acknowledged early, and nothing is
//! doubled.

mod support;

use std::time::{Duration, Instant};

use ingest::pipeline::SourceOutcome;
use ingest::s3::S3Context;
use support::*;
use testkit::fault_proxy::{Fault, FaultProxy};

/// A proxy in front of Garage; connection `i` gets `fault_for(i)`.
fn proxy(fault_for: impl Fn(usize) -> Fault + Send + 'static) -> FaultProxy {
    FaultProxy::start_with(&std::env::var("AWS_ENDPOINT_URL").expect(HOW_TO_RUN), fault_for)
}

/// Connection `i` gets `plan[i]`, later ones pass.
fn plan(faults: Vec<Fault>) -> impl Fn(usize) -> Fault + Send + 'static {
    move |i| faults.get(i).cloned().unwrap_or(Fault::Pass)
}

fn through(garage: &Garage, proxy: &FaultProxy) -> S3Context {
    let config = garage.s3.client().config().to_builder().endpoint_url(proxy.url()).build();
    S3Context::with_client(aws_sdk_s3::Client::from_conf(config), garage.runtime.handle().clone())
}

/// One object of `events` records and the SQS event naming it.
fn object(garage: &Garage, test: &str, events: u64) -> (serde_json::Value, String) {
    let prefix = unique_prefix(test);
    let key = format!("{prefix}big object.ndjson");
    (sqs_event(&[("m1".into(), garage.notify(&key, ndjson(700, events)))]), prefix)
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_connection_cut_mid_body_is_resumed_and_every_record_lands_once() {
    let garage = garage();
    let (event, prefix) = object(&garage, "cut-once", 5_000);
    let proxy = proxy(plan(vec![Fault::CutResponseAfter(300_000)]));
    let s3 = through(&garage, &proxy);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&s3, &event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.sources[0].outcome, SourceOutcome::Completed);
    assert_eq!(report.summary.indexed, 5_000);
    assert_eq!(count(&backend), 5_000, "each record once, none lost at the cut");
    assert!(proxy.connections() >= 2, "the resume opened a new connection");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_connection_cut_on_every_attempt_fails_the_object_and_its_redelivery_completes_it() {
    let garage = garage();
    let (event, prefix) = object(&garage, "cut-always", 5_000);
    let proxy = proxy(plan(vec![Fault::CutResponseAfter(200_000); 8]));
    let s3 = through(&garage, &proxy);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&s3, &event, &mut backend, &mut dead_letter);
    assert_eq!(report.batch_item_failures(), vec!["m1"], "not acknowledged: {:?}", report.sources);
    assert!(report.failed[0].reason.contains("resume"), "{}", report.failed[0].reason);
    let partial = count(&backend);
    assert!(partial < 5_000, "{partial}");
    let entries = dead_letter.read_all().unwrap();
    assert_eq!(entries.len(), 1, "one entry for the failed object: {entries:?}");

    // The redelivery, on a healthy network, completes without doubling.
    let report = handle(&garage.s3, &event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.summary.duplicates, partial);
    assert_eq!(count(&backend), 5_000);
    assert!(dead_letter.read_all().unwrap().is_empty(), "the completed object's entry is withdrawn");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn throttling_is_retried_by_the_client() {
    let garage = garage();
    let (event, prefix) = object(&garage, "slowdown", 500);
    let proxy = proxy(plan(vec![Fault::s3_slow_down(), Fault::s3_slow_down()]));
    let s3 = through(&garage, &proxy);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&s3, &event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(count(&backend), 500);
    assert!(proxy.connections() >= 3, "two throttled attempts, then the real one");
}

/// Runs the one-object event through `s3` and checks every record landed once.
fn assert_all_land_once(garage: &Garage, s3: &S3Context, test: &str, events: u64) -> Duration {
    let (event, prefix) = object(garage, test, events);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let started = Instant::now();
    let report = handle(s3, &event, &mut backend, &mut dead_letter);
    let took = started.elapsed();
    assert!(report.failed.is_empty(), "{test}: {:?}", report.failed);
    assert_eq!(report.summary.indexed, events, "{test}");
    assert_eq!(count(&backend), events, "{test}: each record once");
    assert!(dead_letter.read_all().unwrap().is_empty(), "{test}");
    took
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn latency_on_every_request_slows_the_read_but_loses_nothing() {
    let garage = garage();
    let proxy = proxy(|_| Fault::Latency(Duration::from_millis(150)));
    let took = assert_all_land_once(&garage, &through(&garage, &proxy), "latency", 2_000);
    assert!(took >= Duration::from_millis(150), "the latency was applied: {took:?}");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_bandwidth_limit_slows_the_read_but_loses_nothing() {
    let garage = garage();
    // About 0.95 MB of NDJSON at 400 kB/s.
    let proxy = proxy(|_| Fault::Bandwidth(400_000));
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
    let proxy = proxy(plan(vec![Fault::StallAfter(300_000)]));
    let took = assert_all_land_once(&garage, &impatient(&garage, &proxy, Duration::from_secs(2)), "stall-once", 5_000);
    assert!(took < Duration::from_secs(20), "resumed soon after the idle timeout: {took:?}");
    assert!(proxy.connections() >= 2, "the resume opened a new connection");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_body_that_stalls_on_every_attempt_fails_the_object_in_bounded_time() {
    let garage = garage();
    let (event, prefix) = object(&garage, "stall-always", 5_000);
    let proxy = proxy(|_| Fault::StallAfter(200_000));
    let s3 = impatient(&garage, &proxy, Duration::from_secs(1));
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let started = Instant::now();
    let report = handle(&s3, &event, &mut backend, &mut dead_letter);
    assert!(started.elapsed() < Duration::from_secs(30), "nothing hangs: {:?}", started.elapsed());
    assert_eq!(report.batch_item_failures(), vec!["m1"], "not acknowledged: {:?}", report.sources);
    assert!(report.failed[0].reason.contains("no data"), "{}", report.failed[0].reason);
    assert_eq!(dead_letter.read_all().unwrap().len(), 1, "one entry for the failed object");

    let report = handle(&garage.s3, &event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(count(&backend), 5_000, "the redelivery completes it, nothing doubled");
    assert!(dead_letter.read_all().unwrap().is_empty());
}
