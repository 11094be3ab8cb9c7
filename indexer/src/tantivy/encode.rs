//! The tantivy encoding of an [`IndexDoc`] ([`crate::encode`]): the tantivy document,
//! built on the pipeline's preparing threads, with the id dedupe checks it by.

use std::sync::Arc;

use tantivy::schema::Value as _;
use tantivy::TantivyDocument;

use super::ids::IdKey;
use super::schema::TantivySchema;
use crate::encode::{DocEncoder, EncodedDoc};
use crate::IndexDoc;

/// Builds tantivy documents with the index's schema.
#[derive(Debug, Clone)]
pub struct TantivyEncoder(pub(crate) Arc<TantivySchema>);

impl DocEncoder for TantivyEncoder {
    type Doc = TantivyEncoded;

    fn encode(&self, doc: IndexDoc) -> TantivyEncoded {
        TantivyEncoded::new(&self.0, &doc)
    }
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

impl TantivyEncoded {
    pub(crate) fn new(schema: &TantivySchema, doc: &IndexDoc) -> Self {
        let id = IdKey::from(doc.id);
        let document = schema.event_document(&id, doc.ts_millis, &doc.doc);
        TantivyEncoded { id, unseen_source: doc.unseen_source, document: Some(document), source: schema.source }
    }
}

impl EncodedDoc for TantivyEncoded {
    fn source_json(&self) -> String {
        self.document
            .as_ref()
            .and_then(|document| document.get_first(self.source))
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::doc_id::DocId;
    use crate::tantivy::schema::tantivy_schema;

    fn doc(n: u64) -> IndexDoc {
        let Value::Object(doc) = json!({"ts": "2024-02-05T10:00:00.000Z", "type": "seat.locked", "seq": n}) else {
            unreachable!()
        };
        IndexDoc { id: DocId::from_u128(n.into()), ts_millis: 1_707_127_200_000, doc, unseen_source: false }
    }

    #[test]
    fn a_tantivy_document_keeps_its_id_and_its_source_for_the_dead_letter_store() {
        let encoder = TantivyEncoder(Arc::new(tantivy_schema()));
        let mut tantivy = encoder.encode(doc(7));
        assert_eq!(tantivy.source_json(), serde_json::to_string(&doc(7).doc).unwrap());
        assert_eq!(tantivy.id, IdKey::from(doc(7).id));
        assert!(!tantivy.unseen_source);
        tantivy.document.take();
        assert_eq!(tantivy.source_json(), "", "nothing left once the backend took it");
    }
}
