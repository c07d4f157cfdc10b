//! The kernel-only state from `/dev/checkpoint`: the module source of [`crate::source`].
//!
//! Every value is what the system call would report inside the target, so the result equals
//! the remote path's field for field: interval timers arrive in nanoseconds and are truncated to
//! microseconds as `getitimer` truncates them; handler flags are already masked as
//! `rt_sigaction` masks them; sigaltstack's `SS_ONSTACK` is computed from the thread's saved
//! stack pointer, as an injected `sigaltstack` computes it. Process-wide values are asked of the
//! thread-group leader, as the remote path asks them in the leader.
//!
//! The module answers only the thread that ptrace-attached the target, while the target sits in
//! a ptrace stop: capture calls this from the thread that froze it, before anything resumes it.

use psnc_format::model::{Arch, ITimer, PosixTimer, SigAction, SigAltStack};
use psnc_ptrace::kmod::{uapi, ITimerNs, KmodDevice, ModuleVersion, PosixTimersNs};
use psnc_ptrace::RemoteSyscaller;

use crate::error::{CaptureError, Result};
use crate::procfs::TimerInfo;
use crate::signals::{self, KernelSignalState};
use crate::source::{KernelProcessState, KernelState};
use crate::stop::{trace_error, Frozen};
use crate::threads::KernelThreadState;

/// An interval timer as `getitimer` reports it: microseconds, truncated.
fn itimer_us(t: ITimerNs) -> ITimer {
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
            Ok(signals::model_timer(t, m.interval_ns, value_ns))
        })
        .collect()
}

/// Reads the kernel-only state of every thread of `frozen` (mode `arch`) from the module
/// (`version` says which commands it serves). The values of the POSIX timers (`timers`, from
/// `/proc/PID/timers`) come from `GET_POSIX_TIMERS` when the module serves it and knows every
/// value; otherwise they are asked with remote `timer_gettime` in the leader, the one
/// injection left, for this process only.
pub fn kmod_state(
    dev: &KmodDevice,
    version: &ModuleVersion,
    frozen: &mut Frozen,
    arch: Arch,
    timers: &[TimerInfo],
) -> Result<KernelState> {
    let pid = frozen.pid();
    let Some(leader) = frozen.threads().first().map(|t| t.tid()) else {
        return Err(CaptureError::NoSuchProcess { pid });
    };
    let err = |tid: i32, what: &'static str| move |e| trace_error(pid, tid, what, e);

    let actions = dev
        .sigactions(leader)
        .map_err(err(leader, "reading the handlers from /dev/checkpoint"))?
        .into_iter()
        .map(|a| SigAction {
            handler: a.handler,
            flags: a.flags,
            restorer: a.restorer,
            mask: a.mask,
        })
        .collect();
    let itimers = dev
        .itimers(leader)
        .map_err(err(
            leader,
            "reading the interval timers from /dev/checkpoint",
        ))?
        .map(itimer_us);
    let misc = dev.task_misc(leader).map_err(err(
        leader,
        "reading brk and prctl state from /dev/checkpoint",
    ))?;
    let misc2 = dev
        .task_misc2(leader)
        .map_err(err(leader, "reading securebits from /dev/checkpoint"))?;
    let process = KernelProcessState {
        brk: misc.brk,
        dumpable: misc.dumpable,
        pdeathsig: misc.pdeathsig,
        child_subreaper: misc.child_subreaper,
        securebits: misc2.securebits,
    };

    let mut threads = Vec::with_capacity(frozen.threads().len());
    for t in frozen.threads().iter() {
        let tid = t.tid();
        let ss = dev
            .sigaltstack(tid)
            .map_err(err(tid, "reading the sigaltstack from /dev/checkpoint"))?;
        let clear_child_tid = if tid == leader {
            misc.clear_child_tid
        } else {
            dev.task_misc(tid)
                .map_err(err(tid, "reading clear_child_tid from /dev/checkpoint"))?
                .clear_child_tid
        };
        let compat_robust_list = match arch {
            Arch::I386 if tid == leader => Some(misc2.compat_robust_list),
            Arch::I386 => Some(
                dev.task_misc2(tid)
                    .map_err(err(tid, "reading the robust list from /dev/checkpoint"))?
                    .compat_robust_list,
            ),
            Arch::X86_64 => None,
        };
        threads.push(KernelThreadState {
            sigaltstack: SigAltStack {
                sp: ss.sp,
                flags: ss.flags as u32,
                size: ss.size,
            },
            clear_child_tid,
            compat_robust_list,
        });
    }

    let mut provenance = vec![
        "handlers: /dev/checkpoint GET_SIGACTIONS".to_string(),
        "interval timers: /dev/checkpoint GET_ITIMERS".to_string(),
        "brk, dumpable, pdeathsig, child_subreaper: /dev/checkpoint GET_TASK_MISC".to_string(),
        "securebits: /dev/checkpoint GET_TASK_MISC2".to_string(),
        format!(
            "{} thread(s): sigaltstack GET_SIGALTSTACK, clear_child_tid GET_TASK_MISC{}",
            threads.len(),
            if arch == Arch::I386 {
                ", compat robust list GET_TASK_MISC2"
            } else {
                ""
            }
        ),
    ];
    let (posix_timers, injected) = if timers.is_empty() {
        provenance.push("POSIX timers: none; nothing was run in the target".into());
        (Vec::new(), false)
    } else {
        let module = if version.missing(uapi::FEAT_POSIX_TIMERS) != 0 {
            Err(format!(
                "module {} has no PSNC_CP_GET_POSIX_TIMERS",
                version.module_version
            ))
        } else {
            let listed = dev
                .posix_timers(leader)
                .map_err(err(leader, "reading the POSIX timers from /dev/checkpoint"))?;
            module_timer_values(&listed, timers)
        };
        match module {
            Ok(values) => {
                provenance.push(format!(
                    "POSIX timers ({}): /dev/checkpoint GET_POSIX_TIMERS; nothing was run in the \
                     target",
                    timers.len()
                ));
                (values, false)
            }
            Err(why) => remote_timer_values(frozen, timers, &why, &mut provenance)?,
        }
    };
    Ok(KernelState {
        process,
        signals: KernelSignalState {
            actions,
            itimers,
            posix_timers,
        },
        threads,
        provenance,
        injected,
    })
}

/// Asks the values of `timers` with remote `timer_gettime` in the leader, because the module
/// cannot give them (`why`): maps a scratch page in the target and unmaps it again.
fn remote_timer_values(
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
    let values = signals::posix_timers(pid, &mut sc, timers)?;
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
}
