//! Epoll instances and their watches.
//!
//! The watch list comes from procfs: one `tfd:` line per watch in the epoll fd's
//! `/proc/PID/fdinfo/N`, with the watched fd number, events, data, and the watched file's inode
//! and device. Restore re-adds each watch through the watched fd number, so capture checks that
//! the number still names the watched file ([`CaptureError::EpollWatchUnreachable`] otherwise).
//! Model types: [`FdKind::Epoll`] with its [`EpollWatch`]es in `psnc_format::model`.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use psnc_format::model::{EpollWatch, FdKind};

use crate::error::{CaptureError, Result};
use crate::procfs::ProcDir;

/// The [`FdKind::Epoll`] of the epoll fd `fd`, with every watch checked.
pub(super) fn classify(proc_dir: &ProcDir, fd: i32) -> Result<FdKind> {
    let name = format!("fdinfo/{fd}");
    let text = proc_dir.read_string(&name)?;
    let watches =
        parse_epoll_watches(&text).map_err(|d| CaptureError::parse(proc_dir.path(&name), d))?;
    for w in &watches {
        check_watched_fd(proc_dir, fd, w)?;
    }
    Ok(FdKind::Epoll {
        watches: watches.iter().map(|w| w.watch).collect(),
    })
}

/// One `tfd:` line of an epoll fd's fdinfo: the watch and the identity of the watched file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EpollFdinfoWatch {
    watch: EpollWatch,
    /// Inode number of the watched file.
    ino: u64,
    /// Its superblock's device in the kernel's internal encoding (major << 20 | minor).
    sdev: u64,
}

/// Parses the watch lines of an epoll fd's fdinfo, as fs/eventpoll.c prints them:
/// `tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x`.
fn parse_epoll_watches(text: &str) -> std::result::Result<Vec<EpollFdinfoWatch>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("tfd:")) {
        let bad = || format!("bad epoll watch line {line:?}");
        // Pairs of `key:` and value; `pos:0` and `ino:5` carry the value in the same token.
        let mut fields = HashMap::new();
        let mut tokens = line.split_whitespace().peekable();
        while let Some(tok) = tokens.next() {
            let (k, v) = tok.split_once(':').ok_or_else(bad)?;
            let v = if v.is_empty() {
                tokens.next().ok_or_else(bad)?
            } else {
                v
            };
            fields.insert(k, v);
        }
        let get = |k: &str| fields.get(k).copied().ok_or_else(bad);
        let hex = |k: &str| get(k).and_then(|v| u64::from_str_radix(v, 16).map_err(|_| bad()));
        out.push(EpollFdinfoWatch {
            watch: EpollWatch {
                tfd: get("tfd")?.parse().map_err(|_| bad())?,
                events: u32::try_from(hex("events")?).map_err(|_| bad())?,
                data: hex("data")?,
            },
            ino: hex("ino")?,
            sdev: hex("sdev")?,
        });
    }
    Ok(out)
}

/// Checks that the watched fd number still names the watched file: restore re-adds the watch
/// through that number.
fn check_watched_fd(proc_dir: &ProcDir, epfd: i32, w: &EpollFdinfoWatch) -> Result<()> {
    let pid = proc_dir.pid();
    let tfd = w.watch.tfd;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_fdinfo_watch_lines() {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\n\
                    tfd:        5 events:       19 data:     1122334455667788  pos:0 ino:2a3 sdev:e\n\
                    tfd:       12 events: 80000005 data:                3  pos:0 ino:7 sdev:800001\n";
        let w = parse_epoll_watches(text).unwrap();
        assert_eq!(
            w,
            vec![
                EpollFdinfoWatch {
                    watch: EpollWatch {
                        tfd: 5,
                        events: 0x19,
                        data: 0x1122_3344_5566_7788
                    },
                    ino: 0x2a3,
                    sdev: 0xe
                },
                EpollFdinfoWatch {
                    watch: EpollWatch {
                        tfd: 12,
                        events: 0x8000_0005,
                        data: 3
                    },
                    ino: 7,
                    sdev: 0x80_0001
                },
            ]
        );
        assert!(parse_epoll_watches("tfd: x events: 1 data: 0 pos:0 ino:1 sdev:1\n").is_err());
        assert!(parse_epoll_watches("tfd: 3 events: 1\n").is_err());
    }
}
