//! Section kind 4, `vmas` (FORMAT.md §8.4): the frozen `VmaV1` and its `VmaKindV1`, version 1,
//! and their model conversions.

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use super::shared::FileRefV1;
use crate::class::{Class, Word};
use crate::error::Result;
use crate::model;

/// What a VMA maps, version 1 (append-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum VmaKindV1 {
    Anonymous,
    Heap,
    Stack,
    File,
    Vdso,
    Vvar,
    VvarVclock,
    Vsyscall,
}

/// A VMA, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct VmaV1<C: Class> {
    /// The owning process.
    pub pid: u32,
    pub start: C::Word,
    pub end: C::Word,
    pub prot: u32,
    pub shared: bool,
    pub kind: VmaKindV1,
    /// A file offset: LFS, always 64-bit.
    pub file_offset: u64,
    pub file: Option<FileRefV1>,
    pub vm_flags: u32,
}

impl<C: Class> VmaV1<C> {
    pub(super) fn from_model(pid: u32, v: &model::Vma) -> Result<Self> {
        let at = format!("vma {:#x} (pid {pid})", v.start);
        Ok(VmaV1 {
            pid,
            start: narrow!(v, at, start),
            end: narrow!(v, at, end),
            prot: v.prot,
            shared: v.shared,
            kind: match v.kind {
                model::VmaKind::Anonymous => VmaKindV1::Anonymous,
                model::VmaKind::Heap => VmaKindV1::Heap,
                model::VmaKind::Stack => VmaKindV1::Stack,
                model::VmaKind::File => VmaKindV1::File,
                model::VmaKind::Vdso => VmaKindV1::Vdso,
                model::VmaKind::Vvar => VmaKindV1::Vvar,
                model::VmaKind::VvarVclock => VmaKindV1::VvarVclock,
                model::VmaKind::Vsyscall => VmaKindV1::Vsyscall,
            },
            file_offset: v.file_offset,
            file: v.file.as_ref().map(FileRefV1::from),
            vm_flags: v.vm_flags,
        })
    }

    pub(super) fn into_model(self) -> model::Vma {
        model::Vma {
            start: self.start.widen(),
            end: self.end.widen(),
            prot: self.prot,
            shared: self.shared,
            kind: match self.kind {
                VmaKindV1::Anonymous => model::VmaKind::Anonymous,
                VmaKindV1::Heap => model::VmaKind::Heap,
                VmaKindV1::Stack => model::VmaKind::Stack,
                VmaKindV1::File => model::VmaKind::File,
                VmaKindV1::Vdso => model::VmaKind::Vdso,
                VmaKindV1::Vvar => model::VmaKind::Vvar,
                VmaKindV1::VvarVclock => model::VmaKind::VvarVclock,
                VmaKindV1::Vsyscall => model::VmaKind::Vsyscall,
            },
            file_offset: self.file_offset,
            file: self.file.map(Into::into),
            vm_flags: self.vm_flags,
        }
    }
}
