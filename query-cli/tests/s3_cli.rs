//! `tix-logs ingest` against S3 (Garage on 127.0.0.1, started by `scripts/garage.sh`):
//! prefixes, S3 dead letters, and `--event` answering exactly what the Lambda answers.
//! Ignored by a plain `cargo test`; `scripts/test.sh` runs them with Garage up.

mod support;

use support::{garage, tix, unique_prefix};

use fixtures::samples::gzip;
use indexer::{Backend, SearchRequest, Store, TantivyBackend, TantivyConfig};
use ingest::pipeline::PipelineConfig;
use ingest::redact::Redactor;
use ingest::s3::{S3DeadLetter, S3Location};
use serde_json::{json, Value};
use testkit::events::generated as ndjson;
use testkit::garage::{s3_record, sqs_event};
use testkit::oracle::{check, Corpus};

fn count(index: &std::path::Path) -> u64 {
    TantivyBackend::open_for_reading(index).unwrap().count(&SearchRequest::default()).unwrap()
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_prefix_of_120_objects_adds_up_to_its_objects() {
    let garage = garage();
    let prefix = unique_prefix("prefix");
    let mut expected_records = 0;
    let mut expected_rejected = 0;
    for i in 0..120u64 {
        let mut body = ndjson(1_000 + i, 5 + i % 7);
        expected_records += 5 + i % 7;
        if i % 10 == 0 {
            body.extend_from_slice(
                b"{\"type\":\"booking.confirmed\",\"ts\":\"2024-02-05T10:00:00Z\",\"amount\":\"lots\"}\n",
            );
            expected_records += 1;
            expected_rejected += 1;
        }
        let body = if i % 2 == 0 { gzip(&body) } else { body };
        garage.s3.put(&garage.bucket, &format!("{prefix}{i:03} part.ndjson"), body).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = format!("s3://{}/{prefix}", garage.dl_bucket);
    let output = tix(dir.path())
        .args(["ingest", "--json", "--dead-letter", &dead_letter, &format!("s3://{}/{prefix}", garage.bucket)])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["objects"], 120);
    assert_eq!(summary["objects_failed"], 0);
    assert_eq!(summary["records"], expected_records);
    assert_eq!(summary["rejected"], expected_rejected);
    assert_eq!(summary["indexed"], expected_records - expected_rejected);
    assert_eq!(count(&dir.path().join("tix-index")), expected_records - expected_rejected, "counted in the index");
    let entries =
        S3DeadLetter::new(garage.s3.clone(), S3Location { bucket: garage.dl_bucket.clone(), prefix: prefix.clone() })
            .read_all()
            .unwrap();
    assert_eq!(entries.len() as u64, expected_rejected, "counted in the S3 dead-letter store");
    assert!(entries.iter().all(|e| e.reason.contains("amount")), "{entries:?}");

    // Again: every object is skipped by its checkpoint, the index is unchanged.
    let again = tix(dir.path())
        .args(["ingest", "--json", "--dead-letter", &dead_letter, &format!("s3://{}/{prefix}", garage.bucket)])
        .output()
        .unwrap();
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["objects_skipped"], 120);
    assert_eq!(count(&dir.path().join("tix-index")), expected_records - expected_rejected);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn ingest_event_prints_the_batch_item_failures_the_lambda_returns() {
    let garage = garage();
    let prefix = unique_prefix("event");
    let mut messages = Vec::new();
    for i in 0..4u64 {
        let key = format!("{prefix}obj {i}.ndjson.gz");
        let body = if i == 2 {
            let whole = gzip(&ndjson(2_000 + i, 100));
            whole[..whole.len() - 20].to_vec()
        } else {
            gzip(&ndjson(2_000 + i, 100))
        };
        let size = body.len();
        let etag = garage.s3.put(&garage.bucket, &key, body).unwrap();
        let notification = json!({"Records": [s3_record(&garage.bucket, &key, &etag, size)]});
        messages.push((format!("m-{i}"), notification.to_string()));
    }
    messages.push(("m-bad".to_string(), "not json".to_string()));
    let event = sqs_event(&messages);
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("saved-sqs-event.json");
    std::fs::write(&event_path, serde_json::to_vec_pretty(&event).unwrap()).unwrap();

    let output = tix(dir.path()).args(["ingest", "--json", "--event"]).arg(&event_path).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "failed messages make exit 1: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let expected = json!([{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-bad"}]);
    assert_eq!(summary["batch_item_failures"], expected);

    // The Lambda's handler on the same event, into another index, answers the same.
    let lambda_index = tempfile::tempdir().unwrap();
    let mut backend = TantivyBackend::open_for_writing(lambda_index.path(), TantivyConfig::default()).unwrap();
    backend.ensure_ready().unwrap();
    let mut dead_letter = ingest::dead_letter::LocalDeadLetter::new(&lambda_index.path().join("dl"));
    let report = ingest::trigger::handle_event(
        &std::fs::read(&event_path).unwrap(),
        &garage.s3,
        &mut backend,
        &mut dead_letter,
        PipelineConfig::new(Redactor::new(b"test-pii-key-for-the-tests-0123456789")),
        None,
        None,
    )
    .unwrap();
    let lambda_answer: Vec<Value> =
        report.batch_item_failures().into_iter().map(|id| json!({"itemIdentifier": id})).collect();
    assert_eq!(Value::from(lambda_answer), expected);
    assert_eq!(summary["indexed"], report.summary.indexed);
    assert_eq!(count(&dir.path().join("tix-index")), backend.count(&SearchRequest::default()).unwrap());
    let s = &summary;
    assert_eq!(
        s["records"],
        s["indexed"].as_u64().unwrap() + s["duplicates"].as_u64().unwrap() + s["rejected"].as_u64().unwrap()
    );

    // `--time-budget` plays the Lambda's remaining time: too short for any object, every
    // message is answered for redelivery and nothing is indexed; the redelivery without a
    // budget then completes the good ones.
    let short = tempfile::tempdir().unwrap();
    let output = tix(short.path())
        .args(["ingest", "--json", "--time-budget", "1ms", "--event"])
        .arg(&event_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let out_of_time: Value = serde_json::from_slice(&output.stdout).unwrap();
    // Every read takes at least one batch (so redeliveries make progress): the first
    // object (100 records, one batch) may complete if it started within the 0.75 ms before
    // the stop; nothing after it does.
    let rest: Vec<Value> = ["m-1", "m-2", "m-3", "m-bad"].iter().map(|id| json!({"itemIdentifier": id})).collect();
    let failures = out_of_time["batch_item_failures"].as_array().unwrap().clone();
    let first_done = failures.first() != Some(&json!({"itemIdentifier": "m-0"}));
    assert_eq!(failures[usize::from(!first_done)..], rest[..], "{out_of_time}");
    assert!(out_of_time["indexed"].as_u64().unwrap() <= 100, "{out_of_time}");
    let output = tix(short.path()).args(["ingest", "--json", "--event"]).arg(&event_path).output().unwrap();
    let redelivered: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(redelivered["batch_item_failures"], expected);
    assert_eq!(count(&short.path().join("tix-index")), count(&dir.path().join("tix-index")));

    // Without --event there is nothing to play the remaining time of.
    let output = tix(short.path()).args(["ingest", "--time-budget", "30s", "x.ndjson"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
}

/// `--time-budget` shorter than one object needs: each run indexes what fits, records
/// where it stopped and answers the message for redelivery; each redelivery
/// fast-forwards and goes on, until the object completes. Judged by the conservation
/// oracle from the index and the S3 dead letters, against a run without a budget.
#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn ingest_event_with_a_short_time_budget_completes_a_large_object_over_several_runs() {
    let garage = garage();
    let prefix = unique_prefix("resume");
    let corpus = Corpus::generate(1, 30_000, 0x5e5);
    let file = &corpus.files()[0];
    let key = format!("{prefix}in/{}", file.file_name().unwrap().to_string_lossy());
    let body = std::fs::read(file).unwrap();
    let (size, etag) = (body.len(), garage.s3.put(&garage.bucket, &key, body).unwrap());
    let notification = json!({"Records": [s3_record(&garage.bucket, &key, &etag, size)]});
    let event = sqs_event(&[("m-big".to_string(), notification.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, event.to_string()).unwrap();
    let run = |index: &str, dead_letter: &str, budget: Option<String>| -> Value {
        let mut command = tix(dir.path());
        command.args(["ingest", "--json", "--index", index, "--dead-letter", dead_letter]);
        if let Some(budget) = budget {
            command.args(["--time-budget", &budget]);
        }
        let output = command.arg("--event").arg(&event_path).output().unwrap();
        assert!(output.status.code().is_some_and(|c| c < 2), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let dl = |name: &str| format!("s3://{}/{prefix}{name}/", garage.dl_bucket);
    let observe = |index: &str, name: &str| {
        let entries = S3DeadLetter::new(
            garage.s3.clone(),
            S3Location { bucket: garage.dl_bucket.clone(), prefix: format!("{prefix}{name}/") },
        )
        .read_all()
        .unwrap();
        support::observe(&dir.path().join(index), entries)
    };

    let whole = run("reference", &dl("dl-reference"), None);
    assert_eq!(whole["batch_item_failures"], json!([]), "{whole}");
    let reference = observe("reference", "dl-reference");
    check(&corpus, &reference, None);

    // A fifth of what the whole object took: several runs, each stopping midway.
    let budget_ms = (whole["elapsed_ms"].as_u64().unwrap() / 5).max(200);
    let mut runs = Vec::new();
    while runs.last().is_none_or(|r: &Value| r["batch_item_failures"] != json!([])) {
        assert!(runs.len() < 40, "no end after 40 runs of {budget_ms} ms: {:?}", runs.last());
        runs.push(run("budgeted", &dl("dl-budgeted"), Some(format!("{budget_ms}ms"))));
    }
    eprintln!("the object took {} runs of {budget_ms} ms", runs.len());
    assert!(runs.len() >= 3, "the object needed {} runs of {budget_ms} ms", runs.len());
    let sum = |field: &str| runs.iter().map(|r| r[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("records"), corpus.records(), "the runs read each record once: {runs:?}");
    assert_eq!(sum("objects_paused"), runs.len() as u64 - 1, "every run but the last paused");
    check(&corpus, &observe("budgeted", "dl-budgeted"), Some(&reference.docs));
}
