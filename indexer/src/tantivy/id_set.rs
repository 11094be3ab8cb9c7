//! The set of document ids of each tantivy segment, as a file of its own: how the
//! tantivy backend tells whether an id is already committed.
//!
//! Every event has a random 128-bit id, so an id term dictionary is the largest of the
//! index, and building it (an FST, whose cost grows with each key's unshared suffix)
//! was the costliest single step of indexing (about 8% of ingest CPU, half of it for
//! the high 8 bytes alone). Nobody searches ids by prefix or range, so a sorted array
//! does the job for a fraction of the cost: the writer collects the ids of a segment and
//! sorts them once when the segment is written, and a merge unions the ids of the live
//! documents of its inputs. Queries on `_id` use the `_id_high`/`_id_low` columns.
//!
//! File (`<segment>.tixids`, behind tantivy's own footer): the magic `TIXIDS01`, the
//! number of ids `n` (u64 LE), the `n` ids ascending (16 bytes each, big-endian, so byte
//! order is numeric order), then every [`STRIDE`]th id again as a sparse index. A probe
//! reads the small sparse index (kept in memory) and one block of the array, so it
//! touches one page of the mapped file, not a path through a dictionary.

use std::any::Any;
use std::io::Write;

use tantivy::directory::{OwnedBytes, TerminatingWrite};
use tantivy::index::SegmentComponent;
use tantivy::indexer::doc_id_mapping::DocIdMapping;
use tantivy::plugin::{PluginMergeContext, PluginWriter, PluginWriterContext, SegmentPlugin};
use tantivy::schema::document::ErasedDocument;
use tantivy::schema::{Field, Schema, Value as _};
use tantivy::{DocId, Segment, SegmentReader, TantivyDocument, TantivyError};

use super::schema::{ID_HIGH, ID_LOW};

/// The file extension of a segment's id set.
pub const EXTENSION: &str = "tixids";
const MAGIC: &[u8; 8] = b"TIXIDS01";
const ID_BYTES: usize = 16;
const HEADER_BYTES: usize = MAGIC.len() + 8;
/// One id of every `STRIDE` goes into the sparse index: 256 ids are one 4 KiB page.
pub const STRIDE: usize = 256;

/// The tantivy segment plugin that writes and merges id sets. The ids come from the
/// `_id_high`/`_id_low` fields of each document; documents without them (source
/// checkpoints) have no id.
#[derive(Debug, Clone, Copy)]
pub struct IdSetPlugin {
    high: Field,
    low: Field,
}

impl IdSetPlugin {
    pub fn new(high: Field, low: Field) -> Self {
        IdSetPlugin { high, low }
    }
}

impl SegmentPlugin for IdSetPlugin {
    fn extensions(&self) -> &[&str] {
        &[EXTENSION]
    }

    fn create_writer(&self, _ctx: &PluginWriterContext) -> tantivy::Result<Box<dyn PluginWriter>> {
        Ok(Box::new(IdSetWriter { high: self.high, low: self.low, ids: Vec::new() }))
    }

    fn merge(&self, ctx: PluginMergeContext) -> tantivy::Result<()> {
        let mut ids = Vec::new();
        for reader in ctx.readers {
            let fast = reader.fast_fields();
            let (Some(high), Some(low)) = (fast.column_opt::<u64>(ID_HIGH)?, fast.column_opt::<u64>(ID_LOW)?) else {
                continue;
            };
            let alive = reader.alive_bitset();
            for doc in 0..reader.max_doc() {
                if alive.is_some_and(|a| !a.is_alive(doc)) {
                    continue;
                }
                if let (Some(h), Some(l)) = (high.first(doc), low.first(doc)) {
                    ids.push(join(h, l));
                }
            }
        }
        write_id_set(ctx.target_segment, ids)
    }
}

/// Collects the ids of the segment being written.
struct IdSetWriter {
    high: Field,
    low: Field,
    ids: Vec<u128>,
}

impl PluginWriter for IdSetWriter {
    fn add_document(&mut self, _doc_id: DocId, doc: &dyn ErasedDocument, _schema: &Schema) -> tantivy::Result<()> {
        let Some(doc) = doc.as_any().downcast_ref::<TantivyDocument>() else {
            return Err(TantivyError::InternalError("the id set plugin indexes TantivyDocuments only".into()));
        };
        let high = doc.get_first(self.high).and_then(|v| v.as_u64());
        let low = doc.get_first(self.low).and_then(|v| v.as_u64());
        if let (Some(high), Some(low)) = (high, low) {
            self.ids.push(join(high, low));
        }
        Ok(())
    }

    fn serialize(self: Box<Self>, segment: &Segment, _doc_id_map: Option<&DocIdMapping>) -> tantivy::Result<()> {
        // A set: the order of documents in the segment does not matter.
        write_id_set(segment, self.ids)
    }

    fn mem_usage(&self) -> usize {
        self.ids.capacity() * ID_BYTES
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn join(high: u64, low: u64) -> u128 {
    (u128::from(high) << 64) | u128::from(low)
}

fn write_id_set(segment: &Segment, mut ids: Vec<u128>) -> tantivy::Result<()> {
    ids.sort_unstable();
    ids.dedup();
    let mut out = segment.open_write(SegmentComponent::Custom(EXTENSION.to_string()))?;
    out.write_all(&encode(&ids))?;
    out.terminate()?;
    Ok(())
}

/// The file body for ascending, distinct `ids`.
fn encode(ids: &[u128]) -> Vec<u8> {
    let sparse = ids.iter().step_by(STRIDE);
    let mut body = Vec::with_capacity(HEADER_BYTES + (ids.len() + sparse.len()) * ID_BYTES);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    for id in ids.iter().chain(sparse) {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body
}

/// The id set of one committed segment, mapped from its file.
pub struct SegmentIds {
    bytes: OwnedBytes,
    len: usize,
    /// Every [`STRIDE`]th id, copied out of the file's sparse index.
    sparse: Vec<u128>,
}

impl SegmentIds {
    /// Opens the id set of a segment.
    pub fn open(reader: &SegmentReader) -> tantivy::Result<SegmentIds> {
        let file = reader.open_read(SegmentComponent::Custom(EXTENSION.to_string()))?;
        SegmentIds::from_bytes(file.read_bytes()?)
    }

    fn from_bytes(bytes: OwnedBytes) -> tantivy::Result<SegmentIds> {
        let corrupt = |what: &str| TantivyError::InternalError(format!("corrupt id set file ({what})"));
        let data = bytes.as_slice();
        if data.len() < HEADER_BYTES || &data[..MAGIC.len()] != MAGIC {
            return Err(corrupt("no header"));
        }
        let len = u64::from_le_bytes(data[MAGIC.len()..HEADER_BYTES].try_into().expect("8 bytes")) as usize;
        let sparse_len = len.div_ceil(STRIDE);
        let expected = len.checked_add(sparse_len).and_then(|n| n.checked_mul(ID_BYTES)).map(|n| n + HEADER_BYTES);
        if expected != Some(data.len()) {
            return Err(corrupt("length"));
        }
        let sparse_start = HEADER_BYTES + len * ID_BYTES;
        let sparse = data[sparse_start..].chunks_exact(ID_BYTES).map(read_id).collect();
        Ok(SegmentIds { bytes, len, sparse })
    }

    /// The number of ids in the segment.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `id` is one of the segment's ids.
    pub fn contains(&self, id: u128) -> bool {
        // The block that would hold `id` starts at the last sparse id <= `id`.
        let block = match self.sparse.partition_point(|&first| first <= id) {
            0 => return false,
            after => after - 1,
        };
        let start = block * STRIDE;
        let end = (start + STRIDE).min(self.len);
        let ids = &self.bytes.as_slice()[HEADER_BYTES + start * ID_BYTES..HEADER_BYTES + end * ID_BYTES];
        let (mut lo, mut hi) = (0, end - start);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let probe = read_id(&ids[mid * ID_BYTES..(mid + 1) * ID_BYTES]);
            match probe.cmp(&id) {
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        false
    }
}

fn read_id(bytes: &[u8]) -> u128 {
    u128::from_be_bytes(bytes.try_into().expect("16 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set_of(ids: &[u128]) -> SegmentIds {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        SegmentIds::from_bytes(OwnedBytes::new(encode(&sorted))).unwrap()
    }

    #[test]
    fn an_empty_set_contains_nothing() {
        let set = set_of(&[]);
        assert!(set.is_empty());
        assert!(!set.contains(0) && !set.contains(u128::MAX));
    }

    #[test]
    fn the_extremes_and_block_edges_are_found() {
        let ids: Vec<u128> = (0..(3 * STRIDE as u128 + 7)).map(|i| i * 10).chain([u128::MAX]).collect();
        let set = set_of(&ids);
        assert_eq!(set.len(), ids.len());
        for &id in &ids {
            assert!(set.contains(id), "{id}");
        }
        for probe in [1, 5, 10 * STRIDE as u128 - 1, 10 * STRIDE as u128 + 1, u128::MAX - 1] {
            assert!(!set.contains(probe), "{probe}");
        }
    }

    #[test]
    fn damaged_files_are_refused() {
        let good = encode(&[1, 2, 3]);
        assert!(SegmentIds::from_bytes(OwnedBytes::new(good[..good.len() - 1].to_vec())).is_err());
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(SegmentIds::from_bytes(OwnedBytes::new(bad_magic)).is_err());
        assert!(SegmentIds::from_bytes(OwnedBytes::new(Vec::new())).is_err());
    }

    proptest! {
        #[test]
        fn membership_matches_a_hash_set(
            ids in proptest::collection::vec(any::<u128>(), 0..2000),
            probes in proptest::collection::vec(any::<u128>(), 0..200),
        ) {
            let set = set_of(&ids);
            let reference: std::collections::HashSet<u128> = ids.iter().copied().collect();
            for id in ids.iter().chain(&probes) {
                prop_assert_eq!(set.contains(*id), reference.contains(id));
            }
        }

        #[test]
        fn neighbours_of_members_are_not_members(ids in proptest::collection::btree_set(any::<u128>(), 1..600)) {
            let ids: Vec<u128> = ids.into_iter().collect();
            let set = set_of(&ids);
            for &id in &ids {
                for near in [id.wrapping_add(1), id.wrapping_sub(1)] {
                    prop_assert_eq!(set.contains(near), ids.binary_search(&near).is_ok());
                }
            }
        }
    }
}
