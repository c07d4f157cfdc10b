//! Tracking the writes of a running process to its memory: a userfaultfd in asynchronous
//! write-protect mode (`UFFD_FEATURE_WP_ASYNC`, Linux 6.7) and the `PAGEMAP_SCAN` ioctl of
//! `/proc/PID/pagemap` (6.7), which reports the pages written since they were protected and
//! protects them again in the same call.
//!
//! A userfaultfd belongs to the mm of the process that created it, so [`WriteTracker::create`]
//! makes it inside the target (one remote `userfaultfd()`), takes a copy with `pidfd_getfd` and
//! closes the target's descriptor again before the target runs: the target ends with the same
//! descriptor table, and the tool holds the only reference. Everything else happens from the
//! tool, on the target's mm, while the target runs:
//!
//! - [`WriteTracker::register`] registers a range in `UFFDIO_REGISTER_MODE_WP`, and
//!   [`WriteTracker::protect`] protects pages of it (`UFFDIO_WRITEPROTECT`). In asynchronous
//!   mode the kernel resolves a write fault itself, without a message and without blocking the
//!   writer: it clears the page's protection, which is what "written" means to `PAGEMAP_SCAN`.
//!   A page of an anonymous VMA populated after the protection has no write-protect bit
//!   either, so it counts as written too. Asynchronous mode implies
//!   `UFFD_FEATURE_WP_UNPOPULATED` (the kernel sets it): protecting a page that is not
//!   populated puts a PTE marker in it, which `/proc/PID/pagemap` reports as swapped, so
//!   protect populated pages only; file-backed VMAs get markers in any case.
//! - [`WriteTracker::written`] lists the written pages of a range and, with `reset`, protects
//!   them again (`PM_SCAN_WP_MATCHING`), atomically per page.
//!
//! Dropping the tracker closes the last reference: the kernel unregisters every range and
//! removes the protection (`userfaultfd_release`), so a tool that dies mid-way leaves the target
//! unwatched too. The target's `/proc/PID/smaps` shows `uw` in `VmFlags` while a range is tracked.
//!
//! `UFFD_USER_MODE_ONLY` lets an unprivileged target create the descriptor whatever
//! `vm.unprivileged_userfaultfd` says; faults from kernel mode (a `read()` into a protected
//! buffer) are resolved by the asynchronous path before that flag is consulted, so they are
//! tracked as well.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{PtraceError, Result};
use crate::remote::RemoteSyscaller;
use crate::Sysno;

/// `UFFD_USER_MODE_ONLY`: only faults from user mode go to the descriptor (enough for
/// asynchronous write protection, and allowed to unprivileged processes).
const UFFD_USER_MODE_ONLY: u64 = 1;
/// `UFFD_API`.
const UFFD_API: u64 = 0xAA;
/// `UFFD_FEATURE_WP_ASYNC`: the kernel resolves write-protect faults itself.
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
/// `UFFDIO_REGISTER_MODE_WP`.
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
/// `UFFDIO_WRITEPROTECT_MODE_WP`.
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;

/// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
const UFFDIO_API: u64 = 0xC018_AA3F;
/// `_IOWR(0xAA, 0x00, struct uffdio_register)`.
const UFFDIO_REGISTER: u64 = 0xC020_AA00;
/// `_IOWR(0xAA, 0x06, struct uffdio_writeprotect)`.
const UFFDIO_WRITEPROTECT: u64 = 0xC018_AA06;
/// `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: u64 = 0xC060_6610;

/// `PM_SCAN_WP_MATCHING`: write-protect the pages reported.
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
/// `PAGE_IS_WPALLOWED`: in a VMA under asynchronous write protection.
const PAGE_IS_WPALLOWED: u64 = 1 << 0;
/// `PAGE_IS_WRITTEN`: written since it was protected.
const PAGE_IS_WRITTEN: u64 = 1 << 1;

/// `struct uffdio_api`.
#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// `struct uffdio_range`.
#[repr(C)]
#[derive(Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

/// `struct uffdio_writeprotect`.
#[repr(C)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

/// `struct pm_scan_arg`.
#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// `struct page_region`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// Regions asked for per `PAGEMAP_SCAN` call.
const SCAN_BATCH: usize = 1024;

/// Write tracking over the memory of one process; see the module documentation.
#[derive(Debug)]
pub struct WriteTracker {
    pid: i32,
    uffd: OwnedFd,
    pagemap: File,
}

/// Runs `ioctl(fd, req, arg)`; `op` names it in the error.
fn ioctl<T>(fd: &impl AsRawFd, req: u64, arg: &mut T, op: &'static str, pid: i32) -> Result<i32> {
    // Every `req` used here takes exactly a `T` (the repr(C) uapi structs above, in the kernel's
    // layout); pointers inside it (the scan's `vec`) the caller sets to a live buffer of
    // `vec_len` entries.
    // SAFETY: `arg` is a live, exclusive `T` of `req`'s layout: the kernel may read and write it.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::c_ulong, arg as *mut T) };
    if r < 0 {
        Err(PtraceError::Syscall {
            op,
            pid,
            errno: Errno::last(),
        })
    } else {
        Ok(r)
    }
}

/// The `PAGE_IS_*` categories of `PAGEMAP_SCAN` that [`scan_pages`] reports.
pub mod category {
    /// `PAGE_IS_WRITTEN`: written since it was write-protected (asynchronous mode).
    pub const WRITTEN: u64 = 1 << 1;
    /// `PAGE_IS_FILE`: a page-cache page (not anonymous).
    pub const FILE: u64 = 1 << 2;
    /// `PAGE_IS_PRESENT`: in memory.
    pub const PRESENT: u64 = 1 << 3;
    /// `PAGE_IS_SWAPPED`: a swap entry (or a PTE marker, see [`super::WriteTracker::protect`]).
    pub const SWAPPED: u64 = 1 << 4;
}

/// Appends to `out` the regions `(start, end, categories)` of `[start, end)` that have at least
/// one category of `any_of`, with the categories of `report` each has, in address order, through
/// `PAGEMAP_SCAN` on `pagemap` (the open `/proc/PID/pagemap` of process `pid`). One call covers
/// many pages, where reading pagemap costs 8 bytes per page. Fails with ENOTTY or EINVAL before
/// Linux 6.7.
pub fn scan_pages(
    pagemap: &File,
    pid: i32,
    start: u64,
    end: u64,
    any_of: u64,
    report: u64,
    out: &mut Vec<(u64, u64, u64)>,
) -> Result<()> {
    let query = PmScanArg {
        category_anyof_mask: any_of,
        return_mask: report,
        ..Default::default()
    };
    scan(pagemap, pid, start, end, query, out)
}

/// The `PAGEMAP_SCAN` walk of `[start, end)` with `query`'s flags and masks, in batches of
/// [`SCAN_BATCH`] regions, appending `(start, end, categories)` to `out` with adjacent regions of
/// equal categories merged.
fn scan(
    pagemap: &impl AsRawFd,
    pid: i32,
    start: u64,
    end: u64,
    query: PmScanArg,
    out: &mut Vec<(u64, u64, u64)>,
) -> Result<()> {
    let mut regions = vec![PageRegion::default(); SCAN_BATCH];
    let mut at = start;
    while at < end {
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            start: at,
            end,
            vec: regions.as_mut_ptr() as u64,
            vec_len: regions.len() as u64,
            ..query
        };
        let n = ioctl(pagemap, PAGEMAP_SCAN, &mut arg, "PAGEMAP_SCAN", pid)? as usize;
        for r in &regions[..n.min(regions.len())] {
            match out.last_mut() {
                Some(last) if last.1 == r.start && last.2 == r.categories => last.1 = r.end,
                _ => out.push((r.start, r.end, r.categories)),
            }
        }
        if arg.walk_end <= at {
            break;
        }
        at = arg.walk_end;
    }
    Ok(())
}

impl WriteTracker {
    /// Creates the userfaultfd inside the process of `sc`'s thread (which must be stopped),
    /// takes it into this process and closes the target's descriptor again; then enables
    /// asynchronous write protection. `pid` is the process (for pidfd_getfd and errors). On
    /// error the target's descriptor is closed too, when the remote close still can run.
    pub fn create(sc: &mut RemoteSyscaller<'_>, pid: i32) -> Result<WriteTracker> {
        let flags = libc::O_CLOEXEC as u64 | libc::O_NONBLOCK as u64 | UFFD_USER_MODE_ONLY;
        let fd = sc.syscall(Sysno::Userfaultfd, &[flags])? as i32;
        let taken =
            crate::sys::pidfd_open(pid).and_then(|p| crate::sys::pidfd_getfd(p.as_fd(), pid, fd));
        let closed = sc.close(fd);
        let uffd = taken?;
        closed?;
        let pagemap =
            File::open(format!("/proc/{pid}/pagemap")).map_err(|source| PtraceError::Io {
                op: "open",
                path: format!("/proc/{pid}/pagemap"),
                source,
            })?;
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_WP_ASYNC,
            ioctls: 0,
        };
        ioctl(
            &uffd,
            UFFDIO_API,
            &mut api,
            "UFFDIO_API (asynchronous write protection)",
            pid,
        )?;
        Ok(WriteTracker { pid, uffd, pagemap })
    }

    /// The process tracked.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Registers `[start, start + len)` for write protection; it must be one or more whole
    /// VMAs of the target without holes. Nothing is protected yet: see
    /// [`WriteTracker::protect`].
    pub fn register(&self, start: u64, len: u64) -> Result<()> {
        let mut reg = UffdioRegister {
            range: UffdioRange { start, len },
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        ioctl(
            &self.uffd,
            UFFDIO_REGISTER,
            &mut reg,
            "UFFDIO_REGISTER",
            self.pid,
        )?;
        Ok(())
    }

    /// Write-protects the pages of `[start, start + len)`, inside a registered range, so that
    /// their next write shows in [`WriteTracker::written`].
    ///
    /// Protect only populated pages: the kernel enables `UFFD_FEATURE_WP_UNPOPULATED` along
    /// with asynchronous mode, so protecting a page not populated yet leaves a PTE marker in
    /// it, which `/proc/PID/pagemap` reports as a swapped page until the tracking ends. A page
    /// populated later without protection counts as written anyway.
    pub fn protect(&self, start: u64, len: u64) -> Result<()> {
        let mut wp = UffdioWriteprotect {
            range: UffdioRange { start, len },
            mode: UFFDIO_WRITEPROTECT_MODE_WP,
        };
        ioctl(
            &self.uffd,
            UFFDIO_WRITEPROTECT,
            &mut wp,
            "UFFDIO_WRITEPROTECT",
            self.pid,
        )?;
        Ok(())
    }

    /// Appends to `out` the page ranges `(start, end)` of `[start, end)` written since they
    /// were last protected, in address order; with `reset`, protects them again in the same
    /// walk. Only pages of registered VMAs (`PAGE_IS_WPALLOWED`) and populated pages
    /// (`PAGEMAP_SCAN` counts an empty page table entry as written) are reported, so one call
    /// may span many VMAs, tracked or not: a VMA that lost its registration (mapped, or moved by
    /// mremap, since [`WriteTracker::register`]) is skipped, and the caller must tell by other
    /// means (smaps `uw`) that its pages are no longer tracked.
    pub fn written(
        &self,
        start: u64,
        end: u64,
        reset: bool,
        out: &mut Vec<(u64, u64)>,
    ) -> Result<()> {
        let query = PmScanArg {
            flags: if reset { PM_SCAN_WP_MATCHING } else { 0 },
            // A page table entry that is none counts as written (it has no protection): only
            // populated pages are reported, and protected again.
            category_mask: PAGE_IS_WRITTEN | PAGE_IS_WPALLOWED,
            category_anyof_mask: category::PRESENT | category::SWAPPED,
            return_mask: PAGE_IS_WRITTEN,
            ..Default::default()
        };
        let mut regions = Vec::new();
        scan(&self.pagemap, self.pid, start, end, query, &mut regions)?;
        // Every region has the one category reported, so equal neighbours are merged already.
        out.extend(regions.into_iter().map(|(s, e, _)| (s, e)));
        Ok(())
    }
}
