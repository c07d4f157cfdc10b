//! AF_NETLINK sockets from the tool: the local and peer addresses (`sockaddr_nl`), the
//! multicast memberships, and at restore `bind`, `connect` and `NETLINK_ADD_MEMBERSHIP`.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use crate::error::{PtraceError, Result};

/// `SOL_NETLINK`.
pub const SOL_NETLINK: i32 = 270;
/// `NETLINK_ADD_MEMBERSHIP`.
const NETLINK_ADD_MEMBERSHIP: i32 = 1;
/// `NETLINK_LIST_MEMBERSHIPS`.
const NETLINK_LIST_MEMBERSHIPS: i32 = 9;

fn err(op: &'static str, pid: i32) -> PtraceError {
    PtraceError::Syscall {
        op,
        pid,
        errno: Errno::last(),
    }
}

fn sockaddr(portid: u32, groups: u32) -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_pid = portid;
    sa.nl_groups = groups;
    sa
}

/// `(nl_pid, nl_groups)` of the socket (`getsockname`) or of its destination (`getpeername`,
/// `(0, 0)` when not connected).
pub fn name(fd: BorrowedFd<'_>, pid: i32, peer: bool) -> Result<(u32, u32)> {
    let mut sa = sockaddr(0, 0);
    let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    let p = &mut sa as *mut libc::sockaddr_nl as *mut libc::sockaddr;
    let r = if peer {
        // SAFETY: sa and len are live locals; the kernel writes at most len bytes.
        unsafe { libc::getpeername(fd.as_raw_fd(), p, &mut len) }
    } else {
        // SAFETY: as above.
        unsafe { libc::getsockname(fd.as_raw_fd(), p, &mut len) }
    };
    if r < 0 {
        return Err(err(if peer { "getpeername" } else { "getsockname" }, pid));
    }
    Ok((sa.nl_pid, sa.nl_groups))
}

/// The multicast groups joined (`NETLINK_LIST_MEMBERSHIPS`), as 32-bit words, without the
/// trailing zero words.
pub fn memberships(fd: BorrowedFd<'_>, pid: i32) -> Result<Vec<u32>> {
    let mut words = vec![0u32; 1024];
    let mut len = (words.len() * 4) as libc::socklen_t;
    // SAFETY: words and len are live; the kernel writes at most len bytes into words.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_NETLINK,
            NETLINK_LIST_MEMBERSHIPS,
            words.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(err("getsockopt(NETLINK_LIST_MEMBERSHIPS)", pid));
    }
    // `len` is what the kernel has; it wrote at most the buffer.
    words.truncate((len as usize / 4).min(1024));
    while words.last() == Some(&0) {
        words.pop();
    }
    Ok(words)
}

/// `bind` to port id `portid` (0: the kernel's choice) and the first 32 groups of `groups`.
pub fn bind(fd: BorrowedFd<'_>, pid: i32, portid: u32, groups: u32) -> Result<()> {
    let sa = sockaddr(portid, groups);
    // SAFETY: the kernel reads one sockaddr_nl from a live local.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(err("bind(AF_NETLINK)", pid));
    }
    Ok(())
}

/// `connect` to port id `portid` and group `group` (a group number; 0 for none).
pub fn connect(fd: BorrowedFd<'_>, pid: i32, portid: u32, group: u32) -> Result<()> {
    let mask = if (1..=32).contains(&group) {
        1u32 << (group - 1)
    } else {
        0
    };
    let sa = sockaddr(portid, mask);
    // SAFETY: the kernel reads one sockaddr_nl from a live local.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(err("connect(AF_NETLINK)", pid));
    }
    Ok(())
}

/// Joins multicast group `group` (`NETLINK_ADD_MEMBERSHIP`).
pub fn add_membership(fd: BorrowedFd<'_>, pid: i32, group: u32) -> Result<()> {
    crate::sock::setsockopt_int(fd, pid, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group as i32)
}
