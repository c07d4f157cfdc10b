//! IPv4 and IPv6 sockets: TCP sockets unbound, bound or listening with an empty accept queue,
//! and UDP sockets unbound, bound or connected with nothing queued.
//!
//! The socket is taken into the tool with `pidfd_getfd` (the same socket) and asked directly:
//! `SO_DOMAIN`, `SO_TYPE`, `SO_PROTOCOL`, `getsockname`, `getpeername`, the TCP state, accept
//! queue and backlog from `TCP_INFO` (for a listener the kernel reports `sk_ack_backlog` and
//! `sk_max_ack_backlog` there, the same numbers sock_diag gives as `idiag_rqueue` and
//! `idiag_wqueue`), and the integer options of [`OPTIONS`]. Only options whose value differs
//! from a new socket of the same family, type and protocol are kept, so restore sets only what
//! the program set (setting `SO_RCVBUF` at all would turn off the kernel's autotuning).
//! An established TCP connection is refused unless `--tcp-established` ([`super::tcp`]: its
//! repair state) or `--tcp-close` (kept as [`InetState::Shut`]); a connection in any other
//! state (connecting, half-closed, closing), listeners with connections waiting, datagrams
//! queued and raw sockets are refused with the PID, the fd, the state and the addresses. Model:
//! [`FdKind::InetSocket`].

use std::os::fd::{AsFd, BorrowedFd};

use psnc_format::model::{FdKind, InetAddr, InetSocket, InetState, SockOption};
use psnc_ptrace::sock;

use super::tcp::{Repairs, TcpMode};
use crate::error::{CaptureError, Result};

/// The integer options kept, in the order restore sets them.
pub const OPTIONS: &[(i32, i32)] = &[
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_BROADCAST),
    (libc::SOL_SOCKET, libc::SO_RCVBUF),
    (libc::SOL_SOCKET, libc::SO_SNDBUF),
    (libc::SOL_SOCKET, libc::SO_PRIORITY),
];
const TCP_OPTIONS: &[(i32, i32)] = &[
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
];
const V4_OPTIONS: &[(i32, i32)] = &[
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::IPPROTO_IP, libc::IP_TTL),
];
const V6_OPTIONS: &[(i32, i32)] = &[
    (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
    (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
];

/// TCP states of `tcp_info.tcpi_state`.
const TCP_LISTEN: u8 = 10;
const TCP_CLOSE: u8 = 7;

const TCP_ESTABLISHED: u8 = 1;

fn tcp_state_name(s: u8) -> String {
    match s {
        2 => "a connecting (SYN_SENT)".into(),
        3 => "a half-open (SYN_RECV)".into(),
        4 => "a half-closed (FIN_WAIT1: this side shut down writing, not yet acknowledged)".into(),
        5 => "a half-closed (FIN_WAIT2: this side shut down writing)".into(),
        6 => "a closed (TIME_WAIT)".into(),
        8 => "a half-closed (CLOSE_WAIT: the peer shut down writing)".into(),
        9 => "a closing (LAST_ACK)".into(),
        11 => "a closing (CLOSING)".into(),
        s => format!("a (state {s})"),
    }
}

/// Whether `family` is one this module handles.
pub fn is_inet(family: i32) -> bool {
    family == libc::AF_INET || family == libc::AF_INET6
}

fn addr(a: sock::InetAddr) -> InetAddr {
    InetAddr {
        addr: a.addr,
        port: a.port,
    }
}

/// The [`FdKind::InetSocket`] of socket `fd` of `pid`, whose duplicate in the tool is `sock`
/// and whose family (`SO_DOMAIN`) is `family`.
pub(super) fn classify(
    pid: i32,
    fd: i32,
    s: BorrowedFd<'_>,
    family: i32,
    ino: u64,
    repairs: &mut Repairs,
) -> Result<FdKind> {
    let terr = |e| crate::stop::trace_error(pid, pid, &format!("reading socket fd {fd}"), e);
    let get = |level, name| sock::getsockopt_int(s, pid, level, name).map_err(terr);
    let sock_type = get(libc::SOL_SOCKET, libc::SO_TYPE)?;
    let protocol = get(libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    let refuse = |kind: String| CaptureError::Unsupported {
        pid,
        what: format!("fd {fd}"),
        kind,
    };
    let fam = if family == libc::AF_INET {
        "IPv4"
    } else {
        "IPv6"
    };
    let tcp = sock_type == libc::SOCK_STREAM && protocol == libc::IPPROTO_TCP;
    let udp = sock_type == libc::SOCK_DGRAM && protocol == libc::IPPROTO_UDP;
    if !tcp && !udp {
        // Raw, SCTP, ICMP ("ping") and the others: only TCP and UDP have a section.
        return Err(CaptureError::UnsupportedSocket {
            pid,
            fd,
            kind: psnc_abi::socket::describe(family, sock_type, protocol),
        });
    }
    let local = sock::sock_name(s, pid).map_err(terr)?;
    let peer = sock::peer_name(s, pid).map_err(terr)?;
    let local = local.ok_or_else(|| refuse(format!("an {fam} socket without an address")))?;
    let shown_local = local.to_string();
    let mut backlog = 0;
    let mut repair = None;
    let state = if tcp {
        let (st, queued, max) = sock::tcp_info_state(s, pid).map_err(terr)?;
        match st {
            TCP_LISTEN if queued > 0 => {
                return Err(refuse(format!(
                    "a TCP listener on {shown_local} with {queued} connection(s) waiting in its \
                     accept queue; capture it when they are accepted"
                )))
            }
            TCP_LISTEN => {
                backlog = max;
                InetState::Listening
            }
            TCP_CLOSE if local.is_unbound() => InetState::Closed,
            TCP_CLOSE => InetState::Bound,
            st => {
                let to = peer.as_ref().map_or("?".to_string(), |p| p.to_string());
                let conn = format!("{shown_local} -> {to}");
                match (st, repairs.mode) {
                    (_, TcpMode::Close) => {
                        repairs.hold_for_reset(pid, s);
                        InetState::Shut
                    }
                    (TCP_ESTABLISHED, TcpMode::Established) => {
                        repair = Some(super::tcp::capture(pid, fd, s, &conn, repairs)?);
                        InetState::Established
                    }
                    (TCP_ESTABLISHED, TcpMode::Refuse) => {
                        return Err(refuse(format!(
                            "an established TCP connection {conn}; capture it with \
                             --tcp-established (restore continues the connection) or \
                             --tcp-close (restore gives a socket whose connection is closed)"
                        )))
                    }
                    (st, _) => {
                        return Err(refuse(format!(
                            "{} TCP connection {conn}; only established connections can be \
                             continued (--tcp-established); --tcp-close captures it as closed",
                            tcp_state_name(st)
                        )))
                    }
                }
            }
        }
    } else {
        if let Some(n) = sock::peek_queued(s, pid).map_err(terr)? {
            return Err(refuse(format!(
                "a UDP socket on {shown_local} with queued datagrams (the next is {n} bytes); \
                 capture it when they are read"
            )));
        }
        match (&peer, local.is_unbound()) {
            (Some(_), _) => InetState::Connected,
            (None, true) => InetState::Closed,
            (None, false) => InetState::Bound,
        }
    };
    Ok(FdKind::InetSocket(InetSocket {
        family: family as u32,
        sock_type: sock_type as u32,
        protocol: protocol as u32,
        ino,
        state,
        local: addr(local),
        peer: peer.map(addr),
        backlog,
        options: options(pid, s, family, tcp).map_err(terr)?,
        tcp: repair,
    }))
}

/// The options of [`OPTIONS`] and the family's and protocol's whose value differs from a new
/// socket's; buffer sizes halved back to what was set.
fn options(
    pid: i32,
    s: BorrowedFd<'_>,
    family: i32,
    tcp: bool,
) -> psnc_ptrace::error::Result<Vec<SockOption>> {
    let (ty, proto) = if tcp {
        (libc::SOCK_STREAM, libc::IPPROTO_TCP)
    } else {
        (libc::SOCK_DGRAM, libc::IPPROTO_UDP)
    };
    let fresh = sock::socket(pid, family as u32, ty as u32, proto as u32)?;
    let fam = if family == libc::AF_INET {
        V4_OPTIONS
    } else {
        V6_OPTIONS
    };
    let extra: &[(i32, i32)] = if tcp { TCP_OPTIONS } else { &[] };
    let mut out = Vec::new();
    for &(level, name) in OPTIONS.iter().chain(fam).chain(extra) {
        let v = sock::getsockopt_int(s, pid, level, name)?;
        if v != sock::getsockopt_int(fresh.as_fd(), pid, level, name)? {
            let buf =
                level == libc::SOL_SOCKET && (name == libc::SO_RCVBUF || name == libc::SO_SNDBUF);
            out.push(SockOption {
                level,
                name,
                value: if buf { v / 2 } else { v },
            });
        }
    }
    Ok(out)
}
