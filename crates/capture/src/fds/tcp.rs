//! Established TCP connections (`--tcp-established`), read in repair mode (`TCP_REPAIR`) through
//! the tool's duplicate of the socket (the same socket): the sequence numbers of both queues
//! (`TCP_REPAIR_QUEUE` + `TCP_QUEUE_SEQ`), both queues' bytes (`MSG_PEEK` with the queue
//! selected; the send queue holds the unacknowledged bytes, then the unsent ones counted by
//! `SIOCOUTQNSD`), the MSS (`TCP_MAXSEG`), the options negotiated (`tcpi_options` and window
//! scales of `TCP_INFO`), `TCP_TIMESTAMP` and `TCP_REPAIR_WINDOW`. Model: [`TcpConnection`].
//!
//! A socket in repair mode sends nothing, and one closed in repair mode goes away without FIN or
//! RST. So every socket put in repair mode is held in [`Repairs`] until the capture ends: with
//! `--kill`, once the target is dead, the tool's duplicates are closed still in repair mode (the
//! peer sees nothing); otherwise (no `--kill`, or a failed capture) repair mode is turned off
//! again without a window probe (`TCP_REPAIR_OFF_NO_WP`) and the target goes on.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use psnc_format::model::TcpConnection;
use psnc_ptrace::error::PtraceError;
use psnc_ptrace::sock;

use crate::error::{CaptureError, Result};

/// `TCP_REPAIR` and the options that go with it (linux/tcp.h).
pub const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_TIMESTAMP: i32 = 24;
const TCP_REPAIR_WINDOW: i32 = 29;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
/// `TCP_REPAIR_OFF_NO_WP`: leave repair mode without sending a window probe.
const TCP_REPAIR_OFF_NO_WP: i32 = -1;
/// `TCPI_OPT_TIMESTAMPS` of `tcpi_options`.
const TCPI_OPT_TIMESTAMPS: u8 = 1;

/// What to do with established TCP connections (`--tcp-established`, `--tcp-close`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpMode {
    /// Refuse them (default), naming the addresses and both options.
    #[default]
    Refuse,
    /// Capture them in repair mode; restore continues the connection.
    Established,
    /// Capture them as closed; restore gives a socket shut down both ways.
    Close,
}

/// What to do with established connections, and the sockets put in repair mode by this
/// capture (duplicates held by the tool).
#[derive(Debug, Default)]
pub struct Repairs {
    /// `--tcp-established`, `--tcp-close` or neither.
    pub mode: TcpMode,
    held: Vec<(i32, OwnedFd)>,
    /// `--tcp-close`: duplicates of the connections captured as closed, reset once the target
    /// is dead (so that no FIN_WAIT socket keeps the restored server from its port).
    resets: Vec<(i32, OwnedFd)>,
    keep: bool,
}

impl Repairs {
    /// None yet, for `mode`.
    pub fn new(mode: TcpMode) -> Self {
        Repairs {
            mode,
            held: Vec::new(),
            resets: Vec::new(),
            keep: false,
        }
    }

    /// How many sockets are in repair mode.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Keeps a duplicate of connection `s` of `pid`, captured as closed (`--tcp-close`), to
    /// be reset when the target is killed.
    pub fn hold_for_reset(&mut self, pid: i32, s: BorrowedFd<'_>) {
        // Without a duplicate the connection only ends with the usual FIN: not an error.
        if let Ok(own) = s.try_clone_to_owned() {
            self.resets.push((pid, own));
        }
    }

    /// The target is dead: close the duplicates still in repair mode, so the kernel drops the
    /// connections without a FIN or RST; the `--tcp-close` ones are closed with a zero linger,
    /// so the kernel resets them (the peer learns the connection is gone, and the port is
    /// free at once, as the restored process that binds it again needs).
    pub fn close_in_repair(mut self) {
        self.keep = true;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // `struct linger` is two ints, no padding.
        let bytes: Vec<u8> = [linger.l_onoff, linger.l_linger]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        for (pid, s) in self.resets.drain(..) {
            // A failure leaves the usual close (FIN): nothing more to do about it.
            let _ =
                sock::setsockopt_bytes(s.as_fd(), pid, libc::SOL_SOCKET, libc::SO_LINGER, &bytes);
        }
    }

    /// Takes every socket out of repair mode (no window probe); the target goes on.
    pub fn release(&mut self) {
        for (pid, s) in self.held.drain(..) {
            // Nothing more can be done about a failure here: the socket stays in repair mode and
            // its connection stalls; it cannot fail for a socket TCP_REPAIR accepted.
            let _ = sock::setsockopt_int(
                s.as_fd(),
                pid,
                libc::IPPROTO_TCP,
                TCP_REPAIR,
                TCP_REPAIR_OFF_NO_WP,
            );
        }
    }
}

impl Drop for Repairs {
    fn drop(&mut self) {
        if !self.keep {
            self.release();
        }
    }
}

/// The established connections of the image (`--tcp-established`), by their addresses, for
/// the network lock.
pub fn connections(ck: &psnc_format::model::Checkpoint) -> Vec<psnc_ptrace::netlock::Connection> {
    let ip = |a: &psnc_format::model::InetAddr| -> Option<(std::net::IpAddr, u16)> {
        let addr = match a.addr.len() {
            4 => std::net::IpAddr::from(<[u8; 4]>::try_from(a.addr.as_slice()).ok()?),
            // A dual-stack socket's IPv4 peer (::ffff:a.b.c.d) is IPv4 on the wire.
            16 => {
                let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(a.addr.as_slice()).ok()?);
                v6.to_ipv4_mapped()
                    .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4)
            }
            _ => return None,
        };
        Some((addr, a.port))
    };
    let mut out: Vec<psnc_ptrace::netlock::Connection> = ck
        .processes
        .iter()
        .flat_map(|p| &p.fds)
        .filter_map(|f| match &f.kind {
            psnc_format::model::FdKind::InetSocket(s) if s.tcp.is_some() => {
                Some(psnc_ptrace::netlock::Connection {
                    local: ip(&s.local)?,
                    peer: ip(s.peer.as_ref()?)?,
                })
            }
            _ => None,
        })
        .collect();
    out.sort_by_key(|c| (c.local, c.peer));
    out.dedup();
    out
}

/// The repair state of the established connection `conn` (`local -> peer`), fd `fd` of `pid`,
/// whose duplicate in the tool is `s`; the socket stays in repair mode, held by `repairs`.
pub(super) fn capture(
    pid: i32,
    fd: i32,
    s: BorrowedFd<'_>,
    conn: &str,
    repairs: &mut Repairs,
) -> Result<TcpConnection> {
    let terr = |e| crate::stop::trace_error(pid, pid, &format!("repairing TCP socket fd {fd}"), e);
    match sock::setsockopt_int(s, pid, libc::IPPROTO_TCP, TCP_REPAIR, 1) {
        Err(PtraceError::Syscall {
            errno: Errno::EPERM,
            ..
        }) => {
            return Err(CaptureError::TcpRepairDenied {
                pid,
                fd,
                conn: conn.to_string(),
            })
        }
        r => r.map_err(terr)?,
    }
    let own = s.try_clone_to_owned().map_err(|e| {
        terr(PtraceError::Syscall {
            op: "dup",
            pid,
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })
    })?;
    repairs.held.push((pid, own));

    let get = |name| sock::getsockopt_int(s, pid, libc::IPPROTO_TCP, name).map_err(terr);
    let mut info = [0u8; 8];
    sock::getsockopt_bytes(s, pid, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info).map_err(terr)?;
    let tcp_options = info[5];
    let (snd_wscale, rcv_wscale) = (info[6] & 0xf, info[6] >> 4);
    let ioctl = |r| sock::ioctl_int(s, pid, r).map_err(terr);
    let outq = ioctl(sock::SIOCOUTQ)? as usize;
    let unsent = ioctl(sock::SIOCOUTQNSD)? as u32;
    let inq = ioctl(sock::SIOCINQ)? as usize;
    let mss = get(libc::TCP_MAXSEG)? as u32;
    let timestamp = if tcp_options & TCPI_OPT_TIMESTAMPS != 0 {
        get(TCP_TIMESTAMP)? as u32
    } else {
        0
    };
    let mut w = [0u8; 20];
    sock::getsockopt_bytes(s, pid, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW, &mut w).map_err(terr)?;
    let word = |i: usize| u32::from_ne_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]);
    let window = [word(0), word(1), word(2), word(3), word(4)];

    let queue = |q: i32, len: usize, name: &str| -> Result<(u32, Vec<u8>)> {
        sock::setsockopt_int(s, pid, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, q).map_err(terr)?;
        let seq = get(TCP_QUEUE_SEQ)? as u32;
        let bytes = sock::peek_exact(s, pid, len)
            .map_err(terr)?
            .ok_or_else(|| CaptureError::Unsupported {
                pid,
                what: format!("fd {fd}"),
                kind: format!(
                    "the TCP connection {conn} whose {name} queue changed while it was read \
                     (the kernel reported {len} bytes); capture it again"
                ),
            })?;
        Ok((seq, bytes))
    };
    let (rcv_seq, recv_queue) = queue(TCP_RECV_QUEUE, inq, "receive")?;
    let (snd_seq, send_queue) = queue(TCP_SEND_QUEUE, outq, "send")?;
    Ok(TcpConnection {
        snd_seq,
        rcv_seq,
        send_queue,
        unsent: unsent.min(outq as u32),
        recv_queue,
        mss,
        tcp_options,
        snd_wscale,
        rcv_wscale,
        timestamp,
        window,
    })
}
