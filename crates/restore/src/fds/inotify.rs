//! Inotify instances, created in the restore tool (an inotify instance is not tied to its
//! creator) and handed over like the other fds.
//!
//! Model: [`FdKind::Inotify`] with its [`InotifyWatch`]es. Programs keep the watch descriptors
//! the kernel gave them, so each watch must come back with its number. The kernel allocates
//! them cyclically from 1 (`idr_alloc_cyclic`): the next wd is one more than the last one
//! handed out, even if that was removed since. So the watches are added in increasing wd order,
//! and a gap before a watch is skipped by adding and removing a watch on a scratch directory
//! once per missing number. Each removal queues an `IN_IGNORED` event, which is read off again
//! so the program never sees it. Events queued at capture are not kept (the kernel cannot read
//! them without consuming them), and the next wd after the restore is one more than the highest
//! restored one (the original may have handed out higher ones that were removed since).

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use psnc_format::model::{Fd, FdKind, InotifyWatch};

use crate::error::{RestoreError, Result};

/// How many missing wd numbers a restore fills; beyond that the restore refuses (each costs
/// two syscalls, and such gaps come from programs that add and remove watches in a loop).
pub const MAX_WD_GAP: i32 = 1 << 16;

/// A new inotify instance with the watches of `f` (an [`FdKind::Inotify`]), each with its wd.
pub fn create(pid: u32, f: &Fd) -> Result<OwnedFd> {
    let FdKind::Inotify { watches } = &f.kind else {
        unreachable!("inotify::create of a {:?}", f.kind)
    };
    let err = |step: String| move |source| RestoreError::Step { pid, step, source };
    let fd = psnc_ptrace::sys::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK)
        .map_err(err(format!("creating inotify fd {}", f.fd)))?;
    let mut sorted: Vec<&InotifyWatch> = watches.iter().collect();
    sorted.sort_by_key(|w| w.wd);
    // The scratch inode for the gaps is made before any watch exists, and unlinked at once
    // (it is watched through /proc/self/fd), so no watch of the program sees it come or go.
    let gaps = sorted.iter().enumerate().any(|(i, w)| w.wd != i as i32 + 1);
    let scratch = if gaps { Some(scratch_dir()?) } else { None };
    let mut next = 1;
    for w in sorted {
        let refuse = |why: String| RestoreError::UnsupportedFd {
            fd: f.fd,
            kind: "an inotify instance".into(),
            hint: format!("; its watch {} on {} cannot come back: {why}", w.wd, w.path),
        };
        if w.wd < next || w.wd - next > MAX_WD_GAP {
            return Err(refuse(format!(
                "the next free watch descriptor is {next} (gaps of at most {MAX_WD_GAP} are filled)"
            )));
        }
        if let (true, Some(dir)) = (w.wd > next, &scratch) {
            use std::os::fd::AsRawFd;
            let path = CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd()))
                .expect("no NUL in a /proc path");
            while next < w.wd {
                let step = format!("skipping watch descriptor {next} of inotify fd {}", f.fd);
                let wd = psnc_ptrace::sys::inotify_add_watch(fd.as_fd(), &path, libc::IN_ATTRIB)
                    .map_err(err(step.clone()))?;
                psnc_ptrace::sys::inotify_rm_watch(fd.as_fd(), wd).map_err(err(step))?;
                next = wd + 1;
            }
            drain(&fd);
        }
        let path =
            CString::new(w.path.as_bytes()).map_err(|_| refuse("a NUL in the path".into()))?;
        let wd = psnc_ptrace::sys::inotify_add_watch(fd.as_fd(), &path, w.mask)
            .map_err(|e| refuse(format!("inotify_add_watch: {e}")))?;
        if wd != w.wd {
            return Err(refuse(format!(
                "the kernel gave watch descriptor {wd} (the path names an inode that an earlier \
                 watch of the instance already covers?)"
            )));
        }
        next = wd + 1;
    }
    // The instance was made non-blocking for the draining; the fd gets its own flags back.
    super::set_status_flags(&fd, f.flags, &format!("inotify fd {}", f.fd))?;
    Ok(fd)
}

/// An open, already removed, empty directory: an inode no watch of the program can be on.
fn scratch_dir() -> Result<std::fs::File> {
    let dir = tempfile::tempdir().map_err(super::io_err("creating", "a scratch directory"))?;
    let shown = dir.path().display().to_string();
    let file = std::fs::File::open(dir.path()).map_err(super::io_err("opening", &shown))?;
    dir.close().map_err(super::io_err("removing", &shown))?;
    Ok(file)
}

/// Reads off the `IN_IGNORED` events that removing the scratch watches queued.
fn drain(fd: &OwnedFd) {
    use std::io::Read;
    let mut file = std::fs::File::from(fd.try_clone().expect("dup of an inotify fd"));
    let mut buf = [0u8; 4096];
    while matches!(file.read(&mut buf), Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn inotify_fd(watches: Vec<InotifyWatch>) -> Fd {
        Fd {
            fd: 9,
            flags: libc::O_NONBLOCK as u32,
            cloexec: false,
            pos: 0,
            kind: FdKind::Inotify { watches },
        }
    }

    fn watch(wd: i32, path: &std::path::Path) -> InotifyWatch {
        InotifyWatch {
            wd,
            mask: libc::IN_MODIFY,
            path: path.to_str().expect("UTF-8").into(),
            ..InotifyWatch::default()
        }
    }

    #[test]
    fn watches_come_back_with_their_wds_across_gaps_and_nothing_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"").unwrap();
        std::fs::write(&b, b"").unwrap();
        let fd = create(1, &inotify_fd(vec![watch(5, &b), watch(2, &a)])).unwrap();
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
        let wds: Vec<&str> = info
            .lines()
            .filter_map(|l| l.strip_prefix("inotify wd:"))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(wds.len(), 2, "{info}");
        assert!(wds.contains(&"2") && wds.contains(&"5"), "{info}");
        // No IN_IGNORED of the skipped numbers is left for the program.
        let mut buf = [0u8; 256];
        let n = nix::unistd::read(fd.as_raw_fd(), &mut buf);
        assert_eq!(n, Err(nix::errno::Errno::EAGAIN));
        // The next wd follows the highest restored one.
        let c = CString::new(dir.path().to_str().unwrap()).unwrap();
        let next = psnc_ptrace::sys::inotify_add_watch(fd.as_fd(), &c, libc::IN_CREATE).unwrap();
        assert_eq!(next, 6);
    }

    #[test]
    fn a_wd_that_cannot_be_reproduced_is_refused_naming_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"").unwrap();
        // Two watches on one inode: the kernel merges them into the first wd.
        let err = create(1, &inotify_fd(vec![watch(1, &a), watch(2, &a)])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "fd 9 is an inotify instance, which restore cannot recreate yet; its watch 2 on \
                 {} cannot come back: the kernel gave watch descriptor 1",
                a.display()
            )),
            "{msg}"
        );
    }
}
