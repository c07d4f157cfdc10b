//! Reading and writing another process's memory.
//!
//! Two paths, for two needs:
//! - [`vm_read`] uses `process_vm_readv`: many ranges in one syscall, no page-table walk of ours,
//!   the fast path for bulk reads. It fails on pages the target cannot read (PROT_NONE) and stops
//!   at the first such range.
//! - [`ProcMem`] uses `pread`/`pwrite` on `/proc/PID/mem`: one range per call, but it reads and
//!   writes through page protections (as a debugger does), which restore needs to fill read-only
//!   and PROT_NONE mappings.

use std::fs::{File, OpenOptions};
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use crate::error::{PtraceError, Result};

/// The kernel's limit on iovecs per call (`UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// A range of the target's address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteRange {
    /// Start address in the target.
    pub addr: u64,
    /// Length in bytes.
    pub len: usize,
}

/// Reads `ranges` of process `pid`, in order, into `buf` laid end to end, with as few
/// `process_vm_readv` calls as the iovec limit allows. Returns the bytes read: less than the sum
/// of the lengths when a range is not readable, in which case everything up to the first
/// unreadable byte is in `buf`. `buf` must hold the sum of the lengths.
pub fn vm_read(pid: i32, ranges: &[RemoteRange], buf: &mut [u8]) -> Result<usize> {
    let total: usize = ranges.iter().map(|r| r.len).sum();
    if buf.len() < total {
        return Err(PtraceError::ShortTransfer {
            pid,
            op: "read",
            addr: ranges.first().map_or(0, |r| r.addr),
            len: total,
            done: 0,
        });
    }
    let lens: Vec<usize> = ranges.iter().map(|r| r.len).collect();
    in_chunks(pid, "process_vm_readv", &lens, |chunk, done, want| {
        let remote: Vec<RemoteIoVec> = ranges[chunk]
            .iter()
            .map(|r| RemoteIoVec {
                base: r.addr as usize,
                len: r.len,
            })
            .collect();
        process_vm_readv(
            Pid::from_raw(pid),
            &mut [IoSliceMut::new(&mut buf[done..done + want])],
            &remote,
        )
    })
}

/// The loop of [`vm_read`] and [`vm_write_many`]: `run` transfers the pieces of `lens` in
/// `chunk` (at most [`IOV_MAX`]), starting `done` bytes in, `want` bytes in all. Stops at the
/// first short chunk: returns the bytes transferred from the start, EFAULT of a chunk's first
/// byte being a partial result, not an error.
fn in_chunks(
    pid: i32,
    op: &'static str,
    lens: &[usize],
    mut run: impl FnMut(std::ops::Range<usize>, usize, usize) -> nix::Result<usize>,
) -> Result<usize> {
    let mut done = 0usize;
    let mut start = 0;
    while start < lens.len() {
        let end = (start + IOV_MAX).min(lens.len());
        let want: usize = lens[start..end].iter().sum();
        let n = match run(start..end, done, want) {
            Ok(n) => n,
            Err(Errno::EFAULT) => return Ok(done),
            Err(errno) => return Err(PtraceError::Syscall { op, pid, errno }),
        };
        done += n;
        if n < want {
            return Ok(done);
        }
        start = end;
    }
    Ok(done)
}

/// Reads exactly `buf.len()` bytes at `addr` of process `pid` with `process_vm_readv`;
/// [`PtraceError::ShortTransfer`] when part of the range is not readable.
pub fn vm_read_exact(pid: i32, addr: u64, buf: &mut [u8]) -> Result<()> {
    let len = buf.len();
    let done = vm_read(pid, &[RemoteRange { addr, len }], buf)?;
    if done != len {
        return Err(PtraceError::ShortTransfer {
            pid,
            op: "read",
            addr,
            len,
            done,
        });
    }
    Ok(())
}

/// Writes `buf` at `addr` of process `pid` with `process_vm_writev` (the pages must be writable
/// in the target; use [`ProcMem::write_at`] otherwise). Returns the bytes written.
pub fn vm_write(pid: i32, addr: u64, buf: &[u8]) -> Result<usize> {
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: buf.len(),
    }];
    process_vm_writev(Pid::from_raw(pid), &[std::io::IoSlice::new(buf)], &remote).map_err(|errno| {
        PtraceError::Syscall {
            op: "process_vm_writev",
            pid,
            errno,
        }
    })
}

/// Writes each `(addr, bytes)` of `pieces` into process `pid` with `process_vm_writev`, up to
/// 1,024 pieces per call (the pages must be writable in the target). Returns how many bytes
/// were written from the start of the list: less than their sum when a page is not writable
/// (the caller writes the rest another way, e.g. [`ProcMem::write_at`]).
pub fn vm_write_many(pid: i32, pieces: &[(u64, &[u8])]) -> Result<usize> {
    let lens: Vec<usize> = pieces.iter().map(|p| p.1.len()).collect();
    in_chunks(pid, "process_vm_writev", &lens, |chunk, _, _| {
        let local: Vec<std::io::IoSlice<'_>> = pieces[chunk.clone()]
            .iter()
            .map(|p| std::io::IoSlice::new(p.1))
            .collect();
        let remote: Vec<RemoteIoVec> = pieces[chunk]
            .iter()
            .map(|p| RemoteIoVec {
                base: p.0 as usize,
                len: p.1.len(),
            })
            .collect();
        process_vm_writev(Pid::from_raw(pid), &local, &remote)
    })
}

/// `/proc/PID/mem` of a process, open for reading and writing.
///
/// Access is checked by the kernel at open (ptrace access mode ATTACH): keep the file only while
/// you may trace the process.
#[derive(Debug)]
pub struct ProcMem {
    pid: i32,
    path: String,
    file: File,
}

impl ProcMem {
    /// Opens `/proc/PID/mem` read-write (read-only if `write` is false).
    pub fn open(pid: i32, write: bool) -> Result<ProcMem> {
        let path = format!("/proc/{pid}/mem");
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(&path)
            .map_err(|source| PtraceError::Io {
                op: "open",
                path: path.clone(),
                source,
            })?;
        Ok(ProcMem { pid, path, file })
    }

    /// The process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Reads up to `buf.len()` bytes at `addr`, through protections; returns how many were read
    /// (short when the range runs into an unmapped page).
    pub fn read_at(&self, addr: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], addr + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: unmapped page. What was read so far is the answer.
                Err(e) if e.raw_os_error() == Some(libc::EIO) && done > 0 => break,
                Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                Err(source) => {
                    return Err(PtraceError::Io {
                        op: "pread",
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(done)
    }

    /// Reads exactly `buf.len()` bytes at `addr` or fails with [`PtraceError::ShortTransfer`].
    pub fn read_exact_at(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let done = self.read_at(addr, buf)?;
        if done != buf.len() {
            return Err(PtraceError::ShortTransfer {
                pid: self.pid,
                op: "read",
                addr,
                len: buf.len(),
                done,
            });
        }
        Ok(())
    }

    /// Writes all of `buf` at `addr`, through protections (read-only and PROT_NONE pages
    /// included, private file pages are COWed); [`PtraceError::ShortTransfer`] when the range
    /// runs into an unmapped page.
    pub fn write_at(&self, addr: u64, buf: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.write_at(&buf[done..], addr + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                Err(source) => {
                    return Err(PtraceError::Io {
                        op: "pwrite",
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        if done != buf.len() {
            return Err(PtraceError::ShortTransfer {
                pid: self.pid,
                op: "write",
                addr,
                len: buf.len(),
                done,
            });
        }
        Ok(())
    }
}
