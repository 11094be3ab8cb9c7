//! How tantivy keeps a document id ([`IdKey`]): a 128-bit number, whose halves are the
//! `_id_high`/`_id_low` columns and which the segment's id set ([`super::id_set`]) holds.

use crate::doc_id::{verbatim_id, DocId, EventIdKey};

/// The id as a 128-bit integer when it is in the canonical form (32 lowercase hex
/// digits, as every [`DocId`] is written); `None` for any other string.
fn canonical_hex_id(id: &str) -> Option<u128> {
    let canonical = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    canonical.then(|| u128::from_str_radix(id, 16).ok()).flatten()
}

/// Marks an id kept verbatim: `0xFF` never occurs in UTF-8.
const VERBATIM: u8 = 0xFF;

/// A document id as the tantivy backend keeps it: 128 bits.
///
/// - A [`DocId`] (what the ingester writes), or its canonical text (32 lowercase hex
///   digits, as an `_id:X` query gives it), is its own value.
/// - Any other text (the benchmark's reference indexer names documents by their
///   `event_id`; an `_id:X` query may ask for anything) has its
///   [`verbatim_id`] as its value, so two ids collide no more often than two
///   canonical ids do; it is stored as `0xFF` and its UTF-8, with a second `0xFF` when
///   that would make 16 bytes, so hits give it back as it was.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Canonical(u128),
    Verbatim { value: u128, stored: Box<[u8]> },
}

impl From<DocId> for IdKey {
    fn from(id: DocId) -> IdKey {
        IdKey::Canonical(id.as_u128())
    }
}

impl IdKey {
    /// The key of a document id given as text.
    pub fn of(id: &str) -> IdKey {
        if let Some(value) = canonical_hex_id(id) {
            return IdKey::Canonical(value);
        }
        let value = verbatim_id(id).as_u128();
        let mut stored = Vec::with_capacity(id.len() + 2);
        stored.push(VERBATIM);
        stored.extend_from_slice(id.as_bytes());
        if stored.len() == 16 {
            stored.push(VERBATIM);
        }
        IdKey::Verbatim { value, stored: stored.into_boxed_slice() }
    }

    /// The key of the document an event with this `event_id` has under `key`.
    pub fn of_event_id(key: &EventIdKey, event_id: &str) -> IdKey {
        IdKey::from(key.doc_id(event_id))
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
        self.stored(&mut [0; 16]).to_vec()
    }

    /// [`IdKey::stored_bytes`] without allocating (once per record): `buf` holds a
    /// canonical id's 16 bytes.
    pub fn stored<'a>(&'a self, buf: &'a mut [u8; 16]) -> &'a [u8] {
        match self {
            IdKey::Canonical(value) => {
                *buf = value.to_be_bytes();
                buf
            }
            IdKey::Verbatim { stored, .. } => stored,
        }
    }

    /// The document id that [`IdKey::stored_bytes`] wrote; `None` for bytes it cannot
    /// have written.
    pub fn id_from_stored(bytes: &[u8]) -> Option<String> {
        if let Ok(raw) = <[u8; 16]>::try_from(bytes) {
            return Some(DocId(raw).to_hex());
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

    const TEST_KEY: &[u8] = b"ids-test-key-of-at-least-32-bytes-0123";

    fn stored_round_trip(id: &str) -> Option<String> {
        IdKey::id_from_stored(&IdKey::of(id).stored_bytes())
    }

    #[test]
    fn canonical_ids_are_their_own_value_and_others_are_hashed_and_stored_verbatim() {
        let ids = EventIdKey::new(TEST_KEY);
        let hex = ids.doc_id("evt-1").to_hex();
        let key = IdKey::of(&hex);
        assert_eq!(key, IdKey::of_event_id(&ids, "evt-1"));
        assert_eq!(key, IdKey::from(ids.doc_id("evt-1")), "the text of a DocId is that DocId");
        assert_eq!(key.stored_bytes(), ids.doc_id("evt-1").0.to_vec());
        assert_eq!(key.value(), u128::from_str_radix(&hex, 16).unwrap());
        assert_eq!(key.high().to_be_bytes(), ids.doc_id("evt-1").0[..8]);
        assert_eq!(key.low().to_be_bytes(), ids.doc_id("evt-1").0[8..]);
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
            prop_assert_eq!(key, IdKey::from(DocId::from_u128(value)));
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
