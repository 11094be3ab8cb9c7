//! The PII sweep: a corpus with card numbers in every layout a person types, e-mail
//! addresses, phone numbers, PINs and magnetic-stripe track data, in fields, free text,
//! JSON numbers, field names and broken records, is run through the pipeline, and every
//! place the pipeline writes is searched with `testkit::pii` (an oracle written apart
//! from the redactor) and for the planted values themselves:
//!
//! - tantivy documents and checkpoint (source) documents, local dead-letter files with
//!   their `reason`s;
//! - every request body sent to the scripted Elasticsearch cluster (`_bulk` bodies
//!   included) and its stored events and checkpoint documents, and the dead-letter entry
//!   of a document the cluster refused;
//! - (S3 tier, Garage) dead-letter objects in S3, and the Lambda binary's stdout (EMF
//!   lines included) and stderr.
//!
//! Every planted record is first checked to have reached the pipeline (indexed, or
//! dead-lettered with its record number), so a sweep over an empty sink cannot pass.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use indexer::{Backend, SearchRequest, Store};
use ingest::dead_letter::LocalDeadLetter;
use ingest::pipeline::{Pipeline, PipelineConfig};
use ingest::source::LocalFile;
use serde_json::{json, Map, Value};
use support::es::{es_backend, es_pipeline_config, PREFIX};
use support::*;
use testkit::lambda_api::RuntimeApi;
use testkit::pii;
use testkit::FakeCluster;

/// Dead-letter fields that are not record content: `id` (a hash, judged by the id
/// tests) and `mtime_ns` (a file's modification time, 19 digits, Luhn-valid one time in
/// ten).
const SKIP_KEYS: &[&str] = &["id", "mtime_ns"];

/// Every file under `dir`, as text.
fn files_text(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(listing) = std::fs::read_dir(&d) else { continue };
        for entry in listing.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    out
}

fn run_pipeline(backend: &mut impl Backend, dl_dir: &Path, file: &Path, config: PipelineConfig) {
    let mut dead_letter = LocalDeadLetter::new(dl_dir);
    let mut pipeline = Pipeline::new(backend, &mut dead_letter, config);
    pipeline.ingest(&LocalFile::new(file).unwrap()).unwrap();
    pipeline.finish().unwrap();
}

/// The dead-letter entries under `dl_dir` hold exactly the `expected` record numbers, and
/// every file there, reasons included, is clean.
fn sweep_local_dead_letters(dl_dir: &Path, expected: &[u64], planted: &[&str]) {
    let entries = LocalDeadLetter::read_all(dl_dir).unwrap();
    let records: BTreeSet<u64> = entries.iter().filter_map(|e| e.record).collect();
    assert_eq!(records, expected.iter().copied().collect(), "every planted bad record is dead-lettered: {entries:#?}");
    assert!(entries.iter().any(|e| e.raw.contains("************1111")), "the raw lines reached the store");
    let files = files_text(dl_dir);
    assert!(!files.is_empty());
    for (path, text) in files {
        pii::check_lines(&format!("dead-letter file {path}"), &text, planted, SKIP_KEYS);
    }
    for e in &entries {
        pii::check_text("a dead-letter reason", &e.reason, planted);
    }
}

#[test]
fn the_oracle_sees_every_planted_value_before_redaction() {
    // Without this, a sweep could pass because the oracle is blind to the corpus.
    let text = pii::planted_corpus().text;
    for card in pii::CARDS {
        assert!(pii::find_card(card).is_some(), "{card}");
    }
    for value in pii::planted() {
        assert_eq!(pii::find_planted(&text, &[value]), Some(value));
    }
    assert!(std::panic::catch_unwind(|| pii::check_lines("raw corpus", &text, &pii::planted(), &[])).is_err());
}

#[test]
fn tantivy_documents_checkpoints_and_local_dead_letters_hold_no_pii() {
    let pii::Planted { text, indexed: ids, rejected: bad } = pii::planted_corpus();
    let planted = pii::planted();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bookings.ndjson");
    std::fs::write(&file, &text).unwrap();
    let index = dir.path().join("index");
    let dl_dir = dir.path().join("dead");
    {
        let mut backend = tantivy(&index);
        run_pipeline(&mut backend, &dl_dir, &file, pipeline_config());
    }

    let docs = indexed(&index);
    let by_event: std::collections::BTreeMap<&str, &Map<String, Value>> =
        docs.values().map(|d| (d["event_id"].as_str().unwrap(), d)).collect();
    for id in &ids {
        assert!(by_event.contains_key(id.as_str()), "{id} was indexed");
    }
    assert_eq!(docs.len(), ids.len());
    for (id, doc) in &docs {
        pii::check_json(&format!("tantivy document {id}"), &Value::Object(doc.clone()), &planted, &[]);
    }
    let booking = by_event["sweep-booking"];
    assert_eq!(booking["message"], "BK-20240205-000123 seat R12-S5 v1.2.3", "no false positive");
    assert_eq!(by_event["sweep-card-0"]["message"], "paid with ************1111 ok");
    assert!(by_event["sweep-payment"]["payment"].get("PIN").is_none());

    let backend = indexer::TantivyBackend::open_for_reading(&index).unwrap();
    let sources = backend.sources().unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].rejected, bad.len() as u64);
    pii::check_json("tantivy checkpoint", &serde_json::to_value(&sources).unwrap(), &planted, &[]);
    let hits = backend.search(&SearchRequest { limit: 1000, ..SearchRequest::default() }).unwrap();
    for hit in hits.hits {
        pii::check_text("a search hit id", &hit.id, &planted);
    }

    sweep_local_dead_letters(&dl_dir, &bad, &planted);
}

#[test]
fn elasticsearch_bulk_bodies_stored_documents_and_checkpoints_hold_no_pii() {
    let pii::Planted { text, indexed: ids, rejected: bad } = pii::planted_corpus();
    let planted = pii::planted();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bookings.ndjson");
    std::fs::write(&file, &text).unwrap();
    let dl_dir = dir.path().join("dead");
    let cluster = FakeCluster::start();
    // One document refused by the cluster: its dead-letter entry carries the cluster's
    // reason and the document as sent.
    cluster.set_item_faults(|item| (item.source["event_id"] == "sweep-refused").then_some(400));
    let mut backend = es_backend(&cluster);
    run_pipeline(&mut backend, &dl_dir, &file, es_pipeline_config());

    let events = cluster.events(PREFIX);
    let stored: BTreeSet<&str> = events.iter().map(|(_, d)| d["event_id"].as_str().unwrap()).collect();
    for id in ids.iter().filter(|id| *id != "sweep-refused") {
        assert!(stored.contains(id.as_str()), "{id} was indexed");
    }
    assert!(!stored.contains("sweep-refused"));

    let requests = cluster.requests();
    let bulk: Vec<_> = requests.iter().filter(|r| r.path().ends_with("_bulk")).collect();
    assert!(!bulk.is_empty());
    let sent: usize = bulk.iter().map(|r| r.bulk_lines().len()).sum();
    assert!(sent >= ids.len(), "every good record was sent: {sent}");
    for request in &requests {
        let body = String::from_utf8_lossy(&request.body);
        pii::check_lines(&format!("{} {} body", request.method, request.target), &body, &planted, &["_id"]);
        pii::check_text("a request target", &request.target, &planted);
    }
    for (id, doc) in &events {
        pii::check_json(&format!("stored document {id}"), &Value::Object(doc.clone()), &planted, &[]);
    }
    let checkpoints = cluster.checkpoints(PREFIX);
    assert!(!checkpoints.is_empty());
    for checkpoint in checkpoints {
        pii::check_json("checkpoint document", &Value::Object(checkpoint), &planted, &[]);
    }

    let mut expected = bad.clone();
    expected.push(ids.iter().position(|id| id == "sweep-refused").unwrap() as u64 + 1);
    expected.sort();
    sweep_local_dead_letters(&dl_dir, &expected, &planted);
    let refused =
        LocalDeadLetter::read_all(&dl_dir).unwrap().into_iter().find(|e| e.raw.contains("refuse me")).unwrap();
    assert!(refused.raw.contains("************1111"), "{refused:?}");
}

// ---- S3 tier ----

/// A key prefix of its own for one test, its clock and process id in hex: object keys
/// reach logs and checkpoints, and a decimal nanosecond clock is 19 digits, Luhn-valid
/// one time in ten, which the oracle would rightly call a card number.
fn hex_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tests/{test}/{nanos:x}-{:x}/", std::process::id())
}

/// Every object under `prefix` of the dead-letter bucket, as text.
fn s3_objects(garage: &Garage, prefix: &str) -> Vec<(String, String)> {
    let client = garage.s3.client().clone();
    garage.runtime.block_on(async {
        let listing = client.list_objects_v2().bucket(&garage.dl_bucket).prefix(prefix).send().await.unwrap();
        let mut out = Vec::new();
        for object in listing.contents() {
            let key = object.key().unwrap().to_owned();
            let body = client.get_object().bucket(&garage.dl_bucket).key(&key).send().await.unwrap().body;
            let bytes = body.collect().await.unwrap().into_bytes();
            out.push((key, String::from_utf8_lossy(&bytes).into_owned()));
        }
        out
    })
}

fn sweep_s3_dead_letters(garage: &Garage, prefix: &str, expected: &[u64], planted: &[&str]) {
    let entries = garage.dead_letter(prefix).read_all().unwrap();
    let records: BTreeSet<u64> = entries.iter().filter_map(|e| e.record).collect();
    assert_eq!(records, expected.iter().copied().collect(), "every planted bad record is dead-lettered in S3");
    let objects = s3_objects(garage, prefix);
    assert!(!objects.is_empty(), "dead-letter objects under {prefix}");
    for (key, text) in objects {
        pii::check_lines(&format!("dead-letter object {key}"), &text, planted, SKIP_KEYS);
        pii::check_text("a dead-letter key", &key, planted);
    }
}

#[test]
#[ignore = "needs Garage (S3 tier: scripts/test.sh)"]
fn s3_dead_letter_objects_hold_no_pii() {
    let garage = garage();
    let prefix = hex_prefix("pii-sweep-s3");
    let pii::Planted { text, indexed: ids, rejected: bad } = pii::planted_corpus();
    let planted = pii::planted();
    let event = json!({"Records": [serde_json::from_str::<Value>(&garage.notify(&format!("{prefix}in/day.ndjson.gz"), gzip(text.as_bytes()))).unwrap()["Records"][0]]});
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let dl_prefix = format!("{prefix}dead/");
    let mut dead_letter = garage.dead_letter(&dl_prefix);
    let report = handle(&garage.s3, &event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(count(&backend), ids.len() as u64);
    sweep_s3_dead_letters(&garage, &dl_prefix, &bad, &planted);
}

#[test]
#[ignore = "needs Garage (S3 tier: scripts/test.sh)"]
fn the_lambdas_stdout_stderr_emf_lines_and_s3_dead_letters_hold_no_pii() {
    let garage = garage();
    let prefix = hex_prefix("pii-sweep-lambda");
    let pii::Planted { text, indexed: ids, rejected: bad } = pii::planted_corpus();
    let planted = pii::planted();
    let event = sqs_event(&[("m0".into(), garage.notify(&format!("{prefix}in/day.ndjson"), text.into_bytes()))]);
    let index = tempfile::tempdir().unwrap();
    let dl_prefix = format!("{prefix}dead/");
    let api = RuntimeApi::start();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tix-logs-lambda"));
    api.configure(&mut command);
    command
        .env_remove("TIX_PII_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("TIX_BACKEND", "tantivy")
        .env("TIX_INDEX", index.path())
        .env("TIX_PII_KEY", support::es::PII_KEY)
        .env("TIX_DEAD_LETTER", format!("s3://{}/{dl_prefix}", garage.dl_bucket));
    let mut child = command.spawn().unwrap();
    let answer = api.invoke("req-1", &event, &mut child);
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let body = answer.into_response("req-1", &format!("stderr: {stderr}"));
    assert_eq!(body, json!({"batchItemFailures": []}), "stderr: {stderr}");

    let emf: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert!(!emf.is_empty(), "EMF lines on stdout: {stdout}");
    assert_eq!(emf.iter().map(|m| m["Indexed"].as_u64().unwrap_or(0)).sum::<u64>(), ids.len() as u64, "{stdout}");
    assert!(!stderr.trim().is_empty(), "the function logged something to sweep");
    pii::check_lines("Lambda stdout", &stdout, &planted, &[]);
    pii::check_lines("Lambda stderr", &stderr, &planted, &[]);

    let backend = indexer::TantivyBackend::open_for_reading(index.path()).unwrap();
    assert_eq!(count(&backend), ids.len() as u64);
    pii::check_json("Lambda checkpoint", &serde_json::to_value(backend.sources().unwrap()).unwrap(), &planted, &[]);
    sweep_s3_dead_letters(&garage, &dl_prefix, &bad, &planted);
}
