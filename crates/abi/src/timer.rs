//! Interval timers (`setitimer`) and POSIX timers (`timer_create`).
//!
//! [`ITimer`] and [`PosixTimer`] are the timers as an image stores them, in whole micro- and
//! nanoseconds. [`ITimerVal`] and [`ITimerSpec`] are the structs `getitimer`/`setitimer` and
//! `timer_gettime`/`timer_settime` exchange, widened, with their byte layout in each mode.

use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::bytes::{u32_at, u64_at};

/// An interval timer (`ITIMER_REAL`, `ITIMER_VIRTUAL` or `ITIMER_PROF` of a process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ITimer {
    /// Remaining time until the next expiry, microseconds (0 = disarmed).
    pub value_us: u64,
    /// Reload interval, microseconds.
    pub interval_us: u64,
}

/// A POSIX timer of a process, with its notification and current setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PosixTimer {
    /// Timer id.
    pub id: u32,
    /// Clock id.
    pub clock: u32,
    /// Notification (`SIGEV_*`).
    pub notify: u32,
    /// Signal number.
    pub signo: u32,
    /// `sigev_value`.
    pub sigev_value: u64,
    /// Thread to notify for `SIGEV_THREAD_ID`.
    pub notify_tid: u32,
    /// Remaining time, nanoseconds.
    pub value_ns: u64,
    /// Interval, nanoseconds.
    pub interval_ns: u64,
    /// Overrun count.
    pub overrun: u32,
}

/// A `struct itimerval` (`getitimer`/`setitimer`), widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ITimerVal {
    /// `it_interval.tv_sec`.
    pub interval_sec: i64,
    /// `it_interval.tv_usec`.
    pub interval_usec: i64,
    /// `it_value.tv_sec` (time left).
    pub value_sec: i64,
    /// `it_value.tv_usec`.
    pub value_usec: i64,
}

/// A `struct itimerspec` (POSIX timers), widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ITimerSpec {
    /// `it_interval.tv_sec`.
    pub interval_sec: i64,
    /// `it_interval.tv_nsec`.
    pub interval_nsec: i64,
    /// `it_value.tv_sec` (time left; absolute with TIMER_ABSTIME on set).
    pub value_sec: i64,
    /// `it_value.tv_nsec`.
    pub value_nsec: i64,
}

/// Bytes of four `long`s in `arch`: the size of `itimerval` and of `itimerspec`.
pub fn kernel_len(arch: Arch) -> usize {
    4 * arch.word_size()
}

/// Encodes four time fields as the mode's `long` (x86_64 8 bytes, i386 4 bytes each).
fn encode_longs(arch: Arch, f: &[i64; 4]) -> Vec<u8> {
    match arch {
        Arch::X86_64 => f.iter().flat_map(|v| v.to_ne_bytes()).collect(),
        Arch::I386 => f.iter().flat_map(|&v| (v as i32).to_ne_bytes()).collect(),
    }
}

/// Decodes four `long`s of the mode, sign-extended.
fn decode_longs(arch: Arch, b: &[u8; 32]) -> [i64; 4] {
    let mut f = [0i64; 4];
    for (i, v) in f.iter_mut().enumerate() {
        *v = match arch {
            Arch::X86_64 => u64_at(b, 8 * i) as i64,
            Arch::I386 => i64::from(u32_at(b, 4 * i) as i32),
        };
    }
    f
}

impl ITimerVal {
    /// The struct as `setitimer` in `arch` reads it; [`kernel_len`] bytes.
    pub fn to_bytes(&self, arch: Arch) -> Vec<u8> {
        let f = [
            self.interval_sec,
            self.interval_usec,
            self.value_sec,
            self.value_usec,
        ];
        encode_longs(arch, &f)
    }

    /// Decodes what `getitimer` in `arch` wrote: the first [`kernel_len`] bytes of `b`.
    pub fn from_bytes(arch: Arch, b: &[u8; 32]) -> ITimerVal {
        let [interval_sec, interval_usec, value_sec, value_usec] = decode_longs(arch, b);
        ITimerVal {
            interval_sec,
            interval_usec,
            value_sec,
            value_usec,
        }
    }
}

impl ITimerSpec {
    /// The struct as `timer_settime` in `arch` reads it; [`kernel_len`] bytes.
    pub fn to_bytes(&self, arch: Arch) -> Vec<u8> {
        let f = [
            self.interval_sec,
            self.interval_nsec,
            self.value_sec,
            self.value_nsec,
        ];
        encode_longs(arch, &f)
    }

    /// Decodes what `timer_gettime` in `arch` wrote: the first [`kernel_len`] bytes of `b`.
    pub fn from_bytes(arch: Arch, b: &[u8; 32]) -> ITimerSpec {
        let [interval_sec, interval_nsec, value_sec, value_nsec] = decode_longs(arch, b);
        ITimerSpec {
            interval_sec,
            interval_nsec,
            value_sec,
            value_nsec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_structs_of_both_modes() {
        let v = ITimerVal {
            interval_sec: 1,
            interval_usec: 500_000,
            value_sec: 3,
            value_usec: 7,
        };
        let s = ITimerSpec {
            interval_sec: 0,
            interval_nsec: 999_999_999,
            value_sec: 2,
            value_nsec: 1,
        };
        for arch in [Arch::X86_64, Arch::I386] {
            let mut buf = [0u8; 32];
            let b = v.to_bytes(arch);
            assert_eq!(b.len(), kernel_len(arch));
            buf[..b.len()].copy_from_slice(&b);
            assert_eq!(ITimerVal::from_bytes(arch, &buf), v, "{arch:?}");
            let b = s.to_bytes(arch);
            buf = [0u8; 32];
            buf[..b.len()].copy_from_slice(&b);
            assert_eq!(ITimerSpec::from_bytes(arch, &buf), s, "{arch:?}");
        }
        // i386 longs are sign-extended.
        let mut buf = [0u8; 32];
        buf[..4].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(ITimerVal::from_bytes(Arch::I386, &buf).interval_sec, -1);
    }
}
