//! `tix-logs audit --format csv` through the real binary: CSV a spreadsheet or a script
//! reads back (a header, one row per source, RFC 4180 quoting), holding the same values as
//! `--format json`.

mod support;

use std::path::Path;

use serde_json::Value;
use support::tix;

/// The header row: the keys of `--format json`.
const HEADER: &str =
    "source,status,records,valid,indexed,duplicates,rejected,first_event,last_event,failure,updated_at,key";

/// RFC 4180: cells separated by commas, rows ended by `\n`; a quoted cell may hold commas,
/// newlines and doubled quotes. Panics on anything else, so a table fails loudly.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => {
                quoted = false;
                let next = chars.peek();
                assert!(matches!(next, Some(',' | '\n')), "a closing quote ends its cell, found {next:?}: {text}");
            }
            (true, c) => cell.push(c),
            (false, '"') => {
                assert!(cell.is_empty(), "a quote inside an unquoted cell: {text}");
                quoted = true;
            }
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(!quoted && cell.is_empty() && row.is_empty(), "every row ends with a newline: {text:?}");
    rows
}

/// A JSON audit value as the CSV cell that must carry it.
fn cell_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn audit_csv_is_csv_with_the_values_of_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index").display().to_string();
    // A name with a comma and quotes, so the source cell needs quoting.
    let good = dir.path().join(r#"day 1, "good".ndjson"#);
    std::fs::write(
        &good,
        concat!(
            r#"{"ts":"2024-02-05T10:00:00Z","type":"booking.requested","amount":4500}"#,
            "\n",
            r#"{"ts":"2024-02-05T11:00:00Z","type":"booking.confirmed"}"#,
            "\n",
            r#"{"type":"no time"}"#,
            "\n"
        ),
    )
    .unwrap();
    let truncated = fixtures::samples_dir().join("logs/truncated.ndjson.gz");
    let ingest = tix(dir.path())
        .args(["ingest", "--index", &index, "--dead-letter"])
        .arg(dir.path().join("dl"))
        .args([&good, &truncated])
        .output()
        .unwrap();
    assert_eq!(ingest.status.code(), Some(1), "{}", String::from_utf8_lossy(&ingest.stderr));

    let audit = |format: &str| tix(dir.path()).args(["audit", "--index", &index, "--format", format]).output().unwrap();
    let (csv, json) = (audit("csv"), audit("json"));
    assert_eq!(csv.status.code(), Some(1), "a failed source makes the verdict 1, as in every format");
    assert_eq!(csv.status.code(), json.status.code());
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(!text.contains('│') && !text.contains("sources:"), "no table, no summary line:\n{text}");

    let rows = parse_csv(&text);
    let header: Vec<&str> = HEADER.split(',').collect();
    assert_eq!(rows[0], header, "{text}");
    let records: Vec<Value> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.len(), 1 + records.len(), "one row per source:\n{text}");
    assert_eq!(records.len(), 2);
    for record in &records {
        let row = rows[1..].iter().find(|r| r[11] == cell_of(&record["key"])).unwrap_or_else(|| panic!("{record}"));
        assert_eq!(row.len(), header.len(), "{row:?}");
        for (column, cell) in header.iter().zip(row) {
            assert_eq!(cell, &cell_of(&record[*column]), "{column} of {record}");
        }
    }

    // The values themselves, not only their agreement with the JSON.
    let by_name = |name: &str| {
        rows[1..].iter().find(|r| Path::new(&r[0]).file_name().is_some_and(|f| f == name)).unwrap().clone()
    };
    let good_row = by_name(r#"day 1, "good".ndjson"#);
    assert_eq!(good_row[1..7], ["completed", "3", "2", "2", "0", "1"], "{good_row:?}");
    assert_eq!(good_row[7..10], ["2024-02-05T10:00:00.000Z", "2024-02-05T11:00:00.000Z", ""], "{good_row:?}");
    let failed = by_name("truncated.ndjson.gz");
    assert_eq!(failed[1], "failed", "{failed:?}");
    assert!(failed[9].contains("truncated"), "the failure reason: {failed:?}");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixtures::samples_dir().join("EXPECTED.json")).unwrap()).unwrap();
    let readable = expected["files"]["truncated.ndjson.gz"]["complete_records_before_cut"].to_string();
    assert_eq!(failed[2..5], [readable.as_str(); 3], "records, valid and indexed as plain digits: {failed:?}");
}
