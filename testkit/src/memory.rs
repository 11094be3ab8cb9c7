//! An in-memory store implementing the storage contract ([`indexer::Store`] and
//! [`indexer::Backend`]): for tests that need a store but not a particular one, and the
//! third implementation the conformance suite runs against (`tests/memory_conformance.rs`),
//! the way tantivy tests its directories against a RAM directory.
//!
//! It keeps documents and source records, finds duplicates by id (always itself, like an
//! Elasticsearch `create`: the `unseen_source` hint is ignored), and makes writes
//! visible to searches at [`Backend::flush`]. It answers the query language the CLI
//! documents: `field:value`, `field:"phrase"`, bare words and phrases on `message`,
//! `AND`/`OR`/`NOT` and parentheses, ranges `[a TO b]`/`{a TO b}` with `*`, sets
//! `field: IN [a b]`, `_id:X`; and the `terms`, `date_histogram`, `stats` and
//! `cardinality` aggregations, nested. `message` goes through indexer's own tokenizer
//! ([`indexer::text`]), so Korean and Latin text match as on the real backends.
//!
//! Clones share one store, as two Lambda instances share a cluster. A test may script
//! the outcome of given ids ([`MemoryBackend::answer`]: refused, unfinished) and make
//! flushes fail ([`MemoryBackend::fail_flushes`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use indexer::doc_id::DocId;
use indexer::report::{BookingFacts, EventFlag, EventFlags, ReportWindow, RequestFacts};
use indexer::schema::{self, FieldKind};
use indexer::{
    Backend, Error, Hit, IndexDoc, JsonEncoder, Outcome, Result, SearchRequest, SearchResponse, SourceRecord, Store,
};
use serde_json::{json, Map, Value};

/// The in-memory store; see the module documentation.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    shared: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Flushed documents, in the order they were written.
    docs: Vec<IndexDoc>,
    /// Written since the last flush.
    pending: Vec<IndexDoc>,
    /// The ids of `docs` and `pending`.
    ids: HashSet<DocId>,
    /// Flushed source records, one per key.
    sources: BTreeMap<String, SourceRecord>,
    pending_sources: Vec<SourceRecord>,
    /// Scripted outcomes by id, answered instead of writing.
    answers: HashMap<DocId, Outcome>,
    fail_flushes: bool,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Every flushed document, in the order they were written.
    pub fn documents(&self) -> Vec<IndexDoc> {
        self.state().docs.clone()
    }

    /// The ids of the flushed documents.
    pub fn ids(&self) -> BTreeSet<DocId> {
        self.state().docs.iter().map(|doc| doc.id).collect()
    }

    /// From now on answers `outcome` for the document `id` instead of writing it: a
    /// refusal ([`Outcome::Rejected`]) or a write that did not finish ([`Outcome::Failed`]).
    pub fn answer(&self, id: DocId, outcome: Outcome) {
        self.state().answers.insert(id, outcome);
    }

    /// From now on every flush fails and loses what it would have committed, as a crash
    /// before the commit does.
    pub fn fail_flushes(&self) {
        self.state().fail_flushes = true;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left nothing half-written worth
        // refusing: every change below is a single push or move.
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn source_record(&self, key: &str) -> Result<Option<SourceRecord>> {
        let state = self.state();
        if let Some(pending) = state.pending_sources.iter().rev().find(|r| r.key == key) {
            return Ok(Some(pending.clone()));
        }
        Ok(state.sources.get(key).cloned())
    }

    fn search(&self, request: &SearchRequest) -> Result<SearchResponse> {
        let state = self.state();
        let mut docs = state.matching(request)?;
        let total = docs.len() as u64;
        let mut aggregations = Map::new();
        for agg in &request.aggs {
            let result = aggregate(&agg.request, &docs)
                .map_err(|message| Error::Aggregation { spec: agg.spec.clone(), message })?;
            aggregations.insert(agg.spec.clone(), result);
        }
        sort(&mut docs, request)?;
        let hits = docs
            .into_iter()
            .take(request.limit)
            .map(|doc| Hit { id: doc.id.to_string(), source: doc.doc.clone() })
            .collect();
        Ok(SearchResponse { total, hits, aggregations })
    }

    fn count(&self, request: &SearchRequest) -> Result<u64> {
        let state = self.state();
        Ok(state.matching(request)?.len() as u64)
    }

    fn sources(&self) -> Result<Vec<SourceRecord>> {
        let mut records: Vec<SourceRecord> = self.state().sources.values().cloned().collect();
        records.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.source.cmp(&b.source)));
        Ok(records)
    }

    fn booking_facts(&self, _window: &ReportWindow) -> Result<Vec<BookingFacts>> {
        Ok(booking_facts(&self.state().docs))
    }
}

impl Backend for MemoryBackend {
    type Doc = IndexDoc;
    type Encoder = JsonEncoder;

    fn encoder(&self) -> JsonEncoder {
        JsonEncoder
    }

    fn ensure_ready(&mut self) -> Result<()> {
        Ok(())
    }

    fn index_batch(&mut self, docs: &[IndexDoc]) -> Result<Vec<Outcome>> {
        let mut state = self.state();
        let mut outcomes = Vec::with_capacity(docs.len());
        for doc in docs {
            if let Some(answer) = state.answers.get(&doc.id) {
                outcomes.push(answer.clone());
            } else if state.ids.insert(doc.id) {
                state.pending.push(doc.clone());
                outcomes.push(Outcome::Indexed);
            } else {
                outcomes.push(Outcome::Duplicate);
            }
        }
        Ok(outcomes)
    }

    fn index_encoded(&mut self, docs: &mut [IndexDoc]) -> Result<Vec<Outcome>> {
        self.index_batch(docs)
    }

    fn record_source(&mut self, record: &SourceRecord) -> Result<()> {
        let mut state = self.state();
        state.pending_sources.retain(|r| r.key != record.key);
        state.pending_sources.push(record.clone());
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut state = self.state();
        if state.fail_flushes {
            state.discard_pending();
            return Err(Error::Unreachable("the memory backend was told to fail its flushes".into()));
        }
        let pending = std::mem::take(&mut state.pending);
        state.docs.extend(pending);
        for record in std::mem::take(&mut state.pending_sources) {
            state.sources.insert(record.key.clone(), record);
        }
        Ok(())
    }

    fn close(self) -> Result<()> {
        // Uncommitted writes are discarded, as the contract says.
        self.state().discard_pending();
        Ok(())
    }
}

impl State {
    /// The flushed documents `request` selects (query and time range), in write order.
    fn matching(&self, request: &SearchRequest) -> Result<Vec<&IndexDoc>> {
        let matcher = compile(&request.query)?;
        let in_range = |doc: &IndexDoc| {
            request.since_ms.is_none_or(|since| doc.ts_millis >= since)
                && request.until_ms.is_none_or(|until| doc.ts_millis < until)
        };
        Ok(self.docs.iter().filter(|doc| in_range(doc) && matcher.matches(doc)).collect())
    }

    fn discard_pending(&mut self) {
        for doc in std::mem::take(&mut self.pending) {
            self.ids.remove(&doc.id);
        }
        self.pending_sources.clear();
    }
}

// ---- queries -------------------------------------------------------------------------

/// A parsed query, before its fields are resolved.
#[derive(Debug)]
enum Query {
    All,
    Not(Box<Query>),
    And(Vec<Query>),
    Or(Vec<Query>),
    /// `field:value`, `field:"phrase"`, or (no field) a word or phrase on `message`.
    Term {
        field: Option<String>,
        text: String,
    },
    Range {
        field: String,
        lower: Bound,
        upper: Bound,
    },
    Set {
        field: String,
        values: Vec<String>,
    },
}

/// One end of a range as written: `*`, or a value and whether it is included.
#[derive(Debug, Clone)]
enum Bound {
    Open,
    Value(String, bool),
}

fn query_error(query: &str, message: impl Into<String>) -> Error {
    Error::Query { query: query.to_string(), message: message.into() }
}

/// A recursive-descent parser of the query language; `OR` binds loosest, then `AND`
/// (juxtaposition means `OR`, as in both real backends), then `NOT`.
struct Parser<'a> {
    query: &'a str,
    chars: Vec<char>,
    at: usize,
}

fn parse(query: &str) -> Result<Query> {
    if query.trim().is_empty() {
        return Ok(Query::All);
    }
    let mut parser = Parser { query, chars: query.chars().collect(), at: 0 };
    let parsed = parser.or()?;
    parser.skip_spaces();
    if parser.peek().is_some() {
        return Err(parser.error("unexpected text (an unbalanced parenthesis?)"));
    }
    Ok(parsed)
}

impl Parser<'_> {
    fn error(&self, message: &str) -> Error {
        query_error(self.query, format!("{message} at character {}", self.at))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// Whether the operator `word` stands here (after spaces) as a word of its own.
    fn at_keyword(&self, word: &str) -> bool {
        let mut at = self.at;
        while self.chars.get(at).is_some_and(|c| c.is_whitespace()) {
            at += 1;
        }
        let end = at + word.chars().count();
        self.chars.get(at..end).is_some_and(|w| w.iter().copied().eq(word.chars()))
            && self.chars.get(end).is_none_or(|c| c.is_whitespace() || *c == '(' || *c == '"')
    }

    /// Consumes the operator `word` if it stands here.
    fn keyword(&mut self, word: &str) -> bool {
        let found = self.at_keyword(word);
        if found {
            self.skip_spaces();
            self.at += word.chars().count();
        }
        found
    }

    fn or(&mut self) -> Result<Query> {
        let mut items = vec![self.and()?];
        loop {
            self.skip_spaces();
            if self.peek().is_none_or(|c| c == ')') {
                break;
            }
            self.keyword("OR");
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Query::Or(items) })
    }

    fn and(&mut self) -> Result<Query> {
        let mut items = vec![self.unary()?];
        while self.keyword("AND") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Query::And(items) })
    }

    fn unary(&mut self) -> Result<Query> {
        if self.keyword("NOT") {
            return Ok(Query::Not(Box::new(self.unary()?)));
        }
        self.skip_spaces();
        if self.at_keyword("AND") || self.at_keyword("OR") {
            return Err(self.error("an operator has no term before it"));
        }
        match self.peek() {
            None => Err(self.error("a term is missing")),
            Some(')') => Err(self.error("a term is missing before ')'")),
            Some('(') => {
                self.at += 1;
                let inner = self.or()?;
                self.skip_spaces();
                if self.peek() != Some(')') {
                    return Err(self.error("'(' is not closed"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(_) => self.term(),
        }
    }

    /// Characters up to whitespace, a parenthesis, a quote or (with `stop_at_colon`) ':'.
    fn word(&mut self, stop_at_colon: bool) -> String {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| !(c.is_whitespace() || matches!(c, '(' | ')' | '"') || (stop_at_colon && c == ':')))
        {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    /// Characters up to (not including) one of `ends`; `None` when the query ends first.
    fn until(&mut self, ends: &[char]) -> Option<(String, char)> {
        let start = self.at;
        while let Some(c) = self.peek() {
            if ends.contains(&c) {
                let text = self.chars[start..self.at].iter().collect();
                self.at += 1;
                return Some((text, c));
            }
            self.at += 1;
        }
        None
    }

    fn term(&mut self) -> Result<Query> {
        let start = self.at;
        let name = self.word(true);
        let field = if !name.is_empty() && self.peek() == Some(':') {
            self.at += 1;
            self.skip_spaces();
            Some(name)
        } else {
            self.at = start;
            None
        };
        match (self.peek(), field) {
            (Some('"'), field) => {
                self.at += 1;
                let (text, _) = self.until(&['"']).ok_or_else(|| self.error("a quote is not closed"))?;
                Ok(Query::Term { field, text })
            }
            (Some(open @ ('[' | '{')), Some(field)) => {
                self.at += 1;
                let (inside, close) = self.until(&[']', '}']).ok_or_else(|| self.error("a range is not closed"))?;
                let parts: Vec<&str> = inside.split_whitespace().collect();
                let [lower, "TO", upper] = parts[..] else {
                    return Err(self.error("a range is written [LOW TO HIGH]"));
                };
                let bound = |text: &str, included: bool| {
                    if text == "*" {
                        Bound::Open
                    } else {
                        Bound::Value(text.to_string(), included)
                    }
                };
                Ok(Query::Range { field, lower: bound(lower, open == '['), upper: bound(upper, close == ']') })
            }
            (_, Some(field)) if self.keyword("IN") => {
                self.skip_spaces();
                if self.peek() != Some('[') {
                    return Err(self.error("a set is written IN [a b]"));
                }
                self.at += 1;
                let (inside, _) = self.until(&[']']).ok_or_else(|| self.error("a set is not closed"))?;
                Ok(Query::Set { field, values: inside.split_whitespace().map(str::to_string).collect() })
            }
            (_, field) => {
                let text = self.word(false);
                if text.is_empty() {
                    return Err(self.error("a value is missing"));
                }
                Ok(Query::Term { field, text })
            }
        }
    }
}

/// A query with its fields resolved and its values parsed: what runs on each document.
enum Matcher {
    All,
    Not(Box<Matcher>),
    And(Vec<Matcher>),
    Or(Vec<Matcher>),
    Id(String),
    /// Event time in `[lower, upper]`, each end optional and inclusive or not.
    Time(Option<(i64, bool)>, Option<(i64, bool)>),
    Number(String, Option<(f64, bool)>, Option<(f64, bool)>),
    Keyword(String, String),
    KeywordRange(String, Option<(String, bool)>, Option<(String, bool)>),
    /// A phrase of `message`-tokenizer tokens with their relative positions.
    Text(String, Vec<(String, usize)>),
}

/// How a field written in a query is stored.
#[derive(PartialEq)]
enum Kind {
    Id,
    Time,
    Number,
    Text,
    Keyword,
}

fn kind_of(field: &str) -> Kind {
    if field == schema::ID {
        return Kind::Id;
    }
    if field == schema::ES_TIMESTAMP {
        return Kind::Time;
    }
    match schema::field_spec(field).map(|spec| spec.kind) {
        Some(FieldKind::Time) => Kind::Time,
        Some(FieldKind::Number) => Kind::Number,
        Some(FieldKind::Text) => Kind::Text,
        // Keywords, object sub-fields (`payment.method`) and unknown fields
        // (`client.app`) are exact-match strings.
        _ => Kind::Keyword,
    }
}

fn compile(query: &str) -> Result<Matcher> {
    resolve(query, parse(query)?)
}

fn resolve(query: &str, parsed: Query) -> Result<Matcher> {
    let err = |message: String| query_error(query, message);
    let all = |items: Vec<Query>| items.into_iter().map(|q| resolve(query, q)).collect::<Result<Vec<_>>>();
    Ok(match parsed {
        Query::All => Matcher::All,
        Query::Not(inner) => Matcher::Not(Box::new(resolve(query, *inner)?)),
        Query::And(items) => Matcher::And(all(items)?),
        Query::Or(items) => Matcher::Or(all(items)?),
        Query::Set { field, values } => Matcher::Or(
            values
                .into_iter()
                .map(|text| resolve(query, Query::Term { field: Some(field.clone()), text }))
                .collect::<Result<Vec<_>>>()?,
        ),
        Query::Term { field: None, text } => Matcher::Text(schema::MESSAGE.to_string(), phrase(&text)),
        Query::Term { field: Some(field), text } => match kind_of(&field) {
            Kind::Id => Matcher::Id(text),
            Kind::Time => {
                if let Some(instant) = parse_instant(&text) {
                    Matcher::Time(Some((instant, true)), Some((instant, true)))
                } else if let Some(day) = parse_day(&text) {
                    Matcher::Time(Some((day, true)), Some((day + DAY_MS, false)))
                } else {
                    return Err(err(format!("{text:?} is not a time (RFC 3339) or a date (YYYY-MM-DD)")));
                }
            }
            Kind::Number => {
                let n = parse_number(&text).ok_or_else(|| err(format!("{field}: {text:?} is not a number")))?;
                Matcher::Number(field, Some((n, true)), Some((n, true)))
            }
            Kind::Text => Matcher::Text(field, phrase(&text)),
            Kind::Keyword => Matcher::Keyword(field, text),
        },
        Query::Range { field, lower, upper } => {
            let ends = |bound: &Bound| match bound {
                Bound::Open => None,
                Bound::Value(text, included) => Some((text.clone(), *included)),
            };
            let (lower, upper) = (ends(&lower), ends(&upper));
            match kind_of(&field) {
                Kind::Time => {
                    let time = |end: Option<(String, bool)>| {
                        end.map(|(text, included)| {
                            parse_instant(&text)
                                .or_else(|| parse_day(&text))
                                .map(|t| (t, included))
                                .ok_or_else(|| err(format!("{text:?} is not a time (RFC 3339) or a date")))
                        })
                        .transpose()
                    };
                    Matcher::Time(time(lower)?, time(upper)?)
                }
                Kind::Number => {
                    let number = |end: Option<(String, bool)>| {
                        end.map(|(text, included)| {
                            parse_number(&text)
                                .map(|n| (n, included))
                                .ok_or_else(|| err(format!("{field}: {text:?} is not a number")))
                        })
                        .transpose()
                    };
                    Matcher::Number(field.clone(), number(lower)?, number(upper)?)
                }
                Kind::Keyword => Matcher::KeywordRange(field, lower, upper),
                Kind::Id | Kind::Text => return Err(err(format!("{field} has no order to take a range of"))),
            }
        }
    })
}

fn phrase(text: &str) -> Vec<(String, usize)> {
    indexer::text::tokens(text)
}

const DAY_MS: i64 = 86_400_000;

fn parse_instant(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

fn parse_day(text: &str) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn within<T: PartialOrd>(value: &T, lower: &Option<(T, bool)>, upper: &Option<(T, bool)>) -> bool {
    let above = match lower {
        None => true,
        Some((low, true)) => value >= low,
        Some((low, false)) => value > low,
    };
    let below = match upper {
        None => true,
        Some((high, true)) => value <= high,
        Some((high, false)) => value < high,
    };
    above && below
}

/// The values at a dotted path of a document, arrays opened.
fn values_at<'a>(doc: &'a Map<String, Value>, path: &str) -> Vec<&'a Value> {
    let mut current: Vec<&Value> = Vec::new();
    let mut parts = path.split('.');
    if let Some(first) = parts.next().and_then(|head| doc.get(head)) {
        current.push(first);
    }
    for part in parts {
        current = current.into_iter().filter_map(|v| v.get(part)).collect();
    }
    current
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .collect()
}

/// A value as the exact-match string a keyword field holds.
fn keyword_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Matcher {
    fn matches(&self, doc: &IndexDoc) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Not(inner) => !inner.matches(doc),
            Matcher::And(items) => items.iter().all(|m| m.matches(doc)),
            Matcher::Or(items) => items.iter().any(|m| m.matches(doc)),
            Matcher::Id(id) => doc.id.to_string() == *id,
            Matcher::Time(lower, upper) => within(&doc.ts_millis, lower, upper),
            Matcher::Number(field, lower, upper) => {
                values_at(&doc.doc, field).into_iter().filter_map(Value::as_f64).any(|n| within(&n, lower, upper))
            }
            Matcher::Keyword(field, text) => {
                values_at(&doc.doc, field).into_iter().filter_map(keyword_text).any(|v| v == *text)
            }
            Matcher::KeywordRange(field, lower, upper) => {
                values_at(&doc.doc, field).into_iter().filter_map(keyword_text).any(|v| within(&v, lower, upper))
            }
            Matcher::Text(field, phrase) => values_at(&doc.doc, field)
                .into_iter()
                .filter_map(Value::as_str)
                .any(|text| contains_phrase(&indexer::text::tokens(text), phrase)),
        }
    }
}

/// Whether `tokens` hold every token of `phrase` at the same distances from each other
/// (a phrase query; a one-token phrase is a term query). An empty phrase matches nothing.
fn contains_phrase(tokens: &[(String, usize)], phrase: &[(String, usize)]) -> bool {
    let Some((first, first_at)) = phrase.first() else { return false };
    let present: HashSet<(&str, usize)> = tokens.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    tokens.iter().filter(|(t, p)| t == first && *p >= *first_at).any(|(_, p)| {
        let base = p - first_at;
        phrase.iter().all(|(t, at)| present.contains(&(t.as_str(), base + at)))
    })
}

// ---- sorting and aggregations --------------------------------------------------------

/// A sort key: missing values sort last in either direction.
#[derive(PartialEq, PartialOrd)]
enum SortKey {
    Number(f64),
    Text(String),
}

fn sort(docs: &mut [&IndexDoc], request: &SearchRequest) -> Result<()> {
    let (field, descending) = match &request.sort {
        Some(spec) => (spec.field.as_str(), spec.descending),
        None => (schema::TS, true),
    };
    let kind = kind_of(field);
    if matches!(kind, Kind::Id | Kind::Text) {
        return Err(query_error(&request.query, format!("cannot sort by {field:?}")));
    }
    let key = |doc: &IndexDoc| -> Option<SortKey> {
        match kind {
            Kind::Time => Some(SortKey::Number(doc.ts_millis as f64)),
            Kind::Number => values_at(&doc.doc, field).into_iter().find_map(Value::as_f64).map(SortKey::Number),
            _ => values_at(&doc.doc, field).into_iter().find_map(keyword_text).map(SortKey::Text),
        }
    };
    docs.sort_by(|a, b| match (key(a), key(b)) {
        (Some(x), Some(y)) => {
            let order = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
            if descending {
                order.reverse()
            } else {
                order
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
    Ok(())
}

/// One aggregation request (Elasticsearch-shaped, as [`indexer::AggSpec`] holds it) over
/// `docs`, answered in Elasticsearch's shape.
fn aggregate(request: &Value, docs: &[&IndexDoc]) -> std::result::Result<Value, String> {
    let kind = request.as_object().and_then(|m| m.keys().find(|k| *k != "aggs")).map(String::as_str).unwrap_or("");
    let body = &request[kind];
    let field = body["field"].as_str().unwrap_or_default();
    let min_doc_count = body.get("min_doc_count").and_then(Value::as_u64).unwrap_or(1) as usize;
    match kind {
        "terms" => {
            let mut groups: BTreeMap<String, (Value, Vec<&IndexDoc>)> = BTreeMap::new();
            for doc in docs {
                let mut seen = BTreeSet::new();
                for value in values_at(&doc.doc, field) {
                    let Some(text) = keyword_text(value) else { continue };
                    if seen.insert(text.clone()) {
                        groups.entry(text).or_insert_with(|| (value.clone(), Vec::new())).1.push(doc);
                    }
                }
            }
            let mut groups: Vec<(Value, Vec<&IndexDoc>)> =
                groups.into_values().filter(|(_, members)| members.len() >= min_doc_count.max(1)).collect();
            // Count descending; ties keep the key order of the map (ascending).
            groups.sort_by_key(|(_, members)| std::cmp::Reverse(members.len()));
            let size = body["size"].as_u64().unwrap_or(indexer::backend::DEFAULT_TERMS_SIZE) as usize;
            let other: usize = groups.iter().skip(size).map(|(_, members)| members.len()).sum();
            groups.truncate(size);
            let buckets = groups
                .into_iter()
                .map(|(key, members)| bucket(request, json!({"key": key}), &members))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(json!({"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets}))
        }
        "date_histogram" => {
            if kind_of(field) != Kind::Time {
                return Err(format!("{field} is not a time field"));
            }
            let text = body["fixed_interval"].as_str().unwrap_or_default();
            let interval =
                indexer::backend::fixed_interval_ms(text).ok_or_else(|| format!("{text:?} is not a fixed interval"))?;
            let mut groups: BTreeMap<i64, Vec<&IndexDoc>> = BTreeMap::new();
            for doc in docs {
                groups.entry(doc.ts_millis - doc.ts_millis.rem_euclid(interval)).or_default().push(doc);
            }
            if min_doc_count == 0 {
                if let (Some(&first), Some(&last)) = (groups.keys().next(), groups.keys().next_back()) {
                    let mut at = first;
                    while at < last {
                        groups.entry(at).or_default();
                        at += interval;
                    }
                }
            }
            let buckets = groups
                .into_iter()
                .filter(|(_, members)| members.len() >= min_doc_count)
                .map(|(key, members)| {
                    bucket(request, json!({"key_as_string": indexer::civil::rfc3339_millis(key), "key": key}), &members)
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(json!({"buckets": buckets}))
        }
        "stats" => {
            let values: Vec<f64> =
                docs.iter().flat_map(|d| values_at(&d.doc, field)).filter_map(Value::as_f64).collect();
            let sum: f64 = values.iter().sum();
            let count = values.len();
            Ok(json!({
                "count": count,
                "min": values.iter().cloned().reduce(f64::min),
                "max": values.iter().cloned().reduce(f64::max),
                "avg": (count > 0).then(|| sum / count as f64),
                "sum": sum,
            }))
        }
        "cardinality" => {
            let distinct: BTreeSet<String> =
                docs.iter().flat_map(|d| values_at(&d.doc, field)).filter_map(keyword_text).collect();
            Ok(json!({"value": distinct.len()}))
        }
        other => Err(format!("the memory backend has no {other:?} aggregation")),
    }
}

/// A bucket: its key fields, its count, and its sub-aggregations over `members`.
fn bucket(request: &Value, key: Value, members: &[&IndexDoc]) -> std::result::Result<Value, String> {
    let mut out = key;
    out["doc_count"] = json!(members.len());
    if let Some(subs) = request.get("aggs").and_then(Value::as_object) {
        for (name, sub) in subs {
            out[name.as_str()] = aggregate(sub, members)?;
        }
    }
    Ok(out)
}

// ---- the booking report --------------------------------------------------------------

fn text<'a>(doc: &'a IndexDoc, field: &str) -> Option<&'a str> {
    doc.doc.get(field).and_then(Value::as_str)
}

/// What one pass over a booking's events has seen so far.
#[derive(Default)]
struct Seen {
    flags: EventFlags,
    request: Option<RequestFacts>,
    /// Each confirmed seat with the confirmation's own `show_id`, if it has one.
    confirmed: Vec<(Option<String>, String)>,
}

/// The facts of every booking, in one pass over the documents (the report filters by
/// window).
fn booking_facts(docs: &[IndexDoc]) -> Vec<BookingFacts> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for doc in docs {
        let (Some(booking_id), Some(flag)) = (text(doc, "booking_id"), text(doc, "type").and_then(EventFlag::of_type))
        else {
            continue;
        };
        let booking = seen.entry(booking_id.to_string()).or_default();
        booking.flags.insert(flag);
        match flag {
            EventFlag::Requested if booking.request.as_ref().is_none_or(|r| doc.ts_millis < r.ts_millis) => {
                booking.request = Some(RequestFacts {
                    ts_millis: doc.ts_millis,
                    venue: text(doc, "venue").map(str::to_string),
                    show_id: text(doc, "show_id").map(str::to_string),
                });
            }
            EventFlag::Confirmed => {
                let show = text(doc, "show_id").map(str::to_string);
                for seat in values_at(&doc.doc, "seat").into_iter().filter_map(Value::as_str) {
                    booking.confirmed.push((show.clone(), seat.to_string()));
                }
            }
            _ => {}
        }
    }
    seen.into_iter()
        .map(|(booking_id, booking)| {
            // A confirmation without a show is of the show the booking was requested for.
            let requested_show = booking.request.as_ref().and_then(|r| r.show_id.clone());
            let seats: BTreeSet<(String, String)> = booking
                .confirmed
                .into_iter()
                .filter_map(|(show, seat)| Some((show.or_else(|| requested_show.clone())?, seat)))
                .collect();
            BookingFacts {
                booking_id,
                request: booking.request,
                flags: booking.flags,
                confirmed_seats: seats.into_iter().collect(),
            }
        })
        .collect()
}
