//! The `Backend` contract every store implements (tantivy, Elasticsearch), and the
//! request/response types the CLI and the ingest pipeline exchange with it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::report::{BookingFacts, ReportWindow};
use crate::encode::{DocEncoder, EncodedDoc};
use crate::Result;

/// One validated, redacted booking event ready to index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDoc {
    /// The stable document id (32 hex characters).
    pub id: String,
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

/// The storage contract. Implementations are synchronous; an async client owns its
/// runtime.
pub trait Backend: Send {
    /// Short name for messages (`tantivy`, `elasticsearch`).
    fn name(&self) -> &'static str;
    /// Creates the index (or template) if needed. Idempotent.
    fn ensure_ready(&mut self) -> Result<()>;
    /// The recorded state of a source, if any commit mentioned it.
    fn source_record(&self, key: &str) -> Result<Option<SourceRecord>>;
    /// Writes a batch; one outcome per document, in order.
    fn index_batch(&mut self, docs: &[IndexDoc]) -> Result<Vec<Outcome>>;
    /// How documents for [`Backend::index_encoded`] are prepared. The default keeps
    /// them as JSON.
    fn encoder(&self) -> DocEncoder {
        DocEncoder::Json
    }
    /// [`Backend::index_batch`] for documents made by this backend's
    /// [`Backend::encoder`]. A backend may take the documents it writes out of `docs`;
    /// those it answers [`Outcome::Rejected`] stay, for the dead-letter store. The
    /// default takes JSON documents to `index_batch`.
    fn index_encoded(&mut self, docs: &mut [EncodedDoc]) -> Result<Vec<Outcome>> {
        let json = docs.iter_mut().map(EncodedDoc::take_json).collect::<Result<Vec<_>>>()?;
        let outcomes = self.index_batch(&json);
        for (slot, doc) in docs.iter_mut().zip(json) {
            *slot = EncodedDoc::Json(doc);
        }
        outcomes
    }
    /// Records a source's state; made durable by the next [`Backend::flush`], in the
    /// same commit as the documents written before it.
    fn record_source(&mut self, record: &SourceRecord) -> Result<()>;
    /// Makes everything written so far durable and visible to searches.
    fn flush(&mut self) -> Result<()>;
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
    /// Backends without a report (test doubles) answer an error.
    fn booking_facts(&self, _window: &ReportWindow) -> Result<Vec<BookingFacts>> {
        Err(crate::Error::Other(format!("the {} backend cannot build the booking report", self.name())))
    }
    /// Sets (or clears) the instant by which every request of this backend, with its
    /// retries and backoffs, must be over: the Lambda's remaining time less its margin.
    /// Writes still unfinished then are answered [`Outcome::Failed`] (their source is
    /// redelivered), never left hanging. Backends without network calls ignore it.
    fn set_deadline(&mut self, _deadline: Option<std::time::Instant>) {}
    /// Releases the backend cleanly (waits for background work). Uncommitted writes are
    /// discarded: call [`Backend::flush`] first.
    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// One `--agg SPEC`: the text the user wrote and the Elasticsearch-shaped request.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    pub spec: String,
    pub request: Value,
}

/// Default number of buckets of a terms aggregation.
pub const DEFAULT_TERMS_SIZE: u64 = 10;

impl AggSpec {
    /// Parses `terms:FIELD[:SIZE]`, `date_histogram:FIELD:INTERVAL` (`30s`, `1m`, `1h`,
    /// `1d`) or `stats:FIELD`.
    pub fn parse(spec: &str) -> Result<Self> {
        let err = |message: &str| crate::Error::Aggregation { spec: spec.to_string(), message: message.to_string() };
        let parts: Vec<&str> = spec.split(':').collect();
        let request = match parts.as_slice() {
            ["terms", field] => serde_json::json!({"terms": {"field": field, "size": DEFAULT_TERMS_SIZE}}),
            ["terms", field, size] => {
                let size: u64 =
                    size.parse().map_err(|_| err("SIZE must be a positive integer, as in terms:venue:20"))?;
                if size == 0 {
                    return Err(err("SIZE must be at least 1"));
                }
                serde_json::json!({"terms": {"field": field, "size": size}})
            }
            ["date_histogram", field, interval] => {
                if !valid_interval(interval) {
                    return Err(err("INTERVAL must be a number and a unit of s, m, h or d, as in 1h"));
                }
                serde_json::json!({"date_histogram": {"field": field, "fixed_interval": interval, "min_doc_count": 1}})
            }
            ["stats", field] => serde_json::json!({"stats": {"field": field}}),
            _ => return Err(err("expected terms:FIELD[:SIZE], date_histogram:FIELD:INTERVAL or stats:FIELD")),
        };
        if parts.get(1).is_some_and(|f| f.is_empty()) {
            return Err(err("FIELD is empty"));
        }
        Ok(AggSpec { spec: spec.to_string(), request })
    }

    /// The aggregation kind (`terms`, `date_histogram`, `stats`).
    pub fn kind(&self) -> &str {
        self.request.as_object().and_then(|m| m.keys().next()).map(String::as_str).unwrap_or("")
    }
}

fn valid_interval(interval: &str) -> bool {
    let unit_at = interval.len().saturating_sub(1);
    let (number, unit) = interval.split_at(unit_at);
    matches!(unit, "s" | "m" | "h" | "d") && number.parse::<u32>().is_ok_and(|n| n > 0)
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
        ] {
            let err = AggSpec::parse(spec).unwrap_err().to_string();
            assert!(err.contains(spec), "{spec}: {err}");
        }
    }

    #[test]
    fn sort_specs_read_a_leading_minus_as_descending() {
        assert_eq!(SortSpec::parse("-amount"), SortSpec { field: "amount".into(), descending: true });
        assert_eq!(SortSpec::parse("ts"), SortSpec { field: "ts".into(), descending: false });
    }
}
