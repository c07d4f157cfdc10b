//! AF_NETLINK sockets, created in the restore tool and handed over like the other fds: the
//! same type and protocol, bound to the captured port id (when it had one) and the first 32
//! multicast groups, the others joined with `NETLINK_ADD_MEMBERSHIP`, connected to the
//! captured destination. Model: [`NetlinkSocket`]; capture: `crates/capture/src/fds/netlink.rs`.
//!
//! A port id is unique per protocol and network namespace: one held by another socket (the
//! kernel gives a process's first socket its PID, so usually a process of that PID) is
//! refused with [`RestoreError::AddressInUse`] before the process exists.

use std::os::fd::{AsFd, OwnedFd};

use psnc_format::model::{Fd, NetlinkSocket};
use psnc_ptrace::netlink_sock as nl;

use crate::error::{RestoreError, Result};

/// The socket of fd `f` of process `pid`.
pub fn create(pid: u32, f: &Fd, n: &NetlinkSocket) -> Result<OwnedFd> {
    let ipid = pid as i32;
    let what = format!("netlink socket fd {} (protocol {})", f.fd, n.protocol);
    let step = |step: String| move |source| RestoreError::Step { pid, step, source };
    let s = psnc_ptrace::sock::socket(ipid, libc::AF_NETLINK as u32, n.sock_type, n.protocol)
        .map_err(step(format!("creating {what}")))?;
    let first = n.groups.first().copied().unwrap_or(0);
    if n.portid != 0 || first != 0 {
        nl::bind(s.as_fd(), ipid, n.portid, first).map_err(|e| match e {
            psnc_ptrace::PtraceError::Syscall {
                errno: nix::errno::Errno::EADDRINUSE,
                ..
            } => RestoreError::address_in_use(
                pid,
                f.fd,
                format!("netlink port id {} (protocol {})", n.portid, n.protocol),
            ),
            e => RestoreError::Step {
                pid,
                step: format!("binding {what} to port id {}", n.portid),
                source: e,
            },
        })?;
    }
    for (w, bits) in n.groups.iter().enumerate().skip(1) {
        for b in 0..32 {
            if bits & (1 << b) != 0 {
                let group = (w * 32 + b + 1) as u32;
                nl::add_membership(s.as_fd(), ipid, group)
                    .map_err(step(format!("joining group {group} on {what}")))?;
            }
        }
    }
    if n.dst_portid != 0 || n.dst_group != 0 {
        nl::connect(s.as_fd(), ipid, n.dst_portid, n.dst_group).map_err(step(format!(
            "connecting {what} to port id {} group {}",
            n.dst_portid, n.dst_group
        )))?;
    }
    super::set_status_flags(&s, f.flags, &what)?;
    Ok(s)
}
