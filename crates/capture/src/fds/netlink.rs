//! AF_NETLINK sockets: type, protocol, bound port id, multicast groups and destination, read
//! from the tool's duplicate of the socket (`pidfd_getfd`): `getsockname`, `getpeername` and
//! `NETLINK_LIST_MEMBERSHIPS`. Model: [`NetlinkSocket`]; restore:
//! `crates/restore/src/fds/netlink.rs`.
//!
//! A netlink socket is stateless between messages for the kernel families (route, generic,
//! audit, uevent, diag): what a program has is its port id, the groups it listens to and
//! where it sends. Messages queued for it (a dump reply not read yet, notifications) cannot be
//! replayed, so a socket with something in its receive queue is refused, naming it; a
//! capture a moment later, when the program has read them, succeeds.

use std::os::fd::BorrowedFd;

use psnc_format::model::{FdKind, NetlinkSocket};
use psnc_ptrace::netlink_sock as nl;

use crate::error::{CaptureError, Result};

/// The state of netlink socket `fd` of `pid` (inode `ino`), duplicated as `s`.
pub fn classify(pid: i32, fd: i32, s: BorrowedFd<'_>, ino: u64) -> Result<FdKind> {
    let terr = |what: &str| {
        let what = format!("reading netlink socket fd {fd}: {what}");
        move |e| crate::stop::trace_error(pid, pid, &what, e)
    };
    let get = |name, what: &str| {
        psnc_ptrace::sock::getsockopt_int(s, pid, libc::SOL_SOCKET, name).map_err(terr(what))
    };
    let sock_type = get(libc::SO_TYPE, "SO_TYPE")? as u32;
    let protocol = get(libc::SO_PROTOCOL, "SO_PROTOCOL")? as u32;
    let kind = psnc_abi::socket::describe(libc::AF_NETLINK, sock_type as i32, protocol as i32);
    if let Some(n) = psnc_ptrace::sock::peek_queued(s, pid).map_err(terr("its queue"))? {
        return Err(CaptureError::UnsupportedSocket {
            pid,
            fd,
            kind: format!(
                "{kind} with unread messages in its receive queue (the next is {n} bytes), \
                 which cannot be replayed; capture again once the process has read them"
            ),
        });
    }
    let (portid, first) = nl::name(s, pid, false).map_err(terr("getsockname"))?;
    let (dst_portid, dst_mask) = nl::name(s, pid, true).map_err(terr("getpeername"))?;
    let mut groups = nl::memberships(s, pid).map_err(terr("NETLINK_LIST_MEMBERSHIPS"))?;
    if groups.is_empty() && first != 0 {
        groups.push(first);
    }
    Ok(FdKind::Netlink(NetlinkSocket {
        sock_type,
        protocol,
        ino,
        portid,
        groups,
        dst_portid,
        dst_group: if dst_mask == 0 {
            0
        } else {
            dst_mask.trailing_zeros() + 1
        },
    }))
}
