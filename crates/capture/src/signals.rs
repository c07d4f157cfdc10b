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

/// The signals whose `rt_sigaction` the final stop of a pre-copy asks for: those with a
/// handler (`SigCgt`), those ignored (`SigIgn`), SIGCHLD (whose `SA_NOCLDWAIT` and
/// `SA_NOCLDSTOP` act with `SIG_DFL` too) and `flagged`, the signals whose `SIG_DFL` action had
/// flags or a mask at the first stop (which asked for all 64). Any other signal is `SIG_DFL`
/// now and had no flags and no mask at the first stop; it is recorded so, which saves most of 64
/// remote calls in the stop (flags set on a `SIG_DFL` action between the two stops act on
/// nothing, and would show only in the old action a later `sigaction` returns).
pub fn remote_query_mask(sig_cgt: u64, sig_ign: u64, flagged: u64) -> u64 {
    sig_cgt | sig_ign | flagged | 1u64 << (libc::SIGCHLD - 1)
}

/// The signals of `actions` (1..=64) that are `SIG_DFL` with flags or a mask.
pub fn flagged_defaults(actions: &[SigAction]) -> u64 {
    actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.handler == 0 && (a.flags != 0 || a.mask != 0 || a.restorer != 0))
        .fold(0, |m, (i, _)| m | 1u64 << i)
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
