//! PII redaction (ARCHITECTURE.md, "PII"): card numbers keep their last four digits, e-mail
//! addresses, phone numbers and the values of e-mail/phone fields become keyed HMAC
//! tokens, magnetic-stripe track data becomes `[redacted]`, and CVV-like, PIN and track
//! fields disappear, before anything reaches the index, the logs or the dead-letter store.
//!
//! Everything is a hand-written byte scanner: this runs over every string of every
//! record, so the common case (nothing found) only reads bytes and never allocates.
//!
//! What counts as what, precisely (the tests check the output against these):
//! - A digit *run* is a maximal sequence of ASCII digit groups joined by separators as
//!   people type them: one to three spaces, tabs, `-`, `_`, `.` or `/` in any mix
//!   (`4111 1111-1111 1111`, `4111  1111`, `4111--1111`, `4111_1111`, `4111.1111`,
//!   `4111/1111`, `4111 - 1111`). Any part of a run made of whole groups, 13 to 19
//!   digits long and Luhn-valid, is a card number; it is written as `*` per masked digit
//!   plus the last four digits, separators dropped. Checking group-aligned windows, not
//!   just whole runs, catches a card that follows a date or a quantity
//!   (`2024-02-05 4111 1111 1111 1111`).
//! - An e-mail address is `local@domain`: the local part is ASCII letters, digits,
//!   `._%+-` or non-ASCII letters; the domain is at least two dot-separated labels of
//!   letters, digits and `-`, the last of which has two or more characters including a
//!   letter (so `pkg@1.2.3` is not an address).
//! - A token is `pii_` plus 24 lowercase hex digits, not touching a letter or digit on
//!   either side. Tokens are never re-tokenised or card-masked, which keeps redaction
//!   idempotent (hex digits of a token can form a Luhn-valid run by chance).
//! - Fields whose name contains, in any case, `email`, `e_mail`, `e-mail`, `phone` or
//!   `mobile`: every string and number under them becomes `token(value)` (a lone
//!   address is lowercased first, so it joins with the same address found in text).
//!   Fields whose name contains `cvv`, `cvc` or `security_code` are removed, and so are
//!   fields named, as whole words, `pin`, `pin_block`/`pinblock`/`pin_code`, `track1`,
//!   `track2`, `track3` or `track_data` (any case, any depth; `shipping`, `tracking_id`
//!   stay).
//! - A phone number in text is an E.164 number (`+`, 8 to 15 digits, single spaces,
//!   dashes, dots or a parenthesised group between them: `+82 10-1234-5678`,
//!   `+14155552671`) or a local one of three groups (`010-1234-5678`, `02-123-4567`,
//!   `(02) 123-4567`, `415-555-2671`), standing as a word of its own. It becomes the
//!   token of the number as written, as the value of a `phone` field would.
//! - Track data in text, `%B<13-19 digits>^...` (track 1) or `;<13-19 digits>=...` (track
//!   2), up to the `?` end sentinel, becomes `[redacted]`.
//! - A JSON number is judged by its written form; one holding a card number becomes
//!   the masked string.
//! - In text (for instance a raw dead-letter line, or a `message` that embeds JSON),
//!   `"key": value` pairs whose key names PII are treated like the fields of an event;
//!   a CVV-like value becomes `"[redacted]"`.
//!
//! The card rule has a price: any 13..=19-digit Luhn-valid run is masked, card or not,
//! so about one in ten 13-digit epoch-millisecond numbers and one in ~550 random 128-bit
//! hex ids (`trace_id`) lose digits.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use hmac::{Hmac, Mac};
use memchr::{memchr, memchr2};
use serde_json::{Map, Number, Value};
use sha2::Sha256;

/// Used when `TIX_PII_KEY` is unset. Public by construction: tokens made with it can be
/// reversed by anyone who guesses the address, so callers must warn loudly.
const DEV_KEY: &[u8] = b"tix-logs development PII key: public, never use in production";
const TOKEN_PREFIX: &[u8] = b"pii_";
const TOKEN_LEN: usize = 4 + 24;
/// What a CVV-like value becomes in text, where removing the pair would need a JSON
/// rewrite. Contains no digit, so it is stable under redaction.
const REMOVED: &str = "[redacted]";
const MIN_CARD: usize = 13;
const MAX_CARD: usize = 19;

/// Keyed redaction of personal data. Cheap to share (`&self` everywhere).
#[derive(Clone)]
pub struct Redactor {
    /// HMAC state already keyed; cloned per token instead of re-deriving the key pads.
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyClass {
    Plain,
    /// Value becomes a token (`email`, `phone`, ...).
    Pii,
    /// Field is removed (`cvv`, ...).
    Secret,
}

impl Redactor {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of every length (long keys are hashed), so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
        Redactor { mac }
    }

    /// The keyed HMAC state, so document ids (`crate::id::event_id_key`) are keyed with
    /// the same secret without its bytes being kept twice.
    pub(crate) fn keyed_mac(&self) -> &Hmac<Sha256> {
        &self.mac
    }

    /// Key from `TIX_PII_KEY` (its raw bytes); when unset or empty returns a fixed
    /// development key and `true` (caller warns loudly).
    pub fn from_env() -> (Self, bool) {
        match std::env::var_os("TIX_PII_KEY") {
            Some(key) if !key.is_empty() => (Self::new(key.as_encoded_bytes()), false),
            _ => (Self::new(DEV_KEY), true),
        }
    }

    /// `"pii_"` + 24 lowercase hex digits of HMAC-SHA256(key, value): 96 bits, enough
    /// that distinct customers do not collide in counts and joins.
    pub fn token(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(TOKEN_LEN);
        out.push_str("pii_");
        for b in &tag[..12] {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// Redacts an event in place, at any depth. Keys are kept as they are.
    pub fn redact_event(&self, doc: &mut Map<String, Value>) {
        // An explicit stack: the document's depth is whatever the caller built.
        let mut stack: Vec<(&mut Value, bool)> = Vec::new();
        visit_map(doc, false, &mut stack);
        while let Some((value, pii)) = stack.pop() {
            if let Value::Number(n) = &*value {
                let replacement = if pii { Some(self.token(&n.to_string())) } else { mask_number(n) };
                if let Some(r) = replacement {
                    *value = Value::String(r);
                }
                continue;
            }
            match value {
                Value::String(s) => {
                    if pii {
                        if !is_token(s) {
                            *s = self.field_token(s);
                        }
                    } else if let Cow::Owned(r) = self.redact_text(s) {
                        *s = r;
                    }
                }
                Value::Array(items) => stack.extend(items.iter_mut().map(|v| (v, pii))),
                Value::Object(map) => visit_map(map, pii, &mut stack),
                Value::Bool(_) | Value::Null | Value::Number(_) => {}
            }
        }
    }

    /// Redacts free text such as dead-letter raw lines. Borrows when nothing is found.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut cur = Cow::Borrowed(text);
        if memchr(b'"', text.as_bytes()).is_some() {
            if let Some(s) = self.redact_pairs(&cur) {
                cur = Cow::Owned(s);
            }
        }
        if memchr(b'@', cur.as_bytes()).is_some() {
            if let Some(s) = self.redact_emails(&cur) {
                cur = Cow::Owned(s);
            }
        }
        if memchr2(b'%', b';', cur.as_bytes()).is_some() {
            if let Some(s) = redact_tracks(&cur) {
                cur = Cow::Owned(s);
            }
        }
        // Phones need 8 digits at least; most strings have fewer and stop here.
        if cur.bytes().filter(u8::is_ascii_digit).count() >= MIN_E164 {
            if let Some(s) = self.redact_phones(&cur) {
                cur = Cow::Owned(s);
            }
        }
        if let Some(s) = mask_cards(&cur) {
            cur = Cow::Owned(s);
        }
        cur
    }

    /// Lossy UTF-8, then [`Self::redact_text`], then truncation at a char boundary to at
    /// most `max_len` bytes. Redacting first means a cut cannot leave half a card number
    /// unmasked; the cut itself can shorten a long digit run into a Luhn-valid one, so
    /// the cut text is checked once more.
    pub fn redact_raw(&self, raw: &[u8], max_len: usize) -> String {
        let text = String::from_utf8_lossy(raw);
        let redacted = self.redact_text(&text);
        if redacted.len() <= max_len {
            return redacted.into_owned();
        }
        let mut cut = max_len;
        while !redacted.is_char_boundary(cut) {
            cut -= 1;
        }
        let head = &redacted[..cut];
        mask_cards(head).unwrap_or_else(|| head.to_owned())
    }

    /// Token for the value of an e-mail/phone field. A lone address is lowercased first,
    /// so `"email": "Bob@X.com"` and `"... bob@x.com ..."` in a message join up.
    fn field_token(&self, value: &str) -> String {
        let trimmed = value.trim();
        if next_email(trimmed, 0) == Some((0, trimmed.len())) {
            self.token(&trimmed.to_lowercase())
        } else {
            self.token(value)
        }
    }

    fn redact_emails(&self, s: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        while let Some((start, end)) = next_email(s, copied) {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(&s[copied..start]);
            o.push_str(&self.token(&s[start..end].to_lowercase()));
            copied = end;
        }
        out.map(|mut o| {
            o.push_str(&s[copied..]);
            o
        })
    }

    /// Phone numbers in text become tokens of the number as written, like the value of
    /// a `phone` field written the same way.
    fn redact_phones(&self, s: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        while let Some((start, end)) = next_phone(s.as_bytes(), copied) {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(&s[copied..start]);
            o.push_str(&self.token(&s[start..end]));
            copied = end;
        }
        out.map(|mut o| {
            o.push_str(&s[copied..]);
            o
        })
    }

    /// Finds `"key": value` pairs in text whose key names PII and rewrites the value.
    /// Quotes are paired from the start of the text, as a JSON reader would.
    fn redact_pairs(&self, s: &str) -> Option<String> {
        let b = s.as_bytes();
        let mut edit = Splice::default();
        let mut i = 0;
        while let Some(off) = memchr(b'"', &b[i..]) {
            let open = i + off;
            let Some(close) = string_end(b, open) else {
                break;
            };
            i = close + 1;
            let colon = skip_ws(b, close + 1);
            if b.get(colon) != Some(&b':') {
                continue;
            }
            let class = classify_key(&s[open + 1..close]);
            if class == KeyClass::Plain {
                continue;
            }
            i = self.redact_json_value(s, skip_ws(b, colon + 1), class, &mut edit);
        }
        edit.finish(s)
    }

    /// Rewrites every scalar of the JSON value starting at `start` (strings and numbers;
    /// object keys are kept) and returns where the value ends. Iterative, so hostile
    /// nesting cannot exhaust the stack; stops quietly at anything that is not JSON.
    fn redact_json_value(&self, s: &str, start: usize, class: KeyClass, edit: &mut Splice) -> usize {
        let b = s.as_bytes();
        let mut k = start;
        let mut depth = 0usize;
        loop {
            k = skip_ws(b, k);
            let Some(&c) = b.get(k) else { return k };
            match c {
                b'[' | b'{' => {
                    depth += 1;
                    k += 1;
                    continue;
                }
                b']' | b'}' | b',' | b':' if depth == 0 => return k,
                b']' | b'}' => {
                    depth -= 1;
                    k += 1;
                }
                b',' | b':' => {
                    k += 1;
                    continue;
                }
                b'"' => {
                    // An unterminated string (a truncated line) is redacted to the end.
                    let close = string_end(b, k);
                    let end = close.unwrap_or(b.len());
                    let is_key = close.is_some() && b.get(skip_ws(b, end + 1)) == Some(&b':');
                    if !(is_key && depth > 0) {
                        let inner = &s[k + 1..end];
                        let replacement = match class {
                            KeyClass::Secret if inner != REMOVED => Some(REMOVED.to_owned()),
                            KeyClass::Pii if !is_token(inner) => {
                                let decoded = if inner.contains('\\') && close.is_some() {
                                    serde_json::from_str::<String>(&s[k..=end]).unwrap_or_else(|_| inner.to_owned())
                                } else {
                                    inner.to_owned()
                                };
                                Some(self.field_token(&decoded))
                            }
                            _ => None,
                        };
                        if let Some(r) = replacement {
                            edit.replace(s, k + 1, end, &r);
                        }
                    }
                    k = (end + 1).min(b.len());
                }
                b'-' | b'+' | b'.' | b'0'..=b'9' => {
                    let len = b[k..]
                        .iter()
                        .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                        .count();
                    let number = &s[k..k + len];
                    let r = match class {
                        KeyClass::Secret => REMOVED.to_owned(),
                        _ => self.token(number),
                    };
                    edit.replace(s, k, k + len, &format!("\"{r}\""));
                    k += len;
                }
                _ => {
                    let len = b[k..].iter().take_while(|c| c.is_ascii_alphabetic()).count();
                    if len == 0 {
                        return k;
                    }
                    k += len;
                }
            }
            if depth == 0 {
                return k.min(b.len());
            }
        }
    }
}

/// Builds an edited copy of a string lazily: nothing is allocated until the first
/// replacement.
#[derive(Default)]
struct Splice {
    out: Option<String>,
    copied: usize,
}

impl Splice {
    fn replace(&mut self, s: &str, start: usize, end: usize, with: &str) {
        let out = self.out.get_or_insert_with(|| String::with_capacity(s.len() + 32));
        out.push_str(&s[self.copied..start]);
        out.push_str(with);
        self.copied = end;
    }

    fn finish(self, s: &str) -> Option<String> {
        self.out.map(|mut out| {
            out.push_str(&s[self.copied..]);
            out
        })
    }
}

fn visit_map<'v>(map: &'v mut Map<String, Value>, pii: bool, stack: &mut Vec<(&'v mut Value, bool)>) {
    // Classify each key once: the classes of the first 64 keys fit a bit set, and maps
    // with a secret key or more keys than that take the slow path.
    let mut pii_keys = 0u64;
    let mut slow = map.len() > 64;
    for (i, key) in map.keys().enumerate().take(64) {
        match classify_key(key) {
            KeyClass::Secret => slow = true,
            KeyClass::Pii => pii_keys |= 1 << i,
            KeyClass::Plain => {}
        }
    }
    if slow {
        map.retain(|k, _| classify_key(k) != KeyClass::Secret);
        for (key, value) in map.iter_mut() {
            stack.push((value, pii || classify_key(key) == KeyClass::Pii));
        }
        return;
    }
    for (i, value) in map.values_mut().enumerate() {
        stack.push((value, pii || pii_keys & (1 << i) != 0));
    }
}

/// Runs on every key of every record: one pass, dispatching on the possible first
/// letter of a needle, instead of a substring search per needle.
fn classify_key(key: &str) -> KeyClass {
    let k = key.as_bytes();
    let mut class = KeyClass::Plain;
    let mut maybe_card_secret = false;
    for i in 0..k.len() {
        let rest = &k[i..];
        match k[i] | 0x20 {
            b'c' if starts_ci(rest, b"cvv") || starts_ci(rest, b"cvc") => return KeyClass::Secret,
            b's' if starts_ci(rest, b"security_code") => return KeyClass::Secret,
            b'e' if starts_ci(rest, b"email") || starts_ci(rest, b"e_mail") || starts_ci(rest, b"e-mail") => {
                class = KeyClass::Pii
            }
            b'p' if starts_ci(rest, b"phone") => class = KeyClass::Pii,
            b'p' if starts_ci(rest, b"pin") => maybe_card_secret = true,
            b't' if starts_ci(rest, b"track") => maybe_card_secret = true,
            b'm' if starts_ci(rest, b"mobile") => class = KeyClass::Pii,
            _ => {}
        }
    }
    if maybe_card_secret && names_card_secret(key) {
        return KeyClass::Secret;
    }
    class
}

/// Whether a key names a PIN or magnetic-stripe track: `pin`, `pin_block`, `pinBlock`,
/// `PIN`, `card_pin`, `track1`, `track_2`, `trackData`, `track_data`. Judged by whole
/// words, because the letters alone also spell `shipping`, `mapping`, `tracking_id`,
/// whose values are not secrets and must not vanish.
fn names_card_secret(key: &str) -> bool {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        // camelCase and letter-to-digit changes start a new word: `pinBlock`, `track2`.
        let digit_after_letter = c.is_ascii_digit() && word.bytes().last().is_some_and(|b| b.is_ascii_alphabetic());
        if (c.is_ascii_uppercase() && prev_lower) || digit_after_letter {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.iter().enumerate().any(|(i, w)| {
        let next = words.get(i + 1).map(String::as_str);
        match w.as_str() {
            "pin" | "pinblock" | "pincode" => true,
            "track" => matches!(next, Some("1" | "2" | "3" | "data")),
            "trackdata" => true,
            _ => false,
        }
    })
}

fn starts_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Index of the quote closing the JSON-style string opened at `open`.
fn string_end(b: &[u8], open: usize) -> Option<usize> {
    let mut k = open + 1;
    while k < b.len() {
        let p = k + memchr2(b'"', b'\\', &b[k..])?;
        if b[p] == b'"' {
            return Some(p);
        }
        k = p + 2;
    }
    None
}

fn is_token(s: &str) -> bool {
    s.len() == TOKEN_LEN && token_at(s.as_bytes(), 0)
}

fn token_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + TOKEN_LEN
        && b[i..].starts_with(TOKEN_PREFIX)
        && b[i + 4..i + TOKEN_LEN].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        && b.get(i + TOKEN_LEN).is_none_or(|c| !c.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------
// E-mail addresses
// ---------------------------------------------------------------------------------------

/// Whether `s` contains an e-mail address (used to keep field names out of reasons).
pub(crate) fn contains_email(s: &str) -> bool {
    memchr(b'@', s.as_bytes()).is_some() && next_email(s, 0).is_some()
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-') || (!c.is_ascii() && c.is_alphanumeric())
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
}

/// Next address starting at or after `from`, as a byte range.
fn next_email(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut search = from;
    while search < b.len() {
        let at = search + memchr(b'@', &b[search..])?;
        search = at + 1;
        let start = s[from..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_local_char(c))
            .last()
            .map_or(at, |(i, _)| from + i);
        if start == at {
            continue;
        }
        if let Some(mut end) = domain_end(s, at + 1) {
            // `a@b.cc@d.ee`: the second address has no local part of its own, but once
            // the first became a token, the token's last character would give it one.
            while b.get(end) == Some(&b'@') {
                match domain_end(s, end + 1) {
                    Some(next) => end = next,
                    None => break,
                }
            }
            return Some((start, end));
        }
    }
    None
}

/// End of the longest run of labels from `start` that forms a domain (two labels or
/// more, the last with two characters or more and a letter).
fn domain_end(s: &str, start: usize) -> Option<usize> {
    let mut pos = start;
    let mut labels = 0;
    let mut best = None;
    loop {
        let mut end = s.len();
        let mut has_letter = false;
        for (i, c) in s[pos..].char_indices() {
            if !is_label_char(c) {
                end = pos + i;
                break;
            }
            has_letter |= c.is_alphabetic();
        }
        if end == pos {
            return best;
        }
        labels += 1;
        if labels >= 2 && end - pos >= 2 && has_letter {
            best = Some(end);
        }
        if s.as_bytes().get(end) != Some(&b'.') {
            return best;
        }
        pos = end + 1;
    }
}

// ---------------------------------------------------------------------------------------
// Phone numbers and magnetic-stripe track data in text
// ---------------------------------------------------------------------------------------

/// Fewest and most digits of an international (`+...`) number: E.164 allows 15, and
/// fewer than 8 is more likely a signed quantity (`+1250`) than a phone.
const MIN_E164: usize = 8;
const MAX_E164: usize = 15;

/// Next phone number starting at or after `from`, as a byte range (see the module doc
/// for the forms). Scans bytes only; ASCII never occurs inside a multi-byte character,
/// so the range always falls on char boundaries.
fn next_phone(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        if (c == b'+' || c == b'(' || c.is_ascii_digit()) && phone_may_start(b, i) {
            let end = if c == b'+' { e164_end(b, i) } else { local_phone_end(b, i) };
            if let Some(end) = end {
                return Some((i, end));
            }
        }
        i += 1;
    }
    None
}

/// A phone number starts a word: not inside a word, an id (`BK-2024...`, `v1.2`), a
/// token, or a longer run of digit groups (`4111 555 123 4567`).
fn phone_may_start(b: &[u8], i: usize) -> bool {
    let Some(i_prev) = i.checked_sub(1) else { return true };
    let prev = b[i_prev];
    if prev.is_ascii_alphanumeric() || matches!(prev, b'_' | b'+' | b'-' | b'.' | b'/' | b',' | b'*') {
        return false;
    }
    // `+` and `(` open a number whatever comes before the space; a bare digit after
    // `digits ` may be one more group of a longer number.
    if matches!(prev, b' ' | b'\t') && i_prev > 0 && b[i].is_ascii_digit() {
        let before = b[i_prev - 1];
        // After a token the text once held a number (what the token replaced), so a
        // second pass must judge this start as the first did.
        let after_token = i_prev >= TOKEN_LEN && token_at(b, i_prev - TOKEN_LEN);
        return !(before.is_ascii_digit() || before == b'*' || after_token);
    }
    true
}

/// Whether a phone number may end before `b[end]`: not followed by a word character
/// or by more digit groups.
fn phone_may_end(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'@' | b'*') => false,
        Some(_) => {
            separator_len(b, end).is_none()
                && !masked_card_after_separator(b, end)
                && !(b[end] == b',' && b.get(end + 1).is_some_and(u8::is_ascii_digit))
        }
    }
}

/// A separator and then a masked card (at least 9 stars and its last 4 digits): the digit
/// groups the text held before a first pass masked them, so a second pass judges the
/// number before it as the first did.
fn masked_card_after_separator(b: &[u8], i: usize) -> bool {
    let n = b[i.min(b.len())..]
        .iter()
        .take(MAX_SEPARATOR + 1)
        .take_while(|c| matches!(c, b' ' | b'\t' | b'-' | b'_' | b'.' | b'/'))
        .count();
    if n == 0 || n > MAX_SEPARATOR {
        return false;
    }
    let rest = &b[i + n..];
    let stars = rest.iter().take_while(|&&c| c == b'*').count();
    stars >= MIN_CARD - 4 && rest.len() >= stars + 4 && rest[stars..stars + 4].iter().all(u8::is_ascii_digit)
}

/// End of an E.164 number at `b[start] == '+'`: a non-zero digit, then 8 to 15 digits in
/// all, ending at the end of a digit group, with single spaces, `-`, `.` or a parenthesised group between them
/// (`+82 10-1234-5678`, `+1 (415) 555-2671`, `+14155552671`).
fn e164_end(b: &[u8], start: usize) -> Option<usize> {
    let mut k = start + 1;
    if !matches!(b.get(k), Some(b'1'..=b'9')) {
        return None;
    }
    let mut digits = 0;
    // The `+` marks the start for certain but not the end: text may go on with more
    // digit groups (`+14155552671 4111 1111 ...`), so the longest group end within the
    // E.164 length wins.
    let mut best = None;
    loop {
        while b.get(k).is_some_and(u8::is_ascii_digit) {
            digits += 1;
            k += 1;
        }
        if digits > MAX_E164 {
            break;
        }
        if digits >= MIN_E164
            && !matches!(b.get(k), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'@' | b'*'))
        {
            best = Some(k);
        }
        // A joiner: one separator, optionally around a parenthesised group.
        let mut j = k;
        if matches!(b.get(j), Some(b' ' | b'-' | b'.')) {
            j += 1;
        }
        let mut grouped = 0;
        if b.get(j) == Some(&b'(') {
            grouped = b[j + 1..].iter().take(5).take_while(|c| c.is_ascii_digit()).count();
            if grouped == 0 || b.get(j + 1 + grouped) != Some(&b')') {
                break;
            }
            j += grouped + 2;
            if matches!(b.get(j), Some(b' ' | b'-' | b'.')) {
                j += 1;
            }
        }
        if j > k && b.get(j).is_some_and(u8::is_ascii_digit) {
            digits += grouped;
            k = j;
        } else {
            break;
        }
    }
    best
}

/// End of a local number at `b[start]` (a digit or `(`): three digit groups joined by
/// one kind of single separator, the last of four digits and the middle of three or
/// four, and a first group that is a trunk-prefixed area code (`010-1234-5678`,
/// `02 123 4567`), a North American area code (`415-555-2671`, `415.555.2671`) or any
/// parenthesised area code (`(02) 123-4567`, `(415) 555-2671`).
///
/// Dates (`2024-02-05`), booking ids (`BK-20240205-000123`), versions (`1.2.3`), UUIDs,
/// amounts and card numbers fail the group lengths or the word boundaries.
fn local_phone_end(b: &[u8], start: usize) -> Option<usize> {
    let digits_at = |k: usize| b[k.min(b.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut k = start;
    let sep_after_area = if b[k] == b'(' {
        let n = digits_at(k + 1);
        if !(1..=4).contains(&n) || b.get(k + 1 + n) != Some(&b')') {
            return None;
        }
        k += n + 2;
        if b.get(k) == Some(&b' ') {
            k += 1;
        }
        None
    } else {
        let n = digits_at(k);
        let trunk = b[k] == b'0' && (2..=3).contains(&n);
        let nanp = n == 3 && matches!(b[k], b'2'..=b'9');
        if !(trunk || nanp) {
            return None;
        }
        k += n;
        let sep = *b.get(k).filter(|c| matches!(c, b' ' | b'-' | b'.'))?;
        k += 1;
        Some(sep)
    };
    let middle = digits_at(k);
    if !(3..=4).contains(&middle) {
        return None;
    }
    k += middle;
    let sep = *b.get(k).filter(|c| matches!(c, b' ' | b'-' | b'.'))?;
    if sep_after_area.is_some_and(|s| s != sep) {
        return None;
    }
    k += 1;
    if digits_at(k) != 4 {
        return None;
    }
    k += 4;
    phone_may_end(b, k).then_some(k)
}

/// Magnetic-stripe track data written into text: track 1 (`%B<PAN>^NAME^...?`) and track
/// 2 (`;<PAN>=<expiry, service code, discretionary data>?`). The whole track becomes
/// `[redacted]`: the discretionary data can hold the PIN verification value and the
/// CVV, which the card mask alone would leave.
fn redact_tracks(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut edit = Splice::default();
    let mut i = 0;
    while let Some(off) = memchr2(b'%', b';', &b[i..]) {
        let at = i + off;
        i = at + 1;
        let pan_start = if b[at] == b'%' {
            if !matches!(b.get(at + 1), Some(b'B' | b'b')) {
                continue;
            }
            at + 2
        } else {
            at + 1
        };
        let pan = b[pan_start.min(b.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
        let field_sep = if b[at] == b'%' { b'^' } else { b'=' };
        if !(MIN_CARD..=MAX_CARD).contains(&pan) || b.get(pan_start + pan) != Some(&field_sep) {
            continue;
        }
        let mut end = pan_start + pan + 1;
        if field_sep == b'^' {
            // Name, then `^`, then the rest: stop at the end sentinel, or at what cannot
            // be on a stripe (a quote, a line break) when the sentinel was cut off.
            while end < b.len() && !matches!(b[end], b'?' | b'"' | b'\n' | b'\r') && end - at < 79 {
                end += 1;
            }
        } else {
            while b.get(end).is_some_and(|c| c.is_ascii_digit() || *c == b'=') && end - at < 40 {
                end += 1;
            }
        }
        if b.get(end) == Some(&b'?') {
            end += 1;
        }
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        edit.replace(s, at, end, REMOVED);
        i = end;
    }
    edit.finish(s)
}

// ---------------------------------------------------------------------------------------
// Card numbers
// ---------------------------------------------------------------------------------------

// `u32::is_multiple_of` needs Rust 1.87; the workspace declares 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Masks every card number in `s` (see the module doc). `None` when there is none.
fn mask_cards(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if !has_card_length_run(b) {
        return None;
    }
    let mut edit = Splice::default();
    // Per run: digit values, their byte offsets, and the digit index where each group
    // starts. Reused across runs.
    let mut digits: Vec<u8> = Vec::new();
    let mut offsets: Vec<usize> = Vec::new();
    let mut groups: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'p' && token_at(b, i) {
            i += TOKEN_LEN;
            continue;
        }
        if !c.is_ascii_digit() {
            i += 1;
            continue;
        }
        digits.clear();
        offsets.clear();
        groups.clear();
        let mut j = i;
        loop {
            groups.push(digits.len());
            while j < b.len() && b[j].is_ascii_digit() {
                digits.push(b[j] - b'0');
                offsets.push(j);
                j += 1;
            }
            match separator_len(b, j) {
                Some(n) => j += n,
                None => break,
            }
        }
        if digits.len() >= MIN_CARD {
            for (start, end) in card_windows(&digits, &groups) {
                let mut masked = String::with_capacity(end - start);
                masked.extend(std::iter::repeat_n('*', end - start - 4));
                masked.extend(digits[end - 4..end].iter().map(|d| char::from(b'0' + d)));
                edit.replace(s, offsets[start], offsets[end - 1] + 1, &masked);
            }
        }
        i = j;
    }
    edit.finish(s)
}

/// Whether `b` holds a run of at least [`MIN_CARD`] digits, with separators (see
/// [`separator_len`]) allowed between digits: the runs [`mask_cards`] examines, found
/// without allocating. Most strings with many digits (UUIDs, phone numbers, timestamps) have no
/// such run, and this is the whole cost of redaction for them. It over-approximates
/// (it does not skip PII tokens), so it never hides a run the scan would mask.
fn has_card_length_run(b: &[u8]) -> bool {
    // Most strings have fewer digits than a card in all: a count the compiler
    // vectorizes rules them out before the run-by-run walk.
    if b.iter().filter(|c| c.is_ascii_digit()).count() < MIN_CARD {
        return false;
    }
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            run += 1;
            if run >= MIN_CARD {
                return true;
            }
            i += 1;
        } else if let (true, Some(n)) = (run > 0, separator_len(b, i)) {
            i += n;
        } else {
            run = 0;
            i += 1;
        }
    }
    false
}

/// Longest separator run a person puts between the digit groups of a card number
/// (`4111 - 1111`).
const MAX_SEPARATOR: usize = 3;

/// Length of the separator at `b[i]` when a digit follows it: one to [`MAX_SEPARATOR`]
/// spaces, tabs, `-`, `_`, `.` or `/` in any mix (`4111  1111`, `4111--1111`,
/// `4111_1111`, `4111.1111`, `4111/1111`, `4111 - 1111`). These are the ways people
/// write a card number by hand; a longer gap or any other character ends the run.
fn separator_len(b: &[u8], i: usize) -> Option<usize> {
    let n = b[i.min(b.len())..]
        .iter()
        .take(MAX_SEPARATOR + 1)
        .take_while(|c| matches!(c, b' ' | b'\t' | b'-' | b'_' | b'.' | b'/'))
        .count();
    (n > 0 && n <= MAX_SEPARATOR && b.get(i + n).is_some_and(u8::is_ascii_digit)).then_some(n)
}

/// Digit ranges of one run to mask, merged and in order.
///
/// Greedy from the left: at each start (a group start, or the last four digits of the
/// previous mask, which stay visible and could begin a new card with the groups after
/// them), take the longest Luhn-valid window of 13..=19 digits ending on a group end.
/// Every window the output could show has then been tried, so one pass is enough and a
/// second pass changes nothing.
fn card_windows(digits: &[u8], groups: &[usize]) -> Vec<(usize, usize)> {
    let n = digits.len();
    let mut masks: Vec<(usize, usize)> = Vec::new();
    let mut st = 0;
    // After a mask, `st` sits on its visible last four digits, which the mask joined
    // into one group: separators inside them no longer count.
    let mut joined_until = 0;
    loop {
        // Group starts after `st` are also the ends of the groups before them.
        let first = groups.partition_point(|&g| g <= st);
        let mut best = None;
        for end in groups[first..].iter().copied().chain(std::iter::once(n)) {
            let len = end - st;
            if len > MAX_CARD {
                break;
            }
            if len >= MIN_CARD && card_shaped(st, end, joined_until, groups) && luhn_valid(&digits[st..end]) {
                best = Some(end);
            }
        }
        if let Some(end) = best {
            match masks.last_mut() {
                Some(last) if last.1 > st => last.1 = end,
                _ => masks.push((st, end)),
            }
            st = end - 4;
            joined_until = end;
        } else {
            match groups.get(first) {
                Some(&g) => st = g,
                None => return masks,
            }
        }
    }
}

/// Whether the window `st..end` is grouped as cards are printed: one unbroken run, or
/// groups of 3 to 6 digits (4-4-4-4, 4-6-5, 4-4-4-4-3). Without this, ids such as
/// `BK-20240205-000123` (8 + 6 digits, Luhn-valid one time in ten) would lose digits.
fn card_shaped(st: usize, end: usize, joined_until: usize, groups: &[usize]) -> bool {
    let mut previous = st;
    for &boundary in groups.iter().filter(|&&g| g > st && g < end && g >= joined_until) {
        if !(3..=6).contains(&(boundary - previous)) {
            return false;
        }
        previous = boundary;
    }
    previous == st || (3..=6).contains(&(end - previous))
}

/// A number whose written form holds a card number becomes the masked string.
fn mask_number(n: &Number) -> Option<String> {
    // Integers below 4e12 are left alone: 13-digit values from 1e12 are epoch
    // milliseconds (2001..2096), one in ten of which passes Luhn; masking them would turn
    // numbers into strings. Only obsolete 13-digit cards starting 1-3 share that range.
    let small = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u < 4_000_000_000_000,
        (None, Some(i)) => i.unsigned_abs() < 4_000_000_000_000,
        _ => false,
    };
    if small {
        return None;
    }
    let mut buf = NumBuf::default();
    if write!(buf, "{n}").is_err() {
        return mask_cards(&n.to_string());
    }
    mask_cards(buf.as_str())
}

/// Stack buffer for a number's text (at most 24 bytes for an `f64`, 20 for an integer).
struct NumBuf {
    buf: [u8; 48],
    len: usize,
}

impl Default for NumBuf {
    fn default() -> Self {
        NumBuf { buf: [0; 48], len: 0 }
    }
}

impl NumBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for NumBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn r() -> Redactor {
        Redactor::new(b"test key")
    }

    fn text(s: &str) -> String {
        r().redact_text(s).into_owned()
    }

    fn event(v: Value) -> Value {
        let Value::Object(mut map) = v else { panic!("not an object") };
        r().redact_event(&mut map);
        Value::Object(map)
    }

    // What must never appear in output is judged by `testkit::pii`, written apart from
    // this module so that it can see this module's misses.
    use testkit::pii::{find_card, find_email, luhn as luhn_ref};

    fn no_secret_keys(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().all(|(k, v)| {
                let k = k.to_lowercase();
                let card_secret =
                    ["pin", "track1", "track2", "track_data", "pin_block", "pinblock"].contains(&k.as_str());
                !(k.contains("cvv") || k.contains("cvc") || k.contains("security_code") || card_secret)
                    && no_secret_keys(v)
            }),
            Value::Array(a) => a.iter().all(no_secret_keys),
            _ => true,
        }
    }

    #[test]
    fn the_reference_checkers_find_what_they_should() {
        assert!(find_card("card 4111 1111 1111 1111 ok").is_some());
        assert!(find_card("4111111111111112").is_none());
        assert!(find_email("mail Bob.Smith+x@mail.example.com now").is_some());
        assert!(find_email("pkg@1.2.3 and @timestamp").is_none());
    }

    // ---- Tokens and keys ----

    #[test]
    fn a_token_is_pii_and_24_lowercase_hex_digits_of_a_keyed_hmac() {
        let t = r().token("bob@example.com");
        assert_eq!(t.len(), 28);
        assert!(is_token(&t), "{t}");
        assert_eq!(t, r().token("bob@example.com"));
        assert_ne!(t, r().token("alice@example.com"));
        assert_ne!(t, Redactor::new(b"another key").token("bob@example.com"));
    }

    #[test]
    fn the_token_matches_hmac_sha256_of_the_value() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let t = Redactor::new(b"Jefe").token("what do ya want for nothing?");
        assert_eq!(t, "pii_5bdcc146bf60754e6a042426");
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let shown = format!("{:?}", Redactor::new(b"super-secret-key"));
        assert_eq!(shown, "Redactor { .. }");
    }

    #[test]
    fn from_env_uses_the_development_key_only_when_the_variable_is_unset() {
        // Reads the environment without changing it: other tests run in parallel.
        let (redactor, is_dev) = Redactor::from_env();
        let unset = std::env::var_os("TIX_PII_KEY").is_none_or(|v| v.is_empty());
        assert_eq!(is_dev, unset);
        if unset {
            assert_eq!(redactor.token("x"), Redactor::new(DEV_KEY).token("x"));
        }
    }

    // ---- Card numbers ----

    #[test]
    fn a_card_number_in_text_keeps_only_its_last_four_digits() {
        for (input, want) in [
            ("4111111111111111", "************1111"),
            ("paid with 4111 1111 1111 1111.", "paid with ************1111."),
            ("card=4111-1111-1111-1111;", "card=************1111;"),
            ("mixed 4111 1111-1111 1111 end", "mixed ************1111 end"),
            ("amex 378282246310005", "amex ***********0005"),
            ("13 digits 4222222222222", "13 digits *********2222"),
            ("two 4111111111111111 and 5500 0000 0000 0004", "two ************1111 and ************0004"),
            ("x4111111111111111y", "x************1111y"),
        ] {
            assert_eq!(text(input), want, "{input}");
        }
    }

    #[test]
    fn a_nineteen_digit_card_is_masked() {
        let digits = "601100099013942400";
        let check = (0..10).map(|d| format!("{digits}{d}")).find(|c| luhn_ref(c)).unwrap();
        assert_eq!(text(&format!("n {check} end")), format!("n {}{} end", "*".repeat(15), &check[15..]));
    }

    #[test]
    fn booking_ids_whose_digits_pass_luhn_are_left_alone() {
        // 20240205000001 is Luhn-valid, but 8 + 6 digits is not how cards are printed.
        assert!(luhn_ref("20240205000001"));
        assert_eq!(text("BK-20240205-000001"), "BK-20240205-000001");
        assert_eq!(text("order 20240205 000001"), "order 20240205 000001");
    }

    #[test]
    fn digit_runs_that_are_not_card_numbers_are_left_alone() {
        for input in [
            "4111111111111112",       // Luhn-invalid
            "411111111111",           // 12 digits
            "41111111111111111111",   // 20 digits, one group
            "4111    1111 1111 1111", // four spaces are a gap, not a separator
            "4111,1111,1111,1111",    // commas separate numbers, not card groups
            "order 12345, seat 17, 2024-02-05T10:11:12Z",
        ] {
            assert!(matches!(r().redact_text(input), Cow::Borrowed(_)), "{input}");
        }
    }

    #[test]
    fn a_phone_followed_by_a_masked_card_is_judged_as_before_the_mask() {
        // The first pass sees more digit groups after `0020` (no phone) and masks them as a
        // card; the second must read the stars as those groups, or it would tokenize now.
        for input in ["0000000000000+1 (200) 000-0020 53000 - 00011 - 0003", "x (02) 123-4567 4111 1111 1111 1111"] {
            let once = text(input);
            assert_eq!(r().redact_text(&once), once, "{input:?}");
        }
    }

    #[test]
    fn a_card_with_any_separator_a_person_types_is_masked() {
        for input in [
            "4111  1111  1111  1111",
            "4111--1111--1111--1111",
            "4111_1111_1111_1111",
            "4111.1111.1111.1111",
            "4111/1111/1111/1111",
            "4111 - 1111 - 1111 - 1111",
            "4111\t1111\t1111\t1111",
            "4111 1111-1111_1111",
            "4111./1111 _1111  1111",
            "4111  1111 1111 1111",
        ] {
            assert_eq!(text(&format!("card {input}.")), "card ************1111.", "{input:?}");
        }
        assert_eq!(text("amex 3782.822463.10005"), "amex ***********0005");
        assert_eq!(text("x 2024/02/05 4111/1111/1111/1111"), "x 2024/02/05 ************1111");
    }

    #[test]
    fn dotted_and_slashed_ids_dates_and_amounts_keep_their_digits() {
        for input in [
            "BK-20240205-000123",
            "BK_20240205_000001",
            "20240205.000001",
            "2024/02/05 10:11:12",
            "05.02.2024",
            "amount 1234567.89",
            "ip 192.168.100.200",
            "v10.4.1234",
            "2cd8ceb5-ba47-4957-a824-f8775b40112a",
        ] {
            assert!(matches!(r().redact_text(input), Cow::Borrowed(_)), "{input}");
        }
    }

    #[test]
    fn a_card_after_a_date_or_a_quantity_is_still_masked() {
        assert_eq!(text("on 2024-02-05 4111 1111 1111 1111"), "on 2024-02-05 ************1111");
        assert_eq!(text("qty 2 4111-1111-1111-1111"), "qty 2 ************1111");
    }

    #[test]
    fn epoch_milliseconds_that_pass_luhn_stay_numbers() {
        // 1707127200003 passes Luhn; as an integer it is a time, not a card.
        assert!(luhn_ref("1707127200003"));
        assert_eq!(event(json!({"created_at": 1707127200003u64})), json!({"created_at": 1707127200003u64}));
    }

    #[test]
    fn a_card_number_given_as_a_json_number_becomes_a_masked_string() {
        let out = event(json!({"ref": 4111111111111111u64, "neg": -4111111111111111i64, "n": 12, "f": 12.5}));
        assert_eq!(out, json!({"ref": "************1111", "neg": "-************1111", "n": 12, "f": 12.5}));
    }

    #[test]
    fn a_float_whose_digits_hold_a_card_number_is_masked() {
        let out = event(json!({"f": 0.4111111111111111}));
        assert_eq!(out["f"], "0.************1111");
    }

    #[test]
    fn only_runs_of_card_length_reach_the_card_scan() {
        for (text, expected) in [
            ("2cd8ceb5-ba47-4957-a824-f8775b40112a", false),
            ("+49 30 90182002", false),
            ("2024-02-05T00:00:02.788Z", false),
            ("411111111111", false),
            ("4111111111111", true),
            ("4111 1111 1111 1111", true),
            ("4111-1111-1111-1", true),
            ("1 2 3 4 5 6 7 8 9 0 1 2 3", true),
            ("4111  1111 1111 1111", true),
            ("4111 -1111-1111-1111", true),
            ("4111    1111 1111 1111", false),
            ("card 4111111111111111.", true),
        ] {
            assert_eq!(has_card_length_run(text.as_bytes()), expected, "{text}");
        }
    }

    #[test]
    fn a_pii_token_is_not_mistaken_for_a_card_number() {
        let token = "pii_4111111111111111abcdefab";
        assert!(is_token(token));
        assert_eq!(text(&format!("id {token} end")), format!("id {token} end"));
    }

    // ---- E-mail addresses ----

    #[test]
    fn an_email_address_anywhere_in_a_string_becomes_the_token_of_its_lowercase() {
        let want = format!("contact {} now", r().token("bob.smith+tix@mail.example.com"));
        assert_eq!(text("contact Bob.Smith+tix@Mail.Example.COM now"), want);
        let t = r().token("a@b.io");
        assert_eq!(text("<a@b.io>,a@b.io."), format!("<{t}>,{t}."));
        assert_eq!(text("jörg@exämple.de"), r().token("jörg@exämple.de"));
        assert_eq!(text("𞸡&0@-.AA"), format!("𞸡&{}", r().token("0@-.aa")));
    }

    #[test]
    fn chained_addresses_become_one_token() {
        // Tokenising only the first would let the token's last hex digit become the
        // local part of the second.
        let out = text("x 0@a.aa0@a.Aa y");
        assert_eq!(out, format!("x {} y", r().token("0@a.aa0@a.aa")));
    }

    #[test]
    fn strings_with_at_signs_that_are_not_addresses_are_left_alone() {
        for input in ["@timestamp", "pkg@1.2.3", "user@localhost", "a@b.c", "@ example.com", "x@.com", "x@-"] {
            assert!(matches!(r().redact_text(input), Cow::Borrowed(_)), "{input}");
        }
    }

    // ---- Fields named like personal data ----

    #[test]
    fn email_and_phone_fields_become_tokens_of_their_value() {
        let t = |s: &str| json!(r().token(s));
        let out = event(json!({
            "email": "Bob@Example.com",
            "customer_email": " bob@example.com ",
            "E_Mail": "not an address",
            "phone": "+1 555-123-4567",
            "mobileNumber": 15551234567u64,
            "phones": ["+44 20 7946 0958", "+1 555 0100", null],
            "contact": {"phone": {"home": "555-0101", "verified": true}},
            "email_verified": true,
        }));
        assert_eq!(out["email"], t("bob@example.com"));
        assert_eq!(out["customer_email"], t("bob@example.com"));
        assert_eq!(out["E_Mail"], t("not an address"));
        assert_eq!(out["phone"], t("+1 555-123-4567"));
        assert_eq!(out["mobileNumber"], t("15551234567"));
        assert_eq!(out["phones"], json!([t("+44 20 7946 0958"), t("+1 555 0100"), null]));
        assert_eq!(out["contact"]["phone"], json!({"home": t("555-0101"), "verified": true}));
        assert_eq!(out["email_verified"], true);
    }

    #[test]
    fn cvv_cvc_and_security_code_fields_are_removed_at_any_depth() {
        let out = event(json!({
            "cvv": "123",
            "payment": {"method": "card", "card_CVC": 123, "Security_Code": "9"},
            "items": [{"cvv2": 1, "keep": 1}],
            "phone": {"cvv": "1"},
        }));
        assert_eq!(out, json!({"payment": {"method": "card"}, "items": [{"keep": 1}], "phone": {}}));
    }

    #[test]
    fn a_map_with_many_keys_is_redacted_like_a_small_one() {
        let mut doc = Map::new();
        for i in 0..100 {
            doc.insert(format!("k{i}"), json!(i));
        }
        doc.insert("z_phone".into(), json!("555"));
        doc.insert("z_cvv".into(), json!("123"));
        r().redact_event(&mut doc);
        assert_eq!(doc.len(), 101);
        assert_eq!(doc["z_phone"], json!(r().token("555")));
        assert_eq!(doc["k99"], 99);
    }

    #[test]
    fn keys_are_never_redacted() {
        let out = event(json!({"bob@example.com": 1, "4111111111111111": 2}));
        assert_eq!(out, json!({"bob@example.com": 1, "4111111111111111": 2}));
    }

    #[test]
    fn redaction_reaches_any_depth() {
        let out = event(json!({"a": [[{"b": {"c": ["x 4111111111111111", "bob@example.com"]}}]]}));
        let s = out.to_string();
        assert!(find_card(&s).is_none() && find_email(&s).is_none(), "{s}");
    }

    #[test]
    fn known_fields_are_redacted_like_any_other() {
        let out = event(json!({"ts": "2024-02-05T10:11:12.345Z", "message": "card 4111111111111111", "amount": 1250}));
        assert_eq!(out, json!({"ts": "2024-02-05T10:11:12.345Z", "message": "card ************1111", "amount": 1250}));
    }

    // ---- Text that embeds JSON ----

    #[test]
    fn json_pairs_in_text_are_redacted_like_event_fields() {
        let raw = r#"{"ts":"x","email":"Bob@Example.com","phone":5551234,"cvv":"123","card_cvc":[1,2],"phones":["555 1", {"n":"2"}],"note":"ok"}"#;
        let t = |s: &str| r().token(s);
        let want = format!(
            r#"{{"ts":"x","email":"{}","phone":"{}","cvv":"[redacted]","card_cvc":["[redacted]","[redacted]"],"phones":["{}", {{"n":"{}"}}],"note":"ok"}}"#,
            t("bob@example.com"),
            t("5551234"),
            t("555 1"),
            t("2"),
        );
        assert_eq!(text(raw), want);
    }

    #[test]
    fn json_pairs_in_broken_or_truncated_text_are_still_redacted() {
        let out = text(r#"{"phone": "+1 555 0100", "ts": oops, "cvv": "12"#);
        assert!(!out.contains("555") && !out.contains("\"12"), "{out}");
        let out = text(r#"{"phone": ["+1 555 0100", "+1 555 0"#);
        assert!(!out.contains("555"), "{out}");
    }

    #[test]
    fn escaped_json_values_are_decoded_before_tokenising() {
        let out = text(r#"{"email":"bob\u0040example.com"}"#);
        assert_eq!(out, format!(r#"{{"email":"{}"}}"#, r().token("bob@example.com")));
    }

    #[test]
    fn a_message_that_embeds_json_has_its_pii_pairs_redacted() {
        let out = event(json!({"message": r#"payload {"mobile": "07700 900123", "cvc": 999}"#}));
        let s = out["message"].as_str().unwrap();
        assert!(!s.contains("07700") && !s.contains("999"), "{s}");
    }

    #[test]
    fn hostile_nesting_in_text_never_overflows_the_stack() {
        let raw = format!(r#"{{"phone": {}"x"{}}}"#, "[".repeat(500_000), "]".repeat(500_000));
        let out = text(&raw);
        assert!(out.contains("pii_") && !out.contains("\"x\""));
    }

    #[test]
    fn text_without_anything_to_redact_is_borrowed() {
        for input in ["", "plain words", "seat A12, 3 tickets", r#"{"venue":"Olympic Hall","amount":12}"#] {
            assert!(matches!(r().redact_text(input), Cow::Borrowed(_)), "{input}");
        }
    }

    // ---- Raw dead-letter lines ----

    #[test]
    fn redact_raw_replaces_invalid_utf8_and_redacts_before_truncating() {
        let raw = b"\xff card 4111 1111 1111 1111 tail";
        assert_eq!(r().redact_raw(raw, 1000), "\u{fffd} card ************1111 tail");
        // The card straddles the cut: redacting first means no digit of it leaks.
        assert_eq!(r().redact_raw(raw, 14), "\u{fffd} card *****");
    }

    #[test]
    fn redact_raw_cuts_at_a_char_boundary() {
        let out = r().redact_raw("ééé".as_bytes(), 3);
        assert_eq!(out, "é");
    }

    #[test]
    fn redact_raw_masks_a_card_number_that_the_cut_itself_creates() {
        // 17 digits, not a card; its first 16 are.
        let raw = b"id 41111111111111112";
        assert!(matches!(r().redact_text("id 41111111111111112"), Cow::Borrowed(_)));
        assert_eq!(r().redact_raw(raw, 19), "id ************1111");
    }

    // ---- Phone numbers in text ----

    #[test]
    fn phone_numbers_in_text_become_tokens_of_the_number_as_written() {
        for (before, phone, after) in [
            ("call ", "+82 10-1234-5678", " now"),
            ("sms to ", "+14155552671", "."),
            ("tel:", "+1 (415) 555-2671", ""),
            ("(", "+44 20 7946 0958", ")"),
            ("휴대폰 ", "010-1234-5678", " 로"),
            ("office ", "(02) 123-4567", ", ext 12"),
            ("", "02-123-4567", ""),
            ("us ", "415-555-2671", ""),
            ("card ************1111 ", "+82 10-1234-5678", ""),
            ("mail ", "+14155552671", " 12345 and more"),
            ("card 4111 ", "(02) 123-4567", ""),
            ("us ", "(415) 555-2671", ""),
            ("dots ", "415.555.2671", ""),
            ("kr ", "031 123 4567", ""),
            ("intl ", "+82.10.1234.5678", ""),
            (r#"{"note":""#, "010-9876-5432", r#""}"#),
        ] {
            let input = format!("{before}{phone}{after}");
            assert_eq!(text(&input), format!("{before}{}{after}", r().token(phone)), "{input}");
        }
    }

    #[test]
    fn a_phone_field_and_the_same_number_in_text_get_the_same_token() {
        let out = event(json!({"phone": "+82 10-1234-5678", "message": "callback +82 10-1234-5678"}));
        let t = r().token("+82 10-1234-5678");
        assert_eq!(out, json!({"phone": t, "message": format!("callback {t}")}));
    }

    #[test]
    fn numbers_that_are_not_phone_numbers_are_left_alone() {
        for input in [
            "BK-20240205-000123",
            "booking BK-20240205-000123 ok",
            "2024-02-05",
            "2024-02-05T10:11:12.345Z",
            "2024-02-05T10:11:12+09:00",
            "at 10:11:12 on 05.02.2024",
            "20240205T101112",
            "amount 1,234,567.89 KRW",
            "amount 12345678.90",
            "total +1250.00",
            "delta +12,500",
            "seat A-12, row 13, seats 12-14",
            "seat R12-S5 gate 3",
            "version 1.2.3",
            "v10.4.1234",
            "build 2.10.1234-rc1",
            "2cd8ceb5-ba47-4957-a824-f8775b40112a",
            "12345678-1234-1234-1234-123456789012",
            "ip 192.168.100.200",
            "qty 3 x 12000 = 36000",
            "latency 1234 ms of 5678",
            "ticket 100-200",
            "ids 123456789 and 987654321",
            "trace 1234-5678-9012",
            "EPOCH 1707127200003",
            "pii_0123456789abcdef01234567 555-123-4567",
            "4111111111111111 555-123-4567",
        ] {
            let out = text(input);
            assert!(!out.contains("pii_") || input.contains("pii_"), "{input} -> {out}");
            assert!(out.matches("pii_").count() == input.matches("pii_").count(), "{input} -> {out}");
        }
    }

    // ---- Track data and PINs ----

    #[test]
    fn track_and_pin_fields_are_removed_at_any_depth_in_any_case() {
        let out = event(json!({
            "track1": "%B4111111111111111^DOE/JOHN^25121010000000000000?",
            "Track2": ";4111111111111111=25121010000000000000?",
            "track_data": "x",
            "payment": {"PIN": "1234", "pin_block": "0412AC89ABCDEF", "PinBlock": "y", "trackData": "z", "card_pin": 1234},
            "items": [{"track_3": "q", "keep": 1}],
            "shipping": "express",
            "mapping": "m",
            "tracking_id": "TRK-1",
            "track_name": "Seoul live",
            "pinned": true,
            "spin": 1,
        }));
        assert_eq!(
            out,
            json!({
                "payment": {},
                "items": [{"keep": 1}],
                "shipping": "express",
                "mapping": "m",
                "tracking_id": "TRK-1",
                "track_name": "Seoul live",
                "pinned": true,
                "spin": 1,
            })
        );
    }

    #[test]
    fn track_and_pin_pairs_in_text_are_redacted() {
        let out = text(r#"{"pin":"1234","pinBlock":"0412AC89","track2":";4111111111111111=2512101?","ok":"x"}"#);
        assert_eq!(out, r#"{"pin":"[redacted]","pinBlock":"[redacted]","track2":"[redacted]","ok":"x"}"#);
    }

    #[test]
    fn magnetic_track_data_in_text_is_removed_whole() {
        for (input, want) in [
            ("swipe %B4111111111111111^DOE/JOHN^25121010000000000000? ok", "swipe [redacted] ok"),
            ("swipe ;4111111111111111=25121010000000000000? ok", "swipe [redacted] ok"),
            ("cut %B4111111111111111^DOE/JOHN^2512101", "cut [redacted]"),
            ("cut ;4111111111111111=2512101", "cut [redacted]"),
            ("both %B5500000000000004^A/B^2512?;5500000000000004=2512?", "both [redacted][redacted]"),
        ] {
            assert_eq!(text(input), want, "{input}");
        }
        // Not track data: the card rule still applies to what is left.
        assert_eq!(text("50% off; 4111111111111111=x"), "50% off; ************1111=x");
        assert!(matches!(r().redact_text("a;b %B12^x"), Cow::Borrowed(_)));
    }

    // ---- Properties ----

    /// A Luhn-valid card number of 13..=19 digits, written plain, grouped by four, or
    /// with a separator after every digit group of random size.
    fn card() -> impl Strategy<Value = String> {
        (proptest::collection::vec(0u8..10, 12..=18), 0usize..4, proptest::collection::vec(1usize..6, 20)).prop_map(
            |(mut digits, style, sizes)| {
                let check = (0..10u8)
                    .find(|d| {
                        let mut all = digits.clone();
                        all.push(*d);
                        luhn_valid(&all)
                    })
                    .unwrap_or(0);
                digits.push(check);
                let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                match style {
                    0 => s,
                    1 | 2 => {
                        let sep = [" ", "-", "  ", "--", "_", ".", "/", " - ", "_-"][(sizes[0] + style) % 9];
                        s.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(sep)
                    }
                    _ => {
                        let mut out = String::new();
                        let mut rest = s.as_str();
                        for (i, n) in sizes.iter().enumerate() {
                            if rest.is_empty() {
                                break;
                            }
                            let (head, tail) = rest.split_at((*n).min(rest.len()));
                            if !out.is_empty() {
                                out.push_str([" ", "-", "_", ".", "/", "  ", " - "][(i + n) % 7]);
                            }
                            out.push_str(head);
                            rest = tail;
                        }
                        out
                    }
                }
            },
        )
    }

    /// A phone number in one of the forms found in free text.
    fn phone() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\+[1-9][0-9]{1,2} [0-9]{2}-[0-9]{4}-[0-9]{4}",
            "\\+[1-9][0-9]{9,13}",
            "\\+1 \\([2-9][0-9]{2}\\) [0-9]{3}-[0-9]{4}",
            "0[1-9][0-9]?-[0-9]{3,4}-[0-9]{4}",
            "\\(0[1-9]\\) [0-9]{3}-[0-9]{4}",
            "[2-9][0-9]{2}\\.[0-9]{3}\\.[0-9]{4}",
        ]
    }

    fn email() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9._%+-]{0,10}@[a-zA-Z0-9-]{1,8}(\\.[a-z0-9]{1,6}){0,2}\\.[a-zA-Z]{2,4}"
    }

    /// Arbitrary printable text with cards, addresses and digit noise spliced in.
    fn noisy_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                3 => "\\PC{0,12}",
                2 => card(),
                2 => email(),
                1 => "[0-9 ./_-]{0,24}",
                1 => phone(),
                1 => card().prop_map(|c| format!("%B{}^DOE/J^2512101?", c.replace(|ch: char| !ch.is_ascii_digit(), ""))),
                1 => "[@. a-z0-9]{0,12}",
                1 => Just("pii_".to_owned()),
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat())
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-z_]{1,8}",
            1 => prop::sample::select(vec![
                "email", "Phone", "mobile_number", "e_mail", "cvv", "card_cvc", "Security_Code", "pin", "track2", "pin_block",
            ])
                .prop_map(str::to_owned),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            4 => noisy_text().prop_map(Value::String),
            1 => any::<u64>().prop_map(|n| json!(n)),
            1 => any::<i64>().prop_map(|n| json!(n)),
            1 => card().prop_map(|c| json!(c.replace([' ', '-'], "").parse::<u64>().unwrap_or(0))),
            1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => Just(Value::Null),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Integers below 4e12 are deliberately left alone (epoch milliseconds, see
    /// `mask_number`); the checker drops them so it tests everything else.
    fn without_epoch_millis(value: Value) -> Map<String, Value> {
        fn strip(value: Value) -> Value {
            match value {
                Value::Number(n) if n.as_u64().is_some_and(|u| u < 4_000_000_000_000) => Value::Null,
                Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
                Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, strip(v))).collect()),
                other => other,
            }
        }
        match strip(value) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn json_object() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::vec((key(), json_value()), 0..8).prop_map(|kv| kv.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn redacted_events_hold_no_card_number_no_address_and_no_cvv(mut doc in json_object()) {
            r().redact_event(&mut doc);
            let out = Value::Object(without_epoch_millis(Value::Object(doc)));
            let s = serde_json::to_string(&out).unwrap();
            prop_assert!(find_card(&s).is_none(), "card {:?} in {}", find_card(&s), s);
            prop_assert!(find_email(&s).is_none(), "address {:?} in {}", find_email(&s), s);
            prop_assert!(no_secret_keys(&out), "{}", s);
        }

        #[test]
        fn a_phone_number_between_words_never_survives(
            before in "[a-z]{0,6}[ :(]",
            number in phone(),
            after in "[ ).,;][a-z]{0,6}",
        ) {
            let out = text(&format!("{before}{number}{after}"));
            prop_assert_eq!(out, format!("{before}{}{after}", r().token(&number)));
        }

        #[test]
        fn redacted_text_holds_no_card_number_and_no_address(input in noisy_text()) {
            let out = text(&input);
            prop_assert!(find_card(&out).is_none(), "card {:?} in {:?}", find_card(&out), out);
            prop_assert!(find_email(&out).is_none(), "address {:?} in {:?}", find_email(&out), out);
        }

        #[test]
        fn redacted_raw_lines_are_clean_and_short_enough(doc in json_object(), max_len in 0usize..400) {
            let raw = serde_json::to_vec(&Value::Object(doc)).unwrap();
            let out = r().redact_raw(&raw, max_len);
            prop_assert!(out.len() <= max_len);
            prop_assert!(find_card(&out).is_none(), "card {:?} in {:?}", find_card(&out), out);
            prop_assert!(find_email(&out).is_none(), "address {:?} in {:?}", find_email(&out), out);
        }

        #[test]
        fn redacting_an_event_twice_changes_nothing_more(mut doc in json_object()) {
            r().redact_event(&mut doc);
            let once = doc.clone();
            r().redact_event(&mut doc);
            prop_assert_eq!(once, doc);
        }

        #[test]
        fn redacting_text_twice_changes_nothing_more(input in noisy_text()) {
            let once = text(&input);
            let twice = r().redact_text(&once);
            prop_assert!(matches!(twice, Cow::Borrowed(_)), "{:?} -> {:?}", once, twice);
        }

        #[test]
        fn redacting_text_never_panics(input in "\\PC{0,64}|[\"\\[\\]{}:, 0-9a-z@.\\\\-]{0,64}") {
            let _ = text(&input);
            let _ = r().redact_raw(input.as_bytes(), 7);
        }
    }
}
