//! The structs several sections share (FORMAT.md §8.12): `FileRefV1` and its `FileIdentityV1`
//! (processes, vmas, fds) and `SigInfoV1` (threads, signals), all version 1, with their model
//! conversions.

use serde::{Deserialize, Serialize};

use crate::model;

/// File identity, version 1 (file sizes are LFS 64-bit, not class-width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FileIdentityV1 {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub mode: u32,
    pub sha256: [u8; 32],
}

/// A file reference, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FileRefV1 {
    pub path: String,
    pub deleted: bool,
    pub identity: FileIdentityV1,
    /// Index into the files section.
    pub stored: Option<u32>,
}

impl From<&model::FileRef> for FileRefV1 {
    fn from(m: &model::FileRef) -> Self {
        let i = &m.identity;
        FileRefV1 {
            path: m.path.clone(),
            deleted: m.deleted,
            identity: FileIdentityV1 {
                dev: i.dev,
                ino: i.ino,
                size: i.size,
                mtime_ns: i.mtime_ns,
                mode: i.mode,
                sha256: i.sha256,
            },
            stored: m.stored.map(|f| f.0),
        }
    }
}

impl From<FileRefV1> for model::FileRef {
    fn from(v: FileRefV1) -> Self {
        let i = v.identity;
        model::FileRef {
            path: v.path,
            deleted: v.deleted,
            identity: model::FileIdentity {
                dev: i.dev,
                ino: i.ino,
                size: i.size,
                mtime_ns: i.mtime_ns,
                mode: i.mode,
                sha256: i.sha256,
            },
            stored: v.stored.map(model::FileId),
        }
    }
}

/// A queued signal, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SigInfoV1 {
    pub signo: u32,
    pub code: i32,
    pub raw: Vec<u8>,
}

impl From<&model::SigInfo> for SigInfoV1 {
    fn from(m: &model::SigInfo) -> Self {
        SigInfoV1 {
            signo: m.signo,
            code: m.code,
            raw: m.raw.clone(),
        }
    }
}
impl From<SigInfoV1> for model::SigInfo {
    fn from(v: SigInfoV1) -> Self {
        model::SigInfo {
            signo: v.signo,
            code: v.code,
            raw: v.raw,
        }
    }
}
