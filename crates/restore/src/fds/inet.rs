//! IPv4 and IPv6 sockets, created in the restore tool (in its network namespace) and handed
//! over like the other fds: the options set first (`IPV6_V6ONLY` and `SO_REUSEADDR` must be in
//! place before `bind`), then `bind` to the local address, `listen` with the backlog, or
//! `connect` of a UDP socket to its peer, and the status flags (`O_NONBLOCK`) last. An
//! established TCP connection is rebuilt in repair mode around that `bind` and `connect`
//! ([`super::tcp`]); one captured as closed (`--tcp-close`) becomes an unbound socket shut down
//! both ways (`shutdown(SHUT_RDWR)` on an unconnected TCP socket fails with `ENOTCONN` but
//! still marks it shut): reads return 0, writes fail with `EPIPE`.
//!
//! Model: [`InetSocket`]. A port taken on this host is refused with the address
//! ([`RestoreError::AddressInUse`]).

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use psnc_format::model::{Fd, InetAddr, InetSocket, InetState};
use psnc_ptrace::error::PtraceError;
use psnc_ptrace::sock;

use crate::error::{RestoreError, Result};

fn addr(family: u32, a: &InetAddr) -> sock::InetAddr {
    sock::InetAddr {
        family,
        addr: a.addr.clone(),
        port: a.port,
        scope_id: 0,
    }
}

/// A new socket with the state of `s`, fd `f` of process `pid`.
/// An established TCP connection stays in repair mode, held in `repaired` until the whole tree's
/// sockets exist.
pub fn create(
    pid: u32,
    f: &Fd,
    s: &InetSocket,
    repaired: &mut super::tcp::Repaired,
) -> Result<OwnedFd> {
    let step = |what: &str| format!("{what} of socket fd {}", f.fd);
    let err = |what: &str| {
        let step = step(what);
        move |source| RestoreError::Step { pid, step, source }
    };
    let ipid = pid as i32;
    let sk = sock::socket(ipid, s.family, s.sock_type, s.protocol).map_err(err("creating"))?;
    for o in &s.options {
        sock::setsockopt_int(sk.as_fd(), ipid, o.level, o.name, o.value).map_err(err(&format!(
            "setting option {}/{} to {}",
            o.level, o.name, o.value
        )))?;
    }
    // A TCP socket binds with SO_REUSEADDR lent for the bind (and the listen, which checks the
    // port again), as CRIU does: the process's old connections on that port may linger in
    // FIN_WAIT or TIME_WAIT (after --tcp-close, or a peer that closed), and they must not
    // keep a server from its port. A live listener there still refuses the bind.
    let lend_reuse = s.sock_type == libc::SOCK_STREAM as u32
        && !s
            .options
            .iter()
            .any(|o| o.level == libc::SOL_SOCKET && o.name == libc::SO_REUSEADDR && o.value != 0);
    let tcp = match (s.state, &s.tcp) {
        (InetState::Established, Some(t)) => Some(t),
        _ => None,
    };
    if let Some(t) = tcp {
        super::tcp::repair_on(sk.as_fd(), ipid).map_err(|source| RestoreError::Step {
            pid,
            step: step(
                "putting in repair mode (TCP_REPAIR needs CAP_NET_ADMIN: run psnc-restore as \
                 root)",
            ),
            source,
        })?;
        super::tcp::set_sequences(sk.as_fd(), ipid, t)
            .map_err(err("setting the TCP sequence numbers"))?;
    }
    if s.state == InetState::Shut {
        match sock::shutdown(sk.as_fd(), ipid, libc::SHUT_RDWR) {
            Err(PtraceError::Syscall {
                errno: Errno::ENOTCONN,
                ..
            }) => {}
            r => r.map_err(err("shutting down"))?,
        }
    } else if s.state != InetState::Closed {
        let local = addr(s.family, &s.local);
        if lend_reuse {
            sock::setsockopt_int(sk.as_fd(), ipid, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
                .map_err(err("setting SO_REUSEADDR for the bind"))?;
        }
        match sock::bind(sk.as_fd(), ipid, &local) {
            Err(PtraceError::Syscall {
                errno: Errno::EADDRINUSE,
                ..
            }) => return Err(RestoreError::address_in_use(pid, f.fd, local.to_string())),
            r => r.map_err(err(&format!("binding to {local}")))?,
        }
    }
    match (s.state, &s.peer) {
        (InetState::Listening, _) => {
            let backlog = i32::try_from(s.backlog).unwrap_or(i32::MAX);
            sock::listen(sk.as_fd(), ipid, backlog).map_err(err("listening"))?;
        }
        (InetState::Connected | InetState::Established, Some(peer)) => {
            let peer = addr(s.family, peer);
            sock::connect(sk.as_fd(), ipid, &peer)
                .map_err(err(&format!("connecting to {peer}")))?;
        }
        _ => {}
    }
    if lend_reuse && s.state != InetState::Shut && s.state != InetState::Closed {
        sock::setsockopt_int(sk.as_fd(), ipid, libc::SOL_SOCKET, libc::SO_REUSEADDR, 0)
            .map_err(err("clearing SO_REUSEADDR after the bind"))?;
    }
    if let Some(t) = tcp {
        super::tcp::finish(sk.as_fd(), ipid, t).map_err(err(
            "restoring the TCP connection's options, queues and window",
        ))?;
        repaired
            .hold(pid, f.fd, &sk, t)
            .map_err(super::io_err("duplicating", &step("socket")))?;
    }
    super::set_status_flags(&sk, f.flags, &step("socket"))?;
    Ok(sk)
}
