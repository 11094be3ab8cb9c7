//! The S3 tier (ARCHITECTURE.md, "Test tiers" 3): the trigger handler against a real Garage
//! server on 127.0.0.1. Every test counts the index and the dead-letter store.
//!
//! Ignored by a plain `cargo test`, which lists them as not run; `scripts/test.sh`
//! (what CI runs) starts Garage and runs them with `--ignored`.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexer::{Backend, SourceRecord, SourceStatus, Store};
use ingest::dead_letter::LocalDeadLetter;
use ingest::pipeline::SourceOutcome;
use ingest::s3::{S3Context, S3Location};
use ingest::trigger::{Deadline, HandlerReport};
use serde_json::json;
use support::*;
use testkit::memory::MemoryBackend;

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn keys_with_spaces_plus_percent_and_non_ascii_are_ingested_from_encoded_events() {
    let garage = garage();
    let prefix = unique_prefix("odd-keys");
    let names =
        ["day one.ndjson", "a+b.ndjson.gz", "100% sure.json", "Übersicht café/日本.ndjson", "tab\there#?.ndjson"];
    let mut records = Vec::new();
    let mut expected = 0;
    for (i, name) in names.iter().enumerate() {
        let key = format!("{prefix}{name}");
        let events = 20 + i as u64;
        let body =
            if name.ends_with(".gz") { gzip(&ndjson(100 + i as u64, events)) } else { ndjson(100 + i as u64, events) };
        let size = body.len();
        let etag = garage.put(&key, body);
        records.push(s3_record(&garage.bucket, &key, &etag, size));
        expected += events;
    }
    let event = json!({ "Records": records });
    let encoded = event.to_string();
    assert!(encoded.contains("day+one") && encoded.contains("a%2Bb") && encoded.contains("100%25+sure"), "{encoded}");

    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&garage.s3, &event, &mut backend, &mut dead_letter);

    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.sources.len(), names.len());
    assert!(report.sources.iter().all(|s| s.outcome == SourceOutcome::Completed), "{:?}", report.sources);
    assert_eq!(report.summary.records, expected);
    assert_eq!(count(&backend), expected, "every record of every object is in the index");
    assert!(dead_letter.read_all().unwrap().is_empty());
    for name in names {
        let source =
            report.sources.iter().find(|s| s.source.contains(name)).unwrap_or_else(|| panic!("{name} not read"));
        assert!(source.records > 0);
    }
}

/// S3 -> SNS -> Lambda: the S3 notification arrives as the `Message` string of a direct
/// SNS record; the object is ingested and S3's test event through SNS is acknowledged.
#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_direct_sns_notification_ingests_its_object_and_acknowledges_the_test_event() {
    let garage = garage();
    let prefix = unique_prefix("direct-sns");
    let key = format!("{prefix}via sns/day.ndjson.gz");
    let notification = garage.notify(&key, gzip(&ndjson(404, 40)));
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": garage.bucket}).to_string();
    let sns_record = |message: String| {
        json!({"EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:garage:000000000000:tix-logs-objects:1",
            "Sns": {"Type": "Notification", "MessageId": "5e5e0002-0001-4001-8002-0b671dc23ddf",
                "TopicArn": "arn:aws:sns:garage:000000000000:tix-logs-objects",
                "Subject": "Amazon S3 Notification", "Message": message}})
    };
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);

    let report = handle(&garage.s3, &json!({"Records": [sns_record(notification)]}), &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.sources.len(), 1);
    assert_eq!(report.sources[0].outcome, SourceOutcome::Completed);
    assert_eq!(count(&backend), 40, "every record of the object is in the index");
    assert!(dead_letter.read_all().unwrap().is_empty());

    let report = handle(&garage.s3, &json!({"Records": [sns_record(test_event)]}), &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty() && report.sources.is_empty(), "{report:?}");
    assert_eq!(report.acknowledged, 1, "the test event is counted");
}

/// S3 -> SNS -> Lambda over a corpus whose every record's fate is known: one direct SNS
/// record per invocation, as SNS delivers them, each delivered twice (SNS delivers at
/// least once). Judged by the conservation oracle from the index and the S3 dead letters.
#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn direct_sns_deliveries_of_a_corpus_index_each_good_record_once_and_dead_letter_each_bad_one_once() {
    let garage = garage();
    let prefix = unique_prefix("sns-corpus");
    let corpus = testkit::oracle::Corpus::generate(3, 150, 0x5a5);
    let sqs = upload_corpus(&garage, &corpus, &format!("{prefix}in/"));
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let dl = format!("{prefix}dl/");
    let mut dead_letter = garage.dead_letter(&dl);
    for _ in 0..2 {
        for message in sqs["Records"].as_array().unwrap() {
            let sns = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:garage:000000000000:tix-logs-objects:1",
                "Sns": {"Type": "Notification", "MessageId": message["messageId"],
                    "TopicArn": "arn:aws:sns:garage:000000000000:tix-logs-objects",
                    "Subject": "Amazon S3 Notification", "Message": message["body"]}}]});
            let report = handle(&garage.s3, &sns, &mut backend, &mut dead_letter);
            assert!(report.failed.is_empty(), "{:?}", report.failed);
        }
    }
    drop(backend);
    testkit::oracle::check(&corpus, &observed(index.path(), dead_letter.read_all().unwrap()), None);
}

/// Ten SQS messages, one poison: only that message is answered as failed, and the
/// other nine objects are fully indexed.
fn poison_batch(poison: impl FnOnce(&Garage, &str) -> String) {
    let garage = garage();
    let prefix = unique_prefix("poison");
    let mut messages = Vec::new();
    let mut expected = 0;
    for i in 0..9u64 {
        let key = format!("{prefix}obj-{i}.ndjson.gz");
        messages.push((format!("msg-{i}"), garage.notify(&key, gzip(&ndjson(200 + i, 30)))));
        expected += 30;
    }
    messages.insert(4, ("msg-poison".to_string(), poison(&garage, &prefix)));
    assert_eq!(messages.len(), 10);
    let event = sqs_event(&messages);

    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&garage.s3, &event, &mut backend, &mut dead_letter);

    assert_eq!(report.batch_item_failures(), vec!["msg-poison"], "{:?}", report.failed);
    let good_indexed: u64 = report.sources.iter().filter(|s| s.source.contains("obj-")).map(|s| s.indexed).sum();
    assert_eq!(good_indexed, expected);
    // The poison object may have contributed the records it had before failing; the
    // index holds exactly the nine good objects plus those.
    let poison_indexed: u64 = report.sources.iter().filter(|s| !s.source.contains("obj-")).map(|s| s.indexed).sum();
    assert_eq!(count(&backend), expected + poison_indexed);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn an_sqs_batch_with_a_bad_json_body_fails_only_that_message() {
    poison_batch(|_, _| "{not json".to_string());
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn an_sqs_batch_with_an_undecodable_object_fails_only_that_message() {
    poison_batch(|garage, prefix| {
        let key = format!("{prefix}truncated.ndjson.gz");
        let whole = gzip(&ndjson(299, 200));
        garage.notify(&key, whole[..whole.len() / 2].to_vec())
    });
}

fn three_object_event(garage: &Garage, prefix: &str) -> (serde_json::Value, u64) {
    let mut messages = Vec::new();
    for i in 0..3u64 {
        let key = format!("{prefix}part {i}.ndjson");
        // No event ids: ids come from the object's identity and the record's position.
        let text = String::from_utf8(ndjson(300 + i, 200)).unwrap();
        let body: String = text
            .lines()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                value.as_object_mut().unwrap().remove("event_id");
                value.to_string() + "\n"
            })
            .collect();
        messages.push((format!("m{i}"), garage.notify(&key, body.into_bytes())));
    }
    (sqs_event(&messages), 600)
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn the_same_event_delivered_twice_leaves_the_index_of_one_delivery() {
    let garage = garage();
    let prefix = unique_prefix("twice");
    let (event, expected) = three_object_event(&garage, &prefix);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);

    let first = handle(&garage.s3, &event, &mut backend, &mut dead_letter);
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_eq!(first.summary.indexed, expected);
    let ids = all_ids(&backend);
    assert_eq!(ids.len() as u64, expected);

    let second = handle(&garage.s3, &event, &mut backend, &mut dead_letter);
    assert!(second.failed.is_empty(), "{:?}", second.failed);
    assert_eq!(second.summary.objects_skipped, 3, "completed objects are skipped by their checkpoint");
    assert_eq!(second.summary.indexed, 0);
    assert_eq!(all_ids(&backend), ids, "the index is the index of one delivery");
}

/// One store shared by two handlers at once, as two Lambda instances share an
/// Elasticsearch cluster: `testkit`'s in-memory store, whose clones share it and which,
/// like a `_bulk` `create`, checks every id itself whatever the pipeline's
/// `unseen_source` hint says (that hint is only sound for the single tantivy writer,
/// whose lock keeps a second handler out; see the next test).
#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn two_handlers_on_the_same_objects_at_once_leave_the_index_of_one_delivery() {
    let garage = garage();
    let prefix = unique_prefix("concurrent");
    let (event, expected) = three_object_event(&garage, &prefix);

    let reference_dir = tempfile::tempdir().unwrap();
    let mut reference = tantivy(reference_dir.path());
    handle(&garage.s3, &event, &mut reference, &mut LocalDeadLetter::new(&reference_dir.path().join("dl")));
    let reference_ids = all_ids(&reference);
    assert_eq!(reference_ids.len() as u64, expected);

    let shared = MemoryBackend::new();
    let reports: Vec<HandlerReport> = std::thread::scope(|scope| {
        let handlers: Vec<_> = (0..2)
            .map(|_| {
                let mut backend = shared.clone();
                let mut dead_letter = garage.dead_letter(&prefix);
                let (s3, event) = (&garage.s3, &event);
                scope.spawn(move || handle(s3, event, &mut backend, &mut dead_letter))
            })
            .collect();
        handlers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for report in &reports {
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let s = &report.summary;
        assert_eq!(s.records, s.indexed + s.duplicates + s.rejected, "conservation per handler: {s:?}");
    }
    let indexed: u64 = reports.iter().map(|r| r.summary.indexed).sum();
    assert_eq!(indexed, expected, "each record indexed by exactly one of the two handlers");
    assert_eq!(all_ids(&shared), reference_ids, "the same documents as one delivery");
    assert!(garage.dead_letter(&prefix).read_all().unwrap().is_empty());
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_second_handler_on_a_locked_tantivy_index_acknowledges_nothing() {
    let garage = garage();
    let prefix = unique_prefix("locked");
    let (event, expected) = three_object_event(&garage, &prefix);
    let index = tempfile::tempdir().unwrap();
    let mut first = tantivy(index.path());
    // The second handler of the same event at the same time cannot take the writer:
    // a clear operational error, so the trigger redelivers the whole event.
    let second = indexer::TantivyBackend::open_for_writing(index.path(), indexer::TantivyConfig::default());
    let Err(error) = second else { panic!("the index is locked by the first handler") };
    let error = error.to_string();
    assert!(error.contains("lock"), "{error}");
    let report = handle(&garage.s3, &event, &mut first, &mut garage.dead_letter(&prefix));
    assert_eq!(report.summary.indexed, expected);
    Box::new(first).close().unwrap();
    // The redelivery, once the lock is free, changes nothing.
    let mut again = tantivy(index.path());
    let before = all_ids(&again);
    let report = handle(&garage.s3, &event, &mut again, &mut garage.dead_letter(&prefix));
    assert_eq!(report.summary.objects_skipped, 3);
    assert_eq!(all_ids(&again), before);
    assert_eq!(before.len() as u64, expected);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_deleted_object_a_missing_bucket_and_wrong_credentials_fail_their_message_clearly() {
    let garage = garage();
    let prefix = unique_prefix("missing");
    let gone_key = format!("{prefix}gone.ndjson");
    let etag = garage.put(&gone_key, ndjson(400, 10));
    garage.runtime.block_on(garage.s3.client().delete_object().bucket(&garage.bucket).key(&gone_key).send()).unwrap();
    let good_key = format!("{prefix}good.ndjson");
    let good_etag = garage.put(&good_key, ndjson(401, 10));
    let event = sqs_event(&[
        ("gone".into(), json!({ "Records": [s3_record(&garage.bucket, &gone_key, &etag, 100)] }).to_string()),
        (
            "no-bucket".into(),
            json!({ "Records": [s3_record("tix-logs-no-such-bucket", &good_key, &good_etag, 100)] }).to_string(),
        ),
        ("good".into(), json!({ "Records": [s3_record(&garage.bucket, &good_key, &good_etag, 100)] }).to_string()),
    ]);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&garage.s3, &event, &mut backend, &mut dead_letter);
    assert_eq!(report.batch_item_failures(), vec!["gone", "no-bucket"], "{:?}", report.failed);
    let reason = |id: &str| report.failed.iter().find(|f| f.message_id.as_deref() == Some(id)).unwrap().reason.clone();
    assert!(reason("gone").contains("does not exist"), "{}", reason("gone"));
    assert!(reason("no-bucket").contains("NoSuchBucket"), "{}", reason("no-bucket"));
    assert_eq!(count(&backend), 10, "only the good object is indexed");
    let sources = backend.sources().unwrap();
    let failed: Vec<&SourceRecord> = sources.iter().filter(|s| s.status == SourceStatus::Failed).collect();
    assert_eq!(failed.len(), 2, "{sources:?}");
    let entries = dead_letter.read_all().unwrap();
    assert_eq!(entries.len(), 2, "one dead-letter entry per failed object: {entries:?}");
    assert!(entries.iter().all(|e| e.record.is_none()));

    // Wrong credentials: nothing is acknowledged, the reason says access was refused.
    let bad_config = garage
        .s3
        .client()
        .config()
        .to_builder()
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "GKwrongwrongwrongwrong0000",
            "0".repeat(64),
            None,
            None,
            "test",
        ))
        .build();
    let wrong = S3Context::with_client(aws_sdk_s3::Client::from_conf(bad_config), garage.runtime.handle().clone());
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut local_dead_letter = LocalDeadLetter::new(&index.path().join("dl"));
    let report = handle(&wrong, &event, &mut backend, &mut local_dead_letter);
    assert_eq!(report.batch_item_failures(), vec!["gone", "no-bucket", "good"]);
    let reason = &report.failed[2].reason;
    assert!(reason.contains("GetObject failed"), "{reason}");
    assert!(["403", "Forbidden", "AccessDenied", "InvalidAccessKeyId"].iter().any(|w| reason.contains(w)), "{reason}");
    assert_eq!(count(&backend), 0);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_handler_near_its_deadline_stops_and_reports_the_unfinished_messages() {
    let garage = garage();
    let prefix = unique_prefix("deadline");
    let mut messages = Vec::new();
    for i in 0..4u64 {
        let key = format!("{prefix}obj-{i}.ndjson");
        messages.push((format!("m{i}"), garage.notify(&key, ndjson(500 + i, 3_000))));
    }
    let event = sqs_event(&messages);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);

    // Little time left: nothing may start.
    let expired = Deadline { at: Instant::now(), margin: Duration::from_secs(1) };
    let report = handle_with(&garage.s3, &event, &mut backend, &mut dead_letter, pipeline_config(), Some(expired));
    assert_eq!(report.batch_item_failures(), vec!["m0", "m1", "m2", "m3"]);
    assert!(report.failed.iter().all(|f| f.reason.contains("deadline")), "{:?}", report.failed);
    assert_eq!(count(&backend), 0);

    // The deadline arrives in the middle of the second object: the first is done, the
    // rest are reported, and the redelivery completes the work without doubling it.
    let checks = Arc::new(AtomicU32::new(0));
    let mut config = pipeline_config();
    config.batch_records = 500;
    let seen = checks.clone();
    config.should_stop = Some(Arc::new(move || seen.fetch_add(1, Ordering::SeqCst) >= 11));
    let report = handle_with(&garage.s3, &event, &mut backend, &mut dead_letter, config, None);
    assert_eq!(report.batch_item_failures(), vec!["m1", "m2", "m3"], "{:?}", report.failed);
    assert_eq!(report.sources[0].outcome, SourceOutcome::Completed);
    assert_eq!(report.sources[1].outcome, SourceOutcome::Paused, "stopped with its progress checkpointed");
    let partial = count(&backend);
    assert!(partial > 3_000 && partial < 6_000, "{partial}");
    assert!(dead_letter.read_all().unwrap().is_empty(), "a pause is not a failure: no dead-letter entry");

    let redelivered = handle(&garage.s3, &event, &mut backend, &mut dead_letter);
    assert!(redelivered.failed.is_empty(), "{:?}", redelivered.failed);
    assert_eq!(count(&backend), 12_000, "every record once");
    assert_eq!(redelivered.summary.duplicates, 0, "the paused object continues where it stopped");
    assert_eq!(redelivered.summary.records, 12_000 - partial, "nothing is read twice");
    assert!(dead_letter.read_all().unwrap().is_empty());
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_listed_prefix_follows_pagination() {
    let garage = garage();
    let prefix = unique_prefix("listing");
    for i in 0..1_005u32 {
        garage.s3.put(&garage.bucket, &format!("{prefix}{i:05}.ndjson"), b"{}".to_vec()).unwrap();
    }
    let listed = garage.s3.list(&S3Location { bucket: garage.bucket.clone(), prefix: prefix.clone() }).unwrap();
    assert_eq!(listed.len(), 1_005, "more than one page of 1,000 keys");
    assert!(listed.windows(2).all(|w| w[0].object().key < w[1].object().key));
}
