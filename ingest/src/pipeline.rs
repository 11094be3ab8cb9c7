//! The no-loss pipeline: every record of every source ends as indexed, duplicate or
//! rejected (dead-lettered), and every source as completed, skipped or failed.
//!
//! A reader thread decompresses, frames, validates, redacts and derives ids; the calling
//! thread writes batches to the backend and the dead-letter store. Checkpoints: a source
//! is recorded in the backend in the same commit as its last documents, after its
//! dead-letter file is durable, so replaying any source after any crash converges to the
//! same index and the same dead-letter store.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexer::{Backend, IndexDoc, Outcome, SourceRecord, SourceStatus};
use serde::Serialize;

use crate::dead_letter::{DeadLetterEntry, DeadLetterFile, DeadLetterStore, MAX_RAW_BYTES};
use crate::error::{ObjectFailure, RejectKind, Rejection, Result};
use crate::framing::{FrameBody, RecordReader};
use crate::id::{doc_id_for_event_id, doc_id_for_position, SourceIdentity};
use crate::limits::Limits;
use crate::redact::Redactor;
use crate::source::{CountingReader, SourceObject};
use crate::validate::{format_ts, parse_and_validate};

/// The default of [`PipelineConfig::commit_every_docs`]. The tantivy backend keeps the
/// ids written since the last commit in a hash set, whose table doubles from 2^20 to
/// 2^21 buckets at 917,504 ids (7/8 full): 53 MB while both tables are alive. Committing
/// before that keeps the set at 18 MB.
pub const DEFAULT_COMMIT_EVERY_DOCS: usize = 900_000;

/// How the pipeline batches and commits.
#[derive(Clone)]
pub struct PipelineConfig {
    pub limits: Limits,
    /// Most records per backend batch.
    pub batch_records: usize,
    /// Most bytes of source JSON per backend batch.
    pub batch_bytes: usize,
    /// Commit at least this often (documents written since the last commit)...
    pub commit_every_docs: usize,
    /// ...or this often (time since the last commit), checked between batches.
    pub commit_every: Duration,
    pub redactor: Arc<Redactor>,
    /// Checked between batches: when it returns true, the current source stops and is
    /// reported failed (so it is redelivered), and no new source starts.
    pub should_stop: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("limits", &self.limits)
            .field("batch_records", &self.batch_records)
            .field("batch_bytes", &self.batch_bytes)
            .field("commit_every_docs", &self.commit_every_docs)
            .field("commit_every", &self.commit_every)
            .finish_non_exhaustive()
    }
}

impl PipelineConfig {
    pub fn new(redactor: Redactor) -> Self {
        PipelineConfig {
            limits: Limits::default(),
            batch_records: 1_000,
            batch_bytes: 5 << 20,
            commit_every_docs: DEFAULT_COMMIT_EVERY_DOCS,
            commit_every: Duration::from_secs(30),
            redactor: Arc::new(redactor),
            should_stop: None,
        }
    }
}

/// How one source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOutcome {
    Completed,
    /// Already completed by an earlier run; not read again.
    Skipped,
    Failed,
}

/// What happened to one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub outcome: SourceOutcome,
    pub records: u64,
    pub indexed: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Records neither indexed nor refused because the backend failed (retried later).
    pub unfinished: u64,
    pub bytes_read: u64,
    pub failure: Option<String>,
}

/// Totals of a run, shaped as `tix-logs ingest --json` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub objects: u64,
    pub objects_skipped: u64,
    pub objects_failed: u64,
    pub records: u64,
    pub indexed: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub records_unfinished: u64,
    pub bytes_read: u64,
    pub elapsed_ms: u64,
}

impl RunSummary {
    pub fn add(&mut self, report: &SourceReport) {
        self.objects += 1;
        match report.outcome {
            SourceOutcome::Skipped => self.objects_skipped += 1,
            SourceOutcome::Failed => self.objects_failed += 1,
            SourceOutcome::Completed => {}
        }
        self.records += report.records;
        self.indexed += report.indexed;
        self.duplicates += report.duplicates;
        self.rejected += report.rejected;
        self.records_unfinished += report.unfinished;
        self.bytes_read += report.bytes_read;
    }
}

/// Receives progress while a source is read (for progress bars).
pub trait Progress: Send + Sync {
    fn source_started(&self, _name: &str, _size: Option<u64>, _bytes_read: Arc<AtomicU64>) {}
    fn source_finished(&self, _report: &SourceReport) {}
    /// After each batch of the current source: its records and rejections so far.
    fn batch_done(&self, _records: u64, _rejected: u64) {}
}

/// A progress sink that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What the reader thread hands over: items in source order.
enum Item {
    Doc { doc: IndexDoc, ordinal: u64, offset: u64, raw_len: usize },
    Rejected { ordinal: u64, offset: u64, rejection: Rejection, raw: String },
    Failed(ObjectFailure),
}

/// Drives sources through to a backend and a dead-letter store.
pub struct Pipeline<'a> {
    backend: &'a mut dyn Backend,
    dead_letter: &'a mut dyn DeadLetterStore,
    config: PipelineConfig,
    progress: Arc<dyn Progress>,
    docs_since_commit: usize,
    last_commit: Instant,
    started: Instant,
    summary: RunSummary,
}

impl<'a> Pipeline<'a> {
    pub fn new(backend: &'a mut dyn Backend, dead_letter: &'a mut dyn DeadLetterStore, config: PipelineConfig) -> Self {
        Pipeline {
            backend,
            dead_letter,
            config,
            progress: Arc::new(NoProgress),
            docs_since_commit: 0,
            last_commit: Instant::now(),
            started: Instant::now(),
            summary: RunSummary::default(),
        }
    }

    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Whether the stop condition (e.g. the Lambda deadline) has been reached.
    pub fn stop_requested(&self) -> bool {
        self.config.should_stop.as_ref().is_some_and(|stop| stop())
    }

    /// Ingests one source to its end (or its failure). Operational errors (backend
    /// unreachable, dead-letter store unwritable) abort with `Err`.
    pub fn ingest(&mut self, source: &dyn SourceObject) -> Result<SourceReport> {
        let identity = source.identity().clone();
        let name = identity.display_name();
        let key = identity.checkpoint_key();
        let prior = self.backend.source_record(&key)?;
        if prior.as_ref().is_some_and(|r| r.status == SourceStatus::Completed) {
            let report = SourceReport { outcome: SourceOutcome::Skipped, ..SourceState::new(&name).report(0) };
            self.summary.add(&report);
            self.progress.source_finished(&report);
            return Ok(report);
        }
        let unseen_source = prior.is_none();
        let bytes_read = Arc::new(AtomicU64::new(0));
        self.progress.source_started(&name, source.size_hint(), bytes_read.clone());
        let mut state = SourceState::new(&name);
        let mut dead_letter = self.dead_letter.begin(&identity)?;

        match source.open() {
            Err(error) => {
                state.fail(ObjectFailure::decode(format!("cannot open: {error}"), None));
            }
            Ok(reader) => {
                let reader = CountingReader::new(reader, bytes_read.clone());
                self.drive(reader, &identity, unseen_source, &key, &mut state, dead_letter.as_mut())?;
            }
        }
        if let Some(failure) = &state.failure {
            dead_letter.write(&DeadLetterEntry {
                source: name.clone(),
                record: None,
                offset: failure.offset,
                reason: failure.reason.clone(),
                kind: failure.kind,
                raw: String::new(),
                at: now_rfc3339(),
            })?;
        }
        dead_letter.finish()?;
        let report = state.report(bytes_read.load(Ordering::Relaxed));
        self.backend.record_source(&state.record(&key))?;
        self.summary.add(&report);
        self.maybe_commit()?;
        self.progress.source_finished(&report);
        Ok(report)
    }

    /// Commits everything written; call once at the end of a run.
    pub fn finish(mut self) -> Result<RunSummary> {
        self.backend.flush()?;
        self.summary.elapsed_ms = self.started.elapsed().as_millis() as u64;
        Ok(self.summary)
    }

    fn maybe_commit(&mut self) -> Result<()> {
        if self.docs_since_commit >= self.config.commit_every_docs
            || self.last_commit.elapsed() >= self.config.commit_every
        {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        #[cfg(feature = "failpoints")]
        fail::fail_point!("pipeline.before_commit");
        self.backend.flush()?;
        self.docs_since_commit = 0;
        self.last_commit = Instant::now();
        Ok(())
    }

    fn drive(
        &mut self,
        reader: impl Read + Send + 'static,
        identity: &SourceIdentity,
        unseen_source: bool,
        key: &str,
        state: &mut SourceState,
        dead_letter: &mut dyn DeadLetterFile,
    ) -> Result<()> {
        let (channels, handle) = spawn_reader(reader, identity.clone(), unseen_source, self.config.clone())
            .map_err(|error| crate::Error::Source { source_name: state.name.clone(), error })?;
        let result = self.consume(&channels, key, state, dead_letter);
        // If we stopped early, the reader's next send fails and it returns.
        drop(channels);
        if let Err(panic) = handle.join() {
            // A crashed reader closes the channel exactly as a finished one does: without
            // this the object would count as completed with the records it never read.
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            tracing::error!(source = %state.name, records = state.records, "the reader thread panicked");
            state.fail(ObjectFailure::decode(
                format!(
                    "internal error: the reader crashed after record {} ({message}); the object will be retried, \
                     please report this",
                    state.records
                ),
                None,
            ));
        }
        result
    }

    fn consume(
        &mut self,
        channels: &ReaderChannels,
        key: &str,
        state: &mut SourceState,
        dead_letter: &mut dyn DeadLetterFile,
    ) -> Result<()> {
        while let Ok(items) = channels.batches.recv() {
            #[cfg(feature = "failpoints")]
            fail::fail_point!("pipeline.between_batches");
            if self.stop_requested() {
                state.fail(ObjectFailure::limit(
                    "stopped before the end of the object (deadline); it will be retried",
                    None,
                ));
                return Ok(());
            }
            let mut docs = Vec::with_capacity(items.len());
            let mut coordinates = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Item::Doc { doc, ordinal, offset, .. } => {
                        state.records += 1;
                        state.valid += 1;
                        state.see_time(doc.ts_millis);
                        coordinates.push((ordinal, offset));
                        docs.push(doc);
                    }
                    Item::Rejected { ordinal, offset, rejection, raw } => {
                        state.records += 1;
                        state.rejected += 1;
                        dead_letter.write(&DeadLetterEntry {
                            source: state.name.clone(),
                            record: Some(ordinal),
                            offset: Some(offset),
                            reason: rejection.reason,
                            kind: rejection.kind,
                            raw,
                            at: now_rfc3339(),
                        })?;
                    }
                    Item::Failed(failure) => state.fail(failure),
                }
            }
            if docs.is_empty() {
                self.progress.batch_done(state.records, state.rejected);
                continue;
            }
            let outcomes = self.backend.index_batch(&docs)?;
            #[cfg(feature = "failpoints")]
            fail::fail_point!("pipeline.after_bulk");
            if outcomes.len() != docs.len() {
                return Err(crate::Error::Backend(indexer::Error::Other(format!(
                    "{} answered {} outcomes for {} documents",
                    self.backend.name(),
                    outcomes.len(),
                    docs.len()
                ))));
            }
            for ((outcome, (ordinal, offset)), doc) in outcomes.into_iter().zip(coordinates).zip(&docs) {
                match outcome {
                    Outcome::Indexed => {
                        state.indexed += 1;
                        self.docs_since_commit += 1;
                    }
                    Outcome::Duplicate => state.duplicates += 1,
                    Outcome::Rejected { reason } => {
                        state.rejected += 1;
                        let raw = serde_json::to_string(&doc.doc).unwrap_or_default();
                        dead_letter.write(&DeadLetterEntry {
                            source: state.name.clone(),
                            record: Some(ordinal),
                            offset: Some(offset),
                            reason,
                            kind: RejectKind::Backend,
                            raw: truncate(raw, MAX_RAW_BYTES),
                            at: now_rfc3339(),
                        })?;
                    }
                    Outcome::Failed { reason } => {
                        state.unfinished += 1;
                        if state.failure.is_none() {
                            state.fail(ObjectFailure {
                                kind: RejectKind::Backend,
                                reason: format!("backend did not take every record: {reason}"),
                                offset: Some(offset),
                            });
                        }
                    }
                }
            }
            channels.give_back(docs);
            self.progress.batch_done(state.records, state.rejected);
            if self.docs_since_commit >= self.config.commit_every_docs {
                // A mid-source commit: record the source as in progress in the same
                // commit, so a later run knows its positional ids may already exist.
                let record = SourceRecord { status: SourceStatus::InProgress, ..state.record(key) };
                self.backend.record_source(&record)?;
                self.commit()?;
            }
        }
        Ok(())
    }
}

/// Counters of the source being read.
struct SourceState {
    name: String,
    records: u64,
    valid: u64,
    indexed: u64,
    duplicates: u64,
    rejected: u64,
    unfinished: u64,
    failure: Option<ObjectFailure>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl SourceState {
    fn new(name: &str) -> Self {
        SourceState {
            name: name.to_string(),
            records: 0,
            valid: 0,
            indexed: 0,
            duplicates: 0,
            rejected: 0,
            unfinished: 0,
            failure: None,
            first_ms: None,
            last_ms: None,
        }
    }

    fn fail(&mut self, failure: ObjectFailure) {
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
    }

    fn see_time(&mut self, ms: i64) {
        self.first_ms = Some(self.first_ms.map_or(ms, |f| f.min(ms)));
        self.last_ms = Some(self.last_ms.map_or(ms, |l| l.max(ms)));
    }

    fn report(&self, bytes_read: u64) -> SourceReport {
        SourceReport {
            source: self.name.clone(),
            outcome: if self.failure.is_some() { SourceOutcome::Failed } else { SourceOutcome::Completed },
            records: self.records,
            indexed: self.indexed,
            duplicates: self.duplicates,
            rejected: self.rejected,
            unfinished: self.unfinished,
            bytes_read,
            failure: self.failure.as_ref().map(|f| f.reason.clone()),
        }
    }

    fn record(&self, key: &str) -> SourceRecord {
        SourceRecord {
            key: key.to_string(),
            source: self.name.clone(),
            status: if self.failure.is_some() { SourceStatus::Failed } else { SourceStatus::Completed },
            records: self.records,
            valid: self.valid,
            indexed: self.indexed,
            duplicates: self.duplicates,
            rejected: self.rejected,
            failure: self.failure.as_ref().map(|f| f.reason.clone()),
            first_event: self.first_ms.map(format_ts),
            last_event: self.last_ms.map(format_ts),
            updated_at: now_rfc3339(),
        }
    }
}

/// The indexing side's ends of the reader thread's channels.
struct ReaderChannels {
    /// Batches read, validated and redacted.
    batches: Receiver<Vec<Item>>,
    /// Indexed batches on their way back to be freed by the thread that allocated them:
    /// the allocator frees a block on its own thread for less than on another.
    spent: SyncSender<Vec<IndexDoc>>,
}

impl ReaderChannels {
    /// Hands an indexed batch back to the reader. Never waits: when one batch is
    /// already on its way back (or the reader is gone), this one is freed here.
    fn give_back(&self, docs: Vec<IndexDoc>) {
        let _ = self.spent.try_send(docs);
    }
}

/// Starts the reader thread: decompress, frame, validate, redact, id; batches of items
/// go through a small bounded channel so memory stays bounded by a few batches.
fn spawn_reader(
    reader: impl Read + Send + 'static,
    identity: SourceIdentity,
    unseen_source: bool,
    config: PipelineConfig,
) -> std::io::Result<(ReaderChannels, std::thread::JoinHandle<()>)> {
    let (sender, receiver) = sync_channel::<Vec<Item>>(4);
    let (spent_sender, spent) = sync_channel::<Vec<IndexDoc>>(1);
    let handle = std::thread::Builder::new().name("tix-reader".into()).spawn(move || {
        let limits = config.limits;
        let mut records = match crate::decode::decompress(reader, &limits) {
            Ok((_, decoded)) => RecordReader::new(decoded, limits),
            Err(error) => {
                let _ = sender.send(vec![Item::Failed(crate::decode::object_failure(&error, 0))]);
                return;
            }
        };
        let mut batch = Vec::with_capacity(config.batch_records);
        let mut batch_bytes = 0usize;
        while let Some(frame) = records.next_frame() {
            let item = match frame {
                Err(failure) => Item::Failed(failure),
                Ok(frame) => match frame.body {
                    FrameBody::Rejected { rejection, raw_prefix } => Item::Rejected {
                        ordinal: frame.ordinal,
                        offset: frame.offset,
                        rejection,
                        raw: config.redactor.redact_raw(&raw_prefix, MAX_RAW_BYTES),
                    },
                    FrameBody::Record(raw) => match parse_and_validate(&raw, &limits) {
                        Err(rejection) => Item::Rejected {
                            ordinal: frame.ordinal,
                            offset: frame.offset,
                            rejection,
                            raw: config.redactor.redact_raw(&raw, MAX_RAW_BYTES),
                        },
                        Ok(mut event) => {
                            config.redactor.redact_event(&mut event.doc);
                            let (id, positional) = match &event.event_id {
                                Some(event_id) => (doc_id_for_event_id(event_id), false),
                                None => (doc_id_for_position(&identity, frame.ordinal), true),
                            };
                            Item::Doc {
                                doc: IndexDoc {
                                    id: id.to_hex(),
                                    ts_millis: event.ts_millis,
                                    doc: event.doc,
                                    unseen_source: positional && unseen_source,
                                },
                                ordinal: frame.ordinal,
                                offset: frame.offset,
                                raw_len: raw.len(),
                            }
                        }
                    },
                },
            };
            batch_bytes += match &item {
                Item::Doc { raw_len, .. } => *raw_len,
                _ => 0,
            };
            let is_failure = matches!(item, Item::Failed(_));
            batch.push(item);
            if batch.len() >= config.batch_records || batch_bytes >= config.batch_bytes || is_failure {
                // Free the batches the indexing side is done with, here where they were made.
                while spent.try_recv().is_ok() {}
                if sender.send(std::mem::take(&mut batch)).is_err() {
                    return;
                }
                batch_bytes = 0;
            }
            if is_failure {
                return;
            }
        }
        if !batch.is_empty() {
            let _ = sender.send(batch);
        }
    })?;
    Ok((ReaderChannels { batches: receiver, spent: spent_sender }, handle))
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::LocalDeadLetter;
    use crate::redact::Redactor;

    /// A source whose bytes end in a panic, as a bug in a decoder would.
    struct PanickingSource(SourceIdentity);

    impl SourceObject for PanickingSource {
        fn identity(&self) -> &SourceIdentity {
            &self.0
        }
        fn size_hint(&self) -> Option<u64> {
            None
        }
        fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
            let good = "{\"ts\":\"2024-02-05T10:00:00Z\",\"type\":\"booking.requested\",\"event_id\":\"p-1\"}\n";
            Ok(Box::new(std::io::Read::chain(good.as_bytes(), PanicOnRead)))
        }
    }

    struct PanicOnRead;

    impl Read for PanicOnRead {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("decoder bug")
        }
    }

    #[test]
    fn a_reader_that_panics_fails_the_object_instead_of_completing_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut backend =
            indexer::TantivyBackend::open_for_writing(&dir.path().join("index"), Default::default()).unwrap();
        let mut dead_letter = LocalDeadLetter::new(&dir.path().join("dl"));
        let source = PanickingSource(SourceIdentity::Stream { name: "panicking".into(), nonce: "n".into() });
        let mut pipeline = Pipeline::new(&mut backend, &mut dead_letter, PipelineConfig::new(Redactor::new(b"k")));
        let report = pipeline.ingest(&source).unwrap();
        assert_eq!(report.outcome, SourceOutcome::Failed, "{report:?}");
        let summary = pipeline.finish().unwrap();
        assert_eq!(summary.objects_failed, 1);
        let entries = LocalDeadLetter::read_all(&dir.path().join("dl")).unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(entries[0].reason.contains("reader crashed") && entries[0].reason.contains("decoder bug"));
        let record = backend.source_record(&source.0.checkpoint_key()).unwrap().expect("recorded");
        assert_eq!(record.status, indexer::SourceStatus::Failed, "never recorded completed");
    }
}
