//! The `tix-logs-lambda` binary reading its secrets from SSM Parameter Store at cold
//! start, against a scripted SSM endpoint (`testkit::ssm_server`, reached through
//! `AWS_ENDPOINT_URL_SSM`) and a loopback Lambda runtime API. Tantivy backend and an S3
//! test event: no S3 server or cluster is needed.

use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use testkit::lambda_api::RuntimeApi;
use testkit::ssm_server::{Answer, SsmServer};

const BINARY: &str = env!("CARGO_BIN_EXE_tix-logs-lambda");
/// 48 bytes: a key the Lambda accepts. Must never appear in its output.
const PII_KEY: &str = "pii-key-from-ssm-0123456789abcdef0123456789abcd";

/// The binary with a clean environment: fake AWS credentials and region, SSM at `ssm`,
/// a tantivy index, dead letters in S3 (never written here), and nothing from the
/// caller's environment (no Garage endpoint, no profile, no PII key).
fn lambda(ssm: &SsmServer, index: &std::path::Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret-access-key")
        .env("AWS_ENDPOINT_URL_SSM", ssm.url())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        .env("TIX_BACKEND", "tantivy")
        .env("TIX_INDEX", index)
        .env("TIX_DEAD_LETTER", "s3://tix-logs-dl/secrets-test/")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the binary until it exits (it must refuse before asking the runtime for work).
fn refused(mut command: Command) -> (Output, String) {
    command.env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "must refuse to start; stderr: {stderr}");
    (output, stderr)
}

#[test]
fn the_pii_key_is_read_once_from_its_parameter_and_the_function_serves() {
    let ssm = SsmServer::start(&[("/tix/pii-key", Answer::Value(PII_KEY.into()))]);
    let index = tempfile::tempdir().unwrap();
    let api = RuntimeApi::start();
    let mut command = lambda(&ssm, index.path());
    api.configure(&mut command);
    let mut child = command.env("TIX_PII_KEY_PARAM", "/tix/pii-key").spawn().unwrap();
    let event: Value = serde_json::from_str(include_str!("../../fixtures/samples/events/s3-test-event.json")).unwrap();
    let first = api.invoke("req-1", &event, &mut child);
    let second = api.invoke("req-2", &event, &mut child);
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    for (posted, id) in [(first, "req-1"), (second, "req-2")] {
        let body = posted.into_response(id, &format!("stderr: {stderr}"));
        assert_eq!(body["summary"]["objects"], json!(0), "a test event has no object: {body}");
    }
    let calls = ssm.calls();
    assert_eq!(calls.len(), 1, "read once at cold start, not per invocation: {calls:?}");
    assert_eq!(calls[0].name, "/tix/pii-key");
    assert!(calls[0].with_decryption && calls[0].signed, "{calls:?}");
    assert!(stderr.contains("secrets read from SSM"), "{stderr}");
    for text in [&stderr, &stdout] {
        assert!(!text.contains(PII_KEY), "the key leaked: {text}");
    }
}

#[test]
fn the_function_refuses_to_start_when_a_parameter_cannot_be_read_or_the_key_is_short() {
    let ssm = SsmServer::start(&[
        ("/tix/pii-key", Answer::Value(PII_KEY.into())),
        ("/tix/short-key", Answer::Value("short-key-from-ssm".into())),
        ("/tix/locked", Answer::Denied),
        ("/aws/reference/secretsmanager/tix-es", Answer::Denied),
    ]);
    let index = tempfile::tempdir().unwrap();
    type Env = &'static [(&'static str, &'static str)];
    let cases: [(Env, &[&str]); 6] = [
        (
            &[("TIX_PII_KEY_PARAM", "/tix/missing")],
            &["\"/tix/missing\"", "TIX_PII_KEY_PARAM", "ParameterNotFound", "region eu-west-1"],
        ),
        (&[("TIX_PII_KEY_PARAM", "/tix/locked")], &["\"/tix/locked\"", "ssm:GetParameter", "kms:Decrypt"]),
        (&[("TIX_PII_KEY_PARAM", "/tix/short-key")], &["TIX_PII_KEY", "is 18 bytes long", "at least 32"]),
        (&[("TIX_PII_KEY", "short-plain-key")], &["TIX_PII_KEY", "is 15 bytes long", "at least 32"]),
        (
            &[("TIX_PII_KEY", "a-plain-key-left-behind-after-the-move"), ("TIX_PII_KEY_PARAM", "/tix/pii-key")],
            &["both TIX_PII_KEY and TIX_PII_KEY_PARAM"],
        ),
        (
            &[
                ("TIX_PII_KEY_PARAM", "/tix/pii-key"),
                ("TIX_ES_API_KEY_PARAM", "/aws/reference/secretsmanager/tix-es"),
                ("TIX_BACKEND", "elasticsearch"),
                ("TIX_ES_URL", "http://127.0.0.1:9"),
            ],
            &["TIX_ES_API_KEY_PARAM", "secretsmanager:GetSecretValue on the secret tix-es"],
        ),
    ];
    for (env, expected) in cases {
        let mut command = lambda(&ssm, index.path());
        command.envs(env.iter().copied());
        let (_, stderr) = refused(command);
        for part in expected {
            assert!(stderr.contains(part), "{env:?}: missing {part:?} in {stderr}");
        }
        for secret in [PII_KEY, "short-key-from-ssm", "short-plain-key", "a-plain-key-left-behind-after-the-move"] {
            assert!(!stderr.contains(secret), "{env:?}: a secret value in stderr: {stderr}");
        }
    }
}
