//! Epoll instances and their interest lists.
//!
//! Model: [`psnc_format::model::FdKind::Epoll`] and its [`EpollWatch`]es. An epoll fd is not
//! prepared in the restore tool: it is created inside the task with `epoll_create1`, after every
//! other fd exists, and then given its watches with `EPOLL_CTL_ADD` (see
//! [`crate::fds::install_fds`]), because the kernel keys a watch by file and fd number in the
//! owning process.

use psnc_format::model::{EpollWatch, Fd, FdKind, Process};
use psnc_ptrace::Sysno;

use crate::error::Result;
use crate::remote::Task;

/// Creates every epoll instance of `p` at its number, then adds all their watches: only once
/// every epoll fd exists can a watch name any of them.
pub fn install(task: &mut Task, p: &Process) -> Result<()> {
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
