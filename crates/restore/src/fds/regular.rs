//! Regular files, directories and character devices other than terminals, reopened by path
//! with their status flags and offset; and fds of deleted (or changed) files, reopened on the
//! replica of their stored contents.
//!
//! Model: [`psnc_format::model::FdKind::Regular`] (a [`psnc_format::model::FileRef`]),
//! [`psnc_format::model::FdKind::Directory`] and [`psnc_format::model::FdKind::CharDevice`],
//! with the fd's `flags` and `pos`. Each open here is a description of its own; fds that shared
//! one at capture (through dup or fork) are given this one description
//! ([`crate::fds::shares`]), so their offsets move together again.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use psnc_format::model::{Fd, FdKind, FileId};

use crate::error::{RestoreError, Result};
use crate::fds::open_with_flags;
use crate::files::Replicas;

/// Opens fd `f` of kind `kind` at `path` with its flags, at its offset (best effort for a
/// directory; devices are not seeked).
pub fn open(f: &Fd, path: &Path, kind: &FdKind) -> Result<OwnedFd> {
    let what = format!("fd {}", f.fd);
    let fd = open_with_flags(path, f.flags)?;
    if matches!(kind, FdKind::Regular(_) | FdKind::Directory { .. }) {
        seek(&fd, f.pos, matches!(kind, FdKind::Directory { .. }), &what)?;
    }
    Ok(fd)
}

/// Opens fd `f`, whose file `id` is stored (deleted at capture, or changed since), on the one
/// replica of that file (made at `path` when it is free), with the fd's flags and offset.
pub fn open_deleted(
    f: &Fd,
    id: FileId,
    path: &str,
    kind: &FdKind,
    replicas: &mut Replicas,
) -> Result<OwnedFd> {
    let what = format!("fd {}", f.fd);
    let (mode, inode) = match kind {
        FdKind::Regular(r) => (r.identity.mode, (r.identity.dev, r.identity.ino)),
        _ => (0o600, (0, 0)),
    };
    let replica = replicas.replica(id, inode, Some((path, mode)))?;
    // A description of its own, with this fd's flags and offset.
    let link = format!("/proc/self/fd/{}", replica.as_raw_fd());
    let fd = open_with_flags(Path::new(&link), f.flags)?;
    seek(&fd, f.pos, false, &what)?;
    Ok(fd)
}

pub(super) fn seek(fd: &OwnedFd, pos: u64, best_effort: bool, what: &str) -> Result<()> {
    let Ok(off) = i64::try_from(pos) else {
        return Err(RestoreError::Inconsistent(format!(
            "{what}: offset {pos} is out of range"
        )));
    };
    match nix::unistd::lseek(fd.as_raw_fd(), off, nix::unistd::Whence::SeekSet) {
        Ok(_) => Ok(()),
        Err(_) if best_effort => Ok(()),
        Err(e) => Err(RestoreError::Io {
            what: format!("seeking to {pos} in"),
            path: what.to_string(),
            source: e.into(),
        }),
    }
}
