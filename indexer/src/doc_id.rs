//! Document identity (ARCHITECTURE.md, "Document identity"): the typed 128-bit
//! [`DocId`] and every hash that makes one. The ingester names documents with these ids,
//! the tantivy backend answers `event_id:X` and `_id:X` through them, and Elasticsearch
//! gets them as `_id` (32 lowercase hex digits, formatted at that edge only).
//!
//! An event with an `event_id` has an id derived from that id alone; any other event one
//! derived from its source's identity and its ordinal in the source
//! ([`position_id`]); a completed source is recorded under its checkpoint key
//! ([`checkpoint_key`]). What a source is, and how it writes itself into the hash, is the
//! ingester's (`ingest::id::SourceIdentity`, through [`SourceEncoding`]).
//!
//! Every id is the first 16 bytes of a hash over a domain-separated, length-prefixed
//! encoding, so no two kinds of input (or two splits of the same bytes into fields) can
//! hash alike. The encoding is a storage format: changing a byte of it re-ids every
//! document ever indexed, which turns every re-ingest into duplicates. Golden vectors in
//! `ingest::id` pin it.
//!
//! Event ids are keyed: HMAC-SHA256 under the id key, itself HMAC-SHA256(PII key,
//! `"tix-logs/v2/document-id-key"`), the PII key being `TIX_PII_KEY` ([`EventIdKey`]).
//! An `event_id` may be an e-mail address or a card number, taken before redaction:
//! unkeyed, anyone reading the store could confirm a guess by hashing it, and an
//! `event_id:X` query cannot be answered without the key either. The same key gives the
//! same ids (dedupe holds across re-ingest); another key gives other ids.
//!
//! Position ids and checkpoint keys are plain SHA-256: their input is the source's
//! identity and an ordinal, never event content, and the store already shows the source
//! by name in its checkpoints and dead-letter entries. A key would hide nothing, and
//! would re-id every event without `event_id` ever indexed.
//!
//! The encoding (`le64`/`le128`: little-endian; `str`: `le64(byte length) ++ UTF-8`):
//! - event id (HMAC under the id key): `"tix-logs/v2/event\0" ++ str(event_id)`
//! - position: `"tix-logs/v1/position\0" ++ source ++ le64(ordinal)`
//! - checkpoint key: `"tix-logs/v1/source\0" ++ source`
//! - source: written by its [`SourceEncoding`] with [`IdHasher`]'s `str`, `u64`, `i128`
//! - verbatim id (an id given as text that is not 32 lowercase hex digits, see
//!   [`verbatim_id`]): `"tix-logs/v1/verbatim-id\0" ++ str(text)`

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What the id key is derived under from the PII key: the same secret also keys the
/// PII tokens, and this label keeps the two uses apart.
const ID_KEY_LABEL: &[u8] = b"tix-logs/v2/document-id-key";
/// v2: keyed. (v1 was an unkeyed SHA-256 of this domain and the id.)
const EVENT_DOMAIN: &[u8] = b"tix-logs/v2/event\0";
const POSITION_DOMAIN: &[u8] = b"tix-logs/v1/position\0";
const SOURCE_DOMAIN: &[u8] = b"tix-logs/v1/source\0";
const VERBATIM_DOMAIN: &[u8] = b"tix-logs/v1/verbatim-id\0";

/// A 128-bit document id. Display and Debug: 32 lowercase hex digits, the form used as
/// the Elasticsearch `_id` and shown in hits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(pub [u8; 16]);

impl DocId {
    pub fn as_u128(&self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    pub fn from_u128(v: u128) -> Self {
        DocId(v.to_be_bytes())
    }

    /// The id as the stores spell it: 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.hex_digits().iter().map(|&b| b as char).collect()
    }

    /// Without the formatting machinery: at an edge this runs once per record, and 16
    /// `write!`s cost 1.5% of ingest CPU.
    fn hex_digits(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, byte) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(byte >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
        }
        out
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.hex_digits();
        f.write_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a document id is 32 hex digits")]
pub struct ParseDocIdError;

/// Parses the 32-hex form (either case), e.g. an `_id` read back from a backend.
impl FromStr for DocId {
    type Err = ParseDocIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.as_bytes();
        if digits.len() != 32 {
            return Err(ParseDocIdError);
        }
        let nibble = |b: u8| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => Err(ParseDocIdError),
        };
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = (nibble(digits[2 * i])? << 4) | nibble(digits[2 * i + 1])?;
        }
        Ok(DocId(out))
    }
}

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

    /// The id of an event with this `event_id`: the first 16 bytes of
    /// HMAC-SHA256(id key, `"tix-logs/v2/event\0" ++ le64(byte length) ++ event_id`).
    pub fn doc_id(&self, event_id: &str) -> DocId {
        let mut mac = self.mac.clone();
        mac.update(EVENT_DOMAIN);
        mac.update(&(event_id.len() as u64).to_le_bytes());
        mac.update(event_id.as_bytes());
        first_16(&mac.finalize().into_bytes())
    }
}

/// The hash a source identity writes itself into ([`SourceEncoding`]), with the
/// encoding's primitives.
pub struct IdHasher(Sha256);

impl IdHasher {
    /// A tag, as is (a domain or a variant's name with its `\0`).
    pub fn tag(&mut self, tag: &[u8]) {
        self.0.update(tag);
    }

    /// `str`: `le64(byte length) ++ UTF-8`.
    pub fn str(&mut self, s: &str) {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }

    /// `le64`.
    pub fn u64(&mut self, v: u64) {
        self.0.update(v.to_le_bytes());
    }

    /// `le128`.
    pub fn i128(&mut self, v: i128) {
        self.0.update(v.to_le_bytes());
    }

    fn start(domain: &[u8]) -> IdHasher {
        let mut hasher = IdHasher(Sha256::new());
        hasher.tag(domain);
        hasher
    }

    fn finish(self) -> DocId {
        first_16(&self.0.finalize())
    }
}

/// A source of records as it enters ids and checkpoint keys: two reads of the same
/// bytes must write the same encoding, and a changed source a different one.
pub trait SourceEncoding {
    fn encode(&self, hasher: &mut IdHasher);
}

/// Id of an event without `event_id`: its source and its ordinal in that source.
pub fn position_id<S: SourceEncoding + ?Sized>(source: &S, ordinal: u64) -> DocId {
    let mut hasher = IdHasher::start(POSITION_DOMAIN);
    source.encode(&mut hasher);
    hasher.u64(ordinal);
    hasher.finish()
}

/// The key a completed source is recorded under.
pub fn checkpoint_key<S: SourceEncoding + ?Sized>(source: &S) -> DocId {
    let mut hasher = IdHasher::start(SOURCE_DOMAIN);
    source.encode(&mut hasher);
    hasher.finish()
}

/// The 128-bit value of an id given as text that is not a [`DocId`] in its canonical
/// form (32 lowercase hex digits): an `_id:X` query's other text, and the ids of the
/// benchmark's reference indexer. Two such texts collide no more often than two ids do.
pub fn verbatim_id(text: &str) -> DocId {
    domain_hash(VERBATIM_DOMAIN, text)
}

/// The first 16 bytes of SHA-256 over `domain` and the length-prefixed `text`.
fn domain_hash(domain: &[u8], text: &str) -> DocId {
    let mut hasher = IdHasher::start(domain);
    hasher.str(text);
    hasher.finish()
}

fn first_16(digest: &[u8]) -> DocId {
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    DocId(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(EventIdKey::new(TEST_KEY).doc_id("evt-1").0, want[..16]);
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

    #[test]
    fn ids_print_as_32_lowercase_hex_digits_and_parse_back() {
        let id = EventIdKey::new(TEST_KEY).doc_id("evt-0001");
        let hex = id.to_string();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(format!("{id:?}"), hex);
        assert_eq!(id.to_hex(), hex);
        assert_eq!(hex.parse::<DocId>(), Ok(id));
        assert_eq!(hex.to_uppercase().parse::<DocId>(), Ok(id));
        assert_eq!(DocId::from_u128(id.as_u128()), id);
        assert_eq!(id.as_u128().to_be_bytes(), id.0);
        for bad in ["", "abc", &hex[1..], &format!("{hex}0"), &hex.replace(|_: char| true, "g")] {
            assert_eq!(bad.parse::<DocId>(), Err(ParseDocIdError), "{bad}");
        }
    }
}
