//! The PII key rules through the real binary: the public development key only for a local
//! index and dead-letter directory, every key at least 32 bytes, and `event_id:X`
//! searches only with the key the index was ingested with (ids are keyed).

use std::path::Path;
use std::process::{Command, Output};

const KEY: &str = "pii-key-cli-test-key-of-at-least-32-bytes";

const EVENTS: &str = r#"{"ts":"2024-02-05T10:00:00Z","type":"booking.requested","event_id":"anna@example.com","booking_id":"BK-1"}
{"ts":"2024-02-05T10:00:01Z","type":"seat.locked","event_id":"e-2","booking_id":"BK-1"}
"#;

/// `tix-logs` in `dir` with no PII key and no stray store settings.
fn bin(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tix-logs"));
    cmd.current_dir(dir)
        .env_remove("TIX_PII_KEY")
        .env_remove("TIX_PII_KEY_PARAM")
        .env_remove("TIX_INDEX")
        .env_remove("TIX_BACKEND")
        .env_remove("TIX_ES_URL");
    cmd
}

fn text(out: &Output) -> (i32, String) {
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.ndjson"), EVENTS).unwrap();
    (dir, "events.ndjson".into())
}

/// Elasticsearch, an S3 dead letter and a saved Lambda event are production paths: a
/// missing key stops the run (exit 2) before anything is read, sent or opened, and the
/// message says how to set it.
#[test]
fn the_development_key_is_refused_for_every_destination_that_is_not_a_local_directory() {
    let (dir, file) = setup();
    std::fs::write(dir.path().join("event.json"), r#"{"Records":[]}"#).unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--backend", "elasticsearch", &file], "--backend elasticsearch"),
        (&["--dead-letter", "s3://tix-dead/dl/", &file], "--dead-letter s3://"),
        (&["--event", "event.json"], "--event"),
    ];
    for (flags, named) in cases {
        let out = bin(dir.path())
            // Unreachable on purpose: the refusal must come before any connection.
            .env("TIX_ES_URL", "http://127.0.0.1:9")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .args(["ingest", "--index", "index"])
            .args(flags)
            .output()
            .unwrap();
        let (code, stderr) = text(&out);
        assert_eq!(code, 2, "{flags:?}: {stderr}");
        for want in ["TIX_PII_KEY is not set", named, "not a local directory", "at least 32 bytes", "openssl rand"] {
            assert!(stderr.contains(want), "{flags:?}: {want:?} missing in {stderr}");
        }
        assert!(!dir.path().join("index").exists(), "{flags:?}: nothing is opened");
    }
}

/// A local index and dead-letter directory may use the development key, with a warning.
#[test]
fn a_local_run_without_a_key_warns_and_proceeds() {
    let (dir, file) = setup();
    let out = bin(dir.path()).args(["ingest", "--index", "index", "--dead-letter", "dl", &file]).output().unwrap();
    let (code, stderr) = text(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: TIX_PII_KEY is not set") && stderr.contains("development key"), "{stderr}");
    let out = bin(dir.path()).args(["search", "--index", "index", "--count", "booking_id:BK-1"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

/// Every key is at least 32 bytes, local runs and searches included; the message gives
/// the length, never the key.
#[test]
fn a_key_shorter_than_32_bytes_is_refused_without_being_shown() {
    let (dir, file) = setup();
    let short = "a-short-secret-key-0123";
    let out = bin(dir.path()).env("TIX_PII_KEY", short).args(["ingest", "--index", "index", &file]).output().unwrap();
    let (code, stderr) = text(&out);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("TIX_PII_KEY is {} bytes long", short.len())), "{stderr}");
    assert!(stderr.contains("at least 32") && !stderr.contains(short), "{stderr}");
}

/// `event_id:X` on tantivy goes through the keyed id: with the ingest key it finds the
/// event (by its unredacted id); without a key it is refused with a message saying to set
/// it; under another key it finds nothing. Other queries need no key.
#[test]
fn event_id_searches_need_the_ingest_key() {
    let (dir, file) = setup();
    let out = bin(dir.path()).env("TIX_PII_KEY", KEY).args(["ingest", "--index", "index", &file]).output().unwrap();
    assert_eq!(text(&out).0, 0, "{}", text(&out).1);
    let count = |key: Option<&str>, query: &str| {
        let mut cmd = bin(dir.path());
        if let Some(key) = key {
            cmd.env("TIX_PII_KEY", key);
        }
        let out = cmd.args(["search", "--index", "index", "--count", query]).output().unwrap();
        (text(&out).0, String::from_utf8_lossy(&out.stdout).trim().to_string(), text(&out).1)
    };
    assert_eq!(count(Some(KEY), "event_id:e-2").1, "1");
    assert_eq!(count(Some(KEY), "event_id:\"anna@example.com\"").1, "1", "the id derives from the unredacted event_id");
    for key in [None, Some("too-short")] {
        let (code, stdout, stderr) = count(key, "event_id:e-2");
        assert_eq!(code, 2, "{key:?}: {stdout} {stderr}");
        assert!(stderr.contains("set TIX_PII_KEY") && stderr.contains("keyed"), "{stderr}");
    }
    assert_eq!(count(Some("another-key-of-at-least-32-bytes-0123456"), "event_id:e-2").1, "0");
    assert_eq!(count(None, "booking_id:BK-1").1, "2", "other fields need no key");
}
