//! Established TCP connections (`--tcp-established` at capture), rebuilt in repair mode
//! (`TCP_REPAIR`, needs `CAP_NET_ADMIN`) on the new socket, in the order the kernel needs (the
//! one CRIU's libsoccr uses): repair on; the initial sequence number of each queue
//! (`TCP_REPAIR_QUEUE` + `TCP_QUEUE_SEQ`: the captured one less the queue's length, since
//! queuing the bytes advances it); `bind` (repair mode forces the port's reuse); `connect` (no
//! SYN in repair mode: the socket becomes established at once); `TCP_REPAIR_OPTIONS` (MSS,
//! window scales, SACK, timestamps); `TCP_TIMESTAMP`; the receive queue's bytes and the part of
//! the send queue that had been sent (a `send` with the queue selected only queues them);
//! `TCP_REPAIR_WINDOW`; then, once every socket of the tree is rebuilt ([`Repaired::release`]),
//! repair off and the part of the send queue never sent, sent as the program would.
//!
//! Repair stays on until the whole tree's sockets exist because turning it off sends a window
//! probe to the peer: when the peer is another socket of the image not rebuilt yet, the probe
//! reaches the port's listener (or nothing), which answers with a reset, and both ends of the
//! connection die (a server holding both ends of its connections, a proxy). A socket in repair
//! mode sends nothing of its own. Model: [`TcpConnection`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use psnc_format::model::TcpConnection;
use psnc_ptrace::error::{PtraceError, Result};
use psnc_ptrace::sock;

const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_REPAIR_OPTIONS: i32 = 22;
const TCP_TIMESTAMP: i32 = 24;
const TCP_REPAIR_WINDOW: i32 = 29;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
const TCPI_OPT_TIMESTAMPS: u8 = 1;
const TCPI_OPT_SACK: u8 = 2;
const TCPI_OPT_WSCALE: u8 = 4;
const TCPOPT_MAXSEG: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;

fn set(s: BorrowedFd<'_>, pid: i32, name: i32, v: i32) -> Result<()> {
    sock::setsockopt_int(s, pid, libc::IPPROTO_TCP, name, v)
}

/// Puts the new socket `s` in repair mode; `EPERM` means the tool lacks `CAP_NET_ADMIN`.
pub fn repair_on(s: BorrowedFd<'_>, pid: i32) -> Result<()> {
    set(s, pid, TCP_REPAIR, 1)
}

/// The sequence numbers each queue starts from, set before `connect`.
pub fn set_sequences(s: BorrowedFd<'_>, pid: i32, t: &TcpConnection) -> Result<()> {
    set(s, pid, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)?;
    let rcv = t.rcv_seq.wrapping_sub(t.recv_queue.len() as u32);
    set(s, pid, TCP_QUEUE_SEQ, rcv as i32)?;
    set(s, pid, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)?;
    let snd = t.snd_seq.wrapping_sub(t.send_queue.len() as u32);
    set(s, pid, TCP_QUEUE_SEQ, snd as i32)
}

/// Sends all of `buf` on the queue selected (repair mode) or normally; a refused chunk is
/// tried again halved down to 1 KiB (the kernel queues a repaired receive queue's bytes as one
/// linear buffer, which a large size may not get).
fn send_all(s: BorrowedFd<'_>, pid: i32, mut buf: &[u8]) -> Result<()> {
    let mut chunk = buf.len().max(1);
    while !buf.is_empty() {
        match sock::send(s, pid, &buf[..chunk.min(buf.len())], libc::MSG_DONTWAIT) {
            Ok(n) if n > 0 => buf = &buf[n..],
            Ok(_)
            | Err(PtraceError::Syscall {
                errno: Errno::ENOMEM,
                ..
            }) if chunk > 1024 => chunk /= 2,
            Ok(_) => {
                return Err(PtraceError::Syscall {
                    op: "send",
                    pid,
                    errno: Errno::EAGAIN,
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The repaired sockets of one restore, still in repair mode, with what each has left to do.
#[derive(Debug, Default)]
pub struct Repaired {
    /// (pid, fd number, the restore tool's descriptor of the socket, its unsent bytes).
    held: Vec<(u32, i32, OwnedFd, Vec<u8>)>,
}

impl Repaired {
    /// Keeps `s` (fd `fd` of `pid`, rebuilt by [`finish`]) for [`Repaired::release`].
    pub fn hold(
        &mut self,
        pid: u32,
        fd: i32,
        s: &OwnedFd,
        t: &TcpConnection,
    ) -> std::io::Result<()> {
        let sent = t.send_queue.len() - (t.unsent as usize).min(t.send_queue.len());
        self.held
            .push((pid, fd, s.try_clone()?, t.send_queue[sent..].to_vec()));
        Ok(())
    }

    /// Removes the network lock the capture of the tree rooted at `root` left on this host
    /// (`psnc_ptrace::netlock`: none on another host, or without `nft`), then takes every held
    /// socket out of repair mode (a window probe tells each peer that this side is back) and
    /// sends the bytes the program had queued but the kernel had not sent yet. Errors name the
    /// PID and fd.
    pub fn release(self, root: u32) -> std::result::Result<(), crate::error::RestoreError> {
        if !self.held.is_empty() {
            let table = psnc_ptrace::netlock::table_name(root);
            match psnc_ptrace::netlock::unlock(&table) {
                Ok(_) | Err(psnc_ptrace::netlock::LockError::NoNft) => {}
                // The connections go on; only the stale rules are left.
                Err(e) => eprintln!(
                    "psnc-restore: removing the network lock (nft table inet {table}): {e}; \
                     remove it with `nft delete table inet {table}`"
                ),
            }
        }
        for (pid, fd, s, unsent) in self.held {
            let ipid = pid as i32;
            set(s.as_fd(), ipid, TCP_REPAIR, 0)
                .and_then(|()| send_all(s.as_fd(), ipid, &unsent))
                .map_err(|source| crate::error::RestoreError::Step {
                    pid,
                    step: format!(
                        "taking socket fd {fd} out of TCP repair mode and sending its unsent bytes"
                    ),
                    source,
                })?;
        }
        Ok(())
    }
}

/// After `connect`: options, timestamp, both queues' bytes (the sent part of the send queue),
/// window. Repair stays on: [`Repaired::release`].
pub fn finish(s: BorrowedFd<'_>, pid: i32, t: &TcpConnection) -> Result<()> {
    let mut opts: Vec<(u32, u32)> = Vec::new();
    if t.tcp_options & TCPI_OPT_SACK != 0 {
        opts.push((TCPOPT_SACK_PERM, 0));
    }
    if t.tcp_options & TCPI_OPT_WSCALE != 0 {
        opts.push((
            TCPOPT_WINDOW,
            u32::from(t.snd_wscale) | (u32::from(t.rcv_wscale) << 16),
        ));
    }
    if t.tcp_options & TCPI_OPT_TIMESTAMPS != 0 {
        opts.push((TCPOPT_TIMESTAMP, 0));
    }
    opts.push((TCPOPT_MAXSEG, t.mss));
    // struct tcp_repair_opt { __u32 opt_code; __u32 opt_val; }
    let bytes: Vec<u8> = opts
        .iter()
        .flat_map(|(c, v)| c.to_ne_bytes().into_iter().chain(v.to_ne_bytes()))
        .collect();
    sock::setsockopt_bytes(s, pid, libc::IPPROTO_TCP, TCP_REPAIR_OPTIONS, &bytes)?;
    if t.tcp_options & TCPI_OPT_TIMESTAMPS != 0 {
        set(s, pid, TCP_TIMESTAMP, t.timestamp as i32)?;
    }
    set(s, pid, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)?;
    send_all(s, pid, &t.recv_queue)?;
    let sent = t.send_queue.len() - (t.unsent as usize).min(t.send_queue.len());
    set(s, pid, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)?;
    send_all(s, pid, &t.send_queue[..sent])?;
    let w: Vec<u8> = t.window.iter().flat_map(|v| v.to_ne_bytes()).collect();
    sock::setsockopt_bytes(s, pid, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW, &w)
}
