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
            kind: format!("an inotify instance whose watch {} on {}", w.wd, w.path),
            hint: format!(" cannot be restored: {why}"),
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
