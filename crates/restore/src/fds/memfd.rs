//! Memfd fds: each gets a description of its own on the one memfd of its shared memory object
//! ([`crate::shared_memory`], made once for every fd and mapping of it, in every process), by
//! reopening the tool's `/proc/self/fd/M` with the fd's flags and seeking to its offset. The
//! restored fd is then the same file as the mappings, as at capture; fds that shared one
//! description are fd-shares' job ([`super::shares`]).
//!
//! Model: [`psnc_format::model::FdKind::MemFdObject`].

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use psnc_format::model::Fd;

use super::{open_with_flags, regular::seek};
use crate::error::Result;
use crate::files::Replicas;

/// Opens fd `f` on the memfd of shared memory object `object`, with its flags and offset.
pub fn open(f: &Fd, object: usize, replicas: &mut Replicas) -> Result<OwnedFd> {
    let memfd = replicas.shared_memory_object(object)?;
    let link = format!("/proc/self/fd/{}", memfd.as_raw_fd());
    let fd = open_with_flags(Path::new(&link), f.flags)?;
    seek(&fd, f.pos, false, &format!("fd {}", f.fd))?;
    Ok(fd)
}
