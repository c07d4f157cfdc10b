//! Terminals. A terminal fd of the image comes back as one of three things, as the checks
//! planned it: one of the restore tool's own stdio fds ([`stdio_for`]), handed over as it is
//! (the default); `/dev/null` opened with the fd's flags (`--stdio null`); or, with
//! `--shell-job`, where the process joins the shell's session and job, the terminal reopened by
//! its path.
//!
//! Model: [`psnc_format::model::FdKind::Tty`] (its path and `st_rdev`) and the fd's `flags`.
//!
//! A pseudo-terminal pair of the image (section `ttys`, [`Pty`]) is made again once per
//! restore by [`Ptys`]: a new `/dev/ptmx` opened in this tool, with the image's termios,
//! window size and packet mode, unlocked; every master fd of the pair gets that master, every
//! slave fd a new open of its slave. The kernel picks the index: the tool asks for the old one
//! by opening `/dev/ptmx` again while the index it gets is lower (the kernel hands out the
//! lowest free one), so the pair keeps `/dev/pts/<index>` when that index is free on this host;
//! otherwise the pair gets another index and a program that kept its `ttyname` (or the path)
//! names a terminal that is not its own. Bytes that were queued in the pair are not kept.
//! [`take_early`] makes the pair the controlling terminal of the session leader that had it,
//! right after its `setsid` and before its children are forked (they inherit it), and
//! [`set_controlling`] sets its foreground group once every group exists, by remote ioctls in
//! the leader.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use psnc_format::model::{Checkpoint, Fd, Process, Pty};
use psnc_ptrace::Sysno;

use crate::error::{RestoreError, Result};
use crate::fds::{open_with_flags, set_status_flags};
use crate::remote::Task;

/// `/dev/null` in place of terminal fd `f`, with its flags.
pub fn open_null(f: &Fd) -> Result<OwnedFd> {
    open_with_flags(Path::new("/dev/null"), f.flags)
}

/// Terminal fd `f` reopened at `path` with its flags (`--shell-job`). Terminals are not seeked.
pub fn reopen(f: &Fd, path: &Path) -> Result<OwnedFd> {
    open_with_flags(path, f.flags)
}

/// Which of the restore tool's own descriptors stands in for a terminal fd: the same number for
/// 0..=2, else stdin for a read-only fd and stdout otherwise.
pub fn stdio_for(fd: i32, flags: u32) -> i32 {
    match fd {
        0..=2 => fd,
        _ if flags & libc::O_ACCMODE as u32 == libc::O_RDONLY as u32 => 0,
        _ => 1,
    }
}

/// How many extra `/dev/ptmx` opens the tool makes at most to reach a pair's old index.
const MAX_INDEX_TRIES: usize = 256;

/// A pair made again: its master in this tool, and its new slave's path.
#[derive(Debug)]
struct Made {
    master: OwnedFd,
    slave: PathBuf,
}

/// The pseudo-terminal pairs of one restore (a whole tree), each made at the first fd that
/// needs it.
#[derive(Debug, Default)]
pub struct Ptys {
    records: Vec<Pty>,
    made: HashMap<u32, Made>,
}

impl Ptys {
    /// The pairs of `ckpt`.
    pub fn new(ckpt: &Checkpoint) -> Self {
        Ptys {
            records: ckpt.ptys.clone(),
            made: HashMap::new(),
        }
    }

    /// The descriptor for fd `f` of `pid`: the master of pair `index` or a new open of its
    /// slave with the fd's flags.
    pub fn open_end(&mut self, pid: u32, f: &Fd, index: u32, master: bool) -> Result<OwnedFd> {
        if !self.made.contains_key(&index) {
            let rec = self
                .records
                .iter()
                .find(|t| t.index == index)
                .ok_or_else(|| {
                    RestoreError::Inconsistent(format!(
                        "fd {} of pid {pid} is an end of pty {index}, which has no record",
                        f.fd
                    ))
                })?;
            let made = make(pid, rec)?;
            self.made.insert(index, made);
        }
        let made = &self.made[&index];
        if master {
            let fd = made.master.try_clone().map_err(crate::fds::io_err(
                "duplicating the master of",
                &made.slave.display().to_string(),
            ))?;
            set_status_flags(&fd, f.flags, "a pty master")?;
            Ok(fd)
        } else {
            open_with_flags(&made.slave, f.flags)
        }
    }
}

/// Opens `/dev/ptmx` once (close-on-exec, never our controlling terminal).
fn open_ptmx() -> Result<OwnedFd> {
    open_with_flags(Path::new("/dev/ptmx"), libc::O_RDWR as u32)
}

/// A new pair for `rec`, at its old index when that one is free, with its settings.
fn make(pid: u32, rec: &Pty) -> Result<Made> {
    let step = |what: &str| format!("recreating pty {} ({what})", rec.index);
    let err = |what: &'static str| {
        move |source| RestoreError::Step {
            pid,
            step: step(what),
            source,
        }
    };
    use psnc_ptrace::sys;
    let mut spare = Vec::new();
    let mut master = open_ptmx()?;
    let mut n = sys::pty_number(master.as_fd()).map_err(err("TIOCGPTN"))?;
    // The kernel gives the lowest free index: holding the lower ones reaches the old one if it
    // is free. The spares are closed (and their indexes freed) once the pair is made.
    while n < rec.index && spare.len() < MAX_INDEX_TRIES {
        spare.push(master);
        master = open_ptmx()?;
        n = sys::pty_number(master.as_fd()).map_err(err("TIOCGPTN"))?;
    }
    drop(spare);
    let termios: sys::TermiosBytes = rec.termios.as_slice().try_into().map_err(|_| {
        RestoreError::Inconsistent(format!("pty {}: termios is not 36 bytes", rec.index))
    })?;
    let winsize: sys::WinsizeBytes = rec.winsize.as_slice().try_into().map_err(|_| {
        RestoreError::Inconsistent(format!("pty {}: winsize is not 8 bytes", rec.index))
    })?;
    sys::tcsets(master.as_fd(), &termios).map_err(err("TCSETS"))?;
    sys::set_winsize(master.as_fd(), &winsize).map_err(err("TIOCSWINSZ"))?;
    if rec.packet {
        sys::set_pty_packet(master.as_fd(), true).map_err(err("TIOCPKT"))?;
    }
    // A slave can be opened only unlocked; a pair locked at capture with no slave fd is locked
    // again (with slave fds it stays unlocked: the kernel cannot lock an opened pair's later
    // opens apart).
    sys::set_pty_locked(master.as_fd(), false).map_err(err("TIOCSPTLCK"))?;
    if rec.locked && rec.slaves.is_empty() {
        sys::set_pty_locked(master.as_fd(), true).map_err(err("TIOCSPTLCK"))?;
    }
    Ok(Made {
        master,
        slave: PathBuf::from(format!("/dev/pts/{n}")),
    })
}

/// Whether the task leads a session of its own now: not when the root joined the restoring
/// shell's session (`--shell-job`), whose terminal it then shares and must not take.
fn leads_its_session(task: &mut Task, p: &Process) -> Result<bool> {
    let sid = task.call("reading its session", Sysno::Getsid, &[0])?;
    Ok(sid == u64::from(p.pid))
}

/// Gives session leader `p`, just after its `setsid` and before any of its children is forked,
/// the controlling terminal it had: a pair of the image whose `session` it is, through a
/// temporary copy of its slave fd prepared in `local` (`TIOCSCTTY`, then closed). The kernel
/// keeps a controlling terminal per process and copies it at fork only, and only a session
/// leader can take one: the members of the session, forked after this, inherit it.
pub fn take_early(
    task: &mut Task,
    p: &Process,
    ckpt: &Checkpoint,
    local: &crate::LocalFiles,
) -> Result<()> {
    for t in ckpt
        .ptys
        .iter()
        .filter(|t| t.session == p.pid && p.sid == p.pid)
    {
        if !leads_its_session(task, p)? {
            continue;
        }
        let ours = t.slaves.iter().filter(|r| r.pid == p.pid).find_map(|r| {
            let i = p.fds.iter().position(|f| f.fd == r.fd)?;
            local.fds.get(i)?.raw()
        });
        let Some(ours) = ours else {
            continue;
        };
        let step = format!("taking pty {} as its controlling terminal", t.index);
        task.log(|| step.clone());
        let me = std::process::id();
        let pidfd = task.call(&step, Sysno::PidfdOpen, &[u64::from(me), 0])?;
        let tmp = task.call(&step, Sysno::PidfdGetfd, &[pidfd, ours as u64, 0]);
        task.call(&step, Sysno::Close, &[pidfd])?;
        let tmp = tmp?;
        let r = task.call(&step, Sysno::Ioctl, &[tmp, libc::TIOCSCTTY, 0]);
        task.call(&step, Sysno::Close, &[tmp])?;
        r?;
    }
    Ok(())
}

/// Makes each pair of `ckpt` that was the controlling terminal of session leader `p` its
/// controlling terminal again (`TIOCSCTTY` through one of its slave fds, in the task), then
/// sets its foreground group (`TIOCSPGRP`). Runs once the fds of `p` are installed; every
/// group of the tree exists by then. For a leader forked by the tree, [`take_early`] gave it
/// the terminal already, and `TIOCSCTTY` on its own terminal does nothing.
pub fn set_controlling(task: &mut Task, p: &Process, ckpt: &Checkpoint) -> Result<()> {
    for t in ckpt
        .ptys
        .iter()
        .filter(|t| t.session == p.pid && p.sid == p.pid)
    {
        if !leads_its_session(task, p)? {
            continue;
        }
        let Some(slave) = t.slaves.iter().find(|r| r.pid == p.pid) else {
            return Err(RestoreError::Inconsistent(format!(
                "pty {} is the controlling terminal of session {}, whose leader holds no fd on \
                 its slave",
                t.index, p.pid
            )));
        };
        let step = format!(
            "making pty {} (fd {}) the controlling terminal",
            t.index, slave.fd
        );
        task.log(|| step.clone());
        task.call(&step, Sysno::Ioctl, &[slave.fd as u64, libc::TIOCSCTTY, 0])?;
        if t.foreground != 0 {
            let step = format!(
                "setting foreground group {} of pty {}",
                t.foreground, t.index
            );
            let addr = task.put(&step, 0, &(t.foreground as i32).to_ne_bytes())?;
            task.call(
                &step,
                Sysno::Ioctl,
                &[slave.fd as u64, libc::TIOCSPGRP, addr],
            )?;
        }
    }
    Ok(())
}
