//! A small reader of `/proc/PID/maps`, for the restore's own process and the stub it drives.

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// The `rwxp` column.
    pub perms: String,
    /// File offset.
    pub offset: u64,
    /// Inode number (0 for anonymous and special mappings).
    pub ino: u64,
    /// Path or pseudo-name (`[vdso]`, `[stack]`), empty for anonymous memory.
    pub name: String,
}

impl MapEntry {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the mapping is empty (never, for a kernel-produced line).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Parses the text of a maps file; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<MapEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MapEntry> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?;
    let offset = it.next()?;
    let _dev = it.next()?;
    let ino = it.next()?;
    let name = it.next().unwrap_or("").trim_start();
    let (s, e) = range.split_once('-')?;
    Some(MapEntry {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        perms: perms.to_string(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        ino: ino.parse().ok()?,
        name: name.to_string(),
    })
}

/// Reads and parses `/proc/PID/maps` (`pid` = `"self"` for this process).
pub fn read(pid: &str) -> std::io::Result<Vec<MapEntry>> {
    Ok(parse(&std::fs::read_to_string(format!(
        "/proc/{pid}/maps"
    ))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let text = "10000000-10001000 r-xp 00000000 00:01 1234                       /memfd:psnc-stub (deleted)\n\
                    7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0                          [vvar]\n\
                    7ffff7fc9000-7ffff7fcb000 rw-p 00000000 00:00 0 \n";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "/memfd:psnc-stub (deleted)");
        assert_eq!(m[0].ino, 1234);
        assert_eq!(m[1].name, "[vvar]");
        assert_eq!(m[1].len(), 0x4000);
        assert_eq!(m[2].name, "");
        assert_eq!(m[2].perms, "rw-p");
    }
}
