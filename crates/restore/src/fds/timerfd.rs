//! Timerfds, created in the restore tool and handed over like the other fds.
//!
//! Model: [`FdKind::TimerFd`] with its [`TimerFdState`]. The timer is armed with its settime
//! flags: a relative timer with the time it had left at capture (so it counts from the moment
//! the restore creates it, shortly before the process resumes), an absolute one with its
//! absolute expiry on its clock (if that is past, it fires at once and, when periodic, counts
//! the periods missed). The expirations counted but not read at capture are then put back with
//! `TFD_IOC_SET_TICKS` (which overwrites the count, so it runs right after arming, which reset
//! it), and the program's next read sees them. Not kept: the canceled state of a
//! `TFD_TIMER_CANCEL_ON_SET` timer whose clock was set before the capture but not yet read
//! (`ECANCELED`), and for a relative timer the time between its creation here and the moment the
//! process resumes, which it counts down too.

use std::os::fd::{AsFd, OwnedFd};

use psnc_format::model::{Fd, FdKind, TimerFdState};

use crate::error::{RestoreError, Result};

/// A new timerfd with the state of `f` (an [`FdKind::TimerFd`]).
pub fn create(pid: u32, f: &Fd) -> Result<OwnedFd> {
    let FdKind::TimerFd(TimerFdState {
        clockid,
        settime_flags,
        ticks,
        value_ns,
        interval_ns,
    }) = f.kind
    else {
        unreachable!("timerfd::create of a {:?}", f.kind)
    };
    let err = |step: String| move |source| RestoreError::Step { pid, step, source };
    let mut flags = libc::TFD_CLOEXEC;
    if f.flags & libc::O_NONBLOCK as u32 != 0 {
        flags |= libc::TFD_NONBLOCK;
    }
    let fd = psnc_ptrace::sys::timerfd_create(clockid, flags)
        .map_err(err(format!("creating timerfd {} on clock {clockid}", f.fd)))?;
    if value_ns != 0 {
        psnc_ptrace::sys::timerfd_settime(fd.as_fd(), settime_flags as i32, value_ns, interval_ns)
            .map_err(err(format!(
                "arming timerfd {} (flags {settime_flags:#o}, value {value_ns} ns, interval \
                 {interval_ns} ns)",
                f.fd
            )))?;
    }
    if ticks != 0 {
        psnc_ptrace::sys::timerfd_set_ticks(fd.as_fd(), ticks).map_err(err(format!(
            "putting back the {ticks} unread expirations of timerfd {} (the kernel needs \
             CONFIG_CHECKPOINT_RESTORE)",
            f.fd
        )))?;
    }
    Ok(fd)
}
