//! The process-wide attributes that no other module owns: root and working directory, umask,
//! personality, name, rlimits and the prctl flags (child-subreaper, no_new_privs); and the
//! housekeeping around the task's fds during the rebuild: closing what the stub inherited, and
//! the pidfd of the restore tool through which the task takes over every prepared file.
//!
//! Model: the attribute fields of [`psnc_format::model::Process`] (`root`, `cwd`, `umask`,
//! `personality`, `comm`, `rlimits` as [`psnc_format::model::Rlimit`], `child_subreaper`,
//! `no_new_privs`). `dumpable` and `pdeathsig` are process attributes too, but a credential
//! change resets them, so [`crate::creds::after_creds`] sets them.

use std::os::fd::OwnedFd;
use std::path::Path;

use psnc_format::model::Process;
use psnc_ptrace::Sysno;

use crate::error::{RestoreError, Result};
use crate::fds::open_with_flags;
use crate::remote::{Call, Task};
use crate::threads::u64_at;
use crate::LocalFiles;

/// `prctl` option that sets the name of the calling thread (the leader's is the process's).
pub(crate) const PR_SET_NAME: u64 = 15;
const PR_SET_CHILD_SUBREAPER: u64 = 36;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const F_DUPFD_CLOEXEC: u64 = 1030;
const RLIMIT_NOFILE: u64 = 7;

/// Closes every fd the stub inherited from the restore tool (its stdio).
pub fn close_inherited(task: &mut Task) -> Result<()> {
    task.call(
        "closing the fds the stub inherited",
        Sysno::CloseRange,
        &[0, u64::from(u32::MAX), 0],
    )?;
    Ok(())
}

/// Opens, in the task, a pidfd of the restore tool, placed above every fd number of the image
/// so that installing the image's fds never lands on it. Raises RLIMIT_NOFILE to its hard limit
/// for the rebuild (the image's limits are set later).
pub fn open_pidfd(task: &mut Task, p: &Process) -> Result<u64> {
    let step = "raising RLIMIT_NOFILE for the rebuild";
    let old = task.put(step, 0, &[0u8; 16])?;
    task.call(step, Sysno::Prlimit64, &[0, RLIMIT_NOFILE, 0, old])?;
    let mut b = [0u8; 16];
    task.mem
        .read_exact_at(old, &mut b)
        .map_err(task.step_err(step))?;
    let hard = u64_at(&b, 8);
    let need = p.fds.iter().map(|f| f.fd as u64 + 2).max().unwrap_or(0);
    let hard = hard.max(need);
    let new = [hard.to_le_bytes(), hard.to_le_bytes()].concat();
    let new = task.put(step, 0, &new)?;
    task.call(step, Sysno::Prlimit64, &[0, RLIMIT_NOFILE, new, 0])?;

    let me = std::process::id();
    let step = "opening a pidfd of the restore tool in the task";
    let fd = task.call(step, Sysno::PidfdOpen, &[u64::from(me), 0])?;
    let low = p
        .fds
        .iter()
        .map(|f| f.fd as u64 + 1)
        .max()
        .unwrap_or(0)
        .max(3);
    let high = task.call(step, Sysno::Fcntl, &[fd, F_DUPFD_CLOEXEC, low])?;
    task.call(step, Sysno::Close, &[fd])?;
    Ok(high)
}

/// Opens the working directory in the restore tool, for [`set_cwd`].
pub fn open_cwd(p: &Process) -> Result<OwnedFd> {
    open_with_flags(
        Path::new(&p.cwd),
        (libc::O_RDONLY | libc::O_DIRECTORY) as u32,
    )
    .map_err(|e| match e {
        RestoreError::Io { source, .. } => RestoreError::MissingFile {
            path: p.cwd.clone(),
            used_by: "the working directory".into(),
            reason: format!("not openable ({source})"),
        },
        other => other,
    })
}

/// Enters the root (when chrooted) and the working directory.
pub fn set_cwd(task: &mut Task, p: &Process, local: &LocalFiles, pidfd: u64) -> Result<()> {
    if p.root != "/" && !p.root.is_empty() {
        let step = format!("chroot to {}", p.root);
        let path = task.put_str(&step, 0, &p.root)?;
        task.call(&step, Sysno::Chroot, &[path])?;
    }
    let Some(cwd) = &local.cwd else { return Ok(()) };
    use std::os::fd::AsRawFd;
    let step = format!("entering the working directory {}", p.cwd);
    let fd = task.call(
        &step,
        Sysno::PidfdGetfd,
        &[pidfd, cwd.as_raw_fd() as u64, 0],
    )?;
    task.call(&step, Sysno::Fchdir, &[fd])?;
    task.call(&step, Sysno::Close, &[fd])?;
    Ok(())
}

/// Umask, personality, name and the rlimits of the image.
pub fn restore_attributes(task: &mut Task, p: &Process) -> Result<()> {
    task.call("setting the umask", Sysno::Umask, &[u64::from(p.umask)])?;
    task.call(
        "setting the personality",
        Sysno::Personality,
        &[u64::from(p.personality)],
    )?;
    let mut comm: Vec<u8> = p.comm.as_bytes().iter().copied().take(15).collect();
    comm.push(0);
    let addr = task.put("setting the name", 0, &comm)?;
    task.call("setting the name", Sysno::Prctl, &[PR_SET_NAME, addr])?;

    // The rlimits in one batch, each from its own 16 bytes of the scratch area.
    let data: Vec<u8> = p
        .rlimits
        .iter()
        .flat_map(|r| [r.cur.to_le_bytes(), r.max.to_le_bytes()].concat())
        .collect();
    let base = task.put("setting the rlimits", task.data_offset(), &data)?;
    let calls: Vec<Call> = p
        .rlimits
        .iter()
        .enumerate()
        .map(|(res, r)| {
            Call::new(
                format!("setting rlimit {res} to {}/{}", r.cur, r.max),
                Sysno::Prlimit64,
                &[0, res as u64, base + 16 * res as u64, 0],
            )
        })
        .collect();
    task.batch(&calls)?;
    Ok(())
}

/// The prctl flags child-subreaper and no_new_privs.
pub fn restore_flags(task: &mut Task, p: &Process) -> Result<()> {
    if p.child_subreaper {
        task.call(
            "setting child-subreaper",
            Sysno::Prctl,
            &[PR_SET_CHILD_SUBREAPER, 1],
        )?;
    }
    if p.no_new_privs {
        task.call(
            "setting no_new_privs",
            Sysno::Prctl,
            &[PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0],
        )?;
    }
    Ok(())
}
