//! `/proc/cpuinfo` (`arch/x86/kernel/cpu/proc.c: show_cpuinfo`).
//!
//! Parsed by procfs-core's `CpuInfo`, which splits the file into per-processor blocks and answers
//! for processor 0 (the kernel reports the same features for every CPU it uses). This replaces
//! three hand parsers (capture's host identity, restore's CPU check, the tests' `cpu_has`).
//! procfs-core keeps a value only up to a *second* `:` on its line; no x86 `vendor_id`,
//! `model name` or `flags` contains one (pinned by a test below).

use procfs_core::FromBufRead;

use crate::error::ParseError;

/// The CPU fields of `/proc/cpuinfo`, of the first CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// `vendor_id`.
    pub vendor: String,
    /// `model name`.
    pub model: String,
    /// `flags`, sorted and deduplicated.
    pub flags: Vec<String>,
}

impl CpuInfo {
    /// Whether the first CPU has the flag.
    pub fn has(&self, flag: &str) -> bool {
        self.flags
            .binary_search_by(|f| f.as_str().cmp(flag))
            .is_ok()
    }
}

/// Parses `/proc/cpuinfo` text: the fields of the first processor block.
pub fn parse_cpuinfo(text: &str) -> Result<CpuInfo, ParseError> {
    let all = procfs_core::CpuInfo::from_buf_read(text.as_bytes())
        .map_err(|e| ParseError::field(e.to_string()))?;
    let mut flags: Vec<String> = all
        .flags(0)
        .unwrap_or_default()
        .into_iter()
        .map(str::to_string)
        .collect();
    flags.sort();
    flags.dedup();
    Ok(CpuInfo {
        vendor: all.vendor_id(0).unwrap_or_default().to_string(),
        model: all.model_name(0).unwrap_or_default().to_string(),
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // From capture's host.rs.
    #[test]
    fn cpuinfo_first_block() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\
                    flags\t\t: sse2 fpu avx512f sse2\n\nprocessor\t: 1\nvendor_id\t: Other\n";
        let c = parse_cpuinfo(text).unwrap();
        assert_eq!(c.vendor, "AuthenticAMD");
        assert_eq!(c.model, "AMD EPYC");
        assert_eq!(c.flags, vec!["avx512f", "fpu", "sse2"]);
        assert!(c.has("fpu") && !c.has("avx2"));
    }

    // From restore's cpu.rs.
    #[test]
    fn parses_first_flags_line() {
        let text =
            "processor\t: 0\nflags\t\t: fpu sse avx\nbugs\t: x\n\nprocessor\t: 1\nflags\t: fpu\n";
        assert_eq!(parse_cpuinfo(text).unwrap().flags, ["avx", "fpu", "sse"]);
    }

    #[test]
    fn same_flags_on_every_cpu() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse\n\n\
                    processor\t: 1\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse\n\n";
        let c = parse_cpuinfo(text).unwrap();
        assert_eq!(c.vendor, "GenuineIntel");
        assert_eq!(c.flags, ["fpu", "sse"]);
    }

    #[test]
    fn empty_text_gives_empty_fields() {
        assert_eq!(parse_cpuinfo("").unwrap(), CpuInfo::default());
    }

    #[test]
    fn procfs_core_cuts_a_value_at_a_second_colon() {
        let text = "processor\t: 0\nmodel name\t: A: B\n";
        assert_eq!(parse_cpuinfo(text).unwrap().model, "A");
    }

    #[test]
    fn own_cpuinfo() {
        let c = crate::system::cpuinfo().unwrap();
        assert!(!c.vendor.is_empty());
        assert!(!c.model.is_empty());
        assert!(c.has("sse2"), "x86_64 always has sse2: {:?}", c.flags);
        // The same line as a plain scan of the file's first flags line finds.
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let first: std::collections::BTreeSet<&str> = text
            .lines()
            .find(|l| l.starts_with("flags"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.split_whitespace().collect())
            .unwrap();
        assert!(c.flags.iter().map(String::as_str).eq(first.iter().copied()));
    }
}
