//! Booking events for tests: a builder for events written by hand (a time, a type, a
//! booking and whatever fields the case needs), NDJSON made of them, and realistic
//! NDJSON from the seeded generator when only the volume matters.

use serde_json::{json, Map, Value};

/// One booking event as a producer sends it, built field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct Event(Map<String, Value>);

impl Event {
    /// An event with its time (RFC 3339 text or epoch milliseconds) and type.
    pub fn new(ts: impl Into<Value>, event_type: &str) -> Event {
        let mut fields = Map::new();
        fields.insert("ts".into(), ts.into());
        fields.insert("type".into(), json!(event_type));
        Event(fields)
    }

    /// An event of the booking `booking_id`.
    pub fn of_booking(ts: impl Into<Value>, event_type: &str, booking_id: &str) -> Event {
        Event::new(ts, event_type).with("booking_id", booking_id)
    }

    /// Sets `field` (replacing an earlier value).
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Event {
        self.0.insert(field.into(), value.into());
        self
    }

    /// Sets every field of the object `fields` (anything else adds nothing).
    pub fn with_all(mut self, fields: Value) -> Event {
        if let Value::Object(fields) = fields {
            self.0.extend(fields);
        }
        self
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

impl From<Event> for Value {
    fn from(event: Event) -> Value {
        event.into_value()
    }
}

/// One JSON line per event, each ended by a newline.
pub fn ndjson<E: Into<Value>>(events: impl IntoIterator<Item = E>) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        serde_json::to_writer(&mut out, &event.into()).expect("writing JSON to a Vec cannot fail");
        out.push(b'\n');
    }
    out
}

/// `n` realistic booking events as NDJSON, from the seeded generator (distinct seeds give
/// distinct events).
pub fn generated(seed: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = fixtures::generate(&fixtures::GenConfig::new(seed, n), &mut out).expect("generating into a Vec");
    assert_eq!(stats.events, n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_fields_in_the_order_written() {
        let event = Event::of_booking("2024-02-05T10:00:00Z", "booking.confirmed", "BK-1")
            .with("amount", 1200)
            .with_all(json!({"seat": ["A-1"], "amount": 1300}));
        assert_eq!(
            String::from_utf8(ndjson([event.clone(), event])).unwrap(),
            "{\"ts\":\"2024-02-05T10:00:00Z\",\"type\":\"booking.confirmed\",\"booking_id\":\"BK-1\",\"amount\":1300,\"seat\":[\"A-1\"]}\n"
                .repeat(2)
        );
        assert_eq!(generated(7, 25).iter().filter(|b| **b == b'\n').count(), 25);
    }
}
