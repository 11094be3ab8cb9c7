//! End-to-end tests of the production path: objects in Garage, SQS messages naming
//! them, the real trigger handler (`ingest::trigger::handle_event`, and the
//! `tix-logs-lambda` binary through a loopback Lambda runtime API) writing through the
//! real Elasticsearch backend into `testkit`'s fake cluster, dead letters in Garage.
//!
//! SQS is simulated faithfully (`support::es::Sqs`): each round delivers every message
//! still queued; an answer deletes exactly the messages not in `batchItemFailures`, an
//! operational error deletes none. So a message acknowledged before its records were
//! safe loses them, and the oracle sees it.
//!
//! Every scenario is judged by the conservation oracle (`testkit::oracle::check`) from
//! what the cluster stored, the checkpoint documents it holds and the dead letters read
//! back from Garage, never from counters or logs, against a fault-free run of the same
//! objects: every good record indexed once and stored as the fault-free run stores it,
//! every bad record dead-lettered once, every object completed. Each scenario also
//! asserts that its fault really happened.
//!
//! The S3 tier: ignored without Garage (`scripts/test.sh` starts it).

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use support::es::*;
use support::{garage, unique_prefix, upload_corpus, Garage};
use testkit::es_server::FakeCluster;
use testkit::lambda_api::{Posted, RuntimeApi};
use testkit::oracle::{check, Corpus};

/// Three objects of 120 records (records 53 and 106 of each are bad).
fn corpus(seed: u64) -> Corpus {
    Corpus::generate(3, 120, seed)
}

/// Garage, a corpus uploaded under a fresh prefix, its SQS event and the fault-free
/// reference run of it.
struct Setup {
    garage: Garage,
    corpus: Corpus,
    prefix: String,
    event: Value,
    reference: Reference,
}

fn setup(test: &str, seed: u64) -> Setup {
    let garage = garage();
    let corpus = corpus(seed);
    let prefix = unique_prefix(test);
    let event = upload_corpus(&garage, &corpus, &format!("{prefix}in/"));
    let reference = reference(&garage, &corpus, &event, &format!("{prefix}dl-reference/"));
    Setup { garage, corpus, prefix, event, reference }
}

impl Setup {
    fn dl(&self, name: &str) -> String {
        format!("{}dl-{name}/", self.prefix)
    }

    /// The oracle over what `cluster` and the dead letters under `dl` hold.
    fn check(&self, cluster: &FakeCluster, dl: &str) {
        check(&self.corpus, &observed(cluster, &self.garage, dl), Some(&self.reference.docs));
    }
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_clean_run_indexes_every_good_record_once_and_acknowledges_every_message() {
    let s = setup("es-clean", 100);
    let cluster = FakeCluster::start();
    let mut backend = es_backend(&cluster);
    let dl = s.dl("clean");
    let mut sqs = Sqs::from_event(&s.event);
    let rounds = drain(&mut sqs, 1, |event| handle(&s.garage, &mut backend, &dl, event), |_, _| {});
    assert_eq!(rounds, 1);
    assert_eq!(sqs.rounds[0].failures(), Some(&[][..]), "nothing to redeliver");
    s.check(&cluster, &dl);
    assert_eq!(cluster.items_answered(201, None) as u64, s.corpus.good() + 3, "each event and checkpoint created once");
    assert_eq!(cluster.item_answers().len() as u64, s.corpus.good() + 3, "no item sent twice");
    assert!(cluster.docs("tix-bookings-2*").iter().all(|d| d.version == 1));

    // A redelivery of completed work (a lost acknowledgement) writes no event.
    let before = cluster.events(PREFIX);
    let report = handle(&s.garage, &mut backend, &dl, &s.event).unwrap();
    assert!(report.batch_item_failures().is_empty());
    assert_eq!(report.summary.objects_skipped, 3, "skipped by their checkpoints");
    assert_eq!(cluster.events(PREFIX), before);
    assert_eq!(cluster.item_answers().iter().filter(|a| a.action == "create").count() as u64, s.corpus.good());
    s.check(&cluster, &dl);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn mixed_201_409_429_400_items_index_each_good_record_once_and_dead_letter_each_400_once() {
    let s = setup("es-mixed", 200);
    let ids = |message: &str| s.reference.ids_by_message[message].clone();
    // 409: five events of m0 are already stored (an earlier delivery wrote them).
    let stored_before: Vec<String> = ids("m0").into_iter().take(5).collect();
    // 429 on the first try: five events of m1.
    let throttled: BTreeSet<String> = ids("m1").into_iter().skip(10).take(5).collect();
    // 400 document_parsing_exception on every try: two events of m2 that carry an
    // event_id (a mapping conflict the document causes, so a legitimate dead letter).
    let unparsable: BTreeSet<String> =
        ids("m2").into_iter().filter(|id| s.reference.docs[id].contains_key("event_id")).skip(3).take(2).collect();
    assert_eq!(unparsable.len(), 2);

    let cluster = FakeCluster::start();
    for id in &stored_before {
        assert!(cluster.insert_doc(s.reference.stored(id)));
    }
    let (throttled_ids, unparsable_ids) = (throttled.clone(), unparsable.clone());
    cluster.set_item_faults(move |item| {
        if unparsable_ids.contains(item.id) {
            Some(400)
        } else if throttled_ids.contains(item.id) && item.tries == 0 {
            Some(429)
        } else {
            None
        }
    });
    let mut backend = es_backend(&cluster);
    let dl = s.dl("mixed");
    let mut sqs = Sqs::from_event(&s.event);
    drain(&mut sqs, 1, |event| handle(&s.garage, &mut backend, &dl, event), |_, _| {});
    assert_eq!(sqs.rounds[0].failures(), Some(&[][..]), "every object completes in one delivery");

    // The faults happened, each to the items it was meant for.
    assert_eq!(cluster.items_answered(409, Some("version_conflict_engine_exception")), 5);
    assert_eq!(cluster.items_answered(429, Some("es_rejected_execution_exception")), 5);
    assert_eq!(cluster.items_answered(400, Some("document_parsing_exception")), 2, "a 400 is not retried");
    let created = cluster.item_answers().into_iter().filter(|a| a.action == "create" && a.status == 201).count();
    assert_eq!(created as u64, s.corpus.good() - 5 - 2, "the rest created once (the 429s on their retry)");

    // The 400s: exactly one dead letter each, from the backend, naming the parse failure;
    // not stored.
    let mut observed = observed(&cluster, &s.garage, &dl);
    let entries = dead_letters(&s.garage, &dl);
    let backend_rejections: Vec<_> =
        entries.iter().filter(|e| e.reason.contains("document_parsing_exception")).collect();
    assert_eq!(backend_rejections.len(), 2, "{backend_rejections:#?}");
    let mut rejected_event_ids = BTreeSet::new();
    for entry in &backend_rejections {
        assert_eq!(entry.kind, ingest::RejectKind::Backend, "{entry:?}");
        assert!(entry.record.is_some(), "{entry:?}");
        let raw: Value = serde_json::from_str(&entry.raw).expect("the redacted original is JSON");
        rejected_event_ids.insert(raw["event_id"].as_str().unwrap().to_string());
    }
    let expected_event_ids: BTreeSet<String> =
        unparsable.iter().map(|id| s.reference.docs[id]["event_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(rejected_event_ids, expected_event_ids, "the dead letters are the refused records");
    for id in &unparsable {
        assert!(!observed.docs.contains_key(id), "{id} was refused, never stored");
    }
    // The expectation, extended explicitly: the refused records are accounted as
    // dead-lettered by the backend; with them back in place, the run is the clean one.
    observed.dead_letters.retain(|e| !e.reason.contains("document_parsing_exception"));
    for id in &unparsable {
        observed.docs.insert(id.clone(), s.reference.docs[id].clone());
    }
    check(&s.corpus, &observed, Some(&s.reference.docs));
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn persistent_429s_fail_the_object_and_the_redelivery_completes_it() {
    let s = setup("es-429", 300);
    let cluster = FakeCluster::start();
    let storm = Arc::new(AtomicBool::new(true));
    let (raging, m1) = (storm.clone(), s.reference.ids_by_message["m1"].clone());
    cluster.set_item_faults(move |item| {
        (raging.load(Ordering::SeqCst) && item.action == "create" && m1.iter().any(|id| id == item.id)).then_some(429)
    });
    let mut backend = es_backend(&cluster);
    let dl = s.dl("429");
    let mut sqs = Sqs::from_event(&s.event);
    let mut completed_after_round_1 = Vec::new();
    let rounds = drain(
        &mut sqs,
        3,
        |event| handle(&s.garage, &mut backend, &dl, event),
        |round, sqs| {
            if round == 0 {
                assert_eq!(sqs.queued(), ["m1"], "only the throttled object's message stays queued");
                completed_after_round_1 = observed(&cluster, &s.garage, &dl)
                    .sources
                    .into_iter()
                    .filter(|c| c.completed)
                    .map(|c| c.source)
                    .collect();
                storm.store(false, Ordering::SeqCst);
            }
        },
    );
    assert_eq!(rounds, 2);
    assert_eq!(sqs.rounds[0].failures(), Some(&["m1".to_string()][..]), "m1 is in batchItemFailures");
    assert_eq!(sqs.rounds[1].failures(), Some(&[][..]), "the redelivery completes it");
    // Every m1 item was refused on the first try and on each of the three retries.
    let answered_429 = cluster.items_answered(429, Some("es_rejected_execution_exception"));
    assert!(answered_429 >= 4, "{answered_429} items answered 429");
    assert_eq!(completed_after_round_1.len(), 2, "{completed_after_round_1:?}");
    assert!(completed_after_round_1.iter().all(|s| !s.contains("part-1.ndjson")), "{completed_after_round_1:?}");
    s.check(&cluster, &dl);
}

/// An operational fault switched on after setup stops round 1 with an error that
/// `expect` describes; nothing may be acknowledged, stored or dead-lettered. Lifted, the
/// redelivery completes and the oracle holds.
fn operational_fault_then_redelivery(
    s: &Setup,
    name: &str,
    fault: impl Fn(&FakeCluster, bool),
    expect: impl Fn(&str),
) -> FakeCluster {
    let cluster = FakeCluster::start();
    let mut backend = es_backend(&cluster);
    fault(&cluster, true);
    let dl = s.dl(name);
    let mut sqs = Sqs::from_event(&s.event);
    let rounds = drain(
        &mut sqs,
        3,
        |event| handle(&s.garage, &mut backend, &dl, event),
        |round, sqs| {
            if round == 0 {
                assert_eq!(sqs.queued(), ["m0", "m1", "m2"], "{name}: nothing acknowledged");
                assert!(cluster.events(PREFIX).is_empty(), "{name}: nothing stored");
                assert!(dead_letters(&s.garage, &dl).is_empty(), "{name}: nothing dead-lettered");
                fault(&cluster, false);
            }
        },
    );
    assert_eq!(rounds, 2, "{name}");
    let error = sqs.rounds[0].error().unwrap_or_else(|| panic!("{name}: round 1 must fail: {:?}", sqs.rounds[0]));
    expect(error);
    assert_eq!(sqs.rounds[1].failures(), Some(&[][..]), "{name}");
    s.check(&cluster, &dl);
    cluster
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn http_401_and_403_stop_the_handler_acknowledge_nothing_and_the_redelivery_completes() {
    let s = setup("es-auth", 400);
    for status in [401u16, 403] {
        let cluster = operational_fault_then_redelivery(
            &s,
            &format!("auth-{status}"),
            |cluster, on| cluster.auth_fail(on.then_some(status)),
            |error| {
                assert!(error.contains("refused credentials") && error.contains(&format!("HTTP {status}")), "{error}");
                assert!(!error.contains("s3cr3t-api-key-value"), "no secret in the error: {error}");
            },
        );
        let refused = cluster.requests().iter().filter(|r| r.path() == "/_bulk").count();
        assert!(refused >= 2, "{status}: the refused bulk, then the redelivery's");
    }
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_write_block_stops_the_handler_acknowledges_nothing_and_the_redelivery_completes() {
    let s = setup("es-block", 500);
    let cluster = operational_fault_then_redelivery(
        &s,
        "write-block",
        |cluster, on| cluster.write_block(on),
        |error| assert!(error.contains("write-blocked") && error.contains("FORBIDDEN/8/index write"), "{error}"),
    );
    assert!(cluster.items_answered(403, Some("cluster_block_exception")) > 0, "the block refused items");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn an_unreachable_cluster_leaves_every_message_queued_until_it_comes_back() {
    let s = setup("es-down", 600);
    let cluster = FakeCluster::start();
    let mut backend = es_backend(&cluster);
    cluster.down();
    let dl = s.dl("down");
    let mut sqs = Sqs::from_event(&s.event);
    let rounds = drain(
        &mut sqs,
        3,
        |event| handle(&s.garage, &mut backend, &dl, event),
        |round, sqs| {
            if round == 0 {
                assert_eq!(sqs.queued(), ["m0", "m1", "m2"], "every affected message is redelivered");
                assert!(cluster.refused_while_down() > 0, "the client tried to reach it");
                assert!(cluster.events(PREFIX).is_empty());
                cluster.up();
            }
        },
    );
    assert_eq!(rounds, 2);
    match &sqs.rounds[0] {
        Round::Failed(error) => assert!(error.contains("unreachable") || error.contains("gave up"), "{error}"),
        Round::Answered { failures, .. } => assert_eq!(failures, &["m0", "m1", "m2"]),
    }
    assert_eq!(sqs.rounds[1].failures(), Some(&[][..]));
    s.check(&cluster, &dl);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn objects_larger_than_one_invocation_complete_over_several_sending_each_record_once() {
    let s = setup("es-resume", 350);
    let cluster = FakeCluster::start();
    let mut backend = es_backend(&cluster);
    let dl = s.dl("resume");
    let mut sqs = Sqs::from_event(&s.event);
    // Each invocation's deadline arrives after its first batch (of 50 records): an
    // object of 120 records needs three invocations.
    let rounds = drain(
        &mut sqs,
        20,
        |event| {
            let mut config = es_pipeline_config();
            let asked = Arc::new(AtomicUsize::new(0));
            config.should_stop = Some(Arc::new(move || asked.fetch_add(1, Ordering::SeqCst) >= 1));
            handle_with_config(&s.garage, &mut backend, &dl, event, config)
        },
        |_, _| {},
    );
    assert_eq!(rounds, 9, "three objects of three batches, one batch per invocation");
    let paused: u64 = sqs
        .rounds
        .iter()
        .map(|round| match round {
            Round::Answered { report, .. } => report.summary.objects_paused,
            Round::Failed(error) => panic!("{error}"),
        })
        .sum();
    assert_eq!(paused, 6, "each object paused twice");
    // A redelivery fast-forwards: no record is sent twice, so the cluster never had to
    // answer that one already exists.
    assert_eq!(cluster.items_answered(409, None), 0, "a record was sent again");
    let creates = cluster.item_answers().into_iter().filter(|a| a.action == "create" && a.status == 201).count();
    assert_eq!(creates as u64, s.corpus.good(), "each event created exactly once");
    s.check(&cluster, &dl);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn an_answer_lost_after_the_cluster_indexed_is_retried_as_duplicates_never_doubles() {
    let s = setup("es-lost-answer", 700);
    let cluster = FakeCluster::start();
    let mut backend = es_backend(&cluster);
    cluster.lose_answer_after_indexing(2);
    let dl = s.dl("lost-answer");
    let mut sqs = Sqs::from_event(&s.event);
    drain(&mut sqs, 2, |event| handle(&s.garage, &mut backend, &dl, event), |_, _| {});
    assert_eq!(cluster.lost_answers(), 2, "two answers were cut after the documents were stored");
    let duplicates = cluster.items_answered(409, Some("version_conflict_engine_exception"));
    assert!(duplicates > 0, "the retries found the documents stored");
    let creates = cluster.item_answers().into_iter().filter(|a| a.action == "create" && a.status == 201).count();
    assert_eq!(creates as u64, s.corpus.good(), "each event created exactly once");
    assert!(cluster.docs("tix-bookings-2*").iter().all(|d| d.version == 1), "nothing overwritten");
    s.check(&cluster, &dl);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_cluster_that_does_not_create_indices_on_write_gets_its_daily_indices_created_and_nothing_dead_lettered() {
    let s = setup("es-no-autocreate", 800);
    let cluster = FakeCluster::start();
    cluster.auto_create_index(false);
    let mut backend = es_backend(&cluster);
    let dl = s.dl("no-autocreate");
    let mut sqs = Sqs::from_event(&s.event);
    drain(&mut sqs, 2, |event| handle(&s.garage, &mut backend, &dl, event), |_, _| {});
    // The oracle first: exactly the corpus's bad records are dead-lettered, none because
    // an index was missing, and every good record is stored once.
    s.check(&cluster, &dl);
    assert_eq!(sqs.rounds[0].failures(), Some(&[][..]), "{:?}", sqs.rounds[0]);
    let daily: BTreeSet<String> = s.reference.stored.iter().map(|d| d.index.clone()).collect();
    assert!(
        cluster.items_answered(404, Some("index_not_found_exception")) >= daily.len(),
        "the cluster refused writes into missing indices"
    );
    let created: BTreeSet<String> = cluster
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path().starts_with("/tix-bookings-2"))
        .map(|r| r.path().trim_start_matches('/').to_string())
        .collect();
    assert_eq!(created, daily, "the client created each daily index with PUT");
}

// ---------------------------------------------------------------------------------------
// The tix-logs-lambda binary through a loopback Lambda runtime API
// ---------------------------------------------------------------------------------------

const LAMBDA: &str = env!("CARGO_BIN_EXE_tix-logs-lambda");

/// The function, configured for the fake cluster and Garage as a deployment would be.
fn spawn_lambda(api: &RuntimeApi, cluster: &FakeCluster, s: &Setup, dl: &str) -> Child {
    let mut command = Command::new(LAMBDA);
    for (name, _) in std::env::vars() {
        if name.starts_with("TIX_ES_") {
            command.env_remove(name);
        }
    }
    api.configure(&mut command);
    command
        .env("TIX_BACKEND", "elasticsearch")
        .env("TIX_ES_URL", cluster.url())
        .env("TIX_ES_API_KEY", API_KEY)
        .env("TIX_PII_KEY", PII_KEY)
        .env("TIX_TRIGGER_PREFIX", format!("s3://{}/{}in/", s.garage.bucket, s.prefix))
        .env("TIX_DEAD_LETTER", format!("s3://{}/{dl}", s.garage.dl_bucket))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().unwrap()
}

/// Stops the function and returns its stderr (for failure messages).
fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_answer(posted: Posted, request_id: &str, expected: Value) {
    assert_eq!(posted.into_response(request_id, ""), expected);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn the_lambda_binary_indexes_through_elasticsearch_and_answers_no_batch_item_failures() {
    let s = setup("es-lambda-clean", 900);
    let cluster = FakeCluster::start();
    let dl = s.dl("lambda-clean");
    let api = RuntimeApi::start();
    let mut child = spawn_lambda(&api, &cluster, &s, &dl);
    let posted = api.invoke("req-1", &s.event, &mut child);
    let stderr = stop(child);
    assert_answer(posted, "req-1", json!({"batchItemFailures": []}));
    assert!(cluster.templates().contains_key(PREFIX), "the binary installed the template: {stderr}");
    s.check(&cluster, &dl);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn the_lambda_binary_fails_the_invocation_on_a_write_block_and_completes_the_redelivery() {
    let s = setup("es-lambda-block", 1_000);
    let cluster = FakeCluster::start();
    cluster.write_block(true);
    let dl = s.dl("lambda-block");
    let api = RuntimeApi::start();
    let mut child = spawn_lambda(&api, &cluster, &s, &dl);
    let first = api.invoke("req-1", &s.event, &mut child);
    match &first {
        Posted::Error { request_id, body } => {
            assert_eq!(request_id, "req-1");
            assert!(body.contains("write-blocked"), "{body}");
        }
        Posted::Response { body, .. } => {
            panic!("a write block must fail the invocation (SQS keeps every message): {body}")
        }
    }
    assert!(cluster.items_answered(403, Some("cluster_block_exception")) > 0);
    assert!(cluster.events(PREFIX).is_empty(), "nothing stored");
    assert!(dead_letters(&s.garage, &dl).is_empty(), "nothing dead-lettered");

    // The block is lifted; SQS redelivers the whole batch to the same instance.
    cluster.write_block(false);
    let second = api.invoke("req-2", &s.event, &mut child);
    let stderr = stop(child);
    assert_answer(second, "req-2", json!({"batchItemFailures": []}));
    assert!(stderr.contains("invocation done"), "the same instance answered the redelivery: {stderr}");
    s.check(&cluster, &dl);
}
