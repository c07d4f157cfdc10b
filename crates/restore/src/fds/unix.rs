//! AF_UNIX sockets, created in the restore tool and handed over like the other fds.
//!
//! Model: [`FdKind::Socket`] with its [`UnixSocket`]. A connected socket's peer is a socket of
//! the image (capture refuses others), so each pair is made once, with `socketpair`, when its
//! first end is prepared ([`Socketpairs`], one table for the whole tree, like pipes): the
//! other end waits in the table for the fd (of this process or another) that holds it. Each
//! socket's queued messages are sent from its peer's end, one `send` per message for datagram
//! and seqpacket sockets, so they land in its receive queue with their boundaries; the send
//! buffer is raised for that while it lasts. Shutdowns are applied once both queues are
//! filled. A listener, or an unconnected socket with a name, is bound to its name again (a
//! stale socket file is removed first; a path held by something else is refused), the socket
//! file gets its mode and owner back, a name unlinked after bind is unlinked again, and a
//! listener listens with its backlog. `SO_PASSCRED`, `SO_RCVBUF`, `SO_SNDBUF` and
//! `O_NONBLOCK` come back on every socket.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use psnc_format::model::{Fd, FdKind, UnixPeer, UnixSocket};
use psnc_ptrace::unix_sock as sock;

use crate::error::{RestoreError, Result};

const LISTEN: u8 = 10;

/// The ends of the socketpairs made so far that no fd has taken yet, by the inode of the
/// socket they stand for.
#[derive(Debug, Default)]
pub struct Socketpairs {
    waiting: HashMap<u64, Waiting>,
    /// What became of each socket whose peer was outside ([`open_outside`]), as
    /// `(pid, line)`: printed once the processes exist.
    pub notes: Vec<(u32, String)>,
}

/// The end of a pair made for the socket `peer_ino` of the first end's record.
#[derive(Debug)]
struct Waiting {
    /// The end for the socket that has not been prepared yet.
    end: OwnedFd,
    /// A duplicate of the first end, to send the second socket's queue and shut it down.
    first: OwnedFd,
    /// The first end's shutdown bits, applied once the second end's queue is in.
    first_shutdown: u8,
}

fn step_err(pid: u32, step: String) -> impl FnOnce(psnc_ptrace::PtraceError) -> RestoreError {
    move |source| RestoreError::Step { pid, step, source }
}

/// A unix socket name for messages: the path, `@name` in the abstract namespace.
fn shown(name: &[u8]) -> String {
    match name.split_first() {
        Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
        _ => String::from_utf8_lossy(name).into_owned(),
    }
}

/// The socket of fd `f` of process `pid` (an AF_UNIX [`FdKind::Socket`]), with its state.
pub fn open(pid: u32, f: &Fd, pairs: &mut Socketpairs) -> Result<OwnedFd> {
    let FdKind::Socket {
        sock_type,
        ino,
        unix: Some(u),
        ..
    } = &f.kind
    else {
        unreachable!("unix::open of a {:?}", f.kind)
    };
    let what = format!("fd {} (socket:[{ino}])", f.fd);
    let fd = if u.peer_ino != 0 {
        connected(pid, &what, *sock_type as i32, *ino, u, pairs)?
    } else if u.state == 1 {
        // Its peer had closed: a pair whose other end sends what was left, then goes.
        let (mine, peer) = sock::socketpair(*sock_type as i32)
            .map_err(step_err(pid, format!("creating {what}")))?;
        fill(pid, &what, *sock_type as i32, &peer, &u.queued)?;
        drop(peer);
        shutdown(pid, &what, &mine, u.shutdown)?;
        mine
    } else {
        let s = sock::unix_socket(*sock_type as i32)
            .map_err(step_err(pid, format!("creating {what}")))?;
        if !u.name.is_empty() {
            bind(pid, f.fd, &s, u)?;
        }
        if u.state == LISTEN {
            sock::listen(s.as_fd(), u.backlog as i32)
                .map_err(step_err(pid, format!("listening on {what}")))?;
        }
        s
    };
    options(pid, &what, &fd, u)?;
    super::set_status_flags(&fd, f.flags, &what)?;
    Ok(fd)
}

/// A socket type as messages name it.
pub fn type_name(sock_type: i32) -> &'static str {
    match sock_type {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "datagram",
        libc::SOCK_SEQPACKET => "seqpacket",
        _ => "other-type",
    }
}

/// The outside peer for messages: its name, or its inode when it had none.
pub fn peer_shown(peer: &UnixPeer) -> String {
    if peer.name.is_empty() {
        format!("socket:[{}] (unnamed)", peer.peer_ino)
    } else {
        shown(&peer.name)
    }
}

/// The socket of fd `f` of process `pid` whose peer `peer` was outside the image: connected to
/// the peer's name again when it has one, nothing of the old connection is left to deliver
/// (an empty receive queue) and something accepts there now: a new connection, which the
/// peer sees as a new client. Otherwise it is one end of a new pair whose other end sent the
/// queued messages and closed: reads get them, then EOF (stream, seqpacket); writes fail. A
/// line in `pairs.notes` says which, and what `--inherit-fd` would hand it instead.
pub fn open_outside(pid: u32, f: &Fd, peer: &UnixPeer, pairs: &mut Socketpairs) -> Result<OwnedFd> {
    let FdKind::Socket {
        sock_type,
        ino,
        unix: Some(u),
        ..
    } = &f.kind
    else {
        unreachable!("unix::open_outside of a {:?}", f.kind)
    };
    let sock_type = *sock_type as i32;
    let what = format!("fd {} (socket:[{ino}])", f.fd);
    let queued: usize = u.queued.iter().map(Vec::len).sum();
    let head = format!(
        "fd {}: socket:[{ino}] (unix {}) was connected to {} outside the image",
        f.fd,
        type_name(sock_type),
        peer_shown(peer)
    );
    let reconnected = if peer.name.is_empty() {
        Err("its peer had no name to connect to".to_string())
    } else if queued > 0 {
        Err(format!(
            "{queued} bytes the peer had sent were still unread, which a new connection would \
                     not carry"
        ))
    } else {
        let s = sock::unix_socket(sock_type | libc::SOCK_NONBLOCK)
            .map_err(step_err(pid, format!("creating {what}")))?;
        // A datagram client bound to a name of its own gets it back (replies go there); a
        // connected stream socket's name is its listener's, not its own.
        if !u.name.is_empty() && sock_type == libc::SOCK_DGRAM {
            bind(pid, f.fd, &s, u)?;
        }
        sock::connect_unix(s.as_fd(), &peer.name)
            .map(|()| s)
            .map_err(|e| match e {
                psnc_ptrace::PtraceError::Syscall { errno, .. } => {
                    format!("connecting to {} failed: {errno}", shown(&peer.name))
                }
                e => e.to_string(),
            })
    };
    let fd = match reconnected {
        Ok(s) => {
            pairs.notes.push((
                pid,
                format!(
                    "{head}; reconnected to {}: a new connection (what the peer kept of the old \
                     one is gone)",
                    shown(&peer.name)
                ),
            ));
            s
        }
        Err(why) => {
            let (mine, other) =
                sock::socketpair(sock_type).map_err(step_err(pid, format!("creating {what}")))?;
            fill(pid, &what, sock_type, &other, &u.queued)?;
            drop(other);
            shutdown(pid, &what, &mine, u.shutdown)?;
            let sees = if sock_type == libc::SOCK_DGRAM {
                format!(
                    "its {} queued datagram(s) are read back, then reads wait and sends fail \
                     with ECONNREFUSED",
                    u.queued.len()
                )
            } else {
                format!("reads see its {queued} queued bytes, then EOF; writes fail with EPIPE")
            };
            pairs.notes.push((
                pid,
                format!(
                    "{head}; restored connected to nothing ({why}): {sees}; to reconnect it, \
                     restore with --inherit-fd fd[N]:socket:[{ino}]"
                ),
            ));
            mine
        }
    };
    options(pid, &what, &fd, u)?;
    super::set_status_flags(&fd, f.flags, &what)?;
    Ok(fd)
}

/// One end of the pair of a connected socket: the waiting end if its peer was prepared
/// first, else a new pair whose other end waits for the peer.
fn connected(
    pid: u32,
    what: &str,
    sock_type: i32,
    ino: u64,
    u: &UnixSocket,
    pairs: &mut Socketpairs,
) -> Result<OwnedFd> {
    if let Some(w) = pairs.waiting.remove(&ino) {
        fill(pid, what, sock_type, &w.first, &u.queued)?;
        shutdown(pid, what, &w.first, w.first_shutdown)?;
        shutdown(pid, what, &w.end, u.shutdown)?;
        return Ok(w.end);
    }
    let (mine, peer) =
        sock::socketpair(sock_type).map_err(step_err(pid, format!("creating {what}")))?;
    fill(pid, what, sock_type, &peer, &u.queued)?;
    let first = mine
        .try_clone()
        .map_err(super::io_err("duplicating", what))?;
    pairs.waiting.insert(
        u.peer_ino,
        Waiting {
            end: peer,
            first,
            first_shutdown: u.shutdown,
        },
    );
    Ok(mine)
}

/// Sends `queued` from `from`, so it lands in its peer's receive queue: a message per entry,
/// without blocking (the send buffer is raised first, as root may past `wmem_max`).
fn fill(pid: u32, what: &str, sock_type: i32, from: &OwnedFd, queued: &[Vec<u8>]) -> Result<()> {
    let total: usize = queued.iter().map(Vec::len).sum();
    if queued.is_empty() {
        return Ok(());
    }
    let want = (2 * total + 64 * 1024).min(i32::MAX as usize / 2) as i32;
    if sock::setsockopt_int(from.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, want).is_err() {
        let _ = sock::setsockopt_int(from.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, want);
    }
    for m in queued {
        let mut done = 0;
        loop {
            let n = sock::send(
                from.as_fd(),
                &m[done..],
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
            .map_err(step_err(
                pid,
                format!(
                    "putting back the {} queued bytes of {what} ({done} of this message sent)",
                    total
                ),
            ))?;
            done += n;
            // A datagram or seqpacket message goes whole or not at all.
            if done >= m.len() || sock_type != libc::SOCK_STREAM {
                break;
            }
        }
    }
    Ok(())
}

fn shutdown(pid: u32, what: &str, fd: &OwnedFd, bits: u8) -> Result<()> {
    let how = match bits & 3 {
        0 => return Ok(()),
        1 => libc::SHUT_RD,
        2 => libc::SHUT_WR,
        _ => libc::SHUT_RDWR,
    };
    sock::shutdown(fd.as_fd(), how).map_err(step_err(pid, format!("shutting down {what}")))
}

/// `SO_PASSCRED`, `SO_RCVBUF` and `SO_SNDBUF` as at capture (the kernel doubles what is set:
/// half the captured value is set, with the `FORCE` variants where root may exceed the
/// system maximum).
fn options(pid: u32, what: &str, fd: &OwnedFd, u: &UnixSocket) -> Result<()> {
    let set = |opt: i32, force: i32, v: u32, name: &str| -> Result<()> {
        if v == 0 {
            return Ok(());
        }
        let v = (v / 2) as i32;
        if sock::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, force, v).is_ok() {
            return Ok(());
        }
        sock::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, opt, v)
            .map_err(step_err(pid, format!("setting {name} of {what}")))
    };
    set(libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, u.rcvbuf, "SO_RCVBUF")?;
    set(libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, u.sndbuf, "SO_SNDBUF")?;
    if u.passcred {
        sock::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_PASSCRED, 1)
            .map_err(step_err(pid, format!("setting SO_PASSCRED of {what}")))?;
    }
    Ok(())
}

/// Binds `s` to the name of `u`: a stale socket file at the path is removed first, anything
/// else there is refused; the file gets its mode and owner, or is unlinked again when it had
/// been at capture.
fn bind(pid: u32, fd: i32, s: &OwnedFd, u: &UnixSocket) -> Result<()> {
    let name = shown(&u.name);
    let refuse = |why: String| RestoreError::UnixSocketName {
        fd,
        name: name.clone(),
        why,
    };
    let path = (u.name.first() != Some(&0))
        .then(|| Path::new(std::ffi::OsStr::from_bytes(&u.name)).to_path_buf());
    if let Some(path) = &path {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(refuse(
                    "the path exists and is not a socket; move it away first".into(),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok()
                || std::os::unix::net::UnixDatagram::unbound()
                    .and_then(|d| d.connect(path))
                    .is_ok()
            {
                return Err(refuse(
                    "a socket there is in use (something listens on it); stop it first".into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| refuse(format!("removing the stale socket file: {e}")))?;
        }
    }
    sock::bind_unix(s.as_fd(), &u.name).map_err(|e| match e {
        psnc_ptrace::PtraceError::Syscall {
            errno: nix::errno::Errno::EADDRINUSE,
            ..
        } => refuse("the name is in use by another socket; stop its owner first".into()),
        e => RestoreError::Step {
            pid,
            step: format!("binding fd {fd} to {name}"),
            source: e,
        },
    })?;
    let Some(path) = path else { return Ok(()) };
    let shown = path.display().to_string();
    match u.file {
        Some(file) => {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
                .map_err(super::io_err("setting the mode of", &shown))?;
            std::os::unix::fs::lchown(&path, Some(file.uid), Some(file.gid))
                .map_err(super::io_err("setting the owner of", &shown))?;
        }
        // Unlinked (or replaced) after bind at capture: the socket stays reachable by nobody.
        None => std::fs::remove_file(&path).map_err(super::io_err("unlinking", &shown))?,
    }
    Ok(())
}
