//! Restore's view of `/proc/PID/maps`, for the restore's own process and the stub it drives.
//!
//! Parsed by [`psnc_proc::maps`]; lines that do not parse are skipped (restore looks for a few
//! named mappings and never loses one the kernel printed). [`MapEntry`] keeps the field names the
//! rest of restore uses.

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

impl From<psnc_proc::MapsEntry> for MapEntry {
    fn from(m: psnc_proc::MapsEntry) -> Self {
        MapEntry {
            start: m.start,
            end: m.end,
            perms: m.perms(),
            offset: m.offset,
            ino: m.inode,
            name: m.path,
        }
    }
}

/// Parses the text of a maps file; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<MapEntry> {
    psnc_proc::maps::parse_maps_lossy(text)
        .into_iter()
        .map(MapEntry::from)
        .collect()
}

/// Reads and parses `/proc/PID/maps` (`pid` = `"self"` for this process).
pub fn read(pid: &str) -> std::io::Result<Vec<MapEntry>> {
    let dir = if pid == "self" {
        psnc_proc::ProcDir::current()
    } else {
        let n = pid.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a PID: {pid:?}"),
            )
        })?;
        psnc_proc::ProcDir::new(n)
    };
    Ok(dir.maps_lossy()?.into_iter().map(MapEntry::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The parser's own tests live in psnc_proc::maps; this covers the field names restore uses.
    #[test]
    fn fields_keep_their_restore_names() {
        let text = "10000000-10001000 r-xp 00000000 00:01 1234                       /memfd:psnc-stub (deleted)\n\
                    7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0                          [vvar]\n\
                    7ffff7fc9000-7ffff7fcb000 rw-p 00000000 00:00 0 \n";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "/memfd:psnc-stub (deleted)");
        assert_eq!(m[0].ino, 1234);
        assert_eq!(m[0].perms, "r-xp");
        assert_eq!(m[1].name, "[vvar]");
        assert_eq!(m[1].len(), 0x4000);
        assert_eq!(m[2].name, "");
        assert_eq!(m[2].perms, "rw-p");
    }

    #[test]
    fn reads_own_and_numbered() {
        assert!(read("self").unwrap().iter().any(|m| m.name == "[stack]"));
        let me = std::process::id().to_string();
        assert!(read(&me).unwrap().iter().any(|m| m.name == "[vdso]"));
        assert_eq!(read("0").unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(
            read("x").unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
}
