//! `tix-logs report`: the booking report. The backend gathers each booking's facts
//! ([`indexer::Store::booking_facts`]), [`indexer::report::build`] turns them into
//! the report, and this module prints it as a table, JSON or an HTML page.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, Result};
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use indexer::report::{self, Counts, GroupBy, Report, ReportWindow};

use crate::cli::{ReportArgs, ReportFormat};
use crate::render::group_digits;
use crate::search_cmd::open_backend;
use crate::timespec::parse_window;

/// Width of the conversion bar of the table, in characters.
const BAR_WIDTH: usize = 12;

pub fn run(args: ReportArgs) -> Result<u8> {
    let (since_ms, until_ms) =
        parse_window(args.since.as_deref(), args.until.as_deref()).map_err(anyhow::Error::msg)?;
    let window = ReportWindow { since_ms, until_ms };
    let backend = open_backend(&args.store)?;
    let facts = backend.booking_facts(&window)?;
    let report = report::build(facts, window, args.by.into());
    let text = match args.format {
        ReportFormat::Table => table(&report),
        ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        ReportFormat::Html => crate::report_html::page(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write the report to {} (check the directory exists)", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(0)
}

/// The window as people read it.
pub fn window_text(report: &Report) -> String {
    match (&report.window.since, &report.window.until) {
        (None, None) => "all bookings".to_string(),
        (Some(since), None) => format!("bookings requested from {since}"),
        (None, Some(until)) => format!("bookings requested before {until}"),
        (Some(since), Some(until)) => format!("bookings requested from {since} until {until}"),
    }
}

/// The name of a report's grouping, as a column header.
pub fn group_name(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Day => "day",
        GroupBy::Venue => "venue",
        GroupBy::Show => "show",
    }
}

/// Conversion as a percentage with one decimal, `-` when nothing was requested.
pub fn percent(counts: &Counts) -> String {
    counts.conversion.map_or_else(|| "-".to_string(), |c| format!("{:.1}%", c * 100.0))
}

fn conversion_bar(counts: &Counts) -> String {
    let filled = (counts.conversion.unwrap_or(0.0) * BAR_WIDTH as f64).round() as usize;
    let filled = filled.min(BAR_WIDTH);
    format!("{}{}", "█".repeat(filled), "░".repeat(BAR_WIDTH - filled))
}

fn row(key: &str, counts: &Counts) -> Vec<String> {
    let mut cells = vec![key.to_string()];
    cells.extend(
        [counts.requested, counts.confirmed, counts.cancelled, counts.expired, counts.payment_failed, counts.refunded]
            .map(group_digits),
    );
    cells.push(percent(counts));
    cells.push(conversion_bar(counts));
    cells
}

/// The readable report: one row per group and a total, then the integrity findings.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Booking report: {}, by {}", window_text(report), group_name(report.by));
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header([
        group_name(report.by),
        "requested",
        "confirmed",
        "cancelled",
        "expired",
        "payment failed",
        "refunded",
        "conversion",
        "",
    ]);
    for group in &report.groups {
        table.add_row(row(&group.key, &group.counts));
    }
    table.add_row(row("total", &report.totals));
    for index in 1..=7 {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let _ = writeln!(out, "{table}");
    if report.groups.is_empty() {
        let _ = writeln!(out, "no booking was requested in this window");
    }
    if report.bookings_without_request > 0 {
        let _ = writeln!(
            out,
            "{} booking(s) without a booking.requested event: in no group, checked for integrity below",
            group_digits(report.bookings_without_request)
        );
    }
    out.push('\n');
    let integrity = &report.integrity;
    if integrity.is_clean() {
        let _ = writeln!(out, "no integrity problems found");
        return out;
    }
    let _ = writeln!(out, "Integrity problems:");
    if !integrity.seats_sold_twice.is_empty() {
        let _ = writeln!(out, "  seats sold twice ({}):", integrity.seats_sold_twice.len());
        for sold in &integrity.seats_sold_twice {
            let _ = writeln!(out, "    show {} seat {}: {}", sold.show_id, sold.seat, sold.booking_ids.join(", "));
        }
    }
    for (what, ids) in [
        ("payment captured, booking never confirmed", &integrity.captured_not_confirmed),
        ("booking confirmed, payment never captured", &integrity.confirmed_not_captured),
    ] {
        if !ids.is_empty() {
            let _ = writeln!(out, "  {what} ({}): {}", ids.len(), ids.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use indexer::report::{BookingFacts, EventFlag, EventFlags, RequestFacts};

    use super::*;

    fn booking(id: &str, flags: &[EventFlag], seats: &[(&str, &str)]) -> BookingFacts {
        let mut set = EventFlags::default();
        flags.iter().for_each(|f| set.insert(*f));
        BookingFacts {
            booking_id: id.into(),
            request: Some(RequestFacts {
                ts_millis: 1_707_091_200_000,
                venue: Some("Hall".into()),
                show_id: Some("SH".into()),
            }),
            flags: set,
            confirmed_seats: seats.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        }
    }

    #[test]
    fn the_table_shows_counts_conversion_and_each_finding() {
        use EventFlag::*;
        let facts = vec![
            booking("BK-1", &[Requested, Confirmed, Captured], &[("SH", "A-1")]),
            booking("BK-2", &[Requested, Confirmed], &[("SH", "A-1")]),
            booking("BK-3", &[Requested, Captured], &[]),
            booking("BK-4", &[Requested, Expired], &[]),
        ];
        let text = table(&report::build(facts, ReportWindow::default(), GroupBy::Venue));
        assert!(text.contains("Hall") && text.contains("50.0%"), "{text}");
        assert!(text.contains("show SH seat A-1: BK-1, BK-2"), "{text}");
        assert!(text.contains("never confirmed (1): BK-3"), "{text}");
        assert!(text.contains("never captured (1): BK-2"), "{text}");
        assert!(!text.contains("no integrity problems"), "{text}");
    }

    #[test]
    fn a_clean_report_says_so() {
        use EventFlag::*;
        let facts = vec![booking("BK-1", &[Requested, Confirmed, Captured], &[("SH", "A-1")])];
        let text = table(&report::build(facts, ReportWindow::default(), GroupBy::Day));
        assert!(text.contains("2024-02-05") && text.contains("100.0%"), "{text}");
        assert!(text.contains("no integrity problems found"), "{text}");
    }
}
