//! Signalfds, created in the restore tool (a signalfd reads the signals of whichever task reads
//! it, so it is not tied to its creator) and handed over like the other fds.
//!
//! Model: [`FdKind::SignalFd`]: the mask; `O_NONBLOCK` comes from the fd's flags.

use std::os::fd::OwnedFd;

use psnc_format::model::{Fd, FdKind};

use crate::error::{RestoreError, Result};

/// A new signalfd with the mask of `f` (an [`FdKind::SignalFd`]).
pub fn create(pid: u32, f: &Fd) -> Result<OwnedFd> {
    let FdKind::SignalFd { mask } = f.kind else {
        unreachable!("signalfd::create of a {:?}", f.kind)
    };
    let mut flags = libc::SFD_CLOEXEC;
    if f.flags & libc::O_NONBLOCK as u32 != 0 {
        flags |= libc::SFD_NONBLOCK;
    }
    psnc_ptrace::sys::signalfd(mask, flags).map_err(|source| RestoreError::Step {
        pid,
        step: format!("creating signalfd {} with mask {mask:#x}", f.fd),
        source,
    })
}
