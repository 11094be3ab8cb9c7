//! Document ids derived from `event_id`: the one function both the ingester (to name
//! documents) and the tantivy backend (to answer `event_id:X` through `_id`) use.
//!
//! Changing the encoding re-ids every document; golden vectors in `ingest::id` pin it.
//!
//! Also how tantivy keeps an id ([`IdKey`]): a 128-bit number, whose halves are the
//! `_id_high`/`_id_low` columns and which the segment's id set (`id_set`) holds.

use sha2::{Digest, Sha256};

const EVENT_DOMAIN: &[u8] = b"tix-logs/v1/event\0";

/// The 128-bit id of an event with this `event_id`: SHA-256 over a domain tag and the
/// length-prefixed id, first 16 bytes.
pub fn event_doc_id(event_id: &str) -> [u8; 16] {
    domain_hash(EVENT_DOMAIN, event_id)
}

/// The first 16 bytes of SHA-256 over `domain` and the length-prefixed `text`.
fn domain_hash(domain: &[u8], text: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    hasher.update((text.len() as u64).to_le_bytes());
    hasher.update(text.as_bytes());
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The id as the index spells it: 32 lowercase hex digits.
pub fn event_doc_id_hex(event_id: &str) -> String {
    event_doc_id(event_id).iter().map(|b| format!("{b:02x}")).collect()
}

/// The id as a 128-bit integer when it is in the canonical form (32 lowercase hex
/// digits, as the ingester writes every id); `None` for any other string.
fn canonical_hex_id(id: &str) -> Option<u128> {
    let canonical = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    canonical.then(|| u128::from_str_radix(id, 16).ok()).flatten()
}

/// Marks an id kept verbatim: `0xFF` never occurs in UTF-8.
const VERBATIM: u8 = 0xFF;
const VERBATIM_DOMAIN: &[u8] = b"tix-logs/v1/verbatim-id\0";

/// A document id as the tantivy backend keeps it: 128 bits.
///
/// - A canonical id (32 lowercase hex digits, what the ingester writes) is its own value.
/// - Any other id (only tests and the benchmark's reference indexer make them) has the
///   first 128 bits of a SHA-256 of it as its value, so two ids collide no more often
///   than two canonical ids do; it is stored as `0xFF` and its UTF-8, with a second
///   `0xFF` when that would make 16 bytes, so hits give it back as it was.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Canonical(u128),
    Verbatim { value: u128, stored: Box<[u8]> },
}

impl IdKey {
    /// The key of a document id.
    pub fn of(id: &str) -> IdKey {
        if let Some(value) = canonical_hex_id(id) {
            return IdKey::Canonical(value);
        }
        let value = u128::from_be_bytes(domain_hash(VERBATIM_DOMAIN, id));
        let mut stored = Vec::with_capacity(id.len() + 2);
        stored.push(VERBATIM);
        stored.extend_from_slice(id.as_bytes());
        if stored.len() == 16 {
            stored.push(VERBATIM);
        }
        IdKey::Verbatim { value, stored: stored.into_boxed_slice() }
    }

    /// The key of the document an event with this `event_id` has.
    pub fn of_event_id(event_id: &str) -> IdKey {
        IdKey::Canonical(u128::from_be_bytes(event_doc_id(event_id)))
    }

    /// The 128-bit value: what the id set holds and duplicates are found by.
    pub fn value(&self) -> u128 {
        match self {
            IdKey::Canonical(value) | IdKey::Verbatim { value, .. } => *value,
        }
    }

    /// The high 64 bits (the `_id_high` column).
    pub fn high(&self) -> u64 {
        (self.value() >> 64) as u64
    }

    /// The low 64 bits (the `_id_low` column).
    pub fn low(&self) -> u64 {
        self.value() as u64
    }

    /// The whole id as stored with the document: 16 bytes, or the verbatim bytes.
    pub fn stored_bytes(&self) -> Vec<u8> {
        match self {
            IdKey::Canonical(value) => value.to_be_bytes().to_vec(),
            IdKey::Verbatim { stored, .. } => stored.to_vec(),
        }
    }

    /// The document id that [`IdKey::stored_bytes`] wrote; `None` for bytes it cannot
    /// have written.
    pub fn id_from_stored(bytes: &[u8]) -> Option<String> {
        if let Ok(raw) = <[u8; 16]>::try_from(bytes) {
            return Some(format!("{:032x}", u128::from_be_bytes(raw)));
        }
        let rest = bytes.strip_prefix(&[VERBATIM])?;
        let rest = rest.strip_suffix(&[VERBATIM]).unwrap_or(rest);
        String::from_utf8(rest.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stored_round_trip(id: &str) -> Option<String> {
        IdKey::id_from_stored(&IdKey::of(id).stored_bytes())
    }

    #[test]
    fn canonical_ids_are_their_own_value_and_others_are_hashed_and_stored_verbatim() {
        let hex = event_doc_id_hex("evt-1");
        let key = IdKey::of(&hex);
        assert_eq!(key, IdKey::of_event_id("evt-1"));
        assert_eq!(key.stored_bytes(), event_doc_id("evt-1").to_vec());
        assert_eq!(key.value(), u128::from_str_radix(&hex, 16).unwrap());
        assert_eq!(key.high().to_be_bytes(), event_doc_id("evt-1")[..8]);
        assert_eq!(key.low().to_be_bytes(), event_doc_id("evt-1")[8..]);
        assert_eq!(IdKey::of("a1").stored_bytes(), b"\xffa1".to_vec());
        assert_eq!(IdKey::of("a1"), IdKey::of("a1"), "the hash is stable");
        assert_ne!(IdKey::of(&hex.to_uppercase()).value(), key.value(), "upper case is not canonical");
        assert_eq!(IdKey::of("fifteen-chars!!").stored_bytes().len(), 17, "a verbatim id is never stored as 16 bytes");
    }

    #[test]
    fn bytes_no_id_can_have_written_are_refused() {
        assert_eq!(IdKey::id_from_stored(b"short"), None);
        assert_eq!(IdKey::id_from_stored(&[VERBATIM, 0xC3]), None);
    }

    proptest! {
        #[test]
        fn every_id_round_trips(id in "\\PC{0,40}") {
            prop_assert_eq!(stored_round_trip(&id), Some(id));
        }

        #[test]
        fn canonical_ids_round_trip(value in any::<u128>()) {
            let id = format!("{value:032x}");
            let key = IdKey::of(&id);
            prop_assert_eq!(key.value(), value);
            prop_assert_eq!(key.stored_bytes().len(), 16);
            prop_assert_eq!(stored_round_trip(&id), Some(id));
        }

        #[test]
        fn distinct_ids_have_distinct_values(a in "[0-9a-f]{32}|\\PC{0,20}", b in "[0-9a-f]{32}|\\PC{0,20}") {
            prop_assume!(a != b);
            prop_assert_ne!(IdKey::of(&a).value(), IdKey::of(&b).value());
        }

        #[test]
        fn the_halves_make_the_value(value in any::<u128>()) {
            let key = IdKey::Canonical(value);
            prop_assert_eq!((u128::from(key.high()) << 64) | u128::from(key.low()), value);
        }
    }
}
