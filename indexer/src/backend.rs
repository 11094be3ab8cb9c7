//! The storage contract, split in two: [`Store`] reads (searches, audits, reports) and
//! [`Backend`] writes (the ingest pipeline, redrive). tantivy and Elasticsearch implement
//! both; a read-only tantivy handle implements only [`Store`]. Also the request and
//! response types the CLI and the ingest pipeline exchange with them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::encode::{DocEncoder, EncodedDoc};
use crate::report::{BookingFacts, ReportWindow};
use crate::Result;

/// One validated, redacted booking event ready to index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDoc {
    /// The stable document id ([`crate::doc_id`]); a store that names documents by text
    /// spells it as 32 lowercase hex digits.
    pub id: crate::doc_id::DocId,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub ts_millis: i64,
    /// The event as it will be stored and returned (canonical `ts` and `type`).
    pub doc: Map<String, Value>,
    /// True when the id cannot already be in the committed index: it derives from the
    /// position in a source that no commit has ever mentioned. Lets a backend skip the
    /// duplicate lookup in the committed index.
    pub unseen_source: bool,
}

/// What happened to one document of a batch. A backend answers one outcome per
/// document, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written (durable once [`Backend::flush`] returns).
    Indexed,
    /// A document with the same id is already indexed.
    Duplicate,
    /// The backend refuses this document for good; it goes to the dead-letter store.
    Rejected { reason: String },
    /// Not written and not refused (e.g. retries exhausted): the source is not complete
    /// and must be retried later.
    Failed { reason: String },
}

/// Where a source stands, as recorded in the backend beside its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    /// Some of its documents may be committed; reading it did not finish yet.
    InProgress,
    /// Every record is accounted for (indexed, duplicate or dead-lettered).
    Completed,
    /// Reading stopped early; the records read before the failure are indexed.
    Failed,
}

/// The per-source audit and checkpoint record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Stable checkpoint key of the source identity.
    pub key: String,
    /// Human-readable source (`/path` or `s3://bucket/key?versionId=...`).
    pub source: String,
    pub status: SourceStatus,
    pub records: u64,
    /// Records that passed validation (indexed, duplicates, or refused by the backend);
    /// `records - valid` were rejected by tix-logs itself. Absent in records written
    /// before it existed.
    #[serde(default)]
    pub valid: u64,
    pub indexed: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub failure: Option<String>,
    /// Earliest and latest event time seen (RFC 3339), if any record was valid.
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    /// When this record was written (RFC 3339).
    pub updated_at: String,
    /// Where the next read of an unfinished source continues; `None` from the start.
    /// Absent in completed records and in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumePoint>,
}

/// A point a later read of a source continues from, fast-forwarding over what came
/// before: the source's first `records` records are final (indexed, duplicates or
/// dead-lettered), committed with the checkpoint that holds this point, and their
/// dead-letter entries are published. The counters are those of these records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    pub records: u64,
    pub valid: u64,
    pub indexed: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Earliest and latest event time of these records (epoch milliseconds).
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
}

/// Sort order for hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortSpec {
    pub field: String,
    pub descending: bool,
}

impl SortSpec {
    /// Parses `FIELD` (ascending) or `-FIELD` (descending).
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix('-') {
            Some(field) => SortSpec { field: field.to_string(), descending: true },
            None => SortSpec { field: text.trim_start_matches('+').to_string(), descending: false },
        }
    }
}

/// A search as the CLI asks it, the same for every backend.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Lucene-style query; empty means all events.
    pub query: String,
    /// Inclusive lower bound on event time (epoch ms).
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on event time (epoch ms).
    pub until_ms: Option<i64>,
    pub limit: usize,
    /// `None` sorts by event time, newest first.
    pub sort: Option<SortSpec>,
    pub aggs: Vec<AggSpec>,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest { query: String::new(), since_ms: None, until_ms: None, limit: 20, sort: None, aggs: vec![] }
    }
}

/// One hit: the id and the stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(flatten)]
    pub source: Map<String, Value>,
}

/// What a search returns, shaped as `tix-logs search --format json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResponse {
    pub total: u64,
    pub hits: Vec<Hit>,
    /// Keyed by the aggregation's spec text, each shaped as Elasticsearch returns it.
    pub aggregations: Map<String, Value>,
}

/// The reading side of a store: what searches, audits, reports and the reconcile survey
/// need. Object safe: read paths take `&dyn Store`, so a read-only handle (for example
/// [`TantivyReader`](crate::tantivy::TantivyReader)) offers no write to refuse at run time.
/// Implementations are synchronous; an async client owns its runtime.
pub trait Store: Send {
    /// Short name for messages (`tantivy`, `elasticsearch`).
    fn name(&self) -> &'static str;
    /// The recorded state of a source, if any commit mentioned it.
    fn source_record(&self, key: &str) -> Result<Option<SourceRecord>>;
    /// Runs a search with hits and aggregations.
    fn search(&self, request: &SearchRequest) -> Result<SearchResponse>;
    /// Counts matching events.
    fn count(&self, request: &SearchRequest) -> Result<u64>;
    /// Every recorded source, newest first.
    fn sources(&self) -> Result<Vec<SourceRecord>>;
    /// What the store knows of every booking the report over `window` needs: at least
    /// every booking [`ReportWindow::admits`] (a backend may return more; the report
    /// filters), each booking once, in any order. Gathered by the store (aggregations,
    /// columns), never by fetching every event.
    /// Stores without a report (test doubles) answer an error.
    fn booking_facts(&self, _window: &ReportWindow) -> Result<Vec<BookingFacts>> {
        Err(crate::Error::Unsupported { backend: self.name(), operation: "build the booking report" })
    }
}

/// The writing side: a store that takes documents and checkpoints. Write paths (the
/// ingest pipeline, the trigger handler, redrive) are generic over it, so each backend's
/// encoded document ([`Backend::Doc`]) is a concrete type all the way from the preparing
/// threads to the writer: no per-document dispatch.
///
/// The compiler keeps each document with its backend, and reading handles away from writes:
///
/// ```
/// fn json_backend_takes_its_own_documents(
///     es: &mut indexer::ElasticsearchBackend,
///     docs: &mut [<indexer::ElasticsearchBackend as indexer::Backend>::Doc],
/// ) {
///     let _ = indexer::Backend::index_encoded(es, docs);
/// }
/// fn reading_handle_reads(reader: &indexer::TantivyReader) {
///     let _ = indexer::Store::sources(reader);
/// }
/// ```
///
/// ```compile_fail,E0308
/// fn json_backend_takes_tantivy_documents(
///     es: &mut indexer::ElasticsearchBackend,
///     docs: &mut [<indexer::TantivyBackend as indexer::Backend>::Doc],
/// ) {
///     let _ = indexer::Backend::index_encoded(es, docs);
/// }
/// ```
///
/// ```compile_fail,E0277
/// fn reading_handle_writes(reader: &mut indexer::TantivyReader) {
///     let _ = indexer::Backend::flush(reader);
/// }
/// ```
pub trait Backend: Store {
    /// A document ready for [`Backend::index_encoded`]. JSON backends use [`IndexDoc`]
    /// itself.
    type Doc: EncodedDoc;
    /// Makes [`Backend::Doc`]s; runs on the pipeline's preparing threads, away from the
    /// backend. JSON backends use [`JsonEncoder`](crate::encode::JsonEncoder).
    type Encoder: DocEncoder<Doc = Self::Doc>;
    /// The encoder for this backend's documents (cheap to clone, shared by threads).
    fn encoder(&self) -> Self::Encoder;
    /// Creates the index (or template) if needed. Idempotent.
    fn ensure_ready(&mut self) -> Result<()>;
    /// Writes a batch; one outcome per document, in order.
    fn index_batch(&mut self, docs: &[IndexDoc]) -> Result<Vec<Outcome>>;
    /// [`Backend::index_batch`] for documents made by this backend's
    /// [`Backend::encoder`]. A backend may take the documents it writes out of `docs`;
    /// those it answers [`Outcome::Rejected`] stay, for the dead-letter store
    /// ([`EncodedDoc::source_json`]). A JSON backend hands `docs` to `index_batch`.
    fn index_encoded(&mut self, docs: &mut [Self::Doc]) -> Result<Vec<Outcome>>;
    /// Records a source's state; made durable by the next [`Backend::flush`], in the
    /// same commit as the documents written before it.
    fn record_source(&mut self, record: &SourceRecord) -> Result<()>;
    /// Makes everything written so far durable and visible to searches.
    fn flush(&mut self) -> Result<()>;
    /// Sets (or clears) the instant by which every request of this backend, with its
    /// retries and backoffs, must be over: the Lambda's remaining time less its margin.
    /// Writes still unfinished then are answered [`Outcome::Failed`] (their source is
    /// redelivered), never left hanging. Backends without network calls ignore it.
    fn set_deadline(&mut self, _deadline: Option<std::time::Instant>) {}
    /// Releases the backend cleanly (waits for background work). Uncommitted writes are
    /// discarded: call [`Backend::flush`] first.
    fn close(self) -> Result<()>
    where
        Self: Sized,
    {
        Ok(())
    }
}

/// One `--agg SPEC`: the text the user wrote and the Elasticsearch-shaped request.
/// Sub-aggregations sit under the request's `aggs` key, each keyed by its own segment
/// of the spec text (see [`AggSpec::parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    pub spec: String,
    pub request: Value,
}

/// Default number of buckets of a terms aggregation.
pub const DEFAULT_TERMS_SIZE: u64 = 10;

/// The kinds that hold buckets, and so may hold sub-aggregations.
const BUCKET_KINDS: &[&str] = &["terms", "date_histogram"];

const SPEC_EXAMPLES: &str =
    "as in terms:venue:10:min=2>date_histogram:ts:1d or terms:type>stats:amount,cardinality:booking_id";

impl AggSpec {
    /// Parses one `--agg` spec. One aggregation is
    ///
    /// - `terms:FIELD[:SIZE][:min=N]`: the SIZE (default 10) most frequent values;
    ///   `min=N` drops buckets of fewer than N events (`min_doc_count`, N ≥ 1);
    /// - `date_histogram:FIELD:INTERVAL[:min=N]`: fixed intervals `30s`, `1m`, `1h`, `1d`;
    /// - `stats:FIELD`: count, min, max, avg and sum of a number;
    /// - `cardinality:FIELD`: the number of distinct values (approximate on large data,
    ///   as in Elasticsearch).
    ///
    /// `>` nests: everything right of it runs inside each bucket of the terms or
    /// date_histogram on its left. `,` lists sibling aggregations of the last level.
    /// Only the last level may have siblings, and only bucket kinds may have children:
    ///
    /// - `terms:venue>date_histogram:ts:1d`: per venue, per day;
    /// - `terms:type:5>stats:amount,cardinality:booking_id`: per type, amount stats and
    ///   distinct bookings;
    /// - `terms:venue:10:min=2>terms:type>stats:amount`: three levels.
    ///
    /// The result of the whole spec is keyed by the spec text; each sub-aggregation in a
    /// bucket is keyed by its own segment (`date_histogram:ts:1d`, `stats:amount`).
    pub fn parse(spec: &str) -> Result<Self> {
        let err = |message: String| crate::Error::Aggregation { spec: spec.to_string(), message };
        let levels: Vec<&str> = spec.split('>').collect();
        let mut requests: Vec<Vec<(String, Value)>> = Vec::with_capacity(levels.len());
        for (depth, level) in levels.iter().enumerate() {
            let last = depth + 1 == levels.len();
            let segments: Vec<&str> = level.split(',').collect();
            if segments.len() > 1 && !last {
                return Err(err(format!(
                    "only the last level may list siblings with ',' (found {level:?} before '>'), {SPEC_EXAMPLES}"
                )));
            }
            if segments.len() > 1 && depth == 0 {
                return Err(err(format!(
                    "',' lists sub-aggregations after '>'; for separate aggregations repeat --agg, {SPEC_EXAMPLES}"
                )));
            }
            let mut parsed = Vec::with_capacity(segments.len());
            for segment in segments {
                let request = parse_segment(segment).map_err(|message| err(message.to_string()))?;
                if parsed.iter().any(|(name, _)| name == segment) {
                    return Err(err(format!("{segment:?} is listed twice at the same level")));
                }
                parsed.push((segment.to_string(), request));
            }
            if !last {
                let kind = kind_of(&parsed[0].1);
                if !BUCKET_KINDS.contains(&kind) {
                    return Err(err(format!(
                        "{kind} has no buckets to nest into; only terms and date_histogram may come before '>', {SPEC_EXAMPLES}"
                    )));
                }
            }
            requests.push(parsed);
        }
        // Folds from the innermost level outwards: each level's one aggregation gets the
        // level below as its `aggs`.
        let mut children: Option<Map<String, Value>> = None;
        for level in requests.into_iter().rev() {
            let mut here = Map::new();
            for (name, mut request) in level {
                if let (Some(sub), Some(object)) = (children.take(), request.as_object_mut()) {
                    object.insert("aggs".into(), Value::Object(sub));
                }
                here.insert(name, request);
            }
            children = Some(here);
        }
        let request = children.and_then(|c| c.into_iter().next()).map(|(_, r)| r).unwrap_or(Value::Null);
        Ok(AggSpec { spec: spec.to_string(), request })
    }

    /// The aggregation kind (`terms`, `date_histogram`, `stats`, `cardinality`).
    pub fn kind(&self) -> &str {
        kind_of(&self.request)
    }

    /// The sub-aggregations run in each bucket, keyed (in [`AggSpec::spec`]) as their
    /// results are in a bucket; empty for one-level specs.
    pub fn sub_aggs(&self) -> Vec<AggSpec> {
        match self.request.get("aggs") {
            Some(Value::Object(aggs)) => {
                aggs.iter().map(|(spec, request)| AggSpec { spec: spec.clone(), request: request.clone() }).collect()
            }
            _ => Vec::new(),
        }
    }
}

fn kind_of(request: &Value) -> &str {
    request.as_object().and_then(|m| m.keys().find(|k| *k != "aggs")).map(String::as_str).unwrap_or("")
}

/// One aggregation of a spec, without `>` or `,`; the error says what is wrong.
fn parse_segment(segment: &str) -> std::result::Result<Value, String> {
    let parts: Vec<&str> = segment.split(':').collect();
    // Options (`key=value`) come after the positional parts.
    let first_option = parts.iter().position(|p| p.contains('=')).unwrap_or(parts.len());
    let (positional, options) = parts.split_at(first_option);
    if let Some(bad) = options.iter().find(|o| !o.contains('=')) {
        return Err(format!(
            "{bad:?} follows an option in {segment:?}; options (key=value) come last, as in terms:venue:10:min=2"
        ));
    }
    if positional.get(1).is_some_and(|f| f.is_empty()) {
        return Err(format!("FIELD is empty in {segment:?}, as in terms:venue"));
    }
    let mut request = match positional {
        ["terms", field] => serde_json::json!({"terms": {"field": field, "size": DEFAULT_TERMS_SIZE}}),
        ["terms", field, size] => {
            let size: u64 =
                size.parse().map_err(|_| format!("SIZE {size:?} must be a positive integer, as in terms:venue:20"))?;
            if size == 0 {
                return Err("SIZE must be at least 1, as in terms:venue:20".into());
            }
            serde_json::json!({"terms": {"field": field, "size": size}})
        }
        ["date_histogram", field, interval] => {
            if !valid_interval(interval) {
                return Err(format!(
                    "INTERVAL {interval:?} must be a number and a unit of s, m, h or d, as in date_histogram:ts:1h"
                ));
            }
            serde_json::json!({"date_histogram": {"field": field, "fixed_interval": interval, "min_doc_count": 1}})
        }
        ["stats", field] => serde_json::json!({"stats": {"field": field}}),
        ["cardinality", field] => serde_json::json!({"cardinality": {"field": field}}),
        _ => {
            return Err(format!(
                "{segment:?} is not an aggregation; expected terms:FIELD[:SIZE][:min=N], \
                 date_histogram:FIELD:INTERVAL[:min=N], stats:FIELD or cardinality:FIELD, {SPEC_EXAMPLES}"
            ))
        }
    };
    let kind = kind_of(&request).to_string();
    for option in options {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        match key {
            "min" if BUCKET_KINDS.contains(&kind.as_str()) => {
                let min: u64 = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("min={value} must be an integer of at least 1, as in terms:venue:10:min=2")
                })?;
                request[kind.as_str()]["min_doc_count"] = serde_json::json!(min);
            }
            _ => {
                return Err(format!(
                "unknown option {option:?} for {kind}; terms and date_histogram take min=N, as in terms:venue:10:min=2"
            ))
            }
        }
    }
    Ok(request)
}

fn valid_interval(interval: &str) -> bool {
    fixed_interval_ms(interval).is_some()
}

/// The length of a `date_histogram` fixed interval (`"90s"`, `"1h"`, `"1d"`) in
/// milliseconds: a positive number and a unit of s, m, h or d; `None` for anything else.
pub fn fixed_interval_ms(interval: &str) -> Option<i64> {
    // Splits at the last character's boundary: a byte offset could fall inside a
    // multi-byte character and panic.
    let unit_at = interval.char_indices().last().map_or(0, |(at, _)| at);
    let (number, unit) = interval.split_at(unit_at);
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.parse::<u32>().ok().filter(|n| *n > 0).map(|n| i64::from(n) * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agg_specs_become_elasticsearch_shaped_requests() {
        let table = [
            ("terms:type", r#"{"terms":{"field":"type","size":10}}"#),
            ("terms:venue:3", r#"{"terms":{"field":"venue","size":3}}"#),
            ("date_histogram:ts:1h", r#"{"date_histogram":{"field":"ts","fixed_interval":"1h","min_doc_count":1}}"#),
            ("stats:amount", r#"{"stats":{"field":"amount"}}"#),
        ];
        for (spec, expected) in table {
            let parsed = AggSpec::parse(spec).unwrap();
            assert_eq!(parsed.request.to_string(), expected, "{spec}");
        }
    }

    #[test]
    fn malformed_agg_specs_are_refused_with_a_hint() {
        for spec in [
            "terms",
            "terms:type:x",
            "terms:type:0",
            "date_histogram:ts",
            "date_histogram:ts:1w",
            "avg:amount",
            "stats:",
            "date_histogram:ts:1é",
            "terms:venue>",
            "stats:amount>terms:type",
            "cardinality:booking_id>stats:amount",
            "terms:venue,terms:type>stats:amount",
            "terms:venue,terms:type",
            "terms:venue>stats:amount,stats:amount",
            "terms:venue:min=0",
            "terms:venue:min=x",
            "terms:venue:size=3",
            "stats:amount:min=2",
            "terms:venue:min=2:5",
            "cardinality",
            "cardinality:",
        ] {
            let err = AggSpec::parse(spec).unwrap_err().to_string();
            assert!(err.contains(spec), "{spec}: {err}");
        }
    }

    #[test]
    fn nested_specs_put_sub_aggregations_under_aggs_keyed_by_their_segment() {
        let parsed = AggSpec::parse("terms:venue:5:min=2>date_histogram:ts:1d").unwrap();
        assert_eq!(
            parsed.request,
            serde_json::json!({"terms": {"field": "venue", "size": 5, "min_doc_count": 2}, "aggs": {
                "date_histogram:ts:1d": {"date_histogram": {"field": "ts", "fixed_interval": "1d", "min_doc_count": 1}}
            }})
        );
        assert_eq!(parsed.kind(), "terms");
        let subs = parsed.sub_aggs();
        assert_eq!(subs.len(), 1);
        assert_eq!((subs[0].spec.as_str(), subs[0].kind()), ("date_histogram:ts:1d", "date_histogram"));

        let siblings = AggSpec::parse("terms:type>stats:amount,cardinality:booking_id").unwrap();
        let names: Vec<String> = siblings.sub_aggs().into_iter().map(|a| a.spec).collect();
        assert_eq!(names, ["stats:amount", "cardinality:booking_id"]);
        assert_eq!(
            siblings.request["aggs"]["cardinality:booking_id"],
            serde_json::json!({"cardinality": {"field": "booking_id"}})
        );

        let three = AggSpec::parse("terms:venue>terms:type:3>stats:amount").unwrap();
        assert_eq!(three.request["aggs"]["terms:type:3"]["aggs"]["stats:amount"]["stats"]["field"], "amount");
        assert!(three.sub_aggs()[0].sub_aggs()[0].sub_aggs().is_empty());

        assert_eq!(
            AggSpec::parse("cardinality:customer_id").unwrap().request.to_string(),
            r#"{"cardinality":{"field":"customer_id"}}"#
        );
        assert!(AggSpec::parse("terms:venue").unwrap().sub_aggs().is_empty());
    }

    #[test]
    fn agg_errors_show_a_valid_example() {
        for spec in ["avg:amount", "stats:amount>terms:type", "terms:a,terms:b>stats:amount", "terms:venue:min=0"] {
            let err = AggSpec::parse(spec).unwrap_err().to_string();
            assert!(err.contains("as in terms:"), "{spec}: {err}");
        }
    }

    #[test]
    fn sort_specs_read_a_leading_minus_as_descending() {
        assert_eq!(SortSpec::parse("-amount"), SortSpec { field: "amount".into(), descending: true });
        assert_eq!(SortSpec::parse("ts"), SortSpec { field: "ts".into(), descending: false });
    }
}
