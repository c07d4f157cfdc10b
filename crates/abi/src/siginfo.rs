//! `siginfo_t` in the two modes: the 64-bit layout ptrace gives us, and the compat layout an
//! i386 task passes to `rt_tgsigqueueinfo` through `int 0x80`.
//!
//! The union after `si_signo, si_errno, si_code` starts at byte 16 in the 64-bit layout (it holds
//! pointers) and at byte 12 in the compat one, and its pointer-sized and `long` members shrink
//! to 4 bytes. Which member is live follows from the signal and `si_code`, by the rules of the
//! kernel's `siginfo_layout()` (kernel/signal.c), reproduced in [`layout`]. Pure byte work on
//! [`KernelSigInfo`]: the tracer side (ptrace) and the queueing side (restore) share it.

use crate::signal::KernelSigInfo;

/// Which union member of a `siginfo_t` is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `_kill`: pid, uid.
    Kill,
    /// `_timer`: tid, overrun, sigval.
    Timer,
    /// `_sigpoll`: band (long), fd.
    Poll,
    /// `_sigfault`: addr, addr_lsb; plus bnd (SEGV_BNDERR), pkey (SEGV_PKUERR) or perf
    /// (TRAP_PERF) in the inner union.
    Fault,
    /// `_sigchld`: pid, uid, status, utime, stime.
    Chld,
    /// `_rt`: pid, uid, sigval.
    Rt,
    /// `_sigsys`: call_addr, syscall, arch.
    Sys,
}

const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
const SI_TIMER: i32 = -2;
const SI_SIGIO: i32 = -5;
const NSIGPOLL: i32 = 6;

/// The live union member, as the kernel's `siginfo_layout()` decides it.
pub fn layout(sig: i32, code: i32) -> Layout {
    if code > SI_USER && code < SI_KERNEL {
        let specific = match sig {
            libc::SIGILL => Some((11, Layout::Fault)),
            libc::SIGFPE => Some((15, Layout::Fault)),
            libc::SIGSEGV => Some((10, Layout::Fault)),
            libc::SIGBUS => Some((5, Layout::Fault)),
            libc::SIGTRAP => Some((6, Layout::Fault)),
            libc::SIGCHLD => Some((6, Layout::Chld)),
            libc::SIGPOLL => Some((6, Layout::Poll)),
            libc::SIGSYS => Some((2, Layout::Sys)),
            _ => None,
        };
        match specific {
            Some((limit, l)) if code <= limit => l,
            _ if code <= NSIGPOLL => Layout::Poll,
            _ => Layout::Kill,
        }
    } else if code == SI_TIMER {
        Layout::Timer
    } else if code == SI_SIGIO {
        Layout::Poll
    } else if code < 0 {
        Layout::Rt
    } else {
        Layout::Kill
    }
}

fn get<const N: usize>(b: &[u8; 128], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[off..off + N]);
    a
}

/// Converts a 64-bit `siginfo_t` to the compat (i386) layout, for `rt_tgsigqueueinfo` issued by
/// an i386 task. Pointers and longs are truncated to their low 32 bits, as the kernel does in
/// `copy_siginfo_to_external32()`.
pub fn to_compat(info: &KernelSigInfo) -> KernelSigInfo {
    let s = &info.0;
    let mut d = [0u8; 128];
    d[..12].copy_from_slice(&s[..12]);
    let mut put = |off: usize, bytes: &[u8]| d[off..off + bytes.len()].copy_from_slice(bytes);
    // 64-bit union at 16, compat union at 12. `w32(o)` = low 4 bytes of the 8-byte word at o.
    let w32 = |o: usize| get::<4>(s, o);
    let i32_ = |o: usize| get::<4>(s, o);
    match layout(info.signo(), info.code()) {
        Layout::Kill => {
            put(12, &i32_(16)); // pid
            put(16, &i32_(20)); // uid
        }
        Layout::Rt => {
            put(12, &i32_(16)); // pid
            put(16, &i32_(20)); // uid
            put(20, &w32(24)); // sigval
        }
        Layout::Timer => {
            put(12, &i32_(16)); // tid
            put(16, &i32_(20)); // overrun
            put(20, &w32(24)); // sigval
        }
        Layout::Chld => {
            put(12, &i32_(16)); // pid
            put(16, &i32_(20)); // uid
            put(20, &i32_(24)); // status
            put(24, &w32(32)); // utime (clock_t)
            put(28, &w32(40)); // stime
        }
        Layout::Poll => {
            put(12, &w32(16)); // band (long)
            put(16, &i32_(24)); // fd
        }
        Layout::Sys => {
            put(12, &w32(16)); // call_addr
            put(16, &i32_(24)); // syscall
            put(20, &i32_(28)); // arch
        }
        Layout::Fault => {
            put(12, &w32(16)); // addr
            put(16, &get::<2>(s, 24)); // addr_lsb
            let (sig, code) = (info.signo(), info.code());
            if sig == libc::SIGSEGV && code == 3 {
                // SEGV_BNDERR: lower, upper.
                put(20, &w32(32));
                put(24, &w32(40));
            } else if sig == libc::SIGSEGV && code == 4 {
                // SEGV_PKUERR: pkey.
                put(20, &i32_(32));
            } else if sig == libc::SIGTRAP && code == 6 {
                // TRAP_PERF: data (long), type, flags.
                put(20, &w32(32));
                put(24, &i32_(40));
                put(28, &i32_(44));
            }
        }
    }
    KernelSigInfo(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sig: i32, code: i32, words: &[(usize, u64)]) -> KernelSigInfo {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&sig.to_ne_bytes());
        b[8..12].copy_from_slice(&code.to_ne_bytes());
        for &(o, v) in words {
            b[o..o + 8].copy_from_slice(&v.to_ne_bytes());
        }
        KernelSigInfo(b)
    }

    fn u32_at(s: &KernelSigInfo, o: usize) -> u32 {
        u32::from_ne_bytes(get::<4>(&s.0, o))
    }

    #[test]
    fn layouts_follow_the_kernel() {
        assert_eq!(layout(libc::SIGUSR1, 0), Layout::Kill);
        assert_eq!(layout(libc::SIGUSR1, -6), Layout::Rt); // SI_TKILL
        assert_eq!(layout(34, -1), Layout::Rt); // SI_QUEUE
        assert_eq!(layout(libc::SIGALRM, SI_TIMER), Layout::Timer);
        assert_eq!(layout(libc::SIGCHLD, 1), Layout::Chld);
        assert_eq!(layout(libc::SIGSEGV, 1), Layout::Fault);
        assert_eq!(layout(libc::SIGSYS, 1), Layout::Sys);
        assert_eq!(layout(libc::SIGIO, SI_SIGIO), Layout::Poll);
        assert_eq!(layout(libc::SIGUSR1, 3), Layout::Poll); // kernel quirk: small codes
        assert_eq!(layout(libc::SIGKILL, SI_KERNEL), Layout::Kill);
    }

    #[test]
    fn rt_and_chld_move_to_compat_offsets() {
        // SI_QUEUE: pid 77, uid 1000, sigval 0x1234.
        let rt = info(34, -1, &[(16, 77 | (1000 << 32)), (24, 0x1234)]);
        let c = to_compat(&rt);
        assert_eq!(&c.0[..12], &rt.0[..12]);
        assert_eq!(
            (u32_at(&c, 12), u32_at(&c, 16), u32_at(&c, 20)),
            (77, 1000, 0x1234)
        );
        // CLD_EXITED: pid 5, uid 0, status 7, utime 11, stime 12.
        let ch = info(libc::SIGCHLD, 1, &[(16, 5), (24, 7), (32, 11), (40, 12)]);
        let c = to_compat(&ch);
        assert_eq!(
            (
                u32_at(&c, 12),
                u32_at(&c, 16),
                u32_at(&c, 20),
                u32_at(&c, 24),
                u32_at(&c, 28)
            ),
            (5, 0, 7, 11, 12)
        );
        // SIGSEGV: addr low 32 bits.
        let f = info(libc::SIGSEGV, 1, &[(16, 0xdead_b000)]);
        assert_eq!(u32_at(&to_compat(&f), 12), 0xdead_b000);
    }
}
