//! The real `tix-logs` binary run in a temporary directory: ingest, search, audit, exit
//! codes, and the no-loss rule counted from the index and the dead-letter files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testkit::oracle::{self, Corpus, Observed, ObservedDeadLetter, ObservedSource};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tix-logs"));
    cmd.env_remove("TIX_INDEX").env_remove("TIX_BACKEND").env("TIX_PII_KEY", "test-key-for-cli-tests-0123456789abcdef");
    cmd
}

fn samples() -> PathBuf {
    fixtures::samples_dir()
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Workspace { dir: tempfile::tempdir().expect("tempdir") }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn index(&self) -> String {
        self.path("index").display().to_string()
    }
    fn dead_letter(&self) -> PathBuf {
        self.path("dl")
    }
    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write");
        path
    }
    fn ingest_command(&self, sources: &[&Path]) -> Command {
        let mut cmd = bin();
        cmd.current_dir(self.dir.path()).args(["ingest", "--json", "--index", &self.index(), "--dead-letter"]);
        cmd.arg(self.dead_letter());
        cmd.args(sources);
        cmd
    }
    fn ingest(&self, sources: &[&Path]) -> (i32, Value, String) {
        let out = self.ingest_command(sources).output().expect("run tix-logs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let summary = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), summary, String::from_utf8_lossy(&out.stderr).to_string())
    }
    fn search(&self, args: &[&str]) -> Output {
        bin().current_dir(self.dir.path()).args(["search", "--index", &self.index()]).args(args).output().expect("run")
    }
    fn count(&self, query: &str) -> u64 {
        let out = self.search(&[query, "--count"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a number")
    }
    /// Every dead-letter entry, read with the store's own reader (so each line must be a
    /// well-formed entry), as JSON for easy comparison with `EXPECTED.json`.
    fn dead_letters(&self) -> Vec<Value> {
        ingest::dead_letter::LocalDeadLetter::read_all(&self.dead_letter())
            .expect("dead-letter store is readable and well-formed")
            .iter()
            .map(|entry| serde_json::to_value(entry).expect("entry serializes"))
            .collect()
    }
    /// records = indexed + duplicates + rejected, with indexed counted in the index and
    /// rejected counted in the dead-letter store (failed-object entries excluded).
    fn assert_conservation(&self, summary: &Value, indexed_before: u64) {
        let get = |k: &str| summary[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {summary}"));
        assert_eq!(get("records"), get("indexed") + get("duplicates") + get("rejected"), "{summary}");
        assert_eq!(self.count(""), indexed_before + get("indexed"), "index count vs summary {summary}");
        let rejected_in_store = self.dead_letters().iter().filter(|e| !e["record"].is_null()).count() as u64;
        assert_eq!(rejected_in_store, get("rejected"), "dead-letter store vs summary {summary}");
    }
}

const GOOD: &str = r#"{"ts":"2024-02-05T10:00:00Z","type":"booking.requested","event_id":"e-1","booking_id":"BK-20240205-000001","venue":"Olympic Hall","amount":12000,"message":"requested by anna@example.com"}
{"ts":"2024-02-05T10:00:01Z","type":"seat.locked","event_id":"e-2","booking_id":"BK-20240205-000001","venue":"Olympic Hall","seat":["A-1","A-2"]}
{"ts":1707127202000,"type":"payment.authorized","booking_id":"BK-20240205-000001","payment":{"method":"card","card":"4111 1111 1111 1111"},"amount":12000}

{"ts":"2024-02-05T10:00:03Z","type":"booking.confirmed","booking_id":"BK-20240205-000001","venue":"Olympic Hall","client":{"app":"ios"}}
"#;

const BAD: &str = r#"{"type":"booking.requested"}
{"ts":"2024-02-05T10:00:00Z","type":"booking.requested","amount":"12.50"}
[1,2,3]
not json at all
"#;

#[test]
fn ingest_then_search_conserves_every_record() {
    let ws = Workspace::new();
    let mut content = GOOD.as_bytes().to_vec();
    content.extend_from_slice(BAD.as_bytes());
    let file = ws.write("mixed.ndjson", &content);
    let (code, summary, stderr) = ws.ingest(&[&file]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["records"], 8, "{summary}");
    assert_eq!(summary["indexed"], 4);
    assert_eq!(summary["rejected"], 4);
    assert_eq!(summary["objects"], 1);
    ws.assert_conservation(&summary, 0);
    let reasons: Vec<String> =
        ws.dead_letters().iter().map(|e| e["reason"].as_str().unwrap_or("").to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("ts")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("amount")), "{reasons:?}");
    for entry in ws.dead_letters() {
        assert!(entry["source"].as_str().unwrap_or("").ends_with("mixed.ndjson"), "{entry}");
        assert!(entry["record"].as_u64().is_some() && entry["offset"].as_u64().is_some(), "{entry}");
        assert!(["validation", "decode", "limit"].contains(&entry["kind"].as_str().unwrap_or("")), "{entry}");
    }
}

#[test]
fn ingesting_the_same_files_twice_changes_nothing() {
    let ws = Workspace::new();
    let file = ws.write("good.ndjson", GOOD.as_bytes());
    let (code, first, _) = ws.ingest(&[&file]);
    assert_eq!(code, 0);
    let (code, second, _) = ws.ingest(&[&file]);
    assert_eq!(code, 0);
    assert_eq!(second["objects_skipped"], 1, "{second}");
    assert_eq!(second["indexed"], 0);
    assert_eq!(ws.count(""), first["indexed"].as_u64().unwrap());
}

#[test]
fn events_resent_under_another_name_with_the_same_event_id_are_duplicates() {
    let ws = Workspace::new();
    let first = ws.write("a.ndjson", GOOD.as_bytes());
    let second = ws.write("b.ndjson", GOOD.lines().take(2).collect::<Vec<_>>().join("\n").as_bytes());
    let (_, summary, _) = ws.ingest(&[&first]);
    let before = ws.count("");
    let (code, summary2, _) = ws.ingest(&[&second]);
    assert_eq!(code, 0);
    assert_eq!(summary2["duplicates"], 2, "{summary2}");
    assert_eq!(summary2["indexed"], 0);
    assert_eq!(ws.count(""), before);
    assert_eq!(before, summary["indexed"].as_u64().unwrap());
}

#[test]
fn a_truncated_gzip_is_a_failed_object_with_exit_1_and_its_good_records_kept() {
    let ws = Workspace::new();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(encoder, r#"{{"ts":"2024-02-05T10:00:00Z","type":"booking.requested","booking_id":"BK-{i}"}}"#)
            .unwrap();
    }
    let gz = encoder.finish().unwrap();
    let file = ws.write("cut.ndjson.gz", &gz[..gz.len() * 2 / 3]);
    let (code, summary, _) = ws.ingest(&[&file]);
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["objects_failed"], 1);
    let indexed = summary["indexed"].as_u64().unwrap();
    assert!(indexed > 0 && indexed < 2000, "{summary}");
    assert_eq!(ws.count(""), indexed);
    let object_entries: Vec<Value> = ws.dead_letters().into_iter().filter(|e| e["record"].is_null()).collect();
    assert_eq!(object_entries.len(), 1, "{object_entries:?}");
    assert!(object_entries[0]["reason"].as_str().unwrap().contains("truncated"), "{object_entries:?}");
    // A retry is safe: nothing is doubled.
    let (code, again, _) = ws.ingest(&[&file]);
    assert_eq!(code, 1);
    assert_eq!(again["duplicates"].as_u64().unwrap() + again["indexed"].as_u64().unwrap(), indexed, "{again}");
    assert_eq!(ws.count(""), indexed);
    assert_eq!(ws.dead_letters().len(), 1, "the object's entry is replaced, not doubled");
}

#[test]
fn a_gzip_bomb_fails_fast_without_exhausting_memory() {
    let ws = Workspace::new();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..2048 {
        encoder.write_all(&zeros).unwrap(); // 2 GiB of spaces
    }
    let file = ws.write("bomb.ndjson.gz", &encoder.finish().unwrap());
    let started = std::time::Instant::now();
    let (code, stdout, peak_rss) = run_with_peak_rss(&mut ws.ingest_command(&[&file]));
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["objects_failed"], 1);
    let entry = ws.dead_letters().into_iter().find(|e| e["record"].is_null()).expect("object entry");
    assert_eq!(entry["kind"], "limit", "{entry}");
    assert!(started.elapsed().as_secs() < 60, "took {:?}", started.elapsed());
    // The bomb is 2 GiB of text: holding it, or any large part of it, would cost far more
    // than this bound. The ingest peaks at about 40 MB.
    assert!(peak_rss < 256 << 20, "peak RSS of the ingest: {peak_rss} bytes");
}

/// Runs `command` to its end under a small Python parent: its exit code, its stdout and
/// its own peak RSS in bytes. The kernel carries the high-water RSS of the process that
/// spawned a program into that program's `ru_maxrss` (exec records the old address
/// space's peak), so a child spawned straight from this test binary reported the test
/// process's own peak: 48 MB alone, 448 MB beside the other tests. Python's parent is a
/// few MB, and `RUSAGE_CHILDREN` there is this one child.
fn run_with_peak_rss(command: &mut Command) -> (i32, String, u64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        code = subprocess.call(sys.argv[1:], stderr=subprocess.DEVNULL)\n\
        sys.stderr.write('peak_rss_kb=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(code)\n";
    let mut measured = Command::new("python3");
    measured.arg("-c").arg(MEASURE).arg(command.get_program()).args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        measured.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => measured.env(key, value),
            None => measured.env_remove(key),
        };
    }
    let out = measured.output().expect("run python3 to measure the ingest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_kb: u64 = stderr
        .lines()
        .find_map(|line| line.strip_prefix("peak_rss_kb="))
        .and_then(|kb| kb.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS measured: {stderr}"));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), peak_kb * 1024)
}

#[test]
fn no_card_number_or_email_reaches_the_index_the_dead_letter_store_or_the_logs() {
    let ws = Workspace::new();
    let mut content = GOOD.as_bytes().to_vec();
    content.extend_from_slice(br#"{"type":"x","note":"card 5500-0000-0000-0004 mail bob@example.org"}"#);
    content.push(b'\n');
    // Rejected records carry PII too: their dead-letter `raw` and every log line must not.
    content
        .extend_from_slice(br#"{"type":"x","ts":"not a time","email":"carol@example.net","pan":"4012888888881881"}"#);
    content.push(b'\n');
    content.extend_from_slice(
        b"{\"type\":\"x\",\"ts\":\"2024-02-05T10:00:00Z\",\"amount\":\"dave@example.com 4012 8888 8888 1881\"}\n",
    );
    let file = ws.write("pii.ndjson", &content);
    // Debug logging on: nothing it prints may hold a secret either.
    let out = bin()
        .current_dir(ws.dir.path())
        .env("TIX_LOG", "debug")
        .args(["-vv", "ingest", "--index", &ws.index(), "--dead-letter"])
        .arg(ws.dead_letter())
        .arg(&file)
        .output()
        .expect("run tix-logs");
    let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(ws.dead_letters().len(), 3, "the three bad records are dead-lettered");
    let out = ws.search(&["--format", "ndjson", "--limit", "1000"]);
    let indexed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(indexed.contains("1111"), "last four digits are kept: {indexed}");
    let dead = ws.dead_letters().iter().map(|e| e.to_string()).collect::<String>();
    for text in [&indexed, &dead, &logs] {
        for secret in [
            "4111 1111 1111 1111",
            "4111111111111111",
            "5500-0000-0000-0004",
            "anna@example.com",
            "bob@example.org",
            "carol@example.net",
            "4012888888881881",
            "dave@example.com",
            "4012 8888 8888 1881",
        ] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
    }
}

#[test]
fn search_formats_serve_people_and_scripts() {
    let ws = Workspace::new();
    let file = ws.write("good.ndjson", GOOD.as_bytes());
    ws.ingest(&[&file]);
    let out = ws.search(&["booking_id:BK-20240205-000001", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(json["total"], 4);
    assert_eq!(json["hits"].as_array().unwrap().len(), 4);
    assert!(json["hits"][0]["_id"].as_str().is_some_and(|id| id.len() == 32), "{json}");

    let out = ws.search(&["--agg", "terms:type", "--agg", "date_histogram:ts:1m", "--limit", "0"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("terms:type") && table.contains("booking.requested") && table.contains('█'), "{table}");
    assert!(table.contains("2024-02-05T10:00:00"), "{table}");

    let out = ws.search(&["--agg", "stats:amount", "--format", "json", "--limit", "0"]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["aggregations"]["stats:amount"]["count"], 2, "{json}");

    let out = ws.search(&["venue:\"Olympic Hall\"", "--format", "csv", "--fields", "booking_id,venue,seat"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("booking_id,venue,seat\n"), "{csv}");
    assert!(csv.contains("\"A-1, A-2\""), "{csv}");

    assert_eq!(ws.count("client.app:ios"), 1);
    assert_eq!(ws.count("NOT type:seat.locked"), 3);
    let out = ws.search(&["amount:[1 TO", "--count"]);
    assert_eq!(out.status.code(), Some(2), "a malformed query is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid query"));
}

#[test]
fn since_and_until_bound_the_search() {
    let ws = Workspace::new();
    let file = ws.write("good.ndjson", GOOD.as_bytes());
    ws.ingest(&[&file]);
    let out = ws.search(&["--since", "2024-02-05T10:00:01Z", "--until", "2024-02-05T10:00:03Z", "--count"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
    let out = ws.search(&["--since", "yesterday-ish", "--count"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_second_ingest_on_a_locked_index_exits_2_with_a_clear_message() {
    let ws = Workspace::new();
    let mut first = bin()
        .args(["ingest", "--json", "--index", &ws.index(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let lock_seen = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        ws.path("index").join("meta.json").exists()
    });
    assert!(lock_seen, "the first ingest opened the index");
    let file = ws.write("good.ndjson", GOOD.as_bytes());
    let (code, _, stderr) = ws.ingest(&[&file]);
    drop(first.stdin.take());
    let _ = first.wait();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("locked"), "{stderr}");
}

#[test]
fn stdin_is_a_source() {
    let ws = Workspace::new();
    let mut child = bin()
        .args(["ingest", "--json", "--index", &ws.index(), "--dead-letter"])
        .arg(ws.dead_letter())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(GOOD.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(summary["indexed"], 4, "{summary}");
}

#[test]
fn usage_errors_exit_2() {
    let out = bin().args(["ingest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().args(["search", "--index", "/nonexistent/index", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tix-logs ingest"));
    let out = bin().args(["search", "--agg", "avg:amount"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn audit_lists_each_source_with_its_outcome() {
    let ws = Workspace::new();
    let good = ws.write("good.ndjson", GOOD.as_bytes());
    let bad = ws.write("bad.ndjson", BAD.as_bytes());
    ws.ingest(&[&good, &bad]);
    let out = bin().args(["audit", "--index", &ws.index(), "--format", "json"]).output().unwrap();
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).expect("audit json");
    assert_eq!(records.len(), 2);
    let bad_record = records.iter().find(|r| r["source"].as_str().unwrap().ends_with("bad.ndjson")).unwrap();
    assert_eq!(bad_record["rejected"], 4);
    assert_eq!(bad_record["valid"], 0, "every record of bad.ndjson fails validation");
    let good_record = records.iter().find(|r| r["source"].as_str().unwrap().ends_with("good.ndjson")).unwrap();
    assert_eq!((good_record["records"].as_u64(), good_record["valid"].as_u64()), (Some(4), Some(4)));
    assert_eq!(bad_record["status"], "completed");
}

#[test]
fn audit_answers_did_it_all_land_for_a_time_window_and_a_state() {
    let ws = Workspace::new();
    let good = ws.write("good.ndjson", GOOD.as_bytes());
    let truncated = samples().join("logs/truncated.ndjson.gz");
    ws.ingest(&[&good, &truncated]);
    let audit = |args: &[&str]| {
        let out = bin().args(["audit", "--index", &ws.index(), "--format", "json"]).args(args).output().unwrap();
        let records: Vec<Value> = serde_json::from_slice(&out.stdout).expect("audit json");
        let names: Vec<String> = records
            .iter()
            .map(|r| Path::new(r["source"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into())
            .collect();
        (out.status.code(), names)
    };
    let (code, names) = audit(&[]);
    assert_eq!((code, names.len()), (Some(1), 2), "a failed source makes the verdict 1: {names:?}");
    assert_eq!(audit(&["--status", "failed"]), (Some(1), vec!["truncated.ndjson.gz".to_string()]));
    assert_eq!(audit(&["--status", "completed"]), (Some(0), vec!["good.ndjson".to_string()]));
    let (code, names) = audit(&["--since", "2024-02-05", "--until", "2024-02-06", "--status", "completed"]);
    assert_eq!((code, names), (Some(0), vec!["good.ndjson".to_string()]), "good.ndjson's events are on 2024-02-05");
    assert_eq!(audit(&["--since", "2024-02-06", "--until", "2024-02-07", "--status", "completed"]), (Some(0), vec![]));

    let table = bin().args(["audit", "--index", &ws.index()]).output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("2 sources: 1 completed, 1 failed, 0 in progress"), "{text}");
}

#[test]
fn compression_is_told_by_the_bytes_not_the_file_name() {
    let ws = Workspace::new();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(GOOD.as_bytes()).unwrap();
    let gzip_named_json = ws.write("really-gzip.json", &encoder.finish().unwrap());
    let plain_named_gz =
        ws.write("really-plain.ndjson.gz", GOOD.replace("e-1", "e-9").replace("e-2", "e-8").as_bytes());
    let (code, summary, stderr) = ws.ingest(&[&gzip_named_json, &plain_named_gz]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((summary["objects"].as_u64(), summary["objects_failed"].as_u64()), (Some(2), Some(0)), "{summary}");
    assert_eq!(summary["indexed"], 8, "both files read whole: {summary}");
    ws.assert_conservation(&summary, 0);
}

#[test]
fn committed_samples_ingest_with_conservation() {
    let dir = samples();
    if !dir.exists() {
        panic!("fixtures/samples is missing");
    }
    let ws = Workspace::new();
    let (code, summary, stderr) = ws.ingest(&[&dir.join("logs")]);
    assert_eq!(code, 1, "the truncated sample is a failed object: {stderr}");
    assert_eq!(summary["objects_failed"], 1, "{summary}");
    ws.assert_conservation(&summary, 0);
}

#[test]
fn the_elasticsearch_backend_without_a_url_is_a_usage_error() {
    let ws = Workspace::new();
    let file = ws.write("good.ndjson", GOOD.as_bytes());
    let out =
        bin().env_remove("TIX_ES_URL").args(["ingest", "--backend", "elasticsearch"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TIX_ES_URL"));
}

fn expected() -> Value {
    let text = std::fs::read_to_string(samples().join("EXPECTED.json")).expect("fixtures/samples/EXPECTED.json");
    serde_json::from_str(&text).expect("EXPECTED.json is JSON")
}

#[test]
fn every_bad_record_kind_in_the_messy_sample_is_dead_lettered_with_a_reason_naming_the_field() {
    let ws = Workspace::new();
    let (code, summary, stderr) = ws.ingest(&[&samples().join("logs/messy.ndjson")]);
    assert_eq!(code, 0, "{stderr}");
    let messy = &expected()["files"]["messy.ndjson"];
    assert_eq!(summary["records"], messy["records"], "{summary}");
    assert_eq!(summary["indexed"], messy["valid"], "{summary}");
    assert_eq!(summary["rejected"], messy["rejected"], "{summary}");
    ws.assert_conservation(&summary, 0);
    let entries = ws.dead_letters();
    for rejection in messy["rejections"].as_array().expect("rejections") {
        let record = rejection["record"].as_u64().unwrap();
        let entry = entries
            .iter()
            .find(|e| e["record"].as_u64() == Some(record))
            .unwrap_or_else(|| panic!("record {record} ({}) is not in the dead-letter store", rejection["what"]));
        assert_eq!(entry["kind"], rejection["kind"], "record {record}: {entry}");
        if let Some(field) = rejection["field"].as_str() {
            assert!(
                entry["reason"].as_str().unwrap_or("").contains(field),
                "record {record}: reason must name {field}: {entry}"
            );
        }
        assert!(entry["raw"].as_str().map_or(0, str::len) <= 64 * 1024, "raw is capped");
    }
    // The good records around them are all searchable.
    for valid in messy["valid_records"].as_array().unwrap() {
        assert!(!entries.iter().any(|e| e["record"] == *valid), "valid record {valid} was rejected");
    }
}

#[test]
fn every_compression_and_framing_of_the_day_sample_gives_the_same_events() {
    let expected = expected();
    let day = &expected["files"]["day.ndjson"];
    let mut totals = Vec::new();
    for &name in fixtures::DAY_SAMPLES {
        let ws = Workspace::new();
        let (code, summary, stderr) = ws.ingest(&[&samples().join("logs").join(name)]);
        assert_eq!(code, 0, "{name}: {stderr}");
        assert_eq!(summary["records"], day["records"], "{name}: {summary}");
        assert_eq!(summary["indexed"], day["valid"], "{name}: {summary}");
        ws.assert_conservation(&summary, 0);
        let out = ws.search(&["--agg", "terms:type:20", "--limit", "0", "--format", "json"]);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        totals.push(json["aggregations"]["terms:type:20"]["buckets"].clone());
    }
    assert!(totals.windows(2).all(|w| w[0] == w[1]), "every form gives the same type counts");
}

#[test]
fn the_truncated_sample_keeps_the_records_before_the_cut() {
    let ws = Workspace::new();
    let (code, summary, _) = ws.ingest(&[&samples().join("logs/truncated.ndjson.gz")]);
    assert_eq!(code, 1);
    let truncated = &expected()["files"]["truncated.ndjson.gz"];
    assert_eq!(summary["indexed"], truncated["complete_records_before_cut"], "{summary}");
    assert_eq!(ws.count(""), truncated["complete_records_before_cut"].as_u64().unwrap());
}

impl Workspace {
    /// What the run left in the index and the dead-letter store, for the oracle.
    fn observed(&self) -> Observed {
        let out = self.search(&["--format", "json", "--limit", "1000000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let response: Value = serde_json::from_slice(&out.stdout).expect("search --format json");
        let docs = Observed::docs_of_search_json(&response);
        assert_eq!(docs.len() as u64, self.count(""), "search returned every document");
        let audit = bin().args(["audit", "--format", "json", "--index", &self.index()]).output().expect("audit");
        assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stderr));
        let sources: Vec<Value> = serde_json::from_slice(&audit.stdout).expect("audit --format json");
        Observed {
            docs,
            dead_letters: ingest::dead_letter::LocalDeadLetter::read_all(&self.dead_letter())
                .expect("dead-letter store")
                .into_iter()
                .map(|e| ObservedDeadLetter { source: e.source, record: e.record, reason: e.reason })
                .collect(),
            sources: sources
                .iter()
                .map(|s| ObservedSource {
                    source: s["source"].as_str().expect("source").to_string(),
                    completed: s["status"] == "completed",
                })
                .collect(),
        }
    }

    /// Starts `tix-logs ingest` on `sources`, waits until more than `at_least` events are
    /// committed (visible to a search), then kills it without warning. Returns the count
    /// at the kill.
    fn ingest_and_kill(&self, sources: &[PathBuf], at_least: u64) -> u64 {
        let mut child = bin()
            .args(["ingest", "--json", "--commit-every", "2000", "--index", &self.index(), "--dead-letter"])
            .arg(self.dead_letter())
            .args(sources)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let committed = (0..3_000).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let out = self.search(&["--count"]);
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or(0) > at_least
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(committed, "no new commit became visible before the ingest ended");
        self.count("")
    }
}

#[test]
fn an_ingest_killed_twice_mid_run_converges_on_rerun_to_the_fault_free_result() {
    let corpus = Corpus::generate(3, 15_000, 4_242);
    let files = corpus.files().to_vec();
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();

    let fault_free = Workspace::new();
    let (code, _, stderr) = fault_free.ingest(&paths);
    assert_eq!(code, 0, "{stderr}");
    let reference = fault_free.observed();
    oracle::check(&corpus, &reference, None);

    let ws = Workspace::new();
    let first = ws.ingest_and_kill(&files, 0);
    let second = ws.ingest_and_kill(&files, first);
    assert!(second < corpus.good(), "the second kill came too late to test anything ({second} indexed)");
    let (code, summary, stderr) = ws.ingest(&paths);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["objects_failed"], 0, "{summary}");
    oracle::check(&corpus, &ws.observed(), Some(&reference.docs));

    let (_, again, _) = ws.ingest(&paths);
    assert_eq!(again["objects_skipped"], 3, "completed sources are skipped: {again}");
    // Liveness: a new object goes in after the crashes.
    let new_object = Corpus::new_object(&ws.path("new.ndjson"), 50);
    let (code, summary, stderr) = ws.ingest(&[&new_object]);
    assert_eq!((code, summary["indexed"].as_u64()), (0, Some(50)), "{stderr} {summary}");
    assert_eq!(ws.count(""), corpus.good() + 50);
}
