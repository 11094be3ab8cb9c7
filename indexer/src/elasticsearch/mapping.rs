//! Index names and mappings, derived from [`FIELDS`] so the Elasticsearch mapping and the
//! tantivy schema can never disagree about what a field is.
//!
//! Events live in daily indices `PREFIX-YYYY.MM.DD` (UTC event time, so a retried record
//! lands where its first copy did and `create` finds the duplicate). The template's
//! pattern is `PREFIX-2*` rather than `PREFIX-*` so it does not also apply to the
//! checkpoint index `PREFIX-sources`, and searches use the same pattern so checkpoint
//! records never count as events.

use serde_json::{json, Map, Value};

use crate::schema::{FieldKind, ES_TIMESTAMP, FIELDS, PAYMENT_KEYWORDS, TS};

/// Longest string an unknown field indexes (longer ones are kept in `_source` only).
pub const DYNAMIC_IGNORE_ABOVE: u32 = 1024;
/// Longest value a known keyword field indexes: Lucene refuses terms over 32,766 bytes,
/// i.e. 8,191 four-byte characters; past that the document would be rejected outright.
pub const KEYWORD_IGNORE_ABOVE: u32 = 8191;
/// Cap on mapped fields per index, so unknown fields cannot grow the mapping forever.
pub const TOTAL_FIELDS_LIMIT: u32 = 2000;
/// Object nesting the mapping accepts: the validator's depth limit, so a record it lets
/// through is not refused here (Elasticsearch's default is 20).
pub const DEPTH_LIMIT: u32 = 64;
/// Bumped whenever the template body changes, recorded in its `_meta`.
pub const TEMPLATE_VERSION: u32 = 1;
/// Template priority: above the built-in `logs-*-*` (100) in case a prefix overlaps it.
pub const TEMPLATE_PRIORITY: u32 = 500;

/// The daily index of an event: `PREFIX-YYYY.MM.DD` of its UTC time.
pub fn daily_index(prefix: &str, ts_millis: i64) -> String {
    let mut out = String::with_capacity(prefix.len() + 11);
    push_daily_index(&mut out, prefix, ts_millis);
    out
}

/// Appends the daily index name to `out` (no allocation on the bulk encoding path).
pub fn push_daily_index(out: &mut String, prefix: &str, ts_millis: i64) {
    use std::fmt::Write;
    let (year, month, day) = crate::civil::civil_from_days(ts_millis.div_euclid(86_400_000));
    let _ = write!(out, "{prefix}-{year:04}.{month:02}.{day:02}");
}

/// Index pattern of every event index (template and searches).
pub fn events_pattern(prefix: &str) -> String {
    format!("{prefix}-2*")
}

/// Pattern of everything this backend writes, events and checkpoints (refresh, cleanup).
pub fn all_pattern(prefix: &str) -> String {
    format!("{prefix}-*")
}

/// The index holding one checkpoint record per source.
pub fn sources_index(prefix: &str) -> String {
    format!("{prefix}-sources")
}

/// The name the index template is installed under.
pub fn template_name(prefix: &str) -> String {
    prefix.to_string()
}

/// The event mapping: one property per known field, `@timestamp` with `ts` as an alias,
/// and dynamic rules that keep unknown fields cheap (strings as keywords, numbers as
/// doubles, no date guessing).
pub fn event_mappings() -> Value {
    let mut properties = Map::new();
    for spec in FIELDS {
        let mapping = match spec.kind {
            FieldKind::Time => {
                properties.insert(
                    ES_TIMESTAMP.into(),
                    json!({"type": "date", "format": "strict_date_optional_time||epoch_millis"}),
                );
                json!({"type": "alias", "path": ES_TIMESTAMP})
            }
            FieldKind::Keyword { .. } => {
                json!({"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE})
            }
            FieldKind::Number => json!({"type": "double"}),
            FieldKind::Text => json!({"type": "text"}),
            FieldKind::Object => {
                let sub: Map<String, Value> = PAYMENT_KEYWORDS
                    .iter()
                    .map(|name| (name.to_string(), json!({"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE})))
                    .collect();
                json!({"type": "object", "properties": sub})
            }
        };
        properties.insert(spec.name.into(), mapping);
    }
    debug_assert!(properties.contains_key(TS));
    json!({
        // A field first seen as "2024-02-05" must not become a date and then refuse the
        // next record that holds free text in the same field.
        "date_detection": false,
        "numeric_detection": false,
        "dynamic_templates": [
            {"strings_as_keywords": {
                "match_mapping_type": "string",
                "mapping": {"type": "keyword", "ignore_above": DYNAMIC_IGNORE_ABOVE}
            }},
            // A long field would truncate a later 1.5; double keeps both.
            {"numbers_as_doubles": {
                "match_mapping_type": "long",
                "mapping": {"type": "double"}
            }}
        ],
        "properties": properties
    })
}

/// Index settings of an event index. `ignore_dynamic_beyond_limit` (Elasticsearch 8.14+)
/// keeps documents whose new fields pass the cap, unindexed beyond it, instead of
/// refusing them; older clusters reject the setting, so the caller can leave it out.
pub fn event_settings(ignore_dynamic_beyond_limit: bool) -> Value {
    let mut settings = json!({
        "index.number_of_shards": 1,
        "index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT,
        "index.mapping.depth.limit": DEPTH_LIMIT,
        // A value of the wrong type in an unknown field is skipped, not the whole event.
        "index.mapping.ignore_malformed": true
    });
    if ignore_dynamic_beyond_limit {
        settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] = json!(true);
    }
    settings
}

/// The `PUT _index_template/PREFIX` body.
pub fn index_template(prefix: &str, ignore_dynamic_beyond_limit: bool) -> Value {
    json!({
        "index_patterns": [events_pattern(prefix)],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "settings": event_settings(ignore_dynamic_beyond_limit),
            "mappings": event_mappings()
        },
        "_meta": {"managed_by": "tix-logs", "template_version": TEMPLATE_VERSION}
    })
}

/// The `PUT PREFIX-sources` body: one document per source, id = checkpoint key.
pub fn sources_index_body() -> Value {
    let keyword = json!({"type": "keyword"});
    let long = json!({"type": "long"});
    json!({
        "settings": {"index.number_of_shards": 1},
        "mappings": {
            // Unknown fields of future versions are kept in _source, not mapped.
            "dynamic": false,
            "properties": {
                "key": keyword, "source": keyword, "status": keyword,
                "records": long, "valid": long, "indexed": long, "duplicates": long, "rejected": long,
                "failure": {"type": "text"},
                "first_event": keyword, "last_event": keyword, "updated_at": keyword
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_index_uses_the_utc_day_of_the_event() {
        assert_eq!(daily_index("tix-bookings", 1_707_091_200_000), "tix-bookings-2024.02.05");
        assert_eq!(daily_index("tix-bookings", 1_707_091_199_999), "tix-bookings-2024.02.04");
        assert_eq!(daily_index("p", 0), "p-1970.01.01");
        assert_eq!(daily_index("p", 951_782_400_000), "p-2000.02.29");
        assert_eq!(daily_index("p", 4_107_542_399_999), "p-2100.02.28");
        assert_eq!(daily_index("p", -1), "p-1969.12.31");
    }

    #[test]
    fn daily_index_agrees_with_chrono_across_centuries() {
        let mut ms: i64 = 946_684_800_000; // 2000-01-01
        while ms < 4_133_980_800_000 {
            let expected = chrono::DateTime::from_timestamp_millis(ms).unwrap().format("p-%Y.%m.%d").to_string();
            assert_eq!(daily_index("p", ms), expected);
            ms += 86_400_000 * 7 + 3_600_123;
        }
    }

    #[test]
    fn every_known_field_is_mapped_with_its_kind() {
        let mappings = event_mappings();
        let props = &mappings["properties"];
        for spec in FIELDS {
            let expected = match spec.kind {
                FieldKind::Time => "alias",
                FieldKind::Keyword { .. } => "keyword",
                FieldKind::Number => "double",
                FieldKind::Text => "text",
                FieldKind::Object => "object",
            };
            assert_eq!(props[spec.name]["type"], expected, "{}", spec.name);
        }
        assert_eq!(props["@timestamp"]["type"], "date");
        assert_eq!(props["ts"]["path"], "@timestamp");
        for sub in PAYMENT_KEYWORDS {
            assert_eq!(props["payment"]["properties"][sub]["type"], "keyword");
        }
    }

    #[test]
    fn template_matches_event_indices_but_not_the_sources_index() {
        let template = index_template("tix-bookings", true);
        let pattern = template["index_patterns"][0].as_str().unwrap();
        let prefix = pattern.trim_end_matches('*');
        assert!(daily_index("tix-bookings", 1_707_091_200_000).starts_with(prefix));
        assert!(!sources_index("tix-bookings").starts_with(prefix));
        assert_eq!(template["template"]["settings"]["index.mapping.total_fields.limit"], TOTAL_FIELDS_LIMIT);
        assert_eq!(template["template"]["settings"]["index.mapping.total_fields.ignore_dynamic_beyond_limit"], true);
        assert!(index_template("p", false)["template"]["settings"]
            .get("index.mapping.total_fields.ignore_dynamic_beyond_limit")
            .is_none());
        assert_eq!(
            template["template"]["mappings"]["dynamic_templates"][0]["strings_as_keywords"]["mapping"]["type"],
            "keyword"
        );
    }
}
