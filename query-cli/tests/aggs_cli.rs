//! Nested `--agg` specs through the real `tix-logs` binary: events written to a
//! temporary file, ingested into a temporary tantivy index, then aggregated as tables
//! and as JSON, checked against counts computed from the same events.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use serde_json::{json, Value};
use testkit::events::Event;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tix-logs"));
    cmd.env_remove("TIX_INDEX").env_remove("TIX_BACKEND").env("TIX_PII_KEY", "test-key-for-cli-tests-0123456789abcdef");
    cmd
}

const DAY_MS: i64 = 86_400_000;
const BASE_MS: i64 = 1_707_091_200_000; // 2024-02-05T00:00:00Z

/// Twelve events over three days at two venues, some cancelled, one seat array.
fn events() -> Vec<Value> {
    (0..12i64)
        .map(|i| {
            let ts = chrono::DateTime::from_timestamp_millis(BASE_MS + i * 6 * 3_600_000).unwrap();
            let ts = ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            Event::new(ts, if i % 3 == 0 { "booking.cancelled" } else { "booking.confirmed" })
                .with("event_id", format!("evt-{i}"))
                .with("venue", if i % 2 == 0 { "Olympic Hall" } else { "Riverside Arena" })
                .with("booking_id", format!("BK-20240205-{:06}", i / 2))
                .with("seat", if i % 4 == 0 { json!(["A-1", "A-2"]) } else { json!(format!("B-{}", i % 5)) })
                .with("amount", 1000 * (i + 1))
                .with("message", "test event")
                .into_value()
        })
        .collect()
}

struct Indexed {
    dir: tempfile::TempDir,
}

impl Indexed {
    fn new() -> Self {
        Indexed { dir: support::ingested(bin(), "events.ndjson", events()) }
    }

    fn search(&self, args: &[&str]) -> Output {
        bin()
            .current_dir(self.dir.path())
            .args(["search", "--index", "index", "--limit", "0"])
            .args(args)
            .output()
            .expect("run")
    }

    fn table(&self, args: &[&str]) -> String {
        let out = self.search(args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.search(&[args, &["--format", "json"]].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json output")
    }
}

fn str_of<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field].as_str().unwrap_or_default()
}

/// The cells of a table row, without borders.
fn cells(line: &str) -> Vec<String> {
    line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
}

#[test]
fn cancellations_per_venue_per_day_as_table_and_json() {
    let index = Indexed::new();
    let events = events();
    // (venue, day) -> cancellations, from the events.
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for event in events.iter().filter(|e| str_of(e, "type") == "booking.cancelled") {
        let ts = chrono::DateTime::parse_from_rfc3339(str_of(event, "ts")).unwrap().timestamp_millis();
        let day = chrono::DateTime::from_timestamp_millis(ts - ts.rem_euclid(DAY_MS)).unwrap();
        *expected.entry((str_of(event, "venue").to_string(), day.format("%Y-%m-%d").to_string())).or_default() += 1;
    }
    let spec = "terms:venue>date_histogram:ts:1d";
    let args = ["type:booking.cancelled", "--agg", spec];

    let json = index.json(&args);
    let mut answered: BTreeMap<(String, String), u64> = BTreeMap::new();
    for venue in json["aggregations"][spec]["buckets"].as_array().expect("venue buckets") {
        for day in venue["date_histogram:ts:1d"]["buckets"].as_array().expect("day buckets") {
            let key = day["key_as_string"].as_str().unwrap_or_default()[..10].to_string();
            answered.insert(
                (venue["key"].as_str().unwrap_or_default().to_string(), key),
                day["doc_count"].as_u64().unwrap(),
            );
        }
    }
    assert_eq!(answered, expected, "{json}");

    let table = index.table(&args);
    let rows: Vec<Vec<String>> = table.lines().filter(|l| l.contains("2024-02-0")).map(cells).collect();
    assert_eq!(rows.len(), expected.len(), "one row per (venue, day):\n{table}");
    // The venue shows on its group's first row only; the other rows start with the day.
    let mut venue = String::new();
    let max = *expected.values().max().unwrap();
    for row in &rows {
        if !row[0].starts_with("2024") {
            venue = row[0].clone();
        }
        let at = if row[0].starts_with("2024") { 0 } else { 1 };
        let day = row[at][..10].to_string();
        let count: u64 = row[at + 1].parse().unwrap();
        assert_eq!(Some(&count), expected.get(&(venue.clone(), day)), "{row:?}\n{table}");
        let bar_len = row.get(at + 2).map(|b| b.chars().count()).unwrap_or(0);
        assert_eq!(bar_len == 40, count == max, "the largest bucket has the full bar: {row:?}\n{table}");
    }
    let venues_shown: BTreeSet<&str> = expected.keys().map(|(v, _)| v.as_str()).collect();
    for venue in venues_shown {
        assert_eq!(table.matches(venue).count(), 1, "{venue} once:\n{table}");
    }
}

#[test]
fn metric_siblings_become_columns_and_cardinality_counts_distinct_values() {
    let index = Indexed::new();
    let events = events();
    let spec = "terms:type>stats:amount,cardinality:booking_id";
    let json = index.json(&["--agg", spec, "--agg", "cardinality:seat", "--agg", "terms:seat:10:min=3"]);
    let table = index.table(&["--agg", spec]);
    for kind in ["booking.cancelled", "booking.confirmed"] {
        let of_kind: Vec<&Value> = events.iter().filter(|e| str_of(e, "type") == kind).collect();
        let amounts: Vec<i64> = of_kind.iter().map(|e| e["amount"].as_i64().unwrap()).collect();
        let bookings: BTreeSet<&str> = of_kind.iter().map(|e| str_of(e, "booking_id")).collect();
        let bucket = json["aggregations"][spec]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["key"] == kind)
            .unwrap_or_else(|| panic!("{kind} in {json}"))
            .clone();
        assert_eq!(bucket["doc_count"], of_kind.len() as u64);
        assert_eq!(bucket["stats:amount"]["sum"].as_f64(), Some(amounts.iter().sum::<i64>() as f64));
        assert_eq!(bucket["stats:amount"]["min"].as_f64(), amounts.iter().min().map(|m| *m as f64));
        assert_eq!(bucket["cardinality:booking_id"], json!({"value": bookings.len()}));

        let row = cells(table.lines().find(|l| l.contains(kind)).unwrap_or_else(|| panic!("{kind}:\n{table}")));
        let sum = amounts.iter().sum::<i64>();
        let avg = sum / amounts.len() as i64;
        let grouped = |n: i64| {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        assert_eq!(row[0], kind);
        assert_eq!(row[1], of_kind.len().to_string(), "{table}");
        // row[2] is the bar; then min, avg, max, sum, distinct.
        let metrics = &row[row.len() - 5..];
        assert_eq!(sum % amounts.len() as i64, 0, "the events keep averages whole, as the table shows them");
        assert_eq!(
            metrics,
            [
                grouped(*amounts.iter().min().unwrap()),
                grouped(avg),
                grouped(*amounts.iter().max().unwrap()),
                grouped(sum),
                bookings.len().to_string(),
            ],
            "{table}"
        );
    }
    assert!(table.lines().any(|l| l == spec), "{table}");
    let header = table.lines().find(|l| l.contains("count")).unwrap();
    assert!(header.contains("amount avg") && header.contains("distinct booking_id"), "{table}");

    // Seats hold arrays: each value counts its events; min=3 drops rarer seats.
    let mut seats: BTreeMap<String, u64> = BTreeMap::new();
    for event in &events {
        match &event["seat"] {
            Value::Array(items) => {
                items.iter().for_each(|s| *seats.entry(s.as_str().unwrap().into()).or_default() += 1)
            }
            other => *seats.entry(other.as_str().unwrap().into()).or_default() += 1,
        }
    }
    assert_eq!(json["aggregations"]["cardinality:seat"]["value"], seats.len() as u64, "{json}");
    let answered: BTreeMap<String, u64> = json["aggregations"]["terms:seat:10:min=3"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_str().unwrap().to_string(), b["doc_count"].as_u64().unwrap()))
        .collect();
    seats.retain(|_, n| *n >= 3);
    assert_eq!(answered, seats, "{json}");
}

#[test]
fn a_bad_nested_spec_is_a_usage_error_with_an_example() {
    let index = Indexed::new();
    let out = index.search(&["--agg", "stats:amount>terms:type"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stats:amount>terms:type") && stderr.contains("as in terms:"), "{stderr}");
}
