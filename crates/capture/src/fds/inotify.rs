//! Inotify instances: every watch with its watch descriptor, mask and path.
//!
//! The fd's `/proc/PID/fdinfo/N` has one `inotify` line per watch: `wd`, the watched inode and
//! its superblock device, the mask, and the inode's file handle. The path is not there: it is
//! resolved by opening the handle (`open_by_handle_at`) on a mount of that device taken from
//! `/proc/PID/mountinfo`, then reading the link of the opened fd. A watch whose inode cannot be
//! opened or has no path any more (deleted) is refused, naming the watch. Events already queued
//! in the instance are not captured (the kernel has no way to read them without consuming
//! them). Model: [`FdKind::Inotify`] with its [`InotifyWatch`]es in `psnc_format::model`.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use psnc_format::model::{FdKind, InotifyWatch};

use crate::error::{CaptureError, Result};
use crate::procfs::ProcDir;

/// One `inotify` line of fdinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FdinfoWatch {
    wd: i32,
    ino: u64,
    /// The kernel's internal device encoding (major << 20 | minor).
    sdev: u64,
    mask: u32,
    handle_type: i32,
    handle: Vec<u8>,
}

/// The [`FdKind::Inotify`] of inotify fd `fd`, every watch resolved to a path.
pub(super) fn classify(proc_dir: &ProcDir, fd: i32, link: &str) -> Result<FdKind> {
    let pid = proc_dir.pid();
    let name = format!("fdinfo/{fd}");
    let text = proc_dir.read_string(&name)?;
    let mut watches =
        parse_inotify(&text).map_err(|d| CaptureError::parse(proc_dir.path(&name), d))?;
    watches.sort_by_key(|w| w.wd);
    let mounts = proc_dir.read_string("mountinfo")?;
    let mounts = mount_points(&mounts);
    let mut out = Vec::with_capacity(watches.len());
    for w in &watches {
        let (major, minor) = ((w.sdev >> 20) as u32, (w.sdev & 0xf_ffff) as u32);
        let path = resolve(&mounts, major, minor, w).map_err(|why| CaptureError::Unsupported {
            pid,
            what: format!("fd {fd}"),
            kind: format!(
                "an inotify instance ({link}) whose watch {} (inode {} on device {major}:{minor}) \
                 has no path: {why}",
                w.wd, w.ino
            ),
        })?;
        out.push(InotifyWatch {
            wd: w.wd,
            mask: w.mask,
            path,
            ino: w.ino,
            dev: nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
        });
    }
    Ok(FdKind::Inotify { watches: out })
}

/// The path of the watched inode, through its file handle on a mount of its device.
fn resolve(
    mounts: &HashMap<(u32, u32), Vec<String>>,
    major: u32,
    minor: u32,
    w: &FdinfoWatch,
) -> std::result::Result<String, String> {
    let points = mounts
        .get(&(major, minor))
        .ok_or("no mount of its device is visible")?;
    let mut why = String::from("no mount point could be opened");
    for point in points {
        use std::os::unix::fs::OpenOptionsExt;
        let mnt = match std::fs::OpenOptions::new()
            .read(true)
            // Not O_PATH: open_by_handle_at does not accept an O_PATH mount fd (EBADF).
            .custom_flags(libc::O_DIRECTORY)
            .open(point)
        {
            Ok(f) => f,
            Err(e) => {
                why = format!("opening the mount point {point}: {e}");
                continue;
            }
        };
        use std::os::fd::AsFd;
        let f = match psnc_ptrace::sys::open_by_handle_at(
            mnt.as_fd(),
            w.handle_type,
            &w.handle,
            libc::O_PATH | libc::O_CLOEXEC,
        ) {
            Ok(f) => f,
            Err(e) => {
                why = format!("opening its file handle on {point}: {e}");
                continue;
            }
        };
        let link = format!("/proc/self/fd/{}", f.as_raw_fd());
        let path = std::fs::read_link(&link)
            .map_err(|e| format!("reading {link}: {e}"))?
            .to_string_lossy()
            .into_owned();
        // The inode is open, so a path that no longer names it means it was unlinked (the link
        // then ends in " (deleted)") or renamed over.
        match std::fs::metadata(&path) {
            Ok(m) if m.ino() == w.ino && !path.ends_with(" (deleted)") => return Ok(path),
            _ => return Err(format!("it was deleted or moved (last path {path})")),
        }
    }
    Err(why)
}

/// Mount points by device (`major:minor`) from mountinfo text, octal escapes decoded.
fn mount_points(text: &str) -> HashMap<(u32, u32), Vec<String>> {
    let mut out: HashMap<(u32, u32), Vec<String>> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (Some(dev), Some(point)) = (f.get(2), f.get(4)) else {
            continue;
        };
        let Some((a, b)) = dev.split_once(':') else {
            continue;
        };
        if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
            out.entry((a, b)).or_default().push(unescape(point));
        }
    }
    out
}

/// Decodes mountinfo's `\040`-style escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the watch lines of an inotify fd's fdinfo, as fs/notify/fdinfo.c prints them:
/// `inotify wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x
/// f_handle:%02x...`.
fn parse_inotify(text: &str) -> std::result::Result<Vec<FdinfoWatch>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("inotify ")) {
        let bad = || format!("bad inotify watch line {line:?}");
        let fields: HashMap<&str, &str> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.split_once(':'))
            .collect();
        let hex = |k: &str| {
            fields
                .get(k)
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .ok_or_else(bad)
        };
        let h = fields.get("f_handle").ok_or_else(bad)?;
        let handle = (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).map_err(|_| bad()))
            .collect::<std::result::Result<Vec<u8>, String>>()?;
        if handle.len() as u64 != hex("fhandle-bytes")? {
            return Err(bad());
        }
        out.push(FdinfoWatch {
            wd: i32::try_from(hex("wd")?).map_err(|_| bad())?,
            ino: hex("ino")?,
            sdev: hex("sdev")?,
            mask: u32::try_from(hex("mask")?).map_err(|_| bad())?,
            handle_type: hex("fhandle-type")? as i32,
            handle,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inotify_fdinfo_lines() {
        let text = "pos:\t0\nflags:\t04000\nmnt_id:\t17\nino:\t18\n\
            inotify wd:3 ino:3c4a7 sdev:fe00000 mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a7c4030000000000\n\
            inotify wd:1c ino:2e1 sdev:fe00001 mask:80000002 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e102000000000000\n";
        let w = parse_inotify(text).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(
            w[1],
            FdinfoWatch {
                wd: 0x1c,
                ino: 0x2e1,
                sdev: 0xfe0_0001,
                mask: 0x8000_0002,
                handle_type: 1,
                handle: vec![0xe1, 2, 0, 0, 0, 0, 0, 0],
            }
        );
        assert!(parse_inotify(
            "inotify wd:1 ino:1 sdev:1 mask:1 fhandle-bytes:2 fhandle-type:1 f_handle:aa\n"
        )
        .is_err());
    }

    #[test]
    fn mountinfo_points() {
        let text = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    30 22 0:25 / /mnt/a\\040b rw - tmpfs tmpfs rw\n";
        let m = mount_points(text);
        assert_eq!(m[&(254, 0)], vec!["/".to_string()]);
        assert_eq!(m[&(0, 25)], vec!["/mnt/a b".to_string()]);
    }

    #[test]
    fn a_watch_resolves_to_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("watched");
        std::fs::write(&file, b"x").unwrap();
        let ino = psnc_ptrace::sys::inotify_init1(libc::IN_CLOEXEC).unwrap();
        use std::os::fd::AsFd;
        let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
        let wd = psnc_ptrace::sys::inotify_add_watch(ino.as_fd(), &c, libc::IN_MODIFY).unwrap();
        let me = ProcDir::new(std::process::id() as i32);
        let FdKind::Inotify { watches } =
            classify(&me, ino.as_raw_fd(), "anon_inode:inotify").unwrap()
        else {
            panic!()
        };
        assert_eq!(watches.len(), 1);
        assert_eq!((watches[0].wd, watches[0].mask), (wd, libc::IN_MODIFY));
        assert_eq!(
            watches[0].path,
            std::fs::canonicalize(&file).unwrap().to_str().unwrap()
        );
    }
}
