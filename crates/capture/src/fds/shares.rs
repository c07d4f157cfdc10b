//! Open file descriptions shared by two or more fds: after `dup`, `fcntl(F_DUPFD)`, a shell's
//! `2>&1`, or inheritance across fork, several fds (of one process or of several) are one
//! description, with one offset, one set of status flags and one object state (a pipe's bytes,
//! an eventfd's counter, an epoll interest list). The image records each such group once
//! (`fd-shares`, [`FdShare`]) and restore hands one description to all of its fds.
//!
//! `kcmp(KCMP_FILE)` tells whether two fds are one description, and also orders descriptions
//! consistently. Capture first buckets every fd of the tree by what the description must have
//! in common: its kind and file (device and inode, path, pipe inode and end, the state of an
//! anonymous file), its offset and its status flags. Only fds of one bucket can share; within a
//! bucket, each fd is binary-searched among the bucket's descriptions found so far (kcmp's
//! order), so a bucket of n fds of d descriptions costs about n·log2(d) calls: a process with
//! 20,000 fds of one file opened 20,000 times needs about 20,000·15, not 200 million.

use std::cmp::Ordering;
use std::collections::HashMap;

use psnc_format::model::{Fd, FdKind, FdRef, FdShare, Process};

use crate::error::Result;

/// What every fd of one description has in common, as far as the image tells without asking
/// the kernel; `None` for a kind that is never shared (none today: every kind capture takes
/// can be).
fn bucket_key(f: &Fd) -> Option<String> {
    let what = match &f.kind {
        FdKind::Regular(r) => format!("file {}:{}", r.identity.dev, r.identity.ino),
        FdKind::Directory { path } => format!("dir {path}"),
        FdKind::CharDevice { path, rdev } => format!("chr {rdev} {path}"),
        FdKind::Tty { path, rdev } => format!("tty {rdev} {path}"),
        FdKind::Pipe(pe) => format!("pipe {} {}", pe.ino, pe.write_end),
        FdKind::Fifo { path, .. } => format!("fifo {path}"),
        FdKind::EventFd { count, semaphore } => format!("eventfd {count} {semaphore}"),
        FdKind::Epoll { watches } => format!("epoll {}", watches.len()),
        FdKind::TimerFd(t) => format!("timerfd {} {}", t.clockid, t.settime_flags),
        FdKind::SignalFd { mask } => format!("signalfd {mask}"),
        FdKind::Inotify { watches } => format!("inotify {}", watches.len()),
        // One socket is one inode, whoever holds it.
        FdKind::InetSocket(s) => format!("inet {}", s.ino),
        FdKind::Socket { ino, .. } => format!("socket {ino}"),
        // A memfd's opens all name its object; offset and flags tell most of them apart.
        FdKind::MemFdObject { object, .. } => format!("memfd {object}"),
        _ => return None,
    };
    Some(format!("{what} pos {} flags {:#o}", f.pos, f.flags))
}

/// Groups every fd of `processes` (the image's processes, in image order) by open file
/// description, with `order` comparing two fds' descriptions (`kcmp`); returns the groups of
/// two or more fds, each in image order, the groups by their first fd.
pub fn group_with(
    processes: &[Process],
    order: &mut dyn FnMut(FdRef, FdRef) -> Result<Ordering>,
) -> Result<Vec<FdShare>> {
    let mut buckets: HashMap<String, Vec<FdRef>> = HashMap::new();
    let mut rank: HashMap<FdRef, usize> = HashMap::new();
    for p in processes {
        for f in &p.fds {
            let r = FdRef {
                pid: p.pid,
                fd: f.fd,
            };
            rank.insert(r, rank.len());
            if let Some(k) = bucket_key(f) {
                buckets.entry(k).or_default().push(r);
            }
        }
    }
    let mut groups: Vec<Vec<FdRef>> = Vec::new();
    for fds in buckets.values().filter(|b| b.len() > 1) {
        // The descriptions of this bucket found so far, as (first fd, its group), in kcmp order.
        let mut found: Vec<(FdRef, Vec<FdRef>)> = Vec::new();
        for &r in fds {
            let (mut lo, mut hi) = (0, found.len());
            let mut same = None;
            while lo < hi {
                let mid = (lo + hi) / 2;
                match order(r, found[mid].0)? {
                    Ordering::Equal => {
                        same = Some(mid);
                        break;
                    }
                    Ordering::Less => hi = mid,
                    Ordering::Greater => lo = mid + 1,
                }
            }
            match same {
                Some(i) => found[i].1.push(r),
                None => found.insert(lo, (r, vec![r])),
            }
        }
        groups.extend(found.into_iter().map(|(_, g)| g).filter(|g| g.len() > 1));
    }
    // Buckets kept the fds in image order; the groups follow their first fds.
    groups.sort_by_key(|g| rank[&g[0]]);
    Ok(groups.into_iter().map(|fds| FdShare { fds }).collect())
}

/// [`group_with`] asking the kernel (`kcmp(KCMP_FILE)`; every process must be stopped, so that
/// no fd changes under the comparison).
pub fn group(processes: &[Process]) -> Result<Vec<FdShare>> {
    group_with(processes, &mut |a, b| {
        psnc_ptrace::sys::kcmp_file_order(a.pid as i32, a.fd, b.pid as i32, b.fd)
            .map_err(|e| crate::stop::trace_error(a.pid as i32, a.pid as i32, "kcmp(KCMP_FILE)", e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use psnc_format::model::{FileIdentity, FileRef};
    use std::os::fd::AsRawFd;

    fn regular(fd: i32, ino: u64, pos: u64) -> Fd {
        Fd {
            fd,
            flags: 2,
            cloexec: false,
            pos,
            kind: FdKind::Regular(FileRef {
                path: "/tmp/x".into(),
                deleted: false,
                identity: FileIdentity {
                    dev: 1,
                    ino,
                    ..Default::default()
                },
                stored: None,
            }),
        }
    }

    #[test]
    fn dup_pairs_are_grouped_and_separate_opens_are_not() {
        let me = std::process::id();
        let path = std::env::temp_dir().join(format!("psnc-capture-shares-{me}"));
        std::fs::write(&path, b"x").unwrap();
        let a = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let b = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let a2 = a.try_clone().unwrap();
        let b2 = b.try_clone().unwrap();
        let b3 = b.try_clone().unwrap();
        std::fs::remove_file(&path).unwrap();
        let fds: Vec<i32> = [&a, &b, &a2, &b2, &b3]
            .iter()
            .map(|f| f.as_raw_fd())
            .collect();
        let p = Process {
            pid: me,
            fds: fds.iter().map(|&n| regular(n, 7, 0)).collect(),
            ..Default::default()
        };
        let shares = group(&[p]).unwrap();
        let r = |fd| FdRef { pid: me, fd };
        assert_eq!(
            shares,
            [
                FdShare {
                    fds: vec![r(fds[0]), r(fds[2])]
                },
                FdShare {
                    fds: vec![r(fds[1]), r(fds[3]), r(fds[4])]
                },
            ]
        );
    }

    #[test]
    fn only_fds_of_one_bucket_are_compared_and_each_few_times() {
        // 200 fds of one file in one process, 10 descriptions of 20 fds each (fd n belongs to
        // description n % 10), plus fds of other files and offsets that are never compared.
        let mut fds: Vec<Fd> = (0..200).map(|n| regular(n, 7, 0)).collect();
        fds.push(regular(500, 8, 0));
        fds.push(regular(501, 7, 10));
        let p = Process {
            pid: 1,
            fds,
            ..Default::default()
        };
        let mut calls = 0;
        let shares = group_with(&[p], &mut |a, b| {
            calls += 1;
            assert!(a.fd < 200 && b.fd < 200, "{a:?} {b:?} compared");
            Ok((a.fd % 10).cmp(&(b.fd % 10)))
        })
        .unwrap();
        assert_eq!(shares.len(), 10);
        assert_eq!(shares[0].fds.len(), 20);
        assert_eq!(shares[3].fds[1], FdRef { pid: 1, fd: 13 });
        // At most ceil(log2(11)) = 4 comparisons per fd.
        assert!(calls <= 200 * 4, "{calls} kcmp calls");
    }
}
