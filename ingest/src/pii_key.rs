//! The PII key (`TIX_PII_KEY`): the one secret behind PII tokens and document ids, and
//! the rules every entry point applies to it, in one place: the Lambda, `tix-logs ingest`
//! and `reconcile --ingest` (which redact and name documents) and `tix-logs search` (which
//! answers `event_id:X` through the keyed id).
//!
//! - Every key is at least [`MIN_PII_KEY_BYTES`] long.
//! - The public development key stands in for a missing key only when everything goes to
//!   a local directory (a local tantivy index and a local dead-letter directory): its
//!   tokens and ids can be recomputed by anyone, so data written with it anywhere else
//!   would be as good as unredacted.

use std::fmt;

use indexer::doc_id::EventIdKey;

use crate::redact::Redactor;

/// The shortest PII key accepted (256 bits, HMAC-SHA256's own strength). A short key can
/// be found by trying keys against a token or an id, and then every token and id is as
/// good as the clear value.
pub const MIN_PII_KEY_BYTES: usize = 32;

/// The environment variable holding the key.
pub const PII_KEY_VAR: &str = "TIX_PII_KEY";

/// How to make a key, for messages.
const HOW_TO_SET: &str = "set TIX_PII_KEY to a random key of at least 32 bytes (e.g. `export \
     TIX_PII_KEY=$(openssl rand -base64 48)`) and keep it: tokens and document ids derive from it";

/// Refuses a key shorter than [`MIN_PII_KEY_BYTES`]; `name` says where it came from.
/// The message gives the length, never the key.
pub fn check_length(key: &[u8], name: &str) -> Result<(), String> {
    if key.len() < MIN_PII_KEY_BYTES {
        return Err(format!(
            "{name} is {} bytes long; at least {MIN_PII_KEY_BYTES} are needed: store a random key, e.g. \
             `openssl rand -base64 48`",
            key.len()
        ));
    }
    Ok(())
}

/// The redactor (and so the id key) an ingest run uses.
pub struct IngestKey {
    pub redactor: Redactor,
    /// The public development key stands in: the caller warns.
    pub development: bool,
}

impl fmt::Debug for IngestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestKey").field("development", &self.development).finish_non_exhaustive()
    }
}

/// The key of an ingest run from the value of `TIX_PII_KEY` (`None` or empty: unset).
/// `remote` names the first destination that is not a local directory (`--backend
/// elasticsearch`, an `s3://` dead letter, `--event`); with one, a missing key is refused
/// instead of replaced by the development key.
pub fn for_ingest(value: Option<&[u8]>, remote: Option<&str>) -> Result<IngestKey, String> {
    match value.filter(|v| !v.is_empty()) {
        Some(key) => {
            check_length(key, PII_KEY_VAR)?;
            Ok(IngestKey { redactor: Redactor::new(key), development: false })
        }
        None => match remote {
            Some(destination) => Err(format!(
                "TIX_PII_KEY is not set, and {destination} is not a local directory: the public development key \
                 is only for a local index and dead-letter directory. {HOW_TO_SET}"
            )),
            None => Ok(IngestKey { redactor: Redactor::new(DEVELOPMENT_KEY), development: true }),
        },
    }
}

/// [`for_ingest`] with the process's `TIX_PII_KEY`.
pub fn for_ingest_from_env(remote: Option<&str>) -> Result<IngestKey, String> {
    let value = std::env::var_os(PII_KEY_VAR);
    for_ingest(value.as_ref().map(|v| v.as_encoded_bytes()), remote)
}

/// The id key for `event_id:X` queries from the value of `TIX_PII_KEY`: `None` when unset
/// or too short, and those queries are then refused with a message saying so. Never the
/// development key: an index written with it needs `TIX_PII_KEY` set to it to be asked.
pub fn event_id_key(value: Option<&[u8]>) -> Option<EventIdKey> {
    value.filter(|key| check_length(key, PII_KEY_VAR).is_ok()).map(EventIdKey::new)
}

/// [`event_id_key`] with the process's `TIX_PII_KEY`.
pub fn event_id_key_from_env() -> Option<EventIdKey> {
    let value = std::env::var_os(PII_KEY_VAR);
    event_id_key(value.as_ref().map(|v| v.as_encoded_bytes()))
}

/// Must equal the development key in `redact` (tested there through `Redactor::from_env`
/// and here against its tokens). Public by construction.
const DEVELOPMENT_KEY: &[u8] = b"tix-logs development PII key: public, never use in production";

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a-pii-key-for-the-tests-of-32-bytes-0123";

    #[test]
    fn keys_shorter_than_32_bytes_are_refused_everywhere_without_showing_them() {
        for short in [&b"Zq9x"[..], b"test-key-for-cli-tests", &KEY[..31]] {
            for remote in [None, Some("--backend elasticsearch")] {
                let error = for_ingest(Some(short), remote).expect_err("short key");
                assert!(error.contains(&format!("is {} bytes long", short.len())), "{error}");
                assert!(error.contains("at least 32"), "{error}");
                assert!(!error.contains(std::str::from_utf8(short).unwrap()), "{error}");
            }
            assert!(event_id_key(Some(short)).is_none());
        }
        assert!(check_length(&KEY[..32], "k").is_ok());
    }

    #[test]
    fn the_development_key_is_only_for_local_destinations() {
        for missing in [None, Some(&b""[..])] {
            let local = for_ingest(missing, None).expect("local");
            assert!(local.development);
            assert_eq!(local.redactor.token("x"), Redactor::new(DEVELOPMENT_KEY).token("x"));
            for remote in ["--backend elasticsearch", "--dead-letter s3://b/dl/", "--event"] {
                let error = for_ingest(missing, Some(remote)).expect_err(remote);
                assert!(
                    error.contains(remote) && error.contains("TIX_PII_KEY") && error.contains("openssl"),
                    "{error}"
                );
            }
        }
        let set = for_ingest(Some(KEY), Some("--event")).expect("a real key goes anywhere");
        assert!(!set.development);
        assert_eq!(set.redactor.token("x"), Redactor::new(KEY).token("x"));
        assert!(event_id_key(None).is_none() && event_id_key(Some(b"")).is_none());
    }

    #[test]
    fn the_development_key_is_the_redactors() {
        // Redactor::from_env falls back to its own copy when the variable is unset.
        if std::env::var_os(PII_KEY_VAR).is_none_or(|v| v.is_empty()) {
            let (redactor, development) = Redactor::from_env();
            assert!(development);
            assert_eq!(redactor.token("x"), Redactor::new(DEVELOPMENT_KEY).token("x"));
        }
    }

    #[test]
    fn ingest_and_search_derive_the_same_ids() {
        let ingest = for_ingest(Some(KEY), None).unwrap();
        let search = event_id_key(Some(KEY)).unwrap();
        assert_eq!(crate::id::event_id_key(&ingest.redactor).doc_id("e-1"), search.doc_id("e-1"));
    }
}
