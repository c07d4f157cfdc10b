//! Open file descriptors: listing them, classifying each by its `/proc/PID/fd/N` link and
//! `stat`, and refusing the kinds capture cannot bring back.
//!
//! One module per kind of open file, named as on the restore side:
//!
//! ```text
//!  regular   regular files (deleted ones too), directories, other character devices
//!  tty       terminals; pty masters and, over the tree, their pairs (ttys)
//!  pipe      pipes: both ends, buffered bytes, capacity
//!  fifo      FIFOs: path, buffered bytes
//!  epoll     epoll instances and their watches
//!  eventfd   eventfds: counter, EFD_SEMAPHORE
//!  timerfd   timerfds: clock, flags, unread expirations, next expiry, period
//!  signalfd  signalfds: the mask
//!  inotify   inotify instances: every watch with its wd, mask and resolved path
//!  inet      IPv4/IPv6 TCP and UDP sockets: addresses, state, backlog, options
//!  tcp       established TCP connections in repair mode: sequences, queues, window
//!  memfd     memfds: the shared memory object each names (crate::shared_memory)
//!  unix      AF_UNIX sockets: peer, name, backlog, shutdown, options, queued messages
//!  shares    open file descriptions shared by two or more fds (dup, fork), over the tree
//! ```
//!
//! Everything comes from procfs (`/proc/PID/fd`, the `fd/N` links, `fdinfo/N`, `stat` of the
//! file) except the bytes buffered in pipes and FIFOs, which are copied from a duplicate of the
//! target's fd ([`pipe::TeePipePeek`]), and a timerfd's time, asked through a duplicate too. The model type is [`Fd`] with its [`FdKind`] in
//! `psnc_format::model`; a regular file's [`FileRef`](psnc_format::model::FileRef) comes from
//! the [`FileCatalog`]. IPv4/IPv6 sockets are asked through a duplicate too ([`inet`]). Every
//! other kind (sockets of other families, fanotify, io_uring, perf_event, bpf,
//! userfaultfd, any other anonymous inode, ...) is refused with a message naming the PID, the
//! fd and its kind with its link.

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

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use psnc_format::model::{Fd, FdKind};

use crate::error::{CaptureError, Result};
use crate::files::FileCatalog;
use crate::procfs::{strip_deleted, FdInfo, ProcDir};
use pipe::PipePeek;

/// What the kind of an fd link like `anon_inode:[eventfd]` or `socket:[123]` is, for refusals.
fn special_kind(link: &str) -> Option<String> {
    let kind = if link.starts_with("socket:") {
        "a socket"
    } else if link == "anon_inode:[eventfd]" {
        "an eventfd"
    } else if link == "anon_inode:[eventpoll]" {
        "an epoll instance"
    } else if link == "anon_inode:[timerfd]" {
        "a timerfd"
    } else if link == "anon_inode:[signalfd]" {
        "a signalfd"
    } else if link == "anon_inode:inotify" {
        "an inotify instance"
    } else if link == "anon_inode:[fanotify]" {
        "a fanotify instance"
    } else if link == "anon_inode:[io_uring]" {
        "an io_uring instance"
    } else if link == "anon_inode:[perf_event]" {
        "a perf_event fd"
    } else if link == "anon_inode:[userfaultfd]" {
        "a userfaultfd"
    } else if link == "anon_inode:bpf-map" {
        "a bpf map"
    } else if link == "anon_inode:bpf-prog" {
        "a bpf program"
    } else if link == "anon_inode:bpf_link" {
        "a bpf link"
    } else if link == "anon_inode:[pidfd]" || link.starts_with("pidfd:") {
        "a pidfd"
    } else if link.starts_with("anon_inode:") {
        "an anonymous-inode file"
    } else if link.starts_with("/memfd:") {
        "a memfd"
    } else if link.starts_with("net:")
        || link.ends_with("]") && link.contains(":[") && !link.starts_with('/')
    {
        "a namespace or other kernel object"
    } else {
        return None;
    };
    Some(format!("{kind} ({link})"))
}

/// Collects every open fd of the process, sorted by number, with pipes' buffered bytes read
/// through `peek`. Regular files go into `catalog`.
pub fn collect_fds(
    proc_dir: &ProcDir,
    catalog: &mut FileCatalog,
    peek: &mut dyn PipePeek,
    repairs: &mut tcp::Repairs,
) -> Result<Vec<Fd>> {
    let pid = proc_dir.pid();
    let mut fds = Vec::new();
    let mut sockets = unix::Sockets::default();
    for n in proc_dir.list_numeric("fd")? {
        let link = match proc_dir.read_link(&format!("fd/{n}")) {
            Ok(l) => l,
            // Closed between listing and reading: only possible if the target runs; skip.
            Err(CaptureError::NoSuchProcess { .. }) if proc_dir.exists() => continue,
            Err(e) => return Err(e),
        };
        let info = proc_dir.fdinfo(n)?;
        fds.push(classify_fd_with(
            proc_dir,
            n,
            &link,
            &info,
            catalog,
            &mut sockets,
            repairs,
        )?);
    }
    pipe::mark_pipes(pid, &mut fds, peek)?;
    fifo::fill_buffers(pid, &mut fds, peek)?;
    Ok(fds)
}

/// The refusal of fd `fd` of `pid` as `kind`.
fn unsupported(pid: i32, fd: i32, kind: String) -> CaptureError {
    CaptureError::Unsupported {
        pid,
        what: format!("fd {fd}"),
        kind,
    }
}

/// Classifies one fd, with a socket table of its own (tests).
#[cfg(test)]
fn classify_fd(
    proc_dir: &ProcDir,
    fd: i32,
    link: &str,
    info: &FdInfo,
    catalog: &mut FileCatalog,
) -> Result<Fd> {
    classify_fd_with(
        proc_dir,
        fd,
        link,
        info,
        catalog,
        &mut unix::Sockets::default(),
        &mut tcp::Repairs::default(),
    )
}

/// Classifies one fd; a unix socket is looked up in `sockets` (one `sock_diag` dump per
/// process).
fn classify_fd_with(
    proc_dir: &ProcDir,
    fd: i32,
    link: &str,
    info: &FdInfo,
    catalog: &mut FileCatalog,
    sockets: &mut unix::Sockets,
    repairs: &mut tcp::Repairs,
) -> Result<Fd> {
    let pid = proc_dir.pid();
    let cloexec = info.flags & libc::O_CLOEXEC as u32 != 0;
    let flags = info.flags & !(libc::O_CLOEXEC as u32);
    let mk = |kind: FdKind| Fd {
        fd,
        flags,
        cloexec,
        pos: info.pos,
        kind,
    };

    if let Some(kind) = pipe::classify(proc_dir, fd, link, flags)? {
        return Ok(mk(kind));
    }
    if link == "anon_inode:[eventpoll]" {
        return Ok(mk(epoll::classify(proc_dir, fd)?));
    }
    let fdinfo_err = |d: String| CaptureError::parse(proc_dir.path(&format!("fdinfo/{fd}")), d);
    match link {
        "anon_inode:[eventfd]" => return Ok(mk(eventfd::classify(info).map_err(fdinfo_err)?)),
        "anon_inode:[signalfd]" => return Ok(mk(signalfd::classify(info).map_err(fdinfo_err)?)),
        "anon_inode:[timerfd]" => return Ok(mk(timerfd::classify(proc_dir, fd)?)),
        "anon_inode:inotify" => return Ok(mk(inotify::classify(proc_dir, fd, link)?)),
        _ => {}
    }
    if link.starts_with("socket:") {
        let source = proc_dir.path(&format!("fd/{fd}"));
        let meta = fs::metadata(&source).map_err(|e| CaptureError::proc_io(pid, &source, e))?;
        return socket(proc_dir, fd, link, meta.ino(), sockets, repairs).map(mk);
    }
    if let Some(kind) = memfd::classify(proc_dir, fd, link)? {
        return Ok(mk(kind));
    }
    if let Some(kind) = special_kind(link) {
        return Err(unsupported(pid, fd, kind));
    }
    let source = proc_dir.path(&format!("fd/{fd}"));
    let meta = fs::metadata(&source).map_err(|e| CaptureError::proc_io(pid, &source, e))?;
    let ft = meta.file_type();
    let (clean, _) = strip_deleted(link);
    if ft.is_file() {
        Ok(mk(regular::file(pid, fd, link, &source, &meta, catalog)?))
    } else if ft.is_dir() {
        Ok(mk(regular::directory(clean)))
    } else if ft.is_char_device() {
        let rdev = meta.rdev();
        match tty::classify(pid, fd, rdev, clean, link)? {
            Some(kind) => Ok(mk(kind)),
            None => Ok(mk(regular::char_device(clean, rdev))),
        }
    } else if ft.is_fifo() {
        Ok(mk(fifo::classify(clean)))
    } else if ft.is_block_device() {
        Err(unsupported(pid, fd, format!("a block device ({link})")))
    } else if ft.is_socket() {
        Err(unsupported(pid, fd, format!("a socket ({link})")))
    } else {
        Err(unsupported(
            pid,
            fd,
            format!("an unknown file type ({link})"),
        ))
    }
}

/// A socket fd: IPv4/IPv6 ones by [`inet`], asked through a duplicate of the fd; AF_UNIX ones by
/// [`unix`]; the other families are refused by name ([`other_family`]). An IPv4/IPv6 socket is refused in a network namespace other than the
/// tool's: restore recreates it in its own, where its addresses would mean something else.
fn socket(
    proc_dir: &ProcDir,
    fd: i32,
    link: &str,
    ino: u64,
    sockets: &mut unix::Sockets,
    repairs: &mut tcp::Repairs,
) -> Result<FdKind> {
    use std::os::fd::AsFd;
    let pid = proc_dir.pid();
    let terr = |e| crate::stop::trace_error(pid, pid, &format!("reading socket fd {fd}"), e);
    let pidfd = psnc_ptrace::sys::pidfd_open(pid).map_err(terr)?;
    let dup = psnc_ptrace::sys::pidfd_getfd(pidfd.as_fd(), pid, fd).map_err(terr)?;
    let family =
        psnc_ptrace::sock::getsockopt_int(dup.as_fd(), pid, libc::SOL_SOCKET, libc::SO_DOMAIN)
            .map_err(terr)?;
    if inet::is_inet(family) || family == libc::AF_NETLINK {
        let theirs = proc_dir.read_link("ns/net")?;
        let ours = ProcDir::new(std::process::id() as i32).read_link("ns/net")?;
        if theirs != ours {
            return Err(unsupported(
                pid,
                fd,
                format!(
                    "{} socket in another network namespace ({theirs}; psnc-capture \
                     runs in {ours}): run psnc-capture and psnc-restore inside it (nsenter \
                     --net)",
                    if family == libc::AF_NETLINK {
                        "a netlink"
                    } else {
                        "an IPv4/IPv6"
                    }
                ),
            ));
        }
        if family == libc::AF_NETLINK {
            return netlink::classify(pid, fd, dup.as_fd(), ino);
        }
        return inet::classify(pid, fd, dup.as_fd(), family, ino, repairs);
    }
    if family != libc::AF_UNIX {
        return Err(other_family(pid, fd, dup.as_fd(), family));
    }
    sockets.classify(pid, fd, link)
}

/// The refusal of socket `fd` of `pid` (duplicated as `s`), of a family, type or protocol no
/// section describes, naming all three.
pub(super) fn other_family(
    pid: i32,
    fd: i32,
    s: std::os::fd::BorrowedFd<'_>,
    family: i32,
) -> CaptureError {
    let get = |name| psnc_ptrace::sock::getsockopt_int(s, pid, libc::SOL_SOCKET, name);
    match (get(libc::SO_TYPE), get(libc::SO_PROTOCOL)) {
        (Ok(t), Ok(p)) => CaptureError::UnsupportedSocket {
            pid,
            fd,
            kind: psnc_abi::socket::describe(family, t, p),
        },
        (Err(e), _) | (_, Err(e)) => {
            crate::stop::trace_error(pid, pid, &format!("reading socket fd {fd}"), e)
        }
    }
}

/// Puts `pid` into a refusal made without it (by a [`PipePeek`], which knows only the fd).
fn with_pid(e: CaptureError, pid: i32) -> CaptureError {
    match e {
        CaptureError::Unsupported { pid: 0, what, kind } => {
            CaptureError::Unsupported { pid, what, kind }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_kinds() {
        assert_eq!(
            special_kind("socket:[123]").unwrap(),
            "a socket (socket:[123])"
        );
        assert_eq!(
            special_kind("anon_inode:[eventfd]").unwrap(),
            "an eventfd (anon_inode:[eventfd])"
        );
        assert_eq!(
            special_kind("anon_inode:[eventpoll]").unwrap(),
            "an epoll instance (anon_inode:[eventpoll])"
        );
        assert_eq!(
            special_kind("/memfd:x (deleted)").unwrap(),
            "a memfd (/memfd:x (deleted))"
        );
        assert_eq!(
            special_kind("net:[4026531840]").unwrap(),
            "a namespace or other kernel object (net:[4026531840])"
        );
        for (link, kind) in [
            ("anon_inode:[io_uring]", "an io_uring instance"),
            ("anon_inode:[perf_event]", "a perf_event fd"),
            ("anon_inode:[userfaultfd]", "a userfaultfd"),
            ("anon_inode:[fanotify]", "a fanotify instance"),
            ("anon_inode:bpf-map", "a bpf map"),
            ("anon_inode:bpf-prog", "a bpf program"),
            ("anon_inode:bpf_link", "a bpf link"),
            ("anon_inode:[pidfd]", "a pidfd"),
            ("anon_inode:[kvm-vm]", "an anonymous-inode file"),
        ] {
            assert_eq!(special_kind(link).unwrap(), format!("{kind} ({link})"));
        }
        assert_eq!(special_kind("/tmp/a:[b]"), None);
        assert_eq!(special_kind("/dev/null"), None);
    }

    #[test]
    fn a_socket_of_another_family_is_refused_by_name() {
        let me = ProcDir::new(std::process::id() as i32);
        // A packet socket: no section describes that family.
        let sock = psnc_ptrace::sock::socket(0, libc::AF_PACKET as u32, libc::SOCK_DGRAM as u32, 0)
            .unwrap();
        use std::os::fd::AsRawFd;
        let n = sock.as_raw_fd();
        let link = me.read_link(&format!("fd/{n}")).unwrap();
        let err = classify_fd(
            &me,
            n,
            &link,
            &me.fdinfo(n).unwrap(),
            &mut FileCatalog::new(),
        )
        .unwrap_err();
        let CaptureError::UnsupportedSocket { pid, fd, kind } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((*pid, *fd), (std::process::id() as i32, n));
        assert_eq!(kind, "a packet socket (AF_PACKET, SOCK_DGRAM)");
    }

    #[test]
    fn a_unix_seqpacket_pair_keeps_its_queue_without_consuming_it() {
        use std::os::fd::{AsFd, AsRawFd};
        let me = ProcDir::new(std::process::id() as i32);
        let (a, b) = psnc_ptrace::unix_sock::socketpair(libc::SOCK_SEQPACKET).unwrap();
        psnc_ptrace::unix_sock::send(b.as_fd(), b"one", 0).unwrap();
        psnc_ptrace::unix_sock::send(b.as_fd(), b"three", 0).unwrap();
        let n = a.as_raw_fd();
        let link = me.read_link(&format!("fd/{n}")).unwrap();
        let fd = classify_fd(
            &me,
            n,
            &link,
            &me.fdinfo(n).unwrap(),
            &mut FileCatalog::new(),
        )
        .unwrap();
        let FdKind::Socket {
            family: 1,
            sock_type: 5,
            unix: Some(u),
            ..
        } = &fd.kind
        else {
            panic!("{fd:?}")
        };
        assert_eq!(u.queued, vec![b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(u.state, 1);
        // Still there, and read from the start: the peek offset was put back.
        let mut buf = [0u8; 16];
        assert_eq!(nix::unistd::read(n, &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"one");
    }
}
