//! Which search engine answers at `TIX_ES_URL`, read from its `GET /` answer, and what
//! that engine accepts: the index template settings it knows and the lifecycle API
//! (ILM or ISM) that can delete old daily indices.
//!
//! Pure: [`Engine::from_root`] takes the status and body of `GET /`; the backend sends
//! the request and acts on the answer. The shapes come from each engine's documented
//! root answer:
//!
//! | engine | `version.number` | `version.distribution` | `version.build_flavor` |
//! |---|---|---|---|
//! | Elasticsearch 7.10 / 8.x / 9.x | `7.10.2`, `8.15.0`, `9.1.0` | absent | `default` |
//! | Elastic's OSS build, Amazon OpenSearch Service's Elasticsearch 7.10 | `7.10.2` | absent | `oss` |
//! | OpenSearch 1.x / 2.x / 3.x | `1.3.19`, `2.17.1` | `opensearch` | absent |
//! | OpenSearch with `compatibility.override_main_response_version` | `7.10.2` | `opensearch`, or absent | absent |
//! | OpenSearch Serverless (`aoss`) | no usable answer (404, or refused) | | |
//!
//! An answer that names no version is not an error: the engine is [`Engine::Unknown`] and
//! the backend takes the generic path (try the newest template, fall back on a 400, no
//! lifecycle policy). Nothing here looks at the `X-Elastic-Product` header, which only
//! Elasticsearch sends.

use std::fmt;

use serde_json::{json, Value};

use super::mapping::TemplateFeatures;
use crate::{Error, Result};

/// Oldest Elasticsearch accepted: composable index templates (`PUT _index_template`)
/// exist since 7.8, and 7.10 is the oldest release this client is checked against.
pub const MIN_ELASTICSEARCH: Version = Version { major: 7, minor: 10, patch: 0 };
/// First Elasticsearch that knows `index.mapping.total_fields.ignore_dynamic_beyond_limit`.
pub const IGNORE_DYNAMIC_BEYOND_LIMIT_SINCE: Version = Version { major: 8, minor: 14, patch: 0 };
/// ISM template priority: above policies a cluster's operators add for broad patterns.
pub const ISM_TEMPLATE_PRIORITY: u32 = 500;
/// Bumped whenever a retention policy body changes; part of the ISM policy description,
/// which is how an installed policy is recognised as current.
pub const RETENTION_POLICY_VERSION: u32 = 1;

/// A release number `major.minor.patch` (suffixes such as `-SNAPSHOT` are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Parses `8.15.0`, `9.1.0-SNAPSHOT`, `8.14.0-rc1`, `7.10` (patch 0).
    pub fn parse(text: &str) -> Option<Version> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut number = |required: bool| match parts.next() {
            Some(part) => part.parse::<u32>().ok(),
            None if !required => Some(0),
            None => None,
        };
        let version = Version { major: number(true)?, minor: number(true)?, patch: number(false)? };
        Some(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// `version.build_flavor` of an Elasticsearch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Elastic's default distribution: ILM is there (it is part of the free basic tier).
    Default,
    /// The Apache-licensed build without X-Pack, which is what Amazon OpenSearch Service
    /// runs for "Elasticsearch 7.10": no ILM; AWS adds Open Distro's ISM.
    Oss,
    /// Elastic Cloud Serverless: no ILM (data stream lifecycles instead).
    Serverless,
    /// No flavor, or one not listed above. Elasticsearch 8 and later always name one;
    /// a 7.x number without one is usually OpenSearch in compatibility mode.
    Unstated,
}

/// What answers at `TIX_ES_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Elasticsearch {
        version: Version,
        flavor: Flavor,
    },
    /// `version` is `None` when compatibility mode reports 7.10.2 instead of the release.
    OpenSearch {
        version: Option<Version>,
    },
    /// No version could be read (OpenSearch Serverless, a proxy, a refused `GET /`).
    Unknown {
        answer: String,
    },
}

/// How old indices are deleted on an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Elasticsearch ILM: `PUT _ilm/policy/ID`, attached by `index.lifecycle.name` in the template.
    Ilm,
    /// Index State Management under `base` (`_plugins/_ism` on OpenSearch, the legacy
    /// `_opendistro/_ism` on Amazon's Elasticsearch 7.10), attached by the policy's own
    /// `ism_template`.
    Ism { base: &'static str },
    /// No lifecycle API this client can use; retention has to be set elsewhere.
    Unavailable,
}

impl Engine {
    /// Reads the engine from the status and JSON body of `GET /` (`Value::Null` when the
    /// body was not JSON). 401 and 403 never get here: they stop the run as credential
    /// errors before the engine matters.
    pub fn from_root(status: u16, body: &Value) -> Engine {
        let unknown = |why: &str| Engine::Unknown { answer: format!("GET / answered HTTP {status}{why}") };
        if status != 200 {
            return unknown("");
        }
        let Some(number) = body.pointer("/version/number").and_then(Value::as_str) else {
            return unknown(" without version.number");
        };
        let Some(version) = Version::parse(number) else {
            return unknown(&format!(" with an unreadable version.number {number:?}"));
        };
        let distribution = body.pointer("/version/distribution").and_then(Value::as_str);
        match distribution.map(str::to_ascii_lowercase).as_deref() {
            Some("opensearch") => {
                // Compatibility mode (for legacy Elasticsearch clients) reports 7.10.2;
                // OpenSearch's own releases start at 1.0.
                let version = (version.major >= 1 && version.major < 7).then_some(version);
                Engine::OpenSearch { version }
            }
            None | Some("elasticsearch") => {
                let flavor = match body.pointer("/version/build_flavor").and_then(Value::as_str) {
                    Some("default") => Flavor::Default,
                    Some("oss") => Flavor::Oss,
                    Some("serverless") => Flavor::Serverless,
                    _ => Flavor::Unstated,
                };
                Engine::Elasticsearch { version, flavor }
            }
            Some(other) => unknown(&format!(" from an unknown distribution {other:?}")),
        }
    }

    /// Refuses engines without composable index templates, with what to do.
    pub fn check_supported(&self) -> Result<()> {
        match self {
            Engine::Elasticsearch { version, .. } if *version < MIN_ELASTICSEARCH => {
                Err(Error::UnsupportedEngine { found: self.to_string() })
            }
            Engine::OpenSearch { version: Some(version) } if version.major < 1 => {
                Err(Error::UnsupportedEngine { found: self.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// Whether the template may carry `index.mapping.total_fields.ignore_dynamic_beyond_limit`:
    /// `None` when the engine is not known, so the caller tries and falls back on a 400.
    pub fn accepts_ignore_dynamic_beyond_limit(&self) -> Option<bool> {
        match self {
            Engine::Elasticsearch { flavor: Flavor::Serverless, .. } | Engine::Unknown { .. } => None,
            Engine::Elasticsearch { version, .. } => Some(*version >= IGNORE_DYNAMIC_BEYOND_LIMIT_SINCE),
            // No OpenSearch release has the setting.
            Engine::OpenSearch { .. } => Some(false),
        }
    }

    /// The template this engine gets: the optional setting only where it is known (an
    /// unknown engine is offered it, and the caller falls back on a 400), and the ILM
    /// policy only where ILM exists and retention is asked for.
    pub fn template_features(&self, prefix: &str, retention_days: Option<u32>) -> TemplateFeatures {
        TemplateFeatures {
            ignore_dynamic_beyond_limit: self.accepts_ignore_dynamic_beyond_limit().unwrap_or(true),
            ilm_policy: match (self.lifecycle(), retention_days) {
                (Lifecycle::Ilm, Some(_)) => Some(retention_policy_id(prefix)),
                _ => None,
            },
        }
    }

    /// The lifecycle API that deletes old indices on this engine.
    pub fn lifecycle(&self) -> Lifecycle {
        match self {
            Engine::Elasticsearch { flavor: Flavor::Default, .. } => Lifecycle::Ilm,
            Engine::Elasticsearch { version, flavor: Flavor::Unstated } if version.major >= 8 => Lifecycle::Ilm,
            // The OSS build has no X-Pack; on AWS it carries Open Distro's ISM, whose
            // legacy routes OpenSearch (in compatibility mode) still serves too.
            Engine::Elasticsearch { flavor: Flavor::Oss | Flavor::Unstated, .. } => {
                Lifecycle::Ism { base: "_opendistro/_ism" }
            }
            Engine::Elasticsearch { flavor: Flavor::Serverless, .. } => Lifecycle::Unavailable,
            Engine::OpenSearch { .. } => Lifecycle::Ism { base: "_plugins/_ism" },
            Engine::Unknown { .. } => Lifecycle::Unavailable,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Elasticsearch { version, flavor: Flavor::Default } => write!(f, "Elasticsearch {version}"),
            Engine::Elasticsearch { version, flavor: Flavor::Oss } => {
                write!(f, "Elasticsearch {version} (oss build, as on Amazon OpenSearch Service; no ILM)")
            }
            Engine::Elasticsearch { version, flavor: Flavor::Serverless } => {
                write!(f, "Elasticsearch Serverless (reports {version})")
            }
            Engine::Elasticsearch { version, flavor: Flavor::Unstated } => {
                write!(f, "Elasticsearch-compatible {version} without a build flavor")
            }
            Engine::OpenSearch { version: Some(version) } => write!(f, "OpenSearch {version}"),
            Engine::OpenSearch { version: None } => {
                write!(f, "OpenSearch (release hidden: compatibility mode reports 7.10.2)")
            }
            Engine::Unknown { answer } => {
                write!(f, "an unknown engine ({answer}; OpenSearch Serverless, for one, does not serve GET /)")
            }
        }
    }
}

/// The lifecycle policy's id: `PREFIX-retention`.
pub fn retention_policy_id(prefix: &str) -> String {
    format!("{prefix}-retention")
}

/// The `PUT _ilm/policy/PREFIX-retention` body: delete an index `days` after its
/// lifecycle date, which the template makes the date in the index name
/// (`index.lifecycle.parse_origination_date`). No `_meta`: Elasticsearch 7.10 refuses it
/// in a policy (it came with 7.14).
pub fn ilm_policy_body(days: u32) -> Value {
    json!({"policy": {"phases": {"delete": {"min_age": format!("{days}d"), "actions": {"delete": {}}}}}})
}

/// The ISM policy body. ISM counts `min_index_age` from `index.creation_date`, which is
/// when the index was created, not the date in its name (see [`ism_policy_description`]).
pub fn ism_policy_body(prefix: &str, days: u32) -> Value {
    json!({"policy": {
        "description": ism_policy_description(prefix, days),
        "default_state": "retained",
        "states": [
            {"name": "retained", "actions": [], "transitions": [
                {"state_name": "expired", "conditions": {"min_index_age": format!("{days}d")}}
            ]},
            {"name": "expired", "actions": [{"delete": {}}], "transitions": []}
        ],
        // An object rather than a list: Open Distro's ISM on Elasticsearch 7.10 reads
        // only that form, OpenSearch reads both.
        "ism_template": {"index_patterns": [super::mapping::events_pattern(prefix)], "priority": ISM_TEMPLATE_PRIORITY}
    }})
}

/// The ISM policy's description, which also identifies its content: an installed policy
/// with this description is current (the server adds fields of its own to the stored
/// policy, so comparing whole bodies would always differ).
pub fn ism_policy_description(prefix: &str, days: u32) -> String {
    format!(
        "tix-logs retention v{RETENTION_POLICY_VERSION}: delete {} indices {days} days after index.creation_date",
        super::mapping::events_pattern(prefix)
    )
}

/// Whether a `GET <ism>/policies/ID` answer already holds the policy for `days`.
pub fn ism_policy_is_current(existing: &Value, prefix: &str, days: u32) -> bool {
    let policy = &existing["policy"];
    let description = policy.get("description").and_then(Value::as_str);
    let age = format!("{days}d");
    let has_age = policy["states"].as_array().is_some_and(|states| {
        states.iter().any(|s| {
            s["transitions"].as_array().is_some_and(|ts| ts.iter().any(|t| t["conditions"]["min_index_age"] == age))
        })
    });
    let pattern = super::mapping::events_pattern(prefix);
    // Stored as a list whichever form was sent.
    let templates = match &policy["ism_template"] {
        Value::Array(list) => list.clone(),
        Value::Null => vec![],
        single => vec![single.clone()],
    };
    let attaches =
        templates.iter().any(|t| t["index_patterns"].as_array().is_some_and(|p| p.contains(&json!(pattern))));
    description == Some(ism_policy_description(prefix, days).as_str()) && has_age && attaches
}

/// The origination date ILM reads from an index name when
/// `index.lifecycle.parse_origination_date` is true, as Elasticsearch does it: the name
/// must match `^.*-(\d{4}.\d{2}.\d{2})(-\d+)?$` (the documented `^.*-{yyyy.MM.dd}-\d+`
/// with optional trailing digits; `.*` is greedy, so the last date wins) and the date
/// must parse as `uuuu.MM.dd`. `None` means Elasticsearch would refuse to create the index.
pub fn ilm_origination_date(index: &str) -> Option<(i32, u32, u32)> {
    let bytes = index.as_bytes();
    // Greedy `.*`: the last dash that leaves a date and an optional `-digits` tail.
    let candidates = bytes.iter().enumerate().rev().filter(|(_, &b)| b == b'-').map(|(i, _)| i);
    for dash in candidates {
        let Some(date) = bytes.get(dash + 1..dash + 11) else { continue };
        let digits = |range: std::ops::Range<usize>| date[range].iter().all(u8::is_ascii_digit);
        // The regex's `.` separators match any character; the date format then wants dots.
        if !(digits(0..4) && digits(5..7) && digits(8..10)) {
            continue;
        }
        let tail = &bytes[dash + 11..];
        let tail_ok =
            tail.is_empty() || (tail[0] == b'-' && tail.len() > 1 && tail[1..].iter().all(u8::is_ascii_digit));
        if !tail_ok {
            continue;
        }
        // The regex matched: from here Elasticsearch either parses the date or refuses.
        if date[4] != b'.' || date[7] != b'.' {
            return None;
        }
        let text = std::str::from_utf8(date).ok()?;
        let (year, month, day) = (text[0..4].parse().ok()?, text[5..7].parse().ok()?, text[8..10].parse().ok()?);
        return chrono::NaiveDate::from_ymd_opt(year, month, day).map(|_| (year, month, day));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elasticsearch::mapping::{daily_index, sources_index};

    fn root(version: Value) -> Value {
        json!({"name": "node-1", "cluster_name": "c", "cluster_uuid": "u", "version": version, "tagline": "t"})
    }

    #[test]
    fn versions_parse_with_and_without_suffixes() {
        let v = |major, minor, patch| Some(Version { major, minor, patch });
        let cases = [
            ("8.15.0", v(8, 15, 0)),
            ("9.1.0-SNAPSHOT", v(9, 1, 0)),
            ("8.14.0-rc1", v(8, 14, 0)),
            ("7.10", v(7, 10, 0)),
            ("2.17.1", v(2, 17, 1)),
            ("", None),
            ("eight", None),
            ("8", None),
            ("8.x.0", None),
        ];
        for (text, expected) in cases {
            assert_eq!(Version::parse(text), expected, "{text:?}");
        }
        assert!(Version::parse("8.14.0").unwrap() >= IGNORE_DYNAMIC_BEYOND_LIMIT_SINCE);
        assert!(Version::parse("8.13.4").unwrap() < IGNORE_DYNAMIC_BEYOND_LIMIT_SINCE);
        assert!(Version::parse("7.9.3").unwrap() < MIN_ELASTICSEARCH);
    }

    /// (name, status, body, engine, supported, ignore_dynamic_beyond_limit, lifecycle)
    type Row = (&'static str, u16, Value, Engine, bool, Option<bool>, Lifecycle);

    #[test]
    fn each_engine_is_recognised_with_what_it_accepts() {
        let es = |number: &str, flavor: &str| root(json!({"number": number, "build_flavor": flavor}));
        let os = |number: &str| root(json!({"distribution": "opensearch", "number": number}));
        let ver = |text| Version::parse(text).unwrap();
        let plugins = Lifecycle::Ism { base: "_plugins/_ism" };
        let legacy = Lifecycle::Ism { base: "_opendistro/_ism" };
        let cases: Vec<Row> = vec![
            (
                "ES 7.10.2",
                200,
                es("7.10.2", "default"),
                Engine::Elasticsearch { version: ver("7.10.2"), flavor: Flavor::Default },
                true,
                Some(false),
                Lifecycle::Ilm,
            ),
            (
                "AWS ES 7.10",
                200,
                es("7.10.2", "oss"),
                Engine::Elasticsearch { version: ver("7.10.2"), flavor: Flavor::Oss },
                true,
                Some(false),
                legacy,
            ),
            (
                "ES 8.13",
                200,
                es("8.13.4", "default"),
                Engine::Elasticsearch { version: ver("8.13.4"), flavor: Flavor::Default },
                true,
                Some(false),
                Lifecycle::Ilm,
            ),
            (
                "ES 8.15",
                200,
                es("8.15.0", "default"),
                Engine::Elasticsearch { version: ver("8.15.0"), flavor: Flavor::Default },
                true,
                Some(true),
                Lifecycle::Ilm,
            ),
            (
                "ES 9.1",
                200,
                es("9.1.0", "default"),
                Engine::Elasticsearch { version: ver("9.1.0"), flavor: Flavor::Default },
                true,
                Some(true),
                Lifecycle::Ilm,
            ),
            (
                "ES 9.1 named",
                200,
                root(json!({"distribution": "elasticsearch", "number": "9.1.0", "build_flavor": "default"})),
                Engine::Elasticsearch { version: ver("9.1.0"), flavor: Flavor::Default },
                true,
                Some(true),
                Lifecycle::Ilm,
            ),
            (
                "ES serverless",
                200,
                es("8.11.0", "serverless"),
                Engine::Elasticsearch { version: ver("8.11.0"), flavor: Flavor::Serverless },
                true,
                None,
                Lifecycle::Unavailable,
            ),
            (
                "ES 7.9",
                200,
                es("7.9.3", "default"),
                Engine::Elasticsearch { version: ver("7.9.3"), flavor: Flavor::Default },
                false,
                Some(false),
                Lifecycle::Ilm,
            ),
            (
                "ES 6.8",
                200,
                es("6.8.23", "default"),
                Engine::Elasticsearch { version: ver("6.8.23"), flavor: Flavor::Default },
                false,
                Some(false),
                Lifecycle::Ilm,
            ),
            (
                "OpenSearch 1.3",
                200,
                os("1.3.19"),
                Engine::OpenSearch { version: Some(ver("1.3.19")) },
                true,
                Some(false),
                plugins,
            ),
            (
                "OpenSearch 2.x",
                200,
                os("2.17.1"),
                Engine::OpenSearch { version: Some(ver("2.17.1")) },
                true,
                Some(false),
                plugins,
            ),
            ("OpenSearch compat", 200, os("7.10.2"), Engine::OpenSearch { version: None }, true, Some(false), plugins),
            (
                "7.10.2, no flavor",
                200,
                root(json!({"number": "7.10.2"})),
                Engine::Elasticsearch { version: ver("7.10.2"), flavor: Flavor::Unstated },
                true,
                Some(false),
                legacy,
            ),
        ];
        for (name, status, body, engine, supported, ignore_dynamic, lifecycle) in cases {
            let found = Engine::from_root(status, &body);
            assert_eq!(found, engine, "{name}");
            assert_eq!(found.check_supported().is_ok(), supported, "{name}");
            assert_eq!(found.accepts_ignore_dynamic_beyond_limit(), ignore_dynamic, "{name}");
            assert_eq!(found.lifecycle(), lifecycle, "{name}");
        }
    }

    #[test]
    fn an_absent_or_unreadable_answer_is_an_unknown_engine_not_an_error() {
        let cases = [
            (404, json!({"status": 404, "error": {"type": "not_found", "reason": "Not Found"}})),
            (404, Value::Null),
            (200, Value::Null),
            (200, json!({"ok": true})),
            (200, json!({"version": {"number": "latest"}})),
            (200, json!({"version": {"distribution": "other-search", "number": "1.0.0"}})),
            (500, json!({})),
        ];
        for (status, body) in cases {
            let engine = Engine::from_root(status, &body);
            assert!(matches!(engine, Engine::Unknown { .. }), "{status} {body}: {engine:?}");
            assert!(engine.check_supported().is_ok());
            assert_eq!(engine.accepts_ignore_dynamic_beyond_limit(), None);
            assert_eq!(engine.lifecycle(), Lifecycle::Unavailable);
            assert!(engine.to_string().contains(&format!("HTTP {status}")), "{engine}");
        }
    }

    #[test]
    fn refusals_name_the_engine_and_what_is_needed() {
        let engine = Engine::from_root(200, &root(json!({"number": "7.9.3", "build_flavor": "default"})));
        let err = engine.check_supported().unwrap_err();
        assert!(matches!(&err, Error::UnsupportedEngine { found } if found == "Elasticsearch 7.9.3"), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("7.10") && text.contains("OpenSearch 1.0") && text.contains("TIX_ES_URL"), "{text}");
    }

    #[test]
    fn ilm_reads_the_date_of_every_daily_index_and_refuses_other_names() {
        assert_eq!(ilm_origination_date("tix-bookings-2024.02.05"), Some((2024, 2, 5)));
        assert_eq!(ilm_origination_date("logs-2016.10.31-000002"), Some((2016, 10, 31)));
        // Greedy `.*`: a prefix with its own dashes and digits still yields the last date.
        assert_eq!(ilm_origination_date("tix-2023-eu-2024.02.29"), Some((2024, 2, 29)));
        assert_eq!(ilm_origination_date("index-2019.09.04-2019.09.24"), Some((2019, 9, 24)));
        for name in [
            "tix-bookings-sources",
            "tix-bookings",
            "indexName-00001",
            "indexName_2019.09.04_00001",
            "index-2019.09.44",
            "index-2019-09-04",
            "index-2019.04-00001",
        ] {
            assert_eq!(ilm_origination_date(name), None, "{name}");
        }
        // Every name the backend writes parses to its own UTC day.
        let mut ms: i64 = 946_684_800_000; // 2000-01-01
        while ms < 4_102_444_800_000 {
            let name = daily_index("tix-bookings", ms);
            let day = chrono::DateTime::from_timestamp_millis(ms).unwrap().date_naive();
            use chrono::Datelike;
            assert_eq!(ilm_origination_date(&name), Some((day.year(), day.month(), day.day())), "{name}");
            ms += 86_400_000 * 11 + 3_600_123;
        }
        assert_eq!(ilm_origination_date(&sources_index("tix-bookings")), None);
    }

    #[test]
    fn retention_policies_delete_after_the_configured_days() {
        let ilm = ilm_policy_body(30);
        assert_eq!(ilm["policy"]["phases"]["delete"]["min_age"], "30d");
        assert_eq!(ilm["policy"]["phases"]["delete"]["actions"], json!({"delete": {}}));
        assert!(ilm["policy"].get("_meta").is_none(), "Elasticsearch 7.10 refuses _meta in a policy");

        let ism = ism_policy_body("tix-bookings", 30);
        let policy = &ism["policy"];
        assert_eq!(policy["default_state"], "retained");
        assert_eq!(policy["states"][0]["transitions"][0]["conditions"]["min_index_age"], "30d");
        assert_eq!(policy["states"][1]["actions"][0], json!({"delete": {}}));
        assert_eq!(policy["ism_template"]["index_patterns"], json!(["tix-bookings-2*"]));
        assert_eq!(retention_policy_id("tix-bookings"), "tix-bookings-retention");
    }

    #[test]
    fn an_installed_ism_policy_is_recognised_as_current_only_with_the_same_content() {
        // What GET _plugins/_ism/policies/ID returns: the server adds ids, times, retry
        // settings and stores ism_template as a list.
        let stored = |days: u32, description: String| {
            json!({"_id": "tix-bookings-retention", "_version": 1, "_seq_no": 7, "_primary_term": 1, "policy": {
                "policy_id": "tix-bookings-retention", "description": description,
                "last_updated_time": 1_707_091_200_000_i64, "schema_version": 21, "error_notification": null,
                "default_state": "retained",
                "states": [
                    {"name": "retained", "actions": [], "transitions": [{"state_name": "expired", "conditions": {"min_index_age": format!("{days}d")}}]},
                    {"name": "expired", "actions": [{"retry": {"count": 3, "backoff": "exponential", "delay": "1m"}, "delete": {}}], "transitions": []}
                ],
                "ism_template": [{"index_patterns": ["tix-bookings-2*"], "priority": 500, "last_updated_time": 1_707_091_200_000_i64}]
            }})
        };
        assert!(ism_policy_is_current(&stored(30, ism_policy_description("tix-bookings", 30)), "tix-bookings", 30));
        assert!(!ism_policy_is_current(&stored(30, ism_policy_description("tix-bookings", 30)), "tix-bookings", 7));
        assert!(!ism_policy_is_current(&stored(7, ism_policy_description("tix-bookings", 30)), "tix-bookings", 30));
        assert!(!ism_policy_is_current(&stored(30, "hand-made".into()), "tix-bookings", 30));
        assert!(!ism_policy_is_current(&json!({}), "tix-bookings", 30));
    }

    /// Each engine's template holds only settings that engine documents: the base five
    /// everywhere, `ignore_dynamic_beyond_limit` from Elasticsearch 8.14, `index.lifecycle.*`
    /// only where ILM exists (OpenSearch answers "unknown setting [index.lifecycle.name]").
    #[test]
    fn each_engine_template_holds_only_settings_that_engine_accepts() {
        use crate::elasticsearch::mapping::index_template_with;
        const BASE: [&str; 5] = [
            "index.number_of_shards",
            "index.mapping.total_fields.limit",
            "index.mapping.depth.limit",
            "index.mapping.ignore_malformed",
            // standard tokenizer, cjk_width, lowercase, cjk_bigram: built in everywhere.
            "index.analysis",
        ];
        const DYNAMIC: &str = "index.mapping.total_fields.ignore_dynamic_beyond_limit";
        const ILM: [&str; 2] = ["index.lifecycle.name", "index.lifecycle.parse_origination_date"];
        let es = |number: &str, flavor: &str| root(json!({"number": number, "build_flavor": flavor}));
        let os = |number: &str| root(json!({"distribution": "opensearch", "number": number}));
        // (engine, GET / answer, settings it accepts besides BASE)
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("Elasticsearch 7.10.2", es("7.10.2", "default"), ILM.to_vec()),
            ("Amazon Elasticsearch 7.10 (oss)", es("7.10.2", "oss"), vec![]),
            ("Elasticsearch 8.13.4", es("8.13.4", "default"), ILM.to_vec()),
            ("Elasticsearch 8.15.0", es("8.15.0", "default"), [&ILM[..], &[DYNAMIC]].concat()),
            ("Elasticsearch 9.1.0", es("9.1.0", "default"), [&ILM[..], &[DYNAMIC]].concat()),
            ("OpenSearch 1.3.19", os("1.3.19"), vec![]),
            ("OpenSearch 2.17.1", os("2.17.1"), vec![]),
            ("OpenSearch in compatibility mode", os("7.10.2"), vec![]),
        ];
        for (name, answer, extra) in cases {
            let engine = Engine::from_root(200, &answer);
            assert!(engine.accepts_ignore_dynamic_beyond_limit().is_some(), "{name}: no trial for a known engine");
            for retention in [None, Some(30)] {
                let template =
                    index_template_with("tix-bookings", &engine.template_features("tix-bookings", retention));
                let settings = template["template"]["settings"].as_object().unwrap();
                for key in settings.keys() {
                    assert!(BASE.contains(&key.as_str()) || extra.contains(&key.as_str()), "{name}: {key}");
                }
                for key in BASE {
                    assert!(settings.contains_key(key), "{name}: {key} missing");
                }
                let ilm = settings.contains_key("index.lifecycle.name");
                assert_eq!(ilm, retention.is_some() && extra.contains(&"index.lifecycle.name"), "{name} {retention:?}");
            }
        }
        // An unknown engine is offered the newest template without a lifecycle policy.
        let unknown = Engine::from_root(404, &Value::Null);
        let features = unknown.template_features("tix-bookings", Some(30));
        assert_eq!(features, TemplateFeatures { ignore_dynamic_beyond_limit: true, ilm_policy: None });
    }
}
