//! Section kind 13, `event-fds` (FORMAT.md §8.14, format 1.2): the frozen `EventFdV1` with its
//! `EventFdStateV1` and `InotifyWatchV1`, version 1, their model conversion, and the join of each
//! record to its `EventFd`, `TimerFd`, `SignalFd` or `Inotify` fd of the `fds` section.

use serde::{Deserialize, Serialize};

use super::owner;
use crate::error::{FormatError, Result};
use crate::model;

/// One watch of an inotify instance, version 1 (see [`model::InotifyWatch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InotifyWatchV1 {
    /// The watch descriptor.
    pub wd: i32,
    /// The event mask and flags.
    pub mask: u32,
    /// The watched inode's path at capture.
    pub path: String,
    /// The watched inode number.
    pub ino: u64,
    /// The device of its filesystem (`makedev(major, minor)`).
    pub dev: u64,
}

/// The state of one event fd, version 1 (append-only enum; no class-width fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum EventFdStateV1 {
    /// An `EventFd` fd: the counter (the same as in `fds`) and `EFD_SEMAPHORE`.
    EventFd { count: u64, semaphore: bool },
    /// A `TimerFd` fd (see [`model::TimerFdState`]).
    TimerFd {
        clockid: i32,
        settime_flags: u32,
        ticks: u64,
        value_ns: u64,
        interval_ns: u64,
    },
    /// A `SignalFd` fd: the mask (the same as in `fds`).
    SignalFd { mask: u64 },
    /// An `Inotify` fd: its watches in increasing wd order.
    Inotify { watches: Vec<InotifyWatchV1> },
}

/// The state of one event fd of the `fds` section, version 1 (section `event-fds`, format 1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFdV1 {
    /// The owning process.
    pub pid: u32,
    /// The fd.
    pub fd: i32,
    /// Its state; the variant matches the fd's `FdKindV1`.
    pub state: EventFdStateV1,
}

impl EventFdV1 {
    /// The record of fd `f` of process `pid`, if `f` is an event fd.
    pub(super) fn from_model(pid: u32, f: &model::Fd) -> Option<Self> {
        use model::FdKind as K;
        let state = match &f.kind {
            K::EventFd { count, semaphore } => EventFdStateV1::EventFd {
                count: *count,
                semaphore: *semaphore,
            },
            K::TimerFd(t) => EventFdStateV1::TimerFd {
                clockid: t.clockid,
                settime_flags: t.settime_flags,
                ticks: t.ticks,
                value_ns: t.value_ns,
                interval_ns: t.interval_ns,
            },
            K::SignalFd { mask } => EventFdStateV1::SignalFd { mask: *mask },
            K::Inotify { watches } => EventFdStateV1::Inotify {
                watches: watches
                    .iter()
                    .map(|w| InotifyWatchV1 {
                        wd: w.wd,
                        mask: w.mask,
                        path: w.path.clone(),
                        ino: w.ino,
                        dev: w.dev,
                    })
                    .collect(),
            },
            _ => return None,
        };
        Some(EventFdV1 {
            pid,
            fd: f.fd,
            state,
        })
    }
}

/// Whether `kind` is one of the kinds whose state is in this section.
pub(super) fn is_event_fd(kind: &model::FdKind) -> bool {
    use model::FdKind as K;
    matches!(
        kind,
        K::EventFd { .. } | K::TimerFd(_) | K::SignalFd { .. } | K::Inotify { .. }
    )
}

/// Joins the records to the event fds of `processes` by `(pid, fd)`. A record for another kind
/// of fd, a second record for one fd, or an event fd without a record makes the image invalid
/// (§8.14): no writer produces event fds without their state, and restoring one with a default
/// state would be silently wrong.
pub(super) fn attach(processes: &mut [model::Process], records: Vec<EventFdV1>) -> Result<()> {
    use model::FdKind as K;
    let mut seen = std::collections::HashSet::new();
    for r in records {
        if !seen.insert((r.pid, r.fd)) {
            return Err(FormatError::Invalid(format!(
                "the event-fds section has two records for pid {} fd {}",
                r.pid, r.fd
            )));
        }
        let p = owner(
            processes,
            r.pid,
            &format!("event-fds record of fd {}", r.fd),
        )?;
        let mismatch = |what: &str| {
            FormatError::Invalid(format!(
                "the event-fds section has {what} record for pid {} fd {}, which is not {what} fd",
                r.pid, r.fd
            ))
        };
        let Some(f) = p.fds.iter_mut().find(|f| f.fd == r.fd) else {
            return Err(mismatch("an event"));
        };
        match (r.state, &mut f.kind) {
            (
                EventFdStateV1::EventFd { count, semaphore },
                K::EventFd {
                    count: c,
                    semaphore: s,
                },
            ) => {
                *c = count;
                *s = semaphore;
            }
            (
                EventFdStateV1::TimerFd {
                    clockid,
                    settime_flags,
                    ticks,
                    value_ns,
                    interval_ns,
                },
                K::TimerFd(t),
            ) => {
                *t = model::TimerFdState {
                    clockid,
                    settime_flags,
                    ticks,
                    value_ns,
                    interval_ns,
                }
            }
            (EventFdStateV1::SignalFd { mask }, K::SignalFd { mask: m }) => *m = mask,
            (EventFdStateV1::Inotify { watches }, K::Inotify { watches: w }) => {
                w.extend(watches.into_iter().map(|x| model::InotifyWatch {
                    wd: x.wd,
                    mask: x.mask,
                    path: x.path,
                    ino: x.ino,
                    dev: x.dev,
                }))
            }
            (EventFdStateV1::EventFd { .. }, _) => return Err(mismatch("an eventfd")),
            (EventFdStateV1::TimerFd { .. }, _) => return Err(mismatch("a timerfd")),
            (EventFdStateV1::SignalFd { .. }, _) => return Err(mismatch("a signalfd")),
            (EventFdStateV1::Inotify { .. }, _) => return Err(mismatch("an inotify")),
        }
    }
    for p in processes.iter() {
        if let Some(f) = p
            .fds
            .iter()
            .find(|f| is_event_fd(&f.kind) && !seen.contains(&(p.pid, f.fd)))
        {
            return Err(FormatError::Invalid(format!(
                "fd {} of pid {} is an eventfd, timerfd, signalfd or inotify fd without its \
                 event-fds record",
                f.fd, p.pid
            )));
        }
    }
    Ok(())
}
