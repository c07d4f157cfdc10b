//! Epoll instances and their watches.
//!
//! The watch list comes from procfs: one `tfd:` line per watch in the epoll fd's
//! `/proc/PID/fdinfo/N`, with the watched fd number, events, data, and the watched file's inode
//! and device. Restore re-adds each watch through the watched fd number, so capture checks that
//! the number still names the watched file ([`CaptureError::EpollWatchUnreachable`] otherwise).
//! Model types: [`FdKind::Epoll`] with its [`EpollWatch`]es in `psnc_format::model`.

use std::fs;
use std::os::unix::fs::MetadataExt;

use psnc_format::model::{EpollWatch, FdKind};

use crate::error::{CaptureError, Result};
use crate::procfs::{EpollTfd, ProcDir};

/// The [`FdKind::Epoll`] of the epoll fd `fd`, with every watch checked.
pub(super) fn classify(proc_dir: &ProcDir, fd: i32) -> Result<FdKind> {
    let watches = proc_dir.epoll_tfds(fd)?;
    for w in &watches {
        check_watched_fd(proc_dir, fd, w)?;
    }
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

/// Checks that the watched fd number still names the watched file: restore re-adds the watch
/// through that number.
fn check_watched_fd(proc_dir: &ProcDir, epfd: i32, w: &EpollTfd) -> Result<()> {
    let pid = proc_dir.pid();
    let tfd = w.tfd;
    let refuse = |why: String| CaptureError::EpollWatchUnreachable {
        pid,
        epfd,
        tfd,
        why,
    };
    let source = proc_dir.path(&format!("fd/{tfd}"));
    let meta = match fs::metadata(&source) {
        Ok(m) => m,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && proc_dir.exists() => {
            return Err(refuse(format!("fd {tfd} is closed")));
        }
        Err(e) => return Err(CaptureError::proc_io(pid, &source, e)),
    };
    let (major, minor) = (w.sdev >> 20, w.sdev & 0xf_ffff);
    let dev = meta.dev();
    let same_dev = nix::sys::stat::major(dev) == major && nix::sys::stat::minor(dev) == minor;
    if meta.ino() != w.ino || !same_dev {
        return Err(refuse(format!(
            "fd {tfd} now refers to another file (inode {} on device {:#x}, the watch is on inode {} \
             on device {major}:{minor})",
            meta.ino(),
            dev,
            w.ino
        )));
    }
    Ok(())
}
