//! `tix-logs redrive` through the real binary, judged by the conservation oracle: a
//! corpus ingested under a record-size limit too strict for it, then redriven with the
//! limit fixed, must end exactly as a plain ingest of the corpus ends (the same
//! documents under the same ids, field for field; exactly the bad records dead-lettered),
//! however often redrive runs, and after a crash between its commit and its rewrite of
//! the dead-letter store. The local store runs everywhere; the S3 variant needs Garage
//! (`scripts/test.sh` runs it).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ingest::dead_letter::LocalDeadLetter;
use serde_json::Value;
use support::{observe, tix};
use testkit::oracle::{check, Corpus, ObservedDeadLetter};

/// Runs tix-logs with `args`; the exit code and the `--json` output.
fn run_json(dir: &Path, args: &[&str]) -> (i32, Value) {
    let output = tix(dir).args(args).output().unwrap();
    let code = output.status.code().unwrap_or(-1);
    assert!(code < 2, "{args:?}: exit {code}: {}", String::from_utf8_lossy(&output.stderr));
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)));
    (code, json)
}

/// A record-size limit that some of the corpus's good records break: the median length.
fn strict_limit(corpus: &Corpus) -> usize {
    let mut lengths: Vec<usize> = corpus
        .files()
        .iter()
        .flat_map(|file| std::fs::read_to_string(file).unwrap().lines().map(str::len).collect::<Vec<_>>())
        .collect();
    lengths.sort();
    lengths[lengths.len() / 2]
}

/// The dead-letter directory's files and contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

fn restore(dir: &Path, snapshot: &BTreeMap<PathBuf, Vec<u8>>) {
    for path in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        std::fs::remove_file(path).unwrap();
    }
    for (path, bytes) in snapshot {
        std::fs::write(path, bytes).unwrap();
    }
}

/// Checks the `--json` summary's shape and its arithmetic.
fn check_summary(summary: &Value) {
    for key in [
        "dry_run",
        "location",
        "segments",
        "entries",
        "passed",
        "indexed",
        "duplicates",
        "failed",
        "kept",
        "failed_objects",
        "unfinished",
        "unreadable_lines",
        "segments_rewritten",
        "remaining",
        "reasons",
        "elapsed_ms",
    ] {
        assert!(summary.get(key).is_some(), "--json lacks {key}: {summary}");
    }
    let n = |key: &str| summary[key].as_u64().unwrap_or_else(|| panic!("{key} is a count: {summary}"));
    assert_eq!(
        n("entries"),
        n("passed") + n("failed") + n("kept") + n("failed_objects"),
        "every entry is judged once: {summary}"
    );
    if summary["dry_run"] == false {
        assert_eq!(n("passed"), n("indexed") + n("duplicates") + n("unfinished"), "{summary}");
    }
    let rows: u64 = summary["reasons"].as_array().unwrap().iter().map(|r| r["entries"].as_u64().unwrap()).sum();
    assert_eq!(rows, n("entries"), "the table of reasons covers every entry: {summary}");
}

#[test]
fn records_refused_by_a_too_strict_limit_come_back_under_their_original_ids_once() {
    let corpus = Corpus::generate(3, 160, 0x5ed1);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = corpus.files().iter().map(|f| f.display().to_string()).collect();
    let ingest = |index: &str, dead_letter: &str, extra: &[&str]| {
        let mut args = vec!["ingest", "--json", "--index", index, "--dead-letter", dead_letter];
        args.extend_from_slice(extra);
        args.extend(files.iter().map(String::as_str));
        let (code, summary) = run_json(dir.path(), &args);
        assert_eq!(code, 0, "{summary}");
    };
    let dl = dir.path().join("dl");
    let entries = || LocalDeadLetter::read_all(&dl).unwrap();

    // What a plain ingest makes of the corpus: the oracle's reference.
    ingest("reference", "dl-reference", &[]);
    let reference =
        observe(&dir.path().join("reference"), LocalDeadLetter::read_all(&dir.path().join("dl-reference")).unwrap());
    check(&corpus, &reference, None);

    // The same corpus under a limit half its good records break.
    let limit = strict_limit(&corpus).to_string();
    ingest("index", "dl", &["--max-record-bytes", &limit]);
    let strict = observe(&dir.path().join("index"), entries());
    let refused = strict.dead_letters.len() as u64;
    assert!(strict.docs.len() as u64 > corpus.good() / 4, "{} indexed", strict.docs.len());
    assert!(refused > corpus.records() / 4, "{refused} refused");
    assert_eq!(strict.docs.len() as u64 + refused, corpus.records(), "conserved at ingest");
    let bad = corpus.records() - corpus.good();

    // A dry run judges and changes nothing.
    let before = snapshot(&dl);
    let redrive = |extra: &[&str]| {
        let mut args = vec!["redrive", "--json", "--index", "index", "--dead-letter", "dl"];
        args.extend_from_slice(extra);
        let (code, summary) = run_json(dir.path(), &args);
        check_summary(&summary);
        assert_eq!(code, 1, "the bad records stay, so some entry stays: {summary}");
        assert_eq!(summary["remaining"], bad, "{summary}");
        summary
    };
    let dry = redrive(&["--dry-run"]);
    assert_eq!((dry["dry_run"].clone(), dry["entries"].as_u64()), (Value::Bool(true), Some(refused)), "{dry}");
    assert_eq!(dry["passed"], refused - bad, "{dry}");
    assert_eq!(dry["failed"], bad, "{dry}");
    assert_eq!(dry["indexed"], 0, "{dry}");
    assert_eq!(snapshot(&dl), before, "a dry run leaves the dead-letter store as it was");
    assert_eq!(observe(&dir.path().join("index"), entries()).docs.len(), strict.docs.len(), "and the index");
    let reasons = dry["reasons"].as_array().unwrap();
    let row = |outcome: &str| reasons.iter().find(|r| r["outcome"] == outcome).unwrap_or_else(|| panic!("{dry}"));
    assert!(row("passed")["reason"].as_str().unwrap().contains("the N-byte limit"), "{dry}");
    assert!(row("failed")["reason"].as_str().unwrap().contains(testkit::oracle::BAD_FIELD), "{dry}");

    // The redrive proper: the store ends as the plain ingest's, id for id.
    let first = redrive(&[]);
    assert_eq!(first["indexed"], refused - bad, "{first}");
    assert_eq!(first["duplicates"], 0, "{first}");
    check(&corpus, &observe(&dir.path().join("index"), entries()), Some(&reference.docs));
    let after_first = snapshot(&dl);

    // Again: nothing passes that was not there, nothing is doubled, nothing rewritten.
    let second = redrive(&[]);
    assert_eq!((second["passed"].as_u64(), second["segments_rewritten"].as_u64()), (Some(0), Some(0)), "{second}");
    check(&corpus, &observe(&dir.path().join("index"), entries()), Some(&reference.docs));
    assert_eq!(snapshot(&dl), after_first);

    // A crash after the commit and before the entries went: the next run finds every
    // document already there under its id, indexes nothing, and removes the entries.
    restore(&dl, &before);
    let after_crash = redrive(&[]);
    assert_eq!(after_crash["indexed"], 0, "{after_crash}");
    assert_eq!(after_crash["duplicates"], refused - bad, "{after_crash}");
    check(&corpus, &observe(&dir.path().join("index"), entries()), Some(&reference.docs));
}

#[test]
fn the_readable_summary_shows_the_table_of_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("day.ndjson");
    let long_message = "x".repeat(300);
    std::fs::write(
        &log,
        format!(
            "{{\"ts\":\"2024-02-05T10:00:00Z\",\"type\":\"seat.locked\",\"event_id\":\"a\"}}\n\
             {{\"ts\":\"2024-02-05T10:00:01Z\",\"type\":\"seat.locked\",\"message\":\"{long_message}\"}}\n\
             {{\"ts\":\"2024-02-05T10:00:02Z\",\"type\":\"seat.locked\",\"amount\":\"lots\"}}\n"
        ),
    )
    .unwrap();
    let output = tix(dir.path()).args(["ingest", "--max-record-bytes", "200"]).arg(&log).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let output = tix(dir.path()).args(["redrive", "--dry-run"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("1 would pass, 1 would fail again"), "{text}");
    assert!(text.contains("would pass") && text.contains("the N-byte limit"), "{text}");
    assert!(text.contains("would fail") && text.contains("amount"), "{text}");
    let output = tix(dir.path()).args(["redrive"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("1 passed (1 indexed, 0 already indexed), 1 failed again"), "{text}");
    assert!(text.contains("1 entries stay"), "{text}");
}

#[test]
#[ignore = "needs Garage (scripts/test.sh, or scripts/garage.sh start; . target/garage/env)"]
fn s3_dead_letters_are_redriven_with_the_same_guarantees() {
    let garage = support::garage();
    let prefix = support::unique_prefix("redrive");
    let corpus = Corpus::generate(2, 120, 0x5ed2);
    for file in corpus.files() {
        let key = format!("{prefix}in/{}", file.file_name().unwrap().to_string_lossy());
        garage.s3.put(&garage.bucket, &key, std::fs::read(file).unwrap()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let source = format!("s3://{}/{prefix}in/", garage.bucket);
    let dl = |name: &str| format!("s3://{}/{prefix}{name}", garage.dl_bucket);
    let read_dl = |name: &str| {
        ingest::s3::S3DeadLetter::new(
            garage.s3.clone(),
            ingest::s3::S3Location { bucket: garage.dl_bucket.clone(), prefix: format!("{prefix}{name}/") },
        )
        .read_all()
        .unwrap()
    };
    let ingest = |index: &str, name: &str, extra: &[&str]| {
        let dead_letter = dl(name);
        let mut args = vec!["ingest", "--json", "--index", index, "--dead-letter", &dead_letter];
        args.extend_from_slice(extra);
        args.push(&source);
        let (code, summary) = run_json(dir.path(), &args);
        assert_eq!(code, 0, "{summary}");
    };
    ingest("reference", "dl-reference", &[]);
    let reference = observe(&dir.path().join("reference"), read_dl("dl-reference"));
    check(&corpus, &reference, None);

    let limit = strict_limit(&corpus).to_string();
    ingest("index", "dl", &["--max-record-bytes", &limit]);
    let refused = read_dl("dl").len() as u64;
    let bad = corpus.records() - corpus.good();
    assert!(refused > bad + corpus.records() / 4, "{refused} refused");
    let dead_letter = dl("dl");
    let redrive = |extra: &[&str]| {
        let mut args = vec!["redrive", "--json", "--index", "index", "--dead-letter", &dead_letter];
        args.extend_from_slice(extra);
        let (code, summary) = run_json(dir.path(), &args);
        check_summary(&summary);
        assert_eq!((code, summary["remaining"].as_u64()), (1, Some(bad)), "{summary}");
        summary
    };
    let dry = redrive(&["--dry-run"]);
    assert_eq!(dry["passed"], refused - bad, "{dry}");
    assert_eq!(read_dl("dl").len() as u64, refused, "a dry run changes nothing");
    let first = redrive(&[]);
    assert_eq!((first["indexed"].as_u64(), first["duplicates"].as_u64()), (Some(refused - bad), Some(0)), "{first}");
    check(&corpus, &observe(&dir.path().join("index"), read_dl("dl")), Some(&reference.docs));
    let second = redrive(&[]);
    assert_eq!((second["passed"].as_u64(), second["segments_rewritten"].as_u64()), (Some(0), Some(0)), "{second}");
    check(&corpus, &observe(&dir.path().join("index"), read_dl("dl")), Some(&reference.docs));
}

/// The same against `testkit`'s fake Elasticsearch cluster (its documented `_bulk`
/// answers: `create` of an existing id is a 409), dead letters in a local directory.
#[test]
fn redrive_into_elasticsearch_keeps_ids_and_doubles_nothing() {
    use testkit::es_server::FakeCluster;
    const PREFIX: &str = indexer::elasticsearch::DEFAULT_INDEX_PREFIX;
    let corpus = Corpus::generate(2, 120, 0x5ed3);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = corpus.files().iter().map(|f| f.display().to_string()).collect();
    let es = |cluster: &FakeCluster, args: &[&str]| {
        let mut command = tix(dir.path());
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TIX_ES_")) {
            command.env_remove(name);
        }
        let output = command
            .env("TIX_ES_URL", cluster.url())
            .env("TIX_ES_API_KEY", "tix-ingest:s3cr3t-api-key-value")
            .args(args)
            .output()
            .unwrap();
        let code = output.status.code().unwrap_or(-1);
        assert!(code < 2, "{args:?}: exit {code}: {}", String::from_utf8_lossy(&output.stderr));
        (code, serde_json::from_slice::<Value>(&output.stdout).unwrap())
    };
    let ingest = |cluster: &FakeCluster, dead_letter: &str, extra: &[&str]| {
        let mut args = vec!["ingest", "--json", "--backend", "elasticsearch", "--dead-letter", dead_letter];
        args.extend_from_slice(extra);
        args.extend(files.iter().map(String::as_str));
        assert_eq!(es(cluster, &args).0, 0);
    };
    let observed = |cluster: &FakeCluster, dead_letter: &str| {
        let entries = LocalDeadLetter::read_all(&dir.path().join(dead_letter)).unwrap();
        cluster.observed(
            PREFIX,
            entries
                .into_iter()
                .map(|e| ObservedDeadLetter { source: e.source, record: e.record, reason: e.reason })
                .collect(),
        )
    };
    let reference_cluster = FakeCluster::start();
    ingest(&reference_cluster, "dl-reference", &[]);
    let reference = observed(&reference_cluster, "dl-reference");
    check(&corpus, &reference, None);

    let cluster = FakeCluster::start();
    let limit = strict_limit(&corpus).to_string();
    ingest(&cluster, "dl", &["--max-record-bytes", &limit]);
    let refused = LocalDeadLetter::read_all(&dir.path().join("dl")).unwrap().len() as u64;
    let bad = corpus.records() - corpus.good();
    let redrive = || {
        let (code, summary) = es(&cluster, &["redrive", "--json", "--backend", "elasticsearch", "--dead-letter", "dl"]);
        check_summary(&summary);
        assert_eq!((code, summary["remaining"].as_u64()), (1, Some(bad)), "{summary}");
        summary
    };
    let before = snapshot(&dir.path().join("dl"));
    let first = redrive();
    assert_eq!((first["indexed"].as_u64(), first["duplicates"].as_u64()), (Some(refused - bad), Some(0)), "{first}");
    check(&corpus, &observed(&cluster, "dl"), Some(&reference.docs));
    // As after a crash between the commit and the rewrite: every document is a 409.
    restore(&dir.path().join("dl"), &before);
    let again = redrive();
    assert_eq!((again["indexed"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(refused - bad)), "{again}");
    check(&corpus, &observed(&cluster, "dl"), Some(&reference.docs));
}
