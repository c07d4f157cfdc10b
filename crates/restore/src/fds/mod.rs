//! The image's fds: each prepared in the restore tool by the module of its kind, then installed
//! into the rebuilt task at its number.
//!
//! Every fd is opened first by the restore tool: regular files reopened by path with their flags
//! and offset, deleted files on the replica of their stored contents, pipes recreated with their
//! buffered bytes, devices by path, terminals replaced by the tool's own stdio or `/dev/null`,
//! the ends of a pseudo-terminal pair of the image on a new pair made once ([`tty::Ptys`]).
//! The task then takes each one with a remote `pidfd_getfd` on the tool (same open file
//! description, so offset and status flags come along) and `dup3`s it to its number
//! ([`install_fds`]), all of them in one batch of calls. Opening here rather than remotely keeps errors local and named, and lets
//! one open description serve several fds and mappings of the same file. Eventfds, timerfds,
//! signalfds, inotify instances and IPv4/IPv6 sockets are created by the tool too, with their
//! state (none of them is tied to the process that made it). A memfd fd reopens its object's one
//! memfd. Only epoll instances are created inside the task.
//!
//! Model: [`psnc_format::model::Fd`] (number, flags, close-on-exec, offset) and its
//! [`psnc_format::model::FdKind`]; how each fd comes back was decided by the checks
//! ([`crate::checks::FdSource`]).
//!
//! | kind                                                  | module      |
//! |-------------------------------------------------------|-------------|
//! | `Regular` (deleted or not), `Directory`, `CharDevice` | [`regular`] |
//! | `Tty`, `PtyMaster`                                    | [`tty`]     |
//! | `Pipe`                                                | [`pipe`]    |
//! | `Fifo`                                                | [`fifo`]    |
//! | `Epoll`                                               | [`epoll`]   |
//! | `EventFd`                                             | [`eventfd`] |
//! | `TimerFd`                                             | [`timerfd`] |
//! | `SignalFd`                                            | [`signalfd`]|
//! | `Inotify`                                             | [`inotify`] |
//! | `InetSocket`                                          | [`inet`]    |
//! | `MemFdObject`                                         | [`memfd`]   |
//! | `Socket` (AF_UNIX)                                    | [`unix`]    |
//!
//! An fd handed in with `--inherit-fd` (any kind) is the restore tool's own descriptor, taken
//! over as it is.
//!
//! Fds that shared one open file description at capture (the image's `fd-shares`) get one
//! description again: the first is prepared by its kind, the others get duplicates of it
//! ([`shares`]), so one offset and one set of status flags serve them all, across processes too.

pub mod epoll;
pub mod eventfd;
pub mod fifo;
pub mod inet;
pub mod inotify;
pub mod memfd;
pub mod netlink;
pub mod pipe;
pub mod regular;
pub mod shares;
pub mod signalfd;
pub mod tcp;
pub mod timerfd;
pub mod tty;
pub mod unix;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag};
use psnc_format::model::{Fd, FdKind, Process};
use psnc_ptrace::Sysno;

use crate::checks::FdSource;
use crate::error::{RestoreError, Result};
use crate::files::Replicas;
use crate::remote::{Call, Task};
use crate::LocalFiles;

const F_SETFD: u64 = 2;

/// Status flags that are restored on an open file description; creation flags (`O_CREAT`,
/// `O_EXCL`, `O_TRUNC`) are never replayed, and close-on-exec is per fd.
const REOPEN_FLAGS: u32 = (libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_NOATIME
    | libc::O_DIRECTORY
    | libc::O_LARGEFILE) as u32;

/// An fd of the restore tool that the task takes over.
#[derive(Debug)]
pub enum LocalFd {
    /// Opened for the restore, closed once the task holds it.
    Owned(OwnedFd),
    /// One of the tool's own fds (stdio, `--inherit-fd`), left open in the tool.
    Borrowed(i32),
    /// Nothing local: the fd is created inside the task (an epoll instance, whose watches are
    /// keyed by the task's own fd numbers).
    InTask,
}

impl LocalFd {
    /// The descriptor number in the restore tool, if the task takes one over.
    pub fn raw(&self) -> Option<i32> {
        match self {
            LocalFd::Owned(fd) => Some(fd.as_raw_fd()),
            LocalFd::Borrowed(fd) => Some(*fd),
            LocalFd::InTask => None,
        }
    }
}

pub(crate) fn io_err(what: &str, path: &str) -> impl FnOnce(std::io::Error) -> RestoreError {
    let (what, path) = (what.to_string(), path.to_string());
    move |source| RestoreError::Io { what, path, source }
}

pub(crate) fn nix_err(what: &str, path: &str) -> impl FnOnce(nix::errno::Errno) -> RestoreError {
    let (what, path) = (what.to_string(), path.to_string());
    move |e| RestoreError::Io {
        what,
        path,
        source: e.into(),
    }
}

/// Opens `path` with the status flags `flags` (creation flags masked off), close-on-exec in the
/// tool and without making a terminal the tool's controlling one.
pub fn open_with_flags(path: &Path, flags: u32) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let acc = flags & libc::O_ACCMODE as u32;
    let shown = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(acc == libc::O_RDONLY as u32 || acc == libc::O_RDWR as u32)
        .write(acc == libc::O_WRONLY as u32 || acc == libc::O_RDWR as u32)
        .custom_flags(((flags & REOPEN_FLAGS) as i32 & !libc::O_ACCMODE) | libc::O_NOCTTY)
        .open(path)
        .map_err(io_err("opening", &shown))?;
    Ok(OwnedFd::from(file))
}

/// Sets the file status flags of an open description (`F_SETFL` changes only O_APPEND,
/// O_NONBLOCK, O_ASYNC, O_DIRECT, O_NOATIME).
pub(crate) fn set_status_flags(fd: &OwnedFd, flags: u32, what: &str) -> Result<()> {
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags as i32)),
    )
    .map_err(nix_err("setting the status flags of", what))?;
    Ok(())
}

/// Prepares every fd of `p` in the restore tool, each as `sources` (the plan, same index) says;
/// fds of one shared description (`descriptions`) get one description.
pub fn prepare(
    p: &Process,
    sources: &[FdSource],
    replicas: &mut Replicas,
    descriptions: &mut shares::Descriptions,
) -> Result<Vec<LocalFd>> {
    prepare_shared(
        p,
        sources,
        replicas,
        &mut pipe::Pipes::default(),
        &mut tty::Ptys::default(),
        descriptions,
    )
}

/// [`prepare`] with the pipes, pseudo-terminals and shared descriptions of the whole tree: fds
/// of one pipe inode in several processes get ends of one pipe, fds of one pty pair ends of one
/// new pair, fds of one description in several processes get that one description.
pub fn prepare_shared(
    p: &Process,
    sources: &[FdSource],
    replicas: &mut Replicas,
    pipes: &mut pipe::Pipes,
    ptys: &mut tty::Ptys,
    descriptions: &mut shares::Descriptions,
) -> Result<Vec<LocalFd>> {
    let mut fds = Vec::with_capacity(p.fds.len());
    for (f, src) in p.fds.iter().zip(sources) {
        let local = match descriptions.take(p.pid, f.fd, src)? {
            Some(shared) => shared,
            None => {
                let local = prepare_fd(p.pid, f, src, replicas, pipes, ptys)?;
                descriptions.record(p.pid, f.fd, &local)?;
                local
            }
        };
        fds.push(local);
    }
    Ok(fds)
}

/// One fd, by the module of its kind.
fn prepare_fd(
    pid: u32,
    f: &Fd,
    src: &FdSource,
    replicas: &mut Replicas,
    pipes: &mut pipe::Pipes,
    ptys: &mut tty::Ptys,
) -> Result<LocalFd> {
    Ok(match (src, &f.kind) {
        (FdSource::Ours(n), _) => LocalFd::Borrowed(*n),
        (FdSource::Epoll, _) => LocalFd::InTask,
        (FdSource::Null, _) => LocalFd::Owned(tty::open_null(f)?),
        (FdSource::Path(path), FdKind::Fifo { buffered, .. }) => {
            LocalFd::Owned(fifo::open_fifo(path, f.flags, buffered)?)
        }
        (FdSource::Path(path), FdKind::Tty { .. }) => LocalFd::Owned(tty::reopen(f, path)?),
        (FdSource::Path(path), kind) => LocalFd::Owned(regular::open(f, path, kind)?),
        (FdSource::Deleted { id, path }, kind) => {
            LocalFd::Owned(regular::open_deleted(f, *id, path, kind, replicas)?)
        }
        (FdSource::Pipe(pe), _) => LocalFd::Owned(pipes.open_end(f, pe)?),
        (FdSource::Pty { index, master }, _) => {
            LocalFd::Owned(ptys.open_end(pid, f, *index, *master)?)
        }
        (FdSource::Event, FdKind::EventFd { .. }) => LocalFd::Owned(eventfd::create(pid, f)?),
        (FdSource::Event, FdKind::TimerFd(_)) => LocalFd::Owned(timerfd::create(pid, f)?),
        (FdSource::Event, FdKind::SignalFd { .. }) => LocalFd::Owned(signalfd::create(pid, f)?),
        (FdSource::Event, FdKind::Inotify { .. }) => LocalFd::Owned(inotify::create(pid, f)?),
        (FdSource::Event, FdKind::InetSocket(s)) => {
            LocalFd::Owned(inet::create(pid, f, s, &mut pipes.tcp)?)
        }
        (FdSource::MemFd { object }, _) => LocalFd::Owned(memfd::open(f, *object, replicas)?),
        (FdSource::Event, FdKind::Netlink(n)) => LocalFd::Owned(netlink::create(pid, f, n)?),
        (FdSource::Event, kind) => unreachable!("the checks planned {kind:?} as an event fd"),
        (FdSource::Unix, _) => LocalFd::Owned(unix::open(pid, f, &mut pipes.unix)?),
        (FdSource::UnixOutside(peer), _) => {
            LocalFd::Owned(unix::open_outside(pid, f, peer, &mut pipes.unix)?)
        }
    })
}

/// The fds of `p` in installation order, paired with their local fds.
pub fn install_order<'a>(
    p: &'a Process,
    local: &'a LocalFiles,
) -> impl Iterator<Item = (&'a Fd, &'a LocalFd)> {
    p.fds.iter().zip(&local.fds)
}

/// Installs the image's fds at their numbers, each taken from the restore tool with
/// `pidfd_getfd` (same open file description: offset and status flags come along).
///
/// Epoll instances come last: each is created in the task with `epoll_create1` once every
/// other fd exists, and only when all of them exist are the watches added, so that a watch can
/// name any fd of the process, another epoll fd included. The kernel keys a watch by file and fd
/// number, so `EPOLL_CTL_ADD` must run in the task with the image's fd numbers.
pub fn install_fds(
    task: &mut Task,
    p: &Process,
    local: &LocalFiles,
    pidfd: u64,
    descriptions: &shares::Descriptions,
) -> Result<()> {
    if only_pidfd_open(task, pidfd) {
        install_batched(task, p, local, pidfd)?;
    } else {
        for (f, l) in p.fds.iter().zip(&local.fds) {
            if let Some(ours) = l.raw() {
                install_fd(task, f, ours, pidfd)?;
            }
        }
    }
    epoll::install(task, p, descriptions)
}

/// Whether the task's fd table holds only `pidfd` (as after [`crate::process::close_inherited`]
/// and [`crate::process::open_pidfd`]), so that the number each `pidfd_getfd` gives, the lowest
/// free one, is known in advance.
fn only_pidfd_open(task: &Task, pidfd: u64) -> bool {
    psnc_proc::ProcDir::new(task.pid)
        .list_numeric("fd")
        .is_ok_and(|fds| fds == [pidfd as i32])
}

/// Installs every fd in one batch ([`Task::batch`]): the number each `pidfd_getfd` gives is
/// predicted (the lowest not taken by the pidfd or an fd installed before), the calls that
/// follow use it, and every prediction is checked against what the kernel gave afterwards.
/// 20,000 fds cost a few resumes of the task instead of 60,000 remote calls.
fn install_batched(task: &mut Task, p: &Process, local: &LocalFiles, pidfd: u64) -> Result<()> {
    let mut taken = std::collections::BTreeSet::from([pidfd]);
    let mut lowest = 0u64;
    let mut calls = Vec::new();
    // (index of the pidfd_getfd call, the number predicted, the image's fd)
    let mut predicted = Vec::new();
    for (f, l) in p.fds.iter().zip(&local.fds) {
        let Some(ours) = l.raw() else { continue };
        let step = format!("installing fd {}", f.fd);
        task.log(|| format!("{step} from our fd {ours}"));
        while taken.contains(&lowest) {
            lowest += 1;
        }
        let (tmp, target) = (lowest, f.fd as u64);
        predicted.push((calls.len(), tmp, f.fd));
        calls.push(Call::new(
            step.clone(),
            Sysno::PidfdGetfd,
            &[pidfd, ours as u64, 0],
        ));
        if tmp == target {
            if !f.cloexec {
                calls.push(Call::new(step, Sysno::Fcntl, &[tmp, F_SETFD, 0]));
            }
        } else {
            let flags = if f.cloexec { libc::O_CLOEXEC as u64 } else { 0 };
            calls.push(Call::new(step.clone(), Sysno::Dup3, &[tmp, target, flags]));
            calls.push(Call::new(step, Sysno::Close, &[tmp]));
        }
        taken.insert(target);
    }
    task.log(|| {
        format!(
            "{} fds installed with {} calls in one batch",
            predicted.len(),
            calls.len()
        )
    });
    let got = task.batch(&calls)?;
    for (i, tmp, fd) in predicted {
        if got.get(i) != Some(&tmp) {
            return Err(RestoreError::Inconsistent(format!(
                "installing fd {fd}: pidfd_getfd gave {:?} where {tmp} was the lowest free \
                 number",
                got.get(i)
            )));
        }
    }
    Ok(())
}

fn install_fd(task: &mut Task, f: &Fd, ours: i32, pidfd: u64) -> Result<()> {
    let step = format!("installing fd {}", f.fd);
    task.log(|| format!("{step} from our fd {ours}"));
    // pidfd_getfd gives a close-on-exec fd at the lowest free number.
    let tmp = task.call(&step, Sysno::PidfdGetfd, &[pidfd, ours as u64, 0])?;
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
