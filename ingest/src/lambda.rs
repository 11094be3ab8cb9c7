//! The Lambda's configuration and metrics, kept pure so they are tested without AWS:
//! settings read from environment variables (refusing unsafe ones), and the one
//! CloudWatch Embedded Metric Format line written per invocation.

use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::s3::S3Location;
use crate::trigger::{HandlerReport, DEFAULT_DEADLINE_MARGIN};

/// The namespace of the EMF metrics (alarms in `template.yaml` use it).
pub const METRICS_NAMESPACE: &str = "TixLogs";

/// The shortest PII key accepted, the Lambda's and the CLI's (`crate::pii_key`).
pub use crate::pii_key::MIN_PII_KEY_BYTES;

/// How the function logs, from Lambda's advanced logging controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// One JSON object per line (the default), or text when `AWS_LAMBDA_LOG_FORMAT=Text`.
    pub json: bool,
    /// The level for every target `RUST_LOG` does not name.
    pub level: tracing::level_filters::LevelFilter,
}

/// Reads `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL` (set by Lambda from the
/// function's `LoggingConfig`); without a Lambda level, a bare level in `RUST_LOG`
/// counts, else `info`. As in `lambda_runtime::tracing`, except that logs stay JSON when
/// no format is given: CloudWatch Logs Insights and the tests read them as JSON, and a
/// function deployed without the template's `LoggingConfig` should not change shape.
pub fn log_settings(lookup: impl Fn(&str) -> Option<String>) -> LogSettings {
    use tracing::level_filters::LevelFilter;
    let json = !lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.trim().eq_ignore_ascii_case("text"));
    let parse = |text: &str| match text.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(LevelFilter::TRACE),
        "debug" => Some(LevelFilter::DEBUG),
        "info" => Some(LevelFilter::INFO),
        "warn" | "warning" => Some(LevelFilter::WARN),
        // Lambda's own level list ends with FATAL, which tracing does not have.
        "error" | "fatal" => Some(LevelFilter::ERROR),
        "off" => Some(LevelFilter::OFF),
        _ => None,
    };
    let level = lookup("AWS_LAMBDA_LOG_LEVEL")
        .and_then(|l| parse(&l))
        .or_else(|| lookup("RUST_LOG").and_then(|l| parse(&l)))
        .unwrap_or(LevelFilter::INFO);
    LogSettings { json, level }
}

/// Which backend the Lambda writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LambdaBackend {
    Elasticsearch,
    /// A tantivy index at a path: for local runs and tests of the binary (a Lambda's
    /// disk does not outlive it).
    Tantivy(std::path::PathBuf),
}

/// Everything the Lambda reads from its environment.
#[derive(Clone)]
pub struct LambdaSettings {
    pub backend: LambdaBackend,
    pub dead_letter: S3Location,
    pub trigger: Option<S3Location>,
    /// HMAC key for PII tokens (required: a Lambda never uses the development key).
    pub pii_key: Vec<u8>,
    /// Stop taking new objects when less than this is left before the deadline (at most
    /// a quarter of the invocation's time, see [`crate::trigger::Deadline::for_budget`]).
    pub deadline_margin: Duration,
    /// The time an invocation may take when the runtime's deadline cannot be real
    /// (`TIX_TIME_BUDGET_MS`); `None` works without a deadline then.
    pub fallback_budget: Option<Duration>,
    pub function_name: String,
}

impl std::fmt::Debug for LambdaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaSettings")
            .field("backend", &self.backend)
            .field("dead_letter", &self.dead_letter)
            .field("trigger", &self.trigger)
            .field("pii_key", &"<redacted>")
            .field("deadline_margin", &self.deadline_margin)
            .field("fallback_budget", &self.fallback_budget)
            .field("function_name", &self.function_name)
            .finish()
    }
}

impl LambdaSettings {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads `TIX_BACKEND` (`elasticsearch`, the default, or `tantivy` with
    /// `TIX_INDEX`), `TIX_DEAD_LETTER` (`s3://bucket/prefix`, required),
    /// `TIX_TRIGGER_PREFIX` (`s3://bucket/prefix`), `TIX_PII_KEY` (required),
    /// `TIX_DEADLINE_MARGIN_MS` (default 10000), `TIX_TIME_BUDGET_MS` and
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let config = |message: String| Error::Config(message);
        let backend = match lookup("TIX_BACKEND").as_deref().unwrap_or("elasticsearch") {
            "elasticsearch" => LambdaBackend::Elasticsearch,
            "tantivy" => LambdaBackend::Tantivy(
                lookup("TIX_INDEX").ok_or_else(|| config("TIX_BACKEND=tantivy needs TIX_INDEX".into()))?.into(),
            ),
            other => return Err(config(format!("TIX_BACKEND={other:?}: expected elasticsearch or tantivy"))),
        };
        let s3_location = |name: &str| -> Result<Option<S3Location>> {
            lookup(name)
                .map(|text| match S3Location::parse(&text) {
                    Some(Ok(location)) => Ok(location),
                    Some(Err(e)) => Err(config(format!("{name}: {e}"))),
                    None => Err(config(format!("{name}={text:?}: expected s3://bucket/prefix"))),
                })
                .transpose()
        };
        let dead_letter = s3_location("TIX_DEAD_LETTER")?.ok_or_else(|| {
            config("TIX_DEAD_LETTER is required (s3://bucket/prefix outside the trigger prefix)".into())
        })?;
        let trigger = s3_location("TIX_TRIGGER_PREFIX")?;
        if let Some(trigger) = &trigger {
            if trigger.overlaps(&dead_letter) {
                return Err(config(format!(
                    "the dead-letter prefix {dead_letter} lies under the trigger prefix {trigger}: every dead-letter \
                     object would trigger the function again. Choose a prefix outside it."
                )));
            }
        }
        let pii_key = lookup("TIX_PII_KEY").filter(|k| !k.is_empty()).ok_or_else(|| {
            config(
                "TIX_PII_KEY is required in the Lambda (the HMAC key for e-mail and phone tokens): set \
                 TIX_PII_KEY_PARAM to the name of an SSM SecureString parameter holding it"
                    .into(),
            )
        })?;
        // The same rule as the CLI's: a short key can be found by trying keys against a
        // token or a document id, and then both are as good as the clear value.
        crate::pii_key::check_length(pii_key.as_bytes(), "TIX_PII_KEY (or the parameter TIX_PII_KEY_PARAM names)")
            .map_err(config)?;
        let deadline_margin = match lookup("TIX_DEADLINE_MARGIN_MS") {
            None => DEFAULT_DEADLINE_MARGIN,
            Some(ms) => Duration::from_millis(
                ms.parse().map_err(|_| config(format!("TIX_DEADLINE_MARGIN_MS={ms:?}: expected milliseconds")))?,
            ),
        };
        let fallback_budget = match lookup("TIX_TIME_BUDGET_MS") {
            None => None,
            Some(ms) => match ms.parse::<u64>() {
                Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
                _ => {
                    return Err(config(format!(
                        "TIX_TIME_BUDGET_MS={ms:?}: expected a positive number of milliseconds"
                    )))
                }
            },
        };
        Ok(LambdaSettings {
            fallback_budget,
            backend,
            dead_letter,
            trigger,
            pii_key: pii_key.into_bytes(),
            deadline_margin,
            function_name: lookup("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "tix-logs-lambda".into()),
        })
    }
}

/// How long an invocation may run, as far as the runtime's deadline tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationBudget {
    /// The deadline is a real instant this far ahead.
    Known(Duration),
    /// The deadline cannot be real: already past when the invocation arrived, or before
    /// this process started. `cargo lambda watch`'s emulator sends a duration (600000)
    /// where AWS sends an epoch time; read as a date in 1970 it would stop all work.
    Unknown,
}

/// Reads the runtime's deadline (`Lambda-Runtime-Deadline-Ms`, epoch milliseconds) at
/// `now_ms`, for a process started at `process_started_ms`.
pub fn invocation_budget(deadline_ms: u64, now_ms: u64, process_started_ms: u64) -> InvocationBudget {
    if deadline_ms <= now_ms || deadline_ms < process_started_ms {
        InvocationBudget::Unknown
    } else {
        InvocationBudget::Known(Duration::from_millis(deadline_ms - now_ms))
    }
}

/// One CloudWatch Embedded Metric Format record for an invocation.
pub fn emf_record(report: &HandlerReport, function_name: &str, duration: Duration, timestamp_ms: i64) -> Value {
    let summary = &report.summary;
    let mut metrics: Vec<(&str, u64, &str)> = vec![
        ("Objects", summary.objects, "Count"),
        ("Records", summary.records, "Count"),
        ("Indexed", summary.indexed, "Count"),
        ("Duplicates", summary.duplicates, "Count"),
        ("Rejected", summary.rejected, "Count"),
        ("FailedObjects", summary.objects_failed, "Count"),
        ("PausedObjects", summary.objects_paused, "Count"),
        ("FailedMessages", report.failed.len() as u64, "Count"),
        ("Acknowledged", report.acknowledged, "Count"),
        ("BytesRead", summary.bytes_read, "Bytes"),
        ("DurationMs", duration.as_millis() as u64, "Milliseconds"),
    ];
    // Only a scheduled reconcile reports these, so their alarms see its runs alone.
    if let Some(reconciled) = &report.reconciliation {
        metrics.extend([
            ("ReconcileMissing", reconciled.reconciliation.missing.len() as u64, "Count"),
            ("ReconcileFailed", reconciled.reconciliation.failed.len() as u64, "Count"),
            ("ReconcileRemaining", reconciled.remaining.as_ref().map_or(0, |keys| keys.len() as u64), "Count"),
        ]);
    }
    let mut record = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        },
        "FunctionName": function_name,
    });
    for (name, value, _) in metrics {
        record[name] = json!(value);
    }
    record
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::pipeline::RunSummary;

    fn settings(pairs: &[(&str, &str)]) -> Result<LambdaSettings> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LambdaSettings::from_lookup(|name| env.get(name).cloned())
    }

    /// 32 bytes, the shortest key the Lambda takes.
    const KEY: &str = "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-";

    const GOOD: [(&str, &str); 3] =
        [("TIX_DEAD_LETTER", "s3://logs/dead/"), ("TIX_TRIGGER_PREFIX", "s3://logs/in/"), ("TIX_PII_KEY", KEY)];

    #[test]
    fn good_settings_are_read_and_debug_hides_the_key() {
        let s = settings(&GOOD).unwrap();
        assert_eq!(s.backend, LambdaBackend::Elasticsearch);
        assert_eq!(s.dead_letter.prefix, "dead/");
        assert_eq!(s.deadline_margin, Duration::from_secs(10));
        assert_eq!(s.pii_key, KEY.as_bytes());
        let debug = format!("{s:?}");
        assert!(!debug.contains("k3y"), "{debug}");
    }

    #[test]
    fn a_pii_key_shorter_than_32_bytes_is_refused_without_showing_it() {
        for short in ["Zq", "test-pii-key", &KEY[..31]] {
            let mut pairs = GOOD.to_vec();
            pairs[2] = ("TIX_PII_KEY", short);
            let error = settings(&pairs).expect_err(short).to_string();
            assert!(error.contains(&format!("is {} bytes long", short.len())), "{error}");
            assert!(error.contains("at least 32") && !error.contains(short), "{error}");
        }
    }

    #[test]
    fn logs_follow_lambdas_logging_controls_and_stay_json_by_default() {
        use tracing::level_filters::LevelFilter;
        type Env = &'static [(&'static str, &'static str)];
        let table: [(Env, bool, LevelFilter); 8] = [
            (&[], true, LevelFilter::INFO),
            (&[("AWS_LAMBDA_LOG_FORMAT", "JSON")], true, LevelFilter::INFO),
            (&[("AWS_LAMBDA_LOG_FORMAT", "Text")], false, LevelFilter::INFO),
            (&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")], true, LevelFilter::DEBUG),
            (&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")], true, LevelFilter::ERROR),
            (&[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "trace")], true, LevelFilter::WARN),
            (&[("RUST_LOG", "debug")], true, LevelFilter::DEBUG),
            // Per-target directives are RUST_LOG's own business (the binary's EnvFilter).
            (&[("RUST_LOG", "ingest=debug")], true, LevelFilter::INFO),
        ];
        for (pairs, json, level) in table {
            let env: HashMap<&str, &str> = pairs.iter().copied().collect();
            let got = log_settings(|name| env.get(name).map(|v| v.to_string()));
            assert_eq!(got, LogSettings { json, level }, "{pairs:?}");
        }
    }

    #[test]
    fn unsafe_or_incomplete_settings_are_refused_with_the_variable_named() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("TIX_DEAD_LETTER", "s3://logs/dead/")], "TIX_PII_KEY"),
            (&[("TIX_PII_KEY", "k")], "TIX_DEAD_LETTER"),
            (
                &[
                    ("TIX_DEAD_LETTER", "s3://logs/in/dead/"),
                    ("TIX_TRIGGER_PREFIX", "s3://logs/in/"),
                    ("TIX_PII_KEY", "k"),
                ],
                "lies under the trigger prefix",
            ),
            (
                &[("TIX_DEAD_LETTER", "s3://logs/dead/"), ("TIX_TRIGGER_PREFIX", "s3://logs/"), ("TIX_PII_KEY", "k")],
                "lies under the trigger prefix",
            ),
            (&[("TIX_DEAD_LETTER", "/tmp/dead"), ("TIX_PII_KEY", "k")], "expected s3://"),
        ];
        for (pairs, expected) in cases {
            let error = settings(pairs).expect_err("must be refused").to_string();
            assert!(error.contains(expected), "{pairs:?}: {error}");
        }
    }

    #[test]
    fn impossible_deadlines_are_unknown_and_real_ones_give_the_time_left() {
        let started = 1_764_750_000_000; // the process start, epoch ms
        let now = started + 5_000;
        let table = [
            // (deadline ms, expected)
            (now + 900_000, InvocationBudget::Known(Duration::from_secs(900))),
            (now + 3_000, InvocationBudget::Known(Duration::from_secs(3))),
            // cargo lambda's emulator: a duration, i.e. 1970 read as an epoch time
            (600_000, InvocationBudget::Unknown),
            (now, InvocationBudget::Unknown),
            (now - 1, InvocationBudget::Unknown),
            (0, InvocationBudget::Unknown),
        ];
        for (deadline, expected) in table {
            assert_eq!(invocation_budget(deadline, now, started), expected, "deadline {deadline}");
        }
    }

    #[test]
    fn the_fallback_budget_is_read_and_checked() {
        let with = |value: &str| {
            let mut pairs = GOOD.to_vec();
            pairs.push(("TIX_TIME_BUDGET_MS", value));
            settings(&pairs)
        };
        assert_eq!(settings(&GOOD).unwrap().fallback_budget, None);
        assert_eq!(with("300000").unwrap().fallback_budget, Some(Duration::from_secs(300)));
        for bad in ["0", "-5", "5m", ""] {
            let error = with(bad).expect_err(bad).to_string();
            assert!(error.contains("TIX_TIME_BUDGET_MS"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_emf_record_declares_every_metric_it_carries() {
        let report = HandlerReport {
            summary: RunSummary {
                objects: 3,
                records: 10,
                indexed: 7,
                duplicates: 2,
                rejected: 1,
                ..Default::default()
            },
            ..HandlerReport::default()
        };
        let record = emf_record(&report, "fn", Duration::from_millis(1500), 1_700_000_000_000);
        let declared = record["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        assert_eq!(declared.len(), 11);
        for metric in declared {
            let name = metric["Name"].as_str().unwrap();
            assert!(record[name].is_u64(), "{name} declared but not present");
        }
        assert_eq!(record["Indexed"], 7);
        assert_eq!(record["DurationMs"], 1500);
        assert_eq!(record["FunctionName"], "fn");
        assert_eq!(record["_aws"]["CloudWatchMetrics"][0]["Namespace"], METRICS_NAMESPACE);
        assert!(record.get("ReconcileMissing").is_none(), "an ingest invocation reports no reconcile metrics");
    }

    #[test]
    fn a_scheduled_reconcile_reports_what_it_found_missing_failed_and_left() {
        let reconciliation = crate::reconcile::Reconciliation {
            listed: 5,
            completed: 2,
            missing: vec!["a".into(), "b".into()],
            failed: vec!["c".into()],
            ..Default::default()
        };
        let report = HandlerReport {
            reconciliation: Some(crate::reconcile::ReconcileReport {
                location: "s3://logs/in/".into(),
                reconciliation,
                remaining: Some(vec!["c".into()]),
            }),
            ..HandlerReport::default()
        };
        let record = emf_record(&report, "fn", Duration::from_millis(10), 0);
        let declared: Vec<&str> = record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(declared.contains(&"ReconcileMissing"), "{declared:?}");
        assert_eq!(
            (&record["ReconcileMissing"], &record["ReconcileFailed"], &record["ReconcileRemaining"]),
            (&json!(2), &json!(1), &json!(1))
        );
    }
}
