//! Section kind 24, `parent` (FORMAT.md §8.24, format 1.4): the frozen `ParentV1`, version 1,
//! of an incremental image: the digest and path of the image it was captured against, the page
//! runs whose contents are that image's, and the stored files whose contents are in it. Also
//! the checks that need the rest of the model: every run inside a VMA of its process and apart
//! from the image's own runs, every file id in the table once.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use crate::class::{Class, Word};
use crate::error::{FormatError, Result};
use crate::model;

/// The parent of an incremental image, version 1 (see [`model::Parent`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ParentV1<C: Class> {
    /// The parent's image digest (trailer `image_sha256`).
    pub digest: [u8; 32],
    /// Where the parent was at capture: absolute, or relative to the image's directory.
    pub path: String,
    /// The runs taken from the parent, sorted by PID and address.
    pub pages: Vec<ParentRunV1<C>>,
    /// Indexes into the `files` table of the files whose contents are the parent's.
    pub files: Vec<u32>,
}

/// One run of pages taken from the parent, version 1 (see [`model::ParentRun`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct ParentRunV1<C: Class> {
    pub pid: u32,
    pub addr: C::Word,
    pub pages: C::Word,
}

impl<C: Class> ParentV1<C> {
    pub(super) fn from_model(p: &model::Parent) -> Result<Self> {
        let pages = p
            .pages
            .iter()
            .map(|r| {
                let at = format!("parent run {:#x} (pid {})", r.addr, r.pid);
                Ok(ParentRunV1 {
                    pid: r.pid,
                    addr: narrow!(r, at, addr),
                    pages: narrow!(r, at, pages),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ParentV1 {
            digest: p.digest,
            path: p.path.clone(),
            pages,
            files: p.files.iter().map(|f| f.0).collect(),
        })
    }

    pub(super) fn into_model(self) -> model::Parent {
        model::Parent {
            digest: self.digest,
            path: self.path,
            pages: self
                .pages
                .into_iter()
                .map(|r| model::ParentRun {
                    pid: r.pid,
                    addr: r.addr.widen(),
                    pages: r.pages.widen(),
                })
                .collect(),
            files: self.files.into_iter().map(model::FileId).collect(),
        }
    }
}

/// Checks the parent record against the rest of the model (§8.24): each run of a process of
/// the image, page-aligned, sorted, disjoint from the other parent runs and from the process's
/// own runs, and inside its VMAs; each file id an entry of the stored-file table, once.
pub fn check(ck: &model::Checkpoint) -> Result<()> {
    let Some(parent) = &ck.parent else {
        return Ok(());
    };
    let invalid = |m: String| Err(FormatError::Invalid(m));
    let mut prev: Option<(u32, u64)> = None;
    for r in &parent.pages {
        let Some(p) = ck.processes.iter().find(|p| p.pid == r.pid) else {
            return invalid(format!(
                "parent run {:#x} belongs to pid {}, which is not in the image",
                r.addr, r.pid
            ));
        };
        let Some(end) = r
            .pages
            .checked_mul(4096)
            .and_then(|l| r.addr.checked_add(l))
        else {
            return invalid(format!(
                "parent run {:#x} of pid {} overflows",
                r.addr, r.pid
            ));
        };
        if r.pages == 0 || r.addr % 4096 != 0 {
            return invalid(format!(
                "parent run {:#x} of pid {} is empty or not page-aligned",
                r.addr, r.pid
            ));
        }
        if prev.is_some_and(|(pid, e)| (pid, e) > (r.pid, r.addr)) {
            return invalid(format!(
                "parent run {:#x} of pid {} overlaps or is out of order",
                r.addr, r.pid
            ));
        }
        prev = Some((r.pid, end));
        let own = p
            .pages
            .partition_point(|o| o.addr.saturating_add(o.pages.saturating_mul(4096)) <= r.addr);
        if p.pages.get(own).is_some_and(|o| o.addr < end) {
            return invalid(format!(
                "parent run {:#x} of pid {} overlaps a page run stored in the image",
                r.addr, r.pid
            ));
        }
        let mut a = r.addr;
        while a < end {
            let i = p.vmas.partition_point(|v| v.end <= a);
            let Some(v) = p.vmas.get(i).filter(|v| v.start <= a) else {
                return invalid(format!(
                    "page {a:#x} of the parent run at {:#x} of pid {} lies in no vma",
                    r.addr, r.pid
                ));
            };
            a = v.end;
        }
    }
    let mut seen = HashSet::new();
    for id in &parent.files {
        if id.0 as usize >= ck.files.len() || !seen.insert(id.0) {
            return invalid(format!(
                "the parent record names stored file {} twice or of {} that the image has",
                id.0,
                ck.files.len()
            ));
        }
    }
    Ok(())
}
