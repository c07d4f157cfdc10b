//! SIGINT, SIGTERM and SIGHUP of the tool, turned into a clean stop.
//!
//! Rather than a handler that runs at an arbitrary moment (perhaps while the target's registers
//! are borrowed for a remote syscall), the signals are blocked and read from a signalfd at safe
//! points: between capture steps and between memory chunks, never inside a remote syscall. A
//! pending signal turns into [`CaptureError::Interrupted`]; the normal error path then detaches
//! every thread, removes the temporary image and exits. The target is left running and unchanged.
//!
//! Blocking must happen before the tool starts any thread, since new threads inherit the mask.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{CaptureError, Result};

/// The blocked termination signals and the signalfd that reports them.
#[derive(Debug)]
pub struct Interrupts {
    fd: SignalFd,
}

impl Interrupts {
    /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and opens a non-blocking signalfd
    /// for them.
    pub fn install() -> std::io::Result<Self> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGHUP);
        set.thread_block().map_err(std::io::Error::from)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(std::io::Error::from)?;
        Ok(Interrupts { fd })
    }

    /// Fails with [`CaptureError::Interrupted`] if one of the signals arrived.
    pub fn check(&self) -> Result<()> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Err(CaptureError::Interrupted {
                signal: info.ssi_signo as i32,
            }),
            _ => Ok(()),
        }
    }
}
