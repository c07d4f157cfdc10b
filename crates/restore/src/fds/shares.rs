//! Open file descriptions shared by two or more fds (`dup`, `2>&1`, inheritance across fork):
//! each is opened or created once and handed to every fd of its group, in every process.
//!
//! Model: [`psnc_format::model::FdShare`], the groups of the image's `fd-shares` section, each
//! in image order. The first fd of a group (its *leader*: the first process of the image that
//! holds it, at its lowest fd) is prepared by the module of its kind, which sets the
//! description's offset and status flags once; every later fd of the group gets a duplicate of
//! that descriptor, so the task's `pidfd_getfd` installs the same description. An fd that
//! `--inherit-fd` names keeps the tool's descriptor it was given.
//!
//! Epoll instances are created inside the task ([`crate::fds::epoll`]): at the leader, and every
//! later fd of the group as a duplicate of the leader's fd, taken from the leader's process when
//! that is another one ([`Leader`]). Each watch of a shared instance is added once, through the
//! first fd of the group (image order) whose process has an fd with the watch's number
//! (FORMAT.md §8.15; capture checked that this fd is the watched file): a watch added by a
//! child through an fd of its own is added again in the child ([`Descriptions::adds_watch`]).

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use psnc_format::model::{Checkpoint, FdKind, FdRef};

use crate::checks::FdSource;
use crate::error::Result;
use crate::fds::{io_err, LocalFd};

/// Where an fd's description comes from, for an fd in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leader {
    /// The fd is its group's leader (or in no group): prepared or created by itself.
    Itself,
    /// The description is the one of `leader`, an fd prepared or created before this one.
    Of(FdRef),
}

/// The shared descriptions of one restore (a whole tree): the groups by fd, and the
/// descriptor prepared for each group's leader.
#[derive(Debug, Default)]
pub struct Descriptions {
    /// `(pid, fd)` -> index of its group.
    group_of: HashMap<FdRef, usize>,
    /// The leader of each group.
    leaders: Vec<FdRef>,
    /// The descriptor prepared for each group's leader, once it is.
    prepared: Vec<Option<Prepared>>,
    /// For a shared epoll instance: `(group, watched fd number)` -> the fd of the group that
    /// adds the watch.
    watch_adders: HashMap<(usize, i32), FdRef>,
}

/// What a leader was prepared as.
#[derive(Debug)]
enum Prepared {
    /// A descriptor the restore tool opened: later fds get duplicates of it.
    Owned(OwnedFd),
    /// One of the tool's own fds (stdio, `--inherit-fd`), handed to later fds as it is.
    Borrowed(i32),
}

impl Descriptions {
    /// The groups of `ckpt`.
    pub fn new(ckpt: &Checkpoint) -> Self {
        let mut d = Descriptions::default();
        // The format keeps members in image order (and refuses a group of fewer than two): the
        // first is prepared first.
        for s in &ckpt.fd_shares {
            let Some(&first) = s.fds.first() else {
                continue;
            };
            let g = d.leaders.len();
            for r in &s.fds {
                d.group_of.insert(*r, g);
            }
            d.leaders.push(first);
            d.prepared.push(None);
            let fd_of = |r: &FdRef| {
                ckpt.processes
                    .iter()
                    .find(|p| p.pid == r.pid)
                    .and_then(|p| p.fds.iter().find(|f| f.fd == r.fd))
            };
            let has_fd = |pid: u32, n: i32| {
                ckpt.processes
                    .iter()
                    .any(|p| p.pid == pid && p.fds.iter().any(|f| f.fd == n))
            };
            if let Some(FdKind::Epoll { watches }) = fd_of(&first).map(|f| &f.kind) {
                for w in watches {
                    if let Some(r) = s.fds.iter().find(|r| has_fd(r.pid, w.tfd)) {
                        d.watch_adders.insert((g, w.tfd), *r);
                    }
                }
            }
        }
        d
    }

    /// Whether epoll fd `fd` of `pid` adds its instance's watch of fd number `tfd`: every fd
    /// of an unshared instance does; of a shared one, only the fd chosen for that watch, or the
    /// leader when no process has the number (the add then fails, naming the fd).
    pub fn adds_watch(&self, pid: u32, fd: i32, tfd: i32) -> bool {
        let me = FdRef { pid, fd };
        match self.group_of.get(&me) {
            None => true,
            Some(&g) => match self.watch_adders.get(&(g, tfd)) {
                Some(a) => *a == me,
                None => self.leaders[g] == me,
            },
        }
    }

    /// Where fd `fd` of `pid` gets its description.
    pub fn leader(&self, pid: u32, fd: i32) -> Leader {
        let me = FdRef { pid, fd };
        match self.group_of.get(&me) {
            Some(&g) if self.leaders[g] != me => Leader::Of(self.leaders[g]),
            _ => Leader::Itself,
        }
    }

    /// The description prepared for the leader of `pid`'s fd `fd`, if `fd` is a later fd of a
    /// group whose leader the tool prepared. `None` means: prepare it by its kind (a leader, an
    /// fd in no group, an fd `--inherit-fd` names, an epoll fd made inside the task).
    pub fn take(&self, pid: u32, fd: i32, src: &FdSource) -> Result<Option<LocalFd>> {
        if matches!(src, FdSource::Ours(_) | FdSource::Epoll) {
            return Ok(None);
        }
        let Leader::Of(_) = self.leader(pid, fd) else {
            return Ok(None);
        };
        let g = self.group_of[&FdRef { pid, fd }];
        Ok(match &self.prepared[g] {
            Some(Prepared::Owned(d)) => Some(LocalFd::Owned(d.try_clone().map_err(io_err(
                "duplicating the shared description of",
                &format!("fd {fd}"),
            ))?)),
            Some(Prepared::Borrowed(n)) => Some(LocalFd::Borrowed(*n)),
            None => None,
        })
    }

    /// Notes the descriptor prepared for fd `fd` of `pid`, when it leads a group.
    pub fn record(&mut self, pid: u32, fd: i32, local: &LocalFd) -> Result<()> {
        let me = FdRef { pid, fd };
        let Some(&g) = self.group_of.get(&me) else {
            return Ok(());
        };
        if self.leaders[g] != me || self.prepared[g].is_some() {
            return Ok(());
        }
        self.prepared[g] = match local {
            LocalFd::Owned(d) => Some(Prepared::Owned(d.try_clone().map_err(io_err(
                "duplicating the shared description of",
                &format!("fd {fd}"),
            ))?)),
            LocalFd::Borrowed(n) => Some(Prepared::Borrowed(*n)),
            LocalFd::InTask => None,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psnc_format::model::FdShare;
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;

    fn ckpt() -> Checkpoint {
        Checkpoint {
            fd_shares: vec![FdShare {
                fds: vec![
                    FdRef { pid: 10, fd: 3 },
                    FdRef { pid: 10, fd: 5 },
                    FdRef { pid: 11, fd: 3 },
                ],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn later_fds_get_the_leaders_description() {
        let mut d = Descriptions::new(&ckpt());
        assert_eq!(d.leader(10, 3), Leader::Itself);
        assert_eq!(d.leader(10, 4), Leader::Itself);
        assert_eq!(d.leader(11, 3), Leader::Of(FdRef { pid: 10, fd: 3 }));
        let path = FdSource::Path(PathBuf::from("/dev/null"));
        assert!(d.take(10, 3, &path).unwrap().is_none());
        let file = std::env::temp_dir().join(format!("psnc-shares-{}", std::process::id()));
        std::fs::write(&file, b"0123456789").unwrap();
        let f = std::fs::File::open(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        d.record(10, 3, &LocalFd::Owned(OwnedFd::from(f))).unwrap();
        let Some(Prepared::Owned(leader)) = &d.prepared[0] else {
            panic!("leader not recorded")
        };
        let leader = leader.as_raw_fd();
        let Some(LocalFd::Owned(dup)) = d.take(11, 3, &path).unwrap() else {
            panic!("no duplicate")
        };
        assert_ne!(dup.as_raw_fd(), leader);
        // One description: an offset moved through one shows through the other.
        nix::unistd::lseek(dup.as_raw_fd(), 7, nix::unistd::Whence::SeekSet).unwrap();
        assert_eq!(
            nix::unistd::lseek(leader, 0, nix::unistd::Whence::SeekCur).unwrap(),
            7
        );
        // --inherit-fd wins over the group.
        assert!(d.take(10, 5, &FdSource::Ours(1)).unwrap().is_none());
    }

    #[test]
    fn a_shared_watch_is_added_by_the_first_process_with_its_fd_number() {
        use psnc_format::model::{EpollWatch, Fd, Process};
        let epoll = |fd: i32, tfds: &[i32]| Fd {
            fd,
            flags: 0,
            cloexec: false,
            pos: 0,
            kind: FdKind::Epoll {
                watches: tfds
                    .iter()
                    .map(|&tfd| EpollWatch {
                        tfd,
                        events: 1,
                        data: 0,
                    })
                    .collect(),
            },
        };
        let other = |fd: i32| Fd {
            kind: FdKind::EventFd {
                count: 0,
                semaphore: false,
            },
            ..epoll(fd, &[])
        };
        // Parent 10 and child 11 share the instance at fd 3; both have fd 5, only the child 7.
        let ck = Checkpoint {
            processes: vec![
                Process {
                    pid: 10,
                    fds: vec![epoll(3, &[5, 7]), other(5)],
                    ..Default::default()
                },
                Process {
                    pid: 11,
                    fds: vec![epoll(3, &[5, 7]), other(5), other(7)],
                    ..Default::default()
                },
            ],
            fd_shares: vec![FdShare {
                fds: vec![FdRef { pid: 10, fd: 3 }, FdRef { pid: 11, fd: 3 }],
            }],
            ..Default::default()
        };
        let d = Descriptions::new(&ck);
        assert!(d.adds_watch(10, 3, 5));
        assert!(!d.adds_watch(11, 3, 5));
        assert!(!d.adds_watch(10, 3, 7));
        assert!(d.adds_watch(11, 3, 7));
        // An unshared epoll fd adds all of its watches.
        assert!(d.adds_watch(10, 9, 7));
    }
}
