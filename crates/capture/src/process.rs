//! The process-wide attributes that are neither memory, signals, timers, credentials nor files:
//! the ids (pid, parent, process group, session), comm, cmdline and auxv, cwd and root, umask,
//! personality, resource limits, and the prctl flags (dumpable, no_new_privs, pdeathsig,
//! child_subreaper) with the seccomp mode.
//!
//! Most come from procfs (`/proc/PID/stat`, `status`, `comm`, `cmdline`, `auxv`, the `cwd` and
//! `root` links, `personality`, `limits`); dumpable, pdeathsig and child_subreaper are
//! kernel-only state (remote `prctl` in the leader or `/dev/checkpoint` `GET_TASK_MISC`, see
//! [`crate::source`]). Model type: the process-wide fields of [`Process`] in
//! `psnc_format::model` (its `arch` and the parts of the other modules are filled in by
//! [`crate::capture`]).

use psnc_format::model::Process;

use crate::error::Result;
use crate::procfs::{ProcDir, Stat, Status};
use crate::source::KernelProcessState;

/// The process-wide attributes of the process of `proc_dir`, from its `stat`, `status`, the
/// other `/proc/PID` files and the kernel-only `kernel` state. Every other field of the returned
/// [`Process`] (arch, creds, exe, mm, threads, vmas, pages, fds, signals) is left at its default
/// for the caller to fill.
pub fn collect(
    proc_dir: &ProcDir,
    stat: &Stat,
    status: &Status,
    kernel: &KernelProcessState,
) -> Result<Process> {
    let pid = proc_dir.pid();
    let auxv = proc_dir.read_bytes("auxv")?;
    let cmdline = proc_dir.read_bytes("cmdline")?;
    let comm = proc_dir
        .read_string("comm")?
        .trim_end_matches('\n')
        .to_string();
    let u = |v: i32| u32::try_from(v).unwrap_or(0);
    Ok(Process {
        pid: u(pid),
        ppid: u(stat.ppid),
        pgid: u(stat.pgrp),
        sid: u(stat.session),
        comm,
        cwd: proc_dir.read_link("cwd")?,
        root: proc_dir.read_link("root")?,
        umask: status.umask,
        personality: proc_dir.personality()?,
        rlimits: proc_dir.limits()?,
        auxv,
        cmdline,
        dumpable: kernel.dumpable,
        no_new_privs: status.no_new_privs,
        pdeathsig: kernel.pdeathsig,
        child_subreaper: kernel.child_subreaper,
        seccomp_mode: status.seccomp,
        ..Process::default()
    })
}
