//! AF_UNIX sockets: type, state, peer, bound name, listening backlog, shutdown, options and the
//! messages in the receive queue.
//!
//! Everything but the queue and the options comes from one `sock_diag` dump of the AF_UNIX
//! sockets of the host's network namespace ([`psnc_ptrace::unix_sock::unix_diag_dump`], taken once
//! per process that has a socket). The options and the queue come from a duplicate of the
//! target's fd (`pidfd_getfd`): the queue is read with `MSG_PEEK` from offset 0 to its end by
//! `SO_PEEK_OFF`, which is set back afterwards, so nothing is consumed; a datagram or seqpacket
//! socket's messages keep their boundaries.
//!
//! Refused here: other families (the former "a socket" refusal), file descriptors in flight
//! (`SCM_RIGHTS`), connections waiting to be accepted, queued datagrams on an unconnected
//! socket (their senders are gone), a name bound by a relative path. [`external_peers`] finds,
//! over the whole tree, the sockets connected to a peer outside the image, with its name, and
//! refuses one connected to a socket of the tree that is not connected back.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use psnc_format::model::{FdKind, Process, UnixPeer, UnixSocket, UnixSocketFile};
use psnc_ptrace::unix_sock::{self as sock, UnixDiag};

use crate::error::{CaptureError, Result};

const LISTEN: u8 = 10;
/// The largest message a peek can take whole; a bigger one is refused rather than cut.
const PEEK_MAX: usize = 4 << 20;

/// The AF_UNIX sockets of the host (one `sock_diag` dump) and a pidfd of the process whose fds
/// are being classified, made on first use.
#[derive(Debug, Default)]
pub struct Sockets {
    diag: Option<HashMap<u32, UnixDiag>>,
    pidfd: Option<OwnedFd>,
}

fn sys_err(pid: i32, what: String) -> impl FnOnce(psnc_ptrace::PtraceError) -> CaptureError {
    move |e| crate::stop::trace_error(pid, pid, &what, e)
}

/// A socket's type as messages name it.
fn type_name(t: u8) -> &'static str {
    match t as i32 {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "datagram",
        libc::SOCK_SEQPACKET => "seqpacket",
        _ => "other-type",
    }
}

/// A unix socket name for messages: the path, `@name` for the abstract namespace.
fn shown(name: &[u8]) -> String {
    match name.split_first() {
        Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
        Some(_) => String::from_utf8_lossy(name).into_owned(),
        None => "an unnamed socket".into(),
    }
}

impl Sockets {
    fn dump(&mut self, pid: i32) -> Result<&HashMap<u32, UnixDiag>> {
        if self.diag.is_none() {
            let all = sock::unix_diag_dump()
                .map_err(sys_err(pid, "listing unix sockets (sock_diag)".into()))?;
            self.diag = Some(all.into_iter().map(|d| (d.ino, d)).collect());
        }
        Ok(self.diag.get_or_insert_with(HashMap::new))
    }

    /// The kind of fd `fd` of `pid`, a socket whose link is `link`: an AF_UNIX socket with its
    /// state, or the refusal of any other family.
    pub fn classify(&mut self, pid: i32, fd: i32, link: &str) -> Result<FdKind> {
        let refuse = |kind: String| super::unsupported(pid, fd, kind);
        if self.pidfd.is_none() {
            self.pidfd =
                Some(psnc_ptrace::sys::pidfd_open(pid).map_err(sys_err(pid, "pidfd_open".into()))?);
        }
        let Some(pidfd) = self.pidfd.as_ref() else {
            unreachable!("set above")
        };
        let dup = psnc_ptrace::sys::pidfd_getfd(pidfd.as_fd(), pid, fd)
            .map_err(sys_err(pid, format!("taking a duplicate of fd {fd}")))?;
        let opt = |o: i32, name: &str| {
            sock::getsockopt_int(dup.as_fd(), libc::SOL_SOCKET, o)
                .map_err(sys_err(pid, format!("reading {name} of fd {fd}")))
        };
        if opt(libc::SO_DOMAIN, "SO_DOMAIN")? != libc::AF_UNIX {
            return Err(refuse(format!("a socket ({link})")));
        }
        let ino: u32 = link
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| refuse(format!("a socket with an unexpected link ({link})")))?;
        let Some(d) = self.dump(pid)?.get(&ino).cloned() else {
            return Err(refuse(format!(
                "a unix socket ({link}) that sock_diag does not list (another network namespace?)"
            )));
        };
        let kind = format!("a unix {} socket", type_name(d.sock_type));
        // Connected to a socket without an inode: a stream or seqpacket peer that closed
        // (which shut this side down both ways; what it sent is still readable, then EOF), or
        // one still waiting in a listener's accept queue, so not a socket of any process here.
        let mut d = d;
        // A datagram socket another one connected to reads as connected without a peer of
        // its own (the kernel marks both for poll): it is unconnected.
        if d.sock_type as i32 == libc::SOCK_DGRAM && d.peer.unwrap_or(0) == 0 && d.state == 1 {
            d.state = 7;
        }
        let peer_closed = d.state == 1
            && d.peer.unwrap_or(0) == 0
            && d.shutdown == 3
            && d.sock_type as i32 != libc::SOCK_DGRAM;
        if d.state == 1 && d.peer.unwrap_or(0) == 0 && !peer_closed {
            let peer = sock::peer_name(dup.as_fd())
                .map(|n| shown(&n))
                .unwrap_or_else(|_| "an unnamed socket".into());
            return Err(refuse(format!(
                "{kind} connected to {peer} outside the image (not accepted yet)"
            )));
        }
        let name = d.name.clone().unwrap_or_default();
        let (rq, wq) = d.rqlen.unwrap_or((0, 0));
        if d.state == LISTEN && rq > 0 {
            return Err(refuse(format!(
                "{kind} listening on {} with {rq} connection(s) waiting to be accepted",
                shown(&name)
            )));
        }
        let file = match name.first() {
            None | Some(0) => None,
            Some(b'/') => bound_file(pid, &name, d.vfs),
            Some(_) => {
                return Err(refuse(format!(
                    "{kind} bound to the relative path {}",
                    shown(&name)
                )))
            }
        };
        let queued = if d.state == LISTEN {
            Vec::new()
        } else {
            peek_queue(pid, fd, &dup, &d)?
        };
        if !queued.is_empty() && d.peer.is_none() && !peer_closed {
            return Err(refuse(format!(
                "{kind} ({}) holding {} queued message(s) from senders it is not connected to",
                shown(&name),
                queued.len()
            )));
        }
        Ok(FdKind::Socket {
            family: libc::AF_UNIX as u32,
            sock_type: d.sock_type as u32,
            ino: ino as u64,
            unix: Some(Box::new(UnixSocket {
                state: d.state,
                peer_ino: d.peer.unwrap_or(0) as u64,
                name,
                file,
                backlog: if d.state == LISTEN { wq } else { 0 },
                shutdown: d.shutdown,
                passcred: opt(libc::SO_PASSCRED, "SO_PASSCRED")? != 0,
                rcvbuf: opt(libc::SO_RCVBUF, "SO_RCVBUF")? as u32,
                sndbuf: opt(libc::SO_SNDBUF, "SO_SNDBUF")? as u32,
                queued,
            })),
        })
    }
}

/// The socket file at `name` (seen from the process's root), if it is still this socket's
/// (same inode as `sock_diag`'s); `None` when it was unlinked or replaced after bind.
fn bound_file(pid: i32, name: &[u8], vfs: Option<(u32, u32)>) -> Option<UnixSocketFile> {
    let path = format!("/proc/{pid}/root{}", String::from_utf8_lossy(name));
    let meta = std::fs::symlink_metadata(path).ok()?;
    let (ino, _) = vfs?;
    (meta.file_type().is_socket() && meta.ino() == ino as u64).then(|| UnixSocketFile {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// The receive queue of the socket behind `dup`, oldest first, without consuming it.
fn peek_queue(pid: i32, fd: i32, dup: &OwnedFd, d: &UnixDiag) -> Result<Vec<Vec<u8>>> {
    let err = |what: &str| sys_err(pid, format!("{what} of fd {fd}"));
    let old = sock::getsockopt_int(dup.as_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF)
        .map_err(err("reading SO_PEEK_OFF"))?;
    sock::setsockopt_int(dup.as_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0)
        .map_err(err("setting SO_PEEK_OFF"))?;
    let walked = walk(pid, fd, dup, d);
    // Put the peek offset back even when the walk failed: the target must not notice.
    sock::setsockopt_int(dup.as_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF, old)
        .map_err(err("restoring SO_PEEK_OFF"))?;
    walked
}

/// The messages from the peek offset on. A socket shut down for reading (its peer closed or
/// shut down) reads 0 bytes at the end of its queue instead of EAGAIN; a stream or seqpacket
/// queue also ends at the byte count `sock_diag` gave.
fn walk(pid: i32, fd: i32, dup: &OwnedFd, d: &UnixDiag) -> Result<Vec<Vec<u8>>> {
    let sock_type = d.sock_type;
    let counted = sock_type as i32 != libc::SOCK_DGRAM;
    let bytes = d.rqlen.map(|(rq, _)| rq as usize).unwrap_or(0);
    let mut seen = 0;
    if counted && bytes == 0 {
        return Ok(Vec::new());
    }
    // A stream or seqpacket queue holds `bytes` in all, so no message is longer; a datagram's
    // length is unknown. (A 4 MiB buffer zeroed for every socket was 80% of a capture of
    // 10,000 idle socketpairs.)
    let mut buf = vec![
        0u8;
        if counted {
            bytes.min(PEEK_MAX)
        } else {
            PEEK_MAX
        }
    ];
    let mut out = Vec::new();
    let kind = format!("a unix {} socket", type_name(sock_type));
    while !(counted && seen >= bytes) {
        let Some(p) = sock::peek(dup.as_fd(), &mut buf)
            .map_err(sys_err(pid, format!("peeking at the queue of fd {fd}")))?
        else {
            break;
        };
        if p.rights {
            return Err(super::unsupported(
                pid,
                fd,
                format!("{kind} with file descriptors in flight (SCM_RIGHTS) in its queue"),
            ));
        }
        if p.truncated {
            return Err(super::unsupported(
                pid,
                fd,
                format!("{kind} with a queued message over {PEEK_MAX} bytes"),
            ));
        }
        // The end of a queue shut down for reading (an empty datagram there is lost).
        if p.len == 0 && (d.shutdown & 1 != 0 || sock_type as i32 == libc::SOCK_STREAM) {
            break;
        }
        seen += p.len;
        out.push(buf[..p.len].to_vec());
    }
    Ok(out)
}

/// The unix sockets of the tree connected to a socket no process of the tree holds (a
/// connection to a daemon, a datagram socket connected to `/dev/log`, a socketpair end the
/// launcher kept), each with its peer's name from `sock_diag` (empty when the peer is unnamed
/// or in another network namespace). Refuses a socket connected to one of the tree that is not
/// connected back to it (a datagram socket connected to another's name): restore recreates the
/// pairs whose two ends it holds, and reconnects by name only to what is outside.
pub fn external_peers(processes: &[Process]) -> Result<Vec<UnixPeer>> {
    let ours: HashMap<u64, u64> = processes
        .iter()
        .flat_map(|p| &p.fds)
        .filter_map(|f| match &f.kind {
            FdKind::Socket {
                ino, unix: Some(u), ..
            } => Some((*ino, u.peer_ino)),
            _ => None,
        })
        .collect();
    let mut diag: Option<HashMap<u32, UnixDiag>> = None;
    let mut out: Vec<UnixPeer> = Vec::new();
    for p in processes {
        for f in &p.fds {
            let FdKind::Socket {
                sock_type,
                ino,
                unix: Some(u),
                ..
            } = &f.kind
            else {
                continue;
            };
            let back = ours.get(&u.peer_ino);
            if u.peer_ino == 0 || back == Some(ino) || out.iter().any(|o| o.ino == *ino) {
                continue;
            }
            if diag.is_none() {
                let all = sock::unix_diag_dump().map_err(sys_err(
                    p.pid as i32,
                    "listing unix sockets (sock_diag)".into(),
                ))?;
                diag = Some(all.into_iter().map(|d| (d.ino, d)).collect());
            }
            let name = diag
                .as_ref()
                .and_then(|m| m.get(&(u.peer_ino as u32)))
                .and_then(|d| d.name.clone())
                .unwrap_or_default();
            if back.is_some() {
                let peer = if name.is_empty() {
                    format!("socket:[{}]", u.peer_ino)
                } else {
                    shown(&name)
                };
                return Err(super::unsupported(
                    p.pid as i32,
                    f.fd,
                    format!(
                        "a unix {} socket connected to {peer}, a socket of the image not \
                         connected back to it",
                        type_name(*sock_type as u8)
                    ),
                ));
            }
            out.push(UnixPeer {
                ino: *ino,
                peer_ino: u.peer_ino,
                name,
            });
        }
    }
    Ok(out)
}
