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

/// The `VmFlags` line of one smaps entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmFlags {
    /// Every mnemonic as printed, in the kernel's order.
    pub mnemonics: Vec<String>,
}

impl VmFlags {
    /// Whether the mnemonic is present.
    pub fn has(&self, mnemonic: &str) -> bool {
        self.mnemonics.iter().any(|m| m == mnemonic)
    }
}

/// Parses the `VmFlags` of every entry of `/proc/PID/smaps`, keyed by the entry's start address.
pub fn parse_smaps_vm_flags(text: &str) -> Result<BTreeMap<u64, VmFlags>, ParseError> {
    let mut out = BTreeMap::new();
    let mut current: Option<u64> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            let start = current
                .take()
                .ok_or_else(|| ParseError::at_line(n + 1, "VmFlags before any mapping"))?;
            let mnemonics: Vec<String> =
                flags.split_ascii_whitespace().map(str::to_string).collect();
            out.insert(start, VmFlags { mnemonics });
            continue;
        }
        // A mapping header starts with "start-end "; field lines start with "Name:".
        let first = line.split(' ').next().unwrap_or("");
        if let Some((s, _)) = first.split_once('-') {
            if !first.contains(':') {
                let start = u64::from_str_radix(s, 16)
                    .map_err(|_| ParseError::at_line(n + 1, format!("bad start {s:?}")))?;
                current = Some(start);
            }
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
        assert_eq!(f[&0x5589996e7000].mnemonics, ["rd", "mr", "mw", "me"]);
        assert!(f[&0x5589996e7000].has("mr"));
        let st = &f[&0x7fff0bc76000];
        assert_eq!(
            st.mnemonics,
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
        assert!(flags.values().all(|f| !f.mnemonics.is_empty()));
    }
}
