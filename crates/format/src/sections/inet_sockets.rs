//! Section kind 18, `inet-sockets` (FORMAT.md §8.19, format 1.3): the frozen `InetSocketV1` with
//! its `InetStateV1` and `SockOptionV1`, version 1, their model conversion, and the join of each
//! record to its `Socket` fd of the `fds` section, which becomes an
//! [`InetSocket`](model::FdKind::InetSocket).

use serde::{Deserialize, Serialize};

use super::owner;
use crate::error::{FormatError, Result};
use crate::model;

/// `AF_INET`.
const AF_INET: u32 = 2;
/// `AF_INET6`.
const AF_INET6: u32 = 10;

/// The state of an inet socket, version 1 (append-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum InetStateV1 {
    Closed,
    Bound,
    Listening,
    Connected,
    /// An established TCP connection, with its `tcp` record.
    Established,
    /// A TCP connection captured as closed (`--tcp-close`).
    Shut,
}

/// The `TCP_REPAIR` state of an established connection, version 1 (§8.19).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TcpRepairV1 {
    pub snd_seq: u32,
    pub rcv_seq: u32,
    pub send_queue: Vec<u8>,
    pub unsent: u32,
    pub recv_queue: Vec<u8>,
    pub mss: u32,
    pub tcp_options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub timestamp: u32,
    pub snd_wl1: u32,
    pub snd_wnd: u32,
    pub max_window: u32,
    pub rcv_wnd: u32,
    pub rcv_wup: u32,
}

impl TcpRepairV1 {
    fn from_model(t: &model::TcpConnection) -> Self {
        let [snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup] = t.window;
        TcpRepairV1 {
            snd_seq: t.snd_seq,
            rcv_seq: t.rcv_seq,
            send_queue: t.send_queue.clone(),
            unsent: t.unsent,
            recv_queue: t.recv_queue.clone(),
            mss: t.mss,
            tcp_options: t.tcp_options,
            snd_wscale: t.snd_wscale,
            rcv_wscale: t.rcv_wscale,
            timestamp: t.timestamp,
            snd_wl1,
            snd_wnd,
            max_window,
            rcv_wnd,
            rcv_wup,
        }
    }

    fn into_model(self) -> model::TcpConnection {
        model::TcpConnection {
            snd_seq: self.snd_seq,
            rcv_seq: self.rcv_seq,
            send_queue: self.send_queue,
            unsent: self.unsent,
            recv_queue: self.recv_queue,
            mss: self.mss,
            tcp_options: self.tcp_options,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            timestamp: self.timestamp,
            window: [
                self.snd_wl1,
                self.snd_wnd,
                self.max_window,
                self.rcv_wnd,
                self.rcv_wup,
            ],
        }
    }
}

/// An integer socket option, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SockOptionV1 {
    pub level: i32,
    pub name: i32,
    pub value: i32,
}

/// One IPv4/IPv6 socket of the `fds` section, version 1 (no class-width fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct InetSocketV1 {
    /// The owning process.
    pub pid: u32,
    /// The fd, a `Socket` in the `fds` section with the same family and type.
    pub fd: i32,
    pub family: u32,
    pub sock_type: u32,
    pub protocol: u32,
    pub state: InetStateV1,
    /// 4 or 16 bytes, network order.
    pub local_addr: Vec<u8>,
    pub local_port: u16,
    /// Empty when there is no peer.
    pub peer_addr: Vec<u8>,
    pub peer_port: u16,
    pub backlog: u32,
    pub options: Vec<SockOptionV1>,
    /// The repair state, exactly when `state` is `Established`.
    pub tcp: Option<TcpRepairV1>,
}

impl InetSocketV1 {
    /// The record of fd `f` of process `pid`, if `f` is an inet socket.
    pub(super) fn from_model(pid: u32, f: &model::Fd) -> Option<Self> {
        let model::FdKind::InetSocket(s) = &f.kind else {
            return None;
        };
        let (peer_addr, peer_port) = s
            .peer
            .as_ref()
            .map_or((Vec::new(), 0), |p| (p.addr.clone(), p.port));
        Some(InetSocketV1 {
            pid,
            fd: f.fd,
            family: s.family,
            sock_type: s.sock_type,
            protocol: s.protocol,
            state: match s.state {
                model::InetState::Closed => InetStateV1::Closed,
                model::InetState::Bound => InetStateV1::Bound,
                model::InetState::Listening => InetStateV1::Listening,
                model::InetState::Connected => InetStateV1::Connected,
                model::InetState::Established => InetStateV1::Established,
                model::InetState::Shut => InetStateV1::Shut,
            },
            local_addr: s.local.addr.clone(),
            local_port: s.local.port,
            peer_addr,
            peer_port,
            backlog: s.backlog,
            options: s
                .options
                .iter()
                .map(|o| SockOptionV1 {
                    level: o.level,
                    name: o.name,
                    value: o.value,
                })
                .collect(),
            tcp: s.tcp.as_ref().map(TcpRepairV1::from_model),
        })
    }
}

/// Joins the records to the `Socket` fds of `processes` by `(pid, fd)`. A record for an fd
/// that is not a socket of its family and type, a second record for one fd, an address of the
/// wrong length, or an IPv4/IPv6 socket without a record makes the image invalid (§8.19).
pub(super) fn attach(processes: &mut [model::Process], records: Vec<InetSocketV1>) -> Result<()> {
    use model::FdKind as K;
    let mut seen = std::collections::HashSet::new();
    for r in records {
        let bad = |what: &str| {
            FormatError::Invalid(format!(
                "the inet-sockets record of pid {} fd {} {what}",
                r.pid, r.fd
            ))
        };
        if !seen.insert((r.pid, r.fd)) {
            return Err(bad("appears twice"));
        }
        let alen = match r.family {
            AF_INET => 4,
            AF_INET6 => 16,
            _ => {
                return Err(bad(&format!(
                    "has family {}, not AF_INET or AF_INET6",
                    r.family
                )))
            }
        };
        if r.local_addr.len() != alen || !(r.peer_addr.is_empty() || r.peer_addr.len() == alen) {
            return Err(bad("has an address of the wrong length for its family"));
        }
        let p = owner(
            processes,
            r.pid,
            &format!("inet-sockets record of fd {}", r.fd),
        )?;
        let Some(f) = p.fds.iter_mut().find(|f| f.fd == r.fd) else {
            return Err(bad("names no fd of the process"));
        };
        let (K::Socket {
            family,
            sock_type,
            ino,
            ..
        }
        | K::InetSocket(model::InetSocket {
            family,
            sock_type,
            ino,
            ..
        })) = &f.kind
        else {
            return Err(bad("names an fd that is not a socket"));
        };
        if (*family, *sock_type) != (r.family, r.sock_type) {
            return Err(bad("has another family or type than its fd"));
        }
        let tcp_ok = if r.state == InetStateV1::Established {
            r.tcp.as_ref().is_some_and(|t| {
                r.protocol == 6
                    && !r.peer_addr.is_empty()
                    && t.unsent as usize <= t.send_queue.len()
            })
        } else {
            r.tcp.is_none()
        };
        if !tcp_ok {
            return Err(bad(
                "has a tcp record without being an Established TCP connection with a peer, or \
                 the reverse, or more unsent bytes than its send queue holds",
            ));
        }
        let ino = *ino;
        let peer = (!r.peer_addr.is_empty()).then_some(model::InetAddr {
            addr: r.peer_addr,
            port: r.peer_port,
        });
        f.kind = K::InetSocket(model::InetSocket {
            family: r.family,
            sock_type: r.sock_type,
            protocol: r.protocol,
            ino,
            state: match r.state {
                InetStateV1::Closed => model::InetState::Closed,
                InetStateV1::Bound => model::InetState::Bound,
                InetStateV1::Listening => model::InetState::Listening,
                InetStateV1::Connected => model::InetState::Connected,
                InetStateV1::Established => model::InetState::Established,
                InetStateV1::Shut => model::InetState::Shut,
            },
            local: model::InetAddr {
                addr: r.local_addr,
                port: r.local_port,
            },
            peer,
            backlog: r.backlog,
            options: r
                .options
                .into_iter()
                .map(|o| model::SockOption {
                    level: o.level,
                    name: o.name,
                    value: o.value,
                })
                .collect(),
            tcp: r.tcp.map(TcpRepairV1::into_model),
        });
    }
    for p in processes.iter() {
        if let Some(f) = p.fds.iter().find(|f| {
            matches!(f.kind, K::Socket { family, .. } if family == AF_INET || family == AF_INET6)
        }) {
            return Err(FormatError::Invalid(format!(
                "fd {} of pid {} is an IPv4/IPv6 socket without its inet-sockets record",
                f.fd, p.pid
            )));
        }
    }
    Ok(())
}
