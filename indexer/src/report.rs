//! The booking report's inputs: what each backend gathers about every booking
//! ([`BookingFacts`], through [`crate::Store::booking_facts`]), and the window and
//! grouping an analyst asks for. Turning facts into the report is pure and lives in
//! [`build`](crate::report::build) (no I/O, the same for every backend).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The event types the report reads, with the flag each sets on a booking.
pub const REPORT_EVENT_TYPES: &[(&str, EventFlag)] = &[
    ("booking.requested", EventFlag::Requested),
    ("booking.confirmed", EventFlag::Confirmed),
    ("booking.cancelled", EventFlag::Cancelled),
    ("booking.expired", EventFlag::Expired),
    ("payment.failed", EventFlag::PaymentFailed),
    ("refund.issued", EventFlag::Refunded),
    ("payment.captured", EventFlag::Captured),
];

/// One event type a booking has at least one event of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFlag {
    Requested,
    Confirmed,
    Cancelled,
    Expired,
    PaymentFailed,
    Refunded,
    Captured,
}

impl EventFlag {
    /// The flag of an event type, if the report reads that type.
    pub fn of_type(event_type: &str) -> Option<EventFlag> {
        REPORT_EVENT_TYPES.iter().find(|(name, _)| *name == event_type).map(|(_, flag)| *flag)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The set of [`EventFlag`]s of one booking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EventFlags(u8);

impl EventFlags {
    pub fn insert(&mut self, flag: EventFlag) {
        self.0 |= flag.bit();
    }

    pub fn contains(self, flag: EventFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// Adds every flag of `other`.
    pub fn union(&mut self, other: EventFlags) {
        self.0 |= other.0;
    }
}

/// The booking's `booking.requested` event (the earliest, when there are several): it
/// decides the booking's group and whether the booking is inside the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// Event time, epoch milliseconds.
    pub ts_millis: i64,
    pub venue: Option<String>,
    pub show_id: Option<String>,
}

/// What one booking's events say, as a backend gathers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingFacts {
    pub booking_id: String,
    /// `None` when the store holds no `booking.requested` event of the booking.
    pub request: Option<RequestFacts>,
    /// The report's event types the booking has at least one event of.
    pub flags: EventFlags,
    /// Every (`show_id`, `seat`) of the booking's `booking.confirmed` events, one pair
    /// per seat (a `seat` array gives one pair each), sorted and without repeats. A
    /// confirmed event without `show_id` uses the request's `show_id`.
    pub confirmed_seats: Vec<(String, String)>,
}

/// The time window of a report: bookings whose request falls inside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportWindow {
    /// Inclusive lower bound, epoch ms.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, epoch ms.
    pub until_ms: Option<i64>,
}

impl ReportWindow {
    /// Whether neither bound is set: then every booking counts, even one whose request
    /// is not in the store (it is in no group, but its integrity problems are reported).
    pub fn is_open(&self) -> bool {
        self.since_ms.is_none() && self.until_ms.is_none()
    }

    /// Whether a request at `ts_millis` is inside the window.
    pub fn contains(&self, ts_millis: i64) -> bool {
        self.since_ms.is_none_or(|since| ts_millis >= since) && self.until_ms.is_none_or(|until| ts_millis < until)
    }

    /// Whether the report counts a booking: its request is inside the window, or the
    /// window is open.
    pub fn admits(&self, facts: &BookingFacts) -> bool {
        match &facts.request {
            Some(request) => self.contains(request.ts_millis),
            None => self.is_open(),
        }
    }
}

/// What groups the report's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The request's UTC day, `YYYY-MM-DD`.
    Day,
    Venue,
    Show,
}

/// Group key of bookings whose request has no `venue` (or no `show_id`).
pub const NO_VALUE_KEY: &str = "(none)";

/// The booking report, shaped as `tix-logs report --format json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub by: GroupBy,
    pub window: WindowBounds,
    /// One row per group, sorted by key.
    pub groups: Vec<GroupRow>,
    /// The sum of the groups.
    pub totals: Counts,
    /// Counted bookings without a `booking.requested` event in the store (only with an
    /// open window): in no group, but in the integrity findings.
    pub bookings_without_request: u64,
    pub integrity: Integrity,
    /// The integrity findings per request day, oldest first, one row for every day
    /// with a counted request (zeros included); findings of bookings without a
    /// request last, under `day: null`.
    pub anomalies_by_day: Vec<DayAnomalies>,
}

/// The window of a report as RFC 3339 bounds (`null`: unbounded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowBounds {
    pub since: Option<String>,
    pub until: Option<String>,
}

/// One group's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    /// The request's day (`YYYY-MM-DD`), venue or show id; [`NO_VALUE_KEY`] when the
    /// request has none.
    pub key: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// Distinct bookings with at least one event of each type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub requested: u64,
    pub confirmed: u64,
    pub cancelled: u64,
    pub expired: u64,
    pub payment_failed: u64,
    pub refunded: u64,
    /// `confirmed / requested`; `null` when nothing was requested.
    pub conversion: Option<f64>,
}

impl Counts {
    fn add(&mut self, flags: EventFlags) {
        let bump = |flag: EventFlag, slot: &mut u64| *slot += u64::from(flags.contains(flag));
        bump(EventFlag::Requested, &mut self.requested);
        bump(EventFlag::Confirmed, &mut self.confirmed);
        bump(EventFlag::Cancelled, &mut self.cancelled);
        bump(EventFlag::Expired, &mut self.expired);
        bump(EventFlag::PaymentFailed, &mut self.payment_failed);
        bump(EventFlag::Refunded, &mut self.refunded);
    }

    fn add_counts(&mut self, other: &Counts) {
        self.requested += other.requested;
        self.confirmed += other.confirmed;
        self.cancelled += other.cancelled;
        self.expired += other.expired;
        self.payment_failed += other.payment_failed;
        self.refunded += other.refunded;
    }

    fn finish(mut self) -> Self {
        self.conversion = (self.requested > 0).then(|| self.confirmed as f64 / self.requested as f64);
        self
    }
}

/// What should not happen, by booking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// Sorted by show and seat.
    pub seats_sold_twice: Vec<SeatSoldTwice>,
    /// Sorted booking ids: a payment captured, and neither confirmed nor refunded.
    pub captured_not_confirmed: Vec<String>,
    /// Sorted booking ids: confirmed without a captured payment.
    pub confirmed_not_captured: Vec<String>,
}

impl Integrity {
    pub fn is_clean(&self) -> bool {
        self.seats_sold_twice.is_empty()
            && self.captured_not_confirmed.is_empty()
            && self.confirmed_not_captured.is_empty()
    }
}

/// A seat of a show that two or more live (neither cancelled nor refunded) bookings
/// hold confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSoldTwice {
    pub show_id: String,
    pub seat: String,
    /// Sorted.
    pub booking_ids: Vec<String>,
}

/// Integrity findings of one request day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayAnomalies {
    /// `YYYY-MM-DD`; `null` for bookings without a request. A seat sold twice counts on
    /// the latest request day of its bookings: the day the second sale happened.
    pub day: Option<String>,
    pub seats_sold_twice: u64,
    pub captured_not_confirmed: u64,
    pub confirmed_not_captured: u64,
}

/// The UTC day of an epoch-millisecond time, `YYYY-MM-DD`.
pub fn utc_day(ts_millis: i64) -> String {
    let (year, month, day) = crate::civil::civil_from_days(ts_millis.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// A window bound as RFC 3339; past chrono's years (a long span back from now reaches
/// them), the milliseconds as given, as no time parser would read the date back.
fn rfc3339(ts_millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_millis)
        .map(|_| crate::civil::rfc3339_auto(ts_millis))
        .unwrap_or_else(|| ts_millis.to_string())
}

/// Folds `other`'s facts of the same booking into `into`: a backend may gather one
/// booking in pieces (segments, shards), and the report must not depend on how.
fn merge(into: &mut BookingFacts, other: BookingFacts) {
    into.flags.union(other.flags);
    into.request = match (into.request.take(), other.request) {
        (Some(a), Some(b)) => {
            // The earliest request decides; ties are broken by value so that the
            // order the pieces arrive in changes nothing.
            let key = |r: &RequestFacts| (r.ts_millis, r.venue.clone(), r.show_id.clone());
            Some(if key(&b) < key(&a) { b } else { a })
        }
        (a, b) => a.or(b),
    };
    into.confirmed_seats.extend(other.confirmed_seats);
    into.confirmed_seats.sort();
    into.confirmed_seats.dedup();
}

/// Builds the report of `facts` over `window`, grouped `by`. Pure: the same facts in
/// any order, or split in pieces per booking, give the same report.
pub fn build(facts: impl IntoIterator<Item = BookingFacts>, window: ReportWindow, by: GroupBy) -> Report {
    let mut bookings: BTreeMap<String, BookingFacts> = BTreeMap::new();
    for mut fact in facts {
        fact.confirmed_seats.sort();
        fact.confirmed_seats.dedup();
        match bookings.get_mut(&fact.booking_id) {
            Some(known) => merge(known, fact),
            None => {
                bookings.insert(fact.booking_id.clone(), fact);
            }
        }
    }
    bookings.retain(|_, facts| window.admits(facts));

    let mut groups: BTreeMap<String, Counts> = BTreeMap::new();
    let mut without_request = 0;
    for facts in bookings.values() {
        let Some(request) = &facts.request else {
            without_request += 1;
            continue;
        };
        let key = match by {
            GroupBy::Day => utc_day(request.ts_millis),
            GroupBy::Venue => request.venue.clone().unwrap_or_else(|| NO_VALUE_KEY.to_string()),
            GroupBy::Show => request.show_id.clone().unwrap_or_else(|| NO_VALUE_KEY.to_string()),
        };
        // The request event is what puts a booking in a group, so it is requested even
        // if a backend left the flag out.
        let mut flags = facts.flags;
        flags.insert(EventFlag::Requested);
        groups.entry(key).or_default().add(flags);
    }
    let mut totals = Counts::default();
    for counts in groups.values() {
        totals.add_counts(counts);
    }
    let groups = groups.into_iter().map(|(key, counts)| GroupRow { key, counts: counts.finish() }).collect();

    let (integrity, anomalies_by_day) = integrity(&bookings);
    Report {
        by,
        window: WindowBounds { since: window.since_ms.map(rfc3339), until: window.until_ms.map(rfc3339) },
        groups,
        totals: totals.finish(),
        bookings_without_request: without_request,
        integrity,
        anomalies_by_day,
    }
}

fn integrity(bookings: &BTreeMap<String, BookingFacts>) -> (Integrity, Vec<DayAnomalies>) {
    let request_ts = |id: &str| bookings.get(id).and_then(|f| f.request.as_ref()).map(|r| r.ts_millis);
    let mut by_day = ByDay::new();

    // BTreeMap iteration is in booking-id order, so every list below comes out sorted.
    let mut holders: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    let mut integrity = Integrity::default();
    for (id, facts) in bookings {
        let flags = facts.flags;
        let live = !flags.contains(EventFlag::Cancelled) && !flags.contains(EventFlag::Refunded);
        if live {
            for (show, seat) in &facts.confirmed_seats {
                holders.entry((show, seat)).or_default().push(id);
            }
        }
        let ts = request_ts(id);
        if ts.is_some() {
            // Every request day gets a row, so the findings read as a time series.
            day_entry(&mut by_day, ts);
        }
        if flags.contains(EventFlag::Captured)
            && !flags.contains(EventFlag::Confirmed)
            && !flags.contains(EventFlag::Refunded)
        {
            integrity.captured_not_confirmed.push(id.clone());
            day_entry(&mut by_day, ts).captured_not_confirmed += 1;
        }
        if flags.contains(EventFlag::Confirmed) && !flags.contains(EventFlag::Captured) {
            integrity.confirmed_not_captured.push(id.clone());
            day_entry(&mut by_day, ts).confirmed_not_captured += 1;
        }
    }
    for ((show, seat), ids) in holders {
        if ids.len() < 2 {
            continue;
        }
        // The latest request among the holders; a holder without a request makes the
        // day unknown only when no holder has one.
        let ts = ids.iter().filter_map(|id| request_ts(id)).max();
        day_entry(&mut by_day, ts).seats_sold_twice += 1;
        integrity.seats_sold_twice.push(SeatSoldTwice {
            show_id: show.to_string(),
            seat: seat.to_string(),
            booking_ids: ids.iter().map(|id| id.to_string()).collect(),
        });
    }
    (integrity, by_day.into_values().collect())
}

/// Anomaly rows by request day; the `bool` puts the row of unknown days last.
type ByDay = BTreeMap<(bool, Option<String>), DayAnomalies>;

fn day_entry(by_day: &mut ByDay, ts: Option<i64>) -> &mut DayAnomalies {
    let day = ts.map(utc_day);
    by_day.entry((day.is_none(), day.clone())).or_insert_with(|| DayAnomalies { day, ..DayAnomalies::default() })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// 2024-02-05T00:00:00Z.
    const DAY1: i64 = 1_707_091_200_000;
    const DAY: i64 = 86_400_000;

    fn flags(list: &[EventFlag]) -> EventFlags {
        let mut set = EventFlags::default();
        list.iter().for_each(|f| set.insert(*f));
        set
    }

    fn booking(
        id: &str,
        request: Option<(i64, &str, &str)>,
        list: &[EventFlag],
        seats: &[(&str, &str)],
    ) -> BookingFacts {
        BookingFacts {
            booking_id: id.into(),
            request: request.map(|(ts_millis, venue, show)| RequestFacts {
                ts_millis,
                venue: Some(venue.into()),
                show_id: Some(show.into()),
            }),
            flags: flags(list),
            confirmed_seats: seats.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        }
    }

    use EventFlag::*;

    fn sample() -> Vec<BookingFacts> {
        vec![
            booking("BK-1", Some((DAY1 + 1, "Hall", "S1")), &[Requested, Captured, Confirmed], &[("S1", "A-1")]),
            booking("BK-2", Some((DAY1 + 2, "Hall", "S1")), &[Requested, Captured, Confirmed], &[("S1", "A-1")]),
            booking(
                "BK-3",
                Some((DAY1 + DAY, "Arena", "S2")),
                &[Requested, Captured, Confirmed, Cancelled],
                &[("S1", "A-1")],
            ),
            booking("BK-4", Some((DAY1 + DAY + 5, "Arena", "S2")), &[Requested, PaymentFailed, Expired], &[]),
            booking("BK-5", Some((DAY1 + DAY + 6, "Arena", "S2")), &[Requested, Captured], &[]),
            booking("BK-6", None, &[Confirmed], &[("S2", "B-1")]),
            booking("BK-7", Some((DAY1 - 1, "Hall", "S2")), &[Requested, Confirmed, Captured], &[("S2", "B-1")]),
            booking(
                "BK-8",
                Some((DAY1 - 2, "Hall", "S2")),
                &[Requested, Confirmed, Captured, Refunded],
                &[("S1", "A-1")],
            ),
        ]
    }

    #[test]
    fn groups_count_distinct_bookings_per_type_by_each_grouping() {
        let report = build(sample(), ReportWindow::default(), GroupBy::Day);
        let rows: Vec<(&str, u64, u64, u64)> = report
            .groups
            .iter()
            .map(|g| (g.key.as_str(), g.counts.requested, g.counts.confirmed, g.counts.cancelled))
            .collect();
        assert_eq!(rows, vec![("2024-02-04", 2, 2, 0), ("2024-02-05", 2, 2, 0), ("2024-02-06", 3, 1, 1)]);
        assert_eq!(report.groups[2].counts.conversion, Some(1.0 / 3.0));
        assert_eq!(report.totals.requested, 7);
        assert_eq!(report.totals.payment_failed, 1);
        assert_eq!(report.bookings_without_request, 1);

        let by_venue = build(sample(), ReportWindow::default(), GroupBy::Venue);
        let keys: Vec<(&str, u64)> = by_venue.groups.iter().map(|g| (g.key.as_str(), g.counts.requested)).collect();
        assert_eq!(keys, vec![("Arena", 3), ("Hall", 4)]);
        let by_show = build(sample(), ReportWindow::default(), GroupBy::Show);
        let keys: Vec<(&str, u64)> = by_show.groups.iter().map(|g| (g.key.as_str(), g.counts.requested)).collect();
        assert_eq!(keys, vec![("S1", 2), ("S2", 5)]);
    }

    #[test]
    fn integrity_findings_follow_their_definitions() {
        let report = build(sample(), ReportWindow::default(), GroupBy::Day);
        let integrity = &report.integrity;
        // BK-3 and BK-8 also held S1/A-1 but were cancelled or refunded; BK-6 has no request yet counts with
        // an open window.
        assert_eq!(
            integrity.seats_sold_twice,
            vec![
                SeatSoldTwice {
                    show_id: "S1".into(),
                    seat: "A-1".into(),
                    booking_ids: vec!["BK-1".into(), "BK-2".into()]
                },
                SeatSoldTwice {
                    show_id: "S2".into(),
                    seat: "B-1".into(),
                    booking_ids: vec!["BK-6".into(), "BK-7".into()]
                },
            ]
        );
        assert_eq!(integrity.captured_not_confirmed, vec!["BK-5"]);
        assert_eq!(integrity.confirmed_not_captured, vec!["BK-6"]);
        let days: Vec<(Option<&str>, u64, u64, u64)> = report
            .anomalies_by_day
            .iter()
            .map(|d| (d.day.as_deref(), d.seats_sold_twice, d.captured_not_confirmed, d.confirmed_not_captured))
            .collect();
        assert_eq!(
            days,
            vec![
                (Some("2024-02-04"), 1, 0, 0),
                (Some("2024-02-05"), 1, 0, 0),
                (Some("2024-02-06"), 0, 1, 0),
                (None, 0, 0, 1)
            ]
        );
    }

    #[test]
    fn a_window_keeps_bookings_requested_inside_it_only() {
        let window = ReportWindow { since_ms: Some(DAY1), until_ms: Some(DAY1 + DAY) };
        let report = build(sample(), window, GroupBy::Day);
        let keys: Vec<&str> = report.groups.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, vec!["2024-02-05"]);
        assert_eq!(report.bookings_without_request, 0, "a bounded window drops bookings without a request");
        assert_eq!(report.integrity.seats_sold_twice.len(), 1);
        assert!(report.integrity.confirmed_not_captured.is_empty());
        assert_eq!(report.window.since.as_deref(), Some("2024-02-05T00:00:00Z"));
        assert_eq!(report.window.until.as_deref(), Some("2024-02-06T00:00:00Z"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["by"], "day");
        assert_eq!(json["groups"][0]["key"], "2024-02-05");
        assert_eq!(json["groups"][0]["requested"], 2, "counts sit beside the key: {json}");
        assert_eq!(json["groups"][0]["conversion"], 1.0);
        assert!(json["integrity"]["seats_sold_twice"][0]["booking_ids"].is_array());
    }

    #[test]
    fn an_empty_report_has_no_conversion_and_no_findings() {
        let report = build(Vec::new(), ReportWindow::default(), GroupBy::Venue);
        assert!(report.groups.is_empty() && report.integrity.is_clean() && report.anomalies_by_day.is_empty());
        assert_eq!(report.totals.conversion, None);
        assert_eq!(serde_json::to_value(&report).unwrap()["window"]["since"], serde_json::Value::Null);
    }

    #[test]
    fn missing_venue_or_show_groups_under_none_and_pieces_of_a_booking_merge() {
        let mut piece = booking("BK-1", Some((DAY1 + 5, "Hall", "S1")), &[Requested], &[]);
        piece.request.as_mut().unwrap().venue = None;
        let other = booking("BK-1", Some((DAY1 + 9, "Late", "S9")), &[Confirmed], &[("S1", "A-1")]);
        let report = build([other, piece], ReportWindow::default(), GroupBy::Venue);
        assert_eq!(report.groups.len(), 1, "{report:?}");
        assert_eq!(report.groups[0].key, NO_VALUE_KEY, "the earliest request decides");
        assert_eq!(report.groups[0].counts.confirmed, 1);
    }

    #[test]
    fn utc_days_match_chrono() {
        for ms in [0, DAY1, DAY1 - 1, -1, 4_102_444_799_999] {
            let expected = chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%d").to_string();
            assert_eq!(utc_day(ms), expected, "{ms}");
        }
    }

    const ALL: [EventFlag; 7] = [Requested, Confirmed, Cancelled, Expired, PaymentFailed, Refunded, Captured];

    fn arb_facts() -> impl Strategy<Value = Vec<BookingFacts>> {
        let one = (
            0u8..12,
            proptest::option::weighted(0.8, (0i64..4 * DAY, 0usize..3, 0usize..3)),
            any::<u8>(),
            proptest::collection::vec((0usize..2, 0usize..3), 0..3),
        )
            .prop_map(|(id, request, bits, seats)| {
                let mut flags = EventFlags::default();
                for (i, flag) in ALL.iter().enumerate() {
                    if bits & (1 << i) != 0 {
                        flags.insert(*flag);
                    }
                }
                let names = ["a", "b", "c"];
                BookingFacts {
                    booking_id: format!("BK-{id:02}"),
                    request: request.map(|(ts, v, s)| RequestFacts {
                        ts_millis: DAY1 + ts,
                        venue: Some(names[v].into()),
                        show_id: (s > 0).then(|| format!("S{s}")),
                    }),
                    flags,
                    confirmed_seats: seats.into_iter().map(|(s, seat)| (format!("S{s}"), names[seat].into())).collect(),
                }
            });
        proptest::collection::vec(one, 0..30)
    }

    fn arb_window() -> impl Strategy<Value = ReportWindow> {
        (proptest::option::of(0i64..4 * DAY), proptest::option::of(0i64..4 * DAY))
            .prop_map(|(a, b)| ReportWindow { since_ms: a.map(|a| DAY1 + a), until_ms: b.map(|b| DAY1 + b) })
    }

    fn arb_by() -> impl Strategy<Value = GroupBy> {
        prop_oneof![Just(GroupBy::Day), Just(GroupBy::Venue), Just(GroupBy::Show)]
    }

    proptest! {
        #[test]
        fn groups_sum_to_the_totals_and_never_exceed_their_requests(
            facts in arb_facts(), window in arb_window(), by in arb_by()
        ) {
            let report = build(facts, window, by);
            let mut sum = Counts::default();
            for group in &report.groups {
                let c = &group.counts;
                prop_assert!(c.requested > 0);
                for n in [c.confirmed, c.cancelled, c.expired, c.payment_failed, c.refunded] {
                    prop_assert!(n <= c.requested, "{:?}", group);
                }
                prop_assert!(c.conversion.is_some_and(|r| (0.0..=1.0).contains(&r)));
                sum.add_counts(c);
            }
            prop_assert_eq!(report.totals.clone(), sum.finish());
            let keys: Vec<&String> = report.groups.iter().map(|g| &g.key).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted, unique keys");
        }

        #[test]
        fn order_and_splitting_of_the_facts_change_nothing(
            facts in arb_facts(), window in arb_window(), by in arb_by(), seed in any::<u64>()
        ) {
            let report = build(facts.clone(), window, by);
            let mut reversed = facts.clone();
            reversed.reverse();
            prop_assert_eq!(&build(reversed, window, by), &report);
            // Split each booking's facts in two pieces, as a backend reading several
            // segments might deliver them.
            let mut pieces = Vec::new();
            for (i, fact) in facts.into_iter().enumerate() {
                if (seed >> (i % 64)) & 1 == 1 {
                    let mut first = fact.clone();
                    first.confirmed_seats.truncate(1);
                    let mut second = fact;
                    second.request = None;
                    pieces.push(second);
                    pieces.push(first);
                } else {
                    pieces.push(fact);
                }
            }
            prop_assert_eq!(build(pieces, window, by), report);
        }

        #[test]
        fn every_finding_meets_its_definition(facts in arb_facts(), window in arb_window()) {
            let report = build(facts.clone(), window, GroupBy::Day);
            let mut merged: BTreeMap<String, BookingFacts> = BTreeMap::new();
            for fact in facts {
                match merged.get_mut(&fact.booking_id) {
                    Some(known) => merge(known, fact),
                    None => { merged.insert(fact.booking_id.clone(), fact); }
                }
            }
            merged.retain(|_, f| window.admits(f));
            let live = |f: &BookingFacts| !f.flags.contains(Cancelled) && !f.flags.contains(Refunded);
            // Brute force over every pair of live bookings.
            let mut pairs: BTreeMap<(String, String), std::collections::BTreeSet<String>> = BTreeMap::new();
            for f in merged.values().filter(|f| live(f)) {
                for seat in &f.confirmed_seats {
                    pairs.entry(seat.clone()).or_default().insert(f.booking_id.clone());
                }
            }
            let expected: Vec<SeatSoldTwice> = pairs
                .into_iter()
                .filter(|(_, ids)| ids.len() > 1)
                .map(|((show_id, seat), ids)| SeatSoldTwice { show_id, seat, booking_ids: ids.into_iter().collect() })
                .collect();
            prop_assert_eq!(&report.integrity.seats_sold_twice, &expected);
            for id in &report.integrity.captured_not_confirmed {
                let f = &merged[id];
                prop_assert!(f.flags.contains(Captured) && !f.flags.contains(Confirmed) && !f.flags.contains(Refunded));
            }
            let confirmed_not_captured = merged.values().filter(|f| f.flags.contains(Confirmed) && !f.flags.contains(Captured)).count();
            prop_assert_eq!(report.integrity.confirmed_not_captured.len(), confirmed_not_captured);
            let per_day: u64 = report.anomalies_by_day.iter().map(|d| d.seats_sold_twice + d.captured_not_confirmed + d.confirmed_not_captured).sum();
            let findings = report.integrity.seats_sold_twice.len() + report.integrity.captured_not_confirmed.len() + report.integrity.confirmed_not_captured.len();
            prop_assert_eq!(per_day, findings as u64);
        }
    }
}
