//! Section kind 9, `fds` (FORMAT.md §8.9): the frozen `FdV1` with its `FdKindV1` and
//! `PipeEndV1`, version 1, and their model conversions. An epoll fd's watches are not here but in
//! the `epoll` section (`epoll.rs`), and the state of eventfds, timerfds, signalfds and inotify
//! instances in the `event-fds` section (`event_fds.rs`), because `FdKindV1` is frozen.

use serde::{Deserialize, Serialize};

use super::shared::FileRefV1;
use crate::model;

/// One end of a pipe, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PipeEndV1 {
    pub ino: u64,
    pub write_end: bool,
    pub buffered: Vec<u8>,
    pub capacity: u32,
    pub external: bool,
}

/// What an fd refers to, version 1 (append-only; no class-width fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum FdKindV1 {
    Regular(FileRefV1),
    Directory {
        path: String,
    },
    CharDevice {
        path: String,
        rdev: u64,
    },
    Tty {
        path: String,
        rdev: u64,
    },
    Pipe(PipeEndV1),
    Fifo {
        path: String,
        buffered: Vec<u8>,
    },
    Socket {
        family: u32,
        sock_type: u32,
        ino: u64,
    },
    EventFd {
        count: u64,
    },
    Epoll,
    TimerFd,
    SignalFd {
        mask: u64,
    },
    MemFd {
        name: String,
    },
    Other {
        link: String,
    },
    /// Format 1.2: an inotify instance; its watches are in the `event-fds` section.
    Inotify,
    /// Format 1.3: a memfd, the fd of object `object` of the `shared-memory` section, whose size
    /// was `size` bytes.
    MemFdObject {
        object: u32,
        size: u64,
    },
    /// Format 1.3: a pty master, the pair of index `index` (its state is in the `ttys`
    /// section).
    PtyMaster {
        index: u32,
    },
    /// Format 1.3: an AF_NETLINK socket with its whole state (see [`model::NetlinkSocket`]).
    Netlink {
        sock_type: u32,
        protocol: u32,
        ino: u64,
        portid: u32,
        groups: Vec<u32>,
        dst_portid: u32,
        dst_group: u32,
    },
}

/// An open file descriptor, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FdV1 {
    /// The owning process.
    pub pid: u32,
    pub fd: i32,
    pub flags: u32,
    pub cloexec: bool,
    /// File position: LFS, always 64-bit.
    pub pos: u64,
    pub kind: FdKindV1,
}

impl FdV1 {
    pub(super) fn from_model(pid: u32, f: &model::Fd) -> Self {
        use model::FdKind as K;
        let kind = match &f.kind {
            K::Regular(r) => FdKindV1::Regular(r.into()),
            K::Directory { path } => FdKindV1::Directory { path: path.clone() },
            K::CharDevice { path, rdev } => FdKindV1::CharDevice {
                path: path.clone(),
                rdev: *rdev,
            },
            K::Tty { path, rdev } => FdKindV1::Tty {
                path: path.clone(),
                rdev: *rdev,
            },
            K::Pipe(p) => FdKindV1::Pipe(PipeEndV1 {
                ino: p.ino,
                write_end: p.write_end,
                buffered: p.buffered.clone(),
                capacity: p.capacity,
                external: p.external,
            }),
            K::Fifo { path, buffered } => FdKindV1::Fifo {
                path: path.clone(),
                buffered: buffered.clone(),
            },
            // The state of a unix socket goes to the unix-sockets section (format 1.3).
            K::Socket {
                family,
                sock_type,
                ino,
                ..
            } => FdKindV1::Socket {
                family: *family,
                sock_type: *sock_type,
                ino: *ino,
            },
            // The state goes to the inet-sockets section (format 1.3): FdKindV1 is frozen.
            K::InetSocket(s) => FdKindV1::Socket {
                family: s.family,
                sock_type: s.sock_type,
                ino: s.ino,
            },
            // The semaphore flag, timer state and inotify watches go to the event-fds section
            // (format 1.2): FdKindV1 is frozen.
            K::EventFd { count, .. } => FdKindV1::EventFd { count: *count },
            // The watches go to the epoll section (format 1.1): FdKindV1 is frozen.
            K::Epoll { .. } => FdKindV1::Epoll,
            K::TimerFd(_) => FdKindV1::TimerFd,
            K::Inotify { .. } => FdKindV1::Inotify,
            K::SignalFd { mask } => FdKindV1::SignalFd { mask: *mask },
            K::MemFd { name } => FdKindV1::MemFd { name: name.clone() },
            K::MemFdObject { object, size } => FdKindV1::MemFdObject {
                object: *object,
                size: *size,
            },
            K::Other { link } => FdKindV1::Other { link: link.clone() },
            K::PtyMaster { index } => FdKindV1::PtyMaster { index: *index },
            K::Netlink(n) => FdKindV1::Netlink {
                sock_type: n.sock_type,
                protocol: n.protocol,
                ino: n.ino,
                portid: n.portid,
                groups: n.groups.clone(),
                dst_portid: n.dst_portid,
                dst_group: n.dst_group,
            },
        };
        FdV1 {
            pid,
            fd: f.fd,
            flags: f.flags,
            cloexec: f.cloexec,
            pos: f.pos,
            kind,
        }
    }

    pub(super) fn into_model(self) -> model::Fd {
        use model::FdKind as K;
        let kind = match self.kind {
            FdKindV1::Regular(r) => K::Regular(r.into()),
            FdKindV1::Directory { path } => K::Directory { path },
            FdKindV1::CharDevice { path, rdev } => K::CharDevice { path, rdev },
            FdKindV1::Tty { path, rdev } => K::Tty { path, rdev },
            FdKindV1::Pipe(p) => K::Pipe(model::PipeEnd {
                ino: p.ino,
                write_end: p.write_end,
                buffered: p.buffered,
                capacity: p.capacity,
                external: p.external,
            }),
            FdKindV1::Fifo { path, buffered } => K::Fifo { path, buffered },
            FdKindV1::Socket {
                family,
                sock_type,
                ino,
            } => K::Socket {
                family,
                sock_type,
                ino,
                // Filled from the unix-sockets section by `decode_metadata`, which refuses a
                // unix socket without its record.
                unix: None,
            },
            // The state of event fds is filled from the event-fds section by `decode_metadata`,
            // which refuses an event fd without its record.
            FdKindV1::EventFd { count } => K::EventFd {
                count,
                semaphore: false,
            },
            // Filled from the epoll section by `decode_metadata`.
            FdKindV1::Epoll => K::Epoll {
                watches: Vec::new(),
            },
            FdKindV1::TimerFd => K::TimerFd(model::TimerFdState::default()),
            FdKindV1::Inotify => K::Inotify {
                watches: Vec::new(),
            },
            FdKindV1::SignalFd { mask } => K::SignalFd { mask },
            FdKindV1::MemFd { name } => K::MemFd { name },
            FdKindV1::MemFdObject { object, size } => K::MemFdObject { object, size },
            FdKindV1::Other { link } => K::Other { link },
            FdKindV1::PtyMaster { index } => K::PtyMaster { index },
            FdKindV1::Netlink {
                sock_type,
                protocol,
                ino,
                portid,
                groups,
                dst_portid,
                dst_group,
            } => K::Netlink(model::NetlinkSocket {
                sock_type,
                protocol,
                ino,
                portid,
                groups,
                dst_portid,
                dst_group,
            }),
        };
        model::Fd {
            fd: self.fd,
            flags: self.flags,
            cloexec: self.cloexec,
            pos: self.pos,
            kind,
        }
    }
}
