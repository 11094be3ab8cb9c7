//! Turning an [`IndexDoc`] into the form its backend writes, before the backend sees it.
//!
//! Building a tantivy document (its fields and its `_source` JSON) reads the whole event
//! tree. The ingest pipeline runs [`DocEncoder::encode`] on the thread that parsed the
//! event, while the tree is still in that core's cache, and on several such threads at
//! once, so the one thread that feeds the index writer only checks ids and adds
//! documents. An encoder holds no backend state: dedupe and writing stay in
//! [`Backend::index_encoded`](crate::Backend::index_encoded).
//!
//! Each backend names its encoder and its document type ([`Backend::Encoder`](crate::Backend::Encoder),
//! [`Backend::Doc`](crate::Backend::Doc)); JSON backends (Elasticsearch, test doubles) use
//! [`JsonEncoder`] and [`IndexDoc`] itself.

use crate::IndexDoc;

/// A document encoded for one backend, as the pipeline carries it from a preparing
/// thread to the writer.
pub trait EncodedDoc: Send + 'static {
    /// The stored event as JSON text: what a dead-letter entry keeps of a document the
    /// backend refused (a backend leaves the documents it refuses in place).
    fn source_json(&self) -> String;
}

/// How a backend wants its documents prepared. Cheap to clone and shareable between
/// threads: each preparing thread holds a clone.
pub trait DocEncoder: Clone + Send + Sync + 'static {
    type Doc: EncodedDoc;
    fn encode(&self, doc: IndexDoc) -> Self::Doc;
}

/// Keeps the event as JSON: the backend encodes it itself (Elasticsearch, and any
/// backend without an encoding of its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEncoder;

impl DocEncoder for JsonEncoder {
    type Doc = IndexDoc;

    fn encode(&self, doc: IndexDoc) -> IndexDoc {
        doc
    }
}

impl EncodedDoc for IndexDoc {
    fn source_json(&self) -> String {
        serde_json::to_string(&self.doc).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::{Backend, Error, Result, Store};

    fn doc(n: u64) -> IndexDoc {
        let Value::Object(doc) = json!({"ts": "2024-02-05T10:00:00.000Z", "type": "seat.locked", "seq": n}) else {
            unreachable!()
        };
        IndexDoc {
            id: crate::doc_id::DocId::from_u128(n.into()),
            ts_millis: 1_707_127_200_000,
            doc,
            unseen_source: false,
        }
    }

    #[test]
    fn the_json_encoder_keeps_the_document() {
        let kept = JsonEncoder.encode(doc(1));
        assert_eq!(kept, doc(1));
    }

    /// Refuses documents with an odd `seq`, as Elasticsearch refuses a mapping conflict.
    struct OddRefuser(Vec<Map<String, Value>>);

    impl Store for OddRefuser {
        fn name(&self) -> &'static str {
            "odd-refuser"
        }
        fn source_record(&self, _: &str) -> Result<Option<crate::SourceRecord>> {
            Ok(None)
        }
        fn search(&self, _: &crate::SearchRequest) -> Result<crate::SearchResponse> {
            Err(Error::Unsupported { backend: "odd-refuser", operation: "search" })
        }
        fn count(&self, _: &crate::SearchRequest) -> Result<u64> {
            Err(Error::Unsupported { backend: "odd-refuser", operation: "count" })
        }
        fn sources(&self) -> Result<Vec<crate::SourceRecord>> {
            Ok(Vec::new())
        }
    }

    impl Backend for OddRefuser {
        type Doc = IndexDoc;
        type Encoder = JsonEncoder;
        fn encoder(&self) -> JsonEncoder {
            JsonEncoder
        }
        fn ensure_ready(&mut self) -> Result<()> {
            Ok(())
        }
        fn index_batch(&mut self, docs: &[IndexDoc]) -> Result<Vec<crate::Outcome>> {
            self.0.extend(docs.iter().map(|d| d.doc.clone()));
            Ok(docs
                .iter()
                .map(|d| match d.doc["seq"].as_u64() {
                    Some(n) if n % 2 == 1 => crate::Outcome::Rejected { reason: "odd".into() },
                    _ => crate::Outcome::Indexed,
                })
                .collect())
        }
        fn index_encoded(&mut self, docs: &mut [IndexDoc]) -> Result<Vec<crate::Outcome>> {
            self.index_batch(docs)
        }
        fn record_source(&mut self, _: &crate::SourceRecord) -> Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_json_backend_hands_encoded_documents_to_index_batch_and_leaves_them_in_place() {
        let mut backend = OddRefuser(Vec::new());
        let encoder = backend.encoder();
        let mut docs: Vec<IndexDoc> = (0..4).map(|n| encoder.encode(doc(n))).collect();
        let outcomes = backend.index_encoded(&mut docs).unwrap();
        assert_eq!(backend.0, (0..4).map(|n| doc(n).doc).collect::<Vec<_>>(), "the documents, in order");
        assert_eq!(outcomes[1], crate::Outcome::Rejected { reason: "odd".into() });
        assert_eq!(outcomes[2], crate::Outcome::Indexed);
        for (n, encoded) in docs.iter().enumerate() {
            assert_eq!(encoded.source_json(), serde_json::to_string(&doc(n as u64).doc).unwrap(), "document {n}");
        }
    }
}
