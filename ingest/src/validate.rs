//! Record validation: turns the bytes of one record into a [`ValidEvent`] that both
//! backends can index faithfully, or a [`Rejection`] whose reason names the field
//! (ARCHITECTURE.md, "The booking event"). Owns the event-time rules and [`format_ts`].
//!
//! The record is parsed exactly once, by a custom serde visitor that builds the
//! `serde_json::Value` tree itself: `serde_json::Value`'s own impl silently keeps the
//! last of two equal keys, which Elasticsearch would refuse, and the visitor is also
//! where the depth limit is enforced without risking the stack.
//!
//! Numbers never change silently. Integers within 64 bits stay exact (serde_json keeps
//! them as `u64`/`i64`, and so do `_source` and the bulk body); an integer literal beyond
//! 64 bits, which serde_json would turn into a float, rejects the record naming the field
//! (keeping it exact would take serde_json's `arbitrary_precision`, which changes every
//! crate's numbers). `amount` and `latency_ms` are indexed as doubles by both backends
//! (a tantivy f64 column, an Elasticsearch `double`): an integer there that a double cannot
//! hold exactly (beyond ±2^53, bar the few that happen to fit) rejects the record too, rather
//! than store one value in `_source` and index another that `amount:X`, ranges, sorts and
//! sums would silently use. No real amount or latency comes near 2^53 (9e15 minor units).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use indexer::schema::{self, FieldKind, FieldSpec, FIELDS};

use crate::error::Rejection;
use crate::limits::Limits;

/// A record that passed validation, with its canonical event time and type.
///
/// `doc` starts with `ts` (the canonical RFC 3339 UTC time, see [`format_ts`]); the time
/// alias that was used is gone, `event_type` was renamed to `type` when it supplied the
/// type, nulls of known optional fields are removed, and top-level dotted keys are
/// expanded into objects. Every unknown field is kept as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    pub ts_millis: i64,
    pub event_type: String,
    pub event_id: Option<String>,
    pub doc: Map<String, Value>,
}

/// 2000-01-01T00:00:00Z.
const MIN_TS_MILLIS: i64 = 946_684_800_000;
/// 2101-01-01T00:00:00Z (exclusive), so every instant of the year 2100 is accepted.
const END_TS_MILLIS: i64 = 4_133_980_800_000;
/// Integers smaller than this (in magnitude) are epoch seconds: 1e11 s is the year 5138,
/// while 1e11 ms is 1973, so no valid time is ambiguous.
const SECONDS_BELOW: u64 = 100_000_000_000;
/// serde_json refuses a 128th nested level on its own; deeper configured limits cannot
/// be honoured, and reasons must say what was actually enforced.
const SERDE_JSON_DEPTH: usize = 127;

/// Parse one raw record (bytes of one NDJSON line / array element) and check it against
/// the booking-event contract.
pub fn parse_and_validate(raw: &[u8], limits: &Limits) -> Result<ValidEvent, Rejection> {
    if raw.len() > limits.max_record_bytes {
        return Err(Rejection::limit(format!(
            "record is {} bytes, over the {}-byte limit",
            raw.len(),
            limits.max_record_bytes
        )));
    }
    let text = std::str::from_utf8(raw)
        .map_err(|e| Rejection::decode(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    // Editors on Windows prepend a BOM; it is not content, and JSON parsers refuse it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let max_depth = limits.max_depth.min(SERDE_JSON_DEPTH);

    let doc = parse_object(text, max_depth)?;
    let mut doc = expand_top_level(doc, max_depth)?;
    let checked = check_fields(&doc)?;

    if checked.remove_nulls {
        doc.retain(|k, v| !(v.is_null() && known_field(k).is_some()));
    }
    if checked.payment_nulls {
        if let Some(Value::Object(p)) = doc.get_mut(schema::PAYMENT) {
            p.retain(|k, v| !(v.is_null() && schema::PAYMENT_KEYWORDS.contains(&k.as_str())));
        }
    }

    let (alias, ts_millis) = checked.time.ok_or_else(|| missing(schema::TS))?;
    let ts_millis = ts_millis?;
    let ts_value = Value::String(format_ts(ts_millis));
    if alias == schema::TS && doc.keys().next().map(String::as_str) == Some(schema::TS) {
        if let Some(v) = doc.get_mut(schema::TS) {
            *v = ts_value;
        }
    } else {
        doc.shift_remove(alias);
        doc.shift_insert(0, schema::TS.to_owned(), ts_value);
    }
    if alias == schema::TS {
        // Equal to `ts` (checked above): a copy, and Elasticsearch's own time field.
        doc.shift_remove(schema::ES_TIMESTAMP);
    }

    let (type_field, event_type) = checked.event_type.ok_or_else(|| missing(schema::TYPE))?;
    if type_field != schema::TYPE {
        doc.shift_remove(type_field);
        doc.shift_insert(1, schema::TYPE.to_owned(), Value::String(event_type.clone()));
    }

    Ok(ValidEvent { ts_millis, event_type, event_id: checked.event_id, doc })
}

/// The canonical `ts` text: RFC 3339 UTC with millisecond precision,
/// `"2024-02-05T10:11:12.345Z"` (written by the one RFC 3339 writer, in `indexer::civil`).
pub use indexer::civil::rfc3339_millis as format_ts;

fn year_of(ts_millis: i64) -> i64 {
    indexer::civil::civil_from_days(ts_millis.div_euclid(86_400_000)).0
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Why the visitor stopped. serde's error type can only carry a message, and its message
/// gains a position suffix, so the precise outcome travels beside it.
enum ParseFailure {
    /// Path from the outermost key down to the duplicated key, collected innermost first.
    Duplicate(Vec<String>),
    /// Path to the object holding the empty key, innermost first.
    EmptyKey(Vec<String>),
    /// Path to an integer literal beyond 64 bits, innermost first.
    BigInteger(Vec<String>),
    TooDeep,
}

struct Ctx<'t> {
    max_depth: usize,
    failure: Cell<Option<ParseFailure>>,
    /// The record's text, to tell an integer literal beyond 64 bits (which serde_json
    /// hands over as a float) from a float literal.
    text: &'t str,
    /// Numbers visited so far, in document order (the order of their literals).
    numbers: Cell<usize>,
}

impl Ctx<'_> {
    /// Counts a number; its index among the record's number literals.
    fn next_number(&self) -> usize {
        let n = self.numbers.get();
        self.numbers.set(n + 1);
        n
    }

    fn fail<E: de::Error>(&self, failure: ParseFailure) -> E {
        self.failure.set(Some(failure));
        E::custom("invalid record")
    }

    /// Called while an error unwinds through the value of `key`.
    fn add_parent(&self, key: &str) {
        match self.failure.take() {
            Some(ParseFailure::Duplicate(mut path)) => {
                path.push(key.to_owned());
                self.failure.set(Some(ParseFailure::Duplicate(path)));
            }
            Some(ParseFailure::EmptyKey(mut path)) => {
                path.push(key.to_owned());
                self.failure.set(Some(ParseFailure::EmptyKey(path)));
            }
            Some(ParseFailure::BigInteger(mut path)) => {
                path.push(key.to_owned());
                self.failure.set(Some(ParseFailure::BigInteger(path)));
            }
            other => self.failure.set(other),
        }
    }
}

/// Builds a `Value` at nesting level `depth` (the record's object is level 1).
#[derive(Clone, Copy)]
struct ValueSeed<'c> {
    ctx: &'c Ctx<'c>,
    depth: usize,
}

impl<'c> ValueSeed<'c> {
    fn enter<E: de::Error>(self) -> Result<ValueSeed<'c>, E> {
        if self.depth > self.ctx.max_depth {
            return Err(self.ctx.fail(ParseFailure::TooDeep));
        }
        Ok(ValueSeed { ctx: self.ctx, depth: self.depth + 1 })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        self.ctx.next_number();
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        self.ctx.next_number();
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        let index = self.ctx.next_number();
        // serde_json hands an integer literal beyond u64/i64 over as the nearest float;
        // only such a value can have come from one, and the literal tells which it was.
        let beyond_64_bits =
            v.fract() == 0.0 && (v >= 18_446_744_073_709_551_616.0 || v <= -9_223_372_036_854_775_808.0);
        if beyond_64_bits && nth_number_literal(self.ctx.text, index).is_some_and(is_integer_literal) {
            return Err(self.ctx.fail(ParseFailure::BigInteger(Vec::new())));
        }
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.enter()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(child)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let child = self.enter()?;
        // serde_json gives no size hint for objects; growing the record's own map from
        // empty costs several rehashes on every record.
        let mut map = if self.depth == 1 { Map::with_capacity(32) } else { Map::new() };
        while let Some(key) = access.next_key::<String>()? {
            if key.is_empty() {
                return Err(self.ctx.fail(ParseFailure::EmptyKey(Vec::new())));
            }
            let value = match access.next_value_seed(child) {
                Ok(v) => v,
                Err(e) => {
                    self.ctx.add_parent(&key);
                    return Err(e);
                }
            };
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) => {
                    let dup = vec![slot.key().clone()];
                    return Err(self.ctx.fail(ParseFailure::Duplicate(dup)));
                }
            }
        }
        Ok(Value::Object(map))
    }
}

fn parse_object(text: &str, max_depth: usize) -> Result<Map<String, Value>, Rejection> {
    let first = text.bytes().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(b'{') {
        return Err(not_an_object(text, first, max_depth));
    }
    let ctx = Ctx { max_depth, failure: Cell::new(None), text, numbers: Cell::new(0) };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed { ctx: &ctx, depth: 1 }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Rejection::decode("record is not a JSON object")),
        Err(e) => Err(match ctx.failure.take() {
            Some(ParseFailure::TooDeep) => too_deep(max_depth),
            Some(ParseFailure::Duplicate(mut path)) => {
                path.reverse();
                Rejection::validation(format!("field `{}` appears twice", label(&path.join("."))))
            }
            Some(ParseFailure::BigInteger(mut path)) => {
                path.reverse();
                let field =
                    if path.is_empty() { "a value".to_string() } else { format!("`{}`", label(&path.join("."))) };
                Rejection::validation(format!(
                    "field {field}: integer beyond 64 bits, which would lose digits; send it as a string"
                ))
            }
            Some(ParseFailure::EmptyKey(path)) if path.is_empty() => Rejection::validation("empty field name"),
            Some(ParseFailure::EmptyKey(mut path)) => {
                path.reverse();
                Rejection::validation(format!("empty field name in `{}`", label(&path.join("."))))
            }
            None => serde_rejection(&e, max_depth),
        }),
    }
}

/// The text of the `n`th number literal of a JSON text (0-based, in document order), by
/// a scan that skips strings. Only asked about a float that may have been a big integer.
fn nth_number_literal(text: &str, n: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    let (mut i, mut seen) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    i += 1;
                }
                if seen == n {
                    return text.get(start..i);
                }
                seen += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// Whether a JSON number literal is an integer (no fraction, no exponent).
fn is_integer_literal(literal: &str) -> bool {
    !literal.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// Whether a number is the same value as the double both backends index for it.
fn exact_as_f64(n: &Number) -> bool {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => (i as f64) as i128 == i128::from(i),
        (None, Some(u)) => (u as f64) as i128 == i128::from(u),
        _ => true,
    }
}

/// The record does not start with `{`: report bad JSON as such, else name its type.
fn not_an_object(text: &str, first: Option<u8>, max_depth: usize) -> Rejection {
    if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
        return serde_rejection(&e, max_depth);
    }
    let kind = match first {
        Some(b'[') => "a JSON array",
        Some(b'"') => "a JSON string",
        Some(b't' | b'f') => "a JSON boolean",
        Some(b'n') => "JSON null",
        _ => "a JSON number",
    };
    Rejection::decode(format!("record is {kind}, expected an object"))
}

fn serde_rejection(e: &serde_json::Error, max_depth: usize) -> Rejection {
    let msg = e.to_string();
    if msg.starts_with("recursion limit exceeded") {
        too_deep(max_depth)
    } else {
        Rejection::decode(msg)
    }
}

fn too_deep(max_depth: usize) -> Rejection {
    Rejection::limit(format!("nesting deeper than {max_depth} levels"))
}

/// A field name as it may appear in a reason: short, printable, and never something that
/// looks like the personal data the redactor would hide, because reasons are stored
/// unredacted in the dead-letter store.
fn label(name: &str) -> String {
    let digits = name.bytes().filter(u8::is_ascii_digit).count();
    if digits >= 7 || crate::redact::contains_email(name) {
        return "<field name withheld>".to_owned();
    }
    let mut out = String::with_capacity(name.len().min(64));
    for (i, c) in name.chars().enumerate() {
        if i == 64 {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Field names and dotted keys
// ---------------------------------------------------------------------------------------

/// Refuses reserved names and expands top-level dotted keys (`"payment.method"`) into
/// objects, as Elasticsearch would, so that both backends see the same document and the
/// type checks apply to the expanded fields.
fn expand_top_level(doc: Map<String, Value>, max_depth: usize) -> Result<Map<String, Value>, Rejection> {
    let mut dotted = false;
    for key in doc.keys() {
        if key.starts_with('_') {
            return Err(Rejection::validation(format!("{}: field names starting with '_' are reserved", label(key))));
        }
        dotted |= key.contains('.');
    }
    if !dotted {
        return Ok(doc);
    }
    let mut out = Map::with_capacity(doc.len());
    for (key, value) in doc {
        let segments: Vec<&str> = key.split('.').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(Rejection::validation(format!("{}: contains an empty field name", label(&key))));
        }
        if segments.len() + height(&value) > max_depth {
            return Err(too_deep(max_depth));
        }
        insert_path(&mut out, &segments, value).map_err(|path| {
            Rejection::validation(format!("{}: conflicts with an existing field", label(&path.join("."))))
        })?;
    }
    Ok(out)
}

/// Levels of nesting inside `value` (0 for a scalar). Bounded by the parse depth limit.
fn height(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(height).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(height).max().unwrap_or(0),
        _ => 0,
    }
}

/// Inserts `value` at `segments`, creating objects on the way and merging objects that
/// meet. Err carries the path of the conflicting field.
fn insert_path(map: &mut Map<String, Value>, segments: &[&str], value: Value) -> Result<(), Vec<String>> {
    let owned = || segments.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let Some((last, parents)) = segments.split_last() else {
        return Ok(());
    };
    let mut cur = map;
    for seg in parents {
        let slot = cur.entry(*seg).or_insert_with(|| Value::Object(Map::new()));
        match slot {
            Value::Object(inner) => cur = inner,
            _ => return Err(owned()),
        }
    }
    match cur.entry(*last) {
        Entry::Vacant(slot) => {
            slot.insert(value);
            Ok(())
        }
        Entry::Occupied(mut slot) => match (slot.get_mut(), value) {
            (Value::Object(existing), Value::Object(incoming)) => merge(existing, incoming).map_err(|mut tail| {
                tail.reverse();
                let mut path = owned();
                path.extend(tail);
                path
            }),
            _ => Err(owned()),
        },
    }
}

/// Err carries the conflicting path below `existing`, innermost first.
fn merge(existing: &mut Map<String, Value>, incoming: Map<String, Value>) -> Result<(), Vec<String>> {
    for (key, value) in incoming {
        match existing.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(mut slot) => {
                let key = slot.key().clone();
                match (slot.get_mut(), value) {
                    (Value::Object(a), Value::Object(b)) => merge(a, b).map_err(|mut p| {
                        p.push(key);
                        p
                    })?,
                    _ => return Err(vec![key]),
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Known fields
// ---------------------------------------------------------------------------------------

struct Checked {
    /// The time spelling used and its parsed value (or the reason it does not parse).
    time: Option<(&'static str, Result<i64, Rejection>)>,
    /// The type spelling used and its value.
    event_type: Option<(&'static str, String)>,
    event_id: Option<String>,
    remove_nulls: bool,
    payment_nulls: bool,
}

/// A key of [`FIELDS`] as a record may spell it: the field, the spelling's rank (0 for
/// its name, then its aliases in priority order) and the spelling.
///
/// Runs for every top-level key of every record. The scans over the constant table
/// compile to comparisons against constant strings; names come first because most keys
/// are names, and a scan mixing in the aliases cost three times as many instructions.
fn known_field(key: &str) -> Option<(&'static FieldSpec, usize, &'static str)> {
    for spec in FIELDS {
        if spec.name == key {
            return Some((spec, 0, spec.name));
        }
    }
    for spec in FIELDS {
        if let Some(i) = spec.aliases.iter().position(|alias| *alias == key) {
            return Some((spec, i + 1, spec.aliases[i]));
        }
    }
    None
}

/// The rejection of a record without the required field `name`, listing its aliases.
fn missing(name: &str) -> Rejection {
    let aliases = schema::field_spec(name).map(|spec| spec.aliases.join(", ")).unwrap_or_default();
    Rejection::validation(format!("{name}: missing (also looked for {aliases})"))
}

/// Keeps the best-ranked spelling of a field given under several.
fn prefer<'v>(
    best: &mut Option<(usize, &'static str, &'v Value)>,
    rank: usize,
    spelling: &'static str,
    value: &'v Value,
) {
    if best.is_none_or(|(best, _, _)| rank < best) {
        *best = Some((rank, spelling, value));
    }
}

/// One pass over the top-level entries, without hashing: checks every known field (a
/// `null` means absent) and picks the time and type spellings.
fn check_fields(doc: &Map<String, Value>) -> Result<Checked, Rejection> {
    let mut time: Option<(usize, &'static str, &Value)> = None;
    let mut event_type: Option<(usize, &'static str, &Value)> = None;
    let mut checked =
        Checked { time: None, event_type: None, event_id: None, remove_nulls: false, payment_nulls: false };
    for (key, value) in doc {
        let Some((spec, rank, spelling)) = known_field(key) else { continue };
        if value.is_null() {
            checked.remove_nulls = true;
            continue;
        }
        match (spec.kind, spec.name) {
            (FieldKind::Time, _) => prefer(&mut time, rank, spelling, value),
            (_, schema::TYPE) => prefer(&mut event_type, rank, spelling, value),
            (_, schema::EVENT_ID) => match value {
                Value::String(s) if s.is_empty() => return Err(Rejection::validation("event_id: must not be empty")),
                Value::String(s) => checked.event_id = Some(s.clone()),
                _ => return Err(Rejection::validation("event_id: expected a string")),
            },
            (FieldKind::Keyword { .. }, _) if spec.many => {
                let ok = match value {
                    Value::String(_) => true,
                    Value::Array(items) => items.iter().all(Value::is_string),
                    _ => false,
                };
                if !ok {
                    return Err(Rejection::validation(format!("{key}: expected a string or an array of strings")));
                }
            }
            (FieldKind::Keyword { .. } | FieldKind::Text, _) if !value.is_string() => {
                return Err(Rejection::validation(format!("{key}: expected a string")));
            }
            (FieldKind::Object, _) => {
                let Value::Object(object) = value else {
                    return Err(Rejection::validation(format!("{key}: expected an object")));
                };
                for sub in schema::PAYMENT_KEYWORDS {
                    match object.get(*sub) {
                        None | Some(Value::String(_)) => {}
                        Some(Value::Null) => checked.payment_nulls = true,
                        Some(_) => return Err(Rejection::validation(format!("{key}.{sub}: expected a string"))),
                    }
                }
            }
            (FieldKind::Number, _) if !value.is_number() => {
                return Err(Rejection::validation(format!("{key}: expected a number")));
            }
            (FieldKind::Number, _) if !value.as_number().is_some_and(exact_as_f64) => {
                return Err(Rejection::validation(format!(
                    "{key}: integer beyond ±2^53, which a double cannot hold exactly; both backends index {key} \
                     as a double, so it would be stored as one value and searched as another"
                )));
            }
            _ => {}
        }
    }

    // Elasticsearch stores the event time as `@timestamp` (`ts` is an alias of it): a
    // second, different `@timestamp` beside `ts` cannot be kept faithfully there.
    if let Some((_, schema::TS, ts_value)) = time {
        if doc.get(schema::ES_TIMESTAMP).is_some_and(|at| !at.is_null() && at != ts_value) {
            return Err(Rejection::validation(
                "@timestamp: differs from ts; send one time field (Elasticsearch keeps the event time as @timestamp)",
            ));
        }
    }
    checked.time = time.map(|(_, name, value)| (name, parse_time(name, value)));
    if let Some((_, type_name, v)) = event_type {
        match v {
            Value::String(s) if s.trim().is_empty() => {
                return Err(Rejection::validation(format!("{type_name}: must not be empty")))
            }
            Value::String(s) => checked.event_type = Some((type_name, s.clone())),
            _ => return Err(Rejection::validation(format!("{type_name}: expected a non-empty string"))),
        }
    }
    Ok(checked)
}

/// Event time in epoch milliseconds, from an RFC 3339 string (any offset) or an integer
/// epoch in seconds or milliseconds; sub-millisecond digits are truncated.
fn parse_time(name: &str, value: &Value) -> Result<i64, Rejection> {
    let expected = || Rejection::validation(format!("{name}: expected an RFC 3339 string or epoch milliseconds"));
    let millis = match value {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).map_err(|_| expected())?.timestamp_millis(),
        Value::Number(n) => {
            let n = n.as_i64().ok_or_else(expected)?;
            if n.unsigned_abs() < SECONDS_BELOW {
                n * 1000
            } else {
                n
            }
        }
        _ => return Err(expected()),
    };
    if !(MIN_TS_MILLIS..END_TS_MILLIS).contains(&millis) {
        return Err(Rejection::validation(format!("{name}: year {} is outside 2000..2100", year_of(millis))));
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RejectKind;
    use proptest::prelude::*;
    use serde_json::json;

    const TS: &str = r#""ts":"2024-02-05T10:11:12.345Z""#;

    /// ARCHITECTURE.md's accepted spellings of the event time, in priority order, stated
    /// here independently of the schema the code derives them from.
    const TIME_FIELDS: [&str; 4] = ["ts", "@timestamp", "timestamp", "time"];

    /// ARCHITECTURE.md's exact-match fields that must be strings when present.
    const STRING_FIELDS: &str = "service level booking_id customer_id show_id venue status currency region trace_id";

    fn ok(raw: &str) -> ValidEvent {
        match parse_and_validate(raw.as_bytes(), &Limits::default()) {
            Ok(ev) => ev,
            Err(r) => panic!("expected {raw} to pass, got {r}"),
        }
    }

    fn rejected(raw: &[u8]) -> Rejection {
        match parse_and_validate(raw, &Limits::default()) {
            Ok(ev) => panic!("expected a rejection, got {:?}", ev.doc),
            Err(r) => r,
        }
    }

    fn reason(raw: &str) -> String {
        rejected(raw.as_bytes()).reason
    }

    fn keys(ev: &ValidEvent) -> Vec<&str> {
        ev.doc.keys().map(String::as_str).collect()
    }

    /// An event with time and type plus `extra` fields (a JSON object body without braces).
    fn with(extra: &str) -> String {
        format!(r#"{{{TS},"type":"booking.confirmed",{extra}}}"#)
    }

    #[test]
    fn a_minimal_event_passes_with_canonical_time_and_type() {
        let ev = ok(r#"{"type":"booking.confirmed","ts":"2024-02-05T10:11:12.345Z","venue":"Olympic Hall"}"#);
        assert_eq!(ev.ts_millis, 1_707_127_872_345);
        assert_eq!(ev.event_type, "booking.confirmed");
        assert_eq!(ev.event_id, None);
        assert_eq!(keys(&ev), ["ts", "type", "venue"]);
        assert_eq!(ev.doc["ts"], "2024-02-05T10:11:12.345Z");
    }

    #[test]
    fn unknown_fields_are_kept_as_they_came() {
        let ev = ok(&with(r#""extra":{"a":[1,2.5,null,true],"b":"x"},"n":null"#));
        assert_eq!(ev.doc["extra"], json!({"a":[1,2.5,null,true],"b":"x"}));
        assert_eq!(ev.doc["n"], Value::Null);
    }

    #[test]
    fn invalid_utf8_is_a_decode_rejection_naming_the_byte() {
        let mut raw = with(r#""message":"caf"#).into_bytes();
        let at = raw.len();
        raw.extend_from_slice(b"\xff\"}");
        let r = rejected(&raw);
        assert_eq!(r.kind, RejectKind::Decode);
        assert_eq!(r.reason, format!("invalid UTF-8 at byte {at}"));
    }

    #[test]
    fn malformed_json_is_a_decode_rejection_with_its_position() {
        let r = rejected(br#"{"ts": "2024-02-05T10:11:12Z", "type": }"#);
        assert_eq!(r.kind, RejectKind::Decode);
        assert!(r.reason.contains("line 1 column"), "{}", r.reason);
    }

    #[test]
    fn trailing_characters_after_the_object_are_a_decode_rejection() {
        let r = rejected(format!("{} x", with(r#""a":1"#)).as_bytes());
        assert_eq!(r.kind, RejectKind::Decode);
        assert!(r.reason.starts_with("trailing characters"), "{}", r.reason);
    }

    #[test]
    fn empty_input_is_a_decode_rejection() {
        assert_eq!(rejected(b"").kind, RejectKind::Decode);
        assert_eq!(rejected(b"   ").kind, RejectKind::Decode);
    }

    #[test]
    fn a_record_that_is_not_an_object_is_rejected_naming_its_type() {
        for (raw, want) in [
            ("[1,2]", "record is a JSON array, expected an object"),
            (r#""text""#, "record is a JSON string, expected an object"),
            ("42", "record is a JSON number, expected an object"),
            ("-1.5", "record is a JSON number, expected an object"),
            ("true", "record is a JSON boolean, expected an object"),
            ("null", "record is JSON null, expected an object"),
            (" \t[]", "record is a JSON array, expected an object"),
        ] {
            let r = rejected(raw.as_bytes());
            assert_eq!((r.kind, r.reason.as_str()), (RejectKind::Decode, want), "{raw}");
        }
    }

    #[test]
    fn nan_and_infinity_spellings_are_invalid_json() {
        for v in ["NaN", "Infinity", "-Infinity", "nan", "inf"] {
            let r = rejected(with(&format!(r#""amount":{v}"#)).as_bytes());
            assert_eq!(r.kind, RejectKind::Decode, "{v}: {}", r.reason);
        }
    }

    #[test]
    fn a_number_too_big_for_f64_is_a_decode_rejection_saying_so() {
        let r = rejected(with(r#""amount":1e400"#).as_bytes());
        assert_eq!(r.kind, RejectKind::Decode);
        assert!(r.reason.starts_with("number out of range"), "{}", r.reason);
    }

    #[test]
    fn integers_within_64_bits_stay_exact_and_float_literals_stay_floats() {
        let ev = ok(&with(r#""u":18446744073709551615,"i":-9223372036854775808,"odd":9007199254740993"#));
        assert_eq!(ev.doc["u"].as_u64(), Some(u64::MAX));
        assert_eq!(ev.doc["i"].as_i64(), Some(i64::MIN));
        assert_eq!(ev.doc["odd"].as_u64(), Some(9_007_199_254_740_993));
        // Written as floats, so floats they stay: nothing was an integer.
        let ev = ok(&with(r#""e":1e20,"f":18446744073709551616.0,"g":-1E19"#));
        assert_eq!(ev.doc["e"].as_f64(), Some(1e20));
        assert!(ev.doc["f"].is_f64() && ev.doc["g"].is_f64());
    }

    #[test]
    fn an_integer_beyond_64_bits_is_rejected_naming_the_field() {
        for (fields, field) in [
            (r#""big":18446744073709551616"#, "big"),
            (r#""x":"\"1\" 2","n":[1,-2.5e3,{"deep":-9223372036854775809}]"#, "n.deep"),
            (r#""a":1,"b":123456789012345678901234567890"#, "b"),
        ] {
            assert_eq!(
                reason(&with(fields)),
                format!("field `{field}`: integer beyond 64 bits, which would lose digits; send it as a string"),
                "{fields}"
            );
        }
    }

    #[test]
    fn amounts_and_latencies_a_double_cannot_hold_are_rejected() {
        for v in ["9007199254740993", "-9007199254740993", "18446744073709551615", "9223372036854775807"] {
            for field in ["amount", "latency_ms"] {
                let r = reason(&with(&format!(r#""{field}":{v}"#)));
                assert!(r.starts_with(&format!("{field}: integer beyond ±2^53")), "{field}={v}: {r}");
            }
        }
        for v in ["9007199254740992", "-9007199254740992", "1152921504606846976", "12.5", "1e300"] {
            assert_eq!(ok(&with(&format!(r#""amount":{v}"#))).doc["amount"], serde_json::from_str::<Value>(v).unwrap());
        }
    }

    #[test]
    fn the_number_scanner_skips_strings_and_finds_literals_in_order() {
        let text = r#"{"a\"1":"2 \" 3","b":[-4.5e1, 67],"c":{"d":89}}"#;
        let literals: Vec<_> = (0..4).map(|n| nth_number_literal(text, n)).collect();
        assert_eq!(literals, [Some("-4.5e1"), Some("67"), Some("89"), None]);
        assert!(is_integer_literal("-12") && !is_integer_literal("1.0") && !is_integer_literal("1E5"));
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        let raw = format!("\u{feff}{}", with(r#""a":1"#));
        assert_eq!(ok(&raw).doc["a"], 1);
    }

    #[test]
    fn a_record_over_the_size_limit_is_a_limit_rejection() {
        let limits = Limits { max_record_bytes: 64, ..Limits::default() };
        let raw = with(&format!(r#""message":"{}""#, "x".repeat(100)));
        let r = parse_and_validate(raw.as_bytes(), &limits).unwrap_err();
        assert_eq!(r.kind, RejectKind::Limit);
        assert!(r.reason.contains("64-byte limit"), "{}", r.reason);
    }

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth_naming_the_field() {
        for (extra, field) in [
            (r#""venue":"A","venue":"B""#, "venue"),
            (r#""payment":{"method":"card","method":"cash"}"#, "payment.method"),
            (r#""items":[{"sku":1},{"sku":2,"sku":3}]"#, "items.sku"),
            (r#""a":{"b":{"c":1,"c":1}}"#, "a.b.c"),
            (r#""k":1,"\u006b":2"#, "k"),
        ] {
            let r = rejected(with(extra).as_bytes());
            assert_eq!(r.kind, RejectKind::Validation, "{extra}");
            assert_eq!(r.reason, format!("field `{field}` appears twice"), "{extra}");
        }
    }

    #[test]
    fn a_duplicated_time_or_type_is_rejected_too() {
        assert_eq!(reason(&with(r#""ts":1"#)), "field `ts` appears twice");
    }

    #[test]
    fn a_field_name_that_looks_like_personal_data_is_withheld_from_reasons() {
        let r = reason(&with(r#""bob@example.com":1,"bob@example.com":2"#));
        assert_eq!(r, "field `<field name withheld>` appears twice");
        let r = reason(&with(r#""4111111111111111":1,"4111111111111111":2"#));
        assert!(!r.contains("4111"), "{r}");
    }

    #[test]
    fn long_field_names_are_shortened_in_reasons() {
        let name = "f".repeat(500);
        let r = reason(&with(&format!(r#""{name}":1,"{name}":2"#)));
        assert!(r.len() < 100, "{r}");
    }

    fn nested(depth: usize) -> String {
        // `depth` levels in total, the record's own object included.
        let inner = depth - 1;
        format!(r#"{{{TS},"type":"t","deep":{}1{}}}"#, "[".repeat(inner), "]".repeat(inner))
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_one_deeper_is_a_limit_rejection() {
        ok(&nested(64));
        let r = rejected(nested(65).as_bytes());
        assert_eq!(r.kind, RejectKind::Limit);
        assert_eq!(r.reason, "nesting deeper than 64 levels");
    }

    #[test]
    fn a_configured_depth_limit_is_honoured() {
        let limits = Limits { max_depth: 3, ..Limits::default() };
        assert!(parse_and_validate(nested(3).as_bytes(), &limits).is_ok());
        let r = parse_and_validate(nested(4).as_bytes(), &limits).unwrap_err();
        assert_eq!(r.reason, "nesting deeper than 3 levels");
    }

    #[test]
    fn a_depth_limit_above_what_serde_json_allows_is_reported_as_enforced() {
        let limits = Limits { max_depth: 1000, ..Limits::default() };
        let r = parse_and_validate(nested(200).as_bytes(), &limits).unwrap_err();
        assert_eq!((r.kind, r.reason.as_str()), (RejectKind::Limit, "nesting deeper than 127 levels"));
    }

    #[test]
    fn hostile_nesting_never_overflows_the_stack() {
        for open in ["[", "{\"a\":"] {
            let raw = format!(r#"{{"a":{}"#, open.repeat(200_000));
            assert_eq!(rejected(raw.as_bytes()).kind, RejectKind::Limit);
        }
        // Not an object at all: serde_json skips it without recursing.
        let raw = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(rejected(raw.as_bytes()).reason, "record is a JSON array, expected an object");
        assert_eq!(rejected(&raw.as_bytes()[..200_000]).kind, RejectKind::Decode);
    }

    #[test]
    fn event_time_is_read_from_every_accepted_spelling_and_form() {
        for (field, value, millis) in [
            ("ts", r#""2024-02-05T10:11:12.345Z""#, 1_707_127_872_345),
            ("ts", r#""2024-02-05T11:11:12.345+01:00""#, 1_707_127_872_345),
            ("ts", r#""2024-02-05T05:11:12.3456789-05:00""#, 1_707_127_872_345),
            ("ts", r#""2024-02-05 10:11:12Z""#, 1_707_127_872_000),
            ("@timestamp", r#""2024-02-05T10:11:12Z""#, 1_707_127_872_000),
            ("timestamp", "1707127872", 1_707_127_872_000),
            ("time", "1707127872345", 1_707_127_872_345),
            ("ts", "99999999999", 99_999_999_999_000),
            ("ts", "100000000000", 100_000_000_000),
        ] {
            let raw = format!(r#"{{"{field}":{value},"type":"t"}}"#);
            let result = parse_and_validate(raw.as_bytes(), &Limits::default());
            if !(MIN_TS_MILLIS..END_TS_MILLIS).contains(&millis) {
                assert!(result.is_err(), "{raw}");
                continue;
            }
            let ev = result.unwrap_or_else(|r| panic!("{raw}: {r}"));
            assert_eq!(ev.ts_millis, millis, "{raw}");
            assert_eq!(ev.doc["ts"], format_ts(millis), "{raw}");
            assert_eq!(keys(&ev)[0], "ts");
            if field != "ts" {
                assert!(!ev.doc.contains_key(field), "{raw}: alias {field} should be gone");
            }
        }
    }

    #[test]
    fn the_first_present_time_spelling_wins_and_later_ones_are_kept() {
        let ev = ok(r#"{"time":"nonsense","type":"t","timestamp":1707127872,"x":1}"#);
        assert_eq!(ev.ts_millis, 1_707_127_872_000);
        assert_eq!(keys(&ev), ["ts", "time", "type", "x"]);
        assert_eq!(ev.doc["time"], "nonsense");
    }

    #[test]
    fn a_null_time_counts_as_absent() {
        let ev = ok(r#"{"ts":null,"type":"t","@timestamp":"2024-02-05T10:11:12Z"}"#);
        assert_eq!(keys(&ev), ["ts", "type"]);
        assert_eq!(ev.ts_millis, 1_707_127_872_000);
    }

    #[test]
    fn a_missing_time_is_rejected_listing_the_spellings_looked_for() {
        let r = rejected(br#"{"type":"t","ts":null}"#);
        assert_eq!(r.kind, RejectKind::Validation);
        assert_eq!(r.reason, "ts: missing (also looked for @timestamp, timestamp, time)");
    }

    #[test]
    fn a_time_of_the_wrong_type_or_form_is_rejected_naming_the_field() {
        for (field, value) in [
            ("ts", r#""yesterday""#),
            ("ts", r#""2024-02-05""#),
            ("ts", r#""2024-02-05T10:11:12""#),
            ("ts", r#""1707127872345""#),
            ("ts", "1707127872.5"),
            ("ts", "true"),
            ("ts", "{}"),
            ("ts", "18446744073709551615"),
            ("@timestamp", "[]"),
        ] {
            let r = reason(&format!(r#"{{"{field}":{value},"type":"t"}}"#));
            assert_eq!(r, format!("{field}: expected an RFC 3339 string or epoch milliseconds"));
        }
    }

    #[test]
    fn a_time_outside_2000_to_2100_is_rejected_naming_the_year() {
        for (value, year) in [
            (r#""1990-06-01T00:00:00Z""#, 1990),
            (r#""1999-12-31T23:59:59.999Z""#, 1999),
            (r#""2101-01-01T00:00:00Z""#, 2101),
            (r#""2000-01-01T00:30:00+01:00""#, 1999),
            ("0", 1970),
            ("-1", 1969),
            ("9223372036854775807", 292_278_994),
        ] {
            let r = reason(&format!(r#"{{"ts":{value},"type":"t"}}"#));
            assert_eq!(r, format!("ts: year {year} is outside 2000..2100"), "{value}");
        }
    }

    #[test]
    fn the_edges_of_the_accepted_years_pass() {
        ok(r#"{"ts":"2000-01-01T00:00:00Z","type":"t"}"#);
        ok(r#"{"ts":"2100-12-31T23:59:59.999Z","type":"t"}"#);
        ok(r#"{"ts":"1999-12-31T23:30:00-01:00","type":"t"}"#);
    }

    #[test]
    fn type_is_required_and_must_be_a_non_empty_string() {
        assert_eq!(reason(&format!("{{{TS}}}")), "type: missing (also looked for event_type)");
        assert_eq!(reason(&format!(r#"{{{TS},"type":null}}"#)), "type: missing (also looked for event_type)");
        assert_eq!(reason(&format!(r#"{{{TS},"type":""}}"#)), "type: must not be empty");
        assert_eq!(reason(&format!(r#"{{{TS},"type":"  "}}"#)), "type: must not be empty");
        assert_eq!(reason(&format!(r#"{{{TS},"type":7}}"#)), "type: expected a non-empty string");
        assert_eq!(reason(&format!(r#"{{{TS},"event_type":["a"]}}"#)), "event_type: expected a non-empty string");
    }

    #[test]
    fn event_type_supplies_the_type_when_type_is_absent_and_is_renamed() {
        let ev = ok(&format!(r#"{{"a":1,{TS},"event_type":"seat.locked"}}"#));
        assert_eq!(ev.event_type, "seat.locked");
        assert_eq!(keys(&ev), ["ts", "type", "a"]);
        assert_eq!(ev.doc["type"], "seat.locked");
    }

    #[test]
    fn type_wins_over_event_type_which_is_then_kept() {
        let ev = ok(&format!(r#"{{{TS},"event_type":"x","type":"seat.locked"}}"#));
        assert_eq!(ev.event_type, "seat.locked");
        assert_eq!(keys(&ev), ["ts", "event_type", "type"]);
    }

    #[test]
    fn event_id_is_optional_and_must_be_a_non_empty_string() {
        assert_eq!(ok(&with(r#""event_id":"e-1""#)).event_id.as_deref(), Some("e-1"));
        let ev = ok(&with(r#""event_id":null"#));
        assert_eq!(ev.event_id, None);
        assert!(!ev.doc.contains_key("event_id"));
        assert_eq!(reason(&with(r#""event_id":17"#)), "event_id: expected a string");
        assert_eq!(reason(&with(r#""event_id":"""#)), "event_id: must not be empty");
    }

    #[test]
    fn exact_match_fields_given_as_another_type_are_rejected_naming_the_field() {
        for field in STRING_FIELDS.split(' ') {
            for bad in ["5", "true", "{}", "[\"a\"]"] {
                let r = rejected(with(&format!(r#""{field}":{bad}"#)).as_bytes());
                assert_eq!(r.kind, RejectKind::Validation);
                assert_eq!(r.reason, format!("{field}: expected a string"));
            }
            ok(&with(&format!(r#""{field}":"x""#)));
        }
    }

    #[test]
    fn every_field_of_the_schema_is_checked_and_its_null_means_absent() {
        // The time and type go by an alias, so that every field and alias can be the one tested.
        let record = |key: &str, value: Value| {
            let mut record = Map::new();
            record.insert(if key == "time" { "timestamp" } else { "time" }.into(), json!("2024-02-05T10:11:12Z"));
            record.insert(if key == "event_type" { "type" } else { "event_type" }.into(), json!("t"));
            record.insert(key.into(), value);
            serde_json::to_string(&record).unwrap()
        };
        for spec in FIELDS {
            let reason = reason(&record(spec.name, json!(true)));
            assert!(reason.starts_with(&format!("{}: expected", spec.name)), "{}: {reason}", spec.name);
            for spelling in std::iter::once(&spec.name).chain(spec.aliases) {
                assert_eq!(keys(&ok(&record(spelling, Value::Null))), ["ts", "type"], "{spelling}");
            }
        }
    }

    #[test]
    fn seat_may_be_a_string_or_an_array_of_strings() {
        ok(&with(r#""seat":"A12""#));
        ok(&with(r#""seat":["A12","A13"]"#));
        ok(&with(r#""seat":[]"#));
        for bad in ["12", r#"["A12",13]"#, r#"["A12",null]"#, "{}"] {
            assert_eq!(reason(&with(&format!(r#""seat":{bad}"#))), "seat: expected a string or an array of strings");
        }
    }

    #[test]
    fn payment_must_be_an_object_with_string_method_and_status() {
        ok(&with(r#""payment":{"method":"card","status":"authorized","psp":{"x":1}}"#));
        assert_eq!(reason(&with(r#""payment":"card""#)), "payment: expected an object");
        assert_eq!(reason(&with(r#""payment":{"method":1}"#)), "payment.method: expected a string");
        assert_eq!(reason(&with(r#""payment":{"status":[]}"#)), "payment.status: expected a string");
    }

    #[test]
    fn null_payment_method_and_status_are_removed() {
        let ev = ok(&with(r#""payment":{"method":null,"status":"ok","other":null}"#));
        assert_eq!(ev.doc["payment"], json!({"status":"ok","other":null}));
    }

    #[test]
    fn amount_given_as_a_string_is_rejected_naming_the_field() {
        let r = rejected(with(r#""amount":"12.50""#).as_bytes());
        assert_eq!((r.kind, r.reason.as_str()), (RejectKind::Validation, "amount: expected a number"));
    }

    #[test]
    fn amount_and_latency_accept_integers_and_floats() {
        let ev = ok(&with(r#""amount":12500,"latency_ms":3.25"#));
        assert_eq!(ev.doc["amount"], 12500);
        assert_eq!(ev.doc["latency_ms"], 3.25);
        assert_eq!(reason(&with(r#""latency_ms":true"#)), "latency_ms: expected a number");
    }

    #[test]
    fn message_must_be_a_string() {
        assert_eq!(reason(&with(r#""message":{"text":"hi"}"#)), "message: expected a string");
    }

    #[test]
    fn null_known_fields_are_removed_and_null_unknown_fields_kept() {
        let ev = ok(&with(r#""venue":null,"amount":null,"seat":null,"payment":null,"mystery":null"#));
        assert_eq!(keys(&ev), ["ts", "type", "mystery"]);
    }

    #[test]
    fn an_empty_field_name_is_rejected_at_any_depth() {
        assert_eq!(reason(&with(r#""":1"#)), "empty field name");
        assert_eq!(reason(&with(r#""a":{"b":{"":1}}"#)), "empty field name in `a.b`");
    }

    #[test]
    fn top_level_names_starting_with_underscore_are_reserved() {
        for name in ["_id", "_index", "_source", "_", "_x.y"] {
            let r = reason(&with(&format!(r#""{name}":1"#)));
            assert_eq!(r, format!("{name}: field names starting with '_' are reserved"));
        }
        ok(&with(r#""meta":{"_id":1}"#));
    }

    #[test]
    fn top_level_dotted_keys_become_nested_objects_in_place() {
        let ev = ok(&with(r#""a":1,"payment.method":"card","payment.psp.name":"adyen","z":2"#));
        assert_eq!(keys(&ev), ["ts", "type", "a", "payment", "z"]);
        assert_eq!(ev.doc["payment"], json!({"method":"card","psp":{"name":"adyen"}}));
    }

    #[test]
    fn dotted_keys_merge_into_an_existing_object_in_either_order() {
        let ev = ok(&with(r#""payment":{"status":"ok"},"payment.method":"card""#));
        assert_eq!(ev.doc["payment"], json!({"status":"ok","method":"card"}));
        let ev = ok(&with(r#""payment.method":"card","payment":{"status":"ok"}"#));
        assert_eq!(ev.doc["payment"], json!({"method":"card","status":"ok"}));
    }

    #[test]
    fn a_dotted_key_that_meets_an_existing_field_is_rejected_naming_it() {
        for extra in [
            r#""payment":{"method":"cash"},"payment.method":"card""#,
            r#""payment.method":"card","payment":{"method":"cash"}"#,
            r#""payment":"card","payment.method":"card""#,
        ] {
            assert_eq!(reason(&with(extra)), "payment.method: conflicts with an existing field", "{extra}");
        }
        // The dotted key being inserted is the one named.
        assert_eq!(
            reason(&with(r#""payment.method":"card","payment.method.kind":"x""#)),
            "payment.method.kind: conflicts with an existing field"
        );
    }

    #[test]
    fn expanded_dotted_keys_are_type_checked() {
        assert_eq!(reason(&with(r#""payment.method":5"#)), "payment.method: expected a string");
        assert_eq!(reason(&with(r#""payment.method":null,"amount.x":1"#)), "amount: expected a number");
    }

    #[test]
    fn dotted_keys_with_an_empty_segment_are_rejected() {
        for name in ["a..b", "a.", ".a"] {
            assert_eq!(reason(&with(&format!(r#""{name}":1"#))), format!("{name}: contains an empty field name"));
        }
    }

    #[test]
    fn dotted_keys_cannot_be_used_to_nest_past_the_depth_limit() {
        let limits = Limits { max_depth: 4, ..Limits::default() };
        let fits = with(r#""a.b.c":[1]"#);
        assert!(parse_and_validate(fits.as_bytes(), &limits).is_ok());
        let deep = with(r#""a.b.c.d":[1]"#);
        let r = parse_and_validate(deep.as_bytes(), &limits).unwrap_err();
        assert_eq!((r.kind, r.reason.as_str()), (RejectKind::Limit, "nesting deeper than 4 levels"));
    }

    #[test]
    fn reasons_never_quote_record_content() {
        let secret = "s3cr3t-value-4111";
        for extra in [
            format!(r#""amount":"{secret}""#),
            format!(r#""payment":{{"method":["{secret}"]}}"#),
            format!(r#""venue":{{"{secret}":1}}"#),
        ] {
            let r = reason(&with(&extra));
            assert!(!r.contains("s3cr3t"), "{r}");
        }
        let r = reason(&format!(r#"{{"ts":"{secret}","type":"t"}}"#));
        assert!(!r.contains("s3cr3t"), "{r}");
    }

    #[test]
    fn a_second_different_timestamp_beside_ts_is_rejected_naming_it() {
        let err = parse_and_validate(
            br#"{"ts":"2024-02-05T10:00:00Z","@timestamp":"2024-02-06T10:00:00Z","type":"t"}"#,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.reason.starts_with("@timestamp:"), "{err}");
        let same = parse_and_validate(
            br#"{"ts":"2024-02-05T10:00:00Z","@timestamp":"2024-02-05T10:00:00Z","type":"t"}"#,
            &Limits::default(),
        )
        .unwrap();
        assert!(!same.doc.contains_key("@timestamp"), "an identical copy is dropped: {:?}", same.doc);
    }

    #[test]
    fn format_ts_writes_utc_with_milliseconds() {
        for (millis, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_707_127_872_345, "2024-02-05T10:11:12.345Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (4_133_980_799_999, "2100-12-31T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "+10000-01-01T00:00:00.000Z"),
            (-62_167_219_200_001, "-0001-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(format_ts(millis), want, "{millis}");
        }
        // Total: no panic at the extremes.
        format_ts(i64::MIN);
        format_ts(i64::MAX);
    }

    proptest! {
        #[test]
        fn format_ts_agrees_with_chrono(millis in -62_135_596_800_000i64..253_402_300_799_999) {
            let chrono = chrono::DateTime::from_timestamp_millis(millis).unwrap();
            prop_assert_eq!(
                format_ts(millis),
                chrono.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
        }

        #[test]
        fn the_canonical_time_parses_back_to_the_same_millis(millis in MIN_TS_MILLIS..END_TS_MILLIS) {
            let raw = format!(r#"{{"ts":"{}","type":"t"}}"#, format_ts(millis));
            prop_assert_eq!(parse_and_validate(raw.as_bytes(), &Limits::default()).unwrap().ts_millis, millis);
        }

        #[test]
        fn validation_never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_and_validate(&raw, &Limits::default());
        }

        #[test]
        fn validation_never_panics_on_json_like_text(raw in r#"[{}\[\]":,.0-9a-z_@ eE+\-\\]{0,200}"#) {
            let _ = parse_and_validate(raw.as_bytes(), &Limits::default());
            let _ = parse_and_validate(format!("{{{TS},\"type\":\"t\",{raw}").as_bytes(), &Limits::default());
        }

        #[test]
        fn accepted_events_always_start_with_ts_and_carry_their_type(
            extra in proptest::collection::vec(("[a-z.]{1,6}", prop_oneof![
                Just(json!(null)), Just(json!(1)), Just(json!("s")), Just(json!({"k": [1]})),
            ]), 0..8),
            alias in 0usize..4,
            use_event_type in any::<bool>(),
        ) {
            let mut obj = Map::new();
            for (k, v) in extra {
                obj.insert(k, v);
            }
            obj.insert(TIME_FIELDS[alias].to_owned(), json!(1_707_127_872));
            obj.insert(if use_event_type { "event_type" } else { "type" }.to_owned(), json!("t"));
            let raw = serde_json::to_vec(&Value::Object(obj)).unwrap();
            if let Ok(ev) = parse_and_validate(&raw, &Limits::default()) {
                prop_assert_eq!(ev.doc.keys().next().map(String::as_str), Some("ts"));
                prop_assert_eq!(&ev.doc["type"], &json!(ev.event_type));
                prop_assert_eq!(ev.ts_millis, 1_707_127_872_000);
            }
        }
    }
}
