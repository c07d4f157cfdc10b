//! Section kind 22, `sysv-shm` (FORMAT.md §8.22, format 1.3): the frozen `SysvShmV1` with its
//! `SysvAttachV1`, version 1, their model conversion, and the join of each attachment to its VMA
//! of the `vmas` section.
//!
//! A segment's bytes live in `page-data` like a process's pages; its runs are indexed here (by
//! offset into the segment, the `SharedPageRunV1` of `shared-memory`), not in `page-index`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use super::shared_memory::SharedPageRunV1;
use crate::class::{Class, Word};
use crate::error::{FormatError, Result};
use crate::model;

/// One VMA attaching a segment, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SysvAttachV1<C: Class> {
    /// The process.
    pub pid: u32,
    /// The start of its VMA, a shared `Anonymous` VMA of `vmas`.
    pub start: C::Word,
    /// Attached with `SHM_RDONLY`.
    pub read_only: bool,
}

/// One System V shared memory segment, version 1 (section `sysv-shm`, format 1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SysvShmV1<C: Class> {
    /// Its key (0: `IPC_PRIVATE`, or marked for removal).
    pub key: i32,
    /// Its identifier at capture, kept at restore.
    pub shmid: i32,
    /// Permission bits (`0o777` at most).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Size in bytes as created (LFS, not class-width).
    pub size: u64,
    /// Marked for removal (`SHM_DEST`).
    pub removed: bool,
    /// Locked in memory (`SHM_LOCKED`).
    pub locked: bool,
    /// Its stored pages, sorted by offset, disjoint, inside the size rounded up to a page.
    pub pages: Vec<SharedPageRunV1<C>>,
    /// Every VMA attaching it, at least one.
    pub attachments: Vec<SysvAttachV1<C>>,
}

impl<C: Class> SysvShmV1<C> {
    pub(super) fn from_model(m: &model::SysvShm) -> Result<Self> {
        let pages = m
            .pages
            .iter()
            .map(|r| {
                let at = format!("sysv segment {} run {:#x}", m.shmid, r.addr);
                Ok(SharedPageRunV1 {
                    offset: r.addr,
                    pages: r.pages,
                    data_offset: narrow!(r, at, data_offset),
                })
            })
            .collect::<Result<_>>()?;
        let attachments = m
            .attachments
            .iter()
            .map(|x| {
                let at = format!("sysv segment {} attachment (pid {})", m.shmid, x.pid);
                Ok(SysvAttachV1 {
                    pid: x.pid,
                    start: narrow!(x, at, start),
                    read_only: x.read_only,
                })
            })
            .collect::<Result<_>>()?;
        Ok(SysvShmV1 {
            key: m.key,
            shmid: m.shmid,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            cuid: m.cuid,
            cgid: m.cgid,
            size: m.size,
            removed: m.removed,
            locked: m.locked,
            pages,
            attachments,
        })
    }

    pub(super) fn into_model(self) -> model::SysvShm {
        model::SysvShm {
            key: self.key,
            shmid: self.shmid,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            cuid: self.cuid,
            cgid: self.cgid,
            size: self.size,
            removed: self.removed,
            locked: self.locked,
            pages: self
                .pages
                .into_iter()
                .map(|r| model::PageRun {
                    addr: r.offset,
                    pages: r.pages,
                    data_offset: r.data_offset.widen(),
                })
                .collect(),
            attachments: self
                .attachments
                .into_iter()
                .map(|x| model::SysvAttach {
                    pid: x.pid,
                    start: x.start.widen(),
                    read_only: x.read_only,
                })
                .collect(),
        }
    }
}

/// `PROT_WRITE`.
const PROT_WRITE: u32 = 2;

/// Checks the segments against the processes and the shared memory objects (§8.22): shmids
/// distinct, and keys other than 0; mode within `0o777`; size at least 1; runs sorted, disjoint
/// and inside the size rounded up to a page; at least one attachment, each naming a shared
/// `Anonymous` VMA of its process that no other segment and no `shared-memory` object claims,
/// and a read-only attachment's VMA is not writable.
pub(super) fn check(
    processes: &[model::Process],
    shared: &[model::SharedMemory],
    segments: &[model::SysvShm],
) -> Result<()> {
    let invalid = |m: String| Err(FormatError::Invalid(m));
    let mut ids = HashSet::new();
    let mut keys = HashSet::new();
    let mut claimed: HashSet<(u32, u64)> = shared
        .iter()
        .flat_map(|o| o.mappings.iter().map(|m| (m.pid, m.start)))
        .collect();
    for s in segments {
        let id = s.shmid;
        if id < 0 || !ids.insert(id) {
            return invalid(format!("sysv segment {id}: negative or repeated shmid"));
        }
        if s.key != 0 && !keys.insert(s.key) {
            return invalid(format!(
                "sysv segment {id}: key {:#010x} is the key of another segment",
                s.key
            ));
        }
        if s.mode & !0o777 != 0 {
            return invalid(format!(
                "sysv segment {id}: mode {:#o} has bits beyond 0o777",
                s.mode
            ));
        }
        let Some(limit) = s.size.checked_next_multiple_of(4096).filter(|_| s.size > 0) else {
            return invalid(format!(
                "sysv segment {id}: size {} is 0 or too large",
                s.size
            ));
        };
        let mut prev = 0u64;
        for r in &s.pages {
            let end = r
                .pages
                .checked_mul(4096)
                .and_then(|l| r.addr.checked_add(l));
            match end {
                Some(end)
                    if r.pages > 0 && r.addr >= prev && r.addr % 4096 == 0 && end <= limit =>
                {
                    prev = end
                }
                _ => {
                    return invalid(format!(
                        "page run {:#x} of sysv segment {id} is empty, unaligned, overlapping, \
                         out of order or past its size {:#x}",
                        r.addr, s.size
                    ))
                }
            }
        }
        if s.attachments.is_empty() {
            return invalid(format!(
                "sysv segment {id} has no attachment (a segment no process attaches is not part \
                 of a process checkpoint)"
            ));
        }
        for a in &s.attachments {
            let Some(p) = processes.iter().find(|p| p.pid == a.pid) else {
                return invalid(format!(
                    "an attachment of sysv segment {id} belongs to pid {}, which is not in the \
                     image",
                    a.pid
                ));
            };
            let Some(v) = p
                .vmas
                .iter()
                .find(|v| v.start == a.start && super::maps_shared_memory(v))
            else {
                return invalid(format!(
                    "sysv segment {id} is attached at {:#x} of pid {}, which is not a shared \
                     anonymous vma",
                    a.start, a.pid
                ));
            };
            if a.read_only && v.prot & PROT_WRITE != 0 {
                return invalid(format!(
                    "sysv segment {id} is attached read-only at {:#x} of pid {}, whose vma is \
                     writable",
                    a.start, a.pid
                ));
            }
            if !claimed.insert((a.pid, a.start)) {
                return invalid(format!(
                    "the vma {:#x} of pid {} maps two shared memory objects or segments",
                    a.start, a.pid
                ));
            }
        }
    }
    Ok(())
}
