//! `tix-logs ingest --event FILE --backend elasticsearch --dead-letter s3://...`: the real
//! binary runs a saved SQS event through the Lambda's handler into `testkit`'s fake
//! Elasticsearch cluster (configured by `TIX_ES_URL` and `TIX_ES_API_KEY`), objects and
//! dead letters in Garage. Judged by the conservation oracle from what the cluster stored
//! and the dead letters in Garage, against the in-process handler's fault-free run of
//! the same objects; operational faults (a write block, refused credentials) must exit 2
//! with nothing acknowledged, and the rerun after the fix must complete.
//!
//! The S3 tier: ignored without Garage (`scripts/test.sh` starts it).

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::{garage, unique_prefix, Garage};

use indexer::elasticsearch::config::Secret;
use indexer::{Backend, ElasticsearchBackend, EsAuth};
use ingest::pipeline::PipelineConfig;
use ingest::redact::Redactor;
use ingest::s3::{S3DeadLetter, S3Location};
use serde_json::{json, Map, Value};
use testkit::es_server::FakeCluster;
use testkit::garage::{s3_record, sqs_event};
use testkit::oracle::{check, Corpus, ObservedDeadLetter};

const BINARY: &str = env!("CARGO_BIN_EXE_tix-logs");
const PREFIX: &str = indexer::elasticsearch::DEFAULT_INDEX_PREFIX;
const API_KEY: &str = "tix-ingest:s3cr3t-api-key-value";
const PII_KEY: &str = "test-pii-key-for-the-tests-0123456789";

/// A corpus uploaded to Garage, the saved SQS event naming its objects, and the
/// documents the in-process handler stores for it without faults.
struct Setup {
    garage: Garage,
    corpus: Corpus,
    prefix: String,
    dir: tempfile::TempDir,
    event_path: std::path::PathBuf,
    reference: std::collections::BTreeMap<String, Map<String, Value>>,
}

fn setup(test: &str, seed: u64) -> Setup {
    let garage = garage();
    let corpus = Corpus::generate(3, 120, seed);
    let prefix = unique_prefix(test);
    let mut messages = Vec::new();
    for (i, file) in corpus.files().iter().enumerate() {
        let key = format!("{prefix}in/{}", file.file_name().unwrap().to_string_lossy());
        let body = std::fs::read(file).unwrap();
        let size = body.len();
        let etag = garage.s3.put(&garage.bucket, &key, body).unwrap();
        let notification = json!({"Records": [s3_record(&garage.bucket, &key, &etag, size)]});
        messages.push((format!("m{i}"), notification.to_string()));
    }
    let event = sqs_event(&messages);
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("saved-sqs-event.json");
    std::fs::write(&event_path, serde_json::to_vec_pretty(&event).unwrap()).unwrap();

    // The fault-free reference: the Lambda's handler in this process.
    let cluster = FakeCluster::start();
    let config = testkit::es::fast_config(&cluster.url(), EsAuth::ApiKey(Secret::new(API_KEY)));
    let mut backend = ElasticsearchBackend::connect(config).unwrap();
    backend.ensure_ready().unwrap();
    let dl_prefix = format!("{prefix}dl-reference/");
    let mut dead_letter = dead_letter_store(&garage, &dl_prefix);
    let report = ingest::trigger::handle_event(
        &std::fs::read(&event_path).unwrap(),
        &garage.s3,
        &mut backend,
        &mut dead_letter,
        PipelineConfig::new(Redactor::new(PII_KEY.as_bytes())),
        None,
        None,
    )
    .unwrap();
    assert!(report.batch_item_failures().is_empty());
    let observed = cluster.observed(PREFIX, dead_letters(&garage, &dl_prefix));
    check(&corpus, &observed, None);
    Setup { garage, corpus, prefix, dir, event_path, reference: observed.docs }
}

fn dead_letter_store(garage: &Garage, prefix: &str) -> S3DeadLetter {
    S3DeadLetter::new(garage.s3.clone(), S3Location { bucket: garage.dl_bucket.clone(), prefix: prefix.to_string() })
}

fn dead_letters(garage: &Garage, prefix: &str) -> Vec<ObservedDeadLetter> {
    support::observed_dead_letters(dead_letter_store(garage, prefix).read_all().unwrap())
}

impl Setup {
    fn dl(&self, name: &str) -> String {
        format!("{}dl-{name}/", self.prefix)
    }

    /// `tix-logs ingest --json --backend elasticsearch --dead-letter s3://.../DL --event FILE`.
    fn ingest_event(&self, cluster: &FakeCluster, dl: &str) -> Output {
        tix(self.dir.path(), cluster)
            .args(["ingest", "--json", "--backend", "elasticsearch", "--dead-letter"])
            .arg(format!("s3://{}/{dl}", self.garage.dl_bucket))
            .arg("--event")
            .arg(&self.event_path)
            .output()
            .unwrap()
    }

    fn check(&self, cluster: &FakeCluster, dl: &str) {
        check(&self.corpus, &cluster.observed(PREFIX, dead_letters(&self.garage, dl)), Some(&self.reference));
    }
}

fn tix(dir: &Path, cluster: &FakeCluster) -> Command {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars() {
        if name.starts_with("TIX_ES_") {
            command.env_remove(name);
        }
    }
    command
        .current_dir(dir)
        .env("TIX_PII_KEY", PII_KEY)
        .env("TIX_ES_URL", cluster.url())
        .env("TIX_ES_API_KEY", API_KEY)
        .env_remove("TIX_INDEX")
        .env_remove("TIX_BACKEND");
    command
}

/// The `--json` summary of a run that completed every message.
fn completed(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(summary["batch_item_failures"], json!([]), "{summary}");
    summary
}

/// An operational error: exit 2, no summary (nothing to acknowledge), nothing stored,
/// nothing dead-lettered. Returns stderr.
fn stopped(output: &Output, cluster: &FakeCluster, s: &Setup, dl: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "an operational error exits 2: {stderr}");
    assert!(
        serde_json::from_slice::<Value>(&output.stdout).is_err(),
        "no batch_item_failures answer is printed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(cluster.events(PREFIX).is_empty(), "nothing stored");
    assert!(dead_letters(&s.garage, dl).is_empty(), "nothing dead-lettered");
    stderr
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn ingest_event_into_elasticsearch_indexes_every_good_record_once_and_prints_no_batch_item_failures() {
    let s = setup("es-cli-clean", 2_000);
    let cluster = FakeCluster::start();
    let dl = s.dl("clean");
    let summary = completed(&s.ingest_event(&cluster, &dl));
    assert_eq!(summary["indexed"], s.corpus.good());
    assert_eq!(summary["rejected"], s.corpus.records() - s.corpus.good());
    assert!(cluster.requests().iter().any(|r| r.header("authorization").is_some_and(|a| a.starts_with("ApiKey "))));
    s.check(&cluster, &dl);

    // Run again (a redelivery): every object is skipped by its checkpoint.
    let again = completed(&s.ingest_event(&cluster, &dl));
    assert_eq!(again["objects_skipped"], 3, "{again}");
    s.check(&cluster, &dl);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn ingest_event_exits_2_on_a_write_block_acknowledges_nothing_and_the_rerun_completes() {
    let s = setup("es-cli-block", 2_100);
    let cluster = FakeCluster::start();
    cluster.write_block(true);
    let dl = s.dl("block");
    let stderr = stopped(&s.ingest_event(&cluster, &dl), &cluster, &s, &dl);
    assert!(stderr.contains("write-blocked") && stderr.contains("index.blocks.write"), "{stderr}");
    assert!(cluster.items_answered(403, Some("cluster_block_exception")) > 0, "the block refused the writes");

    cluster.write_block(false);
    completed(&s.ingest_event(&cluster, &dl));
    s.check(&cluster, &dl);
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn ingest_event_exits_2_on_refused_credentials_without_leaking_them_and_the_rerun_completes() {
    let s = setup("es-cli-auth", 2_200);
    let cluster = FakeCluster::start();
    cluster.auth_fail(Some(401));
    let dl = s.dl("auth");
    let stderr = stopped(&s.ingest_event(&cluster, &dl), &cluster, &s, &dl);
    assert!(stderr.contains("401") && stderr.contains("TIX_ES_API_KEY"), "says what to check: {stderr}");
    assert!(!stderr.contains("s3cr3t-api-key-value"), "{stderr}");
    assert!(!cluster.requests().is_empty(), "the cluster was asked");

    cluster.auth_fail(None);
    completed(&s.ingest_event(&cluster, &dl));
    s.check(&cluster, &dl);
}
