//! Section kind 12, `epoll` (FORMAT.md §8.13, format 1.1): the frozen `EpollV1` and its
//! `EpollWatchV1`, version 1, their model conversion, and the join of each record to its
//! `Epoll` fd of the `fds` section.

use serde::{Deserialize, Serialize};

use super::owner;
use crate::error::{FormatError, Result};
use crate::model;

/// One watch of an epoll fd, version 1 (see [`model::EpollWatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollWatchV1 {
    /// The watched fd of the same process.
    pub tfd: i32,
    /// The event mask as `/proc/PID/fdinfo` reports it.
    pub events: u32,
    /// `epoll_data`: 64 bits on both architectures, so a varint and not class-width.
    pub data: u64,
}

/// The interest list of one epoll fd, version 1 (section `epoll`, format 1.1). The fd itself is
/// an `FdKindV1::Epoll` entry of the fds section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollV1 {
    /// The owning process.
    pub pid: u32,
    /// The epoll fd.
    pub fd: i32,
    /// Its watches, in fdinfo order.
    pub watches: Vec<EpollWatchV1>,
}

impl EpollV1 {
    /// The record of epoll fd `fd` of process `pid`: the watches the frozen `FdKindV1::Epoll`
    /// cannot hold.
    pub(super) fn from_model(pid: u32, fd: i32, watches: &[model::EpollWatch]) -> Self {
        EpollV1 {
            pid,
            fd,
            watches: watches
                .iter()
                .map(|w| EpollWatchV1 {
                    tfd: w.tfd,
                    events: w.events,
                    data: w.data,
                })
                .collect(),
        }
    }
}

/// Joins the epoll records to the `Epoll` fds of `processes` by `(pid, fd)`. A record for an fd
/// that is not an epoll fd, or a second record for one fd, makes the image invalid (§8.12).
pub(super) fn attach(processes: &mut [model::Process], epolls: Vec<EpollV1>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for e in epolls {
        if !seen.insert((e.pid, e.fd)) {
            return Err(FormatError::Invalid(format!(
                "the epoll section has two records for pid {} fd {}",
                e.pid, e.fd
            )));
        }
        let p = owner(processes, e.pid, &format!("epoll record of fd {}", e.fd))?;
        let fd = p.fds.iter_mut().find(|f| f.fd == e.fd);
        let Some(model::Fd {
            kind: model::FdKind::Epoll { watches },
            ..
        }) = fd
        else {
            return Err(FormatError::Invalid(format!(
                "the epoll section has a record for pid {} fd {}, which is not an epoll fd",
                e.pid, e.fd
            )));
        };
        watches.extend(e.watches.into_iter().map(|w| model::EpollWatch {
            tfd: w.tfd,
            events: w.events,
            data: w.data,
        }));
    }
    Ok(())
}
