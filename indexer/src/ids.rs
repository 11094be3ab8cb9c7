//! Document ids derived from `event_id`: the one function both the ingester (to name
//! documents) and the tantivy backend (to answer `event_id:X` through `_id`) use.
//!
//! Changing the encoding re-ids every document; golden vectors in `ingest::id` pin it.

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
