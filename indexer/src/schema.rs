//! What an indexed booking event is: the one field list that the tantivy schema, the
//! Elasticsearch mapping and the CLI all derive from.
//!
//! Known fields are indexed with a fixed type. Everything else a service sends is kept
//! under `_extra` in tantivy ([`crate::tantivy::schema::EXTRA`], a JSON field with exact-match strings, like Elasticsearch's
//! dynamic `keyword` mapping) so `client.app:ios` works on both backends.

/// How a known field is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Event time: a date with millisecond precision, sortable and aggregatable.
    Time,
    /// Exact match, untokenized (`keyword` in Elasticsearch). `fast` fields support
    /// terms aggregations and sorting.
    Keyword { fast: bool },
    /// A finite number: range queries, sorting, stats.
    Number,
    /// Full text (`message`).
    Text,
    /// An object of exact-match sub-fields (`payment.method`).
    Object,
}

/// One field of an indexed booking event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    /// Other spellings a record may use for this field, in priority order after `name`;
    /// validation renames the one it takes to `name`.
    pub aliases: &'static [&'static str],
    /// Whether a record may give an array of values of `kind` (`seat`: one seat or several).
    pub many: bool,
}

impl FieldSpec {
    const fn new(name: &'static str, kind: FieldKind) -> FieldSpec {
        FieldSpec { name, kind, aliases: &[], many: false }
    }

    const fn aliases(self, aliases: &'static [&'static str]) -> FieldSpec {
        FieldSpec { aliases, ..self }
    }

    const fn many(self) -> FieldSpec {
        FieldSpec { many: true, ..self }
    }
}

/// The event time field as the CLI and queries name it.
pub const TS: &str = "ts";
/// The event time field in Elasticsearch (what Kibana expects); `ts` is an alias of it.
pub const ES_TIMESTAMP: &str = "@timestamp";
/// The event type field.
pub const TYPE: &str = "type";
/// The document id field (tantivy: stored only, see [`crate::tantivy::schema::ID_HIGH`]) and metadata name
/// (Elasticsearch).
pub const ID: &str = "_id";
/// The stored, redacted event as JSON, returned in hits.
pub const SOURCE: &str = "_source";
/// The producer's event id. Not indexed as a term of its own in tantivy: the document
/// id derives from it, so `event_id:X` is answered through `_id` (unique terms are the
/// costliest part of indexing, and this halves them).
pub const EVENT_ID: &str = "event_id";
/// The full-text field searched by bare words in a query.
pub const MESSAGE: &str = "message";

/// The known fields of a booking event, in the order ARCHITECTURE.md ("The booking event") lists them.
pub const FIELDS: &[FieldSpec] = &[
    FieldSpec::new(TS, FieldKind::Time).aliases(&[ES_TIMESTAMP, "timestamp", "time"]),
    FieldSpec::new(TYPE, FieldKind::Keyword { fast: true }).aliases(&["event_type"]),
    FieldSpec::new(EVENT_ID, FieldKind::Keyword { fast: false }),
    FieldSpec::new("service", FieldKind::Keyword { fast: true }),
    FieldSpec::new("level", FieldKind::Keyword { fast: true }),
    FieldSpec::new("booking_id", FieldKind::Keyword { fast: true }),
    FieldSpec::new("customer_id", FieldKind::Keyword { fast: true }),
    FieldSpec::new("show_id", FieldKind::Keyword { fast: true }),
    FieldSpec::new("venue", FieldKind::Keyword { fast: true }),
    FieldSpec::new("seat", FieldKind::Keyword { fast: true }).many(),
    FieldSpec::new("status", FieldKind::Keyword { fast: true }),
    FieldSpec::new("currency", FieldKind::Keyword { fast: true }),
    FieldSpec::new("region", FieldKind::Keyword { fast: true }),
    FieldSpec::new("trace_id", FieldKind::Keyword { fast: false }),
    FieldSpec::new(PAYMENT, FieldKind::Object),
    FieldSpec::new("amount", FieldKind::Number),
    FieldSpec::new("latency_ms", FieldKind::Number),
    FieldSpec::new(MESSAGE, FieldKind::Text),
];

/// The one [`FieldKind::Object`] field.
pub const PAYMENT: &str = "payment";
/// Sub-fields of [`PAYMENT`] that ARCHITECTURE.md types as exact-match strings.
pub const PAYMENT_KEYWORDS: &[&str] = &["method", "status"];

/// Looks a known field up by name.
pub fn field_spec(name: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Whether `name` (as written in a query, possibly dotted) starts with a known field.
pub fn is_known_path(name: &str) -> bool {
    let head = name.split('.').next().unwrap_or(name);
    field_spec(head).is_some() || name == ES_TIMESTAMP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_resolve_to_known_heads() {
        assert!(is_known_path("payment.method"));
        assert!(is_known_path("ts"));
        assert!(!is_known_path("client.app"));
    }
}
