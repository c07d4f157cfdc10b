//! Signal state: handlers, the alternate stack, and queued signals.
//!
//! [`SigAction`] and [`SigAltStack`] are widened to u64 for both modes and carry the byte layout
//! of each mode, for the remote `rt_sigaction` and `sigaltstack` that read and write them. A
//! queued signal has two forms: [`KernelSigInfo`], the 128-byte `siginfo_t` a 64-bit tracer
//! gets from the kernel, and [`SigInfo`], the signal as an image stores it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::bytes::{u32_at, u64_at};

/// One `struct sigaction` as `rt_sigaction` reports it (the kernel's `k_sigaction`), widened to
/// u64 for both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SigAction {
    /// `sa_handler` / `sa_sigaction`: the handler address, or 0 = SIG_DFL, 1 = SIG_IGN.
    pub handler: u64,
    /// `sa_flags` (`SA_SIGINFO`, `SA_RESTART`, `SA_ONSTACK`, `SA_RESTORER`, ...).
    pub flags: u64,
    /// `sa_restorer` (`SA_RESTORER`).
    pub restorer: u64,
    /// `sa_mask`: the signals blocked during the handler, bit n-1 for signal n.
    pub mask: u64,
}

impl SigAction {
    /// Bytes of `struct sigaction` in `arch`: handler, flags and restorer are `long`s (8 or 4
    /// bytes), the 64-signal mask is 8 bytes in both modes.
    pub fn kernel_len(arch: Arch) -> usize {
        3 * arch.word_size() + 8
    }

    /// The struct as `rt_sigaction` in `arch` reads it; [`SigAction::kernel_len`] bytes. Values
    /// are truncated to 32 bits for i386.
    pub fn to_bytes(&self, arch: Arch) -> Vec<u8> {
        let mut v: Vec<u8> = match arch {
            Arch::X86_64 => [self.handler, self.flags, self.restorer]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect(),
            Arch::I386 => [self.handler, self.flags, self.restorer]
                .iter()
                .flat_map(|&v| (v as u32).to_ne_bytes())
                .collect(),
        };
        v.extend_from_slice(&self.mask.to_ne_bytes());
        v
    }

    /// Decodes what `rt_sigaction` in `arch` wrote: the first [`SigAction::kernel_len`] bytes of
    /// `b`, a buffer of the larger (x86_64) layout.
    pub fn from_bytes(arch: Arch, b: &[u8; 32]) -> SigAction {
        match arch {
            Arch::X86_64 => SigAction {
                handler: u64_at(b, 0),
                flags: u64_at(b, 8),
                restorer: u64_at(b, 16),
                mask: u64_at(b, 24),
            },
            Arch::I386 => SigAction {
                handler: u64::from(u32_at(b, 0)),
                flags: u64::from(u32_at(b, 4)),
                restorer: u64::from(u32_at(b, 8)),
                mask: u64_at(b, 12),
            },
        }
    }
}

/// `stack_t` of `sigaltstack(2)`, widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SigAltStack {
    /// `ss_sp`: the stack base.
    pub sp: u64,
    /// `ss_flags` (`SS_ONSTACK`, `SS_DISABLE`, `SS_AUTODISARM`), the bits of the kernel's `int`.
    pub flags: u32,
    /// `ss_size`.
    pub size: u64,
}

impl SigAltStack {
    /// Bytes of `stack_t` in `arch`: pointer, `int` flags (padded to 8 on x86_64), `size_t`.
    pub fn kernel_len(arch: Arch) -> usize {
        match arch {
            Arch::X86_64 => 24,
            Arch::I386 => 12,
        }
    }

    /// The struct as `sigaltstack` in `arch` reads it; [`SigAltStack::kernel_len`] bytes.
    /// Pointer and size are truncated to 32 bits for i386.
    pub fn to_bytes(&self, arch: Arch) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::kernel_len(arch));
        match arch {
            Arch::X86_64 => {
                v.extend_from_slice(&self.sp.to_ne_bytes());
                v.extend_from_slice(&self.flags.to_ne_bytes());
                v.extend_from_slice(&[0; 4]);
                v.extend_from_slice(&self.size.to_ne_bytes());
            }
            Arch::I386 => {
                v.extend_from_slice(&(self.sp as u32).to_ne_bytes());
                v.extend_from_slice(&self.flags.to_ne_bytes());
                v.extend_from_slice(&(self.size as u32).to_ne_bytes());
            }
        }
        v
    }

    /// Decodes what `sigaltstack` in `arch` wrote: the first [`SigAltStack::kernel_len`] bytes of
    /// `b`, a buffer of the larger (x86_64) layout.
    pub fn from_bytes(arch: Arch, b: &[u8; 24]) -> SigAltStack {
        match arch {
            Arch::X86_64 => SigAltStack {
                sp: u64_at(b, 0),
                flags: u32_at(b, 8),
                size: u64_at(b, 16),
            },
            Arch::I386 => SigAltStack {
                sp: u64::from(u32_at(b, 0)),
                flags: u32_at(b, 4),
                size: u64::from(u32_at(b, 8)),
            },
        }
    }
}

/// A queued signal as an image stores it: number, code and the full `siginfo_t` (128 bytes, as
/// `PTRACE_PEEKSIGINFO` returns it).
///
/// The three fields are stored as they are and never derived from each other: a reader takes
/// `signo` and `code` from their fields and queues `raw` unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigInfo {
    /// Signal number.
    pub signo: u32,
    /// `si_code`.
    pub code: i32,
    /// The raw 128-byte `siginfo_t` in the 64-bit layout a tracer gets.
    pub raw: Vec<u8>,
}

/// The 128-byte `siginfo_t` as the kernel hands it to a 64-bit tracer (`PTRACE_GETSIGINFO`,
/// `PTRACE_PEEKSIGINFO`; also for i386 tracees, whose siginfo the kernel converts) and takes it
/// back. See [`crate::siginfo`] for the layout of its union.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KernelSigInfo(pub [u8; 128]);

impl KernelSigInfo {
    fn int_at(&self, off: usize) -> i32 {
        u32_at(&self.0, off) as i32
    }

    /// `si_signo`.
    pub fn signo(&self) -> i32 {
        self.int_at(0)
    }

    /// `si_errno`.
    pub fn errno(&self) -> i32 {
        self.int_at(4)
    }

    /// `si_code`: > 0 for signals the kernel generated, <= 0 for ones sent by a process.
    pub fn code(&self) -> i32 {
        self.int_at(8)
    }
}

impl fmt::Debug for KernelSigInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelSigInfo")
            .field("signo", &self.signo())
            .field("errno", &self.errno())
            .field("code", &self.code())
            .finish_non_exhaustive()
    }
}

/// The stored form of a signal read from the kernel: number and code from the siginfo, all 128
/// bytes kept.
impl From<&KernelSigInfo> for SigInfo {
    fn from(k: &KernelSigInfo) -> SigInfo {
        SigInfo {
            signo: k.signo() as u32,
            code: k.code(),
            raw: k.0.to_vec(),
        }
    }
}

/// The siginfo to queue for a stored signal: `raw` alone, cut or zero-padded to 128 bytes
/// (`signo` and `code` are in it already).
impl From<&SigInfo> for KernelSigInfo {
    fn from(s: &SigInfo) -> KernelSigInfo {
        let mut b = [0u8; 128];
        let n = s.raw.len().min(128);
        b[..n].copy_from_slice(&s.raw[..n]);
        KernelSigInfo(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigaction_bytes_of_both_modes() {
        let a = SigAction {
            handler: 0x1111,
            flags: 0x0400_0004,
            restorer: 0x2222,
            mask: 1 << 40 | 1,
        };
        for arch in [Arch::X86_64, Arch::I386] {
            let b = a.to_bytes(arch);
            assert_eq!(b.len(), SigAction::kernel_len(arch));
            let mut buf = [0u8; 32];
            buf[..b.len()].copy_from_slice(&b);
            assert_eq!(SigAction::from_bytes(arch, &buf), a, "{arch:?}");
        }
        assert_eq!(SigAction::kernel_len(Arch::I386), 20);
        // i386 truncates the longs, keeps the 64-bit mask.
        let wide = SigAction {
            handler: 0x1_0000_1111,
            ..a
        };
        let mut buf = [0u8; 32];
        buf[..20].copy_from_slice(&wide.to_bytes(Arch::I386));
        assert_eq!(SigAction::from_bytes(Arch::I386, &buf), a);
    }

    #[test]
    fn sigaltstack_bytes_of_both_modes() {
        let s = SigAltStack {
            sp: 0x7000_0000,
            flags: 1 << 31, // SS_AUTODISARM
            size: 0x4000,
        };
        for arch in [Arch::X86_64, Arch::I386] {
            let b = s.to_bytes(arch);
            assert_eq!(b.len(), SigAltStack::kernel_len(arch));
            let mut buf = [0u8; 24];
            buf[..b.len()].copy_from_slice(&b);
            assert_eq!(SigAltStack::from_bytes(arch, &buf), s, "{arch:?}");
        }
        // x86_64: flags at 8, 4 bytes of padding, size at 16.
        let b = s.to_bytes(Arch::X86_64);
        assert_eq!(&b[12..16], &[0; 4]);
        assert_eq!(u64_at(&b, 16), 0x4000);
    }

    #[test]
    fn siginfo_forms_convert_without_deriving_fields() {
        let mut raw = [0u8; 128];
        raw[0..4].copy_from_slice(&34i32.to_ne_bytes());
        raw[8..12].copy_from_slice(&(-1i32).to_ne_bytes());
        raw[16] = 77;
        let k = KernelSigInfo(raw);
        let s = SigInfo::from(&k);
        assert_eq!((s.signo, s.code, s.raw.as_slice()), (34, -1, &raw[..]));
        assert_eq!(KernelSigInfo::from(&s), k);
        // Only `raw` is queued: a stored code that disagrees with it is not written into it.
        let odd = SigInfo {
            signo: 34,
            code: 5,
            raw: raw[..20].to_vec(),
        };
        let back = KernelSigInfo::from(&odd);
        assert_eq!(back.code(), -1);
        assert_eq!(&back.0[..20], &raw[..20]);
        assert!(back.0[20..].iter().all(|&b| b == 0));
    }
}
