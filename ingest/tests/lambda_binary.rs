//! The `tix-logs-lambda` binary itself, talking to a loopback Lambda runtime API (the
//! documented `/2018-06-01/runtime/...` HTTP interface, `testkit::lambda_api`) as the
//! Lambda service would, with AWS's deadline shape and with `cargo lambda`'s emulator's.
//! The refusal tests need nothing else; the invocation test reads objects from Garage.

mod support;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;
use testkit::lambda_api::{DeadlineShape, RuntimeApi};

const BINARY: &str = env!("CARGO_BIN_EXE_tix-logs-lambda");

/// The binary with its output captured and no PII key from the caller's environment.
fn lambda_command() -> Command {
    let mut command = Command::new(BINARY);
    command.env_remove("TIX_PII_KEY").stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// The binary configured for `api`, as the Lambda service starts it.
fn lambda_for(api: &RuntimeApi) -> Command {
    let mut command = lambda_command();
    api.configure(&mut command);
    command
}

/// What one invocation of the function came to.
struct Run {
    /// The answer it posted for `req-1`.
    body: Value,
    stdout: String,
    stderr: String,
}

/// Starts the function on a tantivy index at `index`, with dead letters under `prefix`
/// and `env` besides, invokes it once with `event` (request `req-1`) through `api`, and
/// stops it. An error posted instead of an answer fails the test.
fn invoke_once(
    api: RuntimeApi,
    index: &std::path::Path,
    garage: &Garage,
    prefix: &str,
    env: &[(&str, String)],
    event: &Value,
) -> Run {
    let mut command = lambda_for(&api);
    command
        .env("TIX_BACKEND", "tantivy")
        .env("TIX_INDEX", index)
        .env("TIX_PII_KEY", "test-pii-key-for-the-tests-0123456789")
        .env("TIX_DEAD_LETTER", format!("s3://{}/{prefix}", garage.dl_bucket));
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let answer = api.invoke("req-1", event, &mut child);
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let body = answer.into_response("req-1", &format!("stderr: {stderr}"));
    Run { body, stdout, stderr }
}

#[test]
fn the_lambda_refuses_to_start_without_a_pii_key_or_with_dead_letters_under_its_trigger() {
    let cases: [(&[(&str, &str)], &str); 2] = [
        (&[("TIX_DEAD_LETTER", "s3://logs/dead/")], "TIX_PII_KEY"),
        (
            &[("TIX_DEAD_LETTER", "s3://logs/in/dead/"), ("TIX_TRIGGER_PREFIX", "s3://logs/in/"), ("TIX_PII_KEY", "k")],
            "lies under the trigger prefix",
        ),
    ];
    for (env, expected) in cases {
        let mut command = lambda_command();
        command.env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
        command.envs(env.iter().copied());
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?} must refuse to start");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn the_binary_answers_an_sqs_event_through_the_runtime_api() {
    let garage = garage();
    let prefix = unique_prefix("lambda-binary");
    let key = format!("{prefix}day log.ndjson.gz");
    let event = sqs_event(&[
        ("good".into(), garage.notify(&key, gzip(&ndjson(600, 250)))),
        ("poison".into(), "{\"Records\": 5".into()),
    ]);
    let index = tempfile::tempdir().unwrap();
    let trigger = ("TIX_TRIGGER_PREFIX", format!("s3://{}/{prefix}", garage.bucket));
    let run = invoke_once(RuntimeApi::start(), index.path(), &garage, &prefix, &[trigger], &event);
    let (body, stdout, stderr) = (run.body, run.stdout, run.stderr);
    assert_eq!(body, json!({"batchItemFailures": [{"itemIdentifier": "poison"}]}), "stderr: {stderr}");
    let metrics: Value = stdout
        .lines()
        .find_map(|line| serde_json::from_str::<Value>(line).ok().filter(|v| v.get("_aws").is_some()))
        .unwrap_or_else(|| panic!("no EMF line on stdout: {stdout}"));
    assert_eq!(metrics["Indexed"], 250);
    assert_eq!(metrics["FailedMessages"], 1);
    assert!(
        stderr.lines().all(|l| l.trim().is_empty() || serde_json::from_str::<Value>(l).is_ok()),
        "logs are JSON: {stderr}"
    );
    let backend = indexer::TantivyBackend::open_for_reading(index.path()).unwrap();
    assert_eq!(count(&backend), 250);
}

/// `cargo lambda watch`'s emulator sends `Lambda-Runtime-Deadline-Ms: 600000`, a duration.
/// Read as an epoch time it is a deadline in 1970, which once made the function refuse
/// every object ("not started before the deadline"). It is now an unknown deadline: the
/// work is done, and the function says once why it works without a deadline.
#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn the_emulators_duration_deadline_is_treated_as_unknown_and_the_work_is_done() {
    let garage = garage();
    let prefix = unique_prefix("lambda-emulator-deadline");
    let key = format!("{prefix}day.ndjson.gz");
    let event = sqs_event(&[("only".into(), garage.notify(&key, gzip(&ndjson(601, 120))))]);
    let index = tempfile::tempdir().unwrap();
    let api = RuntimeApi::start_with(DeadlineShape::EmulatorDuration);
    let run = invoke_once(api, index.path(), &garage, &prefix, &[], &event);
    let stderr = run.stderr;
    assert_eq!(run.body, json!({"batchItemFailures": []}), "nothing to redeliver; stderr: {stderr}");
    assert_eq!(stderr.matches("cannot be a real time").count(), 1, "the unknown deadline is said once: {stderr}");
    let backend = indexer::TantivyBackend::open_for_reading(index.path()).unwrap();
    assert_eq!(count(&backend), 120, "every record indexed");
}
