//! Zombies: children that had exited unreaped at capture come back as zombies of their parent,
//! with their PID and their exit status, so that the parent's `wait` still gets them.
//!
//! Each zombie is forked from its parent's stub like any child ([`crate::tree`]), enters its
//! session and process group with the live processes (a group it leads must exist before its
//! members join), and then ends here, before any process is rebuilt:
//! - an exit code: it runs `exit_group(code)`;
//! - a signal: `RLIMIT_CORE` 0 (so that no core is written), the signal's handler back to
//!   `SIG_DFL`, the signal unblocked and sent to it. A core flag in the image cannot be
//!   recreated without writing a core, so the parent sees the signal without `WCOREDUMP`.
//!
//! It dies traced by the restore tool, which reaps it as its tracer: the kernel then hands the
//! zombie to its real parent (`wait_task_zombie`: `ptrace_unlink` and `do_notify_parent`), where
//! it stays, because the parent is a stub that waits for nothing and whose `SIGCHLD` is set to
//! `SIG_DFL` first (with `SIG_IGN` the kernel would reap it at once). That notification also
//! queues a `SIGCHLD` for the parent (blocked in the stub). The parent's pending signals are
//! the image's business: its `SIGCHLD` is discarded again ([`discard_sigchld`]), and whatever
//! the image says was pending at capture is queued later with the rest of its signals
//! ([`crate::signals`], [`crate::threads`]).

use psnc_format::model::{ExitStatus, Zombie};
use psnc_ptrace::{PtraceError, SigAction, Stop, Sysno};

use crate::error::{RestoreError, Result};
use crate::remote::Task;

/// How many stops a dying zombie may go through (its exit event, a signal-delivery-stop) before
/// the restore gives up on it.
const MAX_STOPS: usize = 100;

/// The signals whose default action does not end a process: no process ends with them.
fn ends_a_process(sig: i32) -> bool {
    !matches!(
        sig,
        libc::SIGCHLD
            | libc::SIGCONT
            | libc::SIGURG
            | libc::SIGWINCH
            | libc::SIGSTOP
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
    ) && (1..=64).contains(&sig)
}

/// Refuses a zombie whose status no restore can produce (a signal that does not kill).
pub fn check(z: &Zombie) -> Result<()> {
    if let ExitStatus::Killed { signal, .. } = z.status {
        if !ends_a_process(i32::from(signal)) {
            return Err(RestoreError::Inconsistent(format!(
                "zombie {} was killed by signal {signal}, whose default action does not end a \
                 process",
                z.pid
            )));
        }
    }
    Ok(())
}

/// Sets `SIGCHLD` of `parent` (a stub) to `SIG_DFL`, so that the kernel keeps its zombies for
/// it: the stub may have inherited `SIG_IGN` from the restore tool's own parent.
pub fn keep_zombies(parent: &mut Task) -> Result<()> {
    parent.with_syscaller("letting SIGCHLD keep zombies (SIG_DFL)", |sc| {
        sc.set_sigaction(libc::SIGCHLD, &SigAction::default())
    })
}

/// Discards the `SIGCHLD`s that the zombies' ends queued for `parent`: setting a signal to
/// `SIG_IGN` drops its pending instances (process-wide and per thread), then it goes back to
/// `SIG_DFL` until the image's handler is set.
pub fn discard_sigchld(parent: &mut Task) -> Result<()> {
    let ignore = SigAction {
        handler: libc::SIG_IGN as u64,
        ..SigAction::default()
    };
    parent.with_syscaller("discarding the SIGCHLD of its zombies", |sc| {
        sc.set_sigaction(libc::SIGCHLD, &ignore)?;
        sc.set_sigaction(libc::SIGCHLD, &SigAction::default())
    })
}

/// Ends `task`, the fork of zombie `z`, with `z`'s status, and checks that it is a zombie of its
/// parent afterwards. On an error the caller kills the task.
pub fn end(task: &mut Task, z: &Zombie) -> Result<()> {
    let fail = |why: String| RestoreError::Zombie {
        pid: z.pid,
        ppid: z.ppid,
        status: z.status.to_string(),
        why,
    };
    task.log(|| format!("ending as a zombie: {}", z.status));
    let ended = match z.status {
        ExitStatus::Exited(code) => {
            match task.call_raw("exiting", Sysno::ExitGroup, &[u64::from(code)]) {
                Ok(r) => return Err(fail(format!("exit_group returned {r}"))),
                Err(RestoreError::Step { source, .. }) => source,
                Err(e) => return Err(e),
            }
        }
        ExitStatus::Killed { signal, .. } => {
            let sig = i32::from(signal);
            let no_core = [0u8; 16];
            let addr = task.put("setting RLIMIT_CORE to 0", 0, &no_core)?;
            task.call(
                "setting RLIMIT_CORE to 0",
                Sysno::Prlimit64,
                &[0, libc::RLIMIT_CORE as u64, addr, 0],
            )?;
            if sig != libc::SIGKILL {
                task.with_syscaller(&format!("resetting the handler of signal {sig}"), |sc| {
                    sc.set_sigaction(sig, &SigAction::default())
                })?;
            }
            let step = format!("unblocking signal {sig}");
            task.tracee
                .set_sigmask(!(1u64 << (sig - 1)))
                .map_err(task.step_err(&step))?;
            let step = format!("killing itself with signal {sig}");
            psnc_ptrace::sys::tkill(task.pid, sig).map_err(task.step_err(&step))?;
            task.log(|| step.clone());
            die(task)
        }
    };
    match (ended, z.status) {
        (PtraceError::Exited { status, .. }, ExitStatus::Exited(code))
            if status == i32::from(code) => {}
        (PtraceError::Killed { signal, .. }, ExitStatus::Killed { signal: want, .. })
            if signal == i32::from(want) => {}
        (e, _) => return Err(fail(format!("it did not end so: {e}"))),
    }
    // Reaped by us as its tracer, it must now be its parent's zombie.
    let stat = psnc_proc::ProcDir::new(z.pid as i32).stat().ok();
    match stat {
        Some(s) if s.state == 'Z' && s.ppid == z.ppid as i32 => Ok(()),
        Some(s) => Err(fail(format!(
            "it is in state {} with parent {} instead of a zombie of its parent",
            s.state, s.ppid
        ))),
        None => Err(fail(
            "it vanished instead of staying a zombie of its parent (does the parent ignore \
             SIGCHLD?)"
                .into(),
        )),
    }
}

/// Lets `task` run until it dies, passing on each signal it stops for; returns how it ended.
fn die(task: &mut Task) -> PtraceError {
    let mut sig = 0;
    for _ in 0..MAX_STOPS {
        match task.tracee.cont(sig) {
            Ok(()) => {}
            // Already dying (SIGKILL takes it without a stop): its death is still to be waited
            // for.
            Err(PtraceError::Ptrace {
                errno: nix::errno::Errno::ESRCH,
                ..
            }) => {}
            Err(e) => return e,
        }
        match task.tracee.wait_stop() {
            Ok(Stop::Signal(s)) => sig = s,
            Ok(_) => sig = 0,
            Err(e) => return e,
        }
    }
    PtraceError::UnexpectedStop {
        tid: task.pid,
        stop: task.tracee.current_stop().unwrap_or(Stop::Interrupt),
        op: "ending a zombie (too many stops)",
    }
}
