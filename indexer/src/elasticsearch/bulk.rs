//! The `_bulk` protocol without I/O: encoding request bodies, classifying responses by
//! position, and the per-request state machine that decides what to resend.
//!
//! Every document sent ends as exactly one [`Outcome`]: 200/201 indexed, 409 duplicate,
//! 400/404 rejected with Elasticsearch's reason; 429, 5xx, timeouts, connection errors,
//! malformed or misaligned responses are retried (only the affected items) until the
//! retry budget runs out, and then reported as failed (not lost, not rejected). HTTP 413
//! splits the request in halves; a single document still too large is rejected.
//! 401/403 stop everything as [`crate::Error::Auth`]: a credentials problem is never
//! counted against the data.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::RetryPolicy;
use super::mapping::push_daily_index;
use crate::backend::{IndexDoc, Outcome};
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
            write_action(&mut body, Action::Create, &index_name, &doc.id);
            write_event_source(&mut body, doc);
            if body.len() > self.max_bytes && !items.is_empty() {
                body.truncate(start);
                break;
            }
            items.push(BulkItem { doc: next, id: doc.id.clone(), start, end: body.len() });
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
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
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
    /// 401/403 on an item: the credentials lack a privilege.
    Auth(String),
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
    /// 401/403.
    Auth(String),
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
        401 | 403 => Verdict::Auth(format!("HTTP {status}: {}", error_reason(body))),
        408 | 429 | 500..=599 => Verdict::RetryAll(format!("HTTP {status}: {}", error_reason(body))),
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
        let reason = || item_reason(result.error.as_ref(), result.status);
        classes.push(match result.status {
            200 | 201 => ItemClass::Indexed,
            409 => ItemClass::Duplicate,
            400 | 404 => ItemClass::Rejected(reason()),
            401 | 403 => ItemClass::Auth(reason()),
            _ => ItemClass::Retry(reason()),
        });
    }
    Verdict::Items(classes)
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
}

/// Tracks one encoded batch from first send to one outcome per item.
#[derive(Debug)]
pub struct BulkJob {
    outcomes: Vec<Option<Outcome>>,
    queue: VecDeque<Attempt>,
}

impl BulkJob {
    pub fn new(items: usize) -> Self {
        let mut queue = VecDeque::new();
        if items > 0 {
            queue.push_back(Attempt { items: (0..items).collect(), retries: 0, last_error: None });
        }
        BulkJob { outcomes: vec![None; items], queue }
    }

    /// The next request to send, if any.
    pub fn next_attempt(&mut self) -> Option<Attempt> {
        self.queue.pop_front()
    }

    /// Records the answer to `attempt`. Returns the items to send again after a backoff
    /// (the caller decides whether the budget allows it), or the auth error that stops
    /// the run.
    pub fn record(&mut self, attempt: Attempt, verdict: Verdict) -> Result<Option<Attempt>, String> {
        match verdict {
            Verdict::Items(classes) => {
                debug_assert_eq!(classes.len(), attempt.items.len());
                let mut again = Vec::new();
                let mut last_error = None;
                for (&item, class) in attempt.items.iter().zip(classes) {
                    let outcome = match class {
                        ItemClass::Indexed => Outcome::Indexed,
                        ItemClass::Duplicate => Outcome::Duplicate,
                        ItemClass::Rejected(reason) => Outcome::Rejected { reason },
                        ItemClass::Auth(reason) => return Err(reason),
                        ItemClass::Retry(reason) => {
                            again.push(item);
                            last_error = Some(reason);
                            continue;
                        }
                    };
                    self.outcomes[item] = Some(outcome);
                }
                Ok((!again.is_empty()).then(|| Attempt { items: again, retries: attempt.retries + 1, last_error }))
            }
            Verdict::RetryAll(reason) => {
                Ok(Some(Attempt { items: attempt.items, retries: attempt.retries + 1, last_error: Some(reason) }))
            }
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
                self.queue.push_front(Attempt { items: second, retries, last_error: None });
                self.queue.push_front(Attempt { items: first, retries, last_error: None });
                Ok(None)
            }
            Verdict::Auth(reason) => Err(reason),
            Verdict::FailAll(reason) => {
                for item in attempt.items {
                    self.outcomes[item] = Some(Outcome::Failed { reason: reason.clone() });
                }
                Ok(None)
            }
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

/// Capped exponential backoff with "equal jitter": half the delay fixed, half random,
/// so concurrent clients spread out but none retries immediately.
/// `unit_random` is in `[0, 1)`; `retries` counts from 1.
pub fn backoff_delay(policy: &RetryPolicy, retries: u32, unit_random: f64) -> Duration {
    let exponent = retries.saturating_sub(1).min(30);
    let base = policy.initial_backoff.saturating_mul(1u32 << exponent).min(policy.max_backoff);
    let half = base / 2;
    half + half.mul_f64(unit_random.clamp(0.0, 1.0))
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
        IndexDoc { id: format!("{i:032x}"), ts_millis, doc: map, unseen_source: false }
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
        assert!(text.contains(&docs[1].id) && text.contains(&docs[3].id) && !text.contains(&docs[2].id));
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
            matches!(classify_response(401, err, Action::Create, &["a"]), Verdict::Auth(r) if r.contains("missing authentication"))
        );
        assert!(matches!(classify_response(403, b"", Action::Create, &["a"]), Verdict::Auth(_)));
        assert_eq!(classify_response(413, b"", Action::Create, &["a"]), Verdict::Split);
        for status in [429, 500, 502, 503, 504] {
            assert!(matches!(classify_response(status, b"", Action::Create, &["a"]), Verdict::RetryAll(_)), "{status}");
        }
        assert!(matches!(classify_response(400, b"{}", Action::Create, &["a"]), Verdict::FailAll(_)));
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
        assert!(job.record(a, Verdict::Auth("HTTP 401".into())).is_err());
    }

    #[test]
    fn backoff_grows_exponentially_is_capped_and_jittered() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retries: 10,
            budget: Duration::from_secs(60),
        };
        assert_eq!(backoff_delay(&policy, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff_delay(&policy, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(&policy, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(&policy, 20, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(&policy, 20, 0.0), Duration::from_secs(1));
        assert!(backoff_delay(&policy, u32::MAX, 0.5) <= Duration::from_secs(2));
    }

    proptest::proptest! {
        /// Whatever the cluster answers, a job ends with exactly one outcome per item.
        #[test]
        fn any_sequence_of_answers_yields_one_outcome_per_item(
            n in 1usize..40,
            script in proptest::collection::vec((0u8..6, proptest::collection::vec(0u8..5, 40)), 1..30),
        ) {
            let mut job = BulkJob::new(n);
            let mut answers = script.into_iter().cycle().take(200);
            while let Some(attempt) = job.next_attempt() {
                let (kind, items) = answers.next().unwrap_or((1, vec![]));
                let verdict = match kind {
                    0 => Verdict::RetryAll("x".into()),
                    1 => Verdict::Items(attempt.items.iter().map(|_| ItemClass::Indexed).collect()),
                    2 => Verdict::Split,
                    3 => Verdict::FailAll("x".into()),
                    _ => Verdict::Items(attempt.items.iter().zip(items.iter().cycle()).map(|(_, c)| match c {
                        0 => ItemClass::Indexed,
                        1 => ItemClass::Duplicate,
                        2 => ItemClass::Rejected("r".into()),
                        _ => ItemClass::Retry("t".into()),
                    }).collect()),
                };
                if let Some(retry) = job.record(attempt, verdict).unwrap() {
                    if retry.retries > 3 { job.give_up(retry, "budget") } else { job.retry(retry) }
                }
            }
            proptest::prop_assert_eq!(job.finish().len(), n);
        }
    }
}
