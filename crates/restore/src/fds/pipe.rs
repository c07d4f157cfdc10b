//! Pipes, recreated in the restore tool with their capacity and the bytes buffered in them.
//!
//! Model: [`psnc_format::model::FdKind::Pipe`] and its [`PipeEnd`]. The fds of one pipe inode
//! share one pipe, created on first use; its buffered bytes are put back once. The ends become
//! fds of the task like any other prepared file (see [`crate::fds`]).
//!
//! A pipe whose other end was outside the image (`PipeEnd::external`) is recreated the same way,
//! as CRIU does for a pipe whose peer is not in the tree: both ends are created here, the bytes
//! put back, and only the process's end is handed over, so the other end closes with the tool's
//! copy once the fds are prepared. A read end then yields the buffered bytes, then EOF; a write
//! end gets EPIPE. An `--inherit-fd` for it (planned by the checks) takes precedence: the tool's
//! descriptor is handed over as it is, without the bytes buffered at capture.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag};
use psnc_format::model::{Fd, PipeEnd};

use crate::error::{RestoreError, Result};
use crate::fds::{io_err, nix_err, set_status_flags};

/// The pipes of one restore, by inode.
#[derive(Debug, Default)]
pub struct Pipes {
    /// Pipe inode -> (read end, write end, buffered bytes put back).
    pipes: BTreeMap<u64, (OwnedFd, OwnedFd, bool)>,
    /// The unix socketpairs, which have the same lifetime: one per restore, over the tree.
    pub unix: super::unix::Socketpairs,
    /// The TCP connections rebuilt in repair mode, released once the tree's sockets all exist.
    pub tcp: super::tcp::Repaired,
}

impl Pipes {
    /// A descriptor of the end of pipe `pe` that fd `f` held, on the pipe's one open description
    /// of that end, which gets `f`'s status flags.
    pub fn open_end(&mut self, f: &Fd, pe: &PipeEnd) -> Result<OwnedFd> {
        let what = format!("fd {}", f.fd);
        let (rd, wr) = self.pipe(pe)?;
        let end = if pe.write_end { wr } else { rd };
        let fd = end.try_clone().map_err(io_err("duplicating", &what))?;
        set_status_flags(&fd, f.flags, &what)?;
        Ok(fd)
    }

    /// The pipe of inode `pe.ino`, created (with its capacity and buffered bytes) on first use.
    fn pipe(&mut self, pe: &PipeEnd) -> Result<(&OwnedFd, &OwnedFd)> {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.pipes.entry(pe.ino) {
            let what = format!("pipe:[{}]", pe.ino);
            let (rd, wr) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(nix_err("creating", &what))?;
            if pe.capacity > 0 {
                // Best effort: an unprivileged user's limit may be lower than the original's.
                let _ =
                    nix::fcntl::fcntl(wr.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(pe.capacity as i32));
            }
            slot.insert((rd, wr, false));
        }
        let Some((rd, wr, filled)) = self.pipes.get_mut(&pe.ino) else {
            return Err(RestoreError::Inconsistent(format!(
                "pipe:[{}] vanished",
                pe.ino
            )));
        };
        if !pe.buffered.is_empty() && !*filled {
            fill_pipe(wr, &pe.buffered, &format!("pipe:[{}]", pe.ino))?;
            *filled = true;
        }
        Ok((rd, wr))
    }
}

/// Writes `bytes` into a pipe that has room for them (capacity was set first); never blocks.
pub fn fill_pipe(wr: &OwnedFd, bytes: &[u8], what: &str) -> Result<()> {
    let old = nix::fcntl::fcntl(wr.as_raw_fd(), FcntlArg::F_GETFL)
        .map_err(nix_err("reading the flags of", what))?;
    nix::fcntl::fcntl(
        wr.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(old) | OFlag::O_NONBLOCK),
    )
    .map_err(nix_err("setting the flags of", what))?;
    let mut done = 0;
    while done < bytes.len() {
        match nix::unistd::write(wr.as_fd(), &bytes[done..]) {
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(RestoreError::Io {
                    what: format!(
                        "refilling {} buffered bytes ({done} written) into",
                        bytes.len()
                    ),
                    path: what.to_string(),
                    source: e.into(),
                })
            }
        }
    }
    nix::fcntl::fcntl(
        wr.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(old)),
    )
    .map_err(nix_err("setting the flags of", what))?;
    Ok(())
}
