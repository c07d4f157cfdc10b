//! Epoll instances and their interest lists.
//!
//! Model: [`psnc_format::model::FdKind::Epoll`] and its [`EpollWatch`]es. An epoll fd is not
//! prepared in the restore tool: it is created inside the task with `epoll_create1`, after every
//! other fd exists, and then given its watches with `EPOLL_CTL_ADD` (see
//! [`crate::fds::install_fds`]), because the kernel keys a watch by file and fd number in the
//! owning process.
//!
//! An epoll instance shared by several fds (`fd-shares`, [`crate::fds::shares`]) is created once,
//! at its group's leader, with the watches; each later fd of the group is a duplicate: `dup3` of
//! the leader's fd in the same process, or, in a later process of the tree, the leader
//! process's fd taken with `pidfd_open` + `pidfd_getfd` from inside the task (processes are
//! rebuilt in image order, so the leader's fd exists by then). Its watches are the instance's:
//! each is added once, in the first process of the group with an fd of the watch's number
//! ([`Descriptions::adds_watch`]), which may be a later one.

use psnc_format::model::{EpollWatch, Fd, FdKind, Process};
use psnc_ptrace::Sysno;

use crate::error::Result;
use crate::fds::shares::{Descriptions, Leader};
use crate::remote::Task;

/// Creates every epoll instance of `p` at its number, then adds all their watches: only once
/// every epoll fd exists can a watch name any of them. An fd of a shared instance whose leader
/// is another fd becomes a duplicate of it; a shared instance's watch is added through the one
/// fd that [`Descriptions::adds_watch`] chooses.
pub fn install(task: &mut Task, p: &Process, descriptions: &Descriptions) -> Result<()> {
    let epolls: Vec<(&Fd, &[EpollWatch], Leader)> = p
        .fds
        .iter()
        .filter_map(|f| match &f.kind {
            FdKind::Epoll { watches } => {
                Some((f, watches.as_slice(), descriptions.leader(p.pid, f.fd)))
            }
            _ => None,
        })
        .collect();
    for (f, _, leader) in &epolls {
        if *leader == Leader::Itself {
            create_epoll(task, f)?;
        }
    }
    for (f, _, leader) in &epolls {
        if let Leader::Of(l) = leader {
            share_epoll(task, p.pid, f, l.pid, l.fd)?;
        }
    }
    for (f, watches, _) in &epolls {
        for w in watches.iter() {
            if descriptions.adds_watch(p.pid, f.fd, w.tfd) {
                add_epoll_watch(task, f.fd, w)?;
            }
        }
    }
    Ok(())
}

/// Makes epoll fd `f` of process `pid` the instance of fd `lfd` of process `lpid`: a `dup3` in
/// the same process, else `pidfd_getfd` from the leader's process (rebuilt before this one).
fn share_epoll(task: &mut Task, pid: u32, f: &Fd, lpid: u32, lfd: i32) -> Result<()> {
    let step = format!("sharing epoll fd {} with PID {lpid} fd {lfd}", f.fd);
    let flags = if f.cloexec { libc::O_CLOEXEC as u64 } else { 0 };
    let target = f.fd as u64;
    if lpid == pid {
        task.call(&step, Sysno::Dup3, &[lfd as u64, target, flags])?;
        return Ok(());
    }
    let pidfd = task.call(&step, Sysno::PidfdOpen, &[u64::from(lpid), 0])?;
    let got = task.call(&step, Sysno::PidfdGetfd, &[pidfd, lfd as u64, 0]);
    task.call(&step, Sysno::Close, &[pidfd])?;
    let tmp = got?;
    if tmp != target {
        task.call(&step, Sysno::Dup3, &[tmp, target, flags])?;
        task.call(&step, Sysno::Close, &[tmp])?;
    } else if !f.cloexec {
        // pidfd_getfd gives a close-on-exec fd.
        task.call(&step, Sysno::Fcntl, &[tmp, 2, 0])?;
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
