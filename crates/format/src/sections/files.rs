//! Section kind 7, `files` (FORMAT.md §8.7): the frozen `StoredFileV1`, version 1, the
//! stored-file table, and its model conversion. The contents are in the raw `file-data` section.

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use crate::class::{Class, Word};
use crate::error::Result;
use crate::model;

/// A stored file, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct StoredFileV1<C: Class> {
    pub sha256: [u8; 32],
    pub size: C::Word,
    pub path: String,
    /// Offset inside the file-data section, 4096-aligned.
    pub data_offset: C::Word,
}

impl<C: Class> StoredFileV1<C> {
    pub(super) fn from_model(i: usize, f: &model::StoredFile) -> Result<Self> {
        let at = format!("stored file {i} ({})", f.path);
        Ok(StoredFileV1 {
            sha256: f.sha256,
            size: narrow!(f, at, size),
            path: f.path.clone(),
            data_offset: narrow!(f, at, data_offset),
        })
    }

    pub(super) fn into_model(self) -> model::StoredFile {
        model::StoredFile {
            sha256: self.sha256,
            size: self.size.widen(),
            path: self.path,
            data_offset: self.data_offset.widen(),
        }
    }
}
