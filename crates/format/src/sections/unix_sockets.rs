//! Section kind 19, `unix-sockets` (FORMAT.md §8.20, format 1.3): the frozen `UnixSocketV1`,
//! version 1, its model conversion, and the join of each record to its AF_UNIX `Socket` fd of
//! the `fds` section.

use serde::{Deserialize, Serialize};

use super::owner;
use crate::error::{FormatError, Result};
use crate::model;

/// `AF_UNIX`.
pub(super) const AF_UNIX: u32 = 1;

/// The socket file a unix socket was bound to, version 1 (see [`model::UnixSocketFile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixSocketFileV1 {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// One AF_UNIX socket fd, version 1 (see [`model::UnixSocket`]). No class-width fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixSocketV1 {
    /// The owning process.
    pub pid: u32,
    /// The fd.
    pub fd: i32,
    /// The socket's inode (the same as the fd's `FdKindV1::Socket` `ino`).
    pub ino: u64,
    /// `SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_SEQPACKET` 5 (the same as the fd's `sock_type`).
    pub sock_type: u32,
    /// 1 connected, 7 unconnected, 10 listening.
    pub state: u8,
    /// The peer's inode, 0 when not connected.
    pub peer_ino: u64,
    /// The bound name (`sun_path` bytes, leading NUL: abstract), empty when unbound.
    pub name: Vec<u8>,
    /// The socket file of a path name still in place at capture.
    pub file: Option<UnixSocketFileV1>,
    /// A listener's backlog.
    pub backlog: u32,
    /// `RCV_SHUTDOWN` 1 | `SEND_SHUTDOWN` 2.
    pub shutdown: u8,
    /// `SO_PASSCRED`.
    pub passcred: bool,
    /// `SO_RCVBUF` as `getsockopt` returns it.
    pub rcvbuf: u32,
    /// `SO_SNDBUF` as `getsockopt` returns it.
    pub sndbuf: u32,
    /// The receive queue, oldest first (one entry per message of a datagram or seqpacket
    /// socket).
    pub queued: Vec<Vec<u8>>,
}

impl UnixSocketV1 {
    /// The record of fd `f` of process `pid`, if `f` is a unix socket.
    pub(super) fn from_model(pid: u32, f: &model::Fd) -> Option<Self> {
        let model::FdKind::Socket {
            family: AF_UNIX,
            sock_type,
            ino,
            unix: Some(u),
        } = &f.kind
        else {
            return None;
        };
        Some(UnixSocketV1 {
            pid,
            fd: f.fd,
            ino: *ino,
            sock_type: *sock_type,
            state: u.state,
            peer_ino: u.peer_ino,
            name: u.name.clone(),
            file: u.file.map(|x| UnixSocketFileV1 {
                mode: x.mode,
                uid: x.uid,
                gid: x.gid,
            }),
            backlog: u.backlog,
            shutdown: u.shutdown,
            passcred: u.passcred,
            rcvbuf: u.rcvbuf,
            sndbuf: u.sndbuf,
            queued: u.queued.clone(),
        })
    }
}

/// Joins the records to the AF_UNIX socket fds of `processes` by `(pid, fd)`. A record for
/// another fd, a second record for one fd, a record whose inode or type differs from its fd's,
/// or a unix socket fd without a record makes the image invalid (§8.20).
pub(super) fn attach(processes: &mut [model::Process], records: Vec<UnixSocketV1>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for r in records {
        let invalid = |what: &str| {
            FormatError::Invalid(format!(
                "the unix-sockets record of pid {} fd {} {what}",
                r.pid, r.fd
            ))
        };
        if !seen.insert((r.pid, r.fd)) {
            return Err(invalid("appears twice"));
        }
        let p = owner(
            processes,
            r.pid,
            &format!("unix-sockets record of fd {}", r.fd),
        )?;
        let Some(f) = p.fds.iter_mut().find(|f| f.fd == r.fd) else {
            return Err(invalid("names no fd of the fds section"));
        };
        let model::FdKind::Socket {
            family: AF_UNIX,
            sock_type,
            ino,
            unix,
        } = &mut f.kind
        else {
            return Err(invalid("is for an fd that is not a unix socket"));
        };
        if *ino != r.ino || *sock_type != r.sock_type {
            return Err(invalid(&format!(
                "says socket:[{}] type {}, its fd socket:[{ino}] type {sock_type}",
                r.ino, r.sock_type
            )));
        }
        *unix = Some(Box::new(model::UnixSocket {
            state: r.state,
            peer_ino: r.peer_ino,
            name: r.name,
            file: r.file.map(|x| model::UnixSocketFile {
                mode: x.mode,
                uid: x.uid,
                gid: x.gid,
            }),
            backlog: r.backlog,
            shutdown: r.shutdown,
            passcred: r.passcred,
            rcvbuf: r.rcvbuf,
            sndbuf: r.sndbuf,
            queued: r.queued,
        }));
    }
    for p in processes.iter() {
        if let Some(f) = p.fds.iter().find(|f| {
            matches!(
                f.kind,
                model::FdKind::Socket {
                    family: AF_UNIX,
                    ..
                }
            ) && !seen.contains(&(p.pid, f.fd))
        }) {
            return Err(FormatError::Invalid(format!(
                "fd {} of pid {} is a unix socket without its unix-sockets record",
                f.fd, p.pid
            )));
        }
    }
    // The peers are checked with the unix-peers section (unix_peers::check).
    Ok(())
}
