//! The identity of the capturing host: kernel, CPU and XSAVE layout.
//!
//! Restore refuses an image that needs CPU features the restoring CPU lacks, so the flags are
//! taken from `/proc/cpuinfo` (what the kernel reports as usable, which is what glibc's CPUID
//! probing sees too; parsed by [`psnc_proc::cpuinfo`]). XCR0 and the XSAVE size are not in
//! procfs; they come from a captured thread's NT_X86_XSTATE regset (see [`xsave_identity`]),
//! which the kernel fills with the user-visible XCR0 at bytes 464..471 (`USER_XSTATE_XCR0_WORD`)
//! and whose length is the XSAVE area size.

use psnc_format::model::Host;
use psnc_proc::ProcError;

use crate::error::{CaptureError, Result};

/// Byte offset of XCR0 in the ptrace XSAVE area (`sw_reserved`, `USER_XSTATE_XCR0_WORD`).
pub const XSAVE_XCR0_OFFSET: usize = 464;
/// Byte offset of XSTATE_BV (the in-use mask) in the XSAVE area (the XSAVE header).
pub const XSAVE_XSTATE_BV_OFFSET: usize = 512;

/// Reads the host identity, without the XSAVE fields (see [`xsave_identity`]).
pub fn host_identity() -> Result<Host> {
    let uts = nix::sys::utsname::uname().map_err(|e| CaptureError::Proc {
        path: "uname(2)".into(),
        source: std::io::Error::from(e),
    })?;
    let cpu = psnc_proc::system::cpuinfo().map_err(|e| match e {
        ProcError::Open { path, source } | ProcError::Read { path, source } => {
            CaptureError::Proc { path, source }
        }
        ProcError::Parse { path, detail } => CaptureError::parse(path, detail.to_string()),
    })?;
    Ok(Host {
        kernel_release: uts.release().to_string_lossy().into_owned(),
        machine: uts.machine().to_string_lossy().into_owned(),
        hostname: uts.nodename().to_string_lossy().into_owned(),
        cpu_vendor: cpu.vendor,
        cpu_model: cpu.model,
        cpu_flags: cpu.flags,
        xsave_features: 0,
        xsave_size: 0,
    })
}

/// The CPU fields of `/proc/cpuinfo` (of the first CPU: the kernel reports the same features for
/// every CPU it uses), parsed by [`psnc_proc::cpuinfo`].
pub use psnc_proc::CpuInfo;

/// Parses the first processor block of `/proc/cpuinfo` ([`psnc_proc::cpuinfo::parse_cpuinfo`];
/// it cannot fail on text, so an error would give the empty identity, as before).
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    psnc_proc::cpuinfo::parse_cpuinfo(text).unwrap_or_default()
}

/// XCR0 and the XSAVE area size from an NT_X86_XSTATE regset: `(xcr0, size)`.
pub fn xsave_identity(xsave: &[u8]) -> (u64, u32) {
    (
        read_u64(xsave, XSAVE_XCR0_OFFSET),
        u32::try_from(xsave.len()).unwrap_or(u32::MAX),
    )
}

/// The in-use mask (XSTATE_BV) of an NT_X86_XSTATE regset (0 if the area is too short).
pub fn xstate_bv(xsave: &[u8]) -> u64 {
    read_u64(xsave, XSAVE_XSTATE_BV_OFFSET)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_wrapper() {
        // The parser's own tests live in psnc_proc::cpuinfo.
        let c = parse_cpuinfo("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t: sse2 fpu\n");
        assert_eq!(c.vendor, "AuthenticAMD");
        assert_eq!(c.flags, vec!["fpu", "sse2"]);
    }

    #[test]
    fn xsave_offsets() {
        let mut x = vec![0u8; 1024];
        x[464..472].copy_from_slice(&0xe7u64.to_le_bytes());
        x[512..520].copy_from_slice(&0x3u64.to_le_bytes());
        assert_eq!(xsave_identity(&x), (0xe7, 1024));
        assert_eq!(xstate_bv(&x), 3);
        assert_eq!(xstate_bv(&x[..100]), 0);
    }

    #[test]
    fn this_host() {
        let h = host_identity().unwrap();
        assert_eq!(h.machine, "x86_64");
        assert!(!h.kernel_release.is_empty());
        assert!(h.cpu_flags.iter().any(|f| f == "sse2"));
    }
}
