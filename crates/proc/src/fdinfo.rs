//! `/proc/PID/fdinfo/FD` (`fs/proc/fd.c: seq_show` and each file type's `show_fdinfo`).
//!
//! Own parser: neither procfs-core nor procfs parses fdinfo. The common lines (`pos`, `flags`,
//! `mnt_id`, `ino`) become fields; every other line is kept as a key and value for the file type's
//! owner to read (`eventfd-count`, `sigmask`, `clockid`, ...). Epoll's `tfd:` lines put several
//! `key: value` pairs on one line and have their own parser, [`parse_epoll_tfds`].

use std::collections::HashMap;

use crate::error::ParseError;

/// The common fields of `/proc/PID/fdinfo/FD`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdInfo {
    /// `pos`.
    pub pos: u64,
    /// `flags` (octal in the file), including `O_CLOEXEC`.
    pub flags: u32,
    /// `mnt_id`.
    pub mnt_id: u64,
    /// `ino` (5.x+).
    pub ino: u64,
    /// Every other line, kind-specific (`eventfd-count`, `tfd`, `sigmask`, ...).
    pub extra: Vec<(String, String)>,
}

/// Parses `/proc/PID/fdinfo/FD`.
pub fn parse_fdinfo(text: &str) -> Result<FdInfo, ParseError> {
    let mut info = FdInfo::default();
    let mut have_pos = false;
    let mut have_flags = false;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "pos" => {
                info.pos = v.parse().map_err(|_| format!("bad pos {v:?}"))?;
                have_pos = true;
            }
            "flags" => {
                info.flags = u32::from_str_radix(v, 8).map_err(|_| format!("bad flags {v:?}"))?;
                have_flags = true;
            }
            "mnt_id" => info.mnt_id = v.parse().map_err(|_| format!("bad mnt_id {v:?}"))?,
            "ino" => info.ino = v.parse().map_err(|_| format!("bad ino {v:?}"))?,
            _ => info.extra.push((k.trim().to_string(), v.to_string())),
        }
    }
    if !have_pos || !have_flags {
        return Err("no pos or flags line".into());
    }
    Ok(info)
}

/// One `tfd:` line of an epoll fd's fdinfo: a watch and the identity of the watched file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpollTfd {
    /// The watched fd number, as it was at `EPOLL_CTL_ADD`.
    pub tfd: i32,
    /// The event mask.
    pub events: u32,
    /// `epoll_data`, 64 bits.
    pub data: u64,
    /// Inode number of the watched file.
    pub ino: u64,
    /// Its superblock's device in the kernel's internal encoding (major << 20 | minor).
    pub sdev: u64,
}

/// Parses the watch lines of an epoll fd's fdinfo, as `fs/eventpoll.c: ep_show_fdinfo` prints
/// them: `tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x`.
pub fn parse_epoll_tfds(text: &str) -> Result<Vec<EpollTfd>, ParseError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.starts_with("tfd:") {
            continue;
        }
        let bad = || ParseError::at_line(n + 1, format!("bad epoll watch line {line:?}"));
        // Pairs of `key:` and value; `pos:0` and `ino:5` carry the value in the same token.
        let mut fields = HashMap::new();
        let mut tokens = line.split_whitespace();
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
        out.push(EpollTfd {
            tfd: get("tfd")?.parse().map_err(|_| bad())?,
            events: u32::try_from(hex("events")?).map_err(|_| bad())?,
            data: hex("data")?,
            ino: hex("ino")?,
            sdev: hex("sdev")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_fields() {
        let f =
            parse_fdinfo("pos:\t12\nflags:\t02100002\nmnt_id:\t24\nino:\t3\neventfd-count:  5\n")
                .unwrap();
        assert_eq!(f.pos, 12);
        assert_eq!(f.flags, 0o2100002);
        assert_eq!(f.flags & libc::O_CLOEXEC as u32, libc::O_CLOEXEC as u32);
        assert_eq!(f.mnt_id, 24);
        assert_eq!(f.ino, 3);
        assert_eq!(
            f.extra,
            vec![("eventfd-count".to_string(), "5".to_string())]
        );
    }

    #[test]
    fn fdinfo_errors_name_the_field() {
        assert_eq!(
            parse_fdinfo("pos:\t1\n").unwrap_err().to_string(),
            "no pos or flags line"
        );
        assert_eq!(
            parse_fdinfo("pos:\tx\nflags:\t0\n")
                .unwrap_err()
                .to_string(),
            "bad pos \"x\""
        );
    }

    // From capture's files.rs (epoll fds).
    #[test]
    fn epoll_fdinfo_watch_lines() {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\n\
                    tfd:        5 events:       19 data:     1122334455667788  pos:0 ino:2a3 sdev:e\n\
                    tfd:       12 events: 80000005 data:                3  pos:0 ino:7 sdev:800001\n";
        let w = parse_epoll_tfds(text).unwrap();
        assert_eq!(
            w,
            vec![
                EpollTfd {
                    tfd: 5,
                    events: 0x19,
                    data: 0x1122_3344_5566_7788,
                    ino: 0x2a3,
                    sdev: 0xe
                },
                EpollTfd {
                    tfd: 12,
                    events: 0x8000_0005,
                    data: 3,
                    ino: 7,
                    sdev: 0x80_0001
                },
            ]
        );
        assert!(parse_epoll_tfds("tfd: x events: 1 data: 0 pos:0 ino:1 sdev:1\n").is_err());
        let err = parse_epoll_tfds("pos:\t0\ntfd: 3 events: 1\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        // The common lines of the same text parse as any fdinfo.
        assert_eq!(parse_fdinfo(text).unwrap().ino, 1057);
    }

    #[test]
    fn own_fdinfo() {
        let me = crate::ProcDir::new(std::process::id() as i32);
        let fds = me.list_numeric("fd").unwrap();
        assert!(fds.contains(&0) && fds.contains(&1) && fds.contains(&2));
        let info = me.fdinfo(0).unwrap();
        assert!(info.mnt_id > 0);
        assert!(me.fdinfo(-1).is_err());
    }
}
