//! Shared by the CLI's tests: the binary as they run it, an index ingested from events
//! by it, and for the S3 tier (`s3_cli`, `es_cli`, `reconcile`, `redrive_cli`) ingest's
//! S3 client on `testkit`'s Garage harness, key prefixes no other test or earlier run
//! uses, and what an index and its dead letters hold, for the oracle.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use indexer::TantivyBackend;
use ingest::dead_letter::DeadLetterEntry;
use ingest::s3::S3Context;
use serde_json::Value;
use testkit::oracle::{Observed, ObservedDeadLetter};

/// `tix-logs` in `dir`, with the tests' PII key and no store settings from the
/// environment.
pub fn tix(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tix-logs"));
    command
        .current_dir(dir)
        .env("TIX_PII_KEY", "test-pii-key-for-the-tests-0123456789")
        .env_remove("TIX_INDEX")
        .env_remove("TIX_BACKEND");
    command
}

/// A fresh directory whose `index` holds `events`, written to the log `name` there and
/// ingested by `tix-logs` run as `bin` (dead letters in `dl`).
pub fn ingested(mut bin: Command, name: &str, events: Vec<Value>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join(name);
    std::fs::write(&log, testkit::events::ndjson(events)).expect("write the log");
    let out = bin
        .current_dir(dir.path())
        .args(["ingest", "--json", "--index", "index", "--dead-letter", "dl"])
        .arg(&log)
        .output()
        .expect("run tix-logs ingest");
    assert_eq!(out.status.code(), Some(0), "ingest: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// A Garage connection, with the runtime its client blocks on.
pub struct Garage {
    pub s3: S3Context,
    pub bucket: String,
    pub dl_bucket: String,
    // Declared last: dropped after the client that uses it.
    _runtime: tokio::runtime::Runtime,
}

pub fn garage() -> Garage {
    let testkit::garage::Garage { bucket, dl_bucket, runtime, .. } = testkit::garage::Garage::from_env();
    let s3 = S3Context::from_env_blocking(runtime.handle().clone());
    Garage { s3, bucket, dl_bucket, _runtime: runtime }
}

/// `cli-tests/TEST/NANOS-PID/`: a prefix of its own for each test run.
pub fn unique_prefix(test: &str) -> String {
    testkit::garage::unique_prefix("cli-tests", test)
}

/// What the index at `index` and the given dead-letter entries hold, for the oracle.
pub fn observe(index: &Path, entries: Vec<DeadLetterEntry>) -> Observed {
    Observed::of_store(&TantivyBackend::open_for_reading(index).unwrap(), observed_dead_letters(entries))
}

/// Dead-letter entries as the oracle reads them.
pub fn observed_dead_letters(entries: Vec<DeadLetterEntry>) -> Vec<ObservedDeadLetter> {
    entries.into_iter().map(|e| ObservedDeadLetter { source: e.source, record: e.record, reason: e.reason }).collect()
}
