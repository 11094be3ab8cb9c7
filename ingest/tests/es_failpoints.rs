//! Crash test of the production path: the trigger handler writing through the real
//! Elasticsearch backend into `testkit`'s fake cluster crashes (the `fail` failpoint
//! `pipeline.after_bulk` panics, and the backend is dropped with its checkpoints
//! unwritten, as a killed Lambda instance leaves it) after a `_bulk` write and before
//! the checkpoint that covers it. SQS got no answer, so it redelivers every message to a
//! fresh instance; the conservation oracle then checks, from what the cluster stored and
//! the dead letters in Garage, that every good record is indexed once and equals the
//! fault-free run's document, every bad record is dead-lettered once and every object
//! is completed.
//!
//! Built only with `--features failpoints`; needs Garage (`scripts/test.sh` runs it
//! with `--include-ignored` once Garage is up).

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use support::es::*;
use support::{garage, unique_prefix, upload_corpus};
use testkit::es_server::FakeCluster;
use testkit::oracle::{check, Corpus};

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_crash_between_a_bulk_write_and_its_checkpoint_converges_under_redelivery() {
    let scenario = fail::FailScenario::setup();
    let garage = garage();
    let corpus = Corpus::generate(3, 120, 1_100);
    let prefix = unique_prefix("es-crash");
    let event = upload_corpus(&garage, &corpus, &format!("{prefix}in/"));
    let reference = reference(&garage, &corpus, &event, &format!("{prefix}dl-reference/"));

    let cluster = FakeCluster::start();
    let dl = format!("{prefix}dl-crash/");
    // Objects take three `_bulk` writes each (50-record batches): the fourth write is
    // the first of m1, after every write of m0 and before any checkpoint.
    fail::cfg("pipeline.after_bulk", "3*off->1*panic(crash after a bulk write)->off").unwrap();
    let mut sqs = Sqs::from_event(&event);
    let mut crashes = 0;
    for _ in 0..4 {
        if sqs.is_empty() {
            break;
        }
        let delivered = sqs.event();
        // A fresh instance per delivery: connected, set up, then the event.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut backend = es_backend(&cluster);
            handle(&garage, &mut backend, &dl, &delivered)
        }));
        match outcome {
            Ok(result) => {
                sqs.deliver(|_| result);
            }
            Err(panic) => {
                crashes += 1;
                let why = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                sqs.crashed(why);
                // The crash came after documents were stored and before their
                // checkpoints: the cluster holds events but no completed object.
                assert!(!cluster.events(PREFIX).is_empty(), "the bulk write before the crash was stored");
                assert!(
                    cluster.checkpoints(PREFIX).iter().all(|c| c["status"] != "completed"),
                    "no checkpoint was written before the crash: {:?}",
                    cluster.checkpoints(PREFIX)
                );
                assert_eq!(sqs.queued(), ["m0", "m1", "m2"], "no answer, nothing deleted");
            }
        }
    }
    fail::remove("pipeline.after_bulk");
    assert_eq!(crashes, 1, "the failpoint crashed the handler once: {:#?}", sqs.rounds);
    assert!(sqs.is_empty(), "the redelivery completes: {:#?}", sqs.rounds);
    assert_eq!(sqs.rounds.len(), 2);
    assert!(
        cluster.items_answered(409, Some("version_conflict_engine_exception")) >= 100,
        "the redelivery found the crashed run's documents stored and counted them as duplicates"
    );
    check(&corpus, &observed(&cluster, &garage, &dl), Some(&reference.docs));
    scenario.teardown();
}
