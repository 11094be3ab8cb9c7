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
use crate::text::ES_ANALYZER;

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
pub const TEMPLATE_VERSION: u32 = 2;
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

/// The index pattern (Kibana data view, OpenSearch Dashboards index pattern) analysts
/// create to see the events, with [`ANALYST_TIME_FIELD`] as its time field: the daily
/// indices only, so checkpoint records in `PREFIX-sources` never show up as events.
pub fn analyst_index_pattern(prefix: &str) -> String {
    events_pattern(prefix)
}

/// The time field of [`analyst_index_pattern`].
pub const ANALYST_TIME_FIELD: &str = ES_TIMESTAMP;

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
            FieldKind::Text => json!({"type": "text", "analyzer": ES_ANALYZER}),
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
        "index.mapping.ignore_malformed": true,
        "index.analysis": message_analysis()
    });
    if ignore_dynamic_beyond_limit {
        settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] = json!(true);
    }
    settings
}

/// The analyzer of `message`: the same terms as the tantivy tokenizer
/// ([`crate::text`]), so Korean nouns find their inflected forms on both backends. Only
/// parts built into Elasticsearch 7.10+ and every OpenSearch (no `analysis-nori` plugin),
/// and not the `cjk` analyzer, which also drops English stop words.
pub fn message_analysis() -> Value {
    json!({"analyzer": {ES_ANALYZER: {
        "type": "custom",
        "tokenizer": "standard",
        "filter": ["cjk_width", "lowercase", "cjk_bigram"]
    }}})
}

/// The `PUT _index_template/PREFIX` body without a lifecycle policy.
pub fn index_template(prefix: &str, ignore_dynamic_beyond_limit: bool) -> Value {
    index_template_with(prefix, &TemplateFeatures { ignore_dynamic_beyond_limit, ilm_policy: None })
}

/// What a template carries beyond what every supported engine accepts (Elasticsearch
/// 7.10+, OpenSearch 1.0+: the settings of [`event_settings`] without the optional one,
/// keyword `ignore_above`, `alias` fields, string/long `dynamic_templates`, `_meta`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateFeatures {
    /// `index.mapping.total_fields.ignore_dynamic_beyond_limit` (Elasticsearch 8.14+ only).
    pub ignore_dynamic_beyond_limit: bool,
    /// An ILM policy (Elasticsearch with ILM only; OpenSearch refuses `index.lifecycle.*`
    /// as unknown settings): new indices join it, and their lifecycle date is the date in
    /// their name (`index.lifecycle.parse_origination_date`), so a backfilled index ages
    /// from its day, not from the day it was written.
    pub ilm_policy: Option<String>,
}

/// The `PUT _index_template/PREFIX` body for an engine's [`TemplateFeatures`].
pub fn index_template_with(prefix: &str, features: &TemplateFeatures) -> Value {
    let mut settings = event_settings(features.ignore_dynamic_beyond_limit);
    if let Some(policy) = &features.ilm_policy {
        settings["index.lifecycle.name"] = json!(policy);
        // ILM refuses to create an index whose name has no `-yyyy.MM.dd` date; the
        // pattern below matches only the daily indices, never `PREFIX-sources`.
        settings["index.lifecycle.parse_origination_date"] = json!(true);
    }
    json!({
        "index_patterns": [events_pattern(prefix)],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "settings": settings,
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

    /// Whether an index pattern of the `PREFIX-2*` kind (one trailing `*`) matches a name.
    fn pattern_matches(pattern: &str, index: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(head) => index.starts_with(head),
            None => index == pattern,
        }
    }

    #[test]
    fn the_analysts_index_pattern_shows_daily_indices_and_not_the_checkpoints() {
        for prefix in ["tix-bookings", "bookings-test", "t"] {
            let pattern = analyst_index_pattern(prefix);
            assert_eq!(pattern, format!("{prefix}-2*"));
            assert!(pattern_matches(&pattern, &daily_index(prefix, 1_707_091_200_000)), "{pattern}");
            assert!(pattern_matches(&pattern, &daily_index(prefix, 4_102_444_799_999)), "{pattern}");
            assert!(!pattern_matches(&pattern, &sources_index(prefix)), "{pattern}");
        }
        assert_eq!(ANALYST_TIME_FIELD, "@timestamp");
    }

    #[test]
    fn an_ilm_policy_is_attached_only_when_asked_and_only_to_daily_indices() {
        let plain = index_template_with("tix-bookings", &TemplateFeatures::default());
        let settings = plain["template"]["settings"].as_object().unwrap();
        assert!(settings.keys().all(|k| !k.starts_with("index.lifecycle.")), "{settings:?}");
        assert_eq!(plain, index_template("tix-bookings", false));

        let features =
            TemplateFeatures { ignore_dynamic_beyond_limit: true, ilm_policy: Some("tix-bookings-retention".into()) };
        let with_ilm = index_template_with("tix-bookings", &features);
        let settings = &with_ilm["template"]["settings"];
        assert_eq!(settings["index.lifecycle.name"], "tix-bookings-retention");
        assert_eq!(settings["index.lifecycle.parse_origination_date"], true);
        // The mappings and everything else are those of the template without a policy.
        let mut without = with_ilm.clone();
        let map = without["template"]["settings"].as_object_mut().unwrap();
        map.remove("index.lifecycle.name");
        map.remove("index.lifecycle.parse_origination_date");
        assert_eq!(without, index_template("tix-bookings", true));
        // ILM would refuse to create an index without a date in its name: the template
        // must never apply to the checkpoint index.
        let pattern = with_ilm["index_patterns"][0].as_str().unwrap();
        assert!(!pattern_matches(pattern, &sources_index("tix-bookings")));
    }

    /// The mapping may only use parameters and types that Elasticsearch 7.10 and
    /// OpenSearch 1.3 know: `alias` (since Elasticsearch 6.4, in every OpenSearch),
    /// `ignore_above` on keywords, `format` on dates, and `dynamic_templates` matched by
    /// `match_mapping_type` strings (arrays of them came with Elasticsearch 8.9).
    #[test]
    fn the_mapping_uses_only_what_every_supported_engine_knows() {
        fn walk(properties: &Map<String, Value>, seen: &mut Vec<(String, String)>) {
            for (name, field) in properties {
                let field = field.as_object().unwrap();
                for (key, value) in field {
                    if key == "properties" {
                        walk(value.as_object().unwrap(), seen);
                    } else {
                        seen.push((name.clone(), key.clone()));
                    }
                }
                let kind = field["type"].as_str().unwrap();
                assert!(["keyword", "double", "text", "object", "date", "alias"].contains(&kind), "{name}: {kind}");
            }
        }
        let mappings = event_mappings();
        let mut top: Vec<&String> = mappings.as_object().unwrap().keys().collect();
        top.sort();
        assert_eq!(top, ["date_detection", "dynamic_templates", "numeric_detection", "properties"]);
        let mut seen = Vec::new();
        walk(mappings["properties"].as_object().unwrap(), &mut seen);
        for (name, key) in &seen {
            assert!(["type", "ignore_above", "path", "format", "analyzer"].contains(&key.as_str()), "{name}.{key}");
        }
        for rule in mappings["dynamic_templates"].as_array().unwrap() {
            let (_, rule) = rule.as_object().unwrap().iter().next().unwrap();
            assert!(rule["match_mapping_type"].is_string(), "{rule}");
            let mut keys: Vec<&String> = rule.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["mapping", "match_mapping_type"]);
        }
        // The only analyzer named is the template's own, built from built-in parts.
        let analyzers: Vec<&Value> =
            mappings["properties"].as_object().unwrap().values().filter_map(|f| f.get("analyzer")).collect();
        assert_eq!(analyzers, [&json!(ES_ANALYZER)]);
        let analysis = message_analysis();
        assert_eq!(analysis["analyzer"][ES_ANALYZER]["tokenizer"], "standard");
        for filter in analysis["analyzer"][ES_ANALYZER]["filter"].as_array().unwrap() {
            assert!(["cjk_width", "lowercase", "cjk_bigram"].contains(&filter.as_str().unwrap()), "{filter}");
        }
        let sources = sources_index_body();
        let settings: Vec<&String> = sources["settings"].as_object().unwrap().keys().collect();
        assert_eq!(settings, ["index.number_of_shards"]);
    }
}
