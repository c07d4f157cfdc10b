//! Interval timers (`ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF`) and POSIX timers: which exist
//! and their values at the stop.
//!
//! Which POSIX timers exist, on which clock and how they notify comes from procfs
//! (`/proc/PID/timers`, [`TimerInfo`]). The values are kernel-only state: from `/dev/checkpoint`
//! (`GET_ITIMERS`, and `GET_POSIX_TIMERS` from module 0.3.0 on, asked in [`crate::kmod`]) or
//! from remote `getitimer` and `timer_gettime` in the target ([`remote_timer_state`]); see
//! [`crate::source`]. Either way each value is what those calls report in the target, so the
//! module's answers are converted here to what the calls would say (`itimer_us`,
//! [`module_timer_values`]). Model types: [`ITimer`] and [`PosixTimer`] in `psnc_format::model`,
//! stored in the process's [`ProcessSignals`](psnc_format::model::ProcessSignals) (assembled in
//! [`crate::signals`]).

use psnc_format::model::{ITimer, PosixTimer};
use psnc_ptrace::kmod::{uapi, ITimerNs, PosixTimersNs};
use psnc_ptrace::RemoteSyscaller;

use crate::error::{CaptureError, Result};
use crate::procfs::TimerInfo;
use crate::stop::{trace_error, Frozen};

/// The kernel-only timer state of the process: what `getitimer` and `timer_gettime` report in
/// the target, from either source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelTimerState {
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

/// Reads the interval timers and the values of the POSIX timers listed in `/proc/PID/timers`
/// (`timers`) with remote syscalls in one thread.
pub fn remote_timer_state(
    pid: i32,
    sc: &mut RemoteSyscaller<'_>,
    timers: &[TimerInfo],
    itimers: &[psnc_ptrace::ITimerVal; 3],
) -> Result<KernelTimerState> {
    Ok(KernelTimerState {
        itimers: itimers.map(|v| ITimer {
            value_us: to_us(v.value_sec, v.value_usec),
            interval_us: to_us(v.interval_sec, v.interval_usec),
        }),
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

/// An interval timer as `getitimer` reports it: microseconds, truncated.
pub(crate) fn itimer_us(t: ITimerNs) -> ITimer {
    ITimer {
        value_us: t.value_ns / 1000,
        interval_us: t.interval_ns / 1000,
    }
}

/// The values of the POSIX timers `timers` (from `/proc/PID/timers`) as the module reports them
/// (`listed`), or why the module cannot give every one of them: a timer on a CPU-time or alarm
/// clock, more timers than the command holds, or a timer the module did not list.
pub fn module_timer_values(
    listed: &PosixTimersNs,
    timers: &[TimerInfo],
) -> std::result::Result<Vec<PosixTimer>, String> {
    if listed.more {
        return Err(format!(
            "the process has more than {} timers",
            uapi::MAX_POSIX_TIMERS
        ));
    }
    timers
        .iter()
        .map(|t| {
            let Some(m) = listed.timers.iter().find(|m| m.id as u32 == t.id) else {
                return Err(format!("the module did not list timer {}", t.id));
            };
            let Some(value_ns) = m.value_ns else {
                return Err(format!(
                    "the module cannot read timer {} on clock {}",
                    t.id, m.clockid
                ));
            };
            Ok(model_timer(t, m.interval_ns, value_ns))
        })
        .collect()
}

/// Asks the values of `timers` with remote `timer_gettime` in the leader, because the module
/// cannot give them (`why`): maps a scratch page in the target and unmaps it again.
pub(crate) fn remote_timer_values(
    frozen: &mut Frozen,
    timers: &[TimerInfo],
    why: &str,
    provenance: &mut Vec<String>,
) -> Result<(Vec<PosixTimer>, bool)> {
    let pid = frozen.pid();
    let Some(t) = frozen.threads().first_mut() else {
        return Err(CaptureError::NoSuchProcess { pid });
    };
    let leader = t.tid();
    let mut sc = RemoteSyscaller::find(t)
        .map_err(|e| trace_error(pid, leader, "finding a syscall instruction", e))?;
    let values = posix_timers(pid, &mut sc, timers)?;
    sc.finish()
        .map_err(|e| trace_error(pid, leader, "unmapping the scratch page", e))?;
    provenance.push(format!(
        "POSIX timers ({}): remote timer_gettime, scratch page mapped and unmapped again ({why})",
        timers.len()
    ));
    Ok((values, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use psnc_ptrace::kmod::PosixTimerNs;

    fn info(id: u32) -> TimerInfo {
        TimerInfo {
            id,
            signo: 10,
            sigev_value: 0x1234,
            notify: 4,
            notify_pid: 77,
            clock: 1,
        }
    }

    fn listed(id: i32, value_ns: Option<u64>) -> PosixTimerNs {
        PosixTimerNs {
            id,
            clockid: 1,
            sigev_notify: 4,
            signo: 10,
            value_ns,
            interval_ns: 5_000_000,
        }
    }

    #[test]
    fn timer_values_from_the_module() {
        let l = PosixTimersNs {
            timers: vec![listed(1, Some(7)), listed(0, Some(0))],
            more: false,
        };
        let v = module_timer_values(&l, &[info(0), info(1)]).unwrap();
        assert_eq!(
            v.iter().map(|t| (t.id, t.value_ns)).collect::<Vec<_>>(),
            [(0, 0), (1, 7)]
        );
        assert_eq!(v[1].interval_ns, 5_000_000);
        assert_eq!(v[1].notify_tid, 77);
        assert_eq!(v[1].sigev_value, 0x1234);
    }

    #[test]
    fn unknown_timer_values_fall_back() {
        let unknown = PosixTimersNs {
            timers: vec![listed(0, Some(1)), listed(1, None)],
            more: false,
        };
        assert_eq!(
            module_timer_values(&unknown, &[info(0), info(1)]),
            Err("the module cannot read timer 1 on clock 1".to_string())
        );
        let more = PosixTimersNs {
            timers: vec![listed(0, Some(1))],
            more: true,
        };
        assert_eq!(
            module_timer_values(&more, &[info(0)]),
            Err("the process has more than 32 timers".to_string())
        );
        let absent = PosixTimersNs {
            timers: vec![],
            more: false,
        };
        assert_eq!(
            module_timer_values(&absent, &[info(3)]),
            Err("the module did not list timer 3".to_string())
        );
    }

    #[test]
    fn itimers_truncate_like_getitimer() {
        assert_eq!(
            itimer_us(ITimerNs {
                value_ns: 1_999_999,
                interval_ns: 100_000_000
            }),
            ITimer {
                value_us: 1_999,
                interval_us: 100_000
            }
        );
    }

    #[test]
    fn microseconds() {
        assert_eq!(to_us(2, 500), 2_000_500);
        assert_eq!(to_us(-1, 5), 5);
    }
}
