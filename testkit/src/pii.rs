//! An oracle for personal data in anything the pipeline writes: index documents, `_bulk`
//! bodies, dead-letter entries, checkpoints, logs.
//!
//! Written apart from `ingest::redact` on purpose, and simple enough to check by eye: a
//! leak checker that shares the redactor's scanner cannot see the redactor's misses.
//! It is slow (it tries every window) and that is fine for tests.
//!
//! - A card number is 13 to 19 digits passing Luhn, written as one group or as several
//!   groups of 3 to 6 digits (how cards are printed: 4-4-4-4, 4-6-5; this is also what
//!   keeps booking ids such as `BK-20240205-000123` out), the groups joined by what a
//!   person types between them: one to three of space, tab, `-`, `_`, `.`, `/`, mixed.
//! - `pii_` + 24 lowercase hex digits standing alone is a redaction token, not data.
//! - An e-mail address is `x@label.tld` with a two-letter-or-longer top-level label.
//! - A planted value (an e-mail, a phone) leaks when its digits, or its text ignoring
//!   case, appear in the output, whatever separators the output puts between them.

use serde_json::{json, Value};

const SEPARATORS: &str = " \t-_./";
const MAX_SEPARATOR: usize = 3;

/// Luhn, written from its definition: from the right, every second digit is doubled and
/// its digits summed.
// `u32::is_multiple_of` needs Rust 1.87; the workspace declares 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn luhn(digits: &str) -> bool {
    let mut total = 0;
    for (position, c) in digits.chars().rev().enumerate() {
        let d = c.to_digit(10).expect("luhn takes digits only");
        total += if position % 2 == 0 {
            d
        } else if d * 2 > 9 {
            d * 2 - 9
        } else {
            d * 2
        };
    }
    total % 10 == 0
}

/// Replaces redaction tokens with `#`, so their hex digits are not read as numbers.
fn blank_tokens(s: &str) -> Vec<char> {
    let mut chars: Vec<char> = s.chars().collect();
    let is_hex = |c: &char| c.is_ascii_digit() || ('a'..='f').contains(c);
    let mut i = 0;
    while i + 28 <= chars.len() {
        let standalone = (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
            && chars.get(i + 28).is_none_or(|c| !c.is_ascii_alphanumeric());
        if standalone && chars[i..i + 4] == ['p', 'i', 'i', '_'] && chars[i + 4..i + 28].iter().all(is_hex) {
            chars[i..i + 28].fill('#');
            i += 28;
        } else {
            i += 1;
        }
    }
    chars
}

/// The first card number (its digits) that `s` shows, if any.
pub fn find_card(s: &str) -> Option<String> {
    let chars = blank_tokens(s);
    for start in 0..chars.len() {
        // A card starts where a digit group starts.
        if !chars[start].is_ascii_digit() || (start > 0 && chars[start - 1].is_ascii_digit()) {
            continue;
        }
        let mut groups: Vec<String> = vec![String::new()];
        let mut k = start;
        loop {
            while k < chars.len() && chars[k].is_ascii_digit() {
                groups.last_mut().unwrap().push(chars[k]);
                k += 1;
            }
            let digits: String = groups.concat();
            let shaped = groups.len() == 1 || groups.iter().all(|g| (3..=6).contains(&g.len()));
            if (13..=19).contains(&digits.len()) && shaped && luhn(&digits) {
                return Some(digits);
            }
            if digits.len() >= 19 {
                break;
            }
            let gap = chars[k..].iter().take_while(|c| SEPARATORS.contains(**c)).count();
            if gap == 0 || gap > MAX_SEPARATOR || !chars.get(k + gap).is_some_and(char::is_ascii_digit) {
                break;
            }
            k += gap;
            groups.push(String::new());
        }
    }
    None
}

/// The first e-mail address in `s`, if any.
pub fn find_email(s: &str) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let local = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    let label = |c: char| c.is_alphanumeric() || c == '-';
    for (i, &c) in chars.iter().enumerate() {
        if c != '@' || i == 0 || !local(chars[i - 1]) {
            continue;
        }
        let rest: String = chars[i + 1..].iter().take_while(|&&c| label(c) || c == '.').collect();
        let labels: Vec<&str> = rest.split('.').take_while(|l| !l.is_empty()).collect();
        if labels.iter().skip(1).any(|l| l.chars().count() >= 2 && l.chars().any(char::is_alphabetic)) {
            return Some(format!("{}@{rest}", chars[i - 1]));
        }
    }
    None
}

/// The first of `planted` that `s` still shows: its text ignoring case, or, for a value
/// with 7 digits or more (a phone, a card), its digits in order with only separators
/// (`SEPARATORS`, `(`, `)`, `+`) between them.
pub fn find_planted<'a>(s: &str, planted: &[&'a str]) -> Option<&'a str> {
    let lower = s.to_lowercase();
    let squeezed: String = s.chars().filter(|c| !SEPARATORS.contains(*c) && !"()+".contains(*c)).collect();
    planted.iter().copied().find(|p| {
        let digits: String = p.chars().filter(char::is_ascii_digit).collect();
        lower.contains(&p.to_lowercase()) || (digits.len() >= 7 && squeezed.contains(&digits))
    })
}

/// What [`check_text`] found: where, what kind, and the value.
pub fn leak_in_text(s: &str, planted: &[&str]) -> Option<String> {
    if let Some(card) = find_card(s) {
        return Some(format!("card number {card}"));
    }
    if let Some(email) = find_email(s) {
        return Some(format!("e-mail address {email}"));
    }
    find_planted(s, planted).map(|p| format!("planted value {p}"))
}

/// Panics, naming `sink`, when `s` shows a card number, an e-mail address or one of
/// `planted`.
pub fn check_text(sink: &str, s: &str, planted: &[&str]) {
    if let Some(leak) = leak_in_text(s, planted) {
        panic!("{sink} leaks a {leak}:\n{s}");
    }
}

/// Like [`check_text`] for a JSON value, leaf by leaf, with two exceptions the redactor
/// documents: integers below 4e12 (epoch milliseconds, one in ten Luhn-valid) and the
/// values of `skip_keys` (for instance `_id`: a hex hash, judged by the id tests).
pub fn check_json(sink: &str, v: &Value, planted: &[&str], skip_keys: &[&str]) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => check_text(sink, s, planted),
            Value::Number(n) if n.as_u64().is_some_and(|u| u < 4_000_000_000_000) => {}
            Value::Number(n) if n.as_i64().is_some_and(|i| i.unsigned_abs() < 4_000_000_000_000) => {}
            Value::Number(n) => check_text(sink, &n.to_string(), planted),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (k, v) in map {
                    check_text(sink, k, planted);
                    if !skip_keys.contains(&k.as_str()) {
                        stack.push(v);
                    }
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
}

/// [`check_json`] per line when a line is JSON, [`check_text`] otherwise: for NDJSON
/// bodies, dead-letter objects and logs with EMF lines.
pub fn check_lines(sink: &str, text: &str, planted: &[&str], skip_keys: &[&str]) {
    for line in text.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => check_json(sink, &v, planted, skip_keys),
            Err(_) => check_text(sink, line, planted),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The planted corpus
// ---------------------------------------------------------------------------------------

const TS: &str = "2024-02-05T10:11:12.345Z";

/// Card numbers (all Luhn-valid) as people write them.
pub const CARDS: &[&str] = &[
    "4111111111111111",
    "4111 1111 1111 1111",
    "4111  1111  1111  1111",
    "4111--1111--1111--1111",
    "4111_1111_1111_1111",
    "4111.1111.1111.1111",
    "4111/1111/1111/1111",
    "4111 - 1111 - 1111 - 1111",
    "5500-0000 0000_0004",
    "3782.822463.10005",
    "6011 0009 9013 9424",
];
pub const PHONES: &[&str] =
    &["+82 10-1234-5678", "+14155552671", "010-9876-5432", "(02) 123-4567", "+1 (415) 555-2671"];
pub const EMAILS: &[&str] = &["Bob.Smith+tix@Example.com", "jimin.park@mail.example.kr"];
/// Values that only the field rules remove (a PIN, a PIN block) or the track rule (the
/// name and discretionary data of a stripe).
pub const SECRETS: &[&str] = &["482913", "0412ac8912345678", "DOE/JOHN", "25121010000000000000"];

/// Every planted value, for the literal search.
pub fn planted() -> Vec<&'static str> {
    CARDS.iter().chain(PHONES).chain(EMAILS).chain(SECRETS).copied().collect()
}

fn good_record(id: &str, extra: Value) -> String {
    let mut doc = json!({"ts": TS, "type": "booking.confirmed", "event_id": id, "service": "payments"});
    doc.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    doc.to_string()
}

/// The planted corpus of the PII sweeps.
pub struct Planted {
    /// NDJSON: good records first, then the bad ones.
    pub text: String,
    /// The `event_id`s of the records that must be indexed.
    pub indexed: Vec<String>,
    /// The 1-based record numbers that must be dead-lettered.
    pub rejected: Vec<u64>,
}

/// Records that carry the planted values in every place a record can: free text,
/// PII-named fields, nested objects, JSON numbers, JSON embedded in text, PIN and track
/// fields, track data in text; and bad records that hold them in a wrongly typed value,
/// an invalid time, field names, a non-object, broken JSON, too deep a nesting, and a
/// line over the 1 MiB limit whose kept prefix is cut inside a card number. One good
/// record (`sweep-refused`) is for a test that makes the store refuse it; one
/// (`sweep-booking`) holds only look-alikes that must come out unchanged.
pub fn planted_corpus() -> Planted {
    let mut good_lines = Vec::new();
    for (i, card) in CARDS.iter().enumerate() {
        good_lines.push(good_record(&format!("sweep-card-{i}"), json!({"message": format!("paid with {card} ok")})));
    }
    for (i, phone) in PHONES.iter().enumerate() {
        good_lines
            .push(good_record(&format!("sweep-phone-{i}"), json!({"message": format!("call back {phone} please")})));
        good_lines.push(good_record(&format!("sweep-phone-field-{i}"), json!({"customer": {"mobile": phone}})));
    }
    for (i, email) in EMAILS.iter().enumerate() {
        good_lines.push(good_record(&format!("sweep-email-{i}"), json!({"message": format!("mail to {email}.")})));
        good_lines.push(good_record(
            &format!("sweep-email-field-{i}"),
            json!({"email": email, "contact": {"e_mail": email}}),
        ));
    }
    good_lines.push(good_record(
        "sweep-payment",
        json!({"payment": {"method": "card", "PIN": "482913", "pin_block": "0412AC8912345678",
            "Track2": ";4111111111111111=25121010000000000000?", "card_number": "4111 1111 1111 1111",
            "cvv": "123"}, "amount": 125000, "currency": "KRW"}),
    ));
    good_lines.push(good_record(
        "sweep-track-1",
        json!({"message": "swipe %B4111111111111111^DOE/JOHN^25121010000000000000? done"}),
    ));
    good_lines
        .push(good_record("sweep-track-2", json!({"message": "swipe ;5500000000000004=25121010000000000000? done"})));
    good_lines.push(good_record("sweep-number", json!({"ref": 4111111111111111u64, "seat": ["A-12", "A-13"]})));
    good_lines.push(good_record(
        "sweep-embedded",
        json!({"message": r#"payload {"email":"bob.smith+tix@example.com","pin":482913,"card":"5500-0000 0000_0004"}"#}),
    ));
    // Not PII: must come out unchanged (checked in the tantivy test).
    good_lines.push(good_record(
        "sweep-booking",
        json!({"message": "BK-20240205-000123 seat R12-S5 v1.2.3", "booking_id": "BK-20240205-000123"}),
    ));
    // The document the Elasticsearch test makes the cluster refuse.
    good_lines.push(good_record("sweep-refused", json!({"message": "refuse me 4111_1111_1111_1111 +82 10-1234-5678"})));

    let bad_lines = [
        // A known field of the wrong type holding a card number.
        format!(r#"{{"ts":"{TS}","type":"t","event_id":"sweep-bad-amount","amount":"4111 1111 1111 1111"}}"#),
        // An invalid time that is a card number.
        r#"{"ts":"4111-1111-1111-1111","type":"t","event_id":"sweep-bad-ts"}"#.to_owned(),
        // No type, PII in the message.
        format!(r#"{{"ts":"{TS}","message":"Bob.Smith+tix@Example.com +14155552671 4111.1111.1111.1111"}}"#),
        // Not an object.
        r#""card 4111/1111/1111/1111 mail jimin.park@mail.example.kr tel 010-9876-5432""#.to_owned(),
        // Not JSON at all.
        r#"{"message":"card 4111--1111--1111--1111 (02) 123-4567", oops}"#.to_owned(),
        // Field names that are PII, doubled: the reason names the field.
        format!(r#"{{"ts":"{TS}","type":"t","4111111111111111":1,"4111111111111111":2}}"#),
        format!(r#"{{"ts":"{TS}","type":"t","Bob.Smith+tix@Example.com":1,"Bob.Smith+tix@Example.com":2}}"#),
        // A reserved field name holding a card number.
        format!(r#"{{"ts":"{TS}","type":"t","_4111 1111 1111 1111":1}}"#),
        // Too deep, a phone and a PIN inside.
        format!(
            r#"{{"ts":"{TS}","type":"t","x":{}"+82 10-1234-5678"{}, "pin":"482913"}}"#,
            "[".repeat(70),
            "]".repeat(70)
        ),
    ];
    let mut lines = good_lines.clone();
    let first_bad = lines.len() as u64 + 1;
    lines.extend(bad_lines.iter().cloned());
    // A line over the 1 MiB limit: its raw text is kept cut, and the cut falls inside a
    // card number written with double spaces.
    let mut long = format!(r#"{{"ts":"{TS}","type":"t","message":""#);
    while long.len() < 64 * 1024 - 10 {
        long.push_str("4111  1111  1111  1111 ");
    }
    long.push_str(&"x".repeat(1024 * 1024));
    long.push_str(r#""}"#);
    lines.push(long);
    let bad: Vec<u64> = (first_bad..=lines.len() as u64).collect();
    let ids = (0..good_lines.len())
        .map(|i| serde_json::from_str::<Value>(&good_lines[i]).unwrap()["event_id"].as_str().unwrap().to_owned())
        .collect();
    Planted { text: lines.join("\n") + "\n", indexed: ids, rejected: bad }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_matches_known_numbers() {
        assert!(luhn("4111111111111111") && luhn("378282246310005") && luhn("79927398713"));
        assert!(!luhn("4111111111111112") && !luhn("79927398710"));
    }

    #[test]
    fn cards_are_found_in_every_layout_a_person_types() {
        for s in [
            "4111111111111111",
            "x 4111 1111 1111 1111 y",
            "4111  1111  1111  1111",
            "4111--1111--1111--1111",
            "4111_1111_1111_1111",
            "4111.1111.1111.1111",
            "4111/1111/1111/1111",
            "4111 - 1111 - 1111 - 1111",
            "3782 822463 10005",
            "on 2024-02-05 4111 1111 1111 1111",
            "%B4111111111111111^DOE/JOHN^2512",
        ] {
            assert!(find_card(s).is_some(), "{s}");
        }
    }

    #[test]
    fn masked_cards_tokens_and_booking_ids_are_not_cards() {
        assert!(luhn("20240205000001"));
        for s in [
            "************1111",
            "4111111111111112",
            "BK-20240205-000001",
            "pii_4111111111111111abcdefab",
            "4111    1111 1111 1111 1",
            "2024-02-05T10:11:12.345Z",
        ] {
            assert_eq!(find_card(s), None, "{s}");
        }
    }

    #[test]
    fn planted_values_are_found_whatever_the_separators() {
        let planted = ["+82 10-1234-5678", "Bob@Example.com"];
        assert_eq!(find_planted("call 82.10.1234.5678", &planted), Some("+82 10-1234-5678"));
        assert_eq!(find_planted("to bob@example.COM", &planted), Some("Bob@Example.com"));
        assert_eq!(find_planted("pii_0123456789abcdef01234567 ok", &planted), None);
        assert!(find_email("x bob@example.com").is_some() && find_email("pkg@1.2.3").is_none());
    }

    #[test]
    fn json_checks_skip_epoch_millis_and_named_keys_only() {
        let v = serde_json::json!({"ts": 1707127200003u64, "_id": "4111111111111111", "ok": "fine"});
        check_json("test", &v, &[], &["_id"]);
        let leaked = std::panic::catch_unwind(|| {
            check_json("test", &serde_json::json!({"n": 4111111111111111u64}), &[], &[]);
        });
        assert!(leaked.is_err());
    }
}
