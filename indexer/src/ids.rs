//! Document ids derived from `event_id`: the one keyed function both the ingester (to
//! name documents) and the tantivy backend (to answer `event_id:X` through `_id`) use.
//!
//! The id is keyed (HMAC-SHA256 under a key derived from the PII key, `TIX_PII_KEY`), so
//! a reader of the store without the key cannot confirm a guessed `event_id` (an e-mail
//! address, say) by hashing it, and an `event_id:X` query cannot be answered without the
//! key either. Changing the encoding or the key re-ids every document; golden vectors in
//! `ingest::id` pin the encoding.
//!
//! Also how tantivy keeps an id ([`IdKey`]): a 128-bit number, whose halves are the
//! `_id_high`/`_id_low` columns and which the segment's id set (`id_set`) holds.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What the id key is derived under from the PII key: the same secret also keys the
/// PII tokens, and this label keeps the two uses apart.
const ID_KEY_LABEL: &[u8] = b"tix-logs/v2/document-id-key";
/// v2: keyed. (v1 was an unkeyed SHA-256 of this domain and the id.)
const EVENT_DOMAIN: &[u8] = b"tix-logs/v2/event\0";

/// HMAC-SHA256 of `message` under `key` (RFC 2104): the primitive of [`EventIdKey`].
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The key of event document ids, derived from the PII key. `Debug` never shows it.
#[derive(Clone)]
pub struct EventIdKey {
    /// Already keyed; cloned per id instead of re-deriving the pads.
    mac: HmacSha256,
}

impl fmt::Debug for EventIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventIdKey(<redacted>)")
    }
}

impl EventIdKey {
    /// The id key of a PII key (the bytes of `TIX_PII_KEY`).
    pub fn new(pii_key: &[u8]) -> Self {
        Self::from_derived(hmac_sha256(pii_key, ID_KEY_LABEL))
    }

    /// The same key as [`EventIdKey::new`], from an HMAC-SHA256 state already keyed with
    /// the PII key (the ingester's redactor holds one, not the key's bytes).
    pub fn from_pii_mac(pii_mac: &Hmac<Sha256>) -> Self {
        let mut mac = pii_mac.clone();
        mac.update(ID_KEY_LABEL);
        Self::from_derived(mac.finalize().into_bytes().into())
    }

    fn from_derived(id_key: [u8; 32]) -> Self {
        EventIdKey { mac: <HmacSha256 as Mac>::new_from_slice(&id_key).expect("HMAC accepts any key length") }
    }

    /// The 128-bit id of an event with this `event_id`: the first 16 bytes of
    /// HMAC-SHA256(id key, `"tix-logs/v2/event\0" ++ le64(byte length) ++ event_id`).
    pub fn doc_id(&self, event_id: &str) -> [u8; 16] {
        let mut mac = self.mac.clone();
        mac.update(EVENT_DOMAIN);
        mac.update(&(event_id.len() as u64).to_le_bytes());
        mac.update(event_id.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag[..16]);
        out
    }

    /// The id as the index spells it: 32 lowercase hex digits.
    pub fn doc_id_hex(&self, event_id: &str) -> String {
        format!("{:032x}", u128::from_be_bytes(self.doc_id(event_id)))
    }
}

/// The first 16 bytes of SHA-256 over `domain` and the length-prefixed `text`. Only for
/// verbatim ids ([`IdKey::of`]), which are the caller's own text, not derived from events.
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

    /// The key of the document an event with this `event_id` has under `key`.
    pub fn of_event_id(key: &EventIdKey, event_id: &str) -> IdKey {
        IdKey::Canonical(u128::from_be_bytes(key.doc_id(event_id)))
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

    const TEST_KEY: &[u8] = b"ids-test-key-of-at-least-32-bytes-0123";

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block): the primitive is
    /// HMAC-SHA256 and nothing else.
    #[test]
    fn the_primitive_is_hmac_sha256() {
        let cases: [(&[u8], &[u8], &str); 3] = [
            (&[0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, message, want) in cases {
            let got: String = hmac_sha256(key, message).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, want);
        }
    }

    /// The id is HMAC-SHA256 under a key that is itself HMAC-SHA256(PII key, label),
    /// computed here from the primitive alone.
    #[test]
    fn event_ids_are_the_documented_keyed_hash() {
        let id_key = hmac_sha256(TEST_KEY, b"tix-logs/v2/document-id-key");
        let mut message = b"tix-logs/v2/event\0".to_vec();
        message.extend_from_slice(&5u64.to_le_bytes());
        message.extend_from_slice(b"evt-1");
        let want = hmac_sha256(&id_key, &message);
        assert_eq!(EventIdKey::new(TEST_KEY).doc_id("evt-1"), want[..16]);
    }

    #[test]
    fn the_same_key_gives_the_same_id_and_another_key_another() {
        let a = EventIdKey::new(TEST_KEY);
        assert_eq!(a.doc_id("evt-1"), EventIdKey::new(TEST_KEY).doc_id("evt-1"));
        assert_eq!(a.doc_id("evt-1"), a.clone().doc_id("evt-1"));
        let mut other = TEST_KEY.to_vec();
        other[0] ^= 1;
        assert_ne!(a.doc_id("evt-1"), EventIdKey::new(&other).doc_id("evt-1"));
        assert_ne!(a.doc_id("evt-1"), a.doc_id("evt-2"));
        let pii_mac = <HmacSha256 as Mac>::new_from_slice(TEST_KEY).unwrap();
        assert_eq!(EventIdKey::from_pii_mac(&pii_mac).doc_id("evt-1"), a.doc_id("evt-1"));
    }

    #[test]
    fn the_id_is_not_the_unkeyed_hash_of_the_event_id() {
        // What v1 computed: anyone could recompute it from a guess.
        let unkeyed = domain_hash(b"tix-logs/v1/event\0", "evt-1");
        let keyed = EventIdKey::new(TEST_KEY).doc_id("evt-1");
        assert_ne!(keyed, unkeyed);
        assert_ne!(keyed, domain_hash(EVENT_DOMAIN, "evt-1"));
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert_eq!(format!("{:?}", EventIdKey::new(TEST_KEY)), "EventIdKey(<redacted>)");
    }

    fn stored_round_trip(id: &str) -> Option<String> {
        IdKey::id_from_stored(&IdKey::of(id).stored_bytes())
    }

    #[test]
    fn canonical_ids_are_their_own_value_and_others_are_hashed_and_stored_verbatim() {
        let ids = EventIdKey::new(TEST_KEY);
        let hex = ids.doc_id_hex("evt-1");
        let key = IdKey::of(&hex);
        assert_eq!(key, IdKey::of_event_id(&ids, "evt-1"));
        assert_eq!(key.stored_bytes(), ids.doc_id("evt-1").to_vec());
        assert_eq!(key.value(), u128::from_str_radix(&hex, 16).unwrap());
        assert_eq!(key.high().to_be_bytes(), ids.doc_id("evt-1")[..8]);
        assert_eq!(key.low().to_be_bytes(), ids.doc_id("evt-1")[8..]);
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
