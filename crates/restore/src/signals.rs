//! Signal dispositions and the process-wide pending queue.
//!
//! Owns [`psnc_format::model::ProcessSignals`]' `actions` (one [`psnc_format::model::SigAction`] per signal, set with
//! `rt_sigaction` in the task) and `shared_pending` ([`psnc_format::model::SigInfo`], requeued
//! with `rt_sigqueueinfo` and their full siginfo). Every signal is blocked in the task while
//! this runs, so nothing queued here is delivered before the task runs on its own; the order
//! with the other steps is the crate's (see the crate doc). A thread's own pending signals are
//! queued by [`crate::threads::queue_thread_signals`]; the interval and POSIX timers, which
//! also live in `ProcessSignals`, are [`crate::timers`].

use psnc_format::model::Process;
use psnc_ptrace::{KernelSigInfo, SigAction, Sysno};

use crate::error::Result;
use crate::remote::{Call, Task};

/// The signal handlers of the image, and the default for every signal it does not list
/// (handlers the stub inherited as SIG_IGN from the restore tool go back to the default). The
/// 62 `rt_sigaction` run as one batch, each from its own slot of the scratch area.
pub fn restore_handlers(task: &mut Task, p: &Process) -> Result<()> {
    let step = "setting the signal handlers";
    let size = SigAction::kernel_len(task.arch) as u64;
    let mut data = Vec::with_capacity(64 * size as usize);
    let mut sigs = Vec::with_capacity(64);
    for sig in 1..=64i32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let act = match p.signals.actions.get(sig as usize - 1) {
            Some(a) => SigAction {
                handler: a.handler,
                flags: a.flags,
                restorer: a.restorer,
                mask: a.mask,
            },
            None => SigAction::default(),
        };
        data.extend_from_slice(&act.to_bytes(task.arch)[..size as usize]);
        sigs.push(sig);
    }
    let base = task.put(step, task.data_offset(), &data)?;
    let calls: Vec<Call> = sigs
        .iter()
        .enumerate()
        .map(|(i, &sig)| {
            Call::new(
                format!("setting the handler of signal {sig}"),
                Sysno::RtSigaction,
                &[sig as u64, base + i as u64 * size, 0, 8],
            )
        })
        .collect();
    task.batch(&calls)?;
    Ok(())
}

/// Queues the process-wide (shared) pending signals in their order, with their full siginfo.
pub fn queue_shared_pending(task: &mut Task, p: &Process) -> Result<()> {
    for s in &p.signals.shared_pending {
        let step = format!("queueing process-wide signal {}", s.signo);
        let info = KernelSigInfo::from(s);
        let info = match task.arch {
            psnc_ptrace::Arch::X86_64 => info,
            psnc_ptrace::Arch::I386 => psnc_ptrace::siginfo::to_compat(&info),
        };
        let addr = task.put(&step, 0, &info.0)?;
        task.call(
            &step,
            Sysno::RtSigqueueinfo,
            &[u64::from(p.pid), u64::from(s.signo), addr],
        )?;
    }
    Ok(())
}
