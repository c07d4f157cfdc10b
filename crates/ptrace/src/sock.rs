//! Socket calls the tools make on their own descriptors: capture on a duplicate of the target's
//! socket (`pidfd_getfd`: the same socket), restore on the socket it creates for the task. Each
//! function wraps one syscall; errno becomes [`PtraceError::Syscall`] with `pid` naming the
//! process the socket belongs to (0 when none).
//!
//! Addresses cross this API as [`InetAddr`] (family, address bytes in network order, port), so
//! callers never build a `sockaddr`.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{PtraceError, Result};

fn check(op: &'static str, pid: i32, r: libc::c_long) -> Result<libc::c_long> {
    if r < 0 {
        Err(PtraceError::Syscall {
            op,
            pid,
            errno: Errno::last(),
        })
    } else {
        Ok(r)
    }
}

/// An IPv4 or IPv6 socket address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetAddr {
    /// `AF_INET` or `AF_INET6`.
    pub family: u32,
    /// The address, network order: 4 bytes (IPv4) or 16 (IPv6).
    pub addr: Vec<u8>,
    /// The port.
    pub port: u16,
    /// IPv6 flow information and scope id (0 for IPv4).
    pub scope_id: u32,
}

impl InetAddr {
    /// Whether this is the unspecified address with port 0 (an unbound socket's name).
    pub fn is_unbound(&self) -> bool {
        self.port == 0 && self.addr.iter().all(|b| *b == 0)
    }
}

impl std::fmt::Display for InetAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Ok(a) = <[u8; 4]>::try_from(self.addr.as_slice()) {
            write!(f, "{}:{}", std::net::Ipv4Addr::from(a), self.port)
        } else if let Ok(a) = <[u8; 16]>::try_from(self.addr.as_slice()) {
            write!(f, "[{}]:{}", std::net::Ipv6Addr::from(a), self.port)
        } else {
            write!(f, "<{} address bytes>:{}", self.addr.len(), self.port)
        }
    }
}

fn from_storage(ss: &libc::sockaddr_storage) -> Option<InetAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(InetAddr {
                family: libc::AF_INET as u32,
                addr: sin.sin_addr.s_addr.to_ne_bytes().to_vec(),
                port: u16::from_be(sin.sin_port),
                scope_id: 0,
            })
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(InetAddr {
                family: libc::AF_INET6 as u32,
                addr: sin6.sin6_addr.s6_addr.to_vec(),
                port: u16::from_be(sin6.sin6_port),
                scope_id: sin6.sin6_scope_id,
            })
        }
        _ => None,
    }
}

fn to_storage(a: &InetAddr) -> Option<(libc::sockaddr_storage, libc::socklen_t)> {
    // SAFETY: sockaddr_storage is plain data for which all zero bytes are valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a.family as i32 {
        libc::AF_INET => {
            let b = <[u8; 4]>::try_from(a.addr.as_slice()).ok()?;
            // SAFETY: the storage is large and aligned enough for a sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port.to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(b);
            std::mem::size_of::<libc::sockaddr_in>()
        }
        libc::AF_INET6 => {
            let b = <[u8; 16]>::try_from(a.addr.as_slice()).ok()?;
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port.to_be();
            sin6.sin6_addr.s6_addr = b;
            sin6.sin6_scope_id = a.scope_id;
            std::mem::size_of::<libc::sockaddr_in6>()
        }
        _ => return None,
    };
    Some((ss, len as libc::socklen_t))
}

/// An integer socket option (`getsockopt` at `level`, `name`).
pub fn getsockopt_int(fd: BorrowedFd<'_>, pid: i32, level: i32, name: i32) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are live locals of the sizes passed; the kernel writes at most len bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &mut v as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    check("getsockopt", pid, r.into())?;
    Ok(v)
}

/// Sets an integer socket option (`setsockopt` at `level`, `name`).
pub fn setsockopt_int(
    fd: BorrowedFd<'_>,
    pid: i32,
    level: i32,
    name: i32,
    value: i32,
) -> Result<()> {
    // SAFETY: the kernel reads one c_int from a live local.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &value as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check("setsockopt", pid, r.into())?;
    Ok(())
}

/// The TCP state and, for a listener, its accept queue and backlog: `(tcpi_state,
/// tcpi_unacked, tcpi_sacked)` of `TCP_INFO`, which for a `LISTEN` socket the kernel fills with
/// `sk_ack_backlog` (connections waiting for `accept`) and `sk_max_ack_backlog` (the backlog).
pub fn tcp_info_state(fd: BorrowedFd<'_>, pid: i32) -> Result<(u8, u32, u32)> {
    let mut buf = [0u8; 32];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf and len are live locals; the kernel writes at most len bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    check("getsockopt(TCP_INFO)", pid, r.into())?;
    let word = |o: usize| u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
    // struct tcp_info: 8 bytes of u8 fields, then rto, ato, snd_mss, rcv_mss, unacked, sacked.
    Ok((buf[0], word(24), word(28)))
}

fn name_call(fd: BorrowedFd<'_>, pid: i32, peer: bool) -> Result<Option<InetAddr>> {
    // SAFETY: sockaddr_storage is plain data for which all zero bytes are valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = &mut ss as *mut _ as *mut libc::sockaddr;
    let (op, r) = if peer {
        // SAFETY: ss and len are live locals; the kernel writes at most len bytes.
        ("getpeername", unsafe {
            libc::getpeername(fd.as_raw_fd(), p, &mut len)
        })
    } else {
        // SAFETY: as above.
        ("getsockname", unsafe {
            libc::getsockname(fd.as_raw_fd(), p, &mut len)
        })
    };
    if r < 0 && peer && Errno::last() == Errno::ENOTCONN {
        return Ok(None);
    }
    check(op, pid, r.into())?;
    Ok(from_storage(&ss))
}

/// The socket's local address (`getsockname`); `None` for a family other than IPv4/IPv6.
pub fn sock_name(fd: BorrowedFd<'_>, pid: i32) -> Result<Option<InetAddr>> {
    name_call(fd, pid, false)
}

/// The socket's peer (`getpeername`); `None` when it is not connected.
pub fn peer_name(fd: BorrowedFd<'_>, pid: i32) -> Result<Option<InetAddr>> {
    name_call(fd, pid, true)
}

/// The length of the next queued datagram or bytes (`recv` with `MSG_PEEK | MSG_DONTWAIT |
/// MSG_TRUNC`, which consumes nothing); `None` when nothing is queued.
pub fn peek_queued(fd: BorrowedFd<'_>, pid: i32) -> Result<Option<usize>> {
    let mut b = [0u8; 1];
    // SAFETY: the kernel writes at most 1 byte into a live local.
    let r = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            b.as_mut_ptr() as *mut libc::c_void,
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
    if r < 0 && matches!(Errno::last(), Errno::EAGAIN | Errno::ENOTCONN) {
        return Ok(None);
    }
    Ok(Some(
        check("recv(MSG_PEEK)", pid, r as libc::c_long)? as usize
    ))
}

/// A new socket (`socket(family, sock_type | SOCK_CLOEXEC, protocol)`).
pub fn socket(pid: i32, family: u32, sock_type: u32, protocol: u32) -> Result<OwnedFd> {
    // SAFETY: socket takes three integers and touches no memory of ours.
    let r = unsafe {
        libc::socket(
            family as i32,
            sock_type as i32 | libc::SOCK_CLOEXEC,
            protocol as i32,
        )
    };
    let fd = check("socket", pid, r.into())? as i32;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

fn addr_call(op: &'static str, fd: BorrowedFd<'_>, pid: i32, a: &InetAddr) -> Result<()> {
    let Some((ss, len)) = to_storage(a) else {
        return Err(PtraceError::Syscall {
            op,
            pid,
            errno: Errno::EAFNOSUPPORT,
        });
    };
    let p = &ss as *const _ as *const libc::sockaddr;
    let r = if op == "bind" {
        // SAFETY: the kernel reads len bytes of a live, initialised sockaddr_storage.
        unsafe { libc::bind(fd.as_raw_fd(), p, len) }
    } else {
        // SAFETY: as above.
        unsafe { libc::connect(fd.as_raw_fd(), p, len) }
    };
    check(op, pid, r.into())?;
    Ok(())
}

/// Binds the socket to `a` (`bind`).
pub fn bind(fd: BorrowedFd<'_>, pid: i32, a: &InetAddr) -> Result<()> {
    addr_call("bind", fd, pid, a)
}

/// Connects the socket to `a` (`connect`; for a datagram socket only sets its peer).
pub fn connect(fd: BorrowedFd<'_>, pid: i32, a: &InetAddr) -> Result<()> {
    addr_call("connect", fd, pid, a)
}

/// Makes the socket a listener with `backlog` (`listen`).
pub fn listen(fd: BorrowedFd<'_>, pid: i32, backlog: i32) -> Result<()> {
    // SAFETY: listen takes two integers and touches no memory of ours.
    let r = unsafe { libc::listen(fd.as_raw_fd(), backlog) };
    check("listen", pid, r.into())?;
    Ok(())
}

/// A socket option of any size (`getsockopt` at `level`, `name` into `buf`); the length the
/// kernel wrote.
pub fn getsockopt_bytes(
    fd: BorrowedFd<'_>,
    pid: i32,
    level: i32,
    name: i32,
    buf: &mut [u8],
) -> Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf and len are live; the kernel writes at most len bytes into buf.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    check("getsockopt", pid, r.into())?;
    Ok(len as usize)
}

/// Sets a socket option of any size (`setsockopt` at `level`, `name` from `buf`).
pub fn setsockopt_bytes(
    fd: BorrowedFd<'_>,
    pid: i32,
    level: i32,
    name: i32,
    buf: &[u8],
) -> Result<()> {
    // SAFETY: the kernel reads buf.len() bytes of a live slice.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_ptr() as *const libc::c_void,
            buf.len() as libc::socklen_t,
        )
    };
    check("setsockopt", pid, r.into())?;
    Ok(())
}

/// `SIOCINQ`: bytes in a TCP socket's receive queue.
pub const SIOCINQ: libc::c_ulong = libc::FIONREAD as libc::c_ulong;
/// `SIOCOUTQ`: bytes in a TCP socket's send queue (sent and unacknowledged, and unsent).
pub const SIOCOUTQ: libc::c_ulong = libc::TIOCOUTQ as libc::c_ulong;
/// `SIOCOUTQNSD`: bytes of the send queue never sent.
pub const SIOCOUTQNSD: libc::c_ulong = 0x894B;

/// An `int`-valued socket ioctl ([`SIOCINQ`], [`SIOCOUTQ`], [`SIOCOUTQNSD`]).
pub fn ioctl_int(fd: BorrowedFd<'_>, pid: i32, request: libc::c_ulong) -> Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these requests write one c_int into a live local.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut v as *mut libc::c_int) };
    check("ioctl", pid, r.into())?;
    Ok(v)
}

/// Exactly `len` queued bytes, read without consuming them (`recv` of `len + 1` bytes with
/// `MSG_PEEK | MSG_DONTWAIT`); `Ok(None)` when the kernel gives another count.
pub fn peek_exact(fd: BorrowedFd<'_>, pid: i32, len: usize) -> Result<Option<Vec<u8>>> {
    if len == 0 {
        return Ok(Some(Vec::new()));
    }
    let mut buf = vec![0u8; len + 1];
    // SAFETY: the kernel writes at most buf.len() bytes into the live vector.
    let r = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let n = check("recv(MSG_PEEK)", pid, r as libc::c_long)? as usize;
    if n != len {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some(buf))
}

/// Sends part of `buf` (`send` with `flags`); the count sent.
pub fn send(fd: BorrowedFd<'_>, pid: i32, buf: &[u8], flags: i32) -> Result<usize> {
    // SAFETY: the kernel reads buf.len() bytes of a live slice.
    let r = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr() as *const libc::c_void,
            buf.len(),
            flags | libc::MSG_NOSIGNAL,
        )
    };
    Ok(check("send", pid, r as libc::c_long)? as usize)
}

/// Shuts the socket down (`shutdown(how)`: `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`).
pub fn shutdown(fd: BorrowedFd<'_>, pid: i32, how: i32) -> Result<()> {
    // SAFETY: shutdown takes two integers and touches no memory of ours.
    let r = unsafe { libc::shutdown(fd.as_raw_fd(), how) };
    check("shutdown", pid, r.into())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn listener_round_trip() {
        let s = socket(0, libc::AF_INET as u32, libc::SOCK_STREAM as u32, 0).unwrap();
        setsockopt_int(s.as_fd(), 0, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
        let lo = InetAddr {
            family: libc::AF_INET as u32,
            addr: vec![127, 0, 0, 1],
            port: 0,
            scope_id: 0,
        };
        bind(s.as_fd(), 0, &lo).unwrap();
        listen(s.as_fd(), 0, 7).unwrap();
        let name = sock_name(s.as_fd(), 0).unwrap().unwrap();
        assert_eq!(name.addr, vec![127, 0, 0, 1]);
        assert_ne!(name.port, 0);
        assert_eq!(peer_name(s.as_fd(), 0).unwrap(), None);
        assert_eq!(
            getsockopt_int(s.as_fd(), 0, libc::SOL_SOCKET, libc::SO_REUSEADDR).unwrap(),
            1
        );
        let _c = std::net::TcpStream::connect(("127.0.0.1", name.port)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(tcp_info_state(s.as_fd(), 0).unwrap(), (10, 1, 7));
        assert_eq!(name.to_string(), format!("127.0.0.1:{}", name.port));
    }
}
