//! Document ids derived from `event_id`: the one function both the ingester (to name
//! documents) and the tantivy backend (to answer `event_id:X` through `_id`) use.
//!
//! Changing the encoding re-ids every document; golden vectors in `ingest::id` pin it.
//!
//! Also how tantivy keeps an id as a term: 16 raw bytes rather than 32 hex characters.
//! One random id per document makes `_id` the largest term dictionary of the index,
//! and building it costs in proportion to the term's length.

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

/// Marks a term that holds an id verbatim: `0xFF` never occurs in UTF-8.
const VERBATIM: u8 = 0xFF;

/// The bytes of the `_id` term of a document id in tantivy. A canonical id is its 16
/// bytes; any other id is `0xFF`, its UTF-8, and a second `0xFF` if that makes 16
/// bytes. So the two forms never meet: a verbatim term is never 16 bytes long.
pub fn id_term_bytes(id: &str) -> Vec<u8> {
    if let Some(value) = canonical_hex_id(id) {
        return value.to_be_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(id.len() + 2);
    out.push(VERBATIM);
    out.extend_from_slice(id.as_bytes());
    if out.len() == 16 {
        out.push(VERBATIM);
    }
    out
}

/// The document id of an `_id` term written by [`id_term_bytes`]; `None` for bytes it
/// cannot have written.
pub fn id_from_term_bytes(bytes: &[u8]) -> Option<String> {
    if let Ok(raw) = <[u8; 16]>::try_from(bytes) {
        return Some(format!("{:032x}", u128::from_be_bytes(raw)));
    }
    let rest = bytes.strip_prefix(&[VERBATIM])?;
    let rest = rest.strip_suffix(&[VERBATIM]).unwrap_or(rest);
    String::from_utf8(rest.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_ids_are_16_bytes_and_others_are_kept_verbatim() {
        let hex = event_doc_id_hex("evt-1");
        assert_eq!(id_term_bytes(&hex), event_doc_id("evt-1").to_vec());
        assert_eq!(id_term_bytes("a1"), b"\xffa1".to_vec());
        assert_eq!(id_term_bytes(&hex.to_uppercase()).len(), 33, "upper case is not canonical");
        assert_eq!(id_term_bytes("fifteen-chars!!").len(), 17, "a verbatim term is never 16 bytes");
    }

    #[test]
    fn bytes_no_id_can_have_written_are_refused() {
        assert_eq!(id_from_term_bytes(b"short"), None);
        assert_eq!(id_from_term_bytes(&[VERBATIM, 0xC3]), None);
    }

    proptest! {
        #[test]
        fn every_id_round_trips(id in "\\PC{0,40}") {
            prop_assert_eq!(id_from_term_bytes(&id_term_bytes(&id)), Some(id));
        }

        #[test]
        fn canonical_ids_round_trip(value in any::<u128>()) {
            let id = format!("{value:032x}");
            prop_assert_eq!(id_term_bytes(&id).len(), 16);
            prop_assert_eq!(id_from_term_bytes(&id_term_bytes(&id)), Some(id));
        }

        #[test]
        fn distinct_ids_have_distinct_terms(a in "[0-9a-f]{32}|\\PC{0,20}", b in "[0-9a-f]{32}|\\PC{0,20}") {
            prop_assume!(a != b);
            prop_assert_ne!(id_term_bytes(&a), id_term_bytes(&b));
        }
    }
}
