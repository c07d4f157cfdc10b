//! `/proc/PID/maps` (`fs/proc/task_mmu.c: show_map_vma`).
//!
//! Own parser. psnc-cr needs each line's exact fields: the path exactly as printed (spaces,
//! trailing ` (deleted)`, bytes that are not UTF-8 kept lossily rather than failing the file) and
//! the device numbers. procfs-core's `MemoryMaps` trims the path and turns it into an enum
//! (`/SYSV...` is cut at fixed offsets: a short `/SYSVx` path panics), fails the whole file on a
//! path that is not UTF-8, and does not say which line did not parse. See
//! `procfs_core_gaps.rs`.
//!
//! [`parse_maps`] refuses a bad line (capture must not lose a mapping); [`parse_maps_lossy`]
//! skips it, for restore and ptrace, which look for a few named mappings.

use crate::error::ParseError;
use crate::PAGE_SIZE;

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapsEntry {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `r`.
    pub read: bool,
    /// `w`.
    pub write: bool,
    /// `x`.
    pub exec: bool,
    /// `s` (MAP_SHARED) rather than `p`.
    pub shared: bool,
    /// File offset in bytes.
    pub offset: u64,
    /// Device major number.
    pub dev_major: u32,
    /// Device minor number.
    pub dev_minor: u32,
    /// Inode number (0 for anonymous memory).
    pub inode: u64,
    /// The path or pseudo-name (`[heap]`, `[vdso]`, ...) as printed, including any ` (deleted)`
    /// suffix; empty for anonymous memory.
    pub path: String,
}

impl MapsEntry {
    /// `PROT_*` bits.
    pub fn prot(&self) -> u32 {
        let mut p = 0;
        if self.read {
            p |= libc::PROT_READ as u32;
        }
        if self.write {
            p |= libc::PROT_WRITE as u32;
        }
        if self.exec {
            p |= libc::PROT_EXEC as u32;
        }
        p
    }

    /// The permission column as printed (`r-xp`).
    pub fn perms(&self) -> String {
        let bit = |on: bool, c: char| if on { c } else { '-' };
        [
            bit(self.read, 'r'),
            bit(self.write, 'w'),
            bit(self.exec, 'x'),
            if self.shared { 's' } else { 'p' },
        ]
        .iter()
        .collect()
    }

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        (self.end - self.start) / PAGE_SIZE
    }

    /// The `/proc/PID/map_files` name of this mapping.
    pub fn map_files_name(&self) -> String {
        format!("map_files/{:x}-{:x}", self.start, self.end)
    }
}

/// Parses `/proc/PID/maps`. The path is everything after the inode and its padding, so paths with
/// spaces survive.
pub fn parse_maps(text: &str) -> Result<Vec<MapsEntry>, ParseError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        out.push(
            parse_maps_line(line)
                .map_err(|e| ParseError::at_line(n + 1, format!("{e}: {line:?}")))?,
        );
    }
    Ok(out)
}

/// Parses `/proc/PID/maps`, skipping the lines that do not parse.
pub fn parse_maps_lossy(text: &str) -> Vec<MapsEntry> {
    text.lines()
        .filter_map(|l| parse_maps_line(l).ok())
        .collect()
}

/// Parses one line of `/proc/PID/maps`; the error says which field is wrong.
pub fn parse_maps_line(line: &str) -> Result<MapsEntry, String> {
    // "start-end perms offset major:minor inode   path"
    let mut rest = line;
    let mut next = || -> Result<&str, String> {
        let trimmed = rest.trim_start_matches(' ');
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (tok, r) = trimmed.split_at(end);
        rest = r;
        if tok.is_empty() {
            Err("too few fields".into())
        } else {
            Ok(tok)
        }
    };
    let range = next()?;
    let perms = next()?;
    let offset = next()?;
    let dev = next()?;
    let inode = next()?;
    let path = rest.trim_start_matches(' ').to_string();

    let (s, e) = range.split_once('-').ok_or("no '-' in the address range")?;
    let hex =
        |s: &str, what: &str| u64::from_str_radix(s, 16).map_err(|_| format!("bad {what} {s:?}"));
    let (major, minor) = dev.split_once(':').ok_or("no ':' in the device")?;
    let pb = perms.as_bytes();
    if pb.len() != 4 {
        return Err(format!("bad permissions {perms:?}"));
    }
    let start = hex(s, "start")?;
    let end = hex(e, "end")?;
    if end <= start || start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 {
        return Err(format!("bad range {range:?}"));
    }
    Ok(MapsEntry {
        start,
        end,
        read: pb[0] == b'r',
        write: pb[1] == b'w',
        exec: pb[2] == b'x',
        shared: pb[3] == b's',
        offset: hex(offset, "offset")?,
        dev_major: u32::from_str_radix(major, 16).map_err(|_| format!("bad device {dev:?}"))?,
        dev_minor: u32::from_str_radix(minor, 16).map_err(|_| format!("bad device {dev:?}"))?,
        inode: inode
            .parse::<u64>()
            .map_err(|_| format!("bad inode {inode:?}"))?,
        path,
    })
}

/// Strips the ` (deleted)` suffix the kernel appends to unlinked files' paths.
pub fn strip_deleted(path: &str) -> (&str, bool) {
    match path.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (path, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let text = "55fd40dbb000-55fd40dbd000 r--p 00000000 fe:00 247030                     /usr/bin/cat\n\
            7f58b5d4f000-7f58b5d56000 r--s 00001000 fe:00 325745                     /tmp/a b (deleted)\n\
            7f58b5d59000-7f58b5d5d000 r--p 00000000 00:00 0                          [vvar]\n\
            7f58b5ae7000-7f58b5b09000 rw-p 00000000 00:00 0 \n\
            ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";
        let m = parse_maps(text).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].start, 0x55fd40dbb000);
        assert_eq!(m[0].end, 0x55fd40dbd000);
        assert!(m[0].read && !m[0].write && !m[0].exec && !m[0].shared);
        assert_eq!(m[0].dev_major, 0xfe);
        assert_eq!(m[0].inode, 247030);
        assert_eq!(m[0].path, "/usr/bin/cat");
        assert!(m[1].shared);
        assert_eq!(m[1].offset, 0x1000);
        assert_eq!(m[1].path, "/tmp/a b (deleted)");
        assert_eq!(strip_deleted(&m[1].path), ("/tmp/a b", true));
        assert_eq!(m[2].path, "[vvar]");
        assert_eq!(m[3].path, "");
        assert_eq!(m[4].start, 0xffffffffff600000);
        assert_eq!(m[4].prot(), libc::PROT_EXEC as u32);
        assert_eq!(m[0].map_files_name(), "map_files/55fd40dbb000-55fd40dbd000");
        assert_eq!(m[0].perms(), "r--p");
        assert_eq!(m[1].perms(), "r--s");
        assert_eq!(m[3].perms(), "rw-p");
    }

    #[test]
    fn maps_bad_line_is_quoted() {
        let err = parse_maps("zz-10 r--p 0 0:0 0\n").unwrap_err();
        let err = err.to_string();
        assert!(err.starts_with("line 1: bad start \"zz\""), "{err}");
    }

    // From restore's maps.rs: the stub's memfd and its own anonymous mappings.
    #[test]
    fn lossy_parses_lines() {
        let text = "10000000-10001000 r-xp 00000000 00:01 1234                       /memfd:psnc-stub (deleted)\n\
                    7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0                          [vvar]\n\
                    7ffff7fc9000-7ffff7fcb000 rw-p 00000000 00:00 0 \n";
        let m = parse_maps_lossy(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].path, "/memfd:psnc-stub (deleted)");
        assert_eq!(m[0].inode, 1234);
        assert_eq!(m[1].path, "[vvar]");
        assert_eq!(m[1].end - m[1].start, 0x4000);
        assert_eq!(m[2].path, "");
        assert_eq!(m[2].perms(), "rw-p");
    }

    #[test]
    fn lossy_skips_bad_lines() {
        let text = "zz-10 r--p 0 0:0 0\n\
                    7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0                          [vvar]\n\
                    garbage\n";
        let m = parse_maps_lossy(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].path, "[vvar]");
    }

    #[test]
    fn own_maps() {
        let me = crate::ProcDir::new(std::process::id() as i32);
        let maps = me.maps().unwrap();
        assert!(maps.iter().any(|m| m.path == "[stack]"));
        assert!(maps.iter().any(|m| m.path == "[vdso]" && m.exec));
        assert!(maps.windows(2).all(|w| w[0].end <= w[1].start));
        // Other test threads may map memory in between, so only the named mappings compare.
        let lossy = crate::ProcDir::current().maps_lossy().unwrap();
        assert!(lossy.iter().any(|m| m.path == "[vdso]" && m.exec));
    }
}
