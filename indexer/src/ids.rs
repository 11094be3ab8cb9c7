//! Document ids derived from `event_id`: the one function both the ingester (to name
//! documents) and the tantivy backend (to answer `event_id:X` through `_id`) use.
//!
//! Changing the encoding re-ids every document; golden vectors in `ingest::id` pin it.
//!
//! Also how tantivy keeps an id ([`IdKey`]): one random id per document makes the id
//! the largest term dictionary of the index, and building that dictionary (an FST) costs
//! in proportion to each term's unshared suffix. So only half of a tix-logs id is a term
//! (8 bytes) and the other half is a column that a lookup checks: for 1M ids, building
//! the dictionary took 1.4 s of CPU instead of 3.1 s with the whole 16 bytes.

use sha2::{Digest, Sha256};

const EVENT_DOMAIN: &[u8] = b"tix-logs/v1/event\0";

/// The 128-bit id of an event with this `event_id`: SHA-256 over a domain tag and the
/// length-prefixed id, first 16 bytes.
pub fn event_doc_id(event_id: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(EVENT_DOMAIN);
    hasher.update((event_id.len() as u64).to_le_bytes());
    hasher.update(event_id.as_bytes());
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

/// A document id as the tantivy backend keeps it.
///
/// - A canonical id (32 lowercase hex digits, what the ingester writes) is 128 bits:
///   its high 64 bits are the dictionary term ([`IdKey::term`]), its low 64 bits a
///   column ([`IdKey::low`]) that a term match is checked against.
/// - Any other id is kept whole, as `0xFF` and its UTF-8, with a second `0xFF` when that
///   would make 8 or 16 bytes. So a verbatim term never looks like a canonical one, and
///   it alone identifies the id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Canonical(u128),
    Verbatim(Box<[u8]>),
}

impl IdKey {
    /// The key of a document id.
    pub fn of(id: &str) -> IdKey {
        if let Some(value) = canonical_hex_id(id) {
            return IdKey::Canonical(value);
        }
        let mut out = Vec::with_capacity(id.len() + 2);
        out.push(VERBATIM);
        out.extend_from_slice(id.as_bytes());
        if out.len() == 8 || out.len() == 16 {
            out.push(VERBATIM);
        }
        IdKey::Verbatim(out.into_boxed_slice())
    }

    /// The key of the document an event with this `event_id` has.
    pub fn of_event_id(event_id: &str) -> IdKey {
        IdKey::Canonical(u128::from_be_bytes(event_doc_id(event_id)))
    }

    /// The dictionary term: 8 bytes for a canonical id, the verbatim bytes otherwise.
    pub fn term(&self) -> Vec<u8> {
        match self {
            IdKey::Canonical(value) => ((value >> 64) as u64).to_be_bytes().to_vec(),
            IdKey::Verbatim(bytes) => bytes.to_vec(),
        }
    }

    /// The half of a canonical id that is not in the term; `None` for a verbatim id.
    pub fn low(&self) -> Option<u64> {
        match self {
            IdKey::Canonical(value) => Some(*value as u64),
            IdKey::Verbatim(_) => None,
        }
    }

    /// The whole id as stored with the document: 16 bytes, or the verbatim bytes.
    pub fn stored_bytes(&self) -> Vec<u8> {
        match self {
            IdKey::Canonical(value) => value.to_be_bytes().to_vec(),
            IdKey::Verbatim(bytes) => bytes.to_vec(),
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
    fn canonical_ids_split_into_a_term_and_a_column_and_others_are_kept_verbatim() {
        let hex = event_doc_id_hex("evt-1");
        let key = IdKey::of(&hex);
        assert_eq!(key, IdKey::of_event_id("evt-1"));
        assert_eq!(key.stored_bytes(), event_doc_id("evt-1").to_vec());
        assert_eq!(key.term(), event_doc_id("evt-1")[..8].to_vec());
        assert_eq!(key.low(), Some(u64::from_be_bytes(event_doc_id("evt-1")[8..].try_into().unwrap())));
        assert_eq!(IdKey::of("a1").term(), b"\xffa1".to_vec());
        assert_eq!(IdKey::of("a1").low(), None);
        assert_eq!(IdKey::of(&hex.to_uppercase()).term().len(), 33, "upper case is not canonical");
        assert_eq!(IdKey::of("seven!!").term().len(), 9, "a verbatim term is never 8 bytes");
        assert_eq!(IdKey::of("fifteen-chars!!").term().len(), 17, "nor 16");
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
            prop_assert_eq!(key.term().len(), 8);
            prop_assert_eq!(key.stored_bytes().len(), 16);
            prop_assert_eq!(stored_round_trip(&id), Some(id));
        }

        #[test]
        fn distinct_ids_differ_in_term_or_column(a in "[0-9a-f]{32}|\\PC{0,20}", b in "[0-9a-f]{32}|\\PC{0,20}") {
            prop_assume!(a != b);
            let (a, b) = (IdKey::of(&a), IdKey::of(&b));
            prop_assert!(a.term() != b.term() || a.low() != b.low());
            prop_assert_eq!(a.term().len() == 8, a.low().is_some(), "only a canonical id has an 8-byte term");
        }

        #[test]
        fn ids_sharing_a_high_half_still_differ(high in any::<u64>(), low_a in any::<u64>(), low_b in any::<u64>()) {
            prop_assume!(low_a != low_b);
            let id = |low: u64| IdKey::of(&format!("{high:016x}{low:016x}"));
            prop_assert_eq!(id(low_a).term(), id(low_b).term());
            prop_assert_ne!(id(low_a).low(), id(low_b).low());
        }
    }
}
