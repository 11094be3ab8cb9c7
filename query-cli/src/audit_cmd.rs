//! `tix-logs audit`: one line per source from the checkpoint records the backend keeps
//! beside the events, filtered by event time and state, with a verdict in the exit
//! status so "did yesterday's logs all land?" is one command in a script too.

use std::io::Write;

use anyhow::Result;
use indexer::{SourceRecord, SourceStatus};

use crate::cli::{AuditArgs, AuditStatus};
use crate::render::{self, Format};
use crate::search_cmd::open_backend;
use crate::timespec::parse_window;

pub fn run(args: AuditArgs) -> Result<u8> {
    let (since_ms, until_ms) =
        parse_window(args.since.as_deref(), args.until.as_deref()).map_err(anyhow::Error::msg)?;
    let backend = open_backend(&args.store)?;
    let records: Vec<SourceRecord> = backend
        .sources()?
        .into_iter()
        .filter(|r| in_window(r, since_ms, until_ms) && args.status.is_none_or(|s| r.status == s.into()))
        .collect();
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&records)?)?,
        Format::Ndjson => {
            for record in &records {
                writeln!(stdout, "{}", serde_json::to_string(record)?)?;
            }
        }
        Format::Csv => stdout.write_all(render::audit_csv(&records).as_bytes())?,
        Format::Table => stdout.write_all(render::audit_table(&records).as_bytes())?,
    }
    let all_landed = records.iter().all(|r| r.status == SourceStatus::Completed);
    Ok(if all_landed { 0 } else { 1 })
}

impl From<AuditStatus> for SourceStatus {
    fn from(status: AuditStatus) -> Self {
        match status {
            AuditStatus::Completed => SourceStatus::Completed,
            AuditStatus::Failed => SourceStatus::Failed,
            AuditStatus::InProgress => SourceStatus::InProgress,
        }
    }
}

fn millis(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339).ok().map(|t| t.timestamp_millis())
}

/// Whether a source belongs to `[since, until)`: its span of event times overlaps the
/// window. A source without event times (nothing valid read, e.g. an object that failed
/// at its first byte) is placed by when it was last ingested, so failures are not hidden
/// by the filter meant to find them.
fn in_window(record: &SourceRecord, since_ms: Option<i64>, until_ms: Option<i64>) -> bool {
    let span = match (record.first_event.as_deref().and_then(millis), record.last_event.as_deref().and_then(millis)) {
        (Some(first), Some(last)) => Some((first, last)),
        _ => millis(&record.updated_at).map(|t| (t, t)),
    };
    let Some((first, last)) = span else { return true };
    since_ms.is_none_or(|since| last >= since) && until_ms.is_none_or(|until| first < until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(first: Option<&str>, last: Option<&str>, updated: &str) -> SourceRecord {
        SourceRecord {
            key: "k".into(),
            source: "s".into(),
            status: SourceStatus::Completed,
            records: 1,
            valid: 1,
            indexed: 1,
            duplicates: 0,
            rejected: 0,
            failure: None,
            first_event: first.map(str::to_string),
            last_event: last.map(str::to_string),
            updated_at: updated.into(),
            resume: None,
        }
    }

    #[test]
    fn a_source_is_in_the_window_when_its_events_overlap_it() {
        let day = (millis("2024-02-05T00:00:00Z"), millis("2024-02-06T00:00:00Z"));
        let updated = "2024-03-01T00:00:00Z";
        let cases = [
            (Some("2024-02-05T10:00:00Z"), Some("2024-02-05T11:00:00Z"), true, "inside"),
            (Some("2024-02-04T23:00:00Z"), Some("2024-02-05T00:30:00Z"), true, "straddles the start"),
            (Some("2024-02-05T23:30:00Z"), Some("2024-02-06T00:30:00Z"), true, "straddles the end"),
            (Some("2024-02-03T00:00:00Z"), Some("2024-02-04T23:59:59Z"), false, "before"),
            (Some("2024-02-06T00:00:00Z"), Some("2024-02-06T01:00:00Z"), false, "at the exclusive end"),
        ];
        for (first, last, expected, what) in cases {
            assert_eq!(in_window(&record(first, last, updated), day.0, day.1), expected, "{what}");
        }
        assert!(in_window(&record(None, None, "2024-02-05T12:00:00Z"), day.0, day.1), "no events: by last ingest");
        assert!(!in_window(&record(None, None, updated), day.0, day.1));
        assert!(in_window(&record(None, None, updated), None, None), "no window: everything");
    }
}
