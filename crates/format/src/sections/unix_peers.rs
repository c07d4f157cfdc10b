//! Section kind 23, `unix-peers` (FORMAT.md §8.23, format 1.3): the frozen `UnixPeerV1`,
//! version 1: a unix socket of the image connected to a socket no process of the image holds
//! (a daemon's listener it connected to, a socketpair end its launcher kept), with that peer's
//! name. Also the check of every unix socket's peer, which needs both this section and
//! `unix-sockets`.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};
use crate::model;

/// One unix socket whose peer is outside the image, version 1 (see [`model::UnixPeer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixPeerV1 {
    /// The socket of the image (its inode, as in `unix-sockets`).
    pub ino: u64,
    /// Its peer's inode, the `peer_ino` of its `unix-sockets` records.
    pub peer_ino: u64,
    /// The peer's name (`sun_path` bytes, a leading NUL for the abstract namespace); empty for
    /// an unnamed peer.
    pub name: Vec<u8>,
}

impl From<&model::UnixPeer> for UnixPeerV1 {
    fn from(m: &model::UnixPeer) -> Self {
        UnixPeerV1 {
            ino: m.ino,
            peer_ino: m.peer_ino,
            name: m.name.clone(),
        }
    }
}

impl From<UnixPeerV1> for model::UnixPeer {
    fn from(r: UnixPeerV1) -> Self {
        model::UnixPeer {
            ino: r.ino,
            peer_ino: r.peer_ino,
            name: r.name,
        }
    }
}

/// Checks every connected unix socket's peer (§8.20, §8.23): a socket of the image connected
/// back to it, or, for a socket with a `unix-peers` record, a socket that is not in the image.
/// Each record names a unix socket of the image by its inode and its `peer_ino`, once.
pub(super) fn check(processes: &[model::Process], peers: &[model::UnixPeer]) -> Result<()> {
    let invalid = |m: String| Err(FormatError::Invalid(m));
    let sockets: HashMap<u64, u64> = processes
        .iter()
        .flat_map(|p| &p.fds)
        .filter_map(|f| match &f.kind {
            model::FdKind::Socket {
                ino, unix: Some(u), ..
            } => Some((*ino, u.peer_ino)),
            _ => None,
        })
        .collect();
    let mut outside = HashSet::new();
    for r in peers {
        if !outside.insert(r.ino) {
            return invalid(format!(
                "the unix-peers record of socket:[{}] appears twice",
                r.ino
            ));
        }
        match sockets.get(&r.ino) {
            Some(p) if *p == r.peer_ino && r.peer_ino != 0 => {}
            _ => {
                return invalid(format!(
                    "the unix-peers record of socket:[{}] names no unix socket of the image \
                     connected to socket:[{}]",
                    r.ino, r.peer_ino
                ))
            }
        }
        if sockets.contains_key(&r.peer_ino) {
            return invalid(format!(
                "the unix-peers record of socket:[{}] says its peer socket:[{}] is outside the \
                 image, but it is a socket of the image",
                r.ino, r.peer_ino
            ));
        }
    }
    for (ino, peer) in &sockets {
        if *peer != 0 && !outside.contains(ino) && sockets.get(peer) != Some(ino) {
            return invalid(format!(
                "unix socket socket:[{ino}] is connected to socket:[{peer}], which is not a unix \
                 socket of the image connected back to it, and no unix-peers record says its \
                 peer is outside"
            ));
        }
    }
    Ok(())
}
