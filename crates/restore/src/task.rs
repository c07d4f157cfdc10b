//! Installing the image's fds in the rebuilt task.
//!
//! Order matters and is fixed here:
//! - `PR_SET_MM_MAP` before rlimits (the kernel checks RLIMIT_DATA against the new brk);
//! - fds before rlimits (an fd above the image's RLIMIT_NOFILE could not be installed after);
//! - signals are queued while every signal is blocked, and the real mask is set last, so nothing
//!   is delivered before the task runs on its own;
//! - `sigaltstack` before the final registers (it fails with EPERM while the stack pointer is on
//!   the alternate stack);
//! - credentials last but for `PR_SET_DUMPABLE` and `PR_SET_PDEATHSIG`, which a credential
//!   change resets;
//! - the scratch area is unmapped by the very last remote call.

use psnc_format::model::{EpollWatch, Fd, FdKind, Process};
use psnc_ptrace::Sysno;

use crate::error::Result;
use crate::files::LocalFiles;
use crate::remote::{Extra, Task};

const F_SETFD: u64 = 2;

/// Installs the image's fds at their numbers, each taken from the restore tool with
/// `pidfd_getfd` (same open file description: offset and status flags come along).
///
/// Epoll instances come last: each is created in the task with `epoll_create1` once every
/// other fd exists, and only when all of them exist are the watches added, so that a watch can
/// name any fd of the process, another epoll fd included. The kernel keys a watch by file and fd
/// number, so `EPOLL_CTL_ADD` must run in the task with the image's fd numbers.
pub fn install_fds(task: &mut Task, p: &Process, local: &LocalFiles, pidfd: u64) -> Result<()> {
    for (f, l) in p.fds.iter().zip(&local.fds) {
        if let Some(ours) = l.raw() {
            install_fd(task, f, ours, pidfd)?;
        }
    }
    let epolls: Vec<(&Fd, &[EpollWatch])> = p
        .fds
        .iter()
        .filter_map(|f| match &f.kind {
            FdKind::Epoll { watches } => Some((f, watches.as_slice())),
            _ => None,
        })
        .collect();
    for (f, _) in &epolls {
        create_epoll(task, f)?;
    }
    for (f, watches) in &epolls {
        for w in *watches {
            add_epoll_watch(task, f.fd, w)?;
        }
    }
    Ok(())
}

fn create_epoll(task: &mut Task, f: &Fd) -> Result<()> {
    let step = format!("creating epoll fd {}", f.fd);
    let flags = if f.cloexec {
        libc::EPOLL_CLOEXEC as u64
    } else {
        0
    };
    let tmp = task.call(&step, Sysno::EpollCreate1, &[flags])?;
    let target = f.fd as u64;
    if tmp != target {
        task.call(&step, Sysno::Dup3, &[tmp, target, flags])?;
        task.call(&step, Sysno::Close, &[tmp])?;
    }
    Ok(())
}

/// `EPOLL_CTL_ADD` with the recorded mask and data. The kernel adds `EPOLLERR | EPOLLHUP` to
/// every watch, so a one-shot watch that had fired (mask without event bits) comes back armed
/// for those two only; an edge-triggered watch whose file is ready reports one edge again.
fn add_epoll_watch(task: &mut Task, epfd: i32, w: &EpollWatch) -> Result<()> {
    let step = format!("adding the watch of fd {} to epoll fd {epfd}", w.tfd);
    // struct epoll_event: u32 events, u64 data, 12 bytes in both modes.
    let mut ev = [0u8; 12];
    ev[..4].copy_from_slice(&w.events.to_le_bytes());
    ev[4..].copy_from_slice(&w.data.to_le_bytes());
    let at = task.put(&step, 0, &ev)?;
    task.call(
        &step,
        Sysno::EpollCtl,
        &[epfd as u64, libc::EPOLL_CTL_ADD as u64, w.tfd as u64, at],
    )?;
    Ok(())
}

fn install_fd(task: &mut Task, f: &Fd, ours: i32, pidfd: u64) -> Result<()> {
    let step = format!("installing fd {}", f.fd);
    task.log(|| format!("{step} from our fd {ours}"));
    // pidfd_getfd gives a close-on-exec fd at the lowest free number.
    let tmp = task.call(&step, Extra::PidfdGetfd, &[pidfd, ours as u64, 0])?;
    let target = f.fd as u64;
    if tmp == target {
        if !f.cloexec {
            task.call(&step, Sysno::Fcntl, &[tmp, F_SETFD, 0])?;
        }
        return Ok(());
    }
    let flags = if f.cloexec { libc::O_CLOEXEC as u64 } else { 0 };
    task.call(&step, Sysno::Dup3, &[tmp, target, flags])?;
    task.call(&step, Sysno::Close, &[tmp])?;
    Ok(())
}
