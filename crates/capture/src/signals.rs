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

/// The signals whose `rt_sigaction` the remote path asks for: those with a handler (`SigCgt`),
/// those ignored (`SigIgn`) and SIGCHLD, whose `SA_NOCLDWAIT` and `SA_NOCLDSTOP` act with
/// `SIG_DFL` too. For any other signal the action is `SIG_DFL`, and its flags and mask act on
/// nothing (they show only in the old action a later `sigaction` returns): it is recorded as
/// `SIG_DFL` with no flags, which saves a remote call per signal (most of 64) in the stop.
pub fn remote_query_mask(sig_cgt: u64, sig_ign: u64) -> u64 {
    sig_cgt | sig_ign | 1u64 << (libc::SIGCHLD - 1)
}

/// Reads the handlers with remote syscalls in one thread: the signals in `which`
/// ([`remote_query_mask`]), the others `SIG_DFL`.
pub fn remote_signal_state(
    pid: i32,
    sc: &mut RemoteSyscaller<'_>,
    which: u64,
) -> Result<KernelSignalState> {
    let tid = sc.tracee().tid();
    let actions = sc
        .get_sigactions(which)
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
