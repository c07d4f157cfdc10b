//! The model's invariants, checked by `psnc-imgtool verify` and before every restore.
//!
//! Digests say the bytes are the ones written; these checks say the writer wrote something that
//! makes sense: VMAs sorted and disjoint, page runs inside their VMAs and inside the page data,
//! threads with unique TIDs in their process, file references that resolve.

use std::collections::HashSet;

use crate::error::{FormatError, Result};
use crate::model::{Checkpoint, FdKind, FileRef, VmaKind};
use crate::reader::Image;

fn invalid(s: String) -> FormatError {
    FormatError::Invalid(s)
}

fn check_file_ref(ck: &Checkpoint, r: &FileRef, what: &str) -> Result<()> {
    if let Some(id) = r.stored {
        if id.0 as usize >= ck.files.len() {
            return Err(invalid(format!(
                "{what} refers to stored file {} but the image stores {}",
                id.0,
                ck.files.len()
            )));
        }
    } else if r.deleted {
        return Err(invalid(format!(
            "{what} ({}) was deleted at capture but its contents are not stored",
            r.path
        )));
    }
    Ok(())
}

/// Checks every invariant of `ck` against bulk sections of the given lengths (for the
/// flattened view of an incremental image, [`Image::page_span`] and [`Image::file_span`]).
pub fn check_model(ck: &Checkpoint, page_data_len: u64, file_data_len: u64) -> Result<()> {
    crate::sections::check_parent(ck)?;
    if ck.processes.is_empty() {
        return Err(invalid("the image holds no process".into()));
    }
    let mut pids = HashSet::new();
    let mut tids = HashSet::new();
    for p in &ck.processes {
        if !pids.insert(p.pid) {
            return Err(invalid(format!("pid {} appears twice", p.pid)));
        }
        if p.threads.is_empty() {
            return Err(invalid(format!("process {} has no thread", p.pid)));
        }
        for t in &p.threads {
            if !tids.insert(t.tid) {
                return Err(invalid(format!("tid {} appears twice", t.tid)));
            }
            let regs_i386 = matches!(t.regs, crate::model::Regs::I386(_));
            if regs_i386 != (p.arch == crate::model::Arch::I386) {
                return Err(invalid(format!(
                    "thread {} of pid {} has registers of the wrong architecture",
                    t.tid, p.pid
                )));
            }
        }
        if p.threads[0].tid != p.pid {
            return Err(invalid(format!(
                "the first thread of pid {} is {}, not the leader",
                p.pid, p.threads[0].tid
            )));
        }
        let mut prev_end = 0u64;
        for v in &p.vmas {
            if v.start % 4096 != 0 || v.end % 4096 != 0 || v.start >= v.end {
                return Err(invalid(format!(
                    "vma {:#x}-{:#x} of pid {} is empty or not page-aligned",
                    v.start, v.end, p.pid
                )));
            }
            if v.start < prev_end {
                return Err(invalid(format!(
                    "vma {:#x}-{:#x} of pid {} overlaps or is out of order",
                    v.start, v.end, p.pid
                )));
            }
            prev_end = v.end;
            match (&v.kind, &v.file) {
                (VmaKind::File, Some(f)) => {
                    check_file_ref(ck, f, &format!("vma {:#x} of pid {}", v.start, p.pid))?
                }
                (VmaKind::File, None) => {
                    return Err(invalid(format!(
                        "file vma {:#x} of pid {} names no file",
                        v.start, p.pid
                    )));
                }
                _ => {}
            }
        }
        let mut prev = 0u64;
        for r in &p.pages {
            let end = r
                .pages
                .checked_mul(4096)
                .and_then(|l| r.addr.checked_add(l));
            let data_end = r
                .pages
                .checked_mul(4096)
                .and_then(|l| r.data_offset.checked_add(l));
            let (Some(end), Some(data_end)) = (end, data_end) else {
                return Err(invalid(format!(
                    "page run {:#x} of pid {} overflows",
                    r.addr, p.pid
                )));
            };
            if r.pages == 0 || r.addr < prev {
                return Err(invalid(format!(
                    "page run {:#x} of pid {} is empty, overlapping or out of order",
                    r.addr, p.pid
                )));
            }
            prev = end;
            // A run may span adjacent VMAs (the kernel may split a VMA between capture steps);
            // every page of it must lie in some VMA.
            let mut a = r.addr;
            while a < end {
                // The VMAs are sorted and disjoint (checked above): the one that may hold `a`.
                let i = p.vmas.partition_point(|v| v.end <= a);
                let Some(v) = p.vmas.get(i).filter(|v| v.start <= a) else {
                    return Err(invalid(format!(
                        "page {a:#x} of the run at {:#x} of pid {} lies in no vma",
                        r.addr, p.pid
                    )));
                };
                a = v.end;
            }
            if data_end > page_data_len || r.data_offset % 4096 != 0 {
                return Err(FormatError::DataOutOfRange {
                    what: format!("page run {:#x} of pid {}", r.addr, p.pid),
                    offset: r.data_offset,
                    end: data_end,
                    len: page_data_len,
                });
            }
        }
        check_file_ref(ck, &p.exe, &format!("the executable of pid {}", p.pid))?;
        let mut fds = HashSet::new();
        for f in &p.fds {
            if !fds.insert(f.fd) {
                return Err(invalid(format!(
                    "fd {} of pid {} appears twice",
                    f.fd, p.pid
                )));
            }
            if let FdKind::Regular(r) = &f.kind {
                check_file_ref(ck, r, &format!("fd {} of pid {}", f.fd, p.pid))?;
            }
        }
        if !p.signals.actions.is_empty() && p.signals.actions.len() != 64 {
            return Err(invalid(format!(
                "pid {} has {} signal actions, expected 64",
                p.pid,
                p.signals.actions.len()
            )));
        }
    }
    for (i, o) in ck.shared_memory.iter().enumerate() {
        for r in &o.pages {
            let data_end = r.pages.saturating_mul(4096).saturating_add(r.data_offset);
            if data_end > page_data_len || r.data_offset % 4096 != 0 {
                return Err(FormatError::DataOutOfRange {
                    what: format!("page run {:#x} of shared memory object {i}", r.addr),
                    offset: r.data_offset,
                    end: data_end,
                    len: page_data_len,
                });
            }
        }
    }
    for s in &ck.sysv_shm {
        for r in &s.pages {
            let data_end = r.pages.saturating_mul(4096).saturating_add(r.data_offset);
            if data_end > page_data_len || r.data_offset % 4096 != 0 {
                return Err(FormatError::DataOutOfRange {
                    what: format!("page run {:#x} of sysv segment {}", r.addr, s.shmid),
                    offset: r.data_offset,
                    end: data_end,
                    len: page_data_len,
                });
            }
        }
    }
    // In an incremental image, the files whose contents are the parent's have none here.
    let in_parent = |i: usize| {
        ck.parent
            .as_ref()
            .is_some_and(|p| p.files.iter().any(|id| id.0 as usize == i))
    };
    for (i, f) in ck.files.iter().enumerate() {
        if in_parent(i) {
            continue;
        }
        let end = f.data_offset.saturating_add(f.size);
        if end > file_data_len || f.data_offset % 4096 != 0 {
            return Err(FormatError::DataOutOfRange {
                what: format!("stored file {i} ({})", f.path),
                offset: f.data_offset,
                end,
                len: file_data_len,
            });
        }
    }
    Ok(())
}

/// Everything `psnc-imgtool verify` checks after opening: bulk digests, then the invariants.
pub fn verify_image(img: &Image) -> Result<()> {
    verify_image_except(img, None)
}

/// [`verify_image`] but for the digests of the sections of kind `skip`, which the caller checks
/// apart ([`Image::verify_section_data`]) before it trusts their bytes.
pub fn verify_image_except(img: &Image, skip: Option<crate::SectionKind>) -> Result<()> {
    img.verify_layout()?;
    img.verify_data_except(skip)?;
    check_model(img.checkpoint(), img.page_span(), img.file_span())
}
