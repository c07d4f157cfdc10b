//! FIFOs (named pipes), reopened by path with the bytes buffered in them put back.
//!
//! Model: [`psnc_format::model::FdKind::Fifo`] (its path and buffered bytes).
//!
//! Opening a FIFO for reading or writing only blocks until the other end is open too, and a
//! non-blocking open for writing fails with ENXIO without a reader. The other end is often
//! outside the image (a supervisor's FIFO), so, as CRIU's `fifo.c` does, a read-write "keeper"
//! descriptor is opened first (never blocks: it is both ends), the real one is opened
//! non-blocking next to it, the bytes are written through the keeper, and the keeper is closed.
//! A restore never waits for a peer.
//!
//! Capture stores a FIFO's bytes with one of its fds. If the FIFO still holds bytes when it is
//! reopened, an outside process kept it open since the capture and the bytes are still in it:
//! they are not put back a second time.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag};

use crate::error::Result;
use crate::fds::pipe::fill_pipe;
use crate::fds::{nix_err, open_with_flags, set_status_flags};

/// Opens a FIFO without blocking (a keeper read-write end exists while the real one opens), puts
/// back its buffered bytes unless the FIFO still holds bytes, then gives the description its
/// real flags.
pub fn open_fifo(path: &Path, flags: u32, buffered: &[u8]) -> Result<OwnedFd> {
    let shown = path.display().to_string();
    let keeper = open_with_flags(path, (libc::O_RDWR | libc::O_NONBLOCK) as u32)?;
    let fd = open_with_flags(path, flags | libc::O_NONBLOCK as u32)?;
    if !buffered.is_empty() && !holds_bytes(&keeper, &shown)? {
        // Room for the bytes first (best effort, like a pipe's capacity): a full FIFO would
        // make the non-blocking refill fail rather than wait.
        let _ = nix::fcntl::fcntl(
            keeper.as_raw_fd(),
            FcntlArg::F_SETPIPE_SZ(buffered.len().min(i32::MAX as usize) as i32),
        );
        fill_pipe(&keeper, buffered, &shown)?;
    }
    set_status_flags(&fd, flags, &shown)?;
    Ok(fd)
}

/// Whether the FIFO behind `keeper` (a read-write descriptor, so it has a writer) holds any
/// byte: `tee` of one byte into a scratch pipe copies without consuming, and fails with EAGAIN
/// on an empty FIFO instead of waiting.
fn holds_bytes(keeper: &OwnedFd, what: &str) -> Result<bool> {
    let (_scratch_r, scratch_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(nix_err("creating a scratch pipe for", what))?;
    match psnc_ptrace::sys::tee(keeper.as_fd(), scratch_w.as_fd(), 1, true) {
        Ok(n) => Ok(n > 0),
        Err(psnc_ptrace::PtraceError::Syscall {
            errno: nix::errno::Errno::EAGAIN,
            ..
        }) => Ok(false),
        Err(e) => Err(crate::error::RestoreError::Io {
            what: "looking for bytes left in".into(),
            path: what.to_string(),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}
