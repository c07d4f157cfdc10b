//! Process-wide signal state: the 64 handlers and the shared pending queue.
//!
//! Handlers are not in procfs (status has only the SigCgt/SigIgn bitmaps); they come from
//! `/dev/checkpoint` ([`crate::kmod`]) or are asked from inside the target with remote
//! `rt_sigaction` ([`remote_signal_state`]); see [`crate::source`]. The shared pending queue is
//! read from outside with `PTRACE_PEEKSIGINFO_SHARED`. Model type: [`ProcessSignals`] in
//! `psnc_format::model`, which also carries the interval and POSIX timers of
//! [`crate::timers`]. Per-thread signal state (mask, private queue, sigaltstack) lives in
//! [`crate::threads`].

use psnc_format::model::{ProcessSignals, SigAction, SigInfo};
use psnc_ptrace::{RemoteSyscaller, Tracee};

use crate::error::Result;
use crate::stop::trace_error;
use crate::timers::KernelTimerState;

/// The kernel-only signal state of the process: what `rt_sigaction` reports in the target, from
/// either source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelSignalState {
    /// Handlers of signals 1..=64.
    pub actions: Vec<SigAction>,
}

/// Reads the 64 handlers with remote syscalls in one thread.
pub fn remote_signal_state(pid: i32, sc: &mut RemoteSyscaller<'_>) -> Result<KernelSignalState> {
    let tid = sc.tracee().tid();
    let actions = sc
        .get_all_sigactions()
        .map_err(|e| trace_error(pid, tid, "rt_sigaction", e))?;
    Ok(KernelSignalState { actions })
}

/// Assembles the process's signal state, its timers included; the shared queue is read from the
/// leader.
pub fn collect(
    pid: i32,
    leader: &Tracee,
    remote: KernelSignalState,
    timers: KernelTimerState,
) -> Result<ProcessSignals> {
    let shared = leader
        .peek_siginfo(true)
        .map_err(|e| trace_error(pid, leader.tid(), "PTRACE_PEEKSIGINFO (shared)", e))?;
    Ok(ProcessSignals {
        actions: remote.actions,
        shared_pending: shared.iter().map(SigInfo::from).collect(),
        itimers: timers.itimers,
        posix_timers: timers.posix_timers,
    })
}
