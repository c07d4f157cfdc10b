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

use psnc_format::model::{Arch, ITimer, SigAction, SigAltStack};
use psnc_ptrace::kmod::{ITimerNs, KmodDevice};
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

/// Reads the kernel-only state of every thread of `frozen` (mode `arch`) from the module. POSIX
/// timers (`timers`, from `/proc/PID/timers`) have no module command: when there are any, their
/// values are asked with remote `timer_gettime` in the leader, the one injection left.
pub fn kmod_state(
    dev: &KmodDevice,
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
        let Some(t) = frozen.threads().first_mut() else {
            return Err(CaptureError::NoSuchProcess { pid });
        };
        let mut sc =
            RemoteSyscaller::find(t).map_err(err(leader, "finding a syscall instruction"))?;
        let values = signals::posix_timers(pid, &mut sc, timers)?;
        sc.finish()
            .map_err(err(leader, "unmapping the scratch page"))?;
        provenance.push(format!(
            "POSIX timers ({}): remote timer_gettime, scratch page mapped and unmapped again \
             (the module has no command for them)",
            timers.len()
        ));
        (values, true)
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

#[cfg(test)]
mod tests {
    use super::*;

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
