//! The real `tix-logs` binary with `TIX_ES_AUTH=sigv4` and credentials from the
//! environment (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_REGION`, as on Lambda),
//! through `testkit/sigv4_gate.py` (botocore recomputes every signature and refuses a
//! mismatch with AWS's 403) in front of `testkit`'s stateful `FakeCluster`: ingest, then
//! `search --count` and `audit`, with their exit codes, and the secret key never printed.
//!
//! Needs `python3` with `botocore` (`scripts/test.sh` installs it).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use testkit::es_server::FakeCluster;
use testkit::sigv4_gate::{Gate, GateCredentials, REGION};

const ACCESS_KEY: &str = "AKIDTIXLOGSCLITEST01";
const SECRET_KEY: &str = "tixLogs/CliSigV4+Secret/wJalrXUtnFEMIK7MDENGbP";

/// The botocore gate in front of `upstream`, accepting this file's test credentials.
fn gate(upstream: &str) -> Gate {
    Gate::start(upstream, "es", GateCredentials { access_key: ACCESS_KEY, secret_key: SECRET_KEY, session_token: None })
}

/// `tix-logs ARGS` with the Elasticsearch backend through the gate and AWS credentials
/// in the environment only (nothing inherited from the caller's AWS setup, e.g. the
/// Garage test server's keys that `scripts/test.sh` exports).
fn tix_logs(gate: &Gate, dir: &std::path::Path, secret: &str, args: &[&str]) -> Output {
    // Empty AWS config files: no profile can add credentials (and the SDK does not warn
    // about missing files).
    let (config_file, credentials_file) = (dir.join("aws-config"), dir.join("aws-credentials"));
    std::fs::write(&config_file, "").unwrap();
    std::fs::write(&credentials_file, "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tix-logs"));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("AWS_") || n.starts_with("TIX_")) {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir)
        .args(args)
        .env("TIX_PII_KEY", "test-key-for-cli-tests-0123456789abcdef")
        .env("TIX_BACKEND", "elasticsearch")
        .env("TIX_ES_URL", gate.url())
        .env("TIX_ES_AUTH", "sigv4")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", REGION)
        // No profile files or instance metadata: the environment is the whole chain here.
        .env("AWS_CONFIG_FILE", &config_file)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials_file)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run tix-logs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn day_ndjson() -> PathBuf {
    fixtures::samples_dir().join("logs/day.ndjson")
}

#[test]
fn ingest_search_and_audit_sign_with_the_environment_credentials() {
    let cluster = FakeCluster::start();
    let gate = gate(&cluster.url());
    let dir = tempfile::tempdir().unwrap();
    let source = day_ndjson();

    let ingest = tix_logs(&gate, dir.path(), SECRET_KEY, &["ingest", "--json", source.to_str().unwrap()]);
    let out = text(&ingest);
    assert_eq!(ingest.status.code(), Some(0), "{out}");
    assert!(!out.contains(SECRET_KEY), "{out}");
    let summary: Value = serde_json::from_slice(&ingest.stdout).expect("a JSON summary");
    let indexed = summary["indexed"].as_u64().unwrap();
    assert!(indexed > 0, "{summary}");
    assert_eq!(cluster.events("tix-bookings").len() as u64, indexed, "the cluster holds what was indexed");
    assert_eq!(
        summary["records"].as_u64(),
        Some(indexed + summary["duplicates"].as_u64().unwrap() + summary["rejected"].as_u64().unwrap())
    );

    let count = tix_logs(&gate, dir.path(), SECRET_KEY, &["search", "--count"]);
    let out = text(&count);
    assert_eq!(count.status.code(), Some(0), "{out}");
    assert!(!out.contains(SECRET_KEY), "{out}");
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), indexed.to_string());

    let audit = tix_logs(&gate, dir.path(), SECRET_KEY, &["audit", "--format", "json"]);
    let out = text(&audit);
    assert_eq!(audit.status.code(), Some(0), "every source completed: {out}");
    assert!(!out.contains(SECRET_KEY), "{out}");
    let records: Value = serde_json::from_slice(&audit.stdout).expect("JSON audit");
    assert_eq!(records.as_array().map(Vec::len), Some(1), "{records:#}");
    assert_eq!(records[0]["status"], "completed", "{records:#}");
    assert_eq!(records[0]["indexed"].as_u64(), Some(indexed));

    let stats = gate.stats();
    assert_eq!(stats["refused"], 0, "{stats:#}");
    assert_eq!(stats["verified"].as_u64(), Some(cluster.requests().len() as u64), "{stats:#}");
    let targets: Vec<&str> =
        stats["requests"].as_array().unwrap().iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert!(targets.iter().any(|t| t.starts_with("/_bulk?filter_path=items.%2A._id%2C")), "{targets:?}");
    assert!(targets.contains(&"/tix-bookings-2*/_count"), "{targets:?}");
    assert!(targets.contains(&"/tix-bookings-sources/_search"), "{targets:?}");
}

#[test]
fn a_wrong_secret_key_stops_every_command_with_exit_2_and_is_never_printed() {
    let cluster = FakeCluster::start();
    let gate = gate(&cluster.url());
    let dir = tempfile::tempdir().unwrap();
    let wrong = "tixLogs/WRONG+Secret/wJalrXUtnFEMIK7MDENGbPxRfiCY";
    let source = day_ndjson();
    for args in [vec!["ingest", source.to_str().unwrap()], vec!["search", "--count"], vec!["audit"]] {
        let out = tix_logs(&gate, dir.path(), wrong, &args);
        let printed = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {printed}");
        assert!(printed.contains("403") && printed.contains("signature"), "{args:?}: {printed}");
        assert!(!printed.contains(wrong) && !printed.contains("WRONG+Secret"), "{args:?}: {printed}");
    }
    assert_eq!(gate.stats()["verified"], 0);
    assert!(cluster.requests().is_empty(), "nothing passed the gate");
}
