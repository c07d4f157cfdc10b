//! FIFOs (named pipes), reopened by path with the bytes buffered in them put back.
//!
//! Model: [`psnc_format::model::FdKind::Fifo`] (its path and buffered bytes).

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::error::Result;
use crate::fds::pipe::fill_pipe;
use crate::fds::{open_with_flags, set_status_flags};

/// Opens a FIFO without blocking (a keeper read-write end exists while the real one opens), puts
/// back its buffered bytes, then gives the description its real flags.
pub fn open_fifo(path: &Path, flags: u32, buffered: &[u8]) -> Result<OwnedFd> {
    let shown = path.display().to_string();
    let keeper = open_with_flags(path, (libc::O_RDWR | libc::O_NONBLOCK) as u32)?;
    let fd = open_with_flags(path, flags | libc::O_NONBLOCK as u32)?;
    if !buffered.is_empty() {
        fill_pipe(&keeper, buffered, &shown)?;
    }
    set_status_flags(&fd, flags, &shown)?;
    Ok(fd)
}
