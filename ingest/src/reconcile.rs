//! Reconciliation: which objects under an S3 prefix never reached the store (a lost or
//! never-configured notification) or did not complete, found by comparing a listing
//! with the checkpoint records the backend keeps ([`Store::sources`](indexer::Store::sources)), and, on request,
//! ingested through the ordinary pipeline (ids are stable, so nothing is doubled).
//!
//! One implementation for `tix-logs reconcile` and the Lambda's scheduled
//! `{"reconcile": ...}` run. [`classify`] and [`parse_span`] are the pure core; the
//! listing and the ingest ([`survey`], [`Survey::ingest`]) are the edge.
//!
//! A listed object's checkpoint key is the one ingestion records for it: bucket, key and
//! ETag ([`crate::id::SourceIdentity::S3`]), whichever way the object arrived.

use std::collections::HashMap;
use std::time::Duration;

use indexer::{SourceRecord, SourceStatus};
use serde::Serialize;

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
    /// Keys whose checkpoint is failed or in progress (stopped, to be continued), sorted.
    pub failed: Vec<String>,
    /// Folder markers and 0-byte objects: ingestion skips them, so does the comparison.
    pub skipped: u64,
    /// Objects modified before `since`, left out.
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

/// A reconciliation of one location, and what ingesting it left (the CLI's `--json`
/// object, and `reconciliation` in the Lambda's report).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// `s3://bucket/prefix`.
    pub location: String,
    #[serde(flatten)]
    pub reconciliation: Reconciliation,
    /// When ingesting: the outstanding keys still not completed afterwards (failed,
    /// stopped at the deadline, or not started before it), in the order they were taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<Vec<String>>,
}

/// Classifies listed objects against checkpoint records. Objects modified before
/// `since_ms` are left out (an object without `LastModified` is kept, so a gap is never
/// hidden by the filter meant to find it); folder markers and 0-byte objects are skipped
/// as ingestion skips them. When several records carry the same key, the first counts
/// (`Store::sources` lists the newest first).
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
        if crate::events::nothing_to_ingest(&object.key, object.size).is_some() {
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

/// A span of time: a whole number and a unit, `ms`, `s`, `m`, `h`, `d` or `w` (`36h`,
/// `2d`). `None` when `text` is not one. The one span grammar of tix-logs: `--since`,
/// `--time-budget` and the reconcile request's `since` all read spans with it.
pub fn parse_span(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit_ms) = match text.strip_suffix("ms") {
        Some(number) => (number, 1),
        None => {
            let unit_at = text.len().checked_sub(1).filter(|at| text.is_char_boundary(*at))?;
            let (number, unit) = text.split_at(unit_at);
            let unit_ms: u64 = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                _ => return None,
            };
            (number, unit_ms)
        }
    };
    // `u64::from_str` takes a leading `+`; a span is digits only.
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis = number.parse::<u64>().ok()?.checked_mul(unit_ms)?;
    Some(Duration::from_millis(millis))
}

/// The cut-off `span` before `now_ms` (epoch milliseconds), saturating at the epoch's
/// far past rather than overflowing.
pub fn since_ms(now_ms: i64, span: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(span.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(feature = "aws")]
pub use edge::{check_dead_letter, survey, Ingested, Survey};

#[cfg(feature = "aws")]
mod edge {
    use indexer::{Backend, Store};

    use super::{classify, Listed, ReconcileReport, Reconciliation};
    use crate::error::{Error, Result};
    use crate::pipeline::{Pipeline, SourceReport};
    use crate::s3::{S3Context, S3Location, S3Object};
    use crate::source::SourceObject;

    /// A listing classified against the checkpoints, with the outstanding objects ready
    /// to ingest.
    pub struct Survey {
        pub location: S3Location,
        pub reconciliation: Reconciliation,
        /// The objects of `reconciliation.outstanding()`, in that order.
        outstanding: Vec<S3Object>,
    }

    /// What ingesting the outstanding objects did.
    #[derive(Debug, Clone, Default)]
    pub struct Ingested {
        /// One per object taken, in order.
        pub reports: Vec<SourceReport>,
        /// Outstanding keys not completed: failed, stopped at the deadline, or not
        /// started, in the order they were taken.
        pub remaining: Vec<String>,
    }

    /// Lists `location` (giving up between pages once `stop` says so) and classifies it
    /// against `backend`'s checkpoints; `since_ms` leaves out older objects.
    pub fn survey(
        s3: &S3Context,
        location: &S3Location,
        backend: &dyn Store,
        since_ms: Option<i64>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Survey> {
        let listing = s3.list_with_times_until(location, stop)?;
        let listed: Vec<Listed> = listing
            .iter()
            .map(|l| Listed {
                key: l.key().to_string(),
                size: l.object.object().size,
                last_modified_ms: l.last_modified_ms,
                checkpoint_key: l.object.identity().checkpoint_key(),
            })
            .collect();
        let records = backend.sources()?;
        let reconciliation = classify(&listed, &records, since_ms);
        let mut by_key: std::collections::HashMap<&str, &S3Object> =
            listing.iter().map(|l| (l.key(), &l.object)).collect();
        let outstanding = reconciliation.outstanding().filter_map(|key| by_key.remove(key.as_str())).cloned().collect();
        Ok(Survey { location: location.clone(), reconciliation, outstanding })
    }

    impl Survey {
        /// The objects to ingest: missing, then failed.
        pub fn outstanding(&self) -> &[S3Object] {
            &self.outstanding
        }

        /// Ingests the outstanding objects through `pipeline`, one at a time; once the
        /// pipeline's stop condition (the deadline) holds, the rest are left for the next
        /// run. The caller commits (`Pipeline::finish`).
        pub fn ingest<B: Backend>(&self, pipeline: &mut Pipeline<'_, B>) -> Result<Ingested> {
            let mut ingested = Ingested::default();
            for object in &self.outstanding {
                let key = object.object().key.clone();
                if pipeline.stop_requested() {
                    ingested.remaining.push(key);
                    continue;
                }
                let report = pipeline.ingest(object)?;
                if !report.outcome.is_done() {
                    ingested.remaining.push(key);
                }
                ingested.reports.push(report);
            }
            Ok(ingested)
        }

        /// The report: the classification, and `remaining` when something was ingested.
        pub fn report(&self, ingested: Option<&Ingested>) -> ReconcileReport {
            ReconcileReport {
                location: self.location.to_string(),
                reconciliation: self.reconciliation.clone(),
                remaining: ingested.map(|i| i.remaining.clone()),
            }
        }
    }

    /// Refuses to ingest `location` with dead letters written inside it: they would be
    /// listed, and ingested as logs, by the next run.
    pub fn check_dead_letter(location: &S3Location, dead_letter: &str) -> Result<()> {
        match S3Location::parse(dead_letter) {
            Some(Ok(dead_letter)) if dead_letter.overlaps(location) => Err(Error::Reconcile {
                location: location.to_string(),
                reason: format!(
                    "the dead-letter location {dead_letter} overlaps it: dead-letter objects would be listed and \
                     ingested as logs; choose a dead-letter prefix outside the reconciled one"
                ),
            }),
            _ => Ok(()),
        }
    }
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
            resume: None,
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
        let at = |rfc3339: &str| chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis();
        let since = since_ms(at("2024-02-05T12:00:00Z"), parse_span("2d").unwrap());
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
        assert_eq!(classify(&objects, &[], None).listed, 4, "no since: everything");
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
    fn the_report_has_the_documented_json_shape() {
        let reconciliation = classify(
            &[listed("p/a", 1, 0), listed("p/b", 1, 0)],
            &[record("p/b", SourceStatus::Completed, None)],
            None,
        );
        let report = ReconcileReport { location: "s3://b/p/".into(), reconciliation, remaining: None };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["location"], "s3://b/p/");
        assert_eq!(json["listed"], 2);
        assert_eq!(json["completed"], 1);
        assert_eq!(json["missing"], serde_json::json!(["p/a"]));
        assert_eq!(json["failed"], serde_json::json!([]));
        assert!(json.get("remaining").is_none(), "only when something was ingested: {json}");
        let json = serde_json::to_value(ReconcileReport { remaining: Some(vec!["p/a".into()]), ..report }).unwrap();
        assert_eq!(json["remaining"], serde_json::json!(["p/a"]));
    }

    #[test]
    fn spans_are_a_whole_number_and_a_unit() {
        let table = [
            ("500ms", Some(Duration::from_millis(500))),
            ("30s", Some(Duration::from_secs(30))),
            ("2m", Some(Duration::from_secs(120))),
            ("36h", Some(Duration::from_secs(36 * 3600))),
            (" 2d ", Some(Duration::from_secs(2 * 86_400))),
            ("1w", Some(Duration::from_secs(7 * 86_400))),
            ("0s", Some(Duration::ZERO)),
            ("", None),
            ("5", None),
            ("d", None),
            ("ms", None),
            ("-3s", None),
            ("+3s", None),
            ("1.5h", None),
            ("2 d", None),
            ("2D", None),
            ("2y", None),
            ("3ü", None),
            ("99999999999999999999d", None),
            ("18446744073709551615w", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_span(text), expected, "{text:?}");
        }
    }

    #[test]
    fn the_cut_off_is_the_span_before_now_and_never_overflows() {
        assert_eq!(since_ms(1_707_134_400_000, Duration::from_secs(2 * 86_400)), 1_706_961_600_000);
        assert_eq!(since_ms(0, Duration::from_secs(u64::MAX)), -i64::MAX);
    }

    proptest::proptest! {
        #[test]
        fn reading_arbitrary_spans_never_panics(text in ".{0,24}") {
            let _ = parse_span(&text);
        }
    }
}
