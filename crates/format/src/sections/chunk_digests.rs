//! Section kind 11, `chunk-digests` (FORMAT.md §8.11): the frozen `ChunkDigestsV1`, version 1.
//! It has no model counterpart: the writer builds it from the chunk digests of a raw section and
//! the reader uses it only to name a corrupt chunk.

use serde::{Deserialize, Serialize};

/// The chunk digests of one chunked section, version 1 (ancillary, safe to copy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDigestsV1 {
    /// Kind number of the section the digests belong to (each chunked kind appears once).
    pub section_kind: u32,
    /// Chunk size in bytes (`1 << header.chunk_shift`).
    pub chunk_size: u32,
    /// SHA-256 of each chunk, in order; the last chunk may be short.
    pub digests: Vec<[u8; 32]>,
}
