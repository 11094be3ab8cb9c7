//! The booking report as one self-contained HTML page: inline CSS, charts drawn here as
//! inline SVG, nothing loaded from the network, so the file can be mailed or opened
//! offline. Every string from the data goes through [`escape`]: a venue named
//! `<script>` is shown as text, never run.

use std::fmt::Write as _;

use indexer::report::{Counts, DayAnomalies, Report};

use crate::report_cmd::{group_name, percent, window_text};

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem; color: #1f2933; background: #fafbfc; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d9e2ec; padding-bottom: 0.3rem; }
.sub { color: #52606d; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.card { background: #fff; border: 1px solid #d9e2ec; border-radius: 6px; padding: 0.6rem 0.9rem; min-width: 7rem; }
.card b { display: block; font-size: 1.4rem; }
.funnels { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem; }
.funnel { background: #fff; border: 1px solid #d9e2ec; border-radius: 6px; padding: 0.6rem; }
.funnel h3 { font-size: 0.95rem; margin: 0 0 0.4rem 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; background: #fff; margin-top: 0.5rem; }
th, td { border: 1px solid #d9e2ec; padding: 0.3rem 0.6rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #2f7d32; }
.legend span { display: inline-block; margin-right: 1rem; }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.3rem; vertical-align: middle; }
svg text { font-size: 11px; fill: #1f2933; }
.scroll { overflow-x: auto; }
";

/// The funnel's stages: label, colour, count.
fn stages(counts: &Counts) -> [(&'static str, &'static str, u64); 6] {
    [
        ("requested", "#3e7cb1", counts.requested),
        ("confirmed", "#2f9e44", counts.confirmed),
        ("cancelled", "#e8590c", counts.cancelled),
        ("expired", "#868e96", counts.expired),
        ("payment failed", "#c92a2a", counts.payment_failed),
        ("refunded", "#ae3ec9", counts.refunded),
    ]
}

/// One group's funnel: a bar per stage, scaled to the group's requests.
fn funnel_svg(counts: &Counts) -> String {
    const LABEL: f64 = 100.0;
    const WIDTH: f64 = 200.0;
    const ROW: f64 = 20.0;
    let mut svg = String::new();
    let height = ROW * 6.0 + 4.0;
    let _ = write!(
        svg,
        "<svg class=\"funnel-chart\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\" role=\"img\">",
        LABEL + WIDTH + 50.0,
        LABEL + WIDTH + 50.0
    );
    let max = counts.requested.max(1) as f64;
    for (i, (label, colour, count)) in stages(counts).into_iter().enumerate() {
        let y = i as f64 * ROW + 2.0;
        let width = (count as f64 / max * WIDTH).min(WIDTH);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\">{label}</text><rect x=\"{LABEL}\" y=\"{y}\" width=\"{width:.1}\" height=\"{}\" \
             fill=\"{colour}\"><title>{label}: {count}</title></rect><text x=\"{:.1}\" y=\"{}\">{count}</text>",
            y + 13.0,
            ROW - 5.0,
            LABEL + width + 4.0,
            y + 13.0
        );
    }
    svg.push_str("</svg>");
    svg
}

const ANOMALY_COLOURS: [(&str, &str); 3] =
    [("seats sold twice", "#c92a2a"), ("captured, not confirmed", "#e8590c"), ("confirmed, not captured", "#3e7cb1")];

/// Anomalies over time: per request day, a bar for each of the three kinds.
fn anomalies_svg(days: &[DayAnomalies]) -> String {
    const HEIGHT: f64 = 160.0;
    const BAR: f64 = 14.0;
    const TOP: f64 = 16.0;
    let group = BAR * 3.0 + 40.0;
    let width = 40.0 + group * days.len() as f64;
    let max = days
        .iter()
        .map(|d| d.seats_sold_twice.max(d.captured_not_confirmed).max(d.confirmed_not_captured))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"anomaly-chart\" width=\"{width}\" height=\"{}\" viewBox=\"0 0 {width} {}\" role=\"img\">",
        HEIGHT + TOP + 34.0,
        HEIGHT + TOP + 34.0
    );
    let _ = write!(
        svg,
        "<line x1=\"30\" y1=\"{}\" x2=\"{width}\" y2=\"{}\" stroke=\"#9aa5b1\"/><text x=\"0\" y=\"{}\">{}</text>\
         <text x=\"0\" y=\"{}\">0</text>",
        TOP + HEIGHT,
        TOP + HEIGHT,
        TOP + 4.0,
        max as u64,
        TOP + HEIGHT
    );
    for (i, day) in days.iter().enumerate() {
        let x0 = 40.0 + i as f64 * group;
        let counts = [day.seats_sold_twice, day.captured_not_confirmed, day.confirmed_not_captured];
        for (k, (count, (label, colour))) in counts.into_iter().zip(ANOMALY_COLOURS).enumerate() {
            let h = count as f64 / max * HEIGHT;
            let x = x0 + k as f64 * BAR;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{label}: \
                 {count}</title></rect>",
                TOP + HEIGHT - h,
                BAR - 2.0
            );
            if count > 0 {
                let _ = write!(svg, "<text x=\"{:.1}\" y=\"{:.1}\">{count}</text>", x + 1.0, TOP + HEIGHT - h - 3.0);
            }
        }
        let label = day.day.as_deref().map_or_else(|| "no request".to_string(), escape);
        let _ = write!(svg, "<text x=\"{x0:.1}\" y=\"{}\">{label}</text>", TOP + HEIGHT + 16.0);
    }
    svg.push_str("</svg>");
    svg
}

fn card(out: &mut String, label: &str, value: &str) {
    let _ = write!(out, "<div class=\"card\"><b>{}</b>{}</div>", escape(value), escape(label));
}

fn id_table(out: &mut String, title: &str, class: &str, ids: &[String], explain: &str) {
    let _ = write!(out, "<h3>{} ({})</h3><p class=\"sub\">{}</p>", escape(title), ids.len(), escape(explain));
    if ids.is_empty() {
        out.push_str("<p class=\"ok\">none</p>");
        return;
    }
    let _ = write!(out, "<table class=\"{class}\"><tr><th>booking</th></tr>");
    for id in ids {
        let _ = write!(out, "<tr class=\"anomaly\"><td>{}</td></tr>", escape(id));
    }
    out.push_str("</table>");
}

/// The whole page.
pub fn page(report: &Report) -> String {
    let mut out = String::new();
    let by = group_name(report.by);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Booking report</title>\
         <style>{STYLE}</style></head><body><h1>Booking report</h1><p class=\"sub\">{}, by {by}</p>",
        escape(&window_text(report))
    );

    out.push_str("<div class=\"cards\">");
    let totals = &report.totals;
    card(&mut out, "requested", &totals.requested.to_string());
    card(&mut out, "confirmed", &totals.confirmed.to_string());
    card(&mut out, "conversion", &percent(totals));
    card(&mut out, "cancelled", &totals.cancelled.to_string());
    card(&mut out, "expired", &totals.expired.to_string());
    card(&mut out, "payment failed", &totals.payment_failed.to_string());
    card(&mut out, "refunded", &totals.refunded.to_string());
    if report.bookings_without_request > 0 {
        card(&mut out, "bookings without a request", &report.bookings_without_request.to_string());
    }
    out.push_str("</div>");

    let _ = write!(out, "<h2>Funnel per {by}</h2>");
    if report.groups.is_empty() {
        out.push_str("<p>No booking was requested in this window.</p>");
    }
    out.push_str("<div class=\"funnels\">");
    for group in &report.groups {
        let _ = write!(
            out,
            "<div class=\"funnel\"><h3>{} <span class=\"sub\">{} converted</span></h3>{}</div>",
            escape(&group.key),
            percent(&group.counts),
            funnel_svg(&group.counts)
        );
    }
    out.push_str("</div>");

    let _ = write!(out, "<h2>Counts per {by}</h2><table class=\"groups\"><tr><th>{by}</th>");
    for (label, _, _) in stages(totals) {
        let _ = write!(out, "<th>{label}</th>");
    }
    out.push_str("<th>conversion</th></tr>");
    for (key, counts) in report.groups.iter().map(|g| (g.key.as_str(), &g.counts)).chain([("total", totals)]) {
        let _ = write!(out, "<tr><td>{}</td>", escape(key));
        for (_, _, count) in stages(counts) {
            let _ = write!(out, "<td class=\"n\">{count}</td>");
        }
        let _ = write!(out, "<td class=\"n\">{}</td></tr>", percent(counts));
    }
    out.push_str("</table>");

    out.push_str("<h2>Anomalies over time (by request day)</h2>");
    if report.integrity.is_clean() {
        out.push_str("<p class=\"ok\">No integrity problems found.</p>");
    } else {
        out.push_str("<p class=\"legend\">");
        for (label, colour) in ANOMALY_COLOURS {
            let _ = write!(out, "<span><i class=\"swatch\" style=\"background:{colour}\"></i>{label}</span>");
        }
        out.push_str("</p>");
        let _ = write!(out, "<div class=\"scroll\">{}</div>", anomalies_svg(&report.anomalies_by_day));
    }

    out.push_str("<h2>Integrity</h2>");
    let integrity = &report.integrity;
    let _ = write!(
        out,
        "<h3>Seats sold twice ({})</h3><p class=\"sub\">A show's seat confirmed by two or more bookings, none \
         cancelled or refunded.</p>",
        integrity.seats_sold_twice.len()
    );
    if integrity.seats_sold_twice.is_empty() {
        out.push_str("<p class=\"ok\">none</p>");
    } else {
        out.push_str("<table class=\"seats-sold-twice\"><tr><th>show</th><th>seat</th><th>bookings</th></tr>");
        for sold in &integrity.seats_sold_twice {
            let ids: Vec<String> = sold.booking_ids.iter().map(|id| escape(id)).collect();
            let _ = write!(
                out,
                "<tr class=\"anomaly\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&sold.show_id),
                escape(&sold.seat),
                ids.join(", ")
            );
        }
        out.push_str("</table>");
    }
    id_table(
        &mut out,
        "Payment captured, booking never confirmed",
        "captured-not-confirmed",
        &integrity.captured_not_confirmed,
        "A payment.captured event, and neither booking.confirmed nor refund.issued.",
    );
    id_table(
        &mut out,
        "Booking confirmed, payment never captured",
        "confirmed-not-captured",
        &integrity.confirmed_not_captured,
        "A booking.confirmed event without payment.captured.",
    );
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use indexer::report::{self, BookingFacts, EventFlag, EventFlags, GroupBy, ReportWindow, RequestFacts};

    use super::*;

    #[test]
    fn escape_covers_the_characters_html_gives_meaning_to() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn strings_from_the_data_never_become_markup() {
        let mut flags = EventFlags::default();
        flags.insert(EventFlag::Requested);
        flags.insert(EventFlag::Confirmed);
        let hostile = "<script>alert(1)</script>";
        let booking = |id: &str| BookingFacts {
            booking_id: format!("{id}{hostile}"),
            request: Some(RequestFacts {
                ts_millis: 1_707_091_200_000,
                venue: Some(hostile.into()),
                show_id: Some(hostile.into()),
            }),
            flags,
            confirmed_seats: vec![(hostile.into(), "<img src=x onerror=alert(2)>".into())],
        };
        for by in [GroupBy::Day, GroupBy::Venue, GroupBy::Show] {
            let html = page(&report::build([booking("BK-1"), booking("BK-2")], ReportWindow::default(), by));
            assert!(!html.contains("<script>") && !html.contains("<img"), "{html}");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
            assert!(!html.contains("http://") && !html.contains("https://"), "nothing from the network");
        }
    }
}
