//! The kernel-only state from `/dev/checkpoint`: the module source of [`crate::source`].
//!
//! Every value is what the system call would report inside the target, so the result equals
//! the remote path's field for field: interval timers arrive in nanoseconds and are truncated to
//! microseconds as `getitimer` truncates them (the timer conversions, and the remote fallback for
//! POSIX timer values, are in [`crate::timers`]); handler flags are already masked as
//! `rt_sigaction` masks them; sigaltstack's `SS_ONSTACK` is computed from the thread's saved
//! stack pointer, as an injected `sigaltstack` computes it. Process-wide values are asked of the
//! thread-group leader, as the remote path asks them in the leader.
//!
//! The module answers only the thread that ptrace-attached the target, while the target sits in
//! a ptrace stop: capture calls this from the thread that froze it, before anything resumes it.

use psnc_format::model::Arch;
use psnc_ptrace::kmod::{uapi, KmodDevice, ModuleVersion};

use crate::error::{CaptureError, Result};
use crate::procfs::TimerInfo;
use crate::signals::KernelSignalState;
use crate::source::{KernelProcessState, KernelState};
use crate::stop::{trace_error, Frozen};
use crate::threads::KernelThreadState;
use crate::timers::{self, KernelTimerState};

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
        .map_err(err(leader, "reading the handlers from /dev/checkpoint"))?;
    let itimers = dev
        .itimers(leader)
        .map_err(err(
            leader,
            "reading the interval timers from /dev/checkpoint",
        ))?
        .map(timers::itimer_us);
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
            sigaltstack: ss,
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
            timers::module_timer_values(&listed, timers)
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
            Err(why) => timers::remote_timer_values(frozen, timers, &why, &mut provenance)?,
        }
    };
    Ok(KernelState {
        process,
        signals: KernelSignalState { actions },
        timers: KernelTimerState {
            itimers,
            posix_timers,
        },
        threads,
        provenance,
        injected,
    })
}
