//! Interval timers and POSIX timers.
//!
//! Owns [`psnc_format::model::ProcessSignals`]' `itimers` ([`psnc_format::model::ITimer`]:
//! `ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF`, armed with `setitimer`) and `posix_timers`
//! ([`psnc_format::model::PosixTimer`], recreated with `timer_create` under their own ids and
//! armed with `timer_settime`). Remaining times are the ones recorded at capture: time passed
//! while the image was stored is not counted.

use psnc_format::model::Process;
use psnc_ptrace::Sysno;

use crate::error::{RestoreError, Result};
use crate::remote::Task;

/// `ITIMER_REAL`, `ITIMER_VIRTUAL` and `ITIMER_PROF`, each with its remaining time and interval.
pub fn restore_itimers(task: &mut Task, p: &Process) -> Result<()> {
    for (which, t) in p.signals.itimers.iter().enumerate() {
        // A periodic ITIMER_REAL that expired while the process was stopped reads as value 0
        // with its SIGALRM pending: the kernel re-arms it only when that signal is dequeued
        // (dequeue_signal), from the interval it still holds. Arming it here with one interval
        // keeps it periodic; the requeued SIGALRM then finds it armed and is delivered as usual.
        let value_us = match (t.value_us, t.interval_us) {
            (0, 0) => continue,
            (0, interval) => interval,
            (value, _) => value,
        };
        let val = psnc_ptrace::ITimerVal {
            interval_sec: (t.interval_us / 1_000_000) as i64,
            interval_usec: (t.interval_us % 1_000_000) as i64,
            value_sec: (value_us / 1_000_000) as i64,
            value_usec: (value_us % 1_000_000) as i64,
        };
        task.with_syscaller(&format!("arming interval timer {which}"), |sc| {
            sc.setitimer(which as i32, &val)
        })?;
    }
    Ok(())
}

const PR_TIMER_CREATE_RESTORE_IDS: u64 = 77;

/// POSIX timers with their ids, notification and remaining time. The ids are chosen with
/// `PR_TIMER_CREATE_RESTORE_IDS` (Linux 6.15+), which makes `timer_create` take the id from its
/// third argument. Runs in the leader after every thread exists (SIGEV_THREAD_ID names one).
pub fn restore_posix_timers(task: &mut Task, p: &Process) -> Result<()> {
    if p.signals.posix_timers.is_empty() {
        return Ok(());
    }
    let step = "choosing POSIX timer ids (PR_TIMER_CREATE_RESTORE_IDS)";
    let r = task.call_raw(
        step,
        Sysno::Prctl,
        &[PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0],
    )?;
    if r < 0 {
        return Err(RestoreError::Unsupported {
            what: format!(
                "process {} with POSIX timers on this kernel (choosing timer ids needs Linux 6.15 or later)",
                p.pid
            ),
        });
    }
    for t in &p.signals.posix_timers {
        let step = format!("creating POSIX timer {}", t.id);
        // struct sigevent: value, signo, notify, thread id; 64 bytes in both modes.
        let mut sev = Vec::with_capacity(64);
        match task.arch {
            psnc_ptrace::Arch::X86_64 => sev.extend_from_slice(&t.sigev_value.to_le_bytes()),
            psnc_ptrace::Arch::I386 => sev.extend_from_slice(&(t.sigev_value as u32).to_le_bytes()),
        }
        sev.extend_from_slice(&t.signo.to_le_bytes());
        sev.extend_from_slice(&t.notify.to_le_bytes());
        sev.extend_from_slice(&t.notify_tid.to_le_bytes());
        sev.resize(64, 0);
        let sev_addr = task.put(&step, 0, &sev)?;
        let id_addr = task.put(&step, 64, &t.id.to_le_bytes())?;
        task.call(
            &step,
            Sysno::TimerCreate,
            &[u64::from(t.clock), sev_addr, id_addr],
        )?;
        let mut got = [0u8; 4];
        task.mem
            .read_exact_at(id_addr, &mut got)
            .map_err(task.step_err(&step))?;
        if u32::from_le_bytes(got) != t.id {
            return Err(RestoreError::Inconsistent(format!(
                "{step}: the kernel gave id {}",
                u32::from_le_bytes(got)
            )));
        }
    }
    task.call(
        "back to sequential timer ids",
        Sysno::Prctl,
        &[PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0],
    )?;
    for t in p.signals.posix_timers.iter().filter(|t| t.value_ns != 0) {
        let spec = psnc_ptrace::remote::ITimerSpec {
            interval_sec: (t.interval_ns / 1_000_000_000) as i64,
            interval_nsec: (t.interval_ns % 1_000_000_000) as i64,
            value_sec: (t.value_ns / 1_000_000_000) as i64,
            value_nsec: (t.value_ns % 1_000_000_000) as i64,
        };
        task.with_syscaller(&format!("arming POSIX timer {}", t.id), |sc| {
            sc.timer_settime(t.id as i32, 0, &spec)
        })?;
    }
    Ok(())
}
