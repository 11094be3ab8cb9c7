//! The PII sweep through the real `tix-logs` binary: the planted corpus of
//! `testkit::pii` is ingested with debug logging on, and everything a user or a script
//! can see afterwards (the run's logs and JSON summary, search output in every format,
//! the audit of checkpoints, the dead-letter files) is searched with the independent
//! oracle and for the planted values. Every planted record is first checked to have
//! been indexed or dead-lettered, so the sweep cannot pass on empty output.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use testkit::pii;

fn bin(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tix-logs"));
    cmd.current_dir(dir)
        .env_remove("TIX_INDEX")
        .env_remove("TIX_BACKEND")
        .env("TIX_PII_KEY", "test-key-for-cli-tests-0123456789abcdef");
    cmd
}

/// Runs `cmd` and returns its exit code, stdout and stderr.
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run tix-logs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn nothing_the_cli_prints_or_stores_holds_a_planted_value() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = pii::planted_corpus();
    let planted = pii::planted();
    let file = dir.path().join("bookings.ndjson");
    std::fs::write(&file, &corpus.text).unwrap();
    let index = dir.path().join("index");
    let dead = dir.path().join("dead");

    let (code, stdout, stderr) = run(bin(dir.path())
        .env("TIX_LOG", "debug")
        .args(["-vv", "ingest", "--json", "--index"])
        .arg(&index)
        .arg("--dead-letter")
        .arg(&dead)
        .arg(&file));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("JSON summary: {stdout}"));
    assert_eq!(summary["rejected"], corpus.rejected.len(), "{summary}");
    assert_eq!(summary["indexed"], corpus.indexed.len(), "{summary}");
    assert!(!stderr.trim().is_empty(), "debug logging printed something to sweep");
    pii::check_lines("`tix-logs ingest --json` stdout", &stdout, &planted, &[]);
    pii::check_lines("`tix-logs -vv ingest` stderr", &stderr, &planted, &[]);

    let search = |args: &[&str]| {
        let (code, stdout, stderr) = run(bin(dir.path()).arg("search").arg("--index").arg(&index).args(args));
        assert_eq!(code, 0, "search {args:?}: {stderr}");
        pii::check_text(&format!("`tix-logs search {args:?}` stderr"), &stderr, &planted);
        stdout
    };
    let ndjson = search(&["--format", "ndjson", "--limit", "1000"]);
    for id in &corpus.indexed {
        assert!(ndjson.contains(&format!("\"{id}\"")), "{id} is searchable: {ndjson}");
    }
    pii::check_lines("search --format ndjson", &ndjson, &planted, &["_id"]);
    let json = search(&["--format", "json", "--limit", "1000"]);
    pii::check_json("search --format json", &serde_json::from_str(&json).unwrap(), &planted, &["_id"]);
    for format in ["table", "csv"] {
        let out = search(&["--format", format, "--limit", "1000", "--fields", "event_id,message,payment,customer"]);
        assert!(out.contains("sweep-card-0"), "{out}");
        pii::check_text(&format!("search --format {format}"), &out, &planted);
    }
    // Searching for a planted value finds nothing: it is not in the index at all.
    let found = search(&["\"4111 1111 1111 1111\"", "--count"]);
    assert_eq!(found.trim(), "0", "{found}");

    let (code, audit, stderr) = run(bin(dir.path()).args(["audit", "--format", "json", "--index"]).arg(&index));
    assert_eq!(code, 0, "{stderr}");
    assert!(audit.contains("bookings.ndjson"), "{audit}");
    pii::check_json("audit --format json", &serde_json::from_str(&audit).unwrap(), &planted, &[]);

    let mut dead_letters = 0;
    for entry in std::fs::read_dir(&dead).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        dead_letters += text.lines().count();
        pii::check_lines("a dead-letter file", &text, &planted, &["id", "mtime_ns"]);
    }
    assert_eq!(dead_letters, corpus.rejected.len());
}
