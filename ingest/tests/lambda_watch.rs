//! The local dev loop for the Lambda, for real: `tix-logs-lambda` run by `cargo lambda
//! watch` (cargo-lambda's runtime emulator, which builds the function with `cargo run`
//! and sends `Lambda-Runtime-Deadline-Ms: 600000`, a duration where AWS sends an epoch
//! time) and sent the committed dev-loop events (`fixtures/events/devloop-*.json`) with
//! `cargo lambda invoke --data-file`, exactly as the README tells a developer to. Judged by
//! the answers, the tantivy index and the S3 dead-letter store, never by log lines.
//!
//! Garage tier: needs the Garage server (`scripts/test.sh`, or `scripts/garage.sh start`
//! and `. target/garage/env`) and cargo-lambda on the PATH (`pip install
//! cargo-lambda==1.9.2`; scripts/test.sh installs it). The events name keys under
//! `devloop/` in the test bucket; the test uploads the sample logs they name under a
//! prefix of its own and rewrites the events to it, so runs never share objects.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The first invocation may wait for `cargo run` to build the function.
const FIRST_ANSWER_WITHIN: Duration = Duration::from_secs(1200);

/// `cargo lambda watch` in a process group of its own, so that dropping it stops the
/// emulator, the `cargo run` it started and the function together, even when a test
/// assertion panics.
struct Watch {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Watch {
    /// Starts the emulator on 127.0.0.1 for the `tix-logs-lambda` binary with the
    /// variables of `env_file`, and returns once it accepts invocations.
    fn start(env_file: &Path, log: PathBuf) -> Watch {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new("cargo")
            .current_dir(WORKSPACE)
            .args(["lambda", "watch", "--ignore-changes", "--locked", "--quiet"])
            .args(["--package", "ingest", "--bin", "tix-logs-lambda"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .arg("--env-file")
            .arg(env_file)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `cargo lambda watch` ({e}): {INSTALL}"));
        let mut watch = Watch { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = watch.child.try_wait().unwrap() {
                panic!("`cargo lambda watch` exited ({status}): {}\n{INSTALL}", watch.log_text());
            }
            assert!(Instant::now() < deadline, "`cargo lambda watch` not listening after 60 s: {}", watch.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
        watch
    }

    /// `cargo lambda invoke --data-file EVENT`: the function's answer, or the error it
    /// reported (`Err`), as the developer's terminal shows them.
    fn invoke(&self, event: &Path, within: Duration) -> Result<Value, String> {
        let mut invoke = Command::new("cargo")
            .current_dir(WORKSPACE)
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port", &self.port.to_string()])
            .args(["--output-format", "json", "--data-file"])
            .arg(event)
            .arg("tix-logs-lambda")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + within;
        while invoke.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = invoke.kill();
                panic!("no answer to {} within {within:?}: {}", event.display(), self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = invoke.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(format!("{stdout}{stderr}"));
        }
        serde_json::from_str(&stdout).map_err(|e| format!("not JSON ({e}): {stdout}{stderr}"))
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // The tail is what explains a failure; the build output before it is long.
        let start = text.len().saturating_sub(6000);
        let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        format!("watch log (tail):\n{}", &text[start..])
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The whole group: cargo-lambda, the `cargo run` it spawned and the function.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

const INSTALL: &str = "cargo-lambda must be on the PATH: `python3 -m pip install cargo-lambda==1.9.2` \
                       (scripts/test.sh installs it)";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(WORKSPACE).join("fixtures/samples/logs").join(name)).unwrap()
}

fn expected(file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(Path::new(WORKSPACE).join("fixtures/samples/EXPECTED.json")).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    expected["files"][file][field].as_u64().unwrap_or_else(|| panic!("EXPECTED.json: {file}.{field}"))
}

/// The committed dev-loop event `name`, with its `devloop/` keys moved under `prefix`,
/// written into `dir`.
fn event_file(name: &str, prefix: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(WORKSPACE).join("fixtures/events").join(name)).unwrap();
    assert!(text.contains("devloop/"), "{name} names no devloop/ key");
    let path = dir.join(name);
    std::fs::write(&path, text.replace("devloop/", prefix)).unwrap();
    path
}

fn indexed_count(index: &Path) -> u64 {
    count(&indexer::TantivyBackend::open_for_reading(index).unwrap())
}

#[test]
#[ignore = "Garage tier: needs Garage and cargo-lambda (scripts/test.sh)"]
fn cargo_lambda_watch_runs_the_function_on_s3_sqs_and_sns_events() {
    let garage = garage();
    let prefix = unique_prefix("lambda-watch");
    // The objects the dev-loop events name, under this run's prefix; the events carry the
    // sample files' MD5s as ETags, which is what Garage answers for a single PUT.
    for file in ["day.ndjson.gz", "day.ndjson.zst", "truncated.ndjson.gz", "day-array.json"] {
        let body = sample(file);
        let md5 = fixtures::md5::md5_hex(&body);
        assert_eq!(garage.put(&format!("{prefix}{file}"), body).trim_matches('"'), md5, "{file}");
    }

    let work = tempfile::tempdir().unwrap();
    let index = work.path().join("index");
    let dead_letter_prefix = format!("{prefix}dead-letter/");
    let env_file = work.path().join("lambda.env");
    let mut env = vec![
        "TIX_BACKEND=tantivy".to_string(),
        format!("TIX_INDEX={}", index.display()),
        format!("TIX_DEAD_LETTER=s3://{}/{dead_letter_prefix}", garage.dl_bucket),
        format!("TIX_TRIGGER_PREFIX=s3://{}/{prefix}", garage.bucket),
        "TIX_PII_KEY=lambda-watch-test-pii-key-0123456789abcdef".to_string(),
        "TIX_LOG=info".to_string(),
    ];
    // The Garage connection, from the environment `. target/garage/env` set up; in a
    // file, so that the secret is not on a command line.
    for name in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        env.push(format!("{name}={}", std::env::var(name).unwrap_or_else(|_| panic!("{name}: {HOW_TO_RUN}"))));
    }
    std::fs::write(&env_file, env.join("\n") + "\n").unwrap();
    let watch = Watch::start(&env_file, work.path().join("watch.log"));

    // 1. A direct S3 notification: 2,000 events, all new.
    let day = expected("day.ndjson.gz", "records");
    let answer = watch
        .invoke(&event_file("devloop-s3.json", &prefix, work.path()), FIRST_ANSWER_WITHIN)
        .unwrap_or_else(|e| panic!("the S3 event failed: {e}\n{}", watch.log_text()));
    assert_eq!(answer["summary"]["records"], day, "{answer}");
    assert_eq!(answer["summary"]["indexed"], day, "{answer}");
    assert_eq!(answer["summary"]["objects_failed"], 0, "{answer}");
    assert_eq!(indexed_count(&index), day);

    // 2. An SQS batch: the same events compressed with zstd (the ones with an event_id are
    // duplicates, the others are new: their ids come from the object) and a truncated gzip
    // object, whose readable records are indexed and whose message alone is redelivered.
    let without_event_id = expected("day.ndjson.zst", "without_event_id");
    let readable = expected("truncated.ndjson.gz", "complete_records_before_cut");
    let answer = watch
        .invoke(&event_file("devloop-sqs.json", &prefix, work.path()), Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("the SQS event failed: {e}\n{}", watch.log_text()));
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "devloop-truncated-0002"}]}));
    assert_eq!(indexed_count(&index), day + without_event_id + readable);
    let dead_letters = garage.dead_letter(&dead_letter_prefix).read_all().unwrap();
    assert_eq!(dead_letters.len(), 1, "one entry, for the truncated object: {dead_letters:?}");
    assert!(dead_letters[0].source.contains("truncated.ndjson.gz"), "{:?}", dead_letters[0]);
    assert_eq!(dead_letters[0].record, None, "an object failure, not a record's: {:?}", dead_letters[0]);

    // 3. An SNS notification carrying an S3 notification: the same events as a JSON array.
    let answer = watch
        .invoke(&event_file("devloop-sns.json", &prefix, work.path()), Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("the SNS event failed: {e}\n{}", watch.log_text()));
    assert_eq!(answer["summary"]["records"], day, "{answer}");
    assert_eq!(answer["summary"]["indexed"], without_event_id, "{answer}");
    assert_eq!(answer["summary"]["duplicates"], day - without_event_id, "{answer}");
    assert_eq!(indexed_count(&index), day + 2 * without_event_id + readable);
    assert_eq!(garage.dead_letter(&dead_letter_prefix).read_all().unwrap().len(), 1, "no new dead letters");
}
