//! The tantivy backend's side of the booking report: [`BookingFacts`] gathered from
//! columns, never from stored documents, so a million events take a fraction of a
//! second.
//!
//! Per segment, the postings of the report's event types name the documents to read
//! (checkpoint documents have no `type`, so they never appear); `booking_id`, `ts`,
//! `venue`, `show_id` and `seat` are read as column ordinals, and each distinct ordinal
//! is turned into its string once, in one sorted pass over the column's dictionary.
//! Segments are then merged per booking.

use std::path::Path;

use rustc_hash::FxHashMap;
use tantivy::columnar::StrColumn;
use tantivy::schema::IndexRecordOption;
use tantivy::{DateTime, DocSet, Searcher, SegmentReader, Term, TERMINATED};

use crate::report::{BookingFacts, EventFlag, EventFlags, ReportWindow, RequestFacts, REPORT_EVENT_TYPES};
use crate::schema::TYPE;
use crate::{Error, Result};

/// One booking as gathered so far (possibly from several segments).
#[derive(Default)]
struct Partial {
    flags: EventFlags,
    request: Option<RequestFacts>,
    /// Confirmed seats; a `None` show is filled from the request's at the end.
    seats: Vec<(Option<String>, String)>,
}

/// One booking within one segment, as column ordinals.
#[derive(Default)]
struct SegmentBooking {
    flags: EventFlags,
    /// (ts, venue ordinal, show ordinal) of the earliest request.
    request: Option<(i64, Option<u64>, Option<u64>)>,
    /// (show ordinal, seat ordinal) of confirmed events.
    seats: Vec<(Option<u64>, u64)>,
}

/// The facts of every booking the report over `window` counts, from the index that
/// `searcher` sees.
pub(crate) fn booking_facts(searcher: &Searcher, path: &Path, window: &ReportWindow) -> Result<Vec<BookingFacts>> {
    let fail = |e: &dyn std::fmt::Display| Error::Tantivy {
        path: path.display().to_string(),
        message: format!("reading the booking report's columns: {e}"),
    };
    let type_field = searcher.schema().get_field(TYPE).map_err(|e| fail(&e))?;
    let mut bookings: FxHashMap<String, Partial> = FxHashMap::default();
    for segment in searcher.segment_readers() {
        gather_segment(segment, type_field, &mut bookings).map_err(|e| fail(&e))?;
    }
    let mut facts = Vec::with_capacity(bookings.len());
    for (booking_id, partial) in bookings {
        let request_show = partial.request.as_ref().and_then(|r| r.show_id.clone());
        let mut confirmed_seats: Vec<(String, String)> = partial
            .seats
            .into_iter()
            .filter_map(|(show, seat)| Some((show.or_else(|| request_show.clone())?, seat)))
            .collect();
        confirmed_seats.sort();
        confirmed_seats.dedup();
        let booking = BookingFacts { booking_id, request: partial.request, flags: partial.flags, confirmed_seats };
        if window.admits(&booking) {
            facts.push(booking);
        }
    }
    Ok(facts)
}

fn gather_segment(
    segment: &SegmentReader,
    type_field: tantivy::schema::Field,
    bookings: &mut FxHashMap<String, Partial>,
) -> tantivy::Result<()> {
    let fast = segment.fast_fields();
    let Some(booking_col) = fast.str("booking_id")? else { return Ok(()) };
    let venue_col = fast.str("venue")?;
    let show_col = fast.str("show_id")?;
    let seat_col = fast.str("seat")?;
    let ts_col = fast.column_opt::<DateTime>("ts")?;
    let inverted = segment.inverted_index(type_field)?;
    let alive = segment.alive_bitset();
    let first = |col: &Option<StrColumn>, doc| col.as_ref().and_then(|c| c.ords().first(doc));

    let mut found: FxHashMap<u64, SegmentBooking> = FxHashMap::default();
    for &(event_type, flag) in REPORT_EVENT_TYPES {
        let term = Term::from_field_text(type_field, event_type);
        let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)? else { continue };
        let mut doc = postings.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                if let Some(booking_ord) = booking_col.ords().first(doc) {
                    let entry = found.entry(booking_ord).or_default();
                    entry.flags.insert(flag);
                    match flag {
                        EventFlag::Requested => {
                            if let Some(ts) = ts_col.as_ref().and_then(|c| c.first(doc)) {
                                // Ordinals sort as their strings do, so this picks the
                                // same request a comparison of strings would.
                                let candidate =
                                    (ts.into_timestamp_millis(), first(&venue_col, doc), first(&show_col, doc));
                                if entry.request.is_none_or(|known| candidate < known) {
                                    entry.request = Some(candidate);
                                }
                            }
                        }
                        EventFlag::Confirmed => {
                            if let Some(seats) = &seat_col {
                                let show = first(&show_col, doc);
                                entry.seats.extend(seats.ords().values_for_doc(doc).map(|seat| (show, seat)));
                            }
                        }
                        _ => {}
                    }
                }
            }
            doc = postings.advance();
        }
    }
    if found.is_empty() {
        return Ok(());
    }

    let booking_ids = Resolved::of(Some(&booking_col), found.keys().copied())?;
    let venues =
        Resolved::of(venue_col.as_ref(), found.values().filter_map(|b| b.request.and_then(|(_, venue, _)| venue)))?;
    let shows = Resolved::of(
        show_col.as_ref(),
        found.values().flat_map(|b| {
            b.request.and_then(|(_, _, show)| show).into_iter().chain(b.seats.iter().filter_map(|s| s.0))
        }),
    )?;
    let seats = Resolved::of(seat_col.as_ref(), found.values().flat_map(|b| b.seats.iter().map(|s| s.1)))?;

    for (booking_ord, found) in found {
        let Some(booking_id) = booking_ids.get(booking_ord) else { continue };
        let request = found.request.map(|(ts_millis, venue, show)| RequestFacts {
            ts_millis,
            venue: venue.and_then(|o| venues.get(o)).map(str::to_string),
            show_id: show.and_then(|o| shows.get(o)).map(str::to_string),
        });
        let partial = match bookings.get_mut(booking_id) {
            Some(partial) => partial,
            None => bookings.entry(booking_id.to_string()).or_default(),
        };
        partial.flags.union(found.flags);
        partial.request = match (partial.request.take(), request) {
            (Some(a), Some(b)) => {
                let key = |r: &RequestFacts| (r.ts_millis, r.venue.clone(), r.show_id.clone());
                Some(if key(&b) < key(&a) { b } else { a })
            }
            (a, b) => a.or(b),
        };
        for (show, seat) in found.seats {
            if let Some(seat) = seats.get(seat) {
                partial.seats.push((show.and_then(|o| shows.get(o)).map(str::to_string), seat.to_string()));
            }
        }
    }
    Ok(())
}

/// The strings of some ordinals of one column, looked up in one sorted dictionary pass.
struct Resolved {
    ords: Vec<u64>,
    terms: Vec<String>,
}

impl Resolved {
    fn of(column: Option<&StrColumn>, ords: impl Iterator<Item = u64>) -> tantivy::Result<Resolved> {
        let Some(column) = column else { return Ok(Resolved { ords: vec![], terms: vec![] }) };
        let mut ords: Vec<u64> = ords.collect();
        ords.sort_unstable();
        ords.dedup();
        let mut terms = Vec::with_capacity(ords.len());
        column
            .dictionary()
            .sorted_ords_to_term_cb(&ords, |bytes| terms.push(String::from_utf8_lossy(bytes).into_owned()))?;
        if terms.len() != ords.len() {
            return Err(tantivy::TantivyError::InternalError(format!(
                "a column dictionary answered {} of {} ordinals",
                terms.len(),
                ords.len()
            )));
        }
        Ok(Resolved { ords, terms })
    }

    fn get(&self, ord: u64) -> Option<&str> {
        self.ords.binary_search(&ord).ok().map(|i| self.terms[i].as_str())
    }
}
