//! `tix-logs reconcile s3://bucket/prefix`: finds the objects a lost or never-configured
//! S3 notification left behind. It lists the prefix, derives each object's checkpoint key
//! exactly as `tix-logs ingest s3://...` does (the listed [`S3Object`]'s identity: bucket,
//! key, ETag), and compares with the checkpoint records the backend keeps
//! ([`Backend::sources`]): every object is `completed`, `failed` (a checkpoint that is
//! failed or still in progress) or `missing` (no checkpoint: never ingested). With
//! `--ingest` the missing and failed objects go through the same pipeline as
//! `tix-logs ingest` (ids are stable, so nothing already indexed is doubled).
//!
//! [`classify`] is the pure part (listed objects against checkpoint records); the
//! listing, the backend and the printing sit around it in [`run`].

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};
use indexer::{Backend, SourceRecord, SourceStatus};
use ingest::dead_letter::{DeadLetterStore, LocalDeadLetter};
use ingest::pipeline::{Pipeline, RunSummary, SourceOutcome, SourceReport};
use ingest::s3::{S3Context, S3DeadLetter, S3Location, S3Object};
use ingest::source::SourceObject;
use serde::Serialize;

use crate::cli::ReconcileArgs;
use crate::ingest_cmd::{open_writer, redactor_from_env, S3Edge};
use crate::progress::BarProgress;
use crate::render::group_digits;

/// How many keys of each list the readable output shows (`--json` lists all).
const SHOWN_KEYS: usize = 10;

/// One listed key, as the classification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// Bytes, when the listing gave a size.
    pub size: Option<u64>,
    /// `LastModified` in epoch milliseconds, when the listing gave one.
    pub last_modified_ms: Option<i64>,
    /// The checkpoint key ingestion records for this object.
    pub checkpoint_key: String,
}

/// A failed (or unfinished) object and what its checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedObject {
    pub key: String,
    pub status: SourceStatus,
    pub reason: Option<String>,
}

/// Where a listing stands against the checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// Objects compared: `completed + missing.len() + failed.len()`.
    pub listed: u64,
    pub completed: u64,
    /// Keys without any checkpoint (never ingested), sorted.
    pub missing: Vec<String>,
    /// Keys whose checkpoint is failed or in progress, sorted.
    pub failed: Vec<String>,
    /// Folder markers and 0-byte objects: ingestion skips them, so does the comparison.
    pub skipped: u64,
    /// Objects modified before `--since`, left out.
    pub before_since: u64,
    /// The checkpoints of `failed`, in the same order.
    pub failures: Vec<FailedObject>,
}

impl Reconciliation {
    /// Keys that need ingesting: missing, then failed.
    pub fn outstanding(&self) -> impl Iterator<Item = &String> {
        self.missing.iter().chain(&self.failed)
    }
}

/// Classifies listed objects against checkpoint records. Objects modified before
/// `since_ms` are left out (an object without `LastModified` is kept, so a gap is never
/// hidden by the filter meant to find it); folder markers and 0-byte objects are skipped
/// as ingestion skips them. When several records carry the same key, the first counts
/// (`Backend::sources` lists the newest first).
pub fn classify(objects: &[Listed], records: &[SourceRecord], since_ms: Option<i64>) -> Reconciliation {
    let mut checkpoints: HashMap<&str, &SourceRecord> = HashMap::with_capacity(records.len());
    for record in records {
        checkpoints.entry(record.key.as_str()).or_insert(record);
    }
    let mut out = Reconciliation::default();
    for object in objects {
        if since_ms.is_some_and(|since| object.last_modified_ms.is_some_and(|modified| modified < since)) {
            out.before_since += 1;
            continue;
        }
        if ingest::events::nothing_to_ingest(&object.key, object.size).is_some() {
            out.skipped += 1;
            continue;
        }
        out.listed += 1;
        match checkpoints.get(object.checkpoint_key.as_str()) {
            None => out.missing.push(object.key.clone()),
            Some(record) if record.status == SourceStatus::Completed => out.completed += 1,
            Some(record) => out.failures.push(FailedObject {
                key: object.key.clone(),
                status: record.status,
                reason: record.failure.clone(),
            }),
        }
    }
    out.missing.sort();
    out.failures.sort_by(|a, b| a.key.cmp(&b.key));
    out.failed = out.failures.iter().map(|f| f.key.clone()).collect();
    out
}

pub fn run(args: ReconcileArgs) -> Result<u8> {
    let location = match S3Location::parse(&args.location) {
        Some(parsed) => parsed.map_err(anyhow::Error::msg)?,
        None => bail!(
            "reconcile compares an S3 prefix with the index: expected s3://bucket/prefix, got {:?}",
            args.location
        ),
    };
    let since_ms = args
        .since
        .as_deref()
        .map(|since| crate::timespec::parse_time(since, chrono::Utc::now()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let dead_letter_location = S3Location::parse(&args.pipeline.dead_letter).transpose().map_err(anyhow::Error::msg)?;
    if args.ingest {
        if let Some(dead_letter) = dead_letter_location.as_ref().filter(|dl| dl.overlaps(&location)) {
            bail!(
                "--dead-letter {dead_letter} overlaps {location}: dead-letter objects would be listed and ingested as logs; \
                 choose a dead-letter prefix outside the reconciled one"
            );
        }
    }
    let s3 = S3Edge::start()?;

    // Open the backend before listing: a locked index or an unreachable cluster is
    // reported before any S3 call, and `--ingest` reads checkpoints from its writer.
    let mut backend: Box<dyn Backend> = if args.ingest {
        open_writer(&args.store, &args.pipeline)?
    } else {
        crate::search_cmd::open_backend(&args.store)?
    };

    let listing = s3.context.list_with_times(&location).with_context(|| {
        format!(
            "listing {location} (check the bucket name, AWS_REGION / AWS_ENDPOINT_URL, and that the credentials may s3:ListBucket)"
        )
    })?;
    check_versioning(&s3.context, &location, args.ingest)?;
    let listed: Vec<Listed> = listing
        .iter()
        .map(|l| Listed {
            key: l.key().to_string(),
            size: l.object.object().size,
            last_modified_ms: l.last_modified_ms,
            checkpoint_key: l.object.identity().checkpoint_key(),
        })
        .collect();
    let records = backend.sources().context("reading the checkpoint records")?;
    let reconciliation = classify(&listed, &records, since_ms);

    let ingested = if !args.ingest {
        None
    } else if reconciliation.outstanding().next().is_none() {
        Some(Ingested { summary: RunSummary::default(), reports: Vec::new(), remaining: Vec::new() })
    } else {
        let by_key: HashMap<&str, &S3Object> = listing.iter().map(|l| (l.key(), &l.object)).collect();
        let objects: Vec<&S3Object> = reconciliation.outstanding().map(|key| by_key[key.as_str()]).collect();
        let (summary, reports) = ingest_objects(backend.as_mut(), &objects, &args, dead_letter_location, &s3.context)?;
        let remaining: Vec<String> = objects
            .iter()
            .zip(&reports)
            .filter(|(_, report)| report.outcome == SourceOutcome::Failed)
            .map(|(object, _)| object.object().key.clone())
            .collect();
        Some(Ingested { summary, reports, remaining })
    };
    backend.close().context("closing the index")?;

    let all_done = match &ingested {
        Some(ingested) => ingested.remaining.is_empty(),
        None => reconciliation.outstanding().next().is_none(),
    };
    if args.json {
        let mut out = serde_json::to_value(&reconciliation)?;
        out["location"] = location.to_string().into();
        if let Some(ingested) = &ingested {
            out["ingested"] = serde_json::to_value(&ingested.summary)?;
            out["remaining"] = serde_json::to_value(&ingested.remaining)?;
        }
        writeln!(std::io::stdout().lock(), "{out}")?;
    } else {
        print_report(&location, args.since.as_deref(), &reconciliation, ingested.as_ref(), &args)?;
    }
    Ok(if all_done { 0 } else { 1 })
}

/// What `--ingest` did.
struct Ingested {
    summary: RunSummary,
    reports: Vec<SourceReport>,
    /// Keys still not completed after the run, in the order they were ingested.
    remaining: Vec<String>,
}

/// In a versioned bucket the notifications carry version ids and the Lambda keys its
/// checkpoints by them, while a listing gives ETags: every object the Lambda ingested
/// would look missing, and `--ingest` would index records without `event_id` a second
/// time under another identity. Refuse rather than report wrong gaps.
fn check_versioning(s3: &S3Context, location: &S3Location, ingest: bool) -> Result<()> {
    match s3.bucket_versioning(&location.bucket) {
        Ok(None) => Ok(()),
        Ok(Some(status)) => bail!(
            "bucket {} has versioning {status}: its notifications carry version ids, so the Lambda's checkpoints \
             cannot be matched from a listing; reconcile supports unversioned buckets only (compare with \
             `tix-logs audit` instead)",
            location.bucket
        ),
        Err(error) if ingest => Err(anyhow::Error::new(error).context(format!(
            "cannot tell whether bucket {} is versioned, and --ingest could double records in a versioned bucket; \
             allow s3:GetBucketVersioning for these credentials",
            location.bucket
        ))),
        Err(error) => {
            eprintln!(
                "warning: cannot tell whether bucket {} is versioned ({error}); in a versioned bucket objects the \
                 Lambda ingested show as missing",
                location.bucket
            );
            Ok(())
        }
    }
}

/// Runs `objects` through the pipeline, one report per object in order.
fn ingest_objects(
    backend: &mut dyn Backend,
    objects: &[&S3Object],
    args: &ReconcileArgs,
    dead_letter_location: Option<S3Location>,
    s3: &S3Context,
) -> Result<(RunSummary, Vec<SourceReport>)> {
    let redactor = redactor_from_env(args.json);
    let mut dead_letter: Box<dyn DeadLetterStore> = match dead_letter_location {
        Some(location) => Box::new(S3DeadLetter::new(s3.clone(), location)),
        None => Box::new(LocalDeadLetter::new(std::path::Path::new(&args.pipeline.dead_letter))),
    };
    let total_bytes: u64 = objects.iter().filter_map(|o| o.size_hint()).sum();
    let progress = BarProgress::new(total_bytes, !args.json && std::io::stderr().is_terminal());
    let mut reports = Vec::with_capacity(objects.len());
    let summary = {
        let config = args.pipeline.pipeline_config(redactor);
        let mut pipeline = Pipeline::new(backend, dead_letter.as_mut(), config).with_progress(progress.clone());
        for object in objects {
            let report =
                pipeline.ingest(*object).with_context(|| format!("ingesting {}", object.identity().display_name()))?;
            reports.push(report);
        }
        pipeline.finish().context("committing the index")?
    };
    progress.finish();
    Ok((summary, reports))
}

fn print_report(
    location: &S3Location,
    since: Option<&str>,
    r: &Reconciliation,
    ingested: Option<&Ingested>,
    args: &ReconcileArgs,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let window = since.map(|s| format!(" modified since {s}")).unwrap_or_default();
    writeln!(out, "{location}: {} objects{window}", group_digits(r.listed))?;
    writeln!(out, "  completed  {:>8}", group_digits(r.completed))?;
    writeln!(
        out,
        "  missing    {:>8}   never ingested (a lost or missing notification)",
        group_digits(r.missing.len() as u64)
    )?;
    writeln!(out, "  failed     {:>8}   ingest failed or did not finish", group_digits(r.failed.len() as u64))?;
    if r.skipped > 0 {
        writeln!(out, "  skipped    {:>8}   folder markers and 0-byte objects", group_digits(r.skipped))?;
    }
    if r.before_since > 0 {
        writeln!(out, "  older      {:>8}   modified before --since, not compared", group_digits(r.before_since))?;
    }
    let more = |out: &mut dyn Write, total: usize| -> std::io::Result<()> {
        if total > SHOWN_KEYS {
            writeln!(out, "  ... and {} more (--json lists them all)", group_digits((total - SHOWN_KEYS) as u64))?;
        }
        Ok(())
    };
    if !r.missing.is_empty() {
        writeln!(out, "missing:")?;
        for key in r.missing.iter().take(SHOWN_KEYS) {
            writeln!(out, "  {key}")?;
        }
        more(&mut out, r.missing.len())?;
    }
    if !r.failures.is_empty() {
        writeln!(out, "failed:")?;
        for failed in r.failures.iter().take(SHOWN_KEYS) {
            let status = if failed.status == SourceStatus::InProgress { "unfinished" } else { "failed" };
            writeln!(out, "  {}: {status}: {}", failed.key, failed.reason.as_deref().unwrap_or("no reason recorded"))?;
        }
        more(&mut out, r.failures.len())?;
    }
    match ingested {
        None if r.outstanding().next().is_some() => {
            writeln!(out, "run again with --ingest to ingest the missing and failed objects")?;
        }
        None => {}
        Some(ingested) => {
            let s = &ingested.summary;
            writeln!(
                out,
                "ingested {} objects ({} failed): records {}: {} indexed, {} duplicates, {} rejected",
                group_digits(s.objects),
                group_digits(s.objects_failed),
                group_digits(s.records),
                group_digits(s.indexed),
                group_digits(s.duplicates),
                group_digits(s.rejected)
            )?;
            for report in ingested.reports.iter().filter(|r| r.outcome == SourceOutcome::Failed) {
                writeln!(
                    out,
                    "still failed: {}: {}",
                    report.source,
                    report.failure.as_deref().unwrap_or("unknown reason")
                )?;
            }
            if ingested.remaining.is_empty() {
                writeln!(out, "every missing and failed object is completed now")?;
            }
            if s.rejected > 0 || s.objects_failed > 0 {
                writeln!(out, "dead-letter entries are in {}", args.pipeline.dead_letter)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, size: u64, modified_ms: i64) -> Listed {
        Listed {
            key: key.into(),
            size: Some(size),
            last_modified_ms: Some(modified_ms),
            checkpoint_key: format!("ck-{key}"),
        }
    }

    fn record(key: &str, status: SourceStatus, failure: Option<&str>) -> SourceRecord {
        SourceRecord {
            key: format!("ck-{key}"),
            source: format!("s3://b/{key}"),
            status,
            records: 1,
            valid: 1,
            indexed: 1,
            duplicates: 0,
            rejected: 0,
            failure: failure.map(str::to_string),
            first_event: None,
            last_event: None,
            updated_at: "2024-02-05T00:00:00Z".into(),
        }
    }

    #[test]
    fn each_object_is_completed_failed_or_missing_by_its_checkpoint() {
        use SourceStatus::*;
        // (listed key, its checkpoint status if any, expected class)
        let table: &[(&str, Option<SourceStatus>, &str)] = &[
            ("p/a.ndjson", Some(Completed), "completed"),
            ("p/b.ndjson.gz", Some(Failed), "failed"),
            ("p/c.ndjson", Some(InProgress), "failed"),
            ("p/d.ndjson", None, "missing"),
            ("p/e key+%.ndjson", None, "missing"),
            ("p/f.json.zst", Some(Completed), "completed"),
        ];
        let objects: Vec<Listed> = table.iter().map(|(key, _, _)| listed(key, 100, 0)).collect();
        let records: Vec<SourceRecord> = table
            .iter()
            .filter_map(|(key, status, _)| status.map(|s| record(key, s, (s == Failed).then_some("truncated gzip"))))
            .collect();
        let got = classify(&objects, &records, None);
        let keys = |class: &str| -> Vec<String> {
            table.iter().filter(|(_, _, c)| *c == class).map(|(k, _, _)| k.to_string()).collect()
        };
        assert_eq!(got.missing, keys("missing"));
        assert_eq!(got.failed, keys("failed"));
        assert_eq!(got.completed, keys("completed").len() as u64);
        assert_eq!(got.listed, table.len() as u64);
        assert_eq!(got.listed, got.completed + got.missing.len() as u64 + got.failed.len() as u64);
        assert_eq!(
            got.failures[0],
            FailedObject { key: "p/b.ndjson.gz".into(), status: Failed, reason: Some("truncated gzip".into()) }
        );
        assert_eq!(got.failures[1].status, InProgress);
        assert_eq!(
            got.outstanding().cloned().collect::<Vec<_>>(),
            ["p/d.ndjson", "p/e key+%.ndjson", "p/b.ndjson.gz", "p/c.ndjson"]
        );
    }

    #[test]
    fn a_checkpoint_of_another_version_of_the_object_does_not_count() {
        // Same key, other ETag: another identity, so another checkpoint key.
        let mut object = listed("p/a.ndjson", 10, 0);
        object.checkpoint_key = "ck-new-etag".into();
        let got = classify(&[object], &[record("p/a.ndjson", SourceStatus::Completed, None)], None);
        assert_eq!(got.missing, ["p/a.ndjson"]);
        assert_eq!(got.completed, 0);
    }

    #[test]
    fn the_newest_record_of_a_key_decides() {
        let records =
            [record("p/a", SourceStatus::Completed, None), record("p/a", SourceStatus::Failed, Some("old failure"))];
        let got = classify(&[listed("p/a", 10, 0)], &records, None);
        assert_eq!((got.completed, got.failed.len()), (1, 0));
    }

    #[test]
    fn folder_markers_and_empty_objects_are_skipped_not_missing() {
        let objects = [listed("p/", 0, 0), listed("p/sub/", 0, 0), listed("p/empty.ndjson", 0, 0), listed("p/x", 5, 0)];
        let got = classify(&objects, &[], None);
        assert_eq!(got.skipped, 3);
        assert_eq!(got.listed, 1);
        assert_eq!(got.missing, ["p/x"]);
        // A marker with bytes in it is still a marker.
        let got = classify(&[listed("p/dir/", 12, 0)], &[], None);
        assert_eq!((got.skipped, got.listed), (1, 0));
    }

    #[test]
    fn since_keeps_objects_modified_at_or_after_the_cut_off() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-02-05T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let since = crate::timespec::parse_time("2d", now).unwrap();
        let at = |rfc3339: &str| chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis();
        let table = [
            ("p/just-before", at("2024-02-03T11:59:59.999Z"), false),
            ("p/at-cut-off", at("2024-02-03T12:00:00Z"), true),
            ("p/yesterday", at("2024-02-04T08:00:00Z"), true),
            ("p/a-week-ago", at("2024-01-29T12:00:00Z"), false),
        ];
        let objects: Vec<Listed> = table.iter().map(|(key, modified, _)| listed(key, 10, *modified)).collect();
        let got = classify(&objects, &[], Some(since));
        let kept: Vec<&str> = table.iter().filter(|(_, _, kept)| *kept).map(|(k, _, _)| *k).collect();
        assert_eq!(got.missing, kept);
        assert_eq!(got.before_since, 2);
        assert_eq!(got.listed, 2);

        let mut undated = listed("p/undated", 10, 0);
        undated.last_modified_ms = None;
        let got = classify(&[undated], &[], Some(since));
        assert_eq!(got.missing, ["p/undated"], "an object without LastModified is never hidden");
        assert_eq!(classify(&objects, &[], None).listed, 4, "no --since: everything");
    }

    #[test]
    fn lists_are_sorted_whatever_the_listing_order() {
        let objects = [listed("p/c", 1, 0), listed("p/a", 1, 0), listed("p/b", 1, 0), listed("p/0", 1, 0)];
        let records = [record("p/c", SourceStatus::Failed, None), record("p/0", SourceStatus::InProgress, None)];
        let got = classify(&objects, &records, None);
        assert_eq!(got.missing, ["p/a", "p/b"]);
        assert_eq!(got.failed, ["p/0", "p/c"]);
    }

    #[test]
    fn json_has_the_documented_shape() {
        let got = classify(
            &[listed("p/a", 1, 0), listed("p/b", 1, 0)],
            &[record("p/b", SourceStatus::Completed, None)],
            None,
        );
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["listed"], 2);
        assert_eq!(json["completed"], 1);
        assert_eq!(json["missing"], serde_json::json!(["p/a"]));
        assert_eq!(json["failed"], serde_json::json!([]));
    }
}
