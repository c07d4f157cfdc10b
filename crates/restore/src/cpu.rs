//! Does this CPU run what the image's code expects?
//!
//! A process does not ask the CPU again after start-up: glibc's `ifunc` resolvers, libm, OpenSSL
//! and JIT compilers chose AVX2 or AVX-512 code paths once, from CPUID, and keep calling them. An
//! image captured on a CPU with AVX-512 therefore dies with SIGILL on one without it, even when no
//! AVX-512 register held a live value at capture. The check compares the `flags` line of
//! `/proc/cpuinfo` recorded in the image with this CPU's, restricted to the flags that name an
//! instruction-set extension user space can detect and use ([`USER_ISA_FLAGS`]); flags that
//! describe the machine, its bugs or kernel-only features (`hypervisor`, `constant_tsc`, `pti`,
//! `xsaves`) do not matter to a restored process and are ignored.

use std::collections::BTreeSet;

/// `/proc/cpuinfo` flag names of instruction-set extensions user-space code may have chosen to use.
pub const USER_ISA_FLAGS: &[&str] = &[
    "3dnowprefetch",
    "abm",
    "adx",
    "aes",
    "amx_bf16",
    "amx_complex",
    "amx_fp16",
    "amx_int8",
    "amx_tile",
    "avx",
    "avx2",
    "avx512_4fmaps",
    "avx512_4vnniw",
    "avx512_bf16",
    "avx512_bitalg",
    "avx512_fp16",
    "avx512_vbmi2",
    "avx512_vnni",
    "avx512_vp2intersect",
    "avx512_vpopcntdq",
    "avx512bw",
    "avx512cd",
    "avx512dq",
    "avx512er",
    "avx512f",
    "avx512ifma",
    "avx512pf",
    "avx512vbmi",
    "avx512vl",
    "avx_ifma",
    "avx_ne_convert",
    "avx_vnni",
    "avx_vnni_int8",
    "bmi1",
    "bmi2",
    "cldemote",
    "clflushopt",
    "clwb",
    "clzero",
    "cmov",
    "cmpccxadd",
    "cx16",
    "cx8",
    "erms",
    "f16c",
    "fma",
    "fma4",
    "fsgsbase",
    "fsrm",
    "fxsr",
    "gfni",
    "hle",
    "lahf_lm",
    "misalignsse",
    "mmx",
    "mmxext",
    "movbe",
    "movdir64b",
    "movdiri",
    "pclmulqdq",
    "pku",
    "pni",
    "popcnt",
    "prefetchi",
    "rdpid",
    "rdrand",
    "rdseed",
    "rdtscp",
    "rtm",
    "serialize",
    "sha512",
    "sha_ni",
    "sm3",
    "sm4",
    "sse",
    "sse2",
    "sse4_1",
    "sse4_2",
    "sse4a",
    "ssse3",
    "tbm",
    "vaes",
    "vpclmulqdq",
    "waitpkg",
    "xop",
    "xsave",
    "xsavec",
    "xsaveopt",
];

/// The flags of this CPU, from the first processor block of `/proc/cpuinfo`
/// ([`psnc_proc::system::cpuinfo`]).
pub fn host_flags() -> std::io::Result<BTreeSet<String>> {
    Ok(psnc_proc::system::cpuinfo()?.flags.into_iter().collect())
}

/// Extracts the flags of the first CPU from `/proc/cpuinfo` text
/// ([`psnc_proc::cpuinfo::parse_cpuinfo`]; it cannot fail on text, so an error gives no flags).
pub fn parse_cpuinfo_flags(cpuinfo: &str) -> BTreeSet<String> {
    psnc_proc::cpuinfo::parse_cpuinfo(cpuinfo)
        .map(|c| c.flags.into_iter().collect())
        .unwrap_or_default()
}

/// The user-visible ISA flags in `image_flags` that `host` lacks, sorted. Empty means the image's
/// code can run here.
pub fn missing_flags<'a, I>(image_flags: I, host: &BTreeSet<String>) -> Vec<String>
where
    I: IntoIterator<Item = &'a String>,
{
    let mut missing: Vec<String> = image_flags
        .into_iter()
        .filter(|f| USER_ISA_FLAGS.contains(&f.as_str()) && !host.contains(*f))
        .cloned()
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> BTreeSet<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    // The parser's own tests live in psnc_proc::cpuinfo.
    #[test]
    fn parses_first_flags_line() {
        let text =
            "processor\t: 0\nflags\t\t: fpu sse avx\nbugs\t: x\n\nprocessor\t: 1\nflags\t: fpu\n";
        assert_eq!(parse_cpuinfo_flags(text), set("fpu sse avx"));
        assert!(host_flags().unwrap().contains("sse2"));
    }

    #[test]
    fn list_is_sorted_and_unique() {
        let mut sorted = USER_ISA_FLAGS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, USER_ISA_FLAGS);
    }

    #[test]
    fn ignores_non_isa_flags() {
        let image: Vec<String> = ["avx512f", "hypervisor", "avx2", "constant_tsc", "sse2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let host = set("sse2 avx2");
        assert_eq!(missing_flags(&image, &host), vec!["avx512f".to_string()]);
        assert!(missing_flags(&image, &set("sse2 avx2 avx512f")).is_empty());
    }
}
