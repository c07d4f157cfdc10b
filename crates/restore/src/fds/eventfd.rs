//! Eventfds, created in the restore tool and handed over like the other fds.
//!
//! Model: [`FdKind::EventFd`]: the counter (written after creation, since the syscall's initial
//! value is only 32 bits) and `EFD_SEMAPHORE`; `O_NONBLOCK` comes from the fd's flags.

use std::io::Write;
use std::os::fd::OwnedFd;

use psnc_format::model::{Fd, FdKind};

use crate::error::{RestoreError, Result};

/// A new eventfd with the state of `f` (an [`FdKind::EventFd`]).
pub fn create(pid: u32, f: &Fd) -> Result<OwnedFd> {
    let FdKind::EventFd { count, semaphore } = f.kind else {
        unreachable!("eventfd::create of a {:?}", f.kind)
    };
    let step = format!("creating eventfd {}", f.fd);
    let mut flags = libc::EFD_CLOEXEC;
    if semaphore {
        flags |= libc::EFD_SEMAPHORE;
    }
    if f.flags & libc::O_NONBLOCK as u32 != 0 {
        flags |= libc::EFD_NONBLOCK;
    }
    let fd = psnc_ptrace::sys::eventfd(flags).map_err(|source| RestoreError::Step {
        pid,
        step: step.clone(),
        source,
    })?;
    if count != 0 {
        // A counter of u64::MAX cannot be written (the kernel's maximum is u64::MAX - 1), and
        // no eventfd holds it.
        let mut file = std::fs::File::from(fd);
        file.write_all(&count.to_ne_bytes()).map_err(super::io_err(
            &format!("setting the counter of eventfd {}", f.fd),
            "eventfd",
        ))?;
        return Ok(OwnedFd::from(file));
    }
    Ok(fd)
}
