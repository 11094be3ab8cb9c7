//! The booking report's inputs: what each backend gathers about every booking
//! ([`BookingFacts`], through [`crate::Backend::booking_facts`]), and the window and
//! grouping an analyst asks for. Turning facts into the report is pure and lives in
//! [`build`](crate::report::build) (no I/O, the same for every backend).

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

    /// The event type this flag stands for.
    pub fn event_type(self) -> &'static str {
        REPORT_EVENT_TYPES.iter().find(|(_, flag)| *flag == self).map(|(name, _)| *name).unwrap_or("")
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
