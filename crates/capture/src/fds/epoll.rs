//! Epoll instances and their watches.
//!
//! The watch list comes from procfs: one `tfd:` line per watch in the epoll fd's
//! `/proc/PID/fdinfo/N`, with the watched fd number, events, data, and the watched file's inode
//! and device. Restore re-adds each watch through the watched fd number, so capture checks that
//! the number still names the watched file ([`CaptureError::EpollWatchUnreachable`] otherwise).
//! Model types: [`FdKind::Epoll`] with its [`EpollWatch`]es in `psnc_format::model`.
//!
//! An instance shared by several processes (`fd-shares`) has one watch list, whose fd numbers
//! are those of whichever process added each watch. Restore adds each watch once, in the first
//! process of the group (image order) that has an fd with the watch's number (FORMAT.md §8.15),
//! so the check runs once the tree is grouped ([`check_watches`]), in that process; when that
//! fd is another file, the refusal names both fds of the instance
//! ([`CaptureError::SharedEpollWatchUnreachable`]).

use std::fs;
use std::os::unix::fs::MetadataExt;

use psnc_format::model::{EpollWatch, FdKind, FdRef, FdShare, Process};

use crate::error::{CaptureError, Result};
use crate::procfs::{EpollTfd, ProcDir};

/// The [`FdKind::Epoll`] of the epoll fd `fd`; its watches are checked by [`check_watches`].
pub(super) fn classify(proc_dir: &ProcDir, fd: i32) -> Result<FdKind> {
    let watches = proc_dir.epoll_tfds(fd)?;
    Ok(FdKind::Epoll {
        watches: watches
            .iter()
            .map(|w| EpollWatch {
                tfd: w.tfd,
                events: w.events,
                data: w.data,
            })
            .collect(),
    })
}

/// Checks every watch of every epoll instance of the image (`processes`, grouped into
/// `shares`) where restore will add it: in the process of the epoll fd, or, for an instance
/// that several processes share, in the first of them (image order) that has an fd with the
/// watch's number. That fd must still be the watched file. Every process must be stopped.
pub fn check_watches(processes: &[Process], shares: &[FdShare]) -> Result<()> {
    for p in processes {
        for f in &p.fds {
            if !matches!(f.kind, FdKind::Epoll { .. }) {
                continue;
            }
            let me = FdRef {
                pid: p.pid,
                fd: f.fd,
            };
            let holders: Vec<FdRef> = match shares.iter().find(|s| s.fds.contains(&me)) {
                // Once per instance, from its first fd.
                Some(s) if s.fds[0] != me => continue,
                Some(s) => s.fds.clone(),
                None => vec![me],
            };
            let dir = ProcDir::new(p.pid as i32);
            for w in dir.epoll_tfds(f.fd)? {
                check_watch(processes, &holders, &w)?;
            }
        }
    }
    Ok(())
}

/// Checks watch `w` of the instance held by `holders` (its first fd first) in the process that
/// restore adds it from.
fn check_watch(processes: &[Process], holders: &[FdRef], w: &EpollTfd) -> Result<()> {
    let first = holders[0];
    let has_tfd = |h: &&FdRef| {
        processes
            .iter()
            .any(|p| p.pid == h.pid && p.fds.iter().any(|f| f.fd == w.tfd))
    };
    let adder = holders.iter().find(has_tfd).copied();
    let why = match adder {
        Some(a) => match watched_fd_mismatch(&ProcDir::new(a.pid as i32), w)? {
            None => return Ok(()),
            Some(why) => why,
        },
        None => format!("fd {} is closed", w.tfd),
    };
    match (holders.len(), adder) {
        (1, _) => Err(CaptureError::EpollWatchUnreachable {
            pid: first.pid as i32,
            epfd: first.fd,
            tfd: w.tfd,
            why,
        }),
        (_, a) => {
            let other = a.filter(|a| *a != first).unwrap_or(holders[1]);
            Err(CaptureError::SharedEpollWatchUnreachable {
                pid1: first.pid as i32,
                fd1: first.fd,
                pid2: other.pid as i32,
                fd2: other.fd,
                tfd: w.tfd,
                why: match a {
                    Some(a) => format!(
                        "in PID {}, the first of them with an fd {}, {why}",
                        a.pid, w.tfd
                    ),
                    None => format!("none of them has an fd {}", w.tfd),
                },
            })
        }
    }
}

/// Why the watched fd number of `w` no longer names the watched file in `proc_dir`'s process,
/// or `None` when it does: restore re-adds the watch through that number.
fn watched_fd_mismatch(proc_dir: &ProcDir, w: &EpollTfd) -> Result<Option<String>> {
    let pid = proc_dir.pid();
    let tfd = w.tfd;
    let source = proc_dir.path(&format!("fd/{tfd}"));
    let meta = match fs::metadata(&source) {
        Ok(m) => m,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && proc_dir.exists() => {
            return Ok(Some(format!("fd {tfd} is closed")));
        }
        Err(e) => return Err(CaptureError::proc_io(pid, &source, e)),
    };
    let (major, minor) = (w.sdev >> 20, w.sdev & 0xf_ffff);
    let dev = meta.dev();
    let same_dev = nix::sys::stat::major(dev) == major && nix::sys::stat::minor(dev) == minor;
    if meta.ino() != w.ino || !same_dev {
        return Ok(Some(format!(
            "fd {tfd} now refers to another file (inode {} on device {:#x}, the watch is on inode {} \
             on device {major}:{minor})",
            meta.ino(),
            dev,
            w.ino
        )));
    }
    Ok(None)
}
