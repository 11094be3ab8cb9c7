//! The committed samples answer what their generator says they hold: the booking report's
//! counts and integrity findings, and Korean full-text counts, through the real binary,
//! compared with `fixtures/samples/EXPECTED.json`. That file is written by the generator
//! from its own plan (`fixtures/src/truth.rs`), not by the code under test, so these are
//! independent oracles for `tix-logs report` and the Korean tokenizer on realistic data.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tix-logs"));
    cmd.env_remove("TIX_INDEX").env_remove("TIX_BACKEND").env("TIX_PII_KEY", "samples-truth-test-key-of-32-bytes!!");
    cmd
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/samples")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(samples().join("EXPECTED.json")).expect("fixtures/samples/EXPECTED.json");
    serde_json::from_str(&text).expect("EXPECTED.json is JSON")
}

/// A temporary index holding `inputs` (relative to `fixtures/samples/logs`).
fn ingested(inputs: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .current_dir(dir.path())
        .args(["ingest", "--json", "--index", "index", "--dead-letter", "dl"])
        .args(inputs.iter().map(|name| samples().join("logs").join(name)))
        .output()
        .expect("run ingest");
    // 1 only with the whole directory: the truncated sample is a failed object, on purpose.
    let code = if inputs.contains(&".") { 1 } else { 0 };
    assert_eq!(out.status.code(), Some(code), "ingest {inputs:?}: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn run_json(dir: &Path, args: &[&str]) -> Value {
    let out = bin().current_dir(dir).args(args).args(["--index", "index"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})"))
}

/// `integrity` without the explanatory `note` the truth file carries.
fn integrity_of(truth: &Value) -> Value {
    let mut integrity = truth.clone();
    if let Some(map) = integrity.as_object_mut() {
        map.remove("note");
    }
    integrity
}

#[test]
fn the_report_on_the_sample_day_matches_the_generators_truth() {
    let truth = expected()["day_truth"].clone();
    let dir = ingested(&["day.ndjson"]);
    let report = run_json(dir.path(), &["report", "--format", "json"]);
    assert_eq!(report["integrity"], integrity_of(&truth["integrity"]));
    for kind in ["seats_sold_twice", "captured_not_confirmed", "confirmed_not_captured"] {
        let found = report["integrity"][kind].as_array().map_or(0, Vec::len);
        assert!(found > 0, "the samples are meant to show at least one {kind}");
    }

    // Counts per (request day, venue): one windowed report per day, grouped by venue.
    let rows = truth["bookings_by_day_venue"].as_array().expect("bookings_by_day_venue");
    let mut days: Vec<&str> = rows.iter().filter_map(|row| row["day"].as_str()).collect();
    days.dedup();
    assert!(!days.is_empty());
    let mut compared = 0;
    for day in days {
        let start = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("truth day");
        let next = start.succ_opt().expect("a next day").format("%Y-%m-%d").to_string();
        let report =
            run_json(dir.path(), &["report", "--format", "json", "--by", "venue", "--since", day, "--until", &next]);
        let groups = report["groups"].as_array().expect("groups");
        let expected_rows: Vec<&Value> = rows.iter().filter(|row| row["day"] == day).collect();
        assert_eq!(groups.len(), expected_rows.len(), "{day}: venues");
        for row in expected_rows {
            let group = groups.iter().find(|g| g["key"] == row["venue"]).unwrap_or_else(|| panic!("{day} {row}"));
            for count in ["requested", "confirmed", "cancelled", "expired", "payment_failed", "refunded"] {
                assert_eq!(group[count], row[count], "{day} {}: {count}", row["venue"]);
                compared += 1;
            }
        }
    }
    assert!(compared >= 6 * 10, "compared only {compared} figures");
}

#[test]
fn the_report_over_every_sample_matches_the_expected_integrity() {
    let dir = ingested(&["."]);
    let report = run_json(dir.path(), &["report", "--format", "json"]);
    assert_eq!(report["integrity"], integrity_of(&expected()["logs_integrity"]));
}

#[test]
fn korean_nouns_find_every_message_that_holds_them() {
    let truth = expected()["day_truth"]["korean"].clone();
    let dir = ingested(&["day.ndjson"]);
    let nouns = truth["message_contains"].as_object().expect("message_contains");
    assert!(nouns.len() >= 3);
    for (noun, expected_count) in nouns {
        let out = bin()
            .current_dir(dir.path())
            .args(["search", "--index", "index", "--count", noun.as_str()])
            .output()
            .expect("run search");
        assert_eq!(out.status.code(), Some(0), "{noun}: {}", String::from_utf8_lossy(&out.stderr));
        let count: u64 = String::from_utf8_lossy(&out.stdout).trim().replace(',', "").parse().expect("a count");
        assert_eq!(Some(count), expected_count.as_u64(), "search {noun} --count");
    }
}
