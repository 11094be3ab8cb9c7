//! Renders search results for people (tables and bar charts) and for scripts (JSON,
//! NDJSON, CSV). Backends return the same shapes, so one set of printers serves both.

use std::fmt::Write as _;

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use indexer::{AggSpec, SearchResponse, SourceRecord, SourceStatus};
use serde_json::{Map, Value};

/// Output formats of `tix-logs search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Ndjson,
    Csv,
}

/// Columns shown when `--fields` is not given.
pub const DEFAULT_FIELDS: &[&str] = &["ts", "type", "booking_id", "venue", "amount", "status", "message"];

const BAR_WIDTH: usize = 40;
const MAX_CELL: usize = 60;

/// Renders a whole response in `format`.
pub fn render(response: &SearchResponse, aggs: &[AggSpec], fields: &[String], format: Format) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&json_value(response)).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Ndjson => {
            let mut out = String::new();
            for hit in &response.hits {
                out.push_str(&serde_json::to_string(hit).unwrap_or_default());
                out.push('\n');
            }
            out
        }
        Format::Csv => csv(response, fields),
        Format::Table => table(response, aggs, fields),
    }
}

/// The `--format json` object: total, hits, aggregations keyed by spec.
pub fn json_value(response: &SearchResponse) -> Value {
    serde_json::json!({
        "total": response.total,
        "hits": response.hits,
        "aggregations": response.aggregations,
    })
}

/// A field of a hit as text: dotted paths reach into objects, arrays are joined.
pub fn field_text(id: &str, source: &Map<String, Value>, field: &str) -> String {
    if field == "_id" {
        return id.to_string();
    }
    let mut value = source.get(field);
    if value.is_none() {
        let mut parts = field.split('.');
        value = parts.next().and_then(|head| source.get(head));
        for part in parts {
            value = value.and_then(|v| v.get(part));
        }
    }
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
        Some(other) => scalar_text(other),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv(response: &SearchResponse, fields: &[String]) -> String {
    let mut out = String::new();
    out.push_str(&fields.iter().map(|f| csv_cell(f)).collect::<Vec<_>>().join(","));
    out.push('\n');
    for hit in &response.hits {
        let row: Vec<String> = fields.iter().map(|f| csv_cell(&field_text(&hit.id, &hit.source, f))).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    table
}

fn clip(text: &str) -> String {
    if text.chars().count() > MAX_CELL {
        let mut clipped: String = text.chars().take(MAX_CELL - 1).collect();
        clipped.push('…');
        clipped
    } else {
        text.to_string()
    }
}

fn table(response: &SearchResponse, aggs: &[AggSpec], fields: &[String]) -> String {
    let mut out = String::new();
    if !response.hits.is_empty() {
        let mut table = new_table();
        table.set_header(fields.iter().map(String::as_str));
        for hit in &response.hits {
            table.add_row(fields.iter().map(|f| clip(&field_text(&hit.id, &hit.source, f))));
        }
        for (index, field) in fields.iter().enumerate() {
            if matches!(field.as_str(), "amount" | "latency_ms") {
                if let Some(column) = table.column_mut(index) {
                    column.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        let _ = writeln!(out, "{table}");
    }
    let _ = writeln!(out, "{} of {} matching events", response.hits.len(), group_digits(response.total));
    for agg in aggs {
        if let Some(result) = response.aggregations.get(&agg.spec) {
            out.push('\n');
            out.push_str(&render_aggregation(agg, result));
        }
    }
    out
}

/// One aggregation as a table; bucket aggregations get a bar chart column.
pub fn render_aggregation(agg: &AggSpec, result: &Value) -> String {
    let mut out = format!("{}\n", agg.spec);
    match agg.kind() {
        "stats" => {
            let mut table = new_table();
            table.set_header(["count", "min", "max", "avg", "sum"]);
            table.add_row(["count", "min", "max", "avg", "sum"].iter().map(|k| number_text(result.get(*k))));
            let _ = writeln!(out, "{table}");
        }
        kind => {
            let buckets = result.get("buckets").and_then(Value::as_array).cloned().unwrap_or_default();
            let rows: Vec<(String, u64)> = buckets
                .iter()
                .map(|b| {
                    let key = if kind == "date_histogram" {
                        b.get("key_as_string")
                            .map(scalar_text)
                            .unwrap_or_else(|| b.get("key").map(scalar_text).unwrap_or_default())
                    } else {
                        b.get("key").map(scalar_text).unwrap_or_default()
                    };
                    (key, b.get("doc_count").and_then(Value::as_u64).unwrap_or(0))
                })
                .collect();
            let max = rows.iter().map(|(_, c)| *c).max().unwrap_or(0);
            let mut table = new_table();
            table.set_header([if kind == "date_histogram" { "time" } else { "value" }, "count", ""]);
            for (key, count) in &rows {
                table.add_row([clip(key), group_digits(*count), bar(*count, max)]);
            }
            if let Some(column) = table.column_mut(1) {
                column.set_cell_alignment(CellAlignment::Right);
            }
            if rows.is_empty() {
                out.push_str("(no buckets)\n");
            } else {
                let _ = writeln!(out, "{table}");
            }
            if let Some(other) = result.get("sum_other_doc_count").and_then(Value::as_u64).filter(|n| *n > 0) {
                let _ = writeln!(out, "{} more events in other buckets", group_digits(other));
            }
        }
    }
    out
}

fn number_text(value: Option<&Value>) -> String {
    match value.and_then(Value::as_f64) {
        None => "-".into(),
        Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => group_digits(n as i64),
        Some(n) => format!("{n:.2}"),
    }
}

/// A horizontal bar proportional to `count / max`, with eighth-block resolution.
pub fn bar(count: u64, max: u64) -> String {
    if max == 0 || count == 0 {
        return String::new();
    }
    let eighths = ((count as f64 / max as f64) * (BAR_WIDTH * 8) as f64).round().max(1.0) as usize;
    let mut out = "█".repeat(eighths / 8);
    const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    out.push_str(PARTIAL[eighths % 8]);
    out
}

/// 1234567 -> "1,234,567".
pub fn group_digits(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// The `tix-logs audit` table.
pub fn audit_table(records: &[SourceRecord]) -> String {
    let mut table = new_table();
    table.set_header([
        "source",
        "status",
        "records",
        "valid",
        "indexed",
        "dup",
        "rejected",
        "first event",
        "last event",
        "failure",
    ]);
    for r in records {
        table.add_row([
            clip(&r.source),
            format!("{:?}", r.status).to_lowercase(),
            group_digits(r.records),
            group_digits(r.valid),
            group_digits(r.indexed),
            group_digits(r.duplicates),
            group_digits(r.rejected),
            r.first_event.clone().unwrap_or_default(),
            r.last_event.clone().unwrap_or_default(),
            clip(r.failure.as_deref().unwrap_or("")),
        ]);
    }
    let count = |status| records.iter().filter(|r| r.status == status).count();
    let sum = |field: fn(&SourceRecord) -> u64| group_digits(records.iter().map(field).sum::<u64>());
    format!(
        "{table}\n{} sources: {} completed, {} failed, {} in progress; {} records: {} indexed, {} duplicates, {} rejected\n",
        records.len(),
        count(SourceStatus::Completed),
        count(SourceStatus::Failed),
        count(SourceStatus::InProgress),
        sum(|r| r.records),
        sum(|r| r.indexed),
        sum(|r| r.duplicates),
        sum(|r| r.rejected),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_bucket() {
        assert_eq!(bar(10, 10).chars().count(), BAR_WIDTH);
        assert_eq!(bar(5, 10).chars().count(), BAR_WIDTH / 2);
        assert_eq!(bar(0, 10), "");
        assert!(!bar(1, 1_000_000).is_empty(), "a non-empty bucket always shows");
    }

    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(group_digits(-1000), "-1,000");
    }

    #[test]
    fn dotted_fields_reach_into_objects_and_arrays_are_joined() {
        let source: Map<String, Value> =
            serde_json::from_str(r#"{"payment":{"method":"card"},"seat":["A-1","A-2"]}"#).unwrap();
        assert_eq!(field_text("x", &source, "payment.method"), "card");
        assert_eq!(field_text("x", &source, "seat"), "A-1, A-2");
        assert_eq!(field_text("x", &source, "_id"), "x");
    }

    #[test]
    fn csv_quotes_cells_with_commas_and_quotes() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("plain"), "plain");
    }
}
