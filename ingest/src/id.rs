//! Document identity (ARCHITECTURE.md, "Document identity"): the id of an event with an
//! `event_id` derives from that id alone; otherwise from its source's identity and its
//! ordinal in the source. Also the checkpoint key that records a completed source.
//!
//! What a source is ([`SourceIdentity`]) and how it writes itself into an id: the
//! hashing, its domains and the typed [`DocId`] are `indexer::doc_id`'s, which owns every
//! domain hash. The encoding is a storage format: changing a byte of it re-ids every
//! document ever indexed, which turns every re-ingest into duplicates. The golden
//! vectors in the tests pin it.
//!
//! A source writes itself as (`le64`/`le128`: little-endian; `str`: `le64(byte length)
//! ++ UTF-8`): `"s3\0" ++ str(bucket) ++ str(key) ++ str(version without surrounding
//! quotes)`, `"file\0" ++ str(path) ++ le64(size) ++ le128(mtime_ns)`, or
//! `"stream\0" ++ str(name) ++ str(nonce)`.

use indexer::doc_id::{self, IdHasher, SourceEncoding};
pub use indexer::doc_id::{DocId, EventIdKey, ParseDocIdError};

/// What a source is, for ids and checkpoints: two reads of the same bytes must produce
/// the same identity, and a changed object or file a different one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceIdentity {
    /// `version` is the object's ETag, whichever way the object arrived: an event
    /// notification (`eTag`; on a versioned bucket a `HeadObject` of the event's version
    /// when the event has no ETag), an EventBridge event (`etag`) or a listing. So one
    /// object has one identity, and a backfill over objects the Lambda ingested skips
    /// them. Surrounding quotes are ignored, since S3 quotes the ETag in
    /// `HeadObject`/`ListObjects` but not in event notifications. Two versions of a key
    /// with the same bytes have the same ETag and are one source: their records are
    /// the same, stored once.
    ///
    /// Before this rule, the Lambda put the version id here when the event carried one
    /// (a versioned bucket), and a listing the ETag. Checkpoints and position ids the
    /// Lambda wrote on a versioned bucket then are keyed by version id: a backfill or
    /// `reconcile --ingest` over those objects sees them as never ingested and indexes
    /// their records without `event_id` a second time (records with `event_id` are not
    /// doubled). Limit such runs to objects written since the change (`--since`), or
    /// re-ingest into a new index. The encoding below did not change; only the value.
    S3 { bucket: String, key: String, version: String },
    /// `path` must be canonical (absolute, symlinks resolved).
    File { path: String, size: u64, mtime_ns: i128 },
    /// A stream read once (stdin): `nonce` tells runs apart.
    Stream { name: String, nonce: String },
}

impl SourceIdentity {
    /// Readable name for dead-letter entries, logs and the audit:
    /// `s3://bucket/key?etag=...` (or `?versionId=...` for a version-id identity
    /// recorded before identities became ETags), the path of a
    /// file, the name of a stream. Not an identifier: use [`Self::checkpoint_key`].
    pub fn display_name(&self) -> String {
        match self {
            SourceIdentity::S3 { bucket, key, version } => {
                let version = unquote(version);
                if version.is_empty() {
                    format!("s3://{bucket}/{key}")
                } else if looks_like_etag(version) {
                    format!("s3://{bucket}/{key}?etag={version}")
                } else {
                    format!("s3://{bucket}/{key}?versionId={version}")
                }
            }
            SourceIdentity::File { path, .. } => path.clone(),
            SourceIdentity::Stream { name, .. } => name.clone(),
        }
    }

    /// Stable 32-hex hash of the identity, used to record a completed source.
    pub fn checkpoint_key(&self) -> String {
        doc_id::checkpoint_key(self).to_string()
    }
}

impl SourceEncoding for SourceIdentity {
    fn encode(&self, h: &mut IdHasher) {
        match self {
            SourceIdentity::S3 { bucket, key, version } => {
                h.tag(b"s3\0");
                h.str(bucket);
                h.str(key);
                h.str(unquote(version));
            }
            SourceIdentity::File { path, size, mtime_ns } => {
                h.tag(b"file\0");
                h.str(path);
                h.u64(*size);
                h.i128(*mtime_ns);
            }
            SourceIdentity::Stream { name, nonce } => {
                h.tag(b"stream\0");
                h.str(name);
                h.str(nonce);
            }
        }
    }
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v)
}

/// An S3 ETag: 32 hex digits, with `-N` for multipart uploads. Version ids are
/// base64-like and practically never look like that; it only affects the display.
fn looks_like_etag(v: &str) -> bool {
    let (hash, parts) = v.split_once('-').unwrap_or((v, "1"));
    hash.len() == 32
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && !parts.is_empty()
        && parts.bytes().all(|b| b.is_ascii_digit())
}

/// The id key of the redactor's PII key: ids and PII tokens share one secret.
pub fn event_id_key(redactor: &crate::redact::Redactor) -> EventIdKey {
    EventIdKey::from_pii_mac(redactor.keyed_mac())
}

/// Id of an event that carries an `event_id`: the same event re-uploaded anywhere is
/// one document (under the same key).
pub fn doc_id_for_event_id(key: &EventIdKey, event_id: &str) -> DocId {
    key.doc_id(event_id)
}

/// Id of an event without `event_id`: its source and its ordinal in that source (as the
/// pipeline counts records; that counting is part of the id's stability too).
pub fn doc_id_for_position(source: &SourceIdentity, ordinal: u64) -> DocId {
    doc_id::position_id(source, ordinal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redactor;
    use proptest::prelude::*;

    const KEY: &[u8] = b"id-golden-vector-key-of-32-bytes-0123456789";

    fn keyed(event_id: &str) -> DocId {
        doc_id_for_event_id(&EventIdKey::new(KEY), event_id)
    }

    fn s3(bucket: &str, key: &str, version: &str) -> SourceIdentity {
        SourceIdentity::S3 { bucket: bucket.into(), key: key.into(), version: version.into() }
    }

    fn file(path: &str, size: u64, mtime_ns: i128) -> SourceIdentity {
        SourceIdentity::File { path: path.into(), size, mtime_ns }
    }

    // Golden vectors. These pin the id encoding: if one of them changes, every document
    // ever indexed gets a new id and every re-ingest duplicates it. Never update them to
    // make a test pass; add a new domain (v3) instead. (v1, unkeyed, gave
    // 5600f3ea824692e9810973ad19ac8b4f for evt-0001 under any key.)
    #[test]
    fn event_ids_match_the_golden_vectors() {
        for (event_id, want) in [
            ("", "46cd4060d23584656b8945f228a80281"),
            ("evt-0001", "33d4a918bbe13105d6701ca8e65c04bf"),
            ("2f1c7a5e-9b7d-4c1e-8a7e-1d2b3c4d5e6f", "6643f0df1722644ecfc25ad2e36bf993"),
            ("bökning/ü", "d2a2958d653cad153ab9165c017331cb"),
        ] {
            assert_eq!(keyed(event_id).to_string(), want, "{event_id:?}");
        }
    }

    #[test]
    fn event_ids_are_keyed_by_the_redactors_pii_key() {
        let from_redactor = event_id_key(&Redactor::new(KEY));
        assert_eq!(doc_id_for_event_id(&from_redactor, "evt-0001"), keyed("evt-0001"), "same key, same id");
        let other = event_id_key(&Redactor::new(b"another-key-of-at-least-32-bytes-0123456"));
        assert_ne!(doc_id_for_event_id(&other, "evt-0001"), keyed("evt-0001"), "another key, another id");
        // A reader without the key: the unkeyed v1 hash of a guess is not the id.
        assert_ne!(keyed("evt-0001").to_string(), "5600f3ea824692e9810973ad19ac8b4f");
    }

    #[test]
    fn position_ids_and_checkpoint_keys_match_the_golden_vectors() {
        let cases = [
            (
                s3("tix-logs", "2024/02/05/bookings.ndjson.gz", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"),
                0,
                "24a5b12bf6409b8ccab86a4b0b7a6e8b",
                "8ed5c442c53ace2b5cba2638e32fd6bf",
            ),
            (
                s3("tix-logs", "a key with spaces+plus", "\"9b2cf535f27731c974343645a3985328\""),
                17,
                "e62299517019eba1866bdffadc4f1354",
                "89034240fa85d83948cd431ca44e9eef",
            ),
            (
                file("/var/log/tix/bookings.ndjson", 1_048_576, 1_707_127_872_123_456_789),
                41,
                "f54601e5fa701db02a8f4b7ee04bca7a",
                "d7e6acfffc3625921e9299456f1daf3a",
            ),
            (
                SourceIdentity::Stream { name: "-".into(), nonce: "run-1".into() },
                u64::MAX,
                "7235a16a3edad48f34daa707d3d23877",
                "d8b2291a47259cf13c6d1ba657391722",
            ),
        ];
        for (source, ordinal, want_id, want_key) in cases {
            assert_eq!(doc_id_for_position(&source, ordinal).to_string(), want_id, "{source:?}");
            assert_eq!(source.checkpoint_key(), want_key, "{source:?}");
        }
    }

    #[test]
    fn an_etag_with_or_without_quotes_is_the_same_identity() {
        let quoted = s3("b", "k", "\"9b2cf535f27731c974343645a3985328\"");
        let bare = s3("b", "k", "9b2cf535f27731c974343645a3985328");
        assert_eq!(quoted.checkpoint_key(), bare.checkpoint_key());
        assert_eq!(doc_id_for_position(&quoted, 3), doc_id_for_position(&bare, 3));
    }

    #[test]
    fn display_names_are_readable() {
        assert_eq!(s3("b", "dir/k.gz", "v1").display_name(), "s3://b/dir/k.gz?versionId=v1");
        assert_eq!(
            s3("b", "k", "\"9b2cf535f27731c974343645a3985328-12\"").display_name(),
            "s3://b/k?etag=9b2cf535f27731c974343645a3985328-12"
        );
        assert_eq!(s3("b", "k", "").display_name(), "s3://b/k");
        assert_eq!(file("/var/log/x.ndjson", 1, 2).display_name(), "/var/log/x.ndjson");
        let stream = SourceIdentity::Stream { name: "stdin".into(), nonce: "n".into() };
        assert_eq!(stream.display_name(), "stdin");
    }

    #[test]
    fn field_boundaries_cannot_be_shifted_to_forge_an_id() {
        assert_ne!(s3("ab", "c", "v").checkpoint_key(), s3("a", "bc", "v").checkpoint_key());
        assert_ne!(s3("a", "b", "cv").checkpoint_key(), s3("a", "bc", "v").checkpoint_key());
        let stream = SourceIdentity::Stream { name: "a".into(), nonce: "b".into() };
        let file = file("a", 0, 0);
        assert_ne!(stream.checkpoint_key(), file.checkpoint_key());
    }

    #[test]
    fn event_ids_position_ids_and_checkpoint_keys_live_in_separate_domains() {
        let source = s3("b", "k", "v");
        let position = doc_id_for_position(&source, 0).to_string();
        assert_ne!(position, source.checkpoint_key());
        assert_ne!(position, keyed("b").to_string());
    }

    #[test]
    fn a_changed_file_is_a_new_identity() {
        let base = file("/x", 10, 100);
        for changed in [file("/y", 10, 100), file("/x", 11, 100), file("/x", 10, 101)] {
            assert_ne!(base.checkpoint_key(), changed.checkpoint_key());
            assert_ne!(doc_id_for_position(&base, 0), doc_id_for_position(&changed, 0));
        }
    }

    fn any_source() -> impl Strategy<Value = SourceIdentity> {
        prop_oneof![
            (".{0,12}", ".{0,24}", ".{0,12}").prop_map(|(b, k, v)| s3(&b, &k, &v)),
            (".{0,24}", any::<u64>(), any::<i128>()).prop_map(|(p, s, m)| file(&p, s, m)),
            (".{0,12}", ".{0,12}").prop_map(|(name, nonce)| SourceIdentity::Stream { name, nonce }),
        ]
    }

    /// Two identities that the encoding is meant to tell apart (ETag quotes aside).
    fn same_identity(a: &SourceIdentity, b: &SourceIdentity) -> bool {
        match (a, b) {
            (
                SourceIdentity::S3 { bucket: b1, key: k1, version: v1 },
                SourceIdentity::S3 { bucket: b2, key: k2, version: v2 },
            ) => b1 == b2 && k1 == k2 && unquote(v1) == unquote(v2),
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn ids_are_deterministic(event_id in ".{0,40}", source in any_source(), ordinal in any::<u64>()) {
            prop_assert_eq!(keyed(&event_id), keyed(&event_id.clone()));
            prop_assert_eq!(doc_id_for_position(&source, ordinal), doc_id_for_position(&source.clone(), ordinal));
            prop_assert_eq!(source.checkpoint_key(), source.clone().checkpoint_key());
        }

        #[test]
        fn distinct_event_ids_get_distinct_ids(a in ".{0,40}", b in ".{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(keyed(&a), keyed(&b));
        }

        #[test]
        fn distinct_positions_get_distinct_ids(
            a in any_source(), b in any_source(), i in any::<u64>(), j in any::<u64>(),
        ) {
            prop_assume!(!(same_identity(&a, &b) && i == j));
            prop_assert_ne!(doc_id_for_position(&a, i), doc_id_for_position(&b, j));
            if !same_identity(&a, &b) {
                prop_assert_ne!(a.checkpoint_key(), b.checkpoint_key());
            }
        }
    }
}
