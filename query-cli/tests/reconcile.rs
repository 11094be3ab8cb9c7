//! `tix-logs reconcile` against S3 (Garage on 127.0.0.1, started by `scripts/garage.sh`):
//! objects whose notification was lost are found as missing, failed ones as failed, and
//! `--ingest` ingests them once, judged by counting the index. Ignored by a plain
//! `cargo test`; `scripts/test.sh` runs them with Garage up.

mod support;

use std::path::Path;
use std::process::Output;
use support::{garage, unique_prefix};

use fixtures::samples::gzip;
use indexer::{SearchRequest, Store, TantivyBackend};
use serde_json::{json, Value};
use testkit::events::Event;

/// `n` events without `event_id` (so their ids come from the object's identity and a
/// second ingest under another identity would double them), all with venue `tag`.
fn events(tag: &str, n: u64) -> Vec<u8> {
    testkit::events::ndjson((0..n).map(|i| {
        let ts = format!("2024-02-05T10:{:02}:{:02}Z", i / 60 % 60, i % 60);
        Event::of_booking(ts, "booking.confirmed", &format!("BK-{tag}-{i:05}"))
            .with("venue", tag)
            .with("amount", 1000 + i)
    }))
}

fn tix(dir: &Path, args: &[&str]) -> Output {
    support::tix(dir).args(args).output().unwrap()
}

/// Runs `args`, checks the exit status, returns the one JSON object it printed.
fn tix_json(dir: &Path, args: &[&str], status: i32) -> Value {
    let output = tix(dir, args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(status),
        "{args:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "exactly one JSON object on stdout: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

fn count(index: &Path, query: &str) -> u64 {
    let request = SearchRequest { query: query.into(), ..SearchRequest::default() };
    TantivyBackend::open_for_reading(index).unwrap().count(&request).unwrap()
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn lost_notifications_are_found_and_ingest_fills_them_once() {
    let garage = garage();
    let prefix = unique_prefix("found");
    let location = format!("s3://{}/{prefix}", garage.bucket);
    // obj-2 is a truncated gzip: it fails, its readable records stay indexed.
    let sizes = [30u64, 41, 200, 17, 25];
    let keys: Vec<String> = (0..5).map(|i| format!("{prefix}obj-{i}.ndjson.gz")).collect();
    for (i, key) in keys.iter().enumerate() {
        let whole = gzip(&events(&format!("obj-{i}"), sizes[i]));
        let body = if i == 2 { whole[..whole.len() - 40].to_vec() } else { whole };
        garage.s3.put(&garage.bucket, key, body).unwrap();
    }
    // Skipped as ingestion skips them: a folder marker and a 0-byte object.
    garage.s3.put(&garage.bucket, &format!("{prefix}sub/"), Vec::new()).unwrap();
    garage.s3.put(&garage.bucket, &format!("{prefix}empty.ndjson"), Vec::new()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("tix-index");
    // The notifications of obj-3 and obj-4 were "lost": only 0, 1 and 2 are ingested,
    // each by its full key (no key is a prefix of another).
    for key in &keys[..3] {
        let output = tix(dir.path(), &["ingest", "--json", &format!("s3://{}/{key}", garage.bucket)]);
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["objects"], 1, "{key}: {summary}");
    }
    let count_of = |i: usize| count(&index, &format!("venue:\"obj-{i}\""));
    assert_eq!((count_of(0), count_of(1), count_of(3), count_of(4)), (30, 41, 0, 0));
    let truncated_indexed = count_of(2);
    assert!(truncated_indexed < 200, "the truncated object lost records: {truncated_indexed}");
    let before = count(&index, "");

    let report = tix_json(dir.path(), &["reconcile", "--json", &location], 1);
    assert_eq!(report["listed"], 5, "{report}");
    assert_eq!(report["skipped"], 2, "{report}");
    assert_eq!(report["completed"], 2, "{report}");
    assert_eq!(report["missing"], json!([keys[3], keys[4]]), "{report}");
    assert_eq!(report["failed"], json!([keys[2]]), "{report}");
    assert!(report.get("ingested").is_none(), "nothing ingested without --ingest: {report}");
    assert_eq!(count(&index, ""), before, "a plain reconcile writes nothing");

    // --ingest: the missing ones complete, the truncated one stays failed (exit 1).
    let report = tix_json(dir.path(), &["reconcile", "--ingest", "--json", &location], 1);
    assert_eq!(report["missing"], json!([keys[3], keys[4]]), "what was found: {report}");
    assert_eq!(report["ingested"]["objects"], 3, "{report}");
    assert_eq!(report["ingested"]["objects_failed"], 1, "{report}");
    assert_eq!(report["ingested"]["indexed"], 17 + 25, "{report}");
    assert_eq!(report["remaining"], json!([keys[2]]), "{report}");
    assert_eq!((count_of(3), count_of(4), count_of(2)), (17, 25, truncated_indexed), "each record once");
    assert_eq!(count(&index, ""), before + 17 + 25);

    let report = tix_json(dir.path(), &["reconcile", "--json", &location], 1);
    assert_eq!(report["missing"], json!([]), "{report}");
    assert_eq!(report["failed"], json!([keys[2]]), "{report}");
    assert_eq!(report["completed"], 4, "{report}");
    assert_eq!(report["listed"], 5, "{report}");

    // --ingest again: only the failed object is retried; no record is doubled.
    let report = tix_json(dir.path(), &["reconcile", "--ingest", "--json", &location], 1);
    assert_eq!(report["ingested"]["objects"], 1, "{report}");
    assert_eq!(report["ingested"]["indexed"], 0, "{report}");
    assert_eq!(count(&index, ""), before + 17 + 25, "a second --ingest changes nothing");
    for (i, size) in sizes.into_iter().enumerate() {
        assert_eq!(count_of(i), if i == 2 { truncated_indexed } else { size }, "obj-{i}");
    }

    // People get the counts and the keys; the exit status says the same.
    let output = tix(dir.path(), &["reconcile", &location]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&format!("{location}: 5 objects")), "{text}");
    assert!(text.contains(&format!("{}: failed:", keys[2])), "the failed key with its reason: {text}");
    assert!(text.contains("--ingest"), "says what to do: {text}");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_prefix_that_all_landed_exits_0_and_since_cuts_by_last_modified() {
    let garage = garage();
    let prefix = unique_prefix("since");
    let location = format!("s3://{}/{prefix}", garage.bucket);
    for i in 0..3 {
        garage.s3.put(&garage.bucket, &format!("{prefix}part-{i}.ndjson"), events(&format!("part-{i}"), 5)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("tix-index");

    // Nothing ingested yet, --ingest creates the index; all three were new.
    let report = tix_json(dir.path(), &["reconcile", "--ingest", "--json", "--since", "1h", &location], 0);
    assert_eq!(report["listed"], 3, "uploaded just now, so within 1h: {report}");
    assert_eq!(report["missing"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(report["ingested"]["indexed"], 15, "{report}");
    assert_eq!(report["remaining"], json!([]), "{report}");
    assert_eq!(count(&index, ""), 15);

    let report = tix_json(dir.path(), &["reconcile", "--ingest", "--json", "--since", "1h", &location], 0);
    assert_eq!((report["listed"].clone(), report["completed"].clone()), (json!(3), json!(3)), "{report}");
    assert_eq!(report["ingested"]["objects"], 0, "nothing to do, the same shape: {report}");
    assert_eq!((report["missing"].clone(), report["failed"].clone()), (json!([]), json!([])), "{report}");

    // A new object after the fact: missing again, exit 1, and --since in the future hides all.
    garage.s3.put(&garage.bucket, &format!("{prefix}part-9.ndjson"), events("part-9", 2)).unwrap();
    let report = tix_json(dir.path(), &["reconcile", "--json", "--since", "1h", &location], 1);
    assert_eq!(report["missing"], json!([format!("{prefix}part-9.ndjson")]), "{report}");
    let report = tix_json(dir.path(), &["reconcile", "--json", "--since", "2099-01-01", &location], 0);
    assert_eq!((report["listed"].clone(), report["before_since"].clone()), (json!(0), json!(4)), "{report}");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn errors_exit_2_and_say_what_to_do() {
    let garage = garage();
    let dir = tempfile::tempdir().unwrap();
    let location = format!("s3://{}/{}", garage.bucket, unique_prefix("errors"));
    let cases: [(&[&str], &str); 5] = [
        (&["reconcile", "./logs"], "expected s3://bucket/prefix"),
        (&["reconcile", &location], "no index here yet"),
        (&["reconcile", "--since", "yesterday", &location], "cannot read time"),
        (&["reconcile", "--ingest", "s3://tix-logs-no-such-bucket/x/"], "check the bucket name"),
        (
            &["reconcile", "--ingest", "--dead-letter", &format!("{location}dead/"), &location],
            "choose a dead-letter prefix outside",
        ),
    ];
    for (args, message) in cases {
        let output = tix(dir.path(), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

/// The Lambda's scheduled payload, saved to a file and run through the Lambda's handler
/// by `tix-logs ingest --event`: what is missing is ingested once, and `reconcile`
/// (the same implementation) then finds nothing missing.
#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn the_scheduled_reconcile_payload_runs_through_ingest_event() {
    let garage = garage();
    let prefix = unique_prefix("scheduled");
    let location = format!("s3://{}/{prefix}", garage.bucket);
    for i in 0..3 {
        garage
            .s3
            .put(&garage.bucket, &format!("{prefix}part-{i}.ndjson.gz"), gzip(&events(&format!("s-{i}"), 7 + i)))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("tix-index");
    let payload = dir.path().join("reconcile.json");
    let event = json!({"reconcile": {"prefix": location, "since": "2d", "ingest": true}});
    std::fs::write(&payload, event.to_string()).unwrap();

    let summary = tix_json(dir.path(), &["ingest", "--json", "--event", payload.to_str().unwrap()], 0);
    assert_eq!(count(&index, ""), 7 + 8 + 9, "every record of the three objects, once: {summary}");
    assert_eq!(summary["objects"], 3, "{summary}");
    for i in 0..3 {
        assert_eq!(count(&index, &format!("venue:\"s-{i}\"")), 7 + i, "s-{i}");
    }
    let report = tix_json(dir.path(), &["reconcile", "--json", &location], 0);
    assert_eq!((report["completed"].clone(), report["missing"].clone()), (json!(3), json!([])), "{report}");

    // Run again: nothing missing, nothing written.
    let summary = tix_json(dir.path(), &["ingest", "--json", "--event", payload.to_str().unwrap()], 0);
    assert_eq!(summary["objects"], 0, "{summary}");
    assert_eq!(count(&index, ""), 7 + 8 + 9);
}
