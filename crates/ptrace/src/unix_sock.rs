//! AF_UNIX sockets for the tools themselves (the IPv4/IPv6 calls are in [`crate::sock`]): the `sock_diag` dump of every AF_UNIX socket
//! (inode, type, state, peer, name, queue lengths, shutdown), peeking a receive queue without
//! consuming it, and creating, binding, filling and shutting down sockets at restore. One
//! syscall per function; errno becomes [`PtraceError::Syscall`] at once (pid 0: the tool's own
//! descriptors).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{PtraceError, Result};

fn check(op: &'static str, r: isize) -> Result<usize> {
    if r < 0 {
        Err(PtraceError::Syscall {
            op,
            pid: 0,
            errno: Errno::last(),
        })
    } else {
        Ok(r as usize)
    }
}

fn owned(op: &'static str, r: libc::c_int) -> Result<OwnedFd> {
    check(op, r as isize)?;
    // SAFETY: the kernel just returned `r` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// What `sock_diag` reports about one AF_UNIX socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixDiag {
    /// The socket's inode (`socket:[ino]`).
    pub ino: u32,
    /// `SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_SEQPACKET` 5.
    pub sock_type: u8,
    /// `TCP_ESTABLISHED` 1 (connected), `TCP_CLOSE` 7 (unconnected), `TCP_LISTEN` 10.
    pub state: u8,
    /// The peer's inode, if connected.
    pub peer: Option<u32>,
    /// The bound name (`sun_path` bytes; a leading NUL for the abstract namespace).
    pub name: Option<Vec<u8>>,
    /// The socket file's (inode, device), for a name in the filesystem.
    pub vfs: Option<(u32, u32)>,
    /// A listener: (connections waiting in the accept queue, backlog); other sockets: (bytes
    /// or messages in the receive queue, in the send queue).
    pub rqlen: Option<(u32, u32)>,
    /// `RCV_SHUTDOWN` 1 | `SEND_SHUTDOWN` 2.
    pub shutdown: u8,
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_NAME: u32 = 1;
const UDIAG_SHOW_VFS: u32 = 2;
const UDIAG_SHOW_PEER: u32 = 4;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const NLMSG_HDR: usize = 16;

/// Every AF_UNIX socket of this network namespace, from one `sock_diag` dump (netlink
/// `SOCK_DIAG_BY_FAMILY` with `UDIAG_SHOW_NAME|VFS|PEER|RQLEN`).
pub fn unix_diag_dump() -> Result<Vec<UnixDiag>> {
    // SAFETY: socket takes three integers and touches no memory of ours.
    let nl = owned("socket(AF_NETLINK)", unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    })?;
    // nlmsghdr (16) + unix_diag_req (24).
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    let show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN;
    req[28..32].copy_from_slice(&show.to_ne_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]); // no cookie
    send(std::os::fd::AsFd::as_fd(&nl), &req, 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: recv writes at most buf.len() bytes into buf, which we own.
        let n = check("recv(sock_diag)", unsafe {
            libc::recv(nl.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
        })?;
        let mut off = 0;
        while off + NLMSG_HDR <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if len < NLMSG_HDR || off + len > n {
                return Err(bad_diag());
            }
            match ty as i32 {
                libc::NLMSG_DONE => return Ok(out),
                libc::NLMSG_ERROR => {
                    let e = buf
                        .get(off + 16..off + 20)
                        .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or_default()))
                        .unwrap_or(-libc::EIO);
                    return Err(PtraceError::Syscall {
                        op: "sock_diag",
                        pid: 0,
                        errno: Errno::from_raw(-e),
                    });
                }
                _ => out.push(parse_diag(&buf[off + NLMSG_HDR..off + len])?),
            }
            off += (len + 3) & !3;
        }
    }
}

fn bad_diag() -> PtraceError {
    PtraceError::Syscall {
        op: "sock_diag (malformed reply)",
        pid: 0,
        errno: Errno::EPROTO,
    }
}

/// One `unix_diag_msg` and its attributes.
fn parse_diag(b: &[u8]) -> Result<UnixDiag> {
    if b.len() < 16 {
        return Err(bad_diag());
    }
    let u32_at = |b: &[u8], o: usize| -> Result<u32> {
        b.get(o..o + 4)
            .map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
            .ok_or_else(bad_diag)
    };
    let mut d = UnixDiag {
        sock_type: b[1],
        state: b[2],
        ino: u32_at(b, 4)?,
        ..UnixDiag::default()
    };
    let mut off = 16;
    while off + 4 <= b.len() {
        let len = u16::from_ne_bytes([b[off], b[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([b[off + 2], b[off + 3]]);
        if len < 4 || off + len > b.len() {
            return Err(bad_diag());
        }
        let v = &b[off + 4..off + len];
        match ty {
            0 => d.name = Some(trim_path_name(v.to_vec())),
            1 => d.vfs = Some((u32_at(v, 0)?, u32_at(v, 4)?)),
            2 => d.peer = Some(u32_at(v, 0)?),
            4 => d.rqlen = Some((u32_at(v, 0)?, u32_at(v, 4)?)),
            6 => d.shutdown = v.first().copied().unwrap_or(0),
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Ok(d)
}

/// `getsockopt(fd, level, opt)` of an int option.
pub fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, opt: i32) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` (4) bytes into `v`, which lives across the call.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    check("getsockopt", r as isize)?;
    Ok(v)
}

/// `setsockopt(fd, level, opt, &v)` of an int option.
pub fn setsockopt_int(fd: BorrowedFd<'_>, level: i32, opt: i32, v: i32) -> Result<()> {
    // SAFETY: the kernel reads 4 bytes from `v`, which lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const i32).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check("setsockopt", r as isize)?;
    Ok(())
}

/// What one `recvmsg(MSG_PEEK|MSG_DONTWAIT)` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peeked {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// The message was longer than the buffer (`MSG_TRUNC`).
    pub truncated: bool,
    /// Control messages came with it: `SCM_RIGHTS` (file descriptors in flight).
    pub rights: bool,
}

/// Peeks at the receive queue of `fd` without consuming it (`recvmsg` with `MSG_PEEK |
/// MSG_DONTWAIT`, at the socket's `SO_PEEK_OFF` when set). `None`: nothing (more) queued.
/// Descriptors passed with `SCM_RIGHTS` are installed into this process by a peek too
/// (close-on-exec): callers refuse such a queue, and the copies close with the tool.
pub fn peek(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<Peeked>> {
    let mut ctrl = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&ctrl) as _;
    // SAFETY: msg points to one iovec over `buf` and to `ctrl`, both ours and alive across the
    // call; the kernel writes within their lengths. MSG_CMSG_CLOEXEC: should the peek ever
    // install passed descriptors, they do not leak into children.
    let r = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if r < 0 && matches!(Errno::last(), Errno::EAGAIN) {
        return Ok(None);
    }
    let len = check("recvmsg(MSG_PEEK)", r)?;
    let mut rights = msg.msg_flags & libc::MSG_CTRUNC != 0;
    // SAFETY: msg was filled by the kernel; CMSG_FIRSTHDR/NXTHDR stay within msg_control.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: c is a control message header inside `ctrl`, as CMSG_* returned it.
        let (level, ty) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            rights = true;
        }
        // SAFETY: as above.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    if len == 0 && buf.is_empty() {
        return Ok(None);
    }
    Ok(Some(Peeked {
        len,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        rights,
    }))
}

/// `socketpair(AF_UNIX, sock_type | SOCK_CLOEXEC)`.
pub fn socketpair(sock_type: i32) -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: the kernel writes two descriptors into `fds`, which we own.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            sock_type | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    check("socketpair", r as isize)?;
    // SAFETY: both are new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `socket(AF_UNIX, sock_type | SOCK_CLOEXEC, 0)`.
pub fn unix_socket(sock_type: i32) -> Result<OwnedFd> {
    // SAFETY: socket takes three integers and touches no memory of ours.
    owned("socket(AF_UNIX)", unsafe {
        libc::socket(libc::AF_UNIX, sock_type | libc::SOCK_CLOEXEC, 0)
    })
}

/// `bind(fd, sockaddr_un{name})`; `name` is the `sun_path` bytes (leading NUL: abstract).
pub fn bind_unix(fd: BorrowedFd<'_>, name: &[u8]) -> Result<()> {
    with_unix_addr("bind(AF_UNIX)", name, |sa, len| {
        // SAFETY: the kernel reads `len` bytes (at most the size of `*sa`) from `sa`.
        unsafe { libc::bind(fd.as_raw_fd(), sa, len) }
    })
}

/// `connect(fd, sockaddr_un{name})`; `name` as for [`bind_unix`]. A non-blocking socket may
/// answer `EAGAIN` when the listener's backlog is full.
pub fn connect_unix(fd: BorrowedFd<'_>, name: &[u8]) -> Result<()> {
    with_unix_addr("connect(AF_UNIX)", name, |sa, len| {
        // SAFETY: the kernel reads `len` bytes (at most the size of `*sa`) from `sa`.
        unsafe { libc::connect(fd.as_raw_fd(), sa, len) }
    })
}

/// Runs `call` with a `sockaddr_un` holding `name` and its length; its result is a syscall's.
fn with_unix_addr(
    op: &'static str,
    name: &[u8],
    call: impl FnOnce(*const libc::sockaddr, libc::socklen_t) -> libc::c_int,
) -> Result<()> {
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if name.len() > sa.sun_path.len() {
        return Err(PtraceError::Syscall {
            op,
            pid: 0,
            errno: Errno::ENAMETOOLONG,
        });
    }
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sa.sun_path.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + name.len();
    let r = call(
        (&sa as *const libc::sockaddr_un).cast(),
        len as libc::socklen_t,
    );
    check(op, r as isize)?;
    Ok(())
}

/// The address of the socket `fd` is connected to (`getpeername`): its `sun_path` bytes,
/// without the terminating NUL of a path; empty for an unnamed peer.
pub fn peer_name(fd: BorrowedFd<'_>) -> Result<Vec<u8>> {
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes (the size of `sa`) into `sa`.
    let r = unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_un).cast(),
            &mut len,
        )
    };
    check("getpeername", r as isize)?;
    let n = (len as usize)
        .saturating_sub(std::mem::size_of::<libc::sa_family_t>())
        .min(sa.sun_path.len());
    Ok(trim_path_name(
        sa.sun_path[..n].iter().map(|&c| c as u8).collect(),
    ))
}

/// A path name as the kernel keeps it ends with its NUL; an abstract one (leading NUL) is
/// kept whole.
pub fn trim_path_name(mut name: Vec<u8>) -> Vec<u8> {
    if name.first().is_some_and(|&b| b != 0) {
        if let Some(end) = name.iter().position(|&b| b == 0) {
            name.truncate(end);
        }
    }
    name
}

/// `listen(fd, backlog)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> Result<()> {
    // SAFETY: listen takes two integers.
    check("listen", unsafe { libc::listen(fd.as_raw_fd(), backlog) }
        as isize)?;
    Ok(())
}

/// `send(fd, bytes, flags)`: one message on a datagram or seqpacket socket.
pub fn send(fd: BorrowedFd<'_>, bytes: &[u8], flags: i32) -> Result<usize> {
    // SAFETY: the kernel reads at most bytes.len() bytes from `bytes`.
    check("send", unsafe {
        libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), flags)
    })
}

/// `shutdown(fd, how)`.
pub fn shutdown(fd: BorrowedFd<'_>, how: i32) -> Result<()> {
    // SAFETY: shutdown takes two integers.
    check("shutdown", unsafe { libc::shutdown(fd.as_raw_fd(), how) }
        as isize)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn diag_sees_a_pair_and_peek_walks_it() {
        let (a, b) = socketpair(libc::SOCK_SEQPACKET).unwrap();
        send(b.as_fd(), b"one", 0).unwrap();
        send(b.as_fd(), b"three", 0).unwrap();
        let ino = |f: &OwnedFd| {
            let l = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap();
            let l = l.to_string_lossy().to_string();
            l["socket:[".len()..l.len() - 1].parse::<u32>().unwrap()
        };
        let all = unix_diag_dump().unwrap();
        let da = all.iter().find(|d| d.ino == ino(&a)).unwrap();
        assert_eq!(da.peer, Some(ino(&b)));
        assert_eq!(da.sock_type, libc::SOCK_SEQPACKET as u8);
        setsockopt_int(a.as_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0).unwrap();
        let mut buf = [0u8; 64];
        let p = peek(a.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..p.len], b"one");
        let p = peek(a.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..p.len], b"three");
        assert_eq!(peek(a.as_fd(), &mut buf).unwrap(), None);
    }
}
