//! The embedded default backend: a tantivy index in a local directory.
//!
//! Events and source checkpoints live in the same index (told apart by `_kind`), so a
//! source's checkpoint is committed atomically with its documents: a crash leaves either
//! both or neither. Duplicates are found by id: ids written since the last commit are
//! kept in memory, earlier ones are looked up in the committed segments' id sets
//! ([`id_set`]).
//!
//! This file is the backend itself (opening, writing, committing, searching). Beside it:
//! [`schema`] the tantivy schema and the event-to-document mapping, `encode` the
//! document the pipeline prepares on its own threads, [`ids`] how an id is kept (two
//! 64-bit columns), [`id_set`] the per-segment id sets, `query` the rewriting of
//! queries and aggregations, `report` the booking report's facts.

mod encode;
pub mod id_set;
pub mod ids;
mod query;
mod report;
pub mod schema;

use std::collections::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashSet;
use serde_json::{Map, Value};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{
    DateTime, DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    TantivyError, Term,
};

use crate::backend::{Backend, Hit, IndexDoc, Outcome, SearchRequest, SearchResponse, SourceRecord, Store};
use crate::doc_id::EventIdKey;
use crate::schema::FieldKind;
use crate::{Error, Result};
pub use encode::{TantivyEncoded, TantivyEncoder};
use id_set::{IdSetPlugin, SegmentIds};
use ids::IdKey;
use query::{finish_agg_result, rewrite_agg_field, rewrite_ast};
pub use query::{tantivy_field_name, NO_ID_KEY};
use schema::{tantivy_schema, TantivySchema, KIND_EVENT, KIND_SOURCE};

/// The default indexing heap across threads, in MB. Peak memory is about twice this plus
/// the in-flight batches: when a segment is written, its arena is still held while its
/// files are serialized, and the threads tend to write theirs together. 72 MB keeps a
/// 1 GiB object at 214-233 MB of peak RSS with two preparing threads (80 MB: 252-261 MB);
/// 128 MB was no faster and peaked near 300 MB. 64 MB is no lower: its smaller segments
/// merge more often under the merge cap, and the 1 GiB object peaked at 400-500 MB.
pub const DEFAULT_HEAP_MB: usize = 72;

/// The default cap on merged segments, in documents. Merges are what push peak memory
/// past the heap: since `booking_id` and `seat` became columns (terms aggregations, the
/// booking report), merging segments of up to 100,000 documents took a 1 GiB object to
/// 458-469 MB of peak RSS. Segments the writer flushes at the default heap hold about
/// 75,000 events, so at 50,000 only small segments (many short commits) are merged: the
/// same object peaks at 240-251 MB, and ingest is no slower.
pub const DEFAULT_MAX_MERGE_DOCS: usize = 50_000;

/// Tuning of the tantivy writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TantivyConfig {
    /// Indexing threads. Default: the number of CPUs, at most 4.
    pub threads: usize,
    /// Total indexing memory budget across threads, in bytes. Default [`DEFAULT_HEAP_MB`].
    pub heap_bytes: usize,
    /// Segments with more documents than this are not merged further (0: no merges).
    pub max_merge_docs: usize,
}

impl Default for TantivyConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        TantivyConfig {
            threads: cpus.clamp(1, 4),
            heap_bytes: DEFAULT_HEAP_MB << 20,
            max_merge_docs: DEFAULT_MAX_MERGE_DOCS,
        }
    }
}

/// A tantivy index opened for writing (and searching what it has committed): the
/// writer lock is held from [`TantivyBackend::open_for_writing`] to
/// [`Backend::close`]. Searching alone is [`TantivyReader`]'s.
pub struct TantivyBackend {
    /// The reading side: every search goes through it.
    store: TantivyReader,
    writer: IndexWriter,
    config: TantivyConfig,
    /// Ids added since the last commit (not yet visible to the searcher).
    pending_ids: PendingIds,
    /// Source records to write with the next commit.
    pending_sources: Vec<SourceRecord>,
    /// The id sets of the committed segments.
    committed_ids: Vec<SegmentIds>,
}

impl std::fmt::Debug for TantivyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivyBackend").field("path", &self.store.path).finish_non_exhaustive()
    }
}

impl TantivyBackend {
    /// Opens (creating if needed) the index at `path` and takes its writer lock.
    pub fn open_for_writing(path: &Path, config: TantivyConfig) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| tantivy_error(path, e))?;
        let store = TantivyReader::open_index(path, true)?;
        let writer = store
            .index
            .writer_with_num_threads(config.threads.max(1), config.heap_bytes.max(config.threads.max(1) * (16 << 20)))
            .map_err(|e| match e {
                TantivyError::LockFailure(..) => Error::Locked { path: path.display().to_string() },
                other => tantivy_error(path, other),
            })?;
        writer.set_merge_policy(merge_policy(config.max_merge_docs));
        let mut backend = TantivyBackend {
            store,
            writer,
            config,
            pending_ids: PendingIds::default(),
            pending_sources: Vec::new(),
            committed_ids: Vec::new(),
        };
        // Only a writer probes for duplicates: a search does not open the id sets.
        backend.refresh_committed()?;
        Ok(backend)
    }

    /// Opens an existing index for searching only: the handle implements [`Store`] and
    /// nothing that writes.
    pub fn open_for_reading(path: &Path) -> Result<TantivyReader> {
        if !path.join("meta.json").exists() {
            return Err(Error::Tantivy {
                path: path.display().to_string(),
                message: "no index here yet; run `tix-logs ingest` first or pass --index".into(),
            });
        }
        TantivyReader::open_index(path, false)
    }

    /// The key that `event_id:X` queries derive ids with: see
    /// [`TantivyReader::with_event_id_key`].
    pub fn with_event_id_key(mut self, key: EventIdKey) -> Self {
        self.store.event_id_key = Some(key);
        self
    }

    /// The directory of the index.
    pub fn path(&self) -> &Path {
        &self.store.path
    }

    /// The writer configuration in use.
    pub fn config(&self) -> TantivyConfig {
        self.config
    }

    /// Waits for background merges so the index is left tidy. Uncommitted work is lost.
    pub fn wait_for_merges(self) -> Result<()> {
        self.writer.wait_merging_threads().map_err(|e| tantivy_error(&self.store.path, e))
    }

    fn refresh_committed(&mut self) -> Result<()> {
        let searcher = self.store.reader.searcher();
        let mut committed = Vec::new();
        for segment in searcher.segment_readers() {
            committed.push(SegmentIds::open(segment).map_err(|e| tantivy_error(&self.store.path, e))?);
        }
        self.committed_ids = committed;
        Ok(())
    }

    fn is_committed(&self, id: &IdKey) -> bool {
        let value = id.value();
        self.committed_ids.iter().any(|segment| segment.contains(value))
    }
}

impl TantivyReader {
    fn open_index(path: &Path, create: bool) -> Result<Self> {
        let schema = tantivy_schema();
        let directory = MmapDirectory::open(path).map_err(|e| tantivy_error(path, e))?;
        let index = if create {
            // Registered on the writer's index: it writes and merges the id sets.
            Index::builder()
                .schema(schema.schema.clone())
                .register_plugin(Arc::new(IdSetPlugin::new(schema.id_high, schema.id_low)))
                .open_or_create(directory)
        } else {
            Index::open(directory)
        }
        .map_err(|e| match e {
            TantivyError::SchemaError(message) => Error::Tantivy {
                path: path.display().to_string(),
                message: format!(
                    "{message}; the index was made by another version of tix-logs, re-ingest into a new --index"
                ),
            },
            other => tantivy_error(path, other),
        })?;
        if index.schema() != schema.schema {
            return Err(Error::Tantivy {
                path: path.display().to_string(),
                message: "the index was made by another version of tix-logs; re-ingest into a new --index".into(),
            });
        }
        // Not stored in the index: a reader and a writer must both know it, or indexing
        // and query parsing fail on the unknown tokenizer name.
        crate::text::register(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| tantivy_error(path, e))?;
        Ok(TantivyReader { path: path.to_path_buf(), index, schema: Arc::new(schema), reader, event_id_key: None })
    }

    /// The key that `event_id:X` queries derive ids with: the id key of the PII key the
    /// index was ingested with. Without it those queries are refused: an unkeyed
    /// fallback would let anyone confirm a guessed `event_id`.
    pub fn with_event_id_key(mut self, key: EventIdKey) -> Self {
        self.event_id_key = Some(key);
        self
    }

    /// The directory of the index.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Builds the query of a search request: the user's query, events only, time range.
    fn build_query(&self, request: &SearchRequest) -> Result<Box<dyn Query>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            Box::new(TermQuery::new(Term::from_field_text(self.schema.kind, KIND_EVENT), IndexRecordOption::Basic)),
        )];
        let trimmed = request.query.trim();
        if !trimmed.is_empty() && trimmed != "*" {
            clauses.push((Occur::Must, self.parse_user_query(trimmed)?));
        }
        if request.since_ms.is_some() || request.until_ms.is_some() {
            let lower = request
                .since_ms
                .map(|ms| Bound::Included(Term::from_field_date(self.schema.ts, DateTime::from_timestamp_millis(ms))))
                .unwrap_or(Bound::Unbounded);
            let upper = request
                .until_ms
                .map(|ms| Bound::Excluded(Term::from_field_date(self.schema.ts, DateTime::from_timestamp_millis(ms))))
                .unwrap_or(Bound::Unbounded);
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn parse_user_query(&self, query: &str) -> Result<Box<dyn Query>> {
        let query_error = |message: String| Error::Query { query: query.to_string(), message };
        let ast = tantivy::query_grammar::parse_query(query).map_err(|_| {
            query_error(
                "syntax error; quote values with spaces (venue:\"Olympic Hall\") and write ranges as amount:[10 TO 20]"
                    .into(),
            )
        })?;
        let ast = rewrite_ast(ast, self.event_id_key.as_ref()).map_err(query_error)?;
        let message = self.index.schema().get_field(crate::schema::MESSAGE).map_err(|e| query_error(e.to_string()))?;
        let parser = QueryParser::for_index(&self.index, vec![message]);
        parser.build_query_from_user_input_ast(ast).map_err(|e| query_error(e.to_string()))
    }

    fn fetch_hits(&self, searcher: &Searcher, query: &dyn Query, request: &SearchRequest) -> Result<Vec<Hit>> {
        if request.limit == 0 {
            return Ok(vec![]);
        }
        let sort = request
            .sort
            .clone()
            .unwrap_or(crate::backend::SortSpec { field: crate::schema::TS.into(), descending: true });
        let order = if sort.descending { Order::Desc } else { Order::Asc };
        let top = TopDocs::with_limit(request.limit);
        let field = tantivy_field_name(&sort.field);
        let addresses: Vec<DocAddress> = match crate::schema::field_spec(&field).map(|s| s.kind) {
            Some(FieldKind::Time) => collect(searcher, query, top.order_by_fast_field::<DateTime>(field, order)),
            Some(FieldKind::Number) => collect(searcher, query, top.order_by_fast_field::<f64>(field, order)),
            Some(FieldKind::Keyword { fast: true }) => {
                collect(searcher, query, top.order_by_string_fast_field(field, order))
            }
            _ => {
                let sortable: Vec<&str> = crate::schema::FIELDS
                    .iter()
                    .filter(|f| {
                        matches!(f.kind, FieldKind::Time | FieldKind::Number | FieldKind::Keyword { fast: true })
                    })
                    .map(|f| f.name)
                    .collect();
                return Err(Error::Query {
                    query: request.query.clone(),
                    message: format!("cannot sort by {:?}; sortable fields: {}", sort.field, sortable.join(", ")),
                });
            }
        }
        .map_err(|e| tantivy_error(&self.path, e))?;
        let mut hits = Vec::with_capacity(addresses.len());
        for address in addresses {
            let doc: TantivyDocument = searcher.doc(address).map_err(|e| tantivy_error(&self.path, e))?;
            let id = doc
                .get_first(self.schema.id)
                .and_then(|v| v.as_bytes())
                .and_then(IdKey::id_from_stored)
                .unwrap_or_default();
            let source = doc
                .get_first(self.schema.source)
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok())
                .unwrap_or_default();
            hits.push(Hit { id, source });
        }
        Ok(hits)
    }

    fn aggregate(&self, searcher: &Searcher, query: &dyn Query, request: &SearchRequest) -> Result<Map<String, Value>> {
        let mut tantivy_request = Map::new();
        for agg in &request.aggs {
            tantivy_request.insert(agg.spec.clone(), rewrite_agg_field(&agg.request));
        }
        let aggs: Aggregations =
            serde_json::from_value(Value::Object(tantivy_request)).map_err(|e| Error::Aggregation {
                spec: request.aggs.iter().map(|a| a.spec.as_str()).collect::<Vec<_>>().join(" "),
                message: e.to_string(),
            })?;
        let collector = AggregationCollector::from_aggs(
            aggs,
            AggContextParams::new(Default::default(), self.index.tokenizers().clone()),
        );
        let results = searcher.search(query, &collector).map_err(|e| Error::Aggregation {
            spec: request.aggs.iter().map(|a| a.spec.as_str()).collect::<Vec<_>>().join(" "),
            message: e.to_string(),
        })?;
        match serde_json::to_value(&results) {
            Ok(Value::Object(mut map)) => {
                for agg in &request.aggs {
                    if let Some(result) = map.get_mut(&agg.spec) {
                        finish_agg_result(&agg.request, result);
                    }
                }
                Ok(map)
            }
            Ok(_) | Err(_) => Err(Error::Aggregation {
                spec: request.aggs.iter().map(|a| a.spec.as_str()).collect::<Vec<_>>().join(" "),
                message: "the aggregation result did not serialize as an object".into(),
            }),
        }
    }

    fn source_docs(&self, query: &dyn Query) -> Result<Vec<SourceRecord>> {
        let searcher = self.reader.searcher();
        let count = searcher.search(query, &Count).map_err(|e| tantivy_error(&self.path, e))?;
        if count == 0 {
            return Ok(vec![]);
        }
        let addresses = searcher
            .search(query, &TopDocs::with_limit(count).order_by_score())
            .map_err(|e| tantivy_error(&self.path, e))?;
        let mut records = Vec::with_capacity(count);
        for (_, address) in addresses {
            let doc: TantivyDocument = searcher.doc(address).map_err(|e| tantivy_error(&self.path, e))?;
            if let Some(record) = doc
                .get_first(self.schema.source)
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str::<SourceRecord>(s).ok())
            {
                records.push(record);
            }
        }
        Ok(records)
    }
}

/// Merges keep the segment count down for fast queries, but a merge maps its input
/// segments into memory: capping the merged size caps that memory, whatever the input.
fn merge_policy(max_merge_docs: usize) -> Box<dyn tantivy::indexer::MergePolicy> {
    if max_merge_docs == 0 {
        return Box::new(tantivy::indexer::NoMergePolicy);
    }
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    policy.set_max_docs_before_merge(max_merge_docs);
    Box::new(policy)
}

fn collect<K>(
    searcher: &Searcher,
    query: &dyn Query,
    collector: impl tantivy::collector::Collector<Fruit = Vec<(K, DocAddress)>>,
) -> tantivy::Result<Vec<DocAddress>> {
    Ok(searcher.search(query, &collector)?.into_iter().map(|(_, address)| address).collect())
}

impl Backend for TantivyBackend {
    type Doc = TantivyEncoded;
    type Encoder = TantivyEncoder;

    fn encoder(&self) -> TantivyEncoder {
        TantivyEncoder(self.store.schema.clone())
    }

    fn ensure_ready(&mut self) -> Result<()> {
        // The index was created (or opened), and its writer lock taken, by
        // `open_for_writing`.
        Ok(())
    }

    fn index_batch(&mut self, docs: &[IndexDoc]) -> Result<Vec<Outcome>> {
        let mut encoded: Vec<TantivyEncoded> =
            docs.iter().map(|doc| TantivyEncoded::new(&self.store.schema, doc)).collect();
        self.index_encoded(&mut encoded)
    }

    fn index_encoded(&mut self, docs: &mut [TantivyEncoded]) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(docs.len());
        let check_committed = !self.committed_ids.is_empty();
        for doc in docs {
            let TantivyEncoded { id, unseen_source, document, .. } = doc;
            let (id, unseen_source) = (&*id, *unseen_source);
            // Ids derived from the position in a never-seen source are unique by
            // construction; everything else is checked against this run and the index.
            if !unseen_source {
                // Committed first: a pending id was checked against the committed ones
                // when it was added, and `insert` records the id only when it is new.
                if (check_committed && self.is_committed(id)) || !self.pending_ids.insert(id) {
                    outcomes.push(Outcome::Duplicate);
                    continue;
                }
            }
            let document =
                document.take().ok_or_else(|| tantivy_error(&self.store.path, "a document was handed in twice"))?;
            self.writer.add_document(document).map_err(|e| tantivy_error(&self.store.path, e))?;
            outcomes.push(Outcome::Indexed);
        }
        Ok(outcomes)
    }

    fn record_source(&mut self, record: &SourceRecord) -> Result<()> {
        self.pending_sources.retain(|r| r.key != record.key);
        self.pending_sources.push(record.clone());
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let sources = std::mem::take(&mut self.pending_sources);
        let (writer, store) = (&mut self.writer, &self.store);
        for record in &sources {
            writer.delete_term(Term::from_field_text(store.schema.source_key, &record.key));
            let mut doc = TantivyDocument::new();
            doc.add_text(store.schema.kind, KIND_SOURCE);
            doc.add_text(store.schema.source_key, &record.key);
            doc.add_text(store.schema.source, serde_json::to_string(record).unwrap_or_default());
            writer.add_document(doc).map_err(|e| tantivy_error(&store.path, e))?;
        }
        let prepared = writer.prepare_commit().map_err(|e| tantivy_error(&store.path, e))?;
        #[cfg(feature = "failpoints")]
        fail::fail_point!("tantivy.during_commit");
        prepared.commit().map_err(|e| tantivy_error(&self.store.path, e))?;
        self.store.reader.reload().map_err(|e| tantivy_error(&self.store.path, e))?;
        self.pending_ids.clear();
        self.refresh_committed()
    }

    fn close(self) -> Result<()> {
        self.wait_for_merges()
    }
}

impl Store for TantivyBackend {
    fn name(&self) -> &'static str {
        self.store.name()
    }

    /// A record written since the last commit first: the pipeline asks before it commits.
    fn source_record(&self, key: &str) -> Result<Option<SourceRecord>> {
        if let Some(pending) = self.pending_sources.iter().rev().find(|r| r.key == key) {
            return Ok(Some(pending.clone()));
        }
        self.store.source_record(key)
    }

    fn search(&self, request: &SearchRequest) -> Result<SearchResponse> {
        self.store.search(request)
    }

    fn count(&self, request: &SearchRequest) -> Result<u64> {
        self.store.count(request)
    }

    fn sources(&self) -> Result<Vec<SourceRecord>> {
        self.store.sources()
    }

    fn booking_facts(&self, window: &crate::report::ReportWindow) -> Result<Vec<crate::report::BookingFacts>> {
        self.store.booking_facts(window)
    }
}

/// A tantivy index opened for searching only ([`TantivyBackend::open_for_reading`]): it
/// implements [`Store`] and no write, and takes no writer lock, so searches run beside
/// an ingest. A [`TantivyBackend`] searches through one too.
pub struct TantivyReader {
    path: PathBuf,
    index: Index,
    /// Shared with the [`TantivyEncoder`] the pipeline runs on its own threads.
    schema: Arc<TantivySchema>,
    reader: IndexReader,
    /// Answers `event_id:X` (ids are keyed); without it such queries are refused.
    event_id_key: Option<EventIdKey>,
}

impl std::fmt::Debug for TantivyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivyReader").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store for TantivyReader {
    fn name(&self) -> &'static str {
        "tantivy"
    }

    fn source_record(&self, key: &str) -> Result<Option<SourceRecord>> {
        let query = TermQuery::new(Term::from_field_text(self.schema.source_key, key), IndexRecordOption::Basic);
        Ok(self.source_docs(&query)?.into_iter().next())
    }

    fn search(&self, request: &SearchRequest) -> Result<SearchResponse> {
        let searcher = self.reader.searcher();
        let query = self.build_query(request)?;
        let total = searcher.search(&query, &Count).map_err(|e| tantivy_error(&self.path, e))? as u64;
        let hits = self.fetch_hits(&searcher, &query, request)?;
        let aggregations =
            if request.aggs.is_empty() { Map::new() } else { self.aggregate(&searcher, &query, request)? };
        Ok(SearchResponse { total, hits, aggregations })
    }

    fn count(&self, request: &SearchRequest) -> Result<u64> {
        let query = self.build_query(request)?;
        Ok(self.reader.searcher().search(&query, &Count).map_err(|e| tantivy_error(&self.path, e))? as u64)
    }

    fn sources(&self) -> Result<Vec<SourceRecord>> {
        let query = TermQuery::new(Term::from_field_text(self.schema.kind, KIND_SOURCE), IndexRecordOption::Basic);
        let mut records = self.source_docs(&query)?;
        records.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.source.cmp(&b.source)));
        Ok(records)
    }

    fn booking_facts(&self, window: &crate::report::ReportWindow) -> Result<Vec<crate::report::BookingFacts>> {
        report::booking_facts(&self.reader.searcher(), &self.path, window)
    }
}

/// Ids written since the last commit, by their 128-bit value.
#[derive(Default)]
struct PendingIds(FxHashSet<u128>);

impl PendingIds {
    #[cfg(test)]
    fn contains(&self, id: &IdKey) -> bool {
        self.0.contains(&id.value())
    }

    /// Adds `id`; false when it was already there.
    fn insert(&mut self, id: &IdKey) -> bool {
        self.0.insert(id.value())
    }

    fn clear(&mut self) {
        // A fresh set: the old one's table, sized for the last commit's ids, is freed.
        self.0 = FxHashSet::default();
    }
}

fn tantivy_error(path: &Path, error: impl std::fmt::Display) -> Error {
    let mut message = error.to_string();
    // tantivy wraps a full disk's io::Error in several error shapes; the OS's text is the
    // one form they share, except when an indexing thread hit it: then tantivy reports only
    // that the writer was killed, and a probe write tells whether the disk is the cause. A
    // failed commit records none of its sources, so repeating the run loses and doubles
    // nothing.
    const ENOSPC: &str = "No space left on device";
    let full = message.contains(ENOSPC) || (message.contains("writer was killed") && no_space_left(path));
    if full {
        if !message.contains(ENOSPC) {
            message.push_str(&format!(" ({ENOSPC})"));
        }
        message.push_str(
            ". The filesystem holding the index is full: free space on it (or move the index to a larger one) \
             and run the ingest again; the sources of the failed commit are not recorded, so it reads them again",
        );
    }
    Error::Tantivy { path: path.display().to_string(), message }
}

/// Whether the filesystem holding the index directory refuses a small write for lack of
/// space.
fn no_space_left(dir: &Path) -> bool {
    use std::io::Write;
    let probe = dir.join(".tix-space-probe");
    let written = std::fs::File::create(&probe).and_then(|mut file| {
        file.write_all(&[0u8; 64 * 1024])?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    matches!(written, Err(e) if e.kind() == std::io::ErrorKind::StorageFull)
}

#[cfg(test)]
mod tests {
    use super::ids::IdKey;
    use super::PendingIds;

    #[test]
    fn pending_ids_never_confuse_distinct_ids() {
        let mut pending = PendingIds::default();
        let lower = "0123456789abcdef0123456789abcdef";
        assert!(pending.insert(&IdKey::of(lower)) && pending.insert(&IdKey::of("evt-1")));
        assert!(
            !pending.insert(&IdKey::of(lower)) && !pending.insert(&IdKey::of("evt-1")),
            "a second insert reports the id as known"
        );
        assert!(pending.contains(&IdKey::of(lower)) && pending.contains(&IdKey::of("evt-1")));
        assert!(!pending.contains(&IdKey::of(&lower.to_uppercase())), "ids are case-sensitive, as the index is");
        assert!(!pending.contains(&IdKey::of("+123456789abcdef0123456789abcdef")));
        assert!(!pending.contains(&IdKey::of("evt-2")));
        pending.clear();
        assert!(!pending.contains(&IdKey::of(lower)));
    }

    /// Merged segments get the union of their inputs' id sets: after merges, every id
    /// is still found (a duplicate) and still answered by `_id:`, and a new one is not.
    #[test]
    fn merged_segments_keep_every_id_in_their_id_set() {
        use crate::backend::{Backend, SearchRequest, Store};
        use crate::Outcome;

        let dir = tempfile::tempdir().unwrap();
        let config = super::TantivyConfig { threads: 1, heap_bytes: 16 << 20, max_merge_docs: 100_000 };
        let template = crate::conformance::sample_docs().remove(0);
        let doc = |i: u32| crate::IndexDoc {
            id: crate::doc_id::DocId::from_u128(i.into()),
            unseen_source: false,
            ..template.clone()
        };
        let mut backend = super::TantivyBackend::open_for_writing(dir.path(), config).unwrap();
        // One segment per commit; the log merge policy merges 8 of the same size.
        for commit in 0..12u32 {
            let docs: Vec<_> = (commit * 10..commit * 10 + 10).map(doc).collect();
            assert!(backend.index_batch(&docs).unwrap().iter().all(|o| *o == Outcome::Indexed));
            backend.flush().unwrap();
        }
        backend.wait_for_merges().unwrap();

        let mut backend = super::TantivyBackend::open_for_writing(dir.path(), config).unwrap();
        let segments = backend.store.reader.searcher().segment_readers().len();
        assert!(segments < 12, "nothing was merged ({segments} segments)");
        assert_eq!(backend.committed_ids.iter().map(|s| s.len()).sum::<usize>(), 120, "one id per event");
        let again: Vec<_> = (0..121).map(doc).collect();
        let outcomes = backend.index_batch(&again).unwrap();
        assert!(outcomes[..120].iter().all(|o| *o == Outcome::Duplicate), "{outcomes:?}");
        assert_eq!(outcomes[120], Outcome::Indexed);
        backend.flush().unwrap();
        for i in [0u32, 57, 119, 120] {
            let request = SearchRequest { query: format!("_id:{i:032x}"), ..Default::default() };
            assert_eq!(backend.count(&request).unwrap(), 1, "_id of document {i}");
        }
    }
}
