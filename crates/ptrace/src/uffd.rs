//! Userfaultfd, both ways the tools use it:
//!
//! - [`WriteTracker`] (capture's pre-copy): tracking the writes of a running process to its
//!   memory, described below.
//! - [`MissingPages`] (restore's `--lazy`): filling a running process's memory on first touch
//!   and in the background, with the non-cooperative events (fork, mremap, madvise, munmap);
//!   see its documentation.
//!
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

/// `UFFDIO_API` with `features` on `uffd` (of process `pid`); `op` names it in the error.
fn enable(uffd: &OwnedFd, pid: i32, features: u64, op: &'static str) -> Result<()> {
    let mut api = UffdioApi {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    ioctl(uffd, UFFDIO_API, &mut api, op, pid)?;
    Ok(())
}

/// `UFFDIO_REGISTER` of `[start, start + len)` in `mode` on `uffd` (of process `pid`).
fn register_range(
    uffd: &OwnedFd,
    pid: i32,
    start: u64,
    len: u64,
    mode: u64,
    op: &'static str,
) -> Result<()> {
    let mut reg = UffdioRegister {
        range: UffdioRange { start, len },
        mode,
        ioctls: 0,
    };
    ioctl(uffd, UFFDIO_REGISTER, &mut reg, op, pid)?;
    Ok(())
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
        enable(
            &uffd,
            pid,
            UFFD_FEATURE_WP_ASYNC,
            "UFFDIO_API (asynchronous write protection)",
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
        register_range(
            &self.uffd,
            self.pid,
            start,
            len,
            UFFDIO_REGISTER_MODE_WP,
            "UFFDIO_REGISTER",
        )
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

/// `UFFD_FEATURE_EVENT_FORK`: a fork of a registered process gives the reader a new
/// userfaultfd for the child's copy of the ranges.
const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
/// `UFFD_FEATURE_EVENT_REMAP`: mremap of a registered range is reported (and keeps the
/// registration).
const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
/// `UFFD_FEATURE_EVENT_REMOVE`: `MADV_DONTNEED`/`MADV_REMOVE` on a registered range is reported.
const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
/// `UFFD_FEATURE_EVENT_UNMAP`: munmap of a registered range is reported.
const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
/// `UFFDIO_REGISTER_MODE_MISSING`.
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1 << 0;
/// `_IOWR(0xAA, 0x03, struct uffdio_copy)`.
const UFFDIO_COPY: u64 = 0xC028_AA03;
/// `_IOWR(0xAA, 0x04, struct uffdio_zeropage)`.
const UFFDIO_ZEROPAGE: u64 = 0xC020_AA04;
/// `_IOR(0xAA, 0x02, struct uffdio_range)`.
const UFFDIO_WAKE: u64 = 0x8010_AA02;

/// `UFFD_EVENT_*` numbers of `struct uffd_msg`.
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
const UFFD_EVENT_FORK: u8 = 0x13;
const UFFD_EVENT_REMAP: u8 = 0x14;
const UFFD_EVENT_REMOVE: u8 = 0x15;
const UFFD_EVENT_UNMAP: u8 = 0x16;

/// `struct uffdio_copy`.
#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

/// `struct uffdio_zeropage`.
#[repr(C)]
struct UffdioZeropage {
    range: UffdioRange,
    mode: u64,
    zeropage: i64,
}

/// One message read from a userfaultfd in missing mode with the non-cooperative events.
#[derive(Debug)]
pub enum Event {
    /// A thread touched a page that is not there: `addr` (page-aligned), waiting until it is.
    PageFault {
        /// The page.
        addr: u64,
    },
    /// The process forked: the child's copy of the registered ranges, with its own descriptor.
    Fork {
        /// The child's userfaultfd.
        child: OwnedFd,
    },
    /// `mremap` moved `[from, from + len)` to `to`.
    Remap {
        /// Old start.
        from: u64,
        /// New start.
        to: u64,
        /// Length.
        len: u64,
    },
    /// The pages of `[start, end)` were dropped (`MADV_DONTNEED`, `MADV_REMOVE`) or unmapped:
    /// they must not be filled any more (they read as zeros, or are gone).
    Removed {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
}

/// The missing-page side of userfaultfd, for a restore that lets the process run before its
/// memory is filled (`psnc-restore --lazy`): the registered ranges of one mm (one process, or
/// a child a fork of it made) are filled by [`MissingPages::copy`] on first touch or in the
/// background.
///
/// The descriptor is made inside the process ([`MissingPages::create`]) while it still holds
/// the restore's privileges, without `UFFD_USER_MODE_ONLY`, so that faults from kernel mode
/// (a `read()` into a page not filled yet, the kernel's rseq update) wait for the page too.
/// The non-cooperative events are asked for: without `EVENT_FORK` a child would find zeros
/// where the parent's pages were not filled yet, without `EVENT_REMOVE` a page dropped with
/// `MADV_DONTNEED` would be filled with its old contents, without `EVENT_REMAP` a moved range
/// would lose its registration. While such an event is unread, `UFFDIO_COPY` fails with
/// `EAGAIN`: the reader reads the events and looks again.
#[derive(Debug)]
pub struct MissingPages {
    pid: i32,
    uffd: OwnedFd,
    /// For a 32-bit process: the kernel checks `UFFDIO_COPY`'s *source* address against the
    /// target's address-space size too (`validate_unaligned_range(ctx->mm, src, len)`), so
    /// the bytes go through a buffer of this process mapped below 2 GiB (`MAP_32BIT`).
    low: Option<LowBuffer>,
}

/// An anonymous buffer of this process below 2 GiB ([`MissingPages::below_4g`]).
#[derive(Debug)]
struct LowBuffer {
    addr: *mut u8,
    len: usize,
}

impl LowBuffer {
    fn new(len: usize) -> Result<LowBuffer> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched, and the
        // kernel picks the address (below 2 GiB with MAP_32BIT).
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(PtraceError::Syscall {
                op: "mmap(MAP_32BIT)",
                pid: 0,
                errno: Errno::last(),
            });
        }
        Ok(LowBuffer {
            addr: addr.cast(),
            len,
        })
    }
}

impl Drop for LowBuffer {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are the mapping made in `new`, unmapped once, here.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

// SAFETY: the buffer is owned memory of this process, used only through `&mut`-free copies
// made by its single owner.
unsafe impl Send for LowBuffer {}

/// What a [`MissingPages::copy`] or [`MissingPages::zero`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// This many bytes from the start were filled (all of them, or up to a page that was
    /// there already).
    Bytes(u64),
    /// The first page was there already (filled before, or the range is no longer registered:
    /// unmapped or dropped since), nothing was filled.
    Exists,
    /// An event is pending (fork, mremap, madvise, munmap): read the events, then look again.
    Again,
    /// The mm is gone (the process exited or exec'd).
    Gone,
}

impl MissingPages {
    /// Creates the userfaultfd inside the process of `sc`'s thread (stopped, with the
    /// privileges to handle kernel-mode faults: CAP_SYS_PTRACE, or
    /// `vm.unprivileged_userfaultfd`), takes it into this process, closes the process's
    /// descriptor again and enables the missing mode's events.
    pub fn create(sc: &mut RemoteSyscaller<'_>, pid: i32) -> Result<MissingPages> {
        let flags = libc::O_CLOEXEC as u64 | libc::O_NONBLOCK as u64;
        let fd = sc.syscall(Sysno::Userfaultfd, &[flags])? as i32;
        let taken =
            crate::sys::pidfd_open(pid).and_then(|p| crate::sys::pidfd_getfd(p.as_fd(), pid, fd));
        let closed = sc.close(fd);
        let uffd = taken?;
        closed?;
        MissingPages::new(uffd, pid)
    }

    /// The process (the one restored; for a child of a fork, its parent's).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The descriptor's number in this process.
    pub fn raw_fd(&self) -> i32 {
        self.uffd.as_raw_fd()
    }

    /// Registers `[start, start + len)` (whole VMAs, no holes) in missing mode: a page not
    /// there faults to this descriptor from now on.
    pub fn register(&self, start: u64, len: u64) -> Result<()> {
        register_range(
            &self.uffd,
            self.pid,
            start,
            len,
            UFFDIO_REGISTER_MODE_MISSING,
            "UFFDIO_REGISTER (missing)",
        )
    }

    /// Maps a copy of `bytes` (page-aligned length) at `dst` and wakes the threads waiting
    /// for it.
    pub fn copy(&self, dst: u64, bytes: &[u8]) -> Result<Filled> {
        let src = match &self.low {
            None => bytes.as_ptr(),
            Some(low) => {
                let n = bytes.len().min(low.len);
                // SAFETY: `low` is `low.len` bytes of this process's memory that nothing else
                // uses; `bytes` is a live slice that cannot overlap a mapping of our own.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), low.addr, n) };
                return self.copy_from(dst, low.addr, n);
            }
        };
        self.copy_from(dst, src, bytes.len())
    }

    fn copy_from(&self, dst: u64, src: *const u8, len: usize) -> Result<Filled> {
        let mut c = UffdioCopy {
            dst,
            src: src as u64,
            len: len as u64,
            mode: 0,
            copy: 0,
        };
        let r = ioctl(&self.uffd, UFFDIO_COPY, &mut c, "UFFDIO_COPY", self.pid);
        Self::filled(r, c.copy)
    }

    /// Maps zero pages at `[dst, dst + len)` and wakes the threads waiting for them.
    pub fn zero(&self, dst: u64, len: u64) -> Result<Filled> {
        let mut z = UffdioZeropage {
            range: UffdioRange { start: dst, len },
            mode: 0,
            zeropage: 0,
        };
        let r = ioctl(
            &self.uffd,
            UFFDIO_ZEROPAGE,
            &mut z,
            "UFFDIO_ZEROPAGE",
            self.pid,
        );
        Self::filled(r, z.zeropage)
    }

    fn filled(r: Result<i32>, done: i64) -> Result<Filled> {
        match r {
            Ok(_) => Ok(Filled::Bytes(done.max(0) as u64)),
            // A partial copy reports the bytes done in the struct and fails with the reason of
            // the page that stopped it.
            Err(_) if done > 0 => Ok(Filled::Bytes(done as u64)),
            Err(PtraceError::Syscall { errno, .. }) => match errno {
                Errno::EEXIST | Errno::ENOENT => Ok(Filled::Exists),
                Errno::EAGAIN => Ok(Filled::Again),
                Errno::ESRCH => Ok(Filled::Gone),
                _ => r.map(|_| Filled::Bytes(0)),
            },
            Err(e) => Err(e),
        }
    }

    /// Wakes the threads waiting for pages of `[start, start + len)` that are there already
    /// (another thread's fault filled them first).
    pub fn wake(&self, start: u64, len: u64) -> Result<()> {
        let mut r = UffdioRange { start, len };
        ioctl(&self.uffd, UFFDIO_WAKE, &mut r, "UFFDIO_WAKE", self.pid)?;
        Ok(())
    }

    /// Reads every message waiting (none: an empty vector; the descriptor does not block).
    pub fn events(&self, out: &mut Vec<Event>) -> Result<()> {
        const MSG: usize = 32;
        let mut buf = [0u8; MSG * 64];
        loop {
            // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
            let n =
                unsafe { libc::read(self.uffd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return match Errno::last() {
                    Errno::EAGAIN => Ok(()),
                    Errno::EINTR => continue,
                    errno => Err(PtraceError::Syscall {
                        op: "read(userfaultfd)",
                        pid: self.pid,
                        errno,
                    }),
                };
            }
            if n == 0 {
                return Ok(());
            }
            for m in buf[..n as usize].chunks_exact(MSG) {
                let word = |i: usize| {
                    u64::from_ne_bytes(m[8 + 8 * i..16 + 8 * i].try_into().unwrap_or([0; 8]))
                };
                match m[0] {
                    UFFD_EVENT_PAGEFAULT => out.push(Event::PageFault {
                        addr: word(1) & !0xfff,
                    }),
                    UFFD_EVENT_FORK => {
                        let fd = u32::from_ne_bytes(m[8..12].try_into().unwrap_or([0; 4])) as i32;
                        // SAFETY: the kernel installed this descriptor in our table for the
                        // fork event; nothing else owns it.
                        let child = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                        out.push(Event::Fork { child });
                    }
                    UFFD_EVENT_REMAP => out.push(Event::Remap {
                        from: word(0),
                        to: word(1),
                        len: word(2),
                    }),
                    UFFD_EVENT_REMOVE | UFFD_EVENT_UNMAP => out.push(Event::Removed {
                        start: word(0),
                        end: word(1),
                    }),
                    _ => {}
                }
            }
            if (n as usize) < buf.len() {
                return Ok(());
            }
        }
    }

    /// Enables the missing mode's events on a userfaultfd made inside process `pid` and
    /// taken from it (what [`MissingPages::create`] does after the remote calls, for a caller
    /// that runs them its own way).
    pub fn new(uffd: OwnedFd, pid: i32) -> Result<MissingPages> {
        enable(
            &uffd,
            pid,
            UFFD_FEATURE_EVENT_FORK
                | UFFD_FEATURE_EVENT_REMAP
                | UFFD_FEATURE_EVENT_REMOVE
                | UFFD_FEATURE_EVENT_UNMAP,
            "UFFDIO_API (missing pages with fork, remap, remove and unmap events)",
        )?;
        Ok(MissingPages {
            pid,
            uffd,
            low: None,
        })
    }

    /// Whether this kernel gives this process what [`MissingPages::create`] needs: a
    /// userfaultfd that takes kernel-mode faults, with the fork, remap, remove and unmap
    /// events. Tried on a descriptor of the tool's own, before anything is restored.
    pub fn probe() -> Result<()> {
        let uffd = crate::sys::userfaultfd(libc::O_CLOEXEC | libc::O_NONBLOCK)?;
        MissingPages::new(uffd, std::process::id() as i32).map(|_| ())
    }

    /// For a 32-bit process: copy through a buffer below 2 GiB of at least `len` bytes (see
    /// the `low` field).
    pub fn below_4g(&mut self, len: usize) -> Result<()> {
        self.low = Some(LowBuffer::new(len.next_multiple_of(4096))?);
        Ok(())
    }

    /// A child's descriptor from a [`Event::Fork`], of the process `pid` forked from.
    pub fn of_child(uffd: OwnedFd, pid: i32, low_len: Option<usize>) -> Result<MissingPages> {
        Ok(MissingPages {
            pid,
            uffd,
            low: low_len.map(LowBuffer::new).transpose()?,
        })
    }

    /// Waits up to `timeout_ms` (0: just looks, -1: for ever) until one of `all` has a message;
    /// returns the indexes of those that have one (or hung up).
    pub fn poll(all: &[&MissingPages], timeout_ms: i32) -> Result<Vec<usize>> {
        let mut fds: Vec<libc::pollfd> = all
            .iter()
            .map(|m| libc::pollfd {
                fd: m.uffd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        loop {
            // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if r < 0 {
                if Errno::last() == Errno::EINTR {
                    continue;
                }
                return Err(PtraceError::Syscall {
                    op: "poll(userfaultfd)",
                    pid: all.first().map_or(0, |m| m.pid),
                    errno: Errno::last(),
                });
            }
            return Ok(fds
                .iter()
                .enumerate()
                .filter(|(_, f)| f.revents != 0)
                .map(|(i, _)| i)
                .collect());
        }
    }
}
