//! Redrive: records in the dead-letter store go back through validation and redaction
//! once their cause is fixed (a limit raised, a rule relaxed, a mapping repaired), and
//! the ones that pass are indexed under the ids they would have had, so a redrive run
//! twice, or after a crash, doubles nothing.
//!
//! Each segment is judged entry by entry ([`judge`]): a record that passes now becomes
//! its document again, one that fails keeps its place with the new reason, and some
//! cannot be redriven at all and stay as they are (a failed object, whose records are
//! not in the store: ingest the object again; a `raw` cut at 64 KiB; an entry written
//! before entries carried the source's identity, for a record without `event_id`).
//!
//! Order is what keeps the store whole: the passing documents of a group of segments
//! are written and committed first, and only then is each segment replaced (atomically)
//! by what is left of it. A crash in between leaves entries whose documents are already
//! committed; the next run finds them duplicates of themselves and removes them then.
//! Each entry therefore ends exactly once: indexed (or found already indexed) and
//! removed, or still in the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use indexer::{Backend, IndexDoc, Outcome};
use serde::Serialize;

use crate::dead_letter::{DeadLetterEntry, SegmentLine, SegmentStore, MAX_RAW_BYTES};
use crate::error::{RejectKind, Rejection, Result};
use crate::id::{doc_id_for_event_id, doc_id_for_position, DocId};
use crate::limits::Limits;
use crate::redact::Redactor;
use crate::validate::parse_and_validate;

/// Documents written between two commits: a commit (and the segment replacements after
/// it) every this many passing entries.
const GROUP_DOCS: usize = 5_000;

/// How redrive judges and writes.
#[derive(Clone)]
pub struct RedriveConfig {
    /// The limits records are judged by now (e.g. a raised `max_record_bytes`).
    pub limits: Limits,
    /// Must hold the key the entries were redacted with: tokens already in `raw` are
    /// kept as they are, new ones are made with this key.
    pub redactor: Arc<Redactor>,
    /// Judge only: nothing is written to the backend or the dead-letter store.
    pub dry_run: bool,
    /// Most documents per backend batch.
    pub batch_records: usize,
}

impl std::fmt::Debug for RedriveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedriveConfig")
            .field("limits", &self.limits)
            .field("dry_run", &self.dry_run)
            .field("batch_records", &self.batch_records)
            .finish_non_exhaustive()
    }
}

impl RedriveConfig {
    pub fn new(redactor: Redactor) -> Self {
        RedriveConfig { limits: Limits::default(), redactor: Arc::new(redactor), dry_run: false, batch_records: 1_000 }
    }
}

/// What becomes of one entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The record passes now: this document goes to the backend.
    Pass(IndexDoc),
    /// The record fails again; the entry stays with this reason.
    Fail(Rejection),
    /// The entry cannot be redriven and stays unchanged, for this reason.
    Keep(String),
    /// A failed object's entry (`record: null`): not a record; the object is ingested
    /// again instead.
    FailedObject,
}

/// Judges one entry against today's rules: validated and redacted again, as ingestion
/// would, and given the id ingestion gave or would have given it.
pub fn judge(entry: &DeadLetterEntry, config: &RedriveConfig) -> Verdict {
    let Some(record) = entry.record else { return Verdict::FailedObject };
    if entry.raw.len() + 4 > MAX_RAW_BYTES {
        // `raw` was cut to its first 64 KiB (a cut at a char boundary can be up to 3
        // bytes short of it): the record itself is gone.
        return Verdict::Keep(
            "cannot redrive: raw was cut at 64 KiB when the entry was written; ingest the source again".into(),
        );
    }
    let mut event = match parse_and_validate(entry.raw.as_bytes(), &config.limits) {
        Ok(event) => event,
        Err(rejection) => return Verdict::Fail(rejection),
    };
    if entry.kind == RejectKind::Decode && entry.raw.contains('\u{fffd}') {
        // The record was not UTF-8; `raw` holds a lossy repair, which is not the record.
        return Verdict::Keep("cannot redrive: the record was not valid UTF-8 (raw holds a lossy copy)".into());
    }
    config.redactor.redact_event(&mut event.doc);
    let stored_id = entry.id.as_deref().and_then(|id| id.parse::<DocId>().ok());
    let id = match (&event.event_id, stored_id) {
        // The stored id derives from the unredacted `event_id`; the one in `raw` may
        // have been redacted.
        (Some(_), Some(id)) => id,
        (Some(event_id), None) => doc_id_for_event_id(&crate::id::event_id_key(&config.redactor), event_id),
        (None, _) => match entry.source_id.as_ref().and_then(|source| source.identity()) {
            Some(source) => doc_id_for_position(&source, record),
            None => {
                return Verdict::Keep(
                    "cannot redrive: written by an older version (no source identity) and the record has no \
                     event_id, so its id cannot be derived; ingest the source again"
                        .into(),
                )
            }
        },
    };
    // Never `unseen_source`: the id may already be in the store (an interrupted redrive,
    // or the same event indexed from elsewhere), and the backend must find it.
    Verdict::Pass(IndexDoc { id, ts_millis: event.ts_millis, doc: event.doc, unseen_source: false })
}

/// One row of the table of reasons: how many entries got this outcome for this reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ReasonRow {
    /// `passed` (the reason is the one they were dead-lettered for), `failed` (the new
    /// reason), `kept` (why they cannot be redriven) or `failed_object`.
    pub outcome: &'static str,
    /// The reason, with numbers written as `N` so that one cause is one row.
    pub reason: String,
    pub entries: u64,
}

/// Totals of a redrive run, as `tix-logs redrive --json` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    pub dry_run: bool,
    pub segments: u64,
    /// Entries read, failed-object entries included.
    pub entries: u64,
    /// Entries whose record passes validation and is not refused by the backend (with
    /// `--dry-run`: passes validation): `indexed + duplicates + unfinished`.
    pub passed: u64,
    /// Passed and newly indexed; their entries are removed.
    pub indexed: u64,
    /// Passed and already in the store under the same id (e.g. an earlier redrive
    /// stopped before it removed them); their entries are removed.
    pub duplicates: u64,
    /// Failed again (validation, or refused by the backend); the entry stays with its
    /// new reason.
    pub failed: u64,
    /// Cannot be redriven; the entry stays unchanged.
    pub kept: u64,
    /// Failed objects' entries, left in place: ingest those objects again.
    pub failed_objects: u64,
    /// Passed but the backend did not take them this time (retries exhausted); the
    /// entry stays unchanged, run redrive again.
    pub unfinished: u64,
    /// Lines that are not entries, left in place.
    pub unreadable_lines: u64,
    /// Segments replaced (or removed, when nothing was left in them).
    pub segments_rewritten: u64,
    pub reasons: Vec<ReasonRow>,
    pub elapsed_ms: u64,
}

impl RedriveSummary {
    /// Entries still in the dead-letter store after this run (or after the real run,
    /// for a dry run).
    pub fn remaining(&self) -> u64 {
        self.failed + self.kept + self.failed_objects + self.unfinished + self.unreadable_lines
    }
}

/// Counts reasons per outcome.
#[derive(Default)]
struct Reasons(BTreeMap<(&'static str, String), u64>);

impl Reasons {
    fn add(&mut self, outcome: &'static str, reason: &str) {
        *self.0.entry((outcome, generalize(reason))).or_default() += 1;
    }

    fn rows(self) -> Vec<ReasonRow> {
        let mut rows: Vec<ReasonRow> =
            self.0.into_iter().map(|((outcome, reason), entries)| ReasonRow { outcome, reason, entries }).collect();
        rows.sort_by(|a, b| a.outcome.cmp(b.outcome).then(b.entries.cmp(&a.entries)).then(a.reason.cmp(&b.reason)));
        rows
    }
}

/// A reason with its digit runs written as `N`: "record is 612 bytes, over the
/// 300-byte limit" and "... 580 bytes ..." are one cause.
pub fn generalize(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut in_digits = false;
    for c in reason.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// A passing entry waiting for its backend outcome.
struct Pending {
    segment: usize,
    line: usize,
    doc: IndexDoc,
    old_reason: String,
}

/// A segment as judged: its lines (failed entries already carry their new reason), the
/// lines to drop, and whether it must be replaced.
struct Judged {
    name: String,
    lines: Vec<SegmentLine>,
    remove: Vec<bool>,
    changed: bool,
}

/// Redrives every segment of `store` into `backend` (`None` only with
/// [`RedriveConfig::dry_run`]). Operational errors (backend unreachable, store
/// unwritable) abort with `Err`; what was committed and replaced before stays so, and
/// running again finishes the rest.
pub fn redrive<B: Backend>(
    store: &dyn SegmentStore,
    mut backend: Option<&mut B>,
    config: &RedriveConfig,
) -> Result<RedriveSummary> {
    let started = Instant::now();
    let mut summary = RedriveSummary { dry_run: config.dry_run, ..RedriveSummary::default() };
    let mut reasons = Reasons::default();
    let names = store.segment_names()?;
    summary.segments = names.len() as u64;
    let mut group: Vec<Judged> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    for name in names {
        let mut lines = store.read_segment(&name)?;
        let segment = group.len();
        let mut changed = false;
        for (line_number, line) in lines.iter_mut().enumerate() {
            let entry = match line {
                SegmentLine::Unreadable(_) => {
                    summary.unreadable_lines += 1;
                    continue;
                }
                SegmentLine::Entry(entry) => entry,
            };
            summary.entries += 1;
            match judge(entry, config) {
                Verdict::Pass(doc) => {
                    summary.passed += 1;
                    if config.dry_run {
                        reasons.add("passed", &entry.reason);
                    } else {
                        pending.push(Pending { segment, line: line_number, doc, old_reason: entry.reason.clone() });
                    }
                }
                Verdict::Fail(rejection) => {
                    summary.failed += 1;
                    reasons.add("failed", &rejection.reason);
                    changed |= entry.reason != rejection.reason || entry.kind != rejection.kind;
                    entry.reason = rejection.reason;
                    entry.kind = rejection.kind;
                }
                Verdict::Keep(why) => {
                    summary.kept += 1;
                    reasons.add("kept", &why);
                }
                Verdict::FailedObject => {
                    summary.failed_objects += 1;
                    reasons.add("failed_object", &entry.reason);
                }
            }
        }
        let remove = vec![false; lines.len()];
        group.push(Judged { name, lines, remove, changed });
        if pending.len() >= GROUP_DOCS {
            finish_group(store, &mut backend, config, &mut group, &mut pending, &mut summary, &mut reasons)?;
        }
    }
    finish_group(store, &mut backend, config, &mut group, &mut pending, &mut summary, &mut reasons)?;
    summary.reasons = reasons.rows();
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Indexes and commits the group's passing documents, then replaces each of its
/// segments that changed by what is left of it.
fn finish_group<B: Backend>(
    store: &dyn SegmentStore,
    backend: &mut Option<&mut B>,
    config: &RedriveConfig,
    group: &mut Vec<Judged>,
    pending: &mut Vec<Pending>,
    summary: &mut RedriveSummary,
    reasons: &mut Reasons,
) -> Result<()> {
    if config.dry_run {
        group.clear();
        return Ok(());
    }
    if !pending.is_empty() {
        let Some(backend) = backend.as_deref_mut() else {
            return Err(crate::Error::Config("redrive needs a backend unless it is a dry run".into()));
        };
        for batch in pending.chunks(config.batch_records.max(1)) {
            let docs: Vec<IndexDoc> = batch.iter().map(|p| p.doc.clone()).collect();
            let outcomes = backend.index_batch(&docs)?;
            if outcomes.len() != docs.len() {
                return Err(crate::Error::Backend(indexer::Error::internal(format!(
                    "{} answered {} outcomes for {} documents",
                    backend.name(),
                    outcomes.len(),
                    docs.len()
                ))));
            }
            for (outcome, p) in outcomes.into_iter().zip(batch) {
                let judged = &mut group[p.segment];
                match outcome {
                    Outcome::Indexed | Outcome::Duplicate => {
                        if outcome == Outcome::Indexed {
                            summary.indexed += 1;
                        } else {
                            summary.duplicates += 1;
                        }
                        reasons.add("passed", &p.old_reason);
                        judged.remove[p.line] = true;
                        judged.changed = true;
                    }
                    Outcome::Rejected { reason } => {
                        // Valid, but the backend refuses it (e.g. the mapping still conflicts).
                        summary.passed -= 1;
                        summary.failed += 1;
                        reasons.add("failed", &reason);
                        if let SegmentLine::Entry(entry) = &mut judged.lines[p.line] {
                            entry.reason = reason;
                            entry.kind = RejectKind::Backend;
                        }
                        judged.changed = true;
                    }
                    Outcome::Failed { reason } => {
                        summary.unfinished += 1;
                        reasons.add("unfinished", &reason);
                    }
                }
            }
        }
        // Durable before any entry goes: see the module doc.
        backend.flush()?;
    }
    for judged in group.drain(..).filter(|judged| judged.changed) {
        let left: Vec<SegmentLine> =
            judged.lines.into_iter().zip(judged.remove).filter(|(_, gone)| !gone).map(|(line, _)| line).collect();
        store.replace_segment(&judged.name, &left)?;
        summary.segments_rewritten += 1;
    }
    pending.clear();
    Ok(())
}

#[cfg(feature = "aws")]
pub use s3_store::S3Segments;

#[cfg(feature = "aws")]
mod s3_store {
    use aws_sdk_s3::error::DisplayErrorContext;

    use crate::dead_letter::{parse_segment, segment_text, SegmentLine, SegmentStore};
    use crate::error::{Error, Result};
    use crate::s3::{S3Context, S3Location};

    /// The segments of an S3 dead-letter prefix, named by their keys. A segment is
    /// replaced by one `PutObject` over its key (S3 swaps the whole object) and removed
    /// by one `DeleteObject`.
    pub struct S3Segments {
        s3: S3Context,
        location: S3Location,
    }

    impl S3Segments {
        /// `location` as `--dead-letter s3://…` names it; entries live directly under it.
        pub fn new(s3: S3Context, mut location: S3Location) -> Self {
            // The dead-letter store writes `PREFIX/NAME` for a prefix without a slash.
            if !location.prefix.is_empty() && !location.prefix.ends_with('/') {
                location.prefix.push('/');
            }
            S3Segments { s3, location }
        }

        fn error(&self, key: &str, message: String) -> Error {
            Error::DeadLetter {
                path: format!("s3://{}/{key}", self.location.bucket),
                error: std::io::Error::other(message),
            }
        }
    }

    impl SegmentStore for S3Segments {
        fn segment_names(&self) -> Result<Vec<String>> {
            let listed = self.s3.list(&self.location).map_err(|e| Error::DeadLetter {
                path: self.location.to_string(),
                error: std::io::Error::other(e.to_string()),
            })?;
            let mut names: Vec<String> = listed
                .into_iter()
                .map(|object| object.object().key.clone())
                .filter(|key| key.ends_with(".ndjson") && !key[self.location.prefix.len()..].contains('/'))
                .collect();
            names.sort();
            Ok(names)
        }

        fn read_segment(&self, name: &str) -> Result<Vec<SegmentLine>> {
            let client = self.s3.client();
            let body = self.s3.handle().block_on(async {
                let object = client
                    .get_object()
                    .bucket(&self.location.bucket)
                    .key(name)
                    .send()
                    .await
                    .map_err(|e| format!("GetObject failed: {}", DisplayErrorContext(&e)))?;
                object.body.collect().await.map(|data| data.into_bytes()).map_err(|e| format!("reading failed: {e}"))
            });
            let body = body.map_err(|message| self.error(name, message))?;
            let text = String::from_utf8(body.to_vec())
                .map_err(|_| self.error(name, "the segment is not UTF-8; it was not written by tix-logs".into()))?;
            Ok(parse_segment(&text))
        }

        fn replace_segment(&self, name: &str, lines: &[SegmentLine]) -> Result<()> {
            if lines.is_empty() {
                let deleted = self
                    .s3
                    .handle()
                    .block_on(self.s3.client().delete_object().bucket(&self.location.bucket).key(name).send());
                return deleted
                    .map(|_| ())
                    .map_err(|e| self.error(name, format!("DeleteObject failed: {}", DisplayErrorContext(&e))));
            }
            let text = segment_text(lines).map_err(|e| self.error(name, e.to_string()))?;
            self.s3
                .put(&self.location.bucket, name, text.into_bytes())
                .map(|_| ())
                .map_err(|e| self.error(name, format!("cannot replace the segment: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    // The store in memory: documents by id, duplicates found by id; some ids refused or
    // left unfinished, or a flush that fails as a crash before the commit would.
    use testkit::memory::MemoryBackend;

    use super::*;
    use crate::dead_letter::{DeadLetterStore, LocalDeadLetter, SegmentStore};
    use crate::id::SourceIdentity;

    const KEY: &[u8] = b"redrive-test-key-of-at-least-32-bytes";

    fn config() -> RedriveConfig {
        RedriveConfig::new(Redactor::new(KEY))
    }

    fn source() -> SourceIdentity {
        SourceIdentity::File { path: "/logs/day.ndjson".into(), size: 4_096, mtime_ns: 1_707_127_872_123_456_789 }
    }

    /// An entry as the pipeline writes it for `raw` (redacted here as it redacts).
    fn entry(record: u64, raw: &str, kind: RejectKind, reason: &str, id: Option<DocId>) -> DeadLetterEntry {
        let redacted = Redactor::new(KEY).redact_raw(raw.as_bytes(), MAX_RAW_BYTES);
        DeadLetterEntry::for_record(&source(), record, 0, (kind, reason.into()), redacted, id)
    }

    fn pass(verdict: Verdict) -> IndexDoc {
        match verdict {
            Verdict::Pass(doc) => doc,
            other => panic!("expected a pass: {other:?}"),
        }
    }

    const BIG: &str = r#"{"ts":"2024-02-05T10:00:00Z","type":"seat.locked","message":"a long message"}"#;

    #[test]
    fn a_record_without_event_id_gets_its_positional_id_back() {
        let doc = pass(judge(
            &entry(7, BIG, RejectKind::Limit, "record is 80 bytes, over the 40-byte limit", None),
            &config(),
        ));
        assert_eq!(doc.id, doc_id_for_position(&source(), 7));
        assert!(!doc.unseen_source, "the id may be in the store already");
        assert_eq!(doc.doc["type"], "seat.locked");
    }

    #[test]
    fn a_record_with_event_id_keeps_the_id_of_its_unredacted_event_id() {
        // The event_id is an address: raw holds its token, the entry the original's id.
        let raw = r#"{"ts":"2024-02-05T10:00:00Z","type":"seat.locked","event_id":"bob@example.com","amount":"x"}"#;
        let ids = crate::id::event_id_key(&Redactor::new(KEY));
        let original = doc_id_for_event_id(&ids, "bob@example.com");
        let mut fixed = entry(3, raw, RejectKind::Validation, "amount: expected a number", Some(original));
        assert!(!fixed.raw.contains("bob@"), "raw is redacted: {}", fixed.raw);
        fixed.raw = fixed.raw.replace(r#","amount":"x""#, "");
        assert_eq!(pass(judge(&fixed, &config())).id, original);
        // Without the stored id (an older entry), the id comes from the event_id in raw.
        fixed.id = None;
        fixed.source_id = None;
        let from_raw = pass(judge(&fixed, &config()));
        let token = from_raw.doc["event_id"].as_str().unwrap().to_string();
        assert_eq!(from_raw.id, doc_id_for_event_id(&ids, &token));
    }

    #[test]
    fn what_cannot_be_redriven_says_why_and_stays() {
        let mut old = entry(2, BIG, RejectKind::Limit, "too big", None);
        old.source_id = None;
        let Verdict::Keep(why) = judge(&old, &config()) else { panic!("an old entry without event_id stays") };
        assert!(why.contains("older version"), "{why}");

        let huge = format!(r#"{{"ts":"2024-02-05T10:00:00Z","type":"t","message":"{}"}}"#, "y".repeat(MAX_RAW_BYTES));
        let cut = entry(4, &huge, RejectKind::Limit, "too big", None);
        assert!(cut.raw.len() <= MAX_RAW_BYTES);
        let Verdict::Keep(why) = judge(&cut, &config()) else { panic!("a cut raw stays") };
        assert!(why.contains("64 KiB"), "{why}");

        let mut failed_object = entry(1, "", RejectKind::Decode, "gzip: corrupt", None);
        failed_object.record = None;
        assert_eq!(judge(&failed_object, &config()), Verdict::FailedObject);

        let lossy =
            Redactor::new(KEY).redact_raw(b"{\"ts\":\"2024-02-05T10:00:00Z\",\"type\":\"t\xff\"}", MAX_RAW_BYTES);
        let not_utf8 = DeadLetterEntry::for_record(
            &source(),
            5,
            0,
            (RejectKind::Decode, "invalid UTF-8 at byte 40".into()),
            lossy,
            None,
        );
        assert!(matches!(judge(&not_utf8, &config()), Verdict::Keep(why) if why.contains("UTF-8")));
    }

    #[test]
    fn a_record_still_breaking_a_rule_fails_with_todays_reason() {
        let raw = r#"{"ts":"2024-02-05T10:00:00Z","type":"t","latency_ms":"slow"}"#;
        let stale = entry(9, raw, RejectKind::Limit, "record is 60 bytes, over the 40-byte limit", None);
        let Verdict::Fail(rejection) = judge(&stale, &config()) else { panic!("still invalid") };
        assert!(rejection.reason.contains("latency_ms"), "{rejection:?}");
        assert_eq!(rejection.kind, RejectKind::Validation);
    }

    /// Redrive redacts what was redacted when it was dead-lettered: the document must be
    /// the one a first ingest of the original record stores.
    #[test]
    fn redacting_a_redacted_record_again_gives_the_document_a_first_ingest_gives() {
        let redactor = Redactor::new(KEY);
        let limits = Limits::default();
        for raw in [
            r#"{"ts":"2024-02-05T10:00:00Z","type":"payment.captured","message":"card 4111 1111 1111 1111 by Bob@Example.com","customer":{"email":"Bob@Example.com","phone":"+82 10-1234-5678","mobile":821012345678},"payment":{"method":"card","cvv":"123","card":"4111111111111111"}}"#,
            r#"{"ts":"2024-02-05T10:00:00Z","type":"t","contact_email":["a@b.io","c@d.io"],"note":"pii_0123456789abcdef01234567 stays"}"#,
            r#"{"ts":1707127200000,"type":"t","security_code":777,"message":"5500-0000-0000-0004 and 378282246310005"}"#,
        ] {
            let mut first = parse_and_validate(raw.as_bytes(), &limits).unwrap();
            redactor.redact_event(&mut first.doc);
            let once = redactor.redact_raw(raw.as_bytes(), MAX_RAW_BYTES);
            assert_eq!(redactor.redact_raw(once.as_bytes(), MAX_RAW_BYTES), once, "redaction is idempotent");
            let mut again = parse_and_validate(once.as_bytes(), &limits).unwrap_or_else(|r| panic!("{r:?}: {once}"));
            redactor.redact_event(&mut again.doc);
            assert_eq!(Value::Object(again.doc), Value::Object(first.doc), "{raw}");
        }

        // A card number written as a bare JSON number is masked in place in `raw`, which
        // then is not JSON: such a record fails again and stays, never indexed altered.
        let raw = r#"{"ts":"2024-02-05T10:00:00Z","type":"t","card":4111111111111111}"#;
        let stored = redactor.redact_raw(raw.as_bytes(), MAX_RAW_BYTES);
        match judge(&entry(1, &stored, RejectKind::Limit, "too big", None), &config()) {
            Verdict::Fail(_) => {}
            other => panic!("{other:?}: {stored}"),
        }
    }

    #[test]
    fn reasons_group_by_their_words() {
        assert_eq!(
            generalize("record is 612 bytes, over the 300-byte limit"),
            "record is N bytes, over the N-byte limit"
        );
        assert_eq!(generalize("latency_ms: expected a number"), "latency_ms: expected a number");
    }

    use serde_json::Value;

    /// A store with `n` records refused for size, every third of which also has a
    /// string `latency_ms`, in two segments, plus a failed object and a damaged line.
    fn store(n: u64) -> (tempfile::TempDir, LocalDeadLetter) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LocalDeadLetter::new(dir.path());
        for (resume_after, range) in [(0, 1..=n / 2), (n / 2, n / 2 + 1..=n)] {
            let mut file = store.begin(&source(), resume_after).unwrap();
            for record in range {
                let bad = if record % 3 == 0 { r#","latency_ms":"slow""# } else { "" };
                let raw = format!(r#"{{"ts":"2024-02-05T10:00:00Z","type":"seat.locked","seat":"A-{record}"{bad}}}"#);
                file.write(&entry(record, &raw, RejectKind::Limit, "record is 90 bytes, over the 50-byte limit", None))
                    .unwrap();
            }
            if resume_after > 0 {
                let mut failed = entry(0, "", RejectKind::Decode, "gzip: corrupt", None);
                failed.record = None;
                file.write(&failed).unwrap();
            }
            file.finish().unwrap();
        }
        let first = store.segment_names().unwrap()[0].clone();
        let mut lines = store.read_segment(&first).unwrap();
        lines.push(SegmentLine::Unreadable("{damaged".into()));
        store.replace_segment(&first, &lines).unwrap();
        (dir, store)
    }

    fn entries(dir: &std::path::Path) -> Vec<SegmentLine> {
        let store = LocalDeadLetter::new(dir);
        store.segment_names().unwrap().iter().flat_map(|name| store.read_segment(name).unwrap()).collect()
    }

    #[test]
    fn every_entry_ends_once_indexed_or_still_dead_and_a_second_run_doubles_nothing() {
        let (dir, store) = store(30);
        let mut backend = MemoryBackend::new();
        let summary = redrive(&store, Some(&mut backend), &config()).unwrap();
        assert_eq!((summary.entries, summary.passed, summary.indexed, summary.failed), (31, 20, 20, 10), "{summary:?}");
        assert_eq!((summary.failed_objects, summary.unreadable_lines, summary.remaining()), (1, 1, 12));
        let left = entries(dir.path());
        assert_eq!(left.len(), 12, "{left:?}");
        let mut still: Vec<u64> = left
            .iter()
            .filter_map(|line| match line {
                SegmentLine::Entry(e) if e.record.is_some() => {
                    assert!(e.reason.contains("latency_ms"), "the new reason: {e:?}");
                    e.record
                }
                _ => None,
            })
            .collect();
        still.sort();
        assert_eq!(still, (1..=30).filter(|r| r % 3 == 0).collect::<Vec<_>>());
        assert_eq!(backend.ids().len() as u64 + still.len() as u64, 30, "conserved");
        let ids: BTreeSet<DocId> =
            (1..=30u64).filter(|r| r % 3 != 0).map(|r| doc_id_for_position(&source(), r)).collect();
        assert_eq!(backend.ids(), ids, "under their positional ids");

        let again = redrive(&store, Some(&mut backend), &config()).unwrap();
        assert_eq!((again.passed, again.indexed, again.segments_rewritten), (0, 0, 0), "{again:?}");
        assert_eq!(backend.ids().len(), 20);
        assert_eq!(entries(dir.path()), left, "nothing changed");
    }

    #[test]
    fn a_dry_run_changes_nothing_and_needs_no_backend() {
        let (dir, store) = store(12);
        let before = entries(dir.path());
        let summary =
            redrive(&store, None::<&mut MemoryBackend>, &RedriveConfig { dry_run: true, ..config() }).unwrap();
        assert_eq!((summary.passed, summary.failed, summary.indexed), (8, 4, 0), "{summary:?}");
        let passed = summary.reasons.iter().find(|r| r.outcome == "passed").unwrap();
        assert_eq!((passed.reason.as_str(), passed.entries), ("record is N bytes, over the N-byte limit", 8));
        assert_eq!(entries(dir.path()), before);
    }

    #[test]
    fn a_failed_commit_removes_nothing_and_the_next_run_finds_what_a_commit_kept() {
        let (dir, store) = store(12);
        let before = entries(dir.path());
        let mut failing = MemoryBackend::new();
        failing.fail_flushes();
        assert!(redrive(&store, Some(&mut failing), &config()).is_err());
        assert_eq!(entries(dir.path()), before, "no entry goes before its document is committed");
        let mut backend = MemoryBackend::new();
        redrive(&store, Some(&mut backend), &config()).unwrap();
        let committed = backend.ids().len();
        // A crash after the commit and before the rewrite leaves the entries as they were:
        // the next run recognises every document and removes the entries.
        let replay_dir = tempfile::tempdir().unwrap();
        let replay = LocalDeadLetter::new(replay_dir.path());
        replay.replace_segment("copy.ndjson", &before).unwrap();
        let summary = redrive(&replay, Some(&mut backend), &config()).unwrap();
        assert_eq!((summary.indexed, summary.duplicates), (0, 8), "{summary:?}");
        assert_eq!(backend.ids().len(), committed, "nothing doubled");
        assert_eq!(entries(replay_dir.path()).len(), 6, "4 still invalid, the failed object, the damaged line");
    }

    #[test]
    fn a_refusing_backend_keeps_the_entry_with_its_reason_and_an_unfinished_one_unchanged() {
        let (dir, store) = store(6);
        let mut backend = MemoryBackend::new();
        let reason = "mapper_parsing_exception: amount".to_string();
        backend.answer(doc_id_for_position(&source(), 1), Outcome::Rejected { reason });
        backend.answer(doc_id_for_position(&source(), 2), Outcome::Failed { reason: "429".into() });
        let summary = redrive(&store, Some(&mut backend), &config()).unwrap();
        assert_eq!((summary.passed, summary.indexed, summary.unfinished), (3, 2, 1), "{summary:?}");
        assert_eq!(summary.failed, 3, "two still invalid, one refused");
        let by_record: BTreeMap<u64, DeadLetterEntry> = entries(dir.path())
            .into_iter()
            .filter_map(|line| match line {
                SegmentLine::Entry(e) => e.record.map(|r| (r, e)),
                SegmentLine::Unreadable(_) => None,
            })
            .collect();
        assert_eq!(by_record[&1].kind, RejectKind::Backend);
        assert!(by_record[&1].reason.contains("mapper_parsing_exception"), "{:?}", by_record[&1]);
        assert_eq!(by_record[&2].reason, "record is 90 bytes, over the 50-byte limit", "unchanged");
        assert_eq!(by_record.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 6]);
    }
}
