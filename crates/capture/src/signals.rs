//! Process-wide signal state: the 64 handlers, the shared pending queue, interval timers and POSIX
//! timers.
//!
//! Handlers and timers are not in procfs (status has only the SigCgt/SigIgn bitmaps); they come
//! from `/dev/checkpoint` ([`crate::kmod`]) or are asked from inside the target with remote
//! `rt_sigaction`, `getitimer` and `timer_gettime` ([`remote_signal_state`]); see
//! [`crate::source`]. The shared pending queue is read from outside with
//! `PTRACE_PEEKSIGINFO_SHARED`. Per-thread signal state (mask, private queue, sigaltstack) lives
//! in [`crate::threads`].

use psnc_format::model::{ITimer, PosixTimer, ProcessSignals, SigAction};
use psnc_ptrace::{RemoteSyscaller, Tracee};

use crate::error::Result;
use crate::procfs::TimerInfo;
use crate::stop::trace_error;
use crate::threads::model_siginfo;

/// The kernel-only signal state of the process: what `rt_sigaction`, `getitimer` and
/// `timer_gettime` report in the target, from either source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelSignalState {
    /// Handlers of signals 1..=64.
    pub actions: Vec<SigAction>,
    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF.
    pub itimers: [ITimer; 3],
    /// POSIX timers with their current values.
    pub posix_timers: Vec<PosixTimer>,
}

/// A `timeval` in microseconds; negative parts count as 0.
pub fn to_us(sec: i64, usec: i64) -> u64 {
    u64::try_from(sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000)
        .saturating_add(u64::try_from(usec).unwrap_or(0))
}

/// Reads handlers, interval timers and the values of the POSIX timers listed in
/// `/proc/PID/timers` (`timers`) with remote syscalls in one thread.
pub fn remote_signal_state(
    pid: i32,
    sc: &mut RemoteSyscaller<'_>,
    timers: &[TimerInfo],
) -> Result<KernelSignalState> {
    let tid = sc.tracee().tid();
    let actions = sc
        .get_all_sigactions()
        .map_err(|e| trace_error(pid, tid, "rt_sigaction", e))?
        .into_iter()
        .map(|a| SigAction {
            handler: a.handler,
            flags: a.flags,
            restorer: a.restorer,
            mask: a.mask,
        })
        .collect();
    let mut itimers = [ITimer::default(); 3];
    for (which, slot) in itimers.iter_mut().enumerate() {
        let v = sc
            .getitimer(which as i32)
            .map_err(|e| trace_error(pid, tid, "getitimer", e))?;
        *slot = ITimer {
            value_us: to_us(v.value_sec, v.value_usec),
            interval_us: to_us(v.interval_sec, v.interval_usec),
        };
    }
    Ok(KernelSignalState {
        actions,
        itimers,
        posix_timers: posix_timers(pid, sc, timers)?,
    })
}

/// The POSIX timers listed in `/proc/PID/timers` (`timers`) with their current values, asked
/// with remote `timer_gettime` (procfs does not report the values; the module does for most
/// clocks, see [`crate::kmod`]).
pub fn posix_timers(
    pid: i32,
    sc: &mut RemoteSyscaller<'_>,
    timers: &[TimerInfo],
) -> Result<Vec<PosixTimer>> {
    let mut posix_timers = Vec::new();
    for t in timers {
        let (interval_ns, value_ns) = timer_gettime(pid, sc, t.id)?;
        posix_timers.push(model_timer(t, interval_ns, value_ns));
    }
    Ok(posix_timers)
}

/// The model of the timer `t` of `/proc/PID/timers` with the values `timer_gettime` reports,
/// from either source.
pub fn model_timer(t: &TimerInfo, interval_ns: u64, value_ns: u64) -> PosixTimer {
    PosixTimer {
        id: t.id,
        clock: t.clock,
        notify: t.notify,
        signo: t.signo,
        sigev_value: t.sigev_value,
        notify_tid: if t.notify & libc::SIGEV_THREAD_ID as u32 != 0 {
            t.notify_pid
        } else {
            0
        },
        value_ns,
        interval_ns,
        // The overrun count of the last expiry is not observable without consuming it.
        overrun: 0,
    }
}

/// `timer_gettime(id, &cur)` in the target: `(interval_ns, value_ns)`.
fn timer_gettime(pid: i32, sc: &mut RemoteSyscaller<'_>, id: u32) -> Result<(u64, u64)> {
    let tid = sc.tracee().tid();
    let spec = sc
        .timer_gettime(id as i32)
        .map_err(|e| trace_error(pid, tid, "timer_gettime", e))?;
    let ns = |sec: i64, nsec: i64| {
        u64::try_from(sec)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(nsec).unwrap_or(0))
    };
    Ok((
        ns(spec.interval_sec, spec.interval_nsec),
        ns(spec.value_sec, spec.value_nsec),
    ))
}

/// Assembles the process's signal state; the shared queue is read from the leader.
pub fn process_signals(
    pid: i32,
    leader: &Tracee,
    remote: KernelSignalState,
) -> Result<ProcessSignals> {
    let shared = leader
        .peek_siginfo(true)
        .map_err(|e| trace_error(pid, leader.tid(), "PTRACE_PEEKSIGINFO (shared)", e))?;
    Ok(ProcessSignals {
        actions: remote.actions,
        shared_pending: shared.iter().map(model_siginfo).collect(),
        itimers: remote.itimers,
        posix_timers: remote.posix_timers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds() {
        assert_eq!(to_us(2, 500), 2_000_500);
        assert_eq!(to_us(-1, 5), 5);
    }
}
