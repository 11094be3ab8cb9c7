//! The `_bulk` protocol without I/O: encoding request bodies, classifying responses by
//! position, and the per-request state machine that decides what to resend.
//!
//! Every document sent ends as exactly one [`Outcome`]: 200/201 indexed, 409 duplicate,
//! 400/404 rejected with Elasticsearch's reason; 429, 5xx, timeouts, connection errors,
//! malformed or misaligned responses are retried (only the affected items) until the
//! retry budget runs out, and then reported as failed (not lost, not rejected). HTTP 413
//! splits the request in halves; a single document still too large is rejected.
//! 401/403 stop everything as [`crate::Error::Auth`]: a credentials problem is never
//! counted against the data. A 403 `cluster_block_exception` (an index or cluster
//! write block) stops everything too, as [`crate::Error::Blocked`], so the operator is
//! sent to the block rather than to the credentials; its 429 flavour (the disk
//! flood-stage watermark) is retried like any 429, since the cluster lifts it by itself.
//! Whatever stops a job, for one item or the whole request, is one [`Stop`].

use std::collections::VecDeque;

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::mapping::push_daily_index;
use crate::backend::{IndexDoc, Outcome};
use crate::retry::{is_retryable_status, RequestKind};
use crate::schema::{ES_TIMESTAMP, TS};

/// The bulk action used for every item of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Events: `create` fails with 409 when the id exists, which is the dedupe.
    Create,
    /// Checkpoint records: the latest state replaces the previous one.
    Index,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Index => "index",
        }
    }
}

/// One item of an encoded request: where its two lines sit in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem {
    /// Position of the document in the caller's slice.
    pub doc: usize,
    pub id: String,
    /// Byte range of the action line and the source line in [`EncodedBatch::body`].
    pub start: usize,
    pub end: usize,
}

/// An encoded `_bulk` body and its items, in order.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    pub action: Action,
    pub body: Bytes,
    pub items: Vec<BulkItem>,
}

impl EncodedBatch {
    /// The body for a subset of the items (in order). Contiguous runs (the whole batch,
    /// or a half after a 413 split) are zero-copy slices; a retry of scattered items
    /// copies just their lines, with no re-encoding.
    pub fn body_for(&self, items: &[usize]) -> Bytes {
        let contiguous = items.windows(2).all(|w| w[1] == w[0] + 1);
        match (items.first(), items.last()) {
            (Some(&first), Some(&last)) if contiguous => self.body.slice(self.items[first].start..self.items[last].end),
            _ => {
                let size = items.iter().map(|&i| self.items[i].end - self.items[i].start).sum();
                let mut out = Vec::with_capacity(size);
                for &i in items {
                    out.extend_from_slice(&self.body[self.items[i].start..self.items[i].end]);
                }
                Bytes::from(out)
            }
        }
    }
}

/// Cuts documents into `_bulk` bodies bounded by bytes and count.
#[derive(Debug, Clone)]
pub struct BulkEncoder {
    pub prefix: String,
    pub max_bytes: usize,
    pub max_docs: usize,
}

impl BulkEncoder {
    /// Encodes documents from `from` until a bound is reached; returns the batch and the
    /// position of the next document. A document larger than `max_bytes` alone still
    /// makes a batch of one (the cluster decides, with 413, whether it is too large).
    pub fn encode_next(&self, docs: &[IndexDoc], from: usize) -> (EncodedBatch, usize) {
        let remaining = docs.len().saturating_sub(from).min(self.max_docs.max(1));
        let mut body = Vec::with_capacity(self.max_bytes.min(remaining * 1024).max(1024));
        let mut items = Vec::with_capacity(remaining);
        let mut index_name = String::new();
        let mut index_day = i64::MIN;
        let mut next = from;
        while next < docs.len() && items.len() < self.max_docs.max(1) {
            let doc = &docs[next];
            let day = doc.ts_millis.div_euclid(86_400_000);
            if day != index_day {
                index_name.clear();
                push_daily_index(&mut index_name, &self.prefix, doc.ts_millis);
                index_day = day;
            }
            let start = body.len();
            // `_id` is the one place Elasticsearch sees an id as text.
            let id = doc.id.to_hex();
            write_action(&mut body, Action::Create, &index_name, &id);
            write_event_source(&mut body, doc);
            if body.len() > self.max_bytes && !items.is_empty() {
                body.truncate(start);
                break;
            }
            items.push(BulkItem { doc: next, id, start, end: body.len() });
            next += 1;
        }
        (EncodedBatch { action: Action::Create, body: Bytes::from(body), items }, next)
    }
}

/// Encodes documents with an explicit index and action (checkpoint records).
pub fn encode_with(action: Action, entries: &[(String, String, Value)]) -> EncodedBatch {
    let mut body = Vec::new();
    let mut items = Vec::with_capacity(entries.len());
    for (doc, (index, id, source)) in entries.iter().enumerate() {
        let start = body.len();
        write_action(&mut body, action, index, id);
        serde_json::to_writer(&mut body, source).expect("a JSON value always serializes");
        body.push(b'\n');
        items.push(BulkItem { doc, id: id.clone(), start, end: body.len() });
    }
    EncodedBatch { action, body: Bytes::from(body), items }
}

/// `{"create":{"_index":"...","_id":"..."}}\n`
pub fn write_action(out: &mut Vec<u8>, action: Action, index: &str, id: &str) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(action.name().as_bytes());
    out.extend_from_slice(b"\":{\"_index\":");
    serde_json::to_writer(&mut *out, index).expect("a string always serializes");
    out.extend_from_slice(b",\"_id\":");
    serde_json::to_writer(&mut *out, id).expect("a string always serializes");
    out.extend_from_slice(b"}}\n");
}

/// The event as stored in Elasticsearch, followed by a newline: `ts` becomes
/// `@timestamp` in the same position (`ts` is an alias there, and Elasticsearch refuses
/// documents that write to an alias).
pub fn write_event_source(out: &mut Vec<u8>, doc: &IndexDoc) {
    serde_json::to_writer(&mut *out, &EsSource(doc)).expect("a JSON map always serializes");
    out.push(b'\n');
}

struct EsSource<'a>(&'a IndexDoc);

impl Serialize for EsSource<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let doc = &self.0.doc;
        let has_ts = doc.contains_key(TS);
        let mut map = serializer.serialize_map(Some(doc.len() + usize::from(!has_ts)))?;
        if !has_ts {
            map.serialize_entry(ES_TIMESTAMP, &format_ts(self.0.ts_millis))?;
        }
        for (key, value) in doc {
            match key.as_str() {
                TS => match value {
                    Value::String(_) => map.serialize_entry(ES_TIMESTAMP, value)?,
                    _ => map.serialize_entry(ES_TIMESTAMP, &format_ts(self.0.ts_millis))?,
                },
                // The validator folds time aliases into `ts`; a stray copy would be a
                // duplicate key, which Elasticsearch refuses.
                ES_TIMESTAMP => {}
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

fn format_ts(ms: i64) -> String {
    crate::civil::rfc3339_millis(ms)
}

/// The stored event as the backend returns it: `@timestamp` back to `ts`, in place.
pub fn event_from_source(source: Map<String, Value>) -> Map<String, Value> {
    if !source.contains_key(ES_TIMESTAMP) || source.contains_key(TS) {
        return source;
    }
    source.into_iter().map(|(k, v)| if k == ES_TIMESTAMP { (TS.to_string(), v) } else { (k, v) }).collect()
}

/// What one item of a bulk response means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemClass {
    Indexed,
    Duplicate,
    /// Refused for good (400/404), with Elasticsearch's error type and reason.
    Rejected(String),
    /// Worth sending again (429, 5xx, anything unexpected).
    Retry(String),
    /// 404 `index_not_found_exception`: the cluster does not create indices on write
    /// (`action.auto_create_index`). The client creates the index and sends again.
    IndexMissing {
        index: String,
        reason: String,
    },
    /// Refused for a reason outside the document ([`Stop::Auth`], [`Stop::Blocked`],
    /// [`Stop::Cluster`]): the run stops.
    Stop(Stop),
}

/// What a whole `_bulk` answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The response lines up with the request: one class per item sent.
    Items(Vec<ItemClass>),
    /// Nothing can be trusted (429/5xx, connection error, timeout, malformed or
    /// misaligned body): send the same items again.
    RetryAll(String),
    /// 413: the body is too large for the cluster.
    Split,
    /// 401/403 ([`Stop::Auth`]), or a 403 `cluster_block_exception` ([`Stop::Blocked`]):
    /// the cluster refuses the request as a whole.
    Stop(Stop),
    /// An answer that no retry can change (e.g. 400 for the request as a whole): the
    /// items fail, so their source is retried later rather than dead-lettered.
    FailAll(String),
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<ResponseItem>,
}

#[derive(Deserialize)]
enum ResponseItem {
    #[serde(rename = "create")]
    Create(ItemResult),
    #[serde(rename = "index")]
    Index(ItemResult),
    // Never sent by this client; present only to name them as misaligned.
    #[serde(rename = "update")]
    Update(serde::de::IgnoredAny),
    #[serde(rename = "delete")]
    Delete(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default, rename = "_id")]
    id: Option<String>,
    #[serde(default, rename = "_index")]
    index: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

/// `filter_path` for `_bulk`: only what classification reads, which makes responses
/// several times smaller (and faster to parse) than the full item metadata.
pub const BULK_FILTER_PATH: &str = "items.*._id,items.*.status,items.*.error,error,status";

/// Classifies a `_bulk` answer for the items sent (`ids`, in order, all with `action`).
pub fn classify_response(status: u16, body: &[u8], action: Action, ids: &[&str]) -> Verdict {
    match status {
        200 => classify_items(body, action, ids),
        413 => Verdict::Split,
        401 | 403 => Verdict::Stop(Stop::refusal(status, body)),
        _ if is_retryable_status(status, RequestKind::Write) => {
            Verdict::RetryAll(format!("HTTP {status}: {}", error_reason(body)))
        }
        _ => Verdict::FailAll(format!("bulk request refused with HTTP {status}: {}", error_reason(body))),
    }
}

fn classify_items(body: &[u8], action: Action, ids: &[&str]) -> Verdict {
    let response: BulkResponse = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return Verdict::RetryAll(format!("malformed bulk response ({e})")),
    };
    if response.items.len() != ids.len() {
        return Verdict::RetryAll(format!(
            "bulk response misaligned: {} items for {} sent",
            response.items.len(),
            ids.len()
        ));
    }
    let mut classes = Vec::with_capacity(ids.len());
    for (position, (item, sent_id)) in response.items.into_iter().zip(ids).enumerate() {
        let (op, result) = match item {
            ResponseItem::Create(r) => (Action::Create, r),
            ResponseItem::Index(r) => (Action::Index, r),
            ResponseItem::Update(_) | ResponseItem::Delete(_) => {
                return Verdict::RetryAll(format!(
                    "bulk response misaligned: item {position} is not a {}",
                    action.name()
                ))
            }
        };
        if op != action || result.id.as_deref().is_some_and(|id| id != *sent_id) {
            return Verdict::RetryAll(format!(
                "bulk response misaligned: item {position} answers {} {:?}, sent {} {sent_id:?}",
                op.name(),
                result.id.as_deref().unwrap_or(""),
                action.name()
            ));
        }
        classes.push(classify_item(result.status, result.error.as_ref(), result.index.as_deref()));
    }
    Verdict::Items(classes)
}

/// What one item's status and error mean. The error's type decides whether the
/// document or the cluster is at fault: only the document's own faults are rejected
/// (dead-lettered); the cluster's state stops the run or is repaired (a missing index).
pub fn classify_item(status: u16, error: Option<&Value>, answered_index: Option<&str>) -> ItemClass {
    let reason = || item_reason(error, status);
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str).unwrap_or("");
    match status {
        200 | 201 => ItemClass::Indexed,
        409 => ItemClass::Duplicate,
        _ if kind == "index_not_found_exception" => ItemClass::IndexMissing {
            index: missing_index_name(error, answered_index).unwrap_or_default(),
            reason: reason(),
        },
        403 if is_write_block(error) => ItemClass::Stop(Stop::Blocked(reason())),
        401 | 403 => ItemClass::Stop(Stop::Auth(reason())),
        400 | 404 if is_cluster_state_error(error) => ItemClass::Stop(Stop::Cluster(reason())),
        400 | 404 => ItemClass::Rejected(reason()),
        _ => ItemClass::Retry(reason()),
    }
}

/// The index an `index_not_found_exception` names: `index`, or `resource.id`, or the
/// item's `_index`.
fn missing_index_name(error: Option<&Value>, answered_index: Option<&str>) -> Option<String> {
    let field = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str).filter(|s| !s.is_empty());
    field("index").or_else(|| field("resource.id")).or(answered_index).map(str::to_string)
}

/// Error types (with a 400 or 404) that the cluster's state causes, whatever the
/// document holds. Elasticsearch and OpenSearch name them alike.
const CLUSTER_STATE_ERRORS: [&str; 5] = [
    // `POST <index>/_close` was run on a daily index.
    "index_closed_exception",
    // The prefix makes an illegal index name (upper case, a leading `_`, ...).
    "invalid_index_name_exception",
    "invalid_alias_name_exception",
    // Raised on index creation, e.g. "this action would add [2] shards, but this cluster
    // currently has [1000]/[1000] maximum normal shards open" (cluster.max_shards_per_node).
    "validation_exception",
    // A data stream or alias in the way of the daily index name.
    "index_template_exception",
];

/// Reasons of an `illegal_argument_exception` that the cluster's state causes (the same
/// type is also the document's fault, e.g. "mapper [amount] cannot be changed").
const CLUSTER_STATE_REASONS: [&str; 3] = [
    "no write index is defined for alias",
    "only write ops with an op_type of create are allowed in data streams",
    "is a data stream",
];

/// Whether an item's error comes from the cluster's state (see [`CLUSTER_STATE_ERRORS`]).
pub fn is_cluster_state_error(error: Option<&Value>) -> bool {
    let Some(error) = error else { return false };
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("");
    let reason = error.get("reason").and_then(Value::as_str).unwrap_or("");
    CLUSTER_STATE_ERRORS.contains(&kind)
        || (kind == "illegal_argument_exception" && CLUSTER_STATE_REASONS.iter().any(|r| reason.contains(r)))
}

/// Whether a whole-request answer is a write block an operator must lift (403
/// `cluster_block_exception`, e.g. `cluster.blocks.read_only`).
pub fn is_blocked_answer(status: u16, body: &[u8]) -> bool {
    let error = serde_json::from_slice::<Value>(body).ok().and_then(|mut b| b.get_mut("error").map(Value::take));
    status == 403 && is_write_block(error.as_ref())
}

/// Whether an error is a write block: `index.blocks.write`, `index.blocks.read_only` or
/// `cluster.blocks.read_only` (403), or `read_only_allow_delete` (429 since 7.x, 403
/// before). Elasticsearch names them all `cluster_block_exception`; the HTTP status
/// tells a block an operator must lift (403) from the flood-stage one, which the
/// cluster lifts by itself once disk usage falls (429).
pub fn is_write_block(error: Option<&Value>) -> bool {
    error.and_then(|e| e.get("type")).and_then(Value::as_str) == Some("cluster_block_exception")
}

/// `type: reason` of an item error, with the innermost cause (which usually names the
/// field and value that failed, e.g. `number_format_exception`).
fn item_reason(error: Option<&Value>, status: u16) -> String {
    match error {
        Some(Value::String(text)) => format!("HTTP {status}: {text}"),
        Some(error @ Value::Object(_)) => describe_cause_chain(error),
        _ => format!("HTTP {status} without an error body"),
    }
}

fn describe_cause_chain(error: &Value) -> String {
    let one = |e: &Value| {
        let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
        match e.get("reason").and_then(Value::as_str) {
            Some(reason) => format!("{kind}: {reason}"),
            None => kind.to_string(),
        }
    };
    let mut text = one(error);
    let mut cause = error.get("caused_by");
    let mut innermost = None;
    while let Some(c) = cause.filter(|c| c.is_object()) {
        innermost = Some(c);
        cause = c.get("caused_by");
    }
    if let Some(c) = innermost {
        text.push_str(" (caused by ");
        text.push_str(&one(c));
        text.push(')');
    }
    text
}

/// The reason of an Elasticsearch error body (`{"error": {...}, "status": N}`), or a
/// short excerpt of whatever else came back.
pub fn error_reason(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => match value.get("error") {
            Some(Value::String(text)) => text.clone(),
            Some(error @ Value::Object(_)) => {
                let root = error.get("root_cause").and_then(|r| r.get(0)).filter(|r| r.is_object());
                match root {
                    Some(root) if root.get("type") != error.get("type") => {
                        format!("{} [{}]", describe_cause_chain(error), describe_cause_chain(root))
                    }
                    _ => describe_cause_chain(error),
                }
            }
            _ => excerpt(body),
        },
        Err(_) => excerpt(body),
    }
}

fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "(empty body)".into();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    format!("{:?}{}", text.trim(), if body.len() > 200 { "..." } else { "" })
}

/// A set of items to send together, and how often they were retried already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Positions in the [`EncodedBatch`]'s items, ascending.
    pub items: Vec<usize>,
    pub retries: u32,
    /// Why the previous try of these items failed.
    pub last_error: Option<String>,
    /// Indices the cluster said do not exist: create them before sending again.
    pub create_first: Vec<String>,
}

impl Attempt {
    /// The first try of `items`.
    pub fn first(items: Vec<usize>) -> Self {
        Attempt { items, retries: 0, last_error: None, create_first: Vec::new() }
    }
}

/// Why a request stops the whole run instead of deciding its items: the cause is outside
/// the documents, so none of them may be counted as rejected. The one list of such
/// reasons: an item's answer, a whole `_bulk` answer and any other call's 401/403 name
/// them with it, and the backend turns each into its [`crate::Error`] with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// 401/403: the credentials lack a privilege.
    Auth(String),
    /// 403 `cluster_block_exception`: the index or the cluster refuses writes.
    Blocked(String),
    /// An index is still missing after the client created it (or could not tell which).
    IndexMissing { index: String, reason: String },
    /// The cluster's state refuses the items (see [`is_cluster_state_error`]).
    Cluster(String),
}

impl Stop {
    /// A 401 or 403 answer to a whole request: a write block an operator must lift, or
    /// credentials that lack a privilege.
    pub fn refusal(status: u16, body: &[u8]) -> Stop {
        let reason = format!("HTTP {status}: {}", error_reason(body));
        if is_blocked_answer(status, body) {
            Stop::Blocked(reason)
        } else {
            Stop::Auth(reason)
        }
    }
}

/// Tracks one encoded batch from first send to one outcome per item.
#[derive(Debug)]
pub struct BulkJob {
    outcomes: Vec<Option<Outcome>>,
    queue: VecDeque<Attempt>,
    /// Indices created on the cluster's word that they were missing: a second "missing"
    /// for one of them stops the job instead of looping.
    created: Vec<String>,
}

impl BulkJob {
    pub fn new(items: usize) -> Self {
        let mut queue = VecDeque::new();
        if items > 0 {
            queue.push_back(Attempt::first((0..items).collect()));
        }
        BulkJob { outcomes: vec![None; items], queue, created: Vec::new() }
    }

    /// The next request to send, if any.
    pub fn next_attempt(&mut self) -> Option<Attempt> {
        self.queue.pop_front()
    }

    /// Records the answer to `attempt`. Returns the items to send again after a backoff
    /// (the caller decides whether the budget allows it), or why the run must stop.
    pub fn record(&mut self, attempt: Attempt, verdict: Verdict) -> Result<Option<Attempt>, Stop> {
        match verdict {
            Verdict::Items(classes) => {
                debug_assert_eq!(classes.len(), attempt.items.len());
                let mut again = Vec::new();
                let mut last_error = None;
                let mut create_first: Vec<String> = Vec::new();
                for (&item, class) in attempt.items.iter().zip(classes) {
                    let outcome = match class {
                        ItemClass::Indexed => Outcome::Indexed,
                        ItemClass::Duplicate => Outcome::Duplicate,
                        ItemClass::Rejected(reason) => Outcome::Rejected { reason },
                        ItemClass::Stop(stop) => return Err(stop),
                        ItemClass::IndexMissing { index, reason } => {
                            if index.is_empty() || self.created.contains(&index) {
                                return Err(Stop::IndexMissing { index, reason });
                            }
                            if !create_first.contains(&index) {
                                create_first.push(index);
                            }
                            again.push(item);
                            last_error = Some(reason);
                            continue;
                        }
                        ItemClass::Retry(reason) => {
                            again.push(item);
                            last_error = Some(reason);
                            continue;
                        }
                    };
                    self.outcomes[item] = Some(outcome);
                }
                Ok((!again.is_empty()).then(|| Attempt {
                    items: again,
                    retries: attempt.retries + 1,
                    last_error,
                    create_first,
                }))
            }
            Verdict::RetryAll(reason) => Ok(Some(Attempt {
                items: attempt.items,
                retries: attempt.retries + 1,
                last_error: Some(reason),
                create_first: Vec::new(),
            })),
            Verdict::Split if attempt.items.len() == 1 => {
                self.outcomes[attempt.items[0]] = Some(Outcome::Rejected {
                    reason:
                        "document too large: Elasticsearch answered HTTP 413 for it alone (see http.max_content_length)"
                            .into(),
                });
                Ok(None)
            }
            Verdict::Split => {
                let mut first = attempt.items;
                let second = first.split_off(first.len() / 2);
                let retries = attempt.retries;
                self.queue.push_front(Attempt { retries, ..Attempt::first(second) });
                self.queue.push_front(Attempt { retries, ..Attempt::first(first) });
                Ok(None)
            }
            Verdict::Stop(stop) => Err(stop),
            Verdict::FailAll(reason) => {
                for item in attempt.items {
                    self.outcomes[item] = Some(Outcome::Failed { reason: reason.clone() });
                }
                Ok(None)
            }
        }
    }

    /// Notes that `index` was created because the cluster said it was missing.
    pub fn index_created(&mut self, index: &str) {
        if !self.created.iter().any(|i| i == index) {
            self.created.push(index.to_string());
        }
    }

    /// Queues a retry to be sent next.
    pub fn retry(&mut self, attempt: Attempt) {
        self.queue.push_front(attempt);
    }

    /// Gives up on the items of `attempt`: they fail (their source is retried later).
    pub fn give_up(&mut self, attempt: Attempt, why: &str) {
        let reason = match &attempt.last_error {
            Some(last) => format!("{why}; last error: {last}"),
            None => why.to_string(),
        };
        for item in attempt.items {
            self.outcomes[item] = Some(Outcome::Failed { reason: reason.clone() });
        }
    }

    /// One outcome per item, in order. Items never decided (cannot happen once the queue
    /// is empty) are reported failed rather than lost.
    pub fn finish(self) -> Vec<Outcome> {
        self.outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Failed { reason: "bulk item left undecided".into() }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(i: usize, ts_millis: i64) -> IndexDoc {
        let mut map = Map::new();
        map.insert("ts".into(), json!(format_ts(ts_millis)));
        map.insert("type".into(), json!("booking.confirmed"));
        map.insert("amount".into(), json!(i));
        IndexDoc { id: crate::doc_id::DocId::from_u128(i as u128), ts_millis, doc: map, unseen_source: false }
    }

    fn encoder(max_bytes: usize, max_docs: usize) -> BulkEncoder {
        BulkEncoder { prefix: "tix-bookings".into(), max_bytes, max_docs }
    }

    #[test]
    fn each_document_is_a_create_line_then_its_source_with_timestamp() {
        let docs = vec![doc(1, 1_707_091_200_000), doc(2, 1_707_091_199_999)];
        let (batch, next) = encoder(1 << 20, 100).encode_next(&docs, 0);
        assert_eq!(next, 2);
        let text = std::str::from_utf8(&batch.body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"create":{"_index":"tix-bookings-2024.02.05","_id":"00000000000000000000000000000001"}}"#,
                r#"{"@timestamp":"2024-02-05T00:00:00.000Z","type":"booking.confirmed","amount":1}"#,
                r#"{"create":{"_index":"tix-bookings-2024.02.04","_id":"00000000000000000000000000000002"}}"#,
                r#"{"@timestamp":"2024-02-04T23:59:59.999Z","type":"booking.confirmed","amount":2}"#,
            ]
        );
        assert!(text.ends_with('\n'), "a bulk body ends with a newline");
        assert_eq!(batch.items[1].start, lines[0].len() + lines[1].len() + 2);
        assert_eq!(batch.items[1].end, batch.body.len());
    }

    #[test]
    fn timestamp_goes_back_to_ts_in_place_when_read() {
        let d = doc(7, 1_707_091_200_000);
        let mut body = Vec::new();
        write_event_source(&mut body, &d);
        let stored: Map<String, Value> = serde_json::from_slice(&body).unwrap();
        let back = event_from_source(stored);
        assert_eq!(back.keys().collect::<Vec<_>>(), d.doc.keys().collect::<Vec<_>>());
        assert_eq!(back, d.doc);
    }

    #[test]
    fn batches_respect_byte_and_count_bounds() {
        let docs: Vec<IndexDoc> = (0..50).map(|i| doc(i, 1_707_091_200_000 + i as i64)).collect();
        let one = {
            let (b, _) = encoder(1 << 20, 1).encode_next(&docs, 0);
            b.body.len()
        };
        for (max_bytes, max_docs) in [(1 << 20, 7), (one * 3 + 1, 100), (1, 100), (one * 5, 5)] {
            let enc = encoder(max_bytes, max_docs);
            let mut from = 0;
            let mut seen = 0;
            while from < docs.len() {
                let (batch, next) = enc.encode_next(&docs, from);
                assert!(next > from, "progress");
                assert!(batch.items.len() <= max_docs);
                assert!(batch.body.len() <= max_bytes.max(one + 1), "{} > {max_bytes}", batch.body.len());
                for (k, item) in batch.items.iter().enumerate() {
                    assert_eq!(item.doc, from + k);
                }
                seen += batch.items.len();
                from = next;
            }
            assert_eq!(seen, docs.len());
        }
    }

    #[test]
    fn body_for_a_subset_is_exactly_those_lines() {
        let docs: Vec<IndexDoc> = (0..5).map(|i| doc(i, 1_707_091_200_000)).collect();
        let (batch, _) = encoder(1 << 20, 100).encode_next(&docs, 0);
        let all = batch.body_for(&[0, 1, 2, 3, 4]);
        assert_eq!(all, batch.body);
        let some = batch.body_for(&[1, 3]);
        let text = std::str::from_utf8(&some).unwrap();
        assert_eq!(text.lines().count(), 4);
        let id = |n: usize| docs[n].id.to_string();
        assert!(text.contains(&id(1)) && text.contains(&id(3)) && !text.contains(&id(2)));
    }

    fn item(op: &str, id: &str, status: u16) -> Value {
        if status < 300 {
            json!({op: {"_index": "tix-bookings-2024.02.05", "_id": id, "status": status, "result": "created"}})
        } else {
            json!({op: {"_index": "tix-bookings-2024.02.05", "_id": id, "status": status,
                "error": {"type": "document_parsing_exception", "reason": "[1:42] failed to parse field [amount] of type [double]",
                          "caused_by": {"type": "number_format_exception", "reason": "For input string: \"abc\""}}}})
        }
    }

    #[test]
    fn items_are_classified_by_position() {
        let ids = ["a", "b", "c", "d", "e", "f"];
        let body = json!({"errors": true, "items": [
            item("create", "a", 201), item("create", "b", 409), item("create", "c", 429),
            item("create", "d", 400), item("create", "e", 503), item("create", "f", 200)
        ]});
        let verdict = classify_response(200, body.to_string().as_bytes(), Action::Create, &ids);
        let Verdict::Items(classes) = verdict else { panic!("{verdict:?}") };
        assert_eq!(classes[0], ItemClass::Indexed);
        assert_eq!(classes[1], ItemClass::Duplicate);
        assert!(matches!(classes[2], ItemClass::Retry(_)));
        match &classes[3] {
            ItemClass::Rejected(reason) => {
                assert!(
                    reason.contains("document_parsing_exception") && reason.contains("number_format_exception"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classes[4], ItemClass::Retry(_)));
        assert_eq!(classes[5], ItemClass::Indexed);
    }

    #[test]
    fn misaligned_or_malformed_responses_retry_everything() {
        let ids = ["a", "b"];
        let cases = [
            json!({"items": [item("create", "a", 201)]}).to_string(),
            json!({"items": [item("create", "b", 201), item("create", "a", 201)]}).to_string(),
            json!({"items": [item("index", "a", 201), item("index", "b", 201)]}).to_string(),
            json!({"took": 3}).to_string(),
            "{\"items\": [".to_string(),
            "<html>bad gateway</html>".to_string(),
        ];
        for body in cases {
            let verdict = classify_response(200, body.as_bytes(), Action::Create, &ids);
            assert!(matches!(verdict, Verdict::RetryAll(_)), "{body}: {verdict:?}");
        }
    }

    #[test]
    fn http_statuses_map_to_verdicts() {
        let err = br#"{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials"}],"type":"security_exception","reason":"missing authentication credentials"},"status":401}"#;
        assert!(
            matches!(classify_response(401, err, Action::Create, &["a"]), Verdict::Stop(Stop::Auth(r)) if r.contains("missing authentication"))
        );
        assert!(matches!(classify_response(403, b"", Action::Create, &["a"]), Verdict::Stop(Stop::Auth(_))));
        assert_eq!(classify_response(413, b"", Action::Create, &["a"]), Verdict::Split);
        for status in [429, 500, 502, 503, 504] {
            assert!(matches!(classify_response(status, b"", Action::Create, &["a"]), Verdict::RetryAll(_)), "{status}");
        }
        assert!(matches!(classify_response(400, b"{}", Action::Create, &["a"]), Verdict::FailAll(_)));
    }

    /// Item errors as Elasticsearch 8 and OpenSearch 2 answer them, and who is at fault.
    #[test]
    fn item_errors_are_told_apart_by_whether_the_document_or_the_cluster_is_at_fault() {
        let index = "tix-bookings-2024.02.05";
        let missing = json!({"type": "index_not_found_exception", "reason": format!("no such index [{index}]"),
            "resource.type": "index_expression", "resource.id": index, "index_uuid": "_na_", "index": index});
        match classify_item(404, Some(&missing), None) {
            ItemClass::IndexMissing { index: named, reason } => {
                assert_eq!(named, index);
                assert!(reason.contains("index_not_found_exception"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Without `index` in the error, `resource.id` or the item's `_index` names it.
        let bare = json!({"type": "index_not_found_exception", "reason": "no such index"});
        assert!(
            matches!(classify_item(404, Some(&bare), Some(index)), ItemClass::IndexMissing { index: i, .. } if i == index)
        );
        let cluster_state = [
            json!({"type": "index_closed_exception", "reason": "closed", "index": index}),
            json!({"type": "invalid_index_name_exception", "reason": "Invalid index name [Tix-2024.02.05], must be lowercase"}),
            json!({"type": "validation_exception", "reason": "Validation Failed: 1: this action would add [2] shards, but this cluster currently has [1000]/[1000] maximum normal shards open;"}),
            json!({"type": "illegal_argument_exception", "reason": "no write index is defined for alias [tix-bookings-2024.02.05]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index"}),
        ];
        for error in &cluster_state {
            assert!(matches!(classify_item(400, Some(error), None), ItemClass::Stop(Stop::Cluster(_))), "{error}");
        }
        let document_faults = [
            json!({"type": "document_parsing_exception", "reason": "[1:42] failed to parse field [amount] of type [double]"}),
            json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [seat] of type [keyword]"}),
            json!({"type": "illegal_argument_exception", "reason": "mapper [amount] cannot be changed from type [double] to [keyword]"}),
            json!({"type": "strict_dynamic_mapping_exception", "reason": "mapping set to strict, dynamic introduction of [x] within [_doc] is not allowed"}),
        ];
        for error in &document_faults {
            assert!(matches!(classify_item(400, Some(error), None), ItemClass::Rejected(_)), "{error}");
        }
    }

    #[test]
    fn a_missing_index_is_created_once_then_a_second_miss_stops_the_job() {
        let missing = |index: &str| ItemClass::IndexMissing { index: index.into(), reason: "no such index".into() };
        let mut job = BulkJob::new(3);
        let first = job.next_attempt().unwrap();
        let retry = job
            .record(first, Verdict::Items(vec![missing("a"), ItemClass::Indexed, missing("a")]))
            .unwrap()
            .expect("the missing items are sent again");
        assert_eq!(retry.items, [0, 2]);
        assert_eq!(retry.create_first, ["a"], "each missing index is created once, before the retry");
        job.index_created("a");
        job.retry(retry);
        let again = job.next_attempt().unwrap();
        let stop = job.record(again, Verdict::Items(vec![missing("a"), ItemClass::Indexed])).unwrap_err();
        assert_eq!(stop, Stop::IndexMissing { index: "a".into(), reason: "no such index".into() });
        // Nothing was rejected on the way: the stop is operational.
        let mut job = BulkJob::new(1);
        let first = job.next_attempt().unwrap();
        assert_eq!(
            job.record(first, Verdict::Items(vec![ItemClass::Stop(Stop::Cluster("closed".into()))])),
            Err(Stop::Cluster("closed".into()))
        );
    }

    #[test]
    fn job_resends_only_retryable_items_and_accounts_for_every_item() {
        let mut job = BulkJob::new(4);
        let first = job.next_attempt().unwrap();
        assert_eq!(first.items, [0, 1, 2, 3]);
        let retry = job
            .record(
                first,
                Verdict::Items(vec![
                    ItemClass::Indexed,
                    ItemClass::Retry("429".into()),
                    ItemClass::Rejected("bad".into()),
                    ItemClass::Duplicate,
                ]),
            )
            .unwrap()
            .unwrap();
        assert_eq!(retry.items, [1]);
        assert_eq!(retry.retries, 1);
        job.retry(retry);
        let again = job.next_attempt().unwrap();
        job.record(again, Verdict::Items(vec![ItemClass::Indexed])).unwrap();
        assert!(job.next_attempt().is_none());
        assert_eq!(
            job.finish(),
            [Outcome::Indexed, Outcome::Indexed, Outcome::Rejected { reason: "bad".into() }, Outcome::Duplicate]
        );
    }

    #[test]
    fn job_splits_on_413_down_to_single_documents() {
        let mut job = BulkJob::new(3);
        let a = job.next_attempt().unwrap();
        assert_eq!(job.record(a, Verdict::Split).unwrap(), None);
        let left = job.next_attempt().unwrap();
        assert_eq!(left.items, [0]);
        job.record(left, Verdict::Split).unwrap();
        let right = job.next_attempt().unwrap();
        assert_eq!(right.items, [1, 2]);
        job.record(right, Verdict::Items(vec![ItemClass::Indexed, ItemClass::Indexed])).unwrap();
        let outcomes = job.finish();
        assert!(matches!(&outcomes[0], Outcome::Rejected { reason } if reason.contains("413")));
        assert_eq!(outcomes[1..], [Outcome::Indexed, Outcome::Indexed]);
    }

    #[test]
    fn giving_up_fails_items_with_the_last_error_and_auth_stops() {
        let mut job = BulkJob::new(2);
        let a = job.next_attempt().unwrap();
        let retry = job.record(a, Verdict::RetryAll("HTTP 503: unavailable".into())).unwrap().unwrap();
        job.give_up(retry, "retry budget exhausted");
        for outcome in job.finish() {
            assert!(
                matches!(&outcome, Outcome::Failed { reason } if reason.contains("503") && reason.contains("budget")),
                "{outcome:?}"
            );
        }
        let mut job = BulkJob::new(1);
        let a = job.next_attempt().unwrap();
        assert_eq!(job.record(a, Verdict::Stop(Stop::Auth("HTTP 401".into()))), Err(Stop::Auth("HTTP 401".into())));
    }

    /// Item errors as Elasticsearch 8 reports index blocks: `index.blocks.write` (403) and
    /// the disk flood-stage block `read_only_allow_delete` (429).
    fn block_item(id: &str, status: u16) -> Value {
        let reason = match status {
            403 => "index [tix-bookings-2024.02.05] blocked by: [FORBIDDEN/8/index write (api)];",
            _ => "index [tix-bookings-2024.02.05] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];",
        };
        json!({"create": {"_index": "tix-bookings-2024.02.05", "_id": id, "status": status,
            "error": {"type": "cluster_block_exception", "reason": reason}}})
    }

    #[test]
    fn a_403_write_block_is_told_apart_from_a_privilege_problem() {
        let ids = ["a", "b", "c"];
        let security = json!({"create": {"_index": "tix-bookings-2024.02.05", "_id": "c", "status": 403, "error": {
            "type": "security_exception",
            "reason": "action [indices:data/write/bulk[s]] is unauthorized for API key id [tix-ingest]"}}});
        let body = json!({"errors": true, "items": [item("create", "a", 201), block_item("b", 403), security]});
        let Verdict::Items(classes) = classify_response(200, body.to_string().as_bytes(), Action::Create, &ids) else {
            panic!("items expected")
        };
        assert_eq!(classes[0], ItemClass::Indexed);
        assert!(
            matches!(&classes[1], ItemClass::Stop(Stop::Blocked(r)) if r.contains("cluster_block_exception") && r.contains("FORBIDDEN/8/index write")),
            "{:?}",
            classes[1]
        );
        assert!(
            matches!(&classes[2], ItemClass::Stop(Stop::Auth(r)) if r.contains("unauthorized")),
            "{:?}",
            classes[2]
        );

        // The whole request refused by a cluster-wide block (`cluster.blocks.read_only`).
        let cluster_block = br#"{"error":{"root_cause":[{"type":"cluster_block_exception","reason":"blocked by: [FORBIDDEN/6/cluster read-only (api)];"}],"type":"cluster_block_exception","reason":"blocked by: [FORBIDDEN/6/cluster read-only (api)];"},"status":403}"#;
        let verdict = classify_response(403, cluster_block, Action::Create, &ids);
        assert!(
            matches!(&verdict, Verdict::Stop(Stop::Blocked(r)) if r.contains("FORBIDDEN/6/cluster read-only")),
            "{verdict:?}"
        );
        let privilege = br#"{"error":{"root_cause":[{"type":"security_exception","reason":"action [indices:data/write/bulk] is unauthorized"}],"type":"security_exception","reason":"action [indices:data/write/bulk] is unauthorized"},"status":403}"#;
        assert!(matches!(classify_response(403, privilege, Action::Create, &ids), Verdict::Stop(Stop::Auth(_))));
        // A block type under another status is not a write block to stop for.
        assert!(matches!(classify_response(401, cluster_block, Action::Create, &ids), Verdict::Stop(Stop::Auth(_))));
    }

    #[test]
    fn a_write_block_stops_the_job_without_rejecting_anything() {
        let mut job = BulkJob::new(3);
        let attempt = job.next_attempt().unwrap();
        let body =
            json!({"errors": true, "items": [item("create", "a", 201), block_item("b", 403), block_item("c", 403)]});
        let verdict = classify_response(200, body.to_string().as_bytes(), Action::Create, &["a", "b", "c"]);
        let stop = job.record(attempt, verdict).unwrap_err();
        assert!(matches!(&stop, Stop::Blocked(r) if r.contains("index write")), "{stop:?}");
        assert!(job.next_attempt().is_none(), "nothing left to send once the run stops");
        let outcomes = job.finish();
        assert!(!outcomes.iter().any(|o| matches!(o, Outcome::Rejected { .. })), "{outcomes:?}");
    }

    #[test]
    fn the_flood_stage_block_is_retried_then_fails_naming_the_watermark() {
        let flood_whole = json!({"error": {
            "root_cause": [{"type": "cluster_block_exception", "reason": "index [tix-bookings-2024.02.05] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"}],
            "type": "cluster_block_exception",
            "reason": "index [tix-bookings-2024.02.05] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"},
            "status": 429})
        .to_string();
        assert!(matches!(
            classify_response(429, flood_whole.as_bytes(), Action::Create, &["a"]),
            Verdict::RetryAll(r) if r.contains("flood-stage")
        ));

        let mut job = BulkJob::new(2);
        let body = json!({"errors": true, "items": [item("create", "a", 201), block_item("b", 429)]});
        let first = job.next_attempt().unwrap();
        let verdict = classify_response(200, body.to_string().as_bytes(), Action::Create, &["a", "b"]);
        let retry = job.record(first, verdict).unwrap().expect("the blocked item is sent again");
        assert_eq!(retry.items, [1]);
        job.give_up(retry, "retry budget exhausted");
        let outcomes = job.finish();
        assert_eq!(outcomes[0], Outcome::Indexed);
        assert!(
            matches!(&outcomes[1], Outcome::Failed { reason } if reason.contains("flood-stage watermark") && reason.contains("budget")),
            "{:?}",
            outcomes[1]
        );
    }

    /// What the model expects an item to end as.
    #[derive(Debug)]
    enum Expected {
        Exactly(Outcome),
        /// Given up after retries: failed, naming why and the last error.
        GivenUp {
            why: &'static str,
            last_error: String,
        },
        /// Split down to one document and still 413.
        TooLarge,
    }

    /// The model the state machine is checked against: which items are in flight in an
    /// attempt handed out and not answered yet, and what each decided item must end as.
    struct Model {
        in_flight: Vec<Attempt>,
        expected: Vec<Option<Expected>>,
    }

    impl Model {
        /// Takes the next attempt from the job, checking it sends only undecided items
        /// that no other unanswered attempt holds.
        fn pull(&mut self, job: &mut BulkJob) -> Result<Option<Attempt>, proptest::test_runner::TestCaseError> {
            let Some(attempt) = job.next_attempt() else { return Ok(None) };
            proptest::prop_assert!(!attempt.items.is_empty(), "an empty attempt");
            proptest::prop_assert!(
                attempt.items.windows(2).all(|w| w[0] < w[1]),
                "items ascending: {:?}",
                attempt.items
            );
            for &item in &attempt.items {
                proptest::prop_assert!(item < self.expected.len());
                proptest::prop_assert!(self.expected[item].is_none(), "item {item} re-sent after it was decided");
                proptest::prop_assert!(
                    !self.in_flight.iter().any(|a| a.items.contains(&item)),
                    "item {item} in flight in two attempts at once"
                );
            }
            self.in_flight.push(attempt.clone());
            Ok(Some(attempt))
        }

        fn decide(&mut self, item: usize, expected: Expected) -> Result<(), proptest::test_runner::TestCaseError> {
            proptest::prop_assert!(self.expected[item].is_none(), "item {item} decided twice");
            self.expected[item] = Some(expected);
            Ok(())
        }
    }

    proptest::proptest! {
        /// Whatever the cluster answers, and however many attempts are out at once, the
        /// job never sends an item twice at the same time or after deciding it, a split
        /// keeps exactly the parent's items, and every item ends as its last answer said.
        #[test]
        fn any_sequence_of_answers_is_accounted_for_item_by_item(
            n in 1usize..40,
            script in proptest::collection::vec(
                (0u8..16, 0u8..8, proptest::collection::vec(0u8..4, 1..40)),
                1..40,
            ),
        ) {
            const MAX_RETRIES: u32 = 3;
            let mut job = BulkJob::new(n);
            let mut model = Model { in_flight: Vec::new(), expected: (0..n).map(|_| None).collect() };
            let mut step = 0usize;
            loop {
                step += 1;
                // After the script, the cluster accepts everything, one attempt at a time.
                let (kind, schedule, classes) = if step <= 400 {
                    script[step % script.len()].clone()
                } else {
                    (2, 1, vec![0])
                };
                // Keep up to three attempts out before answering one of them.
                if model.in_flight.is_empty() || (schedule == 0 && model.in_flight.len() < 3) {
                    if model.pull(&mut job)?.is_some() {
                        continue;
                    }
                    if model.in_flight.is_empty() {
                        break;
                    }
                }
                let attempt = model.in_flight.remove(usize::from(schedule) % model.in_flight.len());
                let reason = format!("answer {step}");
                let verdict = match kind {
                    0 | 1 => Verdict::RetryAll(reason.clone()),
                    2..=4 => Verdict::Items(attempt.items.iter().map(|_| ItemClass::Indexed).collect()),
                    5 | 6 => Verdict::Split,
                    7 => Verdict::FailAll(reason.clone()),
                    8..=14 => Verdict::Items(
                        attempt
                            .items
                            .iter()
                            .zip(classes.iter().cycle())
                            .map(|(item, class)| match class {
                                0 => ItemClass::Indexed,
                                1 => ItemClass::Duplicate,
                                2 => ItemClass::Rejected(format!("{reason} rejects {item}")),
                                _ => ItemClass::Retry(format!("{reason} retries {item}")),
                            })
                            .collect(),
                    ),
                    // The run stops: as a whole, or for one item among accepted ones.
                    _ => match schedule % 3 {
                        0 => Verdict::Stop(Stop::Auth(reason.clone())),
                        1 => Verdict::Stop(Stop::Blocked(reason.clone())),
                        _ => {
                            let blocked = usize::from(schedule) % attempt.items.len();
                            Verdict::Items(
                                (0..attempt.items.len())
                                    .map(|k| if k == blocked { ItemClass::Stop(Stop::Blocked(reason.clone())) } else { ItemClass::Indexed })
                                    .collect(),
                            )
                        }
                    },
                };

                let answered = job.record(attempt.clone(), verdict.clone());
                let retry = match verdict {
                    Verdict::Stop(Stop::Auth(_)) => {
                        proptest::prop_assert_eq!(answered, Err(Stop::Auth(reason)));
                        return Ok(());
                    }
                    Verdict::Stop(Stop::Blocked(_)) => {
                        proptest::prop_assert_eq!(answered, Err(Stop::Blocked(reason)));
                        return Ok(());
                    }
                    Verdict::Items(classes) if classes.iter().any(|c| matches!(c, ItemClass::Stop(Stop::Blocked(_)))) => {
                        proptest::prop_assert_eq!(answered, Err(Stop::Blocked(reason)));
                        return Ok(());
                    }
                    Verdict::Stop(_) => unreachable!("not generated"),
                    Verdict::RetryAll(_) => {
                        let expected =
                            Attempt { items: attempt.items.clone(), retries: attempt.retries + 1, last_error: Some(reason), create_first: vec![] };
                        proptest::prop_assert_eq!(answered.as_ref(), Ok(&Some(expected)));
                        answered.unwrap()
                    }
                    Verdict::Split if attempt.items.len() == 1 => {
                        proptest::prop_assert_eq!(answered, Ok(None));
                        model.decide(attempt.items[0], Expected::TooLarge)?;
                        None
                    }
                    Verdict::Split => {
                        proptest::prop_assert_eq!(answered, Ok(None));
                        // The halves are sent next, before anything else.
                        let first = model.pull(&mut job)?.expect("first half");
                        let second = model.pull(&mut job)?.expect("second half");
                        proptest::prop_assert!(!first.items.is_empty() && !second.items.is_empty());
                        proptest::prop_assert_eq!((first.retries, second.retries), (attempt.retries, attempt.retries));
                        let mut union = first.items.clone();
                        union.extend(&second.items);
                        union.sort_unstable();
                        union.dedup();
                        proptest::prop_assert_eq!(union.len(), first.items.len() + second.items.len(), "halves overlap");
                        proptest::prop_assert_eq!(&union, &attempt.items, "halves lose or add items");
                        None
                    }
                    Verdict::FailAll(_) => {
                        proptest::prop_assert_eq!(answered, Ok(None));
                        for &item in &attempt.items {
                            model.decide(item, Expected::Exactly(Outcome::Failed { reason: reason.clone() }))?;
                        }
                        None
                    }
                    Verdict::Items(classes) => {
                        let mut again = Vec::new();
                        let mut last_error = None;
                        for (&item, class) in attempt.items.iter().zip(classes) {
                            match class {
                                ItemClass::Indexed => model.decide(item, Expected::Exactly(Outcome::Indexed))?,
                                ItemClass::Duplicate => model.decide(item, Expected::Exactly(Outcome::Duplicate))?,
                                ItemClass::Rejected(r) => model.decide(item, Expected::Exactly(Outcome::Rejected { reason: r }))?,
                                ItemClass::Retry(r) => {
                                    again.push(item);
                                    last_error = Some(r);
                                }
                                ItemClass::Stop(_) | ItemClass::IndexMissing { .. } => unreachable!("not generated"),
                            }
                        }
                        let expected = (!again.is_empty())
                            .then(|| Attempt { items: again, retries: attempt.retries + 1, last_error, create_first: vec![] });
                        proptest::prop_assert_eq!(answered.as_ref(), Ok(&expected));
                        answered.unwrap()
                    }
                };
                if let Some(retry) = retry {
                    if retry.retries > MAX_RETRIES {
                        let last_error = retry.last_error.clone().expect("a retry says why");
                        for &item in &retry.items {
                            model.decide(item, Expected::GivenUp { why: "budget", last_error: last_error.clone() })?;
                        }
                        job.give_up(retry, "budget");
                    } else {
                        job.retry(retry);
                    }
                }
            }

            let outcomes = job.finish();
            proptest::prop_assert_eq!(outcomes.len(), n);
            for (item, (outcome, expected)) in outcomes.iter().zip(&model.expected).enumerate() {
                let ok = match expected {
                    None => false,
                    Some(Expected::Exactly(exact)) => outcome == exact,
                    Some(Expected::GivenUp { why, last_error }) => {
                        matches!(outcome, Outcome::Failed { reason } if reason.contains(why) && reason.contains(last_error.as_str()))
                    }
                    Some(Expected::TooLarge) => matches!(outcome, Outcome::Rejected { reason } if reason.contains("413")),
                };
                proptest::prop_assert!(ok, "item {}: ended as {:?}, the model expects {:?}", item, outcome, expected);
            }
            // The four outcome sets are disjoint and cover every item.
            let mut sets: [Vec<usize>; 4] = Default::default();
            for (item, outcome) in outcomes.iter().enumerate() {
                let class = match outcome {
                    Outcome::Indexed => 0,
                    Outcome::Duplicate => 1,
                    Outcome::Rejected { .. } => 2,
                    Outcome::Failed { .. } => 3,
                };
                sets[class].push(item);
            }
            let mut all: Vec<usize> = sets.concat();
            all.sort_unstable();
            proptest::prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        }

        /// Successive batches cover every document once, in order, within the bounds (a
        /// batch stops only at a bound, and only a single document may exceed the byte
        /// bound), and a subset's body is exactly those items' lines, in order.
        #[test]
        fn encoded_batches_cover_every_document_once_within_the_bounds(
            shapes in proptest::collection::vec((0usize..3_000, 0i64..3), 1..60),
            max_bytes in 1usize..12_000,
            max_docs in 0usize..25,
            mask in proptest::collection::vec(proptest::bool::ANY, 64),
            range in (0usize..64, 0usize..64),
        ) {
            let docs: Vec<IndexDoc> = shapes
                .iter()
                .enumerate()
                .map(|(i, &(notes, day))| {
                    let mut d = doc(i, 1_707_091_200_000 + day * 86_400_000 + i as i64);
                    d.doc.insert("notes".into(), json!("n".repeat(notes)));
                    d
                })
                .collect();
            // Each document's two lines, encoded on its own.
            let alone: Vec<Bytes> =
                (0..docs.len()).map(|i| encoder(usize::MAX, 1).encode_next(&docs, i).0.body).collect();
            let enc = encoder(max_bytes, max_docs);
            let mut covered = Vec::new();
            let mut from = 0;
            while from < docs.len() {
                let (batch, next) = enc.encode_next(&docs, from);
                proptest::prop_assert!(next > from && next <= docs.len(), "progress: {from} -> {next}");
                proptest::prop_assert_eq!(batch.items.len(), next - from);
                proptest::prop_assert!(batch.items.len() <= max_docs.max(1));
                if batch.items.len() > 1 {
                    proptest::prop_assert!(batch.body.len() <= max_bytes, "{} > {max_bytes}", batch.body.len());
                }
                if next < docs.len() && batch.items.len() < max_docs.max(1) {
                    proptest::prop_assert!(batch.body.len() + alone[next].len() > max_bytes, "cut early at {next}");
                }
                let mut at = 0;
                for (k, item) in batch.items.iter().enumerate() {
                    proptest::prop_assert_eq!(item.doc, from + k);
                    proptest::prop_assert_eq!(&item.id, &docs[item.doc].id.to_string());
                    proptest::prop_assert_eq!(item.start, at, "items are contiguous");
                    proptest::prop_assert_eq!(&batch.body[item.start..item.end], &alone[item.doc][..]);
                    at = item.end;
                }
                proptest::prop_assert_eq!(at, batch.body.len());

                let len = batch.items.len();
                let scattered: Vec<usize> = (0..len).filter(|k| mask[k % mask.len()]).collect();
                let (lo, hi) = (range.0 % (len + 1), range.1 % (len + 1));
                let contiguous: Vec<usize> = (lo.min(hi)..lo.max(hi)).collect();
                for subset in [scattered, contiguous, (0..len).collect()] {
                    let body = batch.body_for(&subset);
                    let expected: Vec<u8> = subset.iter().flat_map(|&k| alone[from + k].iter().copied()).collect();
                    proptest::prop_assert_eq!(&body[..], &expected[..]);
                    let text = std::str::from_utf8(&body).unwrap();
                    let lines: Vec<&str> = text.lines().collect();
                    proptest::prop_assert_eq!(lines.len(), 2 * subset.len());
                    for (pair, &k) in lines.chunks(2).zip(&subset) {
                        let d = &docs[from + k];
                        let action: Value = serde_json::from_str(pair[0]).unwrap();
                        let expected_action =
                            json!({"create": {"_index": crate::elasticsearch::mapping::daily_index("tix-bookings", d.ts_millis), "_id": d.id.to_string()}});
                        proptest::prop_assert_eq!(action, expected_action);
                        let source: Map<String, Value> = serde_json::from_str(pair[1]).unwrap();
                        proptest::prop_assert_eq!(event_from_source(source), d.doc.clone());
                    }
                }
                covered.extend(batch.items.iter().map(|item| item.doc));
                from = next;
            }
            proptest::prop_assert_eq!(covered, (0..docs.len()).collect::<Vec<_>>());
        }
    }
}
