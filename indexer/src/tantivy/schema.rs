//! The tantivy side of [`crate::schema`]: the tantivy schema built from its field list,
//! the columns and bookkeeping fields only tantivy has, and the mapping of a validated
//! event to a tantivy document.
//!
//! Known fields are indexed with a fixed type. Everything else a service sends is kept
//! under [`EXTRA`] (a JSON field with exact-match strings, like Elasticsearch's dynamic
//! `keyword` mapping) so `client.app:ios` works on both backends.

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf, Value as DocValue};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions, Schema,
    TextFieldIndexing, TextOptions, FAST, STORED,
};
use tantivy::{DateTime, TantivyDocument};

use super::ids::IdKey;
use crate::schema::{FieldKind, EVENT_ID, FIELDS, ID, SOURCE, TS};

/// The tantivy column of the high 64 bits of a document id ([`IdKey`]).
/// Ids are no terms: duplicates are found in each segment's id set
/// ([`super::id_set`]), and queries on `_id` and `event_id` are rewritten to one-value
/// ranges on this column and [`ID_LOW`].
pub const ID_HIGH: &str = "_id_high";
/// The tantivy column of the low 64 bits of a document id.
pub const ID_LOW: &str = "_id_low";
/// The tantivy JSON field holding unknown fields.
pub const EXTRA: &str = "_extra";
/// Distinguishes events from bookkeeping documents (source checkpoints) in tantivy.
pub const DOC_KIND: &str = "_kind";
/// The checkpoint key of a source marker document.
pub const SOURCE_KEY: &str = "_source_key";

/// The tokenizer of [`MESSAGE`](crate::schema::MESSAGE): Korean-aware ([`crate::text`]). Every opened index
/// registers it under this name; the name is part of the schema, so an index made with
/// another tokenizer is refused.
pub const MESSAGE_TOKENIZER: &str = crate::text::TOKENIZER_NAME;

/// `DOC_KIND` value of booking events.
pub const KIND_EVENT: &str = "event";
/// `DOC_KIND` value of source checkpoint records.
pub const KIND_SOURCE: &str = "source";

/// The tantivy schema built from [`FIELDS`], with handles to every field.
#[derive(Clone)]
pub struct TantivySchema {
    pub schema: Schema,
    pub id: Field,
    pub id_high: Field,
    pub id_low: Field,
    pub source: Field,
    pub extra: Field,
    pub kind: Field,
    pub source_key: Field,
    pub ts: Field,
    /// Kind and handle of each of [`FIELDS`] by name: every key of every event is
    /// looked up here.
    pub known: FxHashMap<&'static str, (FieldKind, Field)>,
}

impl std::fmt::Debug for TantivySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivySchema").finish_non_exhaustive()
    }
}

/// Builds the tantivy schema of an event index.
pub fn tantivy_schema() -> TantivySchema {
    let mut builder = Schema::builder();
    // Stored whole for hits; as a number in two columns for queries and the id set.
    let id = builder.add_bytes_field(ID, STORED);
    let id_high = builder.add_u64_field(ID_HIGH, FAST);
    let id_low = builder.add_u64_field(ID_LOW, FAST);
    let source = builder.add_text_field(SOURCE, STORED);
    // Exact-match values: one untokenized term each, and no field norms. Norms serve
    // relevance scoring of text, and hits here are sorted by time or a column.
    let exact = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    let keyword = TextOptions::default().set_indexing_options(exact.clone());
    let kind = builder.add_text_field(DOC_KIND, keyword.clone());
    let source_key = builder.add_text_field(SOURCE_KEY, keyword.clone());
    let raw_json = JsonObjectOptions::default().set_indexing_options(exact).set_fast("raw");
    let extra = builder.add_json_field(EXTRA, raw_json.clone());
    let mut known = FxHashMap::default();
    for spec in FIELDS {
        let field = match spec.kind {
            // Times and numbers are columns only. tantivy answers ranges on them from the
            // column, and an exact value is asked as a one-value range (the backend
            // rewrites it so), so terms for them would be built and never read; near
            // one distinct time per event, they were the costliest terms after `_id`.
            FieldKind::Time => builder.add_date_field(
                spec.name,
                DateOptions::default().set_fast().set_precision(DateTimePrecision::Milliseconds),
            ),
            FieldKind::Keyword { fast: true } => builder.add_text_field(spec.name, keyword.clone() | FAST),
            FieldKind::Keyword { .. } if spec.name == EVENT_ID => {
                builder.add_text_field(spec.name, TextOptions::default())
            }
            FieldKind::Keyword { fast: false } => builder.add_text_field(spec.name, keyword.clone()),
            FieldKind::Number => builder.add_f64_field(spec.name, NumericOptions::default().set_fast()),
            FieldKind::Text => builder.add_text_field(
                spec.name,
                TextOptions::default().set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(MESSAGE_TOKENIZER)
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                ),
            ),
            FieldKind::Object => builder.add_json_field(spec.name, raw_json.clone()),
        };
        known.insert(spec.name, (spec.kind, field));
    }
    let schema = builder.build();
    let ts = schema.get_field(TS).expect("ts is in FIELDS");
    TantivySchema { schema, id, id_high, id_low, source, extra, kind, source_key, ts, known }
}

impl TantivySchema {
    /// Maps a validated, redacted event to a tantivy document. `id` is its id,
    /// `ts_millis` the event time the validator computed; `doc` is stored whole as
    /// `_source`.
    pub fn event_document(&self, id: &IdKey, ts_millis: i64, doc: &Map<String, Value>) -> TantivyDocument {
        let mut out = TantivyDocument::new();
        out.add_bytes(self.id, id.stored(&mut [0; 16]));
        out.add_u64(self.id_high, id.high());
        out.add_u64(self.id_low, id.low());
        out.add_text(self.kind, KIND_EVENT);
        out.add_date(self.ts, DateTime::from_timestamp_millis(ts_millis));
        let mut extra: Vec<(&str, &Value)> = Vec::new();
        for (key, value) in doc {
            match self.known.get(key.as_str()) {
                Some(&(kind, field)) => add_known(&mut out, kind, field, value),
                None => extra.push((key, value)),
            }
        }
        if !extra.is_empty() {
            out.add_field_value(self.extra, JsonView::Fields(&extra));
        }
        out.add_text(self.source, serde_json::to_string(doc).unwrap_or_default());
        out
    }

    /// A document for bare JSON without validation (the benchmark's reference
    /// indexer): reads `ts` as RFC 3339 and skips values of the wrong type.
    pub fn document_from_json(&self, id: &str, doc: &Map<String, Value>) -> TantivyDocument {
        let ts_millis = doc
            .get(TS)
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_millis())
            .unwrap_or(0);
        self.event_document(&IdKey::of(id), ts_millis, doc)
    }
}

fn add_known(out: &mut TantivyDocument, kind: FieldKind, field: Field, value: &Value) {
    match (kind, value) {
        // The time was already added from the validated millis.
        (FieldKind::Time, _) => {}
        (FieldKind::Keyword { .. }, Value::String(s)) => out.add_text(field, s),
        (FieldKind::Keyword { .. }, Value::Array(items)) => {
            for item in items.iter().filter_map(Value::as_str) {
                out.add_text(field, item);
            }
        }
        (FieldKind::Number, Value::Number(n)) => {
            if let Some(f) = n.as_f64() {
                out.add_f64(field, f);
            }
        }
        (FieldKind::Text, Value::String(s)) => out.add_text(field, s),
        (FieldKind::Object, Value::Object(_)) => out.add_field_value(field, value),
        // Validation guarantees types for events; bare JSON of the wrong type is skipped.
        _ => {}
    }
}

/// The unknown fields of an event as the one JSON object `_extra` indexes, borrowed
/// from the event instead of cloned into an `OwnedValue` tree. Leaves convert as
/// tantivy converts `serde_json` values (RFC 3339 strings become dates).
#[derive(Debug, Clone, Copy)]
enum JsonView<'a> {
    /// Top-level fields of the event, as one object.
    Fields(&'a [(&'a str, &'a Value)]),
    Json(&'a Value),
}

/// The members of a [`JsonView`] object.
enum JsonViewMembers<'a> {
    Fields(std::slice::Iter<'a, (&'a str, &'a Value)>),
    Json(serde_json::map::Iter<'a>),
}

impl<'a> Iterator for JsonViewMembers<'a> {
    type Item = (&'a str, JsonView<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            JsonViewMembers::Fields(fields) => fields.next().map(|&(key, value)| (key, JsonView::Json(value))),
            JsonViewMembers::Json(members) => members.next().map(|(key, value)| (key.as_str(), JsonView::Json(value))),
        }
    }
}

type JsonViewItems<'a> = std::iter::Map<std::slice::Iter<'a, Value>, fn(&'a Value) -> JsonView<'a>>;

impl<'a> DocValue<'a> for JsonView<'a> {
    type ArrayIter = JsonViewItems<'a>;
    type ObjectIter = JsonViewMembers<'a>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        match *self {
            JsonView::Fields(fields) => ReferenceValue::Object(JsonViewMembers::Fields(fields.iter())),
            JsonView::Json(Value::Array(items)) => {
                ReferenceValue::Array(items.iter().map(JsonView::Json as fn(&'a Value) -> JsonView<'a>))
            }
            JsonView::Json(Value::Object(members)) => ReferenceValue::Object(JsonViewMembers::Json(members.iter())),
            JsonView::Json(leaf) => ReferenceValue::Leaf(DocValue::as_leaf(&leaf).unwrap_or(ReferenceValueLeaf::Null)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::OwnedValue;

    #[test]
    fn every_known_field_is_in_the_tantivy_schema() {
        let schema = tantivy_schema();
        for spec in FIELDS {
            assert!(schema.schema.get_field(spec.name).is_ok(), "{} missing", spec.name);
        }
        assert_eq!(schema.known.len(), FIELDS.len());
    }

    #[test]
    fn unknown_fields_go_to_the_extra_json_field() {
        let schema = tantivy_schema();
        let doc: Map<String, Value> = serde_json::from_str(
            r#"{"ts":"2024-02-05T10:00:00.000Z","type":"booking.confirmed","client":{"app":"ios"}}"#,
        )
        .unwrap();
        let out = schema.event_document(&IdKey::of("abc"), 1_707_127_200_000, &doc);
        let json = tantivy::schema::document::Document::to_json(&out, &schema.schema);
        assert!(json.contains(r#""_extra":[{"client":{"app":"ios"}}]"#), "{json}");
    }

    #[test]
    fn unknown_fields_convert_as_tantivy_converts_them() {
        let value: Value = serde_json::from_str(
            r#"{"a":[1,-2,1.5,18446744073709551615,[{"x":"y"}]],"b":{"at":"2024-02-05T10:00:00Z","s":"x","n":null,"t":true}}"#,
        )
        .unwrap();
        let schema = tantivy_schema();
        let (mut ours, mut theirs) = (TantivyDocument::new(), TantivyDocument::new());
        let fields: Vec<(&str, &Value)> = vec![("first", &value), ("second", &value["a"]), ("third", &value["b"]["s"])];
        ours.add_field_value(schema.extra, JsonView::Fields(&fields));
        let owned = fields.iter().map(|(key, value)| (key.to_string(), OwnedValue::from((*value).clone())));
        theirs.add_field_value(schema.extra, &OwnedValue::Object(owned.collect()));
        let json = |doc: &TantivyDocument| tantivy::schema::document::Document::to_json(doc, &schema.schema);
        assert_eq!(json(&ours), json(&theirs));
        // JSON text cannot tell a date from a string: look at the indexed leaf itself.
        fn member<'a>(
            value: tantivy::schema::document::CompactDocValue<'a>,
            name: &str,
        ) -> Option<tantivy::schema::document::CompactDocValue<'a>> {
            value.as_object().and_then(|mut members| members.find(|(key, _)| *key == name)).map(|(_, v)| v)
        }
        let extra = ours.get_first(schema.extra).expect("_extra");
        let at = member(member(member(extra, "first").unwrap(), "b").unwrap(), "at").unwrap();
        assert!(at.as_datetime().is_some(), "an RFC 3339 string is indexed as a date");
    }
}
