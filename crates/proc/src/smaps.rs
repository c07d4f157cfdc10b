//! The `VmFlags` lines of `/proc/PID/smaps` (`fs/proc/task_mmu.c: show_smap_vma_flags`).
//!
//! Own parser. procfs-core's `MMapExtension::vm_flags` is a bitflags value of the mnemonics it
//! knew when it was released: a mnemonic added by a newer kernel (`sl`, `bt`, `ss`, ...) is
//! dropped without a trace, and a header line fails as its maps parser does. psnc-cr keeps every
//! mnemonic as printed, so capture can refuse what it does not know instead of losing it, and maps
//! the ones the image keeps to its own bits (`psnc_format::model::vm_flags`, on capture's side).
//! See `procfs_core_gaps.rs`.

use std::collections::BTreeMap;

use crate::error::ParseError;

/// The `VmFlags` line of one smaps entry: its mnemonics as printed, space-separated in one
/// string (one allocation per VMA, not one per mnemonic: at 60,000 VMAs that is the
/// difference between 3 and 30 MB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmFlags {
    text: String,
}

impl VmFlags {
    /// The flags of these mnemonics.
    pub fn from_mnemonics<'a>(m: impl IntoIterator<Item = &'a str>) -> Self {
        VmFlags {
            text: m.into_iter().collect::<Vec<_>>().join(" "),
        }
    }

    /// Every mnemonic as printed, in the kernel's order.
    pub fn mnemonics(&self) -> impl Iterator<Item = &str> {
        self.text.split(' ').filter(|m| !m.is_empty())
    }

    /// Whether the mnemonic is present.
    pub fn has(&self, mnemonic: &str) -> bool {
        self.mnemonics().any(|m| m == mnemonic)
    }
}

/// Parses the `VmFlags` of every entry of `/proc/PID/smaps`, keyed by the entry's start address.
pub fn parse_smaps_vm_flags(text: &str) -> Result<BTreeMap<u64, VmFlags>, ParseError> {
    read_smaps_vm_flags(text.as_bytes()).map_err(|e| match e {
        SmapsError::Parse(p) => p,
        SmapsError::Io(e) => ParseError::at_line(0, e.to_string()),
    })
}

/// What [`read_smaps_vm_flags`] fails with.
#[derive(Debug)]
pub enum SmapsError {
    /// Reading failed.
    Io(std::io::Error),
    /// A line does not parse.
    Parse(ParseError),
}

/// [`parse_smaps_vm_flags`] of a stream, line by line: smaps is about 700 bytes per VMA (43 MB
/// for 60,000 VMAs), of which only the header's start address and the `VmFlags` line matter,
/// so the text is never held whole nor converted to a `String`.
pub fn read_smaps_vm_flags(r: impl std::io::Read) -> Result<BTreeMap<u64, VmFlags>, SmapsError> {
    use std::io::BufRead;
    let mut r = std::io::BufReader::with_capacity(1 << 18, r);
    let mut out = BTreeMap::new();
    let mut current: Option<u64> = None;
    let mut line = Vec::with_capacity(256);
    let mut n = 0;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(SmapsError::Io)? == 0 {
            break;
        }
        n += 1;
        let bad = |what: String| SmapsError::Parse(ParseError::at_line(n, what));
        if let Some(flags) = line.strip_prefix(b"VmFlags:") {
            let start = current
                .take()
                .ok_or_else(|| bad("VmFlags before any mapping".into()))?;
            let text = String::from_utf8_lossy(flags);
            out.insert(
                start,
                VmFlags::from_mnemonics(text.split_ascii_whitespace()),
            );
            continue;
        }
        // A field line starts with "Name:" (a capital letter); a mapping header with
        // "start-end ".
        if !line.first().is_some_and(|b| !b.is_ascii_uppercase()) {
            continue;
        }
        let first = line.split(|&b| b == b' ').next().unwrap_or_default();
        if first.contains(&b':') {
            continue;
        }
        if let Some(dash) = first.iter().position(|&b| b == b'-') {
            let s = &first[..dash];
            let start = std::str::from_utf8(s)
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or_else(|| bad(format!("bad start {:?}", String::from_utf8_lossy(s))))?;
            current = Some(start);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_vm_flags() {
        let text = "5589996e7000-5589996e9000 r--p 00000000 fe:00 247282     /usr/bin/head\n\
            Size:                  8 kB\nKernelPageSize:        4 kB\nVmFlags: rd mr mw me \n\
            7fff0bc76000-7fff0bc97000 rw-p 00000000 00:00 0                          [stack]\n\
            Rss:                   8 kB\nVmFlags: rd wr mr mw me gd ac dd lo wf \n";
        let f = parse_smaps_vm_flags(text).unwrap();
        assert_eq!(
            f[&0x5589996e7000].mnemonics().collect::<Vec<_>>(),
            ["rd", "mr", "mw", "me"]
        );
        assert!(f[&0x5589996e7000].has("mr"));
        let st = &f[&0x7fff0bc76000];
        assert_eq!(
            st.mnemonics().collect::<Vec<_>>(),
            ["rd", "wr", "mr", "mw", "me", "gd", "ac", "dd", "lo", "wf"]
        );
        assert!(st.has("gd") && !st.has("hg"));
    }

    #[test]
    fn smaps_errors_name_the_line() {
        let err = parse_smaps_vm_flags("Size: 8 kB\nVmFlags: rd\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: VmFlags before any mapping");
        let err = parse_smaps_vm_flags("zz-10 r--p 0 0:0 0\n").unwrap_err();
        assert_eq!(err.to_string(), "line 1: bad start \"zz\"");
    }

    #[test]
    fn own_smaps() {
        let me = crate::ProcDir::new(std::process::id() as i32);
        let flags = me.smaps_vm_flags().unwrap();
        let maps = me.maps().unwrap();
        let stack = maps.iter().find(|m| m.path == "[stack]").unwrap();
        assert!(flags[&stack.start].has("gd"));
        assert!(flags.values().all(|f| f.mnemonics().next().is_some()));
    }
}
