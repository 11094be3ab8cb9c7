//! Turning an [`IndexDoc`] into the form its backend writes, before the backend sees it.
//!
//! Building a tantivy document (its fields and its `_source` JSON) reads the whole event
//! tree. The ingest pipeline runs [`DocEncoder::encode`] on the thread that parsed the
//! event, while the tree is still in that core's cache, and on several such threads at
//! once, so the one thread that feeds the index writer only checks ids and adds
//! documents. An encoder holds no backend state: dedupe and writing stay in
//! [`Backend::index_encoded`](crate::Backend::index_encoded).

use std::sync::Arc;

use tantivy::schema::Value as _;
use tantivy::TantivyDocument;

use crate::ids::IdKey;
use crate::schema::TantivySchema;
use crate::{Error, IndexDoc, Result};

/// How a backend wants its documents prepared. Cheap to clone and shareable between
/// threads.
#[derive(Debug, Clone)]
pub enum DocEncoder {
    /// Keep the event as JSON: the backend encodes it itself (Elasticsearch, and any
    /// backend that does not say otherwise).
    Json,
    /// Build the tantivy document.
    Tantivy(Arc<TantivySchema>),
}

/// A document ready for [`Backend::index_encoded`](crate::Backend::index_encoded).
#[derive(Debug)]
pub enum EncodedDoc {
    Json(IndexDoc),
    Tantivy(TantivyEncoded),
}

/// A tantivy document with what dedupe needs to know about it.
#[derive(Debug)]
pub struct TantivyEncoded {
    pub(crate) id: IdKey,
    /// See [`IndexDoc::unseen_source`].
    pub(crate) unseen_source: bool,
    /// `None` once the backend has taken it to write.
    pub(crate) document: Option<TantivyDocument>,
    /// The document's `_source` field, for [`EncodedDoc::source_json`].
    source: tantivy::schema::Field,
}

impl DocEncoder {
    pub fn encode(&self, doc: IndexDoc) -> EncodedDoc {
        match self {
            DocEncoder::Json => EncodedDoc::Json(doc),
            DocEncoder::Tantivy(schema) => EncodedDoc::Tantivy(TantivyEncoded::new(schema, &doc)),
        }
    }
}

impl TantivyEncoded {
    pub(crate) fn new(schema: &TantivySchema, doc: &IndexDoc) -> Self {
        let id = IdKey::of(&doc.id);
        let document = schema.event_document(&id, doc.ts_millis, &doc.doc);
        TantivyEncoded { id, unseen_source: doc.unseen_source, document: Some(document), source: schema.source }
    }
}

impl EncodedDoc {
    /// The stored event as JSON text: what a dead-letter entry keeps of a document the
    /// backend refused (a backend leaves the documents it refuses in place).
    pub fn source_json(&self) -> String {
        match self {
            EncodedDoc::Json(doc) => serde_json::to_string(&doc.doc).unwrap_or_default(),
            EncodedDoc::Tantivy(encoded) => encoded
                .document
                .as_ref()
                .and_then(|document| document.get_first(encoded.source))
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Moves the JSON document out, leaving an empty one (which allocates nothing).
    pub(crate) fn take_json(&mut self) -> Result<IndexDoc> {
        match self {
            EncodedDoc::Json(doc) => Ok(std::mem::replace(
                doc,
                IndexDoc { id: String::new(), ts_millis: 0, doc: serde_json::Map::new(), unseen_source: false },
            )),
            EncodedDoc::Tantivy(_) => Err(Error::Other(
                "internal error: a document encoded for tantivy reached a backend that takes JSON".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::schema::tantivy_schema;

    fn doc(n: u64) -> IndexDoc {
        let Value::Object(doc) = json!({"ts": "2024-02-05T10:00:00.000Z", "type": "seat.locked", "seq": n}) else {
            unreachable!()
        };
        IndexDoc { id: format!("{n:032x}"), ts_millis: 1_707_127_200_000, doc, unseen_source: false }
    }

    #[test]
    fn the_json_encoder_keeps_the_document() {
        let EncodedDoc::Json(kept) = DocEncoder::Json.encode(doc(1)) else { panic!("JSON expected") };
        assert_eq!(kept, doc(1));
    }

    #[test]
    fn a_tantivy_document_keeps_its_id_and_its_source_for_the_dead_letter_store() {
        let encoder = DocEncoder::Tantivy(Arc::new(tantivy_schema()));
        let encoded = encoder.encode(doc(7));
        assert_eq!(encoded.source_json(), serde_json::to_string(&doc(7).doc).unwrap());
        let EncodedDoc::Tantivy(mut tantivy) = encoded else { panic!("tantivy expected") };
        assert_eq!(tantivy.id, IdKey::of(&doc(7).id));
        assert!(!tantivy.unseen_source);
        tantivy.document.take();
        assert_eq!(EncodedDoc::Tantivy(tantivy).source_json(), "", "nothing left once the backend took it");
    }

    #[test]
    fn a_tantivy_document_is_refused_by_a_backend_that_takes_json() {
        let mut encoded = DocEncoder::Tantivy(Arc::new(tantivy_schema())).encode(doc(1));
        let error = encoded.take_json().unwrap_err();
        assert!(error.to_string().contains("internal error"), "{error}");
    }

    /// Refuses documents with an odd `seq`, as Elasticsearch refuses a mapping conflict.
    struct OddRefuser(Vec<Map<String, Value>>);

    impl crate::Backend for OddRefuser {
        fn name(&self) -> &'static str {
            "odd-refuser"
        }
        fn ensure_ready(&mut self) -> Result<()> {
            Ok(())
        }
        fn source_record(&self, _: &str) -> Result<Option<crate::SourceRecord>> {
            Ok(None)
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
        fn record_source(&mut self, _: &crate::SourceRecord) -> Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
        fn search(&self, _: &crate::SearchRequest) -> Result<crate::SearchResponse> {
            Err(Error::Other("no search".into()))
        }
        fn count(&self, _: &crate::SearchRequest) -> Result<u64> {
            Err(Error::Other("no count".into()))
        }
        fn sources(&self) -> Result<Vec<crate::SourceRecord>> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn the_default_index_encoded_hands_json_to_index_batch_and_leaves_the_documents_in_place() {
        let mut backend = OddRefuser(Vec::new());
        let encoder = crate::Backend::encoder(&backend);
        let mut docs: Vec<EncodedDoc> = (0..4).map(|n| encoder.encode(doc(n))).collect();
        let outcomes = crate::Backend::index_encoded(&mut backend, &mut docs).unwrap();
        assert_eq!(backend.0, (0..4).map(|n| doc(n).doc).collect::<Vec<_>>(), "the documents, in order");
        assert_eq!(outcomes[1], crate::Outcome::Rejected { reason: "odd".into() });
        assert_eq!(outcomes[2], crate::Outcome::Indexed);
        for (n, encoded) in docs.iter().enumerate() {
            assert_eq!(encoded.source_json(), serde_json::to_string(&doc(n as u64).doc).unwrap(), "document {n}");
        }
    }
}
