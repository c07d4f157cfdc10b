//! Terminals: fds of a tty character device (a virtual console, a serial line, `/dev/tty`, a pty
//! slave), which restore reopens by path.
//!
//! A terminal is told apart from other character devices by its device number, from the `stat` of
//! the file behind `/proc/PID/fd/N`; the image keeps its path and device number only.
//!
//! A pty master (`/dev/ptmx`, 5:2) is [`FdKind::PtyMaster`] with the index of its pair, asked
//! with `TIOCGPTN` on a `pidfd_getfd` duplicate in this tool; once every process is collected,
//! [`collect_ptys`] makes one [`Pty`] per pair: lock, packet mode, termios and window size
//! (read the same way), its master and slave fds (a slave is a terminal of device 136:index),
//! and the session it controls (`tty_nr` of a session leader) with its foreground group
//! (`tpgid`). Bytes queued in the pair are not kept: neither queue can be read without
//! consuming it (CRIU does not keep them either).

use std::os::fd::{AsFd, OwnedFd};

use psnc_format::model::{FdKind, FdRef, Process, Pty};
use psnc_format::sections::pts_rdev;

use crate::error::{CaptureError, Result};
use crate::procfs::ProcDir;

/// Tty character-device majors: 4 (virtual consoles, serial), 5 (/dev/tty, console, ptmx),
/// 136..=143 (Unix98 pty slaves).
fn is_tty_major(major: u32) -> bool {
    major == 4 || major == 5 || (136..=143).contains(&major)
}

/// The [`FdKind::Tty`] of fd `fd` of `pid`, a character device `rdev` open at `path` (`link` as
/// the kernel printed it); `None` when the device is not a terminal. A pseudo-terminal master is
/// a [`FdKind::PtyMaster`] with its index.
pub(super) fn classify(
    pid: i32,
    fd: i32,
    rdev: u64,
    path: &str,
    link: &str,
) -> Result<Option<FdKind>> {
    let major = nix::sys::stat::major(rdev) as u32;
    let minor = nix::sys::stat::minor(rdev) as u32;
    if major == 5 && minor == 2 {
        let dup = duplicate(pid, fd)?;
        let index = psnc_ptrace::sys::pty_number(dup.as_fd())
            .map_err(|e| pty_error(pid, fd, link, "TIOCGPTN", e))?;
        return Ok(Some(FdKind::PtyMaster { index }));
    }
    Ok(is_tty_major(major).then(|| FdKind::Tty {
        path: path.to_string(),
        rdev,
    }))
}

/// A duplicate in this tool of fd `fd` of `pid` (the same open file description).
fn duplicate(pid: i32, fd: i32) -> Result<OwnedFd> {
    let what = format!("taking a duplicate of fd {fd}");
    let pidfd = psnc_ptrace::sys::pidfd_open(pid)
        .map_err(|e| crate::stop::trace_error(pid, pid, &what, e))?;
    psnc_ptrace::sys::pidfd_getfd(pidfd.as_fd(), pid, fd)
        .map_err(|e| crate::stop::trace_error(pid, pid, &what, e))
}

/// A pty ioctl that failed on the duplicate of fd `fd` of `pid`.
fn pty_error(
    pid: i32,
    fd: i32,
    link: &str,
    op: &str,
    e: psnc_ptrace::PtraceError,
) -> crate::error::CaptureError {
    super::unsupported(
        pid,
        fd,
        format!("a pseudo-terminal master ({link}) whose {op} failed: {e}"),
    )
}

/// One [`Pty`] per pair whose master is an fd of `processes` (all stopped), in the order their
/// first master appears.
pub fn collect_ptys(processes: &[Process]) -> Result<Vec<Pty>> {
    let mut ptys: Vec<Pty> = Vec::new();
    for p in processes {
        for f in &p.fds {
            let FdKind::PtyMaster { index } = f.kind else {
                continue;
            };
            let me = FdRef {
                pid: p.pid,
                fd: f.fd,
            };
            if let Some(t) = ptys.iter_mut().find(|t| t.index == index) {
                t.masters.push(me);
                continue;
            }
            let (pid, fd) = (p.pid as i32, f.fd);
            let dup = duplicate(pid, fd)?;
            let link = "/dev/ptmx";
            let err = |op| move |e| pty_error(pid, fd, link, op, e);
            use psnc_ptrace::sys;
            ptys.push(Pty {
                index,
                locked: sys::pty_locked(dup.as_fd()).map_err(err("TIOCGPTLCK"))?,
                packet: sys::pty_packet(dup.as_fd()).map_err(err("TIOCGPKT"))?,
                termios: sys::tcgets(dup.as_fd()).map_err(err("TCGETS"))?.to_vec(),
                winsize: sys::get_winsize(dup.as_fd())
                    .map_err(err("TIOCGWINSZ"))?
                    .to_vec(),
                masters: vec![me],
                slaves: Vec::new(),
                session: 0,
                foreground: 0,
            });
        }
    }
    if ptys.is_empty() {
        return Ok(ptys);
    }
    for p in processes {
        for f in &p.fds {
            if let FdKind::Tty { rdev, .. } = f.kind {
                if let Some(t) = ptys.iter_mut().find(|t| pts_rdev(t.index) == rdev) {
                    t.slaves.push(FdRef {
                        pid: p.pid,
                        fd: f.fd,
                    });
                }
            }
        }
    }
    for p in processes {
        let st = ProcDir::new(p.pid as i32).stat()?;
        let Some(t) = ptys.iter_mut().find(|t| pts_rdev(t.index) == st.tty_nr) else {
            continue;
        };
        let refuse = |why: String| CaptureError::ControllingTty {
            pid: p.pid as i32,
            index: t.index,
            why,
        };
        if p.sid != p.pid {
            // A member inherits the terminal from its leader at restore; the leader must be
            // one of the tree.
            if !processes.iter().any(|l| l.pid == p.sid) {
                return Err(refuse(format!(
                    "its session leader {} is not in the image",
                    p.sid
                )));
            }
            continue;
        }
        if !t.slaves.iter().any(|r| r.pid == p.pid) {
            return Err(refuse(
                "it leads the session and holds no fd on the slave".into(),
            ));
        }
        t.session = p.pid;
        t.foreground = u32::try_from(st.tpgid).unwrap_or(0);
    }
    Ok(ptys)
}
