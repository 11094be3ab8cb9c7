//! The no-loss pipeline: every record of every source ends as indexed, duplicate or
//! rejected (dead-lettered), and every source as completed, skipped or failed.
//!
//! A reader thread decompresses and frames; preparing threads validate, redact, derive
//! ids and encode documents for the backend; the calling thread writes batches to the
//! backend and the dead-letter store, in source order. Checkpoints: a source
//! is recorded in the backend in the same commit as its last documents, after its
//! dead-letter file is durable, so replaying any source after any crash converges to the
//! same index and the same dead-letter store.
//!
//! Every checkpoint of an unfinished source is a resume point ([`ResumePoint`]): a
//! mid-source commit, and a stop at the deadline ([`SourceOutcome::Paused`]). The next
//! read of the source fast-forwards over the records before it (decompress and frame
//! only) and goes on, so an object too large for one Lambda invocation completes over
//! several, each record indexed once. The dead-letter entries of each stretch between
//! resume points go to a segment of their own (`dead_letter::segment_file_name`),
//! published before the checkpoint that moves the resume point past them.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indexer::{Backend, DocEncoder, EncodedDoc, IndexDoc, Outcome, ResumePoint, SourceRecord, SourceStatus};
use serde::Serialize;

use crate::dead_letter::{DeadLetterEntry, DeadLetterFile, DeadLetterStore, SourceRef, MAX_RAW_BYTES};
use crate::error::{ObjectFailure, RejectKind, Rejection, Result};
use crate::framing::{Frame, FrameBody, RecordReader};
use crate::id::{doc_id_for_event_id, doc_id_for_position, DocId, EventIdKey, SourceIdentity};
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
    /// Threads that parse, validate, redact and encode records (at least one).
    pub prepare_threads: usize,
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
            .field("prepare_threads", &self.prepare_threads)
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
            prepare_threads: default_prepare_threads(),
            should_stop: None,
        }
    }
}

/// One preparing thread per CPU, at most 4: preparing costs less than indexing, so more
/// would only wait for the backend.
pub fn default_prepare_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// How one source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOutcome {
    Completed,
    /// Already completed by an earlier run; not read again.
    Skipped,
    Failed,
    /// Stopped at the deadline after a checkpoint; a later run (the redelivery)
    /// fast-forwards to it and goes on. Not a failure: no dead-letter entry.
    Paused,
}

impl SourceOutcome {
    /// Whether the source needs nothing more: completed now or before.
    pub fn is_done(self) -> bool {
        matches!(self, SourceOutcome::Completed | SourceOutcome::Skipped)
    }
}

/// What happened to one source in this read (a resumed read counts from its resume point).
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
    /// Objects stopped at the deadline after a checkpoint, to be continued.
    pub objects_paused: u64,
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
            SourceOutcome::Paused => self.objects_paused += 1,
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

/// What becomes of one frame; `D` is the backend's encoded document.
enum Item<D> {
    Doc {
        doc: D,
        ts_millis: i64,
        ordinal: u64,
        offset: u64,
        id: DocId,
    },
    /// `id`: from the record's unredacted `event_id`, when it has one (for redrive).
    Rejected {
        ordinal: u64,
        offset: u64,
        rejection: Rejection,
        raw: String,
        id: Option<DocId>,
    },
    Failed(ObjectFailure),
}

/// Drives sources through to a backend and a dead-letter store.
pub struct Pipeline<'a, B> {
    backend: &'a mut B,
    dead_letter: &'a mut dyn DeadLetterStore,
    config: PipelineConfig,
    progress: Arc<dyn Progress>,
    docs_since_commit: usize,
    last_commit: Instant,
    started: Instant,
    summary: RunSummary,
}

impl<'a, B: Backend> Pipeline<'a, B> {
    pub fn new(backend: &'a mut B, dead_letter: &'a mut dyn DeadLetterStore, config: PipelineConfig) -> Self {
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

    /// Moves the backend's deadline (see [`Backend::set_deadline`]), e.g. to give the
    /// final commit the time kept back for it.
    pub fn set_backend_deadline(&mut self, deadline: Option<Instant>) {
        self.backend.set_deadline(deadline);
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
            let report =
                SourceReport { outcome: SourceOutcome::Skipped, ..SourceState::new(&name, &key, None).report(0) };
            self.summary.add(&report);
            self.progress.source_finished(&report);
            return Ok(report);
        }
        let unseen_source = prior.is_none();
        // An unfinished earlier read (a stop at the deadline, a crash after a
        // mid-source commit) continues from its last resume point.
        let resume = prior.and_then(|record| record.resume).filter(|point| point.records > 0);
        let bytes_read = Arc::new(AtomicU64::new(0));
        self.progress.source_started(&name, source.size_hint(), bytes_read.clone());
        let mut state = SourceState::new(&name, &key, resume);
        if state.records > 0 {
            tracing::info!(source = %name, after_record = state.records, "continuing from the checkpoint");
        }
        let mut dead_letter = self.dead_letter.begin(&identity, state.records)?;

        match source.open() {
            Err(error) => {
                state.fail(ObjectFailure::decode(format!("cannot open: {error}"), None));
            }
            Ok(reader) => {
                let reader = CountingReader::new(reader, bytes_read.clone());
                self.drive(reader, &identity, unseen_source, &mut state, &mut dead_letter)?;
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
                source_id: Some(SourceRef::from(&identity)),
                id: None,
            })?;
        }
        dead_letter.finish()?;
        let report = state.report(bytes_read.load(Ordering::Relaxed));
        self.backend.record_source(&state.record())?;
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
        state: &mut SourceState,
        dead_letter: &mut Box<dyn DeadLetterFile>,
    ) -> Result<()> {
        let encoder = self.backend.encoder();
        let skip = state.records;
        let (mut channels, handles) = spawn_reading(reader, identity, unseen_source, skip, &self.config, &encoder)
            .map_err(|error| crate::Error::Source { source_name: state.name.clone(), error })?;
        let result = self.consume(&mut channels, identity, state, dead_letter);
        // If we stopped early, the threads' next sends fail and they return.
        drop(channels);
        for handle in handles {
            let Err(panic) = handle.join() else { continue };
            // A crashed thread closes its channel exactly as a finished one does: without
            // this the object would count as completed with the records it never read.
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            // A panic message may quote the bytes being decoded: it goes to the dead-letter
            // reason and the checkpoint redacted, like any other text from a record.
            let message = self.config.redactor.redact_text(message);
            tracing::error!(source = %state.name, records = state.records, "a reading thread panicked");
            state.fail(ObjectFailure::decode(
                format!(
                    "internal error: reading crashed after record {} ({message}); the object will be retried, \
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
        channels: &mut ReaderChannels<B::Doc>,
        identity: &SourceIdentity,
        state: &mut SourceState,
        dead_letter: &mut Box<dyn DeadLetterFile>,
    ) -> Result<()> {
        let attempt_start = state.records;
        while let Some(items) = channels.next_batch() {
            #[cfg(feature = "failpoints")]
            fail::fail_point!("pipeline.between_batches");
            // At least one batch per read, so that every redelivery makes progress even
            // when the fast-forward took most of its time.
            if self.stop_requested() && state.records > attempt_start {
                if state.failure.is_none() {
                    state.paused = true;
                }
                return Ok(());
            }
            let mut docs = Vec::with_capacity(items.len());
            let mut coordinates = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Item::Doc { doc, ts_millis, ordinal, offset, id } => {
                        state.records += 1;
                        state.valid += 1;
                        state.see_time(ts_millis);
                        coordinates.push((ordinal, offset, id));
                        docs.push(doc);
                    }
                    Item::Rejected { ordinal, offset, rejection, raw, id } => {
                        state.records += 1;
                        state.rejected += 1;
                        dead_letter.write(&DeadLetterEntry::for_record(
                            identity,
                            ordinal,
                            offset,
                            (rejection.kind, rejection.reason),
                            raw,
                            id,
                        ))?;
                    }
                    Item::Failed(failure) => state.fail(failure),
                }
            }
            if docs.is_empty() {
                self.progress.batch_done(state.records, state.rejected);
                continue;
            }
            let outcomes = self.backend.index_encoded(&mut docs)?;
            #[cfg(feature = "failpoints")]
            fail::fail_point!("pipeline.after_bulk");
            if outcomes.len() != docs.len() {
                return Err(crate::Error::Backend(indexer::Error::internal(format!(
                    "{} answered {} outcomes for {} documents",
                    self.backend.name(),
                    outcomes.len(),
                    docs.len()
                ))));
            }
            for ((outcome, (ordinal, offset, id)), doc) in outcomes.into_iter().zip(coordinates).zip(&docs) {
                match outcome {
                    Outcome::Indexed => {
                        state.indexed += 1;
                        self.docs_since_commit += 1;
                    }
                    Outcome::Duplicate => state.duplicates += 1,
                    Outcome::Rejected { reason } => {
                        state.rejected += 1;
                        let raw = truncate(doc.source_json(), MAX_RAW_BYTES);
                        dead_letter.write(&DeadLetterEntry::for_record(
                            identity,
                            ordinal,
                            offset,
                            (RejectKind::Backend, reason),
                            raw,
                            Some(id),
                        ))?;
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
            self.progress.batch_done(state.records, state.rejected);
            if self.docs_since_commit >= self.config.commit_every_docs {
                self.checkpoint_mid_source(identity, state, dead_letter)?;
            }
        }
        Ok(())
    }

    /// A mid-source commit: the source is recorded in progress in the same commit, so a
    /// later run knows its positional ids may already exist. When everything so far is
    /// final, the commit is also a resume point: the dead-letter segment up to here is
    /// published first, and the entries after it go to a new one.
    fn checkpoint_mid_source(
        &mut self,
        identity: &SourceIdentity,
        state: &mut SourceState,
        dead_letter: &mut Box<dyn DeadLetterFile>,
    ) -> Result<()> {
        if state.failure.is_none() {
            let next = self.dead_letter.begin(identity, state.records)?;
            std::mem::replace(dead_letter, next).finish()?;
            state.resume = Some(state.point());
        }
        let record = SourceRecord { status: SourceStatus::InProgress, resume: state.resume.clone(), ..state.record() };
        self.backend.record_source(&record)?;
        self.commit()
    }
}

/// Counters of the source being read, from its start (a resumed read starts with the
/// counters of its resume point).
struct SourceState {
    name: String,
    key: String,
    /// The latest resume point: where a read after this one would start.
    resume: Option<ResumePoint>,
    /// Where this read started; reports count from here.
    start: ResumePoint,
    /// Stopped at the deadline with everything read so far final.
    paused: bool,
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
    fn new(name: &str, key: &str, resume: Option<ResumePoint>) -> Self {
        let start = resume.clone().unwrap_or_default();
        SourceState {
            name: name.to_string(),
            key: key.to_string(),
            resume,
            start: start.clone(),
            paused: false,
            records: start.records,
            valid: start.valid,
            indexed: start.indexed,
            duplicates: start.duplicates,
            rejected: start.rejected,
            unfinished: 0,
            failure: None,
            first_ms: start.first_event_ms,
            last_ms: start.last_event_ms,
        }
    }

    /// Here, as a point to resume from.
    fn point(&self) -> ResumePoint {
        ResumePoint {
            records: self.records,
            valid: self.valid,
            indexed: self.indexed,
            duplicates: self.duplicates,
            rejected: self.rejected,
            first_event_ms: self.first_ms,
            last_event_ms: self.last_ms,
        }
    }

    fn outcome(&self) -> SourceOutcome {
        match (&self.failure, self.paused) {
            (Some(_), _) => SourceOutcome::Failed,
            (None, true) => SourceOutcome::Paused,
            (None, false) => SourceOutcome::Completed,
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
        let failure = match self.outcome() {
            SourceOutcome::Paused => Some(format!(
                "stopped at the deadline after record {}; the next run continues from there",
                self.records
            )),
            _ => self.failure.as_ref().map(|f| f.reason.clone()),
        };
        // What this read did: a resumed read's earlier records were reported by the
        // reads before it, so summed reports count each record once.
        SourceReport {
            source: self.name.clone(),
            outcome: self.outcome(),
            records: self.records - self.start.records,
            indexed: self.indexed - self.start.indexed,
            duplicates: self.duplicates - self.start.duplicates,
            rejected: self.rejected - self.start.rejected,
            unfinished: self.unfinished,
            bytes_read,
            failure,
        }
    }

    /// The checkpoint record of where the source stands now.
    fn record(&self) -> SourceRecord {
        let (status, resume) = match self.outcome() {
            SourceOutcome::Failed => (SourceStatus::Failed, self.resume.clone()),
            SourceOutcome::Paused => (SourceStatus::InProgress, Some(self.point())),
            _ => (SourceStatus::Completed, None),
        };
        SourceRecord {
            key: self.key.clone(),
            source: self.name.clone(),
            status,
            records: self.records,
            valid: self.valid,
            indexed: self.indexed,
            duplicates: self.duplicates,
            rejected: self.rejected,
            failure: self.failure.as_ref().map(|f| f.reason.clone()),
            first_event: self.first_ms.map(format_ts),
            last_event: self.last_ms.map(format_ts),
            updated_at: now_rfc3339(),
            resume,
        }
    }
}

/// The reading and preparing threads of one object, joined when it is done.
type Threads = Vec<JoinHandle<()>>;

/// The indexing side's ends of the preparing threads' channels.
struct ReaderChannels<D> {
    /// Batch `n` of the object comes from `prepared[n % prepared.len()]`.
    prepared: Vec<Receiver<Vec<Item<D>>>>,
    /// The number of the next batch.
    next: usize,
}

impl<D> ReaderChannels<D> {
    /// The next batch in source order; `None` at the end of the object, or when a
    /// thread stopped early (a panic, found when the threads are joined).
    fn next_batch(&mut self) -> Option<Vec<Item<D>>> {
        let batch = self.prepared[self.next % self.prepared.len()].recv().ok();
        self.next += 1;
        batch
    }
}

/// Starts the threads that read an object: one decompresses and frames it, and
/// [`PipelineConfig::prepare_threads`] threads turn batches of frames into encoded
/// documents ([`prepare`]), batch `n` on thread `n % prepare_threads`, so the indexing
/// side gets them back in source order by asking each thread in turn. Every channel
/// is bounded, so memory stays bounded by a few batches. A resumed read drops its first
/// `skip` records as they are framed: never parsed, never sent.
///
/// Parsing, validation, redaction and the backend's encoding all run on the preparing
/// thread: the event tree is built, read into the backend's document and freed by one
/// thread while it is still in that core's cache, and the one thread that feeds the
/// backend only checks ids and adds documents.
fn spawn_reading<E: DocEncoder>(
    reader: impl Read + Send + 'static,
    identity: &SourceIdentity,
    unseen_source: bool,
    skip: u64,
    config: &PipelineConfig,
    encoder: &E,
) -> std::io::Result<(ReaderChannels<E::Doc>, Threads)> {
    let mut handles = Vec::new();
    let mut frame_senders = Vec::new();
    let mut prepared = Vec::new();
    for n in 0..config.prepare_threads.max(1) {
        let (frame_sender, frames) = sync_channel::<Vec<Result<Frame, ObjectFailure>>>(1);
        let (item_sender, items) = sync_channel::<Vec<Item<E::Doc>>>(1);
        let (identity, config, encoder) = (identity.clone(), config.clone(), encoder.clone());
        let ids = crate::id::event_id_key(&config.redactor);
        handles.push(std::thread::Builder::new().name(format!("tix-prepare-{n}")).spawn(move || {
            while let Ok(batch) = frames.recv() {
                let batch =
                    batch.into_iter().map(|frame| prepare(frame, &identity, unseen_source, &config, &ids, &encoder));
                if item_sender.send(batch.collect()).is_err() {
                    return;
                }
            }
        })?);
        frame_senders.push(frame_sender);
        prepared.push(items);
    }
    let config = config.clone();
    handles.push(std::thread::Builder::new().name("tix-reader".into()).spawn(move || {
        let limits = config.limits;
        let mut sent = 0usize;
        let mut send = |batch| {
            let sender: &SyncSender<_> = &frame_senders[sent % frame_senders.len()];
            sent += 1;
            sender.send(batch).is_ok()
        };
        let mut records = match crate::decode::decompress(reader, &limits) {
            Ok((_, decoded)) => RecordReader::new(decoded, limits),
            Err(error) => {
                send(vec![Err(crate::decode::object_failure(&error, 0))]);
                return;
            }
        };
        let mut batch = Vec::with_capacity(config.batch_records);
        let mut batch_bytes = 0usize;
        let mut skipped = 0u64;
        while let Some(frame) = records.next_frame() {
            if skipped < skip && frame.is_ok() {
                skipped += 1;
                continue;
            }
            batch_bytes += match &frame {
                Ok(Frame { body: FrameBody::Record(raw), .. }) => raw.len(),
                _ => 0,
            };
            let is_failure = frame.is_err();
            batch.push(frame);
            if batch.len() >= config.batch_records || batch_bytes >= config.batch_bytes || is_failure {
                if !send(std::mem::replace(&mut batch, Vec::with_capacity(config.batch_records))) {
                    return;
                }
                batch_bytes = 0;
            }
            if is_failure {
                return;
            }
        }
        if skipped < skip {
            batch.push(Err(ObjectFailure::decode(
                format!(
                    "the object has {skipped} records, fewer than the {skip} its checkpoint says were read \
                     before; the checkpoint does not belong to these bytes (please report this)"
                ),
                None,
            )));
        }
        if !batch.is_empty() {
            send(batch);
        }
    })?);
    Ok((ReaderChannels { prepared, next: 0 }, handles))
}

/// Turns one frame into what the pipeline does with it: parse and validate, redact,
/// derive the id; or the rejection, with its raw text redacted.
fn prepare<E: DocEncoder>(
    frame: Result<Frame, ObjectFailure>,
    identity: &SourceIdentity,
    unseen_source: bool,
    config: &PipelineConfig,
    ids: &EventIdKey,
    encoder: &E,
) -> Item<E::Doc> {
    let frame = match frame {
        Err(failure) => return Item::Failed(failure),
        Ok(frame) => frame,
    };
    match frame.body {
        FrameBody::Rejected { rejection, raw_prefix } => Item::Rejected {
            ordinal: frame.ordinal,
            offset: frame.offset,
            rejection,
            raw: config.redactor.redact_raw(&raw_prefix, MAX_RAW_BYTES),
            id: None,
        },
        FrameBody::Record(raw) => match parse_and_validate(&raw, &config.limits) {
            Err(rejection) => Item::Rejected {
                ordinal: frame.ordinal,
                offset: frame.offset,
                rejection,
                raw: config.redactor.redact_raw(&raw, MAX_RAW_BYTES),
                id: unredacted_event_id(&raw).map(|event_id| doc_id_for_event_id(ids, &event_id)),
            },
            Ok(mut event) => {
                config.redactor.redact_event(&mut event.doc);
                if let Some(field) = masked_number_field(&event.doc) {
                    // Both backends index these fields as numbers: tantivy would skip the
                    // masked string without a word, Elasticsearch refuse the document.
                    return Item::Rejected {
                        ordinal: frame.ordinal,
                        offset: frame.offset,
                        rejection: Rejection::validation(format!(
                            "{field}: the number reads as a card number and was masked, so the field can \
                             no longer hold it; send card data in a field of its own"
                        )),
                        raw: config.redactor.redact_raw(&raw, MAX_RAW_BYTES),
                        id: event.event_id.as_ref().map(|event_id| doc_id_for_event_id(ids, event_id)),
                    };
                }
                let (id, positional) = match &event.event_id {
                    Some(event_id) => (doc_id_for_event_id(ids, event_id), false),
                    None => (doc_id_for_position(identity, frame.ordinal), true),
                };
                Item::Doc {
                    doc: encoder.encode(IndexDoc {
                        id,
                        ts_millis: event.ts_millis,
                        doc: event.doc,
                        unseen_source: positional && unseen_source,
                    }),
                    ts_millis: event.ts_millis,
                    ordinal: frame.ordinal,
                    offset: frame.offset,
                    id,
                }
            }
        },
    }
}

/// A number field (`amount`, `latency_ms`) that redaction turned into a masked string:
/// validation lets only numbers (or null) through there, so a string means masking.
fn masked_number_field(doc: &serde_json::Map<String, serde_json::Value>) -> Option<&'static str> {
    indexer::schema::FIELDS
        .iter()
        .filter(|spec| spec.kind == indexer::schema::FieldKind::Number)
        .map(|spec| spec.name)
        .find(|name| doc.get(*name).is_some_and(serde_json::Value::is_string))
}

/// The `event_id` of a record that failed validation, when it is readable as the
/// validator would read it (a non-empty string). Its dead-letter entry keeps the id it
/// derives, since `raw` only keeps the redacted value. Runs for rejected records only.
fn unredacted_event_id(raw: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct EventIdOnly {
        event_id: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<EventIdOnly>(raw).ok()?.event_id? {
        serde_json::Value::String(event_id) if !event_id.is_empty() => Some(event_id),
        _ => None,
    }
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
    indexer::civil::rfc3339_millis(chrono::Utc::now().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use indexer::Store;

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
            panic!("decoder bug near 4111 1111 1111 1111 for bob@example.org")
        }
    }

    /// A source read from memory.
    struct BytesSource(SourceIdentity, Vec<u8>);

    impl SourceObject for BytesSource {
        fn identity(&self) -> &SourceIdentity {
            &self.0
        }
        fn size_hint(&self) -> Option<u64> {
            Some(self.1.len() as u64)
        }
        fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(std::io::Cursor::new(self.1.clone())))
        }
    }

    /// A backend that keeps the `event_id` of every document, in the order it got them.
    #[derive(Default)]
    struct Recording {
        event_ids: Vec<String>,
        sources: Vec<SourceRecord>,
    }

    impl Backend for Recording {
        type Doc = IndexDoc;
        type Encoder = indexer::JsonEncoder;
        fn encoder(&self) -> indexer::JsonEncoder {
            indexer::JsonEncoder
        }
        fn ensure_ready(&mut self) -> indexer::Result<()> {
            Ok(())
        }
        fn index_batch(&mut self, docs: &[IndexDoc]) -> indexer::Result<Vec<Outcome>> {
            self.event_ids.extend(docs.iter().map(|d| d.doc["event_id"].as_str().unwrap_or_default().to_string()));
            Ok(vec![Outcome::Indexed; docs.len()])
        }
        fn index_encoded(&mut self, docs: &mut [IndexDoc]) -> indexer::Result<Vec<Outcome>> {
            self.index_batch(docs)
        }
        fn record_source(&mut self, record: &SourceRecord) -> indexer::Result<()> {
            self.sources.push(record.clone());
            Ok(())
        }
        fn flush(&mut self) -> indexer::Result<()> {
            Ok(())
        }
    }

    impl Store for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn source_record(&self, key: &str) -> indexer::Result<Option<SourceRecord>> {
            Ok(self.sources.iter().rev().find(|r| r.key == key).cloned())
        }
        fn search(&self, _: &indexer::SearchRequest) -> indexer::Result<indexer::SearchResponse> {
            Err(indexer::Error::Unsupported { backend: "recording", operation: "search" })
        }
        fn count(&self, _: &indexer::SearchRequest) -> indexer::Result<u64> {
            Err(indexer::Error::Unsupported { backend: "recording", operation: "count" })
        }
        fn sources(&self) -> indexer::Result<Vec<SourceRecord>> {
            Ok(self.sources.clone())
        }
    }

    /// `count` records; every 9th is invalid (no `type`).
    fn numbered_records(count: u64) -> (Vec<u8>, Vec<String>, Vec<u64>) {
        let (mut text, mut valid, mut invalid) = (String::new(), Vec::new(), Vec::new());
        for n in 1..=count {
            if n % 9 == 0 {
                text.push_str(&format!("{{\"ts\":\"2024-02-05T10:00:00Z\",\"event_id\":\"e-{n}\"}}\n"));
                invalid.push(n);
            } else {
                text.push_str(&format!(
                    "{{\"ts\":\"2024-02-05T10:00:00Z\",\"type\":\"seat.locked\",\"event_id\":\"e-{n}\"}}\n"
                ));
                valid.push(format!("e-{n}"));
            }
        }
        (text.into_bytes(), valid, invalid)
    }

    fn run_recording(threads: usize, config: impl FnOnce(&mut PipelineConfig), bytes: Vec<u8>) -> RunOutcome {
        let dir = tempfile::tempdir().unwrap();
        let mut backend = Recording::default();
        let mut dead_letter = LocalDeadLetter::new(&dir.path().join("dl"));
        let mut pipeline_config = PipelineConfig::new(Redactor::new(b"k"));
        pipeline_config.prepare_threads = threads;
        pipeline_config.batch_records = 7;
        config(&mut pipeline_config);
        let source = BytesSource(SourceIdentity::Stream { name: "numbered".into(), nonce: "n".into() }, bytes);
        let mut pipeline = Pipeline::new(&mut backend, &mut dead_letter, pipeline_config);
        let report = pipeline.ingest(&source).unwrap();
        pipeline.finish().unwrap();
        let entries = LocalDeadLetter::read_all(&dir.path().join("dl")).unwrap();
        RunOutcome { report, event_ids: backend.event_ids, entries }
    }

    struct RunOutcome {
        report: SourceReport,
        event_ids: Vec<String>,
        entries: Vec<DeadLetterEntry>,
    }

    #[test]
    fn a_number_field_masked_as_a_card_is_rejected_not_indexed_without_it() {
        let bytes = concat!(
            r#"{"ts":"2024-02-05T10:00:00Z","type":"payment.captured","event_id":"m-1","amount":4111111111111111}"#,
            "\n",
            r#"{"ts":"2024-02-05T10:00:00Z","type":"payment.captured","event_id":"m-2","amount":4111111111111112}"#,
            "\n",
        );
        let run = run_recording(1, |_| {}, bytes.as_bytes().to_vec());
        assert_eq!(run.event_ids, vec!["m-2".to_string()], "the amount that is not a card is indexed");
        assert_eq!(run.entries.len(), 1, "{:?}", run.entries);
        let entry = &run.entries[0];
        assert_eq!((entry.record, entry.kind), (Some(1), RejectKind::Validation));
        assert!(entry.reason.starts_with("amount:"), "{}", entry.reason);
        assert!(!entry.raw.contains("4111111111111111"), "{}", entry.raw);
    }

    #[test]
    fn records_reach_the_backend_and_the_dead_letter_store_in_source_order_with_any_number_of_threads() {
        let (bytes, valid, invalid) = numbered_records(200);
        for threads in [1, 2, 3, 5] {
            let run = run_recording(threads, |_| {}, bytes.clone());
            assert_eq!(run.report.outcome, SourceOutcome::Completed, "{threads} threads: {:?}", run.report);
            assert_eq!(run.event_ids, valid, "{threads} threads: documents in source order");
            let ordinals: Vec<u64> = run.entries.iter().filter_map(|e| e.record).collect();
            assert_eq!(ordinals, invalid, "{threads} threads: rejections in source order");
            assert_eq!(run.report.records, 200);
            assert_eq!(run.report.indexed + run.report.rejected, 200, "{:?}", run.report);
        }
    }

    #[test]
    fn an_object_failing_midway_keeps_exactly_the_records_before_the_failure_with_any_number_of_threads() {
        let (bytes, valid, invalid) = numbered_records(5_000);
        // The limit is checked per read of the decoder, so where the object stops is not
        // exact; somewhere past the first records and well before the end.
        let limit = bytes.len() as u64 / 2;
        for threads in [1, 2, 3] {
            let run = run_recording(threads, |c| c.limits.max_decompressed_bytes = limit, bytes.clone());
            assert_eq!(run.report.outcome, SourceOutcome::Failed, "{threads} threads: {:?}", run.report);
            assert!(run.report.records > 100 && run.report.records < 4_000, "{threads} threads: {:?}", run.report);
            let indexed = run.report.indexed as usize;
            assert_eq!(run.event_ids, valid[..indexed], "{threads} threads: a prefix, in order");
            assert_eq!(run.report.indexed + run.report.rejected, run.report.records, "{:?}", run.report);
            let ordinals: Vec<u64> = run.entries.iter().filter_map(|e| e.record).collect();
            let invalid_read: Vec<u64> = invalid.iter().copied().filter(|&n| n <= run.report.records).collect();
            assert_eq!(ordinals, invalid_read, "{threads} threads: the rejections read, in order");
            let failure = run.entries.iter().filter(|e| e.record.is_none()).count();
            assert_eq!(failure, 1, "{threads} threads: one entry for the failed object: {:?}", run.entries);
        }
    }

    /// Reads `bytes` as one source again and again, each read stopped (as at a
    /// deadline) after `batches_per_read` batches, until it completes; the same backend
    /// and dead-letter directory throughout, as redeliveries of one object see them.
    fn read_in_stretches(
        bytes: &[u8],
        batches_per_read: usize,
        config: impl Fn(usize, &mut PipelineConfig),
    ) -> (Vec<SourceReport>, Recording, Vec<DeadLetterEntry>) {
        let dir = tempfile::tempdir().unwrap();
        let mut backend = Recording::default();
        let mut dead_letter = LocalDeadLetter::new(&dir.path().join("dl"));
        let identity = SourceIdentity::Stream { name: "numbered".into(), nonce: "n".into() };
        let mut reports = Vec::new();
        while reports.last().is_none_or(|r: &SourceReport| !r.outcome.is_done()) {
            assert!(reports.len() < 100, "no end in sight: {:?}", reports.last());
            let asked = Arc::new(AtomicU64::new(0));
            let mut pipeline_config = PipelineConfig::new(Redactor::new(b"k"));
            pipeline_config.batch_records = 7;
            pipeline_config.prepare_threads = 2;
            let counter = asked.clone();
            pipeline_config.should_stop =
                Some(Arc::new(move || counter.fetch_add(1, Ordering::Relaxed) >= batches_per_read as u64));
            config(reports.len(), &mut pipeline_config);
            let source = BytesSource(identity.clone(), bytes.to_vec());
            let mut pipeline = Pipeline::new(&mut backend, &mut dead_letter, pipeline_config);
            reports.push(pipeline.ingest(&source).unwrap());
            pipeline.finish().unwrap();
        }
        let entries = LocalDeadLetter::read_all(&dir.path().join("dl")).unwrap();
        (reports, backend, entries)
    }

    #[test]
    fn an_object_read_over_several_stops_indexes_and_dead_letters_every_record_once() {
        let (bytes, valid, invalid) = numbered_records(200);
        for batches_per_read in [1, 3, 10] {
            let (reports, backend, entries) = read_in_stretches(&bytes, batches_per_read, |_, _| {});
            let last = reports.last().unwrap();
            assert!(reports.len() >= 3, "{batches_per_read}: several reads: {}", reports.len());
            assert!(reports[..reports.len() - 1].iter().all(|r| r.outcome == SourceOutcome::Paused), "{reports:?}");
            assert_eq!(last.outcome, SourceOutcome::Completed, "{last:?}");
            assert_eq!(backend.event_ids, valid, "{batches_per_read}: every valid record once, in order");
            let mut ordinals: Vec<u64> = entries.iter().filter_map(|e| e.record).collect();
            ordinals.sort();
            assert_eq!(ordinals, invalid, "{batches_per_read}: every rejection once");
            assert!(entries.iter().all(|e| e.record.is_some()), "a stop is not a failure: {entries:?}");
            let total = |count: fn(&SourceReport) -> u64| reports.iter().map(count).sum::<u64>();
            assert_eq!(
                (total(|r| r.records), total(|r| r.indexed), total(|r| r.rejected)),
                (200, valid.len() as u64, invalid.len() as u64),
                "the reads' reports add up to the object"
            );
            let record = backend.sources.last().unwrap();
            assert_eq!((record.status, record.records, &record.resume), (SourceStatus::Completed, 200, &None));
        }
    }

    #[test]
    fn a_paused_read_records_where_it_stopped_and_the_next_read_starts_there() {
        let (bytes, _, _) = numbered_records(100);
        let (reports, backend, _) = read_in_stretches(&bytes, 2, |_, _| {});
        assert_eq!(reports[0].records, 14, "two batches of 7");
        let first = &backend.sources[0];
        assert_eq!(first.status, SourceStatus::InProgress);
        assert_eq!(first.resume.as_ref().map(|p| p.records), Some(14));
        assert_eq!(reports[1].records, 14, "a report counts what its read did");
        assert_eq!(backend.sources[1].resume.as_ref().map(|p| p.records), Some(28), "checkpoints count it all");
        assert!(reports[0].failure.as_deref().unwrap().contains("after record 14"), "{:?}", reports[0]);
    }

    #[test]
    fn a_failed_read_after_mid_source_checkpoints_is_replayed_from_the_last_one() {
        let (bytes, valid, invalid) = numbered_records(3_000);
        // The first read fails halfway (past its decompressed-size limit); its mid-source
        // commits every 50 documents were resume points. The second read has no limit.
        let half = bytes.len() as u64 / 2;
        let (reports, backend, entries) = read_in_stretches(&bytes, usize::MAX, |read, c| {
            c.commit_every_docs = 50;
            if read == 0 {
                c.limits.max_decompressed_bytes = half;
            }
        });
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(reports[0].outcome, SourceOutcome::Failed, "{reports:?}");
        let checkpoints: Vec<&SourceRecord> =
            backend.sources.iter().filter(|r| r.status == SourceStatus::InProgress).collect();
        assert!(checkpoints.len() > 5, "{checkpoints:?}");
        for checkpoint in checkpoints {
            let resume = checkpoint.resume.as_ref().map(|point| point.records);
            assert_eq!(resume, Some(checkpoint.records), "a mid-source checkpoint is a resume point: {checkpoint:?}");
        }
        let failed = backend.sources.iter().find(|r| r.status == SourceStatus::Failed).unwrap();
        let resumed_at = failed.resume.as_ref().expect("a failed read keeps its last resume point").records;
        assert!(resumed_at > 500 && resumed_at <= reports[0].records, "{resumed_at} {:?}", reports[0]);
        assert_eq!(reports[1].outcome, SourceOutcome::Completed, "{reports:?}");
        // The records between the resume point and the failure were sent twice; the
        // Recording backend does not deduplicate, so they show up twice, and nothing
        // before the resume point does.
        let first_read = reports[0].indexed as usize;
        let replayed = &backend.event_ids[first_read..];
        let resumed_valid = valid.iter().position(|id| id == &replayed[0]).unwrap();
        assert_eq!(replayed, &valid[resumed_valid..], "the second read starts at the resume point");
        assert!(resumed_valid < first_read && resumed_valid > 400, "{resumed_valid}");
        let mut ordinals: Vec<u64> = entries.iter().filter_map(|e| e.record).collect();
        ordinals.sort();
        assert_eq!(ordinals, invalid, "every rejection once; the replayed segment replaced its first version");
        assert!(entries.iter().all(|e| e.record.is_some()), "the failure's entry went with its segment");
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
        let reason = &entries[0].reason;
        assert!(reason.contains("reading crashed") && reason.contains("decoder bug"), "{reason}");
        assert!(!reason.contains("4111 1111 1111 1111") && !reason.contains("bob@example.org"), "{reason}");
        let record = backend.source_record(&source.0.checkpoint_key()).unwrap().expect("recorded");
        assert_eq!(record.status, indexer::SourceStatus::Failed, "never recorded completed");
    }
}
