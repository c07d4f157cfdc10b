//! Section kind 15, `shared-memory` (FORMAT.md §8.16, format 1.3): the frozen `SharedMemoryV1`
//! with its `SharedMemoryKindV1`, `SharedPageRunV1` and `SharedMappingV1`, version 1, their
//! model conversion, and the join of each mapping to its VMA of the `vmas` section.
//!
//! The object's bytes live in `page-data` like a process's pages; its runs are indexed here (by
//! offset into the object), not in `page-index`, so a reader that walks a process's page runs
//! never meets them.

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use crate::class::{Class, Word};
use crate::error::{FormatError, Result};
use crate::model;

/// What a shared memory object is, version 1 (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SharedMemoryKindV1 {
    /// Shared anonymous memory (`MAP_SHARED | MAP_ANONYMOUS`, `/dev/zero (deleted)` in maps).
    Anonymous,
    /// A memfd mapped shared (`/memfd:NAME (deleted)` in maps).
    Memfd {
        /// Its name, without `memfd:`.
        name: String,
        /// Its seals (`F_GET_SEALS`).
        seals: u32,
    },
}

/// One run of stored pages of an object, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SharedPageRunV1<C: Class> {
    /// Byte offset of the first page into the object (page-aligned; LFS, not class-width).
    pub offset: u64,
    /// Number of 4096-byte pages, at least 1.
    pub pages: u64,
    /// Offset of the run's bytes inside `page-data` (a multiple of 4096).
    pub data_offset: C::Word,
}

/// One VMA mapping an object, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SharedMappingV1<C: Class> {
    /// The process.
    pub pid: u32,
    /// The start of its VMA, a shared `Anonymous` VMA of `vmas`.
    pub start: C::Word,
}

/// One shared memory object, version 1 (section `shared-memory`, format 1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SharedMemoryV1<C: Class> {
    /// What it is.
    pub kind: SharedMemoryKindV1,
    /// Device of its inode at capture.
    pub dev: u64,
    /// Its inode number at capture.
    pub ino: u64,
    /// Its size in bytes (LFS, not class-width).
    pub size: u64,
    /// Its stored pages, sorted by offset, disjoint, inside `size`.
    pub pages: Vec<SharedPageRunV1<C>>,
    /// Every VMA mapping it.
    pub mappings: Vec<SharedMappingV1<C>>,
}

impl<C: Class> SharedMemoryV1<C> {
    pub(super) fn from_model(i: usize, m: &model::SharedMemory) -> Result<Self> {
        let pages = m
            .pages
            .iter()
            .map(|r| {
                let at = format!("shared memory object {i} run {:#x}", r.addr);
                Ok(SharedPageRunV1 {
                    offset: r.addr,
                    pages: r.pages,
                    data_offset: narrow!(r, at, data_offset),
                })
            })
            .collect::<Result<_>>()?;
        let mappings = m
            .mappings
            .iter()
            .map(|x| {
                let at = format!("shared memory object {i} mapping (pid {})", x.pid);
                Ok(SharedMappingV1 {
                    pid: x.pid,
                    start: narrow!(x, at, start),
                })
            })
            .collect::<Result<_>>()?;
        Ok(SharedMemoryV1 {
            kind: match &m.kind {
                model::SharedMemoryKind::Anonymous => SharedMemoryKindV1::Anonymous,
                model::SharedMemoryKind::Memfd { name, seals } => SharedMemoryKindV1::Memfd {
                    name: name.clone(),
                    seals: *seals,
                },
            },
            dev: m.dev,
            ino: m.ino,
            size: m.size,
            pages,
            mappings,
        })
    }

    pub(super) fn into_model(self) -> model::SharedMemory {
        model::SharedMemory {
            kind: match self.kind {
                SharedMemoryKindV1::Anonymous => model::SharedMemoryKind::Anonymous,
                SharedMemoryKindV1::Memfd { name, seals } => {
                    model::SharedMemoryKind::Memfd { name, seals }
                }
            },
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            pages: self
                .pages
                .into_iter()
                .map(|r| model::PageRun {
                    addr: r.offset,
                    pages: r.pages,
                    data_offset: r.data_offset.widen(),
                })
                .collect(),
            mappings: self
                .mappings
                .into_iter()
                .map(|x| model::SharedMapping {
                    pid: x.pid,
                    start: x.start.widen(),
                })
                .collect(),
        }
    }
}

/// Whether `v` is a VMA whose object is in this section: shared anonymous memory or a shared
/// memfd mapping (capture refused both before 1.3, so no older image has one).
pub fn maps_shared_memory(v: &model::Vma) -> bool {
    v.shared && v.kind == model::VmaKind::Anonymous
}

/// Checks the objects against the processes (§8.16): each object's runs sorted, disjoint and
/// inside its size; each mapping names a shared `Anonymous` VMA of its process, and no VMA is
/// mapped by two records. A shared anonymous VMA without a record stays valid, as in 1.2 images
/// (no writer made one: capture refused them): restore refuses it, having no contents for it.
pub(super) fn check(processes: &[model::Process], objects: &[model::SharedMemory]) -> Result<()> {
    let invalid = |m: String| Err(FormatError::Invalid(m));
    let mut seen = std::collections::HashSet::new();
    for (i, o) in objects.iter().enumerate() {
        if o.size % 4096 != 0 {
            return invalid(format!(
                "shared memory object {i} has a size of {} bytes, not a multiple of 4096",
                o.size
            ));
        }
        let mut prev = 0u64;
        for r in &o.pages {
            let end = r
                .pages
                .checked_mul(4096)
                .and_then(|l| r.addr.checked_add(l));
            match end {
                Some(end) if r.pages > 0 && r.addr >= prev && r.addr % 4096 == 0 => {
                    if end > o.size {
                        return invalid(format!(
                            "page run {:#x} of shared memory object {i} ends past its size {:#x}",
                            r.addr, o.size
                        ));
                    }
                    prev = end;
                }
                _ => {
                    return invalid(format!(
                        "page run {:#x} of shared memory object {i} is empty, unaligned, \
                         overlapping or out of order",
                        r.addr
                    ))
                }
            }
        }
        for m in &o.mappings {
            let Some(p) = processes.iter().find(|p| p.pid == m.pid) else {
                return invalid(format!(
                    "a mapping of shared memory object {i} belongs to pid {}, which is not in \
                     the image",
                    m.pid
                ));
            };
            if !p
                .vmas
                .iter()
                .any(|v| v.start == m.start && maps_shared_memory(v))
            {
                return invalid(format!(
                    "shared memory object {i} is mapped at {:#x} of pid {}, which is not a \
                     shared anonymous vma",
                    m.start, m.pid
                ));
            }
            if !seen.insert((m.pid, m.start)) {
                return invalid(format!(
                    "the vma {:#x} of pid {} maps two shared memory objects",
                    m.start, m.pid
                ));
            }
        }
    }
    check_fds(processes, objects)
}

/// Checks each memfd fd (`MemFdObject`, §8.9) against the objects: it names a memfd object, and
/// its size rounds up to that object's size.
fn check_fds(processes: &[model::Process], objects: &[model::SharedMemory]) -> Result<()> {
    for p in processes {
        for f in &p.fds {
            let model::FdKind::MemFdObject { object, size } = f.kind else {
                continue;
            };
            let at = format!("the memfd fd {} of pid {}", f.fd, p.pid);
            let Some(o) = objects.get(object as usize) else {
                return Err(FormatError::Invalid(format!(
                    "{at} names shared memory object {object}, but the image has {}",
                    objects.len()
                )));
            };
            if !matches!(o.kind, model::SharedMemoryKind::Memfd { .. }) {
                return Err(FormatError::Invalid(format!(
                    "{at} names shared memory object {object}, which is not a memfd"
                )));
            }
            if size.div_ceil(4096).checked_mul(4096) != Some(o.size) {
                return Err(FormatError::Invalid(format!(
                    "{at} has a size of {size} bytes, which does not round up to the size {:#x} \
                     of its shared memory object {object}",
                    o.size
                )));
            }
        }
    }
    Ok(())
}
