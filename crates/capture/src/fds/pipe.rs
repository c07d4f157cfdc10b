//! Pipes: the ends the process holds, whether both ends are in the process, and the bytes
//! buffered in the pipe with its capacity.
//!
//! An end comes from procfs: the `pipe:[INODE]` link of `/proc/PID/fd/N` and the fd's access
//! mode in `fdinfo`. The buffered bytes and the capacity are copied without consuming them from a
//! duplicate of the target's fd (`pidfd_getfd`, then `tee`: [`TeePipePeek`]); the same
//! [`PipePeek`] reads the bytes of FIFOs ([`super::fifo`]). Model type: [`PipeEnd`] in
//! [`FdKind::Pipe`], `psnc_format::model`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use psnc_format::model::{Fd, FdKind, PipeEnd};

use crate::error::{CaptureError, Result};
use crate::procfs::ProcDir;

use super::with_pid;

/// The [`FdKind::Pipe`] of fd `fd` if its link `link` names a pipe (`pipe:[INODE]`), the end
/// given by the access mode in `flags`; `None` for any other link.
pub(super) fn classify(
    proc_dir: &ProcDir,
    fd: i32,
    link: &str,
    flags: u32,
) -> Result<Option<FdKind>> {
    let Some(ino) = link
        .strip_prefix("pipe:[")
        .and_then(|s| s.strip_suffix(']'))
    else {
        return Ok(None);
    };
    let ino = ino
        .parse::<u64>()
        .map_err(|_| CaptureError::parse(proc_dir.path(&format!("fd/{fd}")), link))?;
    let write_end = flags & libc::O_ACCMODE as u32 == libc::O_WRONLY as u32;
    Ok(Some(FdKind::Pipe(PipeEnd {
        ino,
        write_end,
        ..Default::default()
    })))
}

/// Reads a pipe's buffered bytes without consuming them.
pub trait PipePeek {
    /// The bytes buffered in the pipe behind the target's `fd`, and the pipe's capacity.
    fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)>;
}

/// A pipe-buffer reader for processes without pipes (and tests): refuses to read.
#[derive(Debug)]
pub struct NoPipePeek;

impl PipePeek for NoPipePeek {
    fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)> {
        Err(CaptureError::Unsupported {
            pid: 0,
            what: format!("fd {fd}"),
            kind: "a pipe".into(),
        })
    }
}

/// Fills pipes' buffered bytes and capacity, and marks pipes whose other end is not in the
/// process as external. A pipe's bytes are read once, through a read end when the process holds
/// one, and stored with the pipe's lowest fd.
pub(super) fn mark_pipes(pid: i32, fds: &mut [Fd], peek: &mut dyn PipePeek) -> Result<()> {
    // Per pipe inode: (has read end, has write end, lowest fd, lowest read-end fd).
    let mut pipes: HashMap<u64, (bool, bool, i32, Option<i32>)> = HashMap::new();
    for fd in fds.iter() {
        if let FdKind::Pipe(p) = &fd.kind {
            let e = pipes.entry(p.ino).or_insert((false, false, fd.fd, None));
            e.2 = e.2.min(fd.fd);
            if p.write_end {
                e.1 = true;
            } else {
                e.0 = true;
                e.3 = Some(e.3.map_or(fd.fd, |r| r.min(fd.fd)));
            }
        }
    }
    let mut peeked: HashMap<u64, (Vec<u8>, u32)> = HashMap::new();
    for (ino, (_, _, lowest, read_fd)) in &pipes {
        let via = read_fd.unwrap_or(*lowest);
        peeked.insert(*ino, peek.peek(via).map_err(|e| with_pid(e, pid))?);
    }
    for fd in fds.iter_mut() {
        let n = fd.fd;
        if let FdKind::Pipe(p) = &mut fd.kind {
            let (r, w, lowest, _) = pipes.get(&p.ino).copied().unwrap_or_default();
            p.external = !(r && w);
            if let Some((bytes, cap)) = peeked.get_mut(&p.ino) {
                p.capacity = *cap;
                if n == lowest {
                    p.buffered = std::mem::take(bytes);
                }
            }
        }
    }
    Ok(())
}

/// Reads pipe buffers of a stopped target: a duplicate of the target's fd with `pidfd_getfd`
/// (the same pipe), then `tee` into a pipe of our own, which copies the buffered bytes without
/// consuming them, then a read of our copy. `tee` needs a readable source: for a write end the
/// pipe is opened again for reading through `/proc/PID/fd/N` (non-blocking, so it never waits
/// for a writer), which adds a reader only for the moment of the copy.
#[derive(Debug)]
pub struct TeePipePeek {
    pid: i32,
    pidfd: OwnedFd,
}

impl TeePipePeek {
    /// Opens a pidfd for `pid`.
    pub fn new(pid: i32) -> Result<Self> {
        let pidfd = psnc_ptrace::sys::pidfd_open(pid)
            .map_err(|e| crate::stop::trace_error(pid, pid, "pidfd_open", e))?;
        Ok(TeePipePeek { pid, pidfd })
    }
}

impl PipePeek for TeePipePeek {
    fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)> {
        let pid = self.pid;
        let what = format!("reading the buffer of the pipe behind fd {fd}");
        let terr = |e| crate::stop::trace_error(pid, pid, &what, e);
        let ioerr = |e: io::Error| CaptureError::File {
            pid,
            what: format!("fd {fd}"),
            path: "pipe".into(),
            source: e,
        };
        let dup = psnc_ptrace::sys::pidfd_getfd(self.pidfd.as_fd(), pid, fd).map_err(terr)?;
        let capacity = nix::fcntl::fcntl(dup.as_raw_fd(), nix::fcntl::FcntlArg::F_GETPIPE_SZ)
            .map_err(|e| ioerr(e.into()))?;
        let accmode = nix::fcntl::fcntl(dup.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| ioerr(e.into()))?
            & libc::O_ACCMODE;
        let source: OwnedFd = if accmode == libc::O_WRONLY {
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(format!("/proc/{pid}/fd/{fd}"))
                .map_err(ioerr)?
                .into()
        } else {
            dup
        };
        let (copy_r, copy_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| ioerr(e.into()))?;
        nix::fcntl::fcntl(
            copy_w.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(capacity),
        )
        .map_err(|e| ioerr(e.into()))?;
        let n = match psnc_ptrace::sys::tee(source.as_fd(), copy_w.as_fd(), capacity as usize, true)
        {
            Ok(n) => n,
            // Empty pipe with a writer.
            Err(psnc_ptrace::PtraceError::Syscall {
                errno: nix::errno::Errno::EAGAIN,
                ..
            }) => 0,
            Err(e) => return Err(terr(e)),
        };
        drop(copy_w);
        let mut bytes = Vec::with_capacity(n);
        fs::File::from(copy_r)
            .read_to_end(&mut bytes)
            .map_err(ioerr)?;
        Ok((bytes, u32::try_from(capacity).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakePeek;
    impl PipePeek for FakePeek {
        fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)> {
            Ok((vec![fd as u8], 65536))
        }
    }

    #[test]
    fn pipes_buffer_once_and_external() {
        let pipe = |fd: i32, ino: u64, write_end: bool| Fd {
            fd,
            flags: 0,
            cloexec: false,
            pos: 0,
            kind: FdKind::Pipe(PipeEnd {
                ino,
                write_end,
                ..Default::default()
            }),
        };
        let mut fds = vec![pipe(3, 10, false), pipe(4, 10, true), pipe(5, 11, false)];
        mark_pipes(1, &mut fds, &mut FakePeek).unwrap();
        let ends: Vec<&PipeEnd> = fds
            .iter()
            .map(|f| match &f.kind {
                FdKind::Pipe(p) => p,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ends[0].buffered, vec![3]);
        assert!(ends[1].buffered.is_empty());
        assert_eq!(ends[1].capacity, 65536);
        assert!(!ends[0].external && !ends[1].external);
        assert!(ends[2].external);
        assert_eq!(ends[2].buffered, vec![5]);
    }
}
