//! Renders search results for people (tables and bar charts) and for scripts (JSON,
//! NDJSON, CSV). Backends return the same shapes, so one set of printers serves both.

use std::fmt::Write as _;

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use indexer::schema::{self, FieldKind};
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

/// Columns shown when `--fields` is not given: a choice among [`schema::FIELDS`].
pub const DEFAULT_FIELDS: &[&str] =
    &[schema::TS, schema::TYPE, "booking_id", "venue", "amount", "status", schema::MESSAGE];

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
            if schema::field_spec(field).is_some_and(|spec| spec.kind == FieldKind::Number) {
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
    if !agg.sub_aggs().is_empty() {
        out.push_str(&render_nested(agg, result));
        return out;
    }
    match agg.kind() {
        "cardinality" => {
            let mut table = new_table();
            table.set_header([format!("distinct {}", agg_field(agg))]);
            table.add_row([number_text(result.get("value"))]);
            if let Some(column) = table.column_mut(0) {
                column.set_cell_alignment(CellAlignment::Right);
            }
            let _ = writeln!(out, "{table}");
        }
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

/// One path through a nested spec: bucket levels from the outside in, then either
/// nothing (the last level's buckets are counted) or the metric siblings computed in
/// each of its buckets.
struct Chain {
    levels: Vec<AggSpec>,
    metrics: Vec<AggSpec>,
}

/// The chains of a spec tree. Only the last level may have siblings, so a spec with
/// both bucket and metric siblings has one chain per bucket sibling and one for the
/// metrics.
fn chains(agg: &AggSpec, above: &[AggSpec]) -> Vec<Chain> {
    let mut levels = above.to_vec();
    levels.push(agg.clone());
    let subs = agg.sub_aggs();
    if subs.is_empty() {
        return vec![Chain { levels, metrics: vec![] }];
    }
    let (buckets, metrics): (Vec<AggSpec>, Vec<AggSpec>) = subs.into_iter().partition(is_bucket_kind);
    let mut out = Vec::new();
    if !metrics.is_empty() {
        out.push(Chain { levels: levels.clone(), metrics });
    }
    for sub in &buckets {
        out.extend(chains(sub, &levels));
    }
    out
}

fn is_bucket_kind(agg: &AggSpec) -> bool {
    matches!(agg.kind(), "terms" | "date_histogram")
}

fn agg_field(agg: &AggSpec) -> String {
    agg.request.get(agg.kind()).and_then(|b| b.get("field")).map(scalar_text).unwrap_or_default()
}

fn bucket_key(agg: &AggSpec, bucket: &Value) -> String {
    let key = if agg.kind() == "date_histogram" {
        bucket.get("key_as_string").or(bucket.get("key"))
    } else {
        bucket.get("key")
    };
    key.map(scalar_text).unwrap_or_default()
}

/// The metric columns of `metric`'s result: stats as min, avg, max and sum, a
/// cardinality as its distinct count. Headers name the field when several metrics share
/// a table.
fn metric_columns(metric: &AggSpec, many: bool) -> Vec<(String, &'static str)> {
    let field = agg_field(metric);
    match metric.kind() {
        "stats" => ["min", "avg", "max", "sum"]
            .into_iter()
            .map(|k| (if many { format!("{field} {k}") } else { k.to_string() }, k))
            .collect(),
        _ => vec![(format!("distinct {field}"), "value")],
    }
}

/// A nested aggregation: one table per [`Chain`], one row per innermost bucket, each
/// outer key shown on its group's first row only, the bucket's count with a bar, then
/// the metric columns.
fn render_nested(agg: &AggSpec, result: &Value) -> String {
    let mut out = String::new();
    let all = chains(agg, &[]);
    for chain in &all {
        // (keys, count, metric results) per innermost bucket, depth first.
        let mut rows: Vec<(Vec<String>, u64, Vec<Value>)> = Vec::new();
        let mut other_inner = 0u64;
        collect_rows(chain, 0, result, &mut Vec::new(), &mut rows, &mut other_inner);
        if all.len() > 1 {
            // The outermost level's spec is the whole text; its own segment comes before the first `>`.
            let path: Vec<&str> = chain
                .levels
                .iter()
                .chain(&chain.metrics)
                .enumerate()
                .map(
                    |(depth, a)| {
                        if depth == 0 {
                            a.spec.split('>').next().unwrap_or_default()
                        } else {
                            a.spec.as_str()
                        }
                    },
                )
                .collect();
            let _ = writeln!(out, "{}", path.join(" > "));
        }
        if rows.is_empty() {
            out.push_str("(no buckets)\n");
            continue;
        }
        let many = chain.metrics.len() > 1;
        let mut header: Vec<String> = chain
            .levels
            .iter()
            .map(|l| if l.kind() == "date_histogram" { "time".to_string() } else { agg_field(l) })
            .collect();
        header.extend(["count".to_string(), String::new()]);
        for metric in &chain.metrics {
            header.extend(metric_columns(metric, many).into_iter().map(|(h, _)| h));
        }
        let max = rows.iter().map(|(_, c, _)| *c).max().unwrap_or(0);
        let columns = header.len();
        let mut table = new_table();
        table.set_header(header);
        let mut previous: Vec<String> = Vec::new();
        for (keys, count, metric_results) in &rows {
            // An outer key shows once per group: blank while it and all keys left of it repeat.
            let mut shown = Vec::with_capacity(keys.len());
            let mut same_so_far = true;
            for (depth, key) in keys.iter().enumerate() {
                let last = depth + 1 == keys.len();
                same_so_far = same_so_far && previous.get(depth) == Some(key);
                shown.push(if same_so_far && !last { String::new() } else { clip(key) });
            }
            previous = keys.clone();
            let mut row = shown;
            row.extend([group_digits(*count), bar(*count, max)]);
            for (metric, value) in chain.metrics.iter().zip(metric_results) {
                row.extend(metric_columns(metric, many).into_iter().map(|(_, k)| number_text(value.get(k))));
            }
            table.add_row(row);
        }
        // Numbers align right; the bar (just after the count) stays left.
        let first_number = chain.levels.len();
        for index in (first_number..columns).filter(|i| *i != first_number + 1) {
            if let Some(column) = table.column_mut(index) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let _ = writeln!(out, "{table}");
        if other_inner > 0 {
            let _ = writeln!(out, "{} more events in other inner buckets", group_digits(other_inner));
        }
    }
    if let Some(other) = result.get("sum_other_doc_count").and_then(Value::as_u64).filter(|n| *n > 0) {
        let _ = writeln!(out, "{} more events in other buckets", group_digits(other));
    }
    out
}

fn collect_rows(
    chain: &Chain,
    depth: usize,
    result: &Value,
    keys: &mut Vec<String>,
    rows: &mut Vec<(Vec<String>, u64, Vec<Value>)>,
    other_inner: &mut u64,
) {
    let level = &chain.levels[depth];
    if depth > 0 {
        *other_inner += result.get("sum_other_doc_count").and_then(Value::as_u64).unwrap_or(0);
    }
    for bucket in result.get("buckets").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        keys.push(bucket_key(level, bucket));
        if let Some(next) = chain.levels.get(depth + 1) {
            if let Some(inner) = bucket.get(&next.spec) {
                collect_rows(chain, depth + 1, inner, keys, rows, other_inner);
            }
        } else {
            let count = bucket.get("doc_count").and_then(Value::as_u64).unwrap_or(0);
            let metrics = chain.metrics.iter().map(|m| bucket.get(&m.spec).cloned().unwrap_or(Value::Null)).collect();
            rows.push((keys.clone(), count, metrics));
        }
        keys.pop();
    }
}

fn number_text(value: Option<&Value>) -> String {
    match value.and_then(Value::as_f64) {
        None => "-".into(),
        Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => group_digits(n as i64),
        // Grouped like whole numbers, so a column of averages reads like its neighbours.
        Some(n) if n.abs() < 1e15 => {
            let text = format!("{n:.2}");
            let (whole, fraction) = text.split_once('.').unwrap_or((&text, "00"));
            let whole: i64 = whole.parse().unwrap_or(0);
            let sign = if n < 0.0 && whole == 0 { "-" } else { "" };
            format!("{sign}{}.{fraction}", group_digits(whole))
        }
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
            status_name(r.status).to_string(),
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

/// The columns of `tix-logs audit --format csv`, named as the keys of `--format json`.
const AUDIT_CSV_COLUMNS: [&str; 12] = [
    "source",
    "status",
    "records",
    "valid",
    "indexed",
    "duplicates",
    "rejected",
    "first_event",
    "last_event",
    "failure",
    "updated_at",
    "key",
];

/// `tix-logs audit --format csv`: a header, then one row per source with plain numbers
/// (no digit grouping, which would collide with the separator) and unclipped text, so a
/// script reads the same values as from `--format json`. No summary line: every row is a
/// source.
pub fn audit_csv(records: &[SourceRecord]) -> String {
    let mut out = AUDIT_CSV_COLUMNS.join(",");
    out.push('\n');
    for r in records {
        let row = [
            csv_cell(&r.source),
            status_name(r.status).to_string(),
            r.records.to_string(),
            r.valid.to_string(),
            r.indexed.to_string(),
            r.duplicates.to_string(),
            r.rejected.to_string(),
            csv_cell(r.first_event.as_deref().unwrap_or("")),
            csv_cell(r.last_event.as_deref().unwrap_or("")),
            csv_cell(r.failure.as_deref().unwrap_or("")),
            csv_cell(&r.updated_at),
            csv_cell(&r.key),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// A source's status as `--format json` spells it, so every format names it alike.
fn status_name(status: SourceStatus) -> &'static str {
    match status {
        SourceStatus::InProgress => "in_progress",
        SourceStatus::Completed => "completed",
        SourceStatus::Failed => "failed",
    }
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

    fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.contains(needle)).collect()
    }

    #[test]
    fn terms_over_date_histogram_is_one_row_per_pair_with_the_outer_key_once() {
        let agg = AggSpec::parse("terms:venue>date_histogram:ts:1d").unwrap();
        let day = |key: &str, count: u64| serde_json::json!({"key_as_string": key, "key": 0, "doc_count": count});
        let result = serde_json::json!({"sum_other_doc_count": 3, "buckets": [
            {"key": "Olympic Hall", "doc_count": 12, "date_histogram:ts:1d": {"buckets": [
                day("2024-02-05T00:00:00.000Z", 8), day("2024-02-06T00:00:00.000Z", 4)]}},
            {"key": "Riverside Arena", "doc_count": 2, "date_histogram:ts:1d": {"buckets": [
                day("2024-02-06T00:00:00.000Z", 2)]}},
        ]});
        let text = render_aggregation(&agg, &result);
        assert!(text.starts_with("terms:venue>date_histogram:ts:1d\n"), "{text}");
        let header = lines_with(&text, "count");
        assert!(header[0].contains("venue") && header[0].contains("time"), "{text}");
        assert_eq!(lines_with(&text, "Olympic Hall").len(), 1, "outer key once per group:\n{text}");
        let rows = lines_with(&text, "2024-02-0");
        assert_eq!(rows.len(), 3, "{text}");
        assert!(rows[0].contains("Olympic Hall") && rows[0].contains(" 8 ") && rows[0].contains(&bar(8, 8)), "{text}");
        assert!(!rows[1].contains("Olympic Hall") && rows[1].contains(" 4 ") && rows[1].contains(&bar(4, 8)), "{text}");
        assert!(rows[2].contains("Riverside Arena") && rows[2].contains(" 2 "), "{text}");
        assert!(text.contains("3 more events in other buckets"), "{text}");
    }

    #[test]
    fn metric_sub_aggregations_are_columns() {
        let agg = AggSpec::parse("terms:type>stats:amount,cardinality:booking_id").unwrap();
        let result = serde_json::json!({"sum_other_doc_count": 0, "buckets": [
            {"key": "booking.cancelled", "doc_count": 8,
             "stats:amount": {"count": 8, "min": 20000.0, "max": 230000.0, "avg": 125000.0, "sum": 1000000.0},
             "cardinality:booking_id": {"value": 8}},
        ]});
        let text = render_aggregation(&agg, &result);
        let header = lines_with(&text, "count")[0];
        for column in ["type", "amount min", "amount avg", "amount max", "amount sum", "distinct booking_id"] {
            assert!(header.contains(column), "{column}: {text}");
        }
        let row = lines_with(&text, "booking.cancelled")[0];
        let cells: Vec<&str> = row.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).collect();
        assert_eq!(cells, ["booking.cancelled", "8", &bar(8, 8), "20,000", "125,000", "230,000", "1,000,000", "8"]);
    }

    #[test]
    fn bucket_and_metric_siblings_get_a_table_each_and_cardinality_alone_a_number() {
        let agg = AggSpec::parse("terms:venue>terms:type,cardinality:seat").unwrap();
        let result = serde_json::json!({"sum_other_doc_count": 0, "buckets": [
            {"key": "Olympic Hall", "doc_count": 5, "cardinality:seat": {"value": 4},
             "terms:type": {"sum_other_doc_count": 1, "buckets": [{"key": "seat.locked", "doc_count": 4}]}},
        ]});
        let text = render_aggregation(&agg, &result);
        assert!(text.contains("terms:venue > cardinality:seat"), "{text}");
        assert!(text.contains("terms:venue > terms:type"), "{text}");
        assert!(text.contains("1 more events in other inner buckets"), "{text}");
        let text =
            render_aggregation(&AggSpec::parse("cardinality:seat").unwrap(), &serde_json::json!({"value": 1234}));
        assert!(text.contains("distinct seat") && text.contains("1,234"), "{text}");
    }

    #[test]
    fn fractional_numbers_are_grouped_too() {
        assert_eq!(number_text(Some(&serde_json::json!(54324.25))), "54,324.25");
        assert_eq!(number_text(Some(&serde_json::json!(-0.5))), "-0.50");
        assert_eq!(number_text(Some(&serde_json::json!(-1234.5))), "-1,234.50");
        assert_eq!(number_text(Some(&serde_json::json!(7))), "7");
        assert_eq!(number_text(None), "-");
    }

    #[test]
    fn default_columns_are_fields_of_the_schema() {
        for field in DEFAULT_FIELDS {
            assert!(schema::field_spec(field).is_some(), "{field}");
        }
    }

    #[test]
    fn numbers_align_right() {
        let hit = |id: &str| indexer::Hit {
            id: id.into(),
            source: serde_json::from_str(r#"{"amount":5,"latency_ms":7,"venue":"Hall"}"#).unwrap(),
        };
        let response = SearchResponse { total: 1, hits: vec![hit("a")], aggregations: Map::new() };
        let fields: Vec<String> = ["venue", "amount", "latency_ms"].map(String::from).to_vec();
        let text = table(&response, &[], &fields);
        let row = text.lines().find(|l| l.contains("Hall")).unwrap();
        let cells: Vec<&str> = row.split(['│', '┆']).filter(|c| !c.trim().is_empty()).collect();
        assert!(cells[0].starts_with(" Hall ") && cells[0].ends_with("  "), "text left: {text}");
        assert!(cells[1].starts_with("  ") && cells[1].ends_with(" 5 "), "amount right: {text}");
        assert!(cells[2].starts_with("  ") && cells[2].ends_with(" 7 "), "latency right: {text}");
    }

    #[test]
    fn status_names_are_those_of_the_json_records() {
        for status in [SourceStatus::InProgress, SourceStatus::Completed, SourceStatus::Failed] {
            assert_eq!(serde_json::to_value(status).unwrap(), status_name(status));
        }
    }

    #[test]
    fn csv_quotes_cells_with_commas_and_quotes() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("plain"), "plain");
    }
}
