//! Rust mirror of `kmod/include/uapi/psnc_checkpoint.h`, the ABI of `/dev/checkpoint`.
//!
//! The one copy of the ABI on the Rust side; [`super::KmodDevice`] makes the `ioctl` calls. This
//! file has no `unsafe` code: every struct derives `bytemuck::Pod`, whose derive refuses at
//! compile time a struct that is not `#[repr(C)]`, holds a field that is not plain data, or has
//! a padding byte; that is what lets the ioctl wrapper hand the kernel a struct as its bytes.
//!
//! Every command takes one struct that opens with a [`CpHeader`]; the module reads the header
//! only and overwrites everything after it:
//!
//! ```text
//!  offset  size  field                          (all little-endian, same for i386 and x86_64)
//!  ------  ----  -----------------------------
//!       0     4  version   = HEADER_V1
//!       4     4  size      = size of the whole struct
//!       8     4  tid       (i32; 0 for GET_VERSION)
//!      12     4  flags     = 0
//!      16     8  reserved  = 0
//!      24     .  command data, written by the module
//! ```
//!
//! The `tests` module pins every size, offset, ioctl number and constant, and compares the
//! whole table with what the C header gives (`kmod/tests/layout.c`, built with `cc` for x86_64
//! and, when `cc -m32` works, for i386). Never edit a struct here without the header: a struct
//! never changes, a new layout gets a new command number and feature bit.

use std::mem::size_of;

use bytemuck::{Pod, Zeroable};

/// Path of the device node.
pub const DEVICE: &str = "/dev/checkpoint";
/// ABI version a module must report for this mirror to apply.
pub const ABI_VERSION: u32 = 1;
/// [`CpHeader::version`] of every struct of this ABI.
pub const HEADER_V1: u32 = 1;

/// Feature bit: `GET_SIGACTIONS` is served.
pub const FEAT_SIGACTIONS: u64 = 1 << 0;
/// Feature bit: `GET_SIGALTSTACK` is served.
pub const FEAT_SIGALTSTACK: u64 = 1 << 1;
/// Feature bit: `GET_ITIMERS` is served.
pub const FEAT_ITIMERS: u64 = 1 << 2;
/// Feature bit: `GET_TASK_MISC` is served.
pub const FEAT_TASK_MISC: u64 = 1 << 3;
/// Feature bit: `GET_TASK_MISC` fills the `restart_*` fields.
pub const FEAT_RESTART_SLEEP: u64 = 1 << 4;
/// Feature bit: `GET_TASK_MISC2` is served (module 0.2.0).
pub const FEAT_TASK_MISC2: u64 = 1 << 5;
/// Feature bit: `GET_POSIX_TIMERS` is served (module 0.3.0).
pub const FEAT_POSIX_TIMERS: u64 = 1 << 6;

/// [`CpPosixTimer::flags`]: `value_ns` is what `timer_gettime` would report now.
pub const PTIMER_VALUE_KNOWN: u32 = 1 << 0;
/// [`CpPosixTimers::flags`]: the process has more timers than [`MAX_POSIX_TIMERS`].
pub const PTIMERS_MORE: u32 = 1 << 0;
/// Capacity of [`CpPosixTimers::timer`].
pub const MAX_POSIX_TIMERS: usize = 32;

/// Number of handlers in [`CpSigActions::act`] (signals 1..=64).
pub const NSIG: usize = 64;

/// Index of `ITIMER_REAL` in [`CpITimers::timer`].
pub const ITIMER_REAL: usize = 0;
/// Index of `ITIMER_VIRTUAL` in [`CpITimers::timer`].
pub const ITIMER_VIRTUAL: usize = 1;
/// Index of `ITIMER_PROF` in [`CpITimers::timer`].
pub const ITIMER_PROF: usize = 2;

/// [`CpTaskMisc::restart_kind`]: the thread is not stopped in an `ERESTART_RESTARTBLOCK` call.
pub const RESTART_NONE: u32 = 0;
/// A relative `nanosleep`/`clock_nanosleep` on an hrtimer clock; `restart_clockid` and
/// `restart_remaining_ns` are valid.
pub const RESTART_NANOSLEEP: u32 = 1;
/// `clock_nanosleep` on a CPU-time clock.
pub const RESTART_CPU_NANOSLEEP: u32 = 2;
/// `futex(FUTEX_WAIT)` with a timeout.
pub const RESTART_FUTEX_WAIT: u32 = 3;
/// `poll`/`ppoll`.
pub const RESTART_POLL: u32 = 4;
/// Another restart function.
pub const RESTART_OTHER: u32 = 15;

/// The ioctl type byte.
pub const IOC_MAGIC: u32 = 0xC5;

/// `_IOWR(type, nr, size)` of `asm-generic/ioctl.h` (x86 uses the generic encoding).
const fn iowr(nr: u32, size: usize) -> u32 {
    const IOC_WRITE: u32 = 1;
    const IOC_READ: u32 = 2;
    ((IOC_READ | IOC_WRITE) << 30) | ((size as u32) << 16) | (IOC_MAGIC << 8) | nr
}

/// Request number of `PSNC_CP_GET_VERSION`.
pub const GET_VERSION: u32 = <CpVersion as CpArg>::REQUEST;
/// Request number of `PSNC_CP_GET_SIGACTIONS`.
pub const GET_SIGACTIONS: u32 = <CpSigActions as CpArg>::REQUEST;
/// Request number of `PSNC_CP_GET_SIGALTSTACK`.
pub const GET_SIGALTSTACK: u32 = <CpSigAltStack as CpArg>::REQUEST;
/// Request number of `PSNC_CP_GET_ITIMERS`.
pub const GET_ITIMERS: u32 = <CpITimers as CpArg>::REQUEST;
/// Request number of `PSNC_CP_GET_TASK_MISC`.
pub const GET_TASK_MISC: u32 = <CpTaskMisc as CpArg>::REQUEST;
/// Request number of `PSNC_CP_GET_TASK_MISC2`.
pub const GET_TASK_MISC2: u32 = <CpTaskMisc2 as CpArg>::REQUEST;
/// Request number of `PSNC_CP_GET_POSIX_TIMERS`.
pub const GET_POSIX_TIMERS: u32 = <CpPosixTimers as CpArg>::REQUEST;

/// `struct psnc_cp_header`: opens every argument struct; the caller fills it in.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpHeader {
    /// [`HEADER_V1`].
    pub version: u32,
    /// Size of the whole argument struct.
    pub size: u32,
    /// Target thread in the caller's PID namespace; 0 for `GET_VERSION`.
    pub tid: i32,
    /// Must be 0.
    pub flags: u32,
    /// Must be 0.
    pub reserved: u64,
}

/// `struct psnc_cp_version`: `GET_VERSION`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpVersion {
    /// Header, `tid` 0.
    pub hdr: CpHeader,
    /// The module's [`ABI_VERSION`].
    pub abi_version: u32,
    /// 0.
    pub pad: u32,
    /// `FEAT_*` bits.
    pub features: u64,
    /// NUL-terminated module version.
    pub module_version: [u8; 32],
    /// 0.
    pub reserved: [u64; 1],
}

impl CpVersion {
    /// The module version as text, up to its first NUL.
    pub fn module_version(&self) -> String {
        let end = self
            .module_version
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.module_version.len());
        String::from_utf8_lossy(&self.module_version[..end]).into_owned()
    }
}

/// `struct psnc_cp_sigaction`: one handler, as `rt_sigaction(2)` reports it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpSigAction {
    /// `sa_handler` (0 = `SIG_DFL`, 1 = `SIG_IGN`).
    pub handler: u64,
    /// `sa_flags` with kernel-internal bits cleared.
    pub flags: u64,
    /// `sa_restorer`.
    pub restorer: u64,
    /// `sa_mask`, bit n-1 for signal n.
    pub mask: u64,
}

/// `struct psnc_cp_sigactions`: `GET_SIGACTIONS`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct CpSigActions {
    /// Header.
    pub hdr: CpHeader,
    /// Valid entries in `act` ([`NSIG`]).
    pub nr: u32,
    /// 0.
    pub pad: u32,
    /// `act[n - 1]` is the handler of signal n.
    pub act: [CpSigAction; NSIG],
}

impl Default for CpSigActions {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// `struct psnc_cp_sigaltstack`: `GET_SIGALTSTACK`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpSigAltStack {
    /// Header.
    pub hdr: CpHeader,
    /// `ss_sp`.
    pub sp: u64,
    /// `ss_size`.
    pub size: u64,
    /// `ss_flags` as `sigaltstack(2)` would report them in the thread now.
    pub flags: u32,
    /// 0.
    pub pad: u32,
}

/// `struct psnc_cp_itimer`: one interval timer in nanoseconds (getitimer truncates to µs).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpITimer {
    /// Time to the next expiry; 0 = disarmed.
    pub value_ns: u64,
    /// Reload value.
    pub interval_ns: u64,
}

/// `struct psnc_cp_itimers`: `GET_ITIMERS`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpITimers {
    /// Header.
    pub hdr: CpHeader,
    /// Indexed by [`ITIMER_REAL`], [`ITIMER_VIRTUAL`], [`ITIMER_PROF`].
    pub timer: [CpITimer; 3],
}

/// `struct psnc_cp_task_misc`: `GET_TASK_MISC`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpTaskMisc {
    /// Header.
    pub hdr: CpHeader,
    /// `set_tid_address(2)` value.
    pub clear_child_tid: u64,
    /// Program break (`brk(0)`).
    pub brk: u64,
    /// `PR_GET_PDEATHSIG`.
    pub pdeathsig: u32,
    /// `PR_GET_CHILD_SUBREAPER` (0 or 1).
    pub child_subreaper: u32,
    /// `PR_GET_DUMPABLE`.
    pub dumpable: u32,
    /// `RESTART_*`.
    pub restart_kind: u32,
    /// Clock of an interrupted nanosleep, else -1.
    pub restart_clockid: i32,
    /// 0.
    pub pad: u32,
    /// Time left of an interrupted nanosleep, else 0.
    pub restart_remaining_ns: u64,
    /// 0.
    pub reserved: [u64; 1],
}

/// `struct psnc_cp_task_misc2`: `GET_TASK_MISC2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpTaskMisc2 {
    /// Header.
    pub hdr: CpHeader,
    /// `PR_GET_SECUREBITS`.
    pub securebits: u32,
    /// 0.
    pub pad: u32,
    /// The compat (i386) robust-futex list head; 0 if none.
    pub compat_robust_list: u64,
    /// Its length as the compat `get_robust_list` reports it (12).
    pub compat_robust_list_len: u64,
    /// 0.
    pub reserved: [u64; 2],
}

/// `struct psnc_cp_posix_timer`: one POSIX timer of the process.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
pub struct CpPosixTimer {
    /// Timer ID.
    pub id: i32,
    /// The clock it runs on, in the kernel's encoding (as `/proc/PID/timers` shows it).
    pub clockid: i32,
    /// `sigev_notify`, `SIGEV_THREAD_ID` included.
    pub sigev_notify: i32,
    /// `sigev_signo`.
    pub signo: u32,
    /// [`PTIMER_VALUE_KNOWN`].
    pub flags: u32,
    /// 0.
    pub pad: u32,
    /// The kernel's `it_overrun` of the expiry in progress.
    pub overrun: i64,
    /// Time to the next expiry as `timer_gettime` reports it; 0 = disarmed or unknown.
    pub value_ns: u64,
    /// Reload value.
    pub interval_ns: u64,
}

/// `struct psnc_cp_posix_timers`: `GET_POSIX_TIMERS`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct CpPosixTimers {
    /// Header.
    pub hdr: CpHeader,
    /// Valid entries in `timer`.
    pub nr: u32,
    /// [`PTIMERS_MORE`].
    pub flags: u32,
    /// The timers of the process, in no order.
    pub timer: [CpPosixTimer; MAX_POSIX_TIMERS],
}

impl Default for CpPosixTimers {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// An argument struct of one `/dev/checkpoint` command.
///
/// `Pod` (derived, so checked by the compiler) makes it padding-free plain data that any bytes
/// the kernel writes leave valid; [`CpArg::REQUEST`] is computed from `size_of::<Self>()`, so the
/// request never claims a size other than the struct's. An impl names the command number and
/// the header: the ioctl wrapper needs nothing else to hand the kernel `&mut Self` as a byte
/// buffer of the size the request encodes.
pub trait CpArg: Pod {
    /// The command number (`_IOC_NR`).
    const NR: u32;

    /// The ioctl request number: `_IOWR(IOC_MAGIC, NR, sizeof(Self))`.
    const REQUEST: u32 = iowr(Self::NR, size_of::<Self>());

    /// The header to fill in before the call.
    fn header_mut(&mut self) -> &mut CpHeader;

    /// A zeroed struct with its header filled in for thread `tid` (0 for `GET_VERSION`).
    fn for_tid(tid: i32) -> Self {
        let mut arg = Self::zeroed();
        *arg.header_mut() = CpHeader {
            version: HEADER_V1,
            size: size_of::<Self>() as u32,
            tid,
            flags: 0,
            reserved: 0,
        };
        arg
    }
}

impl CpArg for CpVersion {
    const NR: u32 = 0x00;
    fn header_mut(&mut self) -> &mut CpHeader {
        &mut self.hdr
    }
}

impl CpArg for CpSigActions {
    const NR: u32 = 0x01;
    fn header_mut(&mut self) -> &mut CpHeader {
        &mut self.hdr
    }
}

impl CpArg for CpSigAltStack {
    const NR: u32 = 0x02;
    fn header_mut(&mut self) -> &mut CpHeader {
        &mut self.hdr
    }
}

impl CpArg for CpITimers {
    const NR: u32 = 0x03;
    fn header_mut(&mut self) -> &mut CpHeader {
        &mut self.hdr
    }
}

impl CpArg for CpTaskMisc {
    const NR: u32 = 0x04;
    fn header_mut(&mut self) -> &mut CpHeader {
        &mut self.hdr
    }
}

impl CpArg for CpTaskMisc2 {
    const NR: u32 = 0x05;
    fn header_mut(&mut self) -> &mut CpHeader {
        &mut self.hdr
    }
}

impl CpArg for CpPosixTimers {
    const NR: u32 = 0x06;
    fn header_mut(&mut self) -> &mut CpHeader {
        &mut self.hdr
    }
}

/// The layout table in the format of `kmod/tests/layout.c`, one item per line.
pub fn layout_table() -> String {
    use std::fmt::Write as _;
    use std::mem::offset_of;

    /// Size of a field, named through an accessor so no value is needed.
    fn field_size<S, F>(_: fn(&S) -> &F) -> usize {
        size_of::<F>()
    }

    let mut t = String::new();
    macro_rules! s {
        ($c:literal, $t:ty) => {
            let _ = writeln!(t, "size {} {}", $c, size_of::<$t>());
        };
    }
    macro_rules! f {
        ($c:literal, $t:ty, $f:ident) => {
            let _ = writeln!(
                t,
                "field {}.{} {} {}",
                $c,
                stringify!($f),
                offset_of!($t, $f),
                field_size(|s: &$t| &s.$f)
            );
        };
    }
    macro_rules! i {
        ($c:literal, $v:expr) => {
            let _ = writeln!(t, "ioctl {} 0x{:08x}", $c, $v);
        };
    }
    macro_rules! c {
        ($c:literal, $v:expr) => {
            let _ = writeln!(t, "const {} {}", $c, $v as u64);
        };
    }

    s!("psnc_cp_header", CpHeader);
    f!("psnc_cp_header", CpHeader, version);
    f!("psnc_cp_header", CpHeader, size);
    f!("psnc_cp_header", CpHeader, tid);
    f!("psnc_cp_header", CpHeader, flags);
    f!("psnc_cp_header", CpHeader, reserved);

    s!("psnc_cp_version", CpVersion);
    f!("psnc_cp_version", CpVersion, hdr);
    f!("psnc_cp_version", CpVersion, abi_version);
    f!("psnc_cp_version", CpVersion, pad);
    f!("psnc_cp_version", CpVersion, features);
    f!("psnc_cp_version", CpVersion, module_version);
    f!("psnc_cp_version", CpVersion, reserved);

    s!("psnc_cp_sigaction", CpSigAction);
    f!("psnc_cp_sigaction", CpSigAction, handler);
    f!("psnc_cp_sigaction", CpSigAction, flags);
    f!("psnc_cp_sigaction", CpSigAction, restorer);
    f!("psnc_cp_sigaction", CpSigAction, mask);

    s!("psnc_cp_sigactions", CpSigActions);
    f!("psnc_cp_sigactions", CpSigActions, hdr);
    f!("psnc_cp_sigactions", CpSigActions, nr);
    f!("psnc_cp_sigactions", CpSigActions, pad);
    f!("psnc_cp_sigactions", CpSigActions, act);

    s!("psnc_cp_sigaltstack", CpSigAltStack);
    f!("psnc_cp_sigaltstack", CpSigAltStack, hdr);
    f!("psnc_cp_sigaltstack", CpSigAltStack, sp);
    f!("psnc_cp_sigaltstack", CpSigAltStack, size);
    f!("psnc_cp_sigaltstack", CpSigAltStack, flags);
    f!("psnc_cp_sigaltstack", CpSigAltStack, pad);

    s!("psnc_cp_itimer", CpITimer);
    f!("psnc_cp_itimer", CpITimer, value_ns);
    f!("psnc_cp_itimer", CpITimer, interval_ns);

    s!("psnc_cp_itimers", CpITimers);
    f!("psnc_cp_itimers", CpITimers, hdr);
    f!("psnc_cp_itimers", CpITimers, timer);

    s!("psnc_cp_task_misc", CpTaskMisc);
    f!("psnc_cp_task_misc", CpTaskMisc, hdr);
    f!("psnc_cp_task_misc", CpTaskMisc, clear_child_tid);
    f!("psnc_cp_task_misc", CpTaskMisc, brk);
    f!("psnc_cp_task_misc", CpTaskMisc, pdeathsig);
    f!("psnc_cp_task_misc", CpTaskMisc, child_subreaper);
    f!("psnc_cp_task_misc", CpTaskMisc, dumpable);
    f!("psnc_cp_task_misc", CpTaskMisc, restart_kind);
    f!("psnc_cp_task_misc", CpTaskMisc, restart_clockid);
    f!("psnc_cp_task_misc", CpTaskMisc, pad);
    f!("psnc_cp_task_misc", CpTaskMisc, restart_remaining_ns);
    f!("psnc_cp_task_misc", CpTaskMisc, reserved);

    s!("psnc_cp_task_misc2", CpTaskMisc2);
    f!("psnc_cp_task_misc2", CpTaskMisc2, hdr);
    f!("psnc_cp_task_misc2", CpTaskMisc2, securebits);
    f!("psnc_cp_task_misc2", CpTaskMisc2, pad);
    f!("psnc_cp_task_misc2", CpTaskMisc2, compat_robust_list);
    f!("psnc_cp_task_misc2", CpTaskMisc2, compat_robust_list_len);
    f!("psnc_cp_task_misc2", CpTaskMisc2, reserved);

    s!("psnc_cp_posix_timer", CpPosixTimer);
    f!("psnc_cp_posix_timer", CpPosixTimer, id);
    f!("psnc_cp_posix_timer", CpPosixTimer, clockid);
    f!("psnc_cp_posix_timer", CpPosixTimer, sigev_notify);
    f!("psnc_cp_posix_timer", CpPosixTimer, signo);
    f!("psnc_cp_posix_timer", CpPosixTimer, flags);
    f!("psnc_cp_posix_timer", CpPosixTimer, pad);
    f!("psnc_cp_posix_timer", CpPosixTimer, overrun);
    f!("psnc_cp_posix_timer", CpPosixTimer, value_ns);
    f!("psnc_cp_posix_timer", CpPosixTimer, interval_ns);

    s!("psnc_cp_posix_timers", CpPosixTimers);
    f!("psnc_cp_posix_timers", CpPosixTimers, hdr);
    f!("psnc_cp_posix_timers", CpPosixTimers, nr);
    f!("psnc_cp_posix_timers", CpPosixTimers, flags);
    f!("psnc_cp_posix_timers", CpPosixTimers, timer);

    i!("PSNC_CP_GET_VERSION", GET_VERSION);
    i!("PSNC_CP_GET_SIGACTIONS", GET_SIGACTIONS);
    i!("PSNC_CP_GET_SIGALTSTACK", GET_SIGALTSTACK);
    i!("PSNC_CP_GET_ITIMERS", GET_ITIMERS);
    i!("PSNC_CP_GET_TASK_MISC", GET_TASK_MISC);
    i!("PSNC_CP_GET_TASK_MISC2", GET_TASK_MISC2);
    i!("PSNC_CP_GET_POSIX_TIMERS", GET_POSIX_TIMERS);

    c!("PSNC_CP_ABI_VERSION", ABI_VERSION);
    c!("PSNC_CP_HEADER_V1", HEADER_V1);
    c!("PSNC_CP_FEAT_SIGACTIONS", FEAT_SIGACTIONS);
    c!("PSNC_CP_FEAT_SIGALTSTACK", FEAT_SIGALTSTACK);
    c!("PSNC_CP_FEAT_ITIMERS", FEAT_ITIMERS);
    c!("PSNC_CP_FEAT_TASK_MISC", FEAT_TASK_MISC);
    c!("PSNC_CP_FEAT_RESTART_SLEEP", FEAT_RESTART_SLEEP);
    c!("PSNC_CP_FEAT_TASK_MISC2", FEAT_TASK_MISC2);
    c!("PSNC_CP_FEAT_POSIX_TIMERS", FEAT_POSIX_TIMERS);
    c!("PSNC_CP_NSIG", NSIG);
    c!("PSNC_CP_ITIMER_REAL", ITIMER_REAL);
    c!("PSNC_CP_ITIMER_VIRTUAL", ITIMER_VIRTUAL);
    c!("PSNC_CP_ITIMER_PROF", ITIMER_PROF);
    c!("PSNC_CP_RESTART_NONE", RESTART_NONE);
    c!("PSNC_CP_RESTART_NANOSLEEP", RESTART_NANOSLEEP);
    c!("PSNC_CP_RESTART_CPU_NANOSLEEP", RESTART_CPU_NANOSLEEP);
    c!("PSNC_CP_RESTART_FUTEX_WAIT", RESTART_FUTEX_WAIT);
    c!("PSNC_CP_RESTART_POLL", RESTART_POLL);
    c!("PSNC_CP_RESTART_OTHER", RESTART_OTHER);
    c!("PSNC_CP_PTIMER_VALUE_KNOWN", PTIMER_VALUE_KNOWN);
    c!("PSNC_CP_PTIMERS_MORE", PTIMERS_MORE);
    c!("PSNC_CP_MAX_POSIX_TIMERS", MAX_POSIX_TIMERS);
    c!("PSNC_CP_IOC_MAGIC", IOC_MAGIC);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    #[test]
    fn sizes_and_offsets_are_pinned() {
        assert_eq!(size_of::<CpHeader>(), 24);
        assert_eq!(offset_of!(CpHeader, version), 0);
        assert_eq!(offset_of!(CpHeader, size), 4);
        assert_eq!(offset_of!(CpHeader, tid), 8);
        assert_eq!(offset_of!(CpHeader, flags), 12);
        assert_eq!(offset_of!(CpHeader, reserved), 16);

        assert_eq!(size_of::<CpVersion>(), 80);
        assert_eq!(offset_of!(CpVersion, hdr), 0);
        assert_eq!(offset_of!(CpVersion, abi_version), 24);
        assert_eq!(offset_of!(CpVersion, pad), 28);
        assert_eq!(offset_of!(CpVersion, features), 32);
        assert_eq!(offset_of!(CpVersion, module_version), 40);
        assert_eq!(offset_of!(CpVersion, reserved), 72);

        assert_eq!(size_of::<CpSigAction>(), 32);
        assert_eq!(offset_of!(CpSigAction, handler), 0);
        assert_eq!(offset_of!(CpSigAction, flags), 8);
        assert_eq!(offset_of!(CpSigAction, restorer), 16);
        assert_eq!(offset_of!(CpSigAction, mask), 24);

        assert_eq!(size_of::<CpSigActions>(), 2080);
        assert_eq!(offset_of!(CpSigActions, hdr), 0);
        assert_eq!(offset_of!(CpSigActions, nr), 24);
        assert_eq!(offset_of!(CpSigActions, pad), 28);
        assert_eq!(offset_of!(CpSigActions, act), 32);

        assert_eq!(size_of::<CpSigAltStack>(), 48);
        assert_eq!(offset_of!(CpSigAltStack, hdr), 0);
        assert_eq!(offset_of!(CpSigAltStack, sp), 24);
        assert_eq!(offset_of!(CpSigAltStack, size), 32);
        assert_eq!(offset_of!(CpSigAltStack, flags), 40);
        assert_eq!(offset_of!(CpSigAltStack, pad), 44);

        assert_eq!(size_of::<CpITimer>(), 16);
        assert_eq!(offset_of!(CpITimer, value_ns), 0);
        assert_eq!(offset_of!(CpITimer, interval_ns), 8);

        assert_eq!(size_of::<CpITimers>(), 72);
        assert_eq!(offset_of!(CpITimers, hdr), 0);
        assert_eq!(offset_of!(CpITimers, timer), 24);

        assert_eq!(size_of::<CpTaskMisc>(), 80);
        assert_eq!(offset_of!(CpTaskMisc, hdr), 0);
        assert_eq!(offset_of!(CpTaskMisc, clear_child_tid), 24);
        assert_eq!(offset_of!(CpTaskMisc, brk), 32);
        assert_eq!(offset_of!(CpTaskMisc, pdeathsig), 40);
        assert_eq!(offset_of!(CpTaskMisc, child_subreaper), 44);
        assert_eq!(offset_of!(CpTaskMisc, dumpable), 48);
        assert_eq!(offset_of!(CpTaskMisc, restart_kind), 52);
        assert_eq!(offset_of!(CpTaskMisc, restart_clockid), 56);
        assert_eq!(offset_of!(CpTaskMisc, pad), 60);
        assert_eq!(offset_of!(CpTaskMisc, restart_remaining_ns), 64);
        assert_eq!(offset_of!(CpTaskMisc, reserved), 72);

        assert_eq!(size_of::<CpTaskMisc2>(), 64);
        assert_eq!(offset_of!(CpTaskMisc2, hdr), 0);
        assert_eq!(offset_of!(CpTaskMisc2, securebits), 24);
        assert_eq!(offset_of!(CpTaskMisc2, pad), 28);
        assert_eq!(offset_of!(CpTaskMisc2, compat_robust_list), 32);
        assert_eq!(offset_of!(CpTaskMisc2, compat_robust_list_len), 40);
        assert_eq!(offset_of!(CpTaskMisc2, reserved), 48);

        assert_eq!(size_of::<CpPosixTimer>(), 48);
        assert_eq!(offset_of!(CpPosixTimer, id), 0);
        assert_eq!(offset_of!(CpPosixTimer, clockid), 4);
        assert_eq!(offset_of!(CpPosixTimer, sigev_notify), 8);
        assert_eq!(offset_of!(CpPosixTimer, signo), 12);
        assert_eq!(offset_of!(CpPosixTimer, flags), 16);
        assert_eq!(offset_of!(CpPosixTimer, pad), 20);
        assert_eq!(offset_of!(CpPosixTimer, overrun), 24);
        assert_eq!(offset_of!(CpPosixTimer, value_ns), 32);
        assert_eq!(offset_of!(CpPosixTimer, interval_ns), 40);

        assert_eq!(size_of::<CpPosixTimers>(), 1568);
        assert_eq!(offset_of!(CpPosixTimers, hdr), 0);
        assert_eq!(offset_of!(CpPosixTimers, nr), 24);
        assert_eq!(offset_of!(CpPosixTimers, flags), 28);
        assert_eq!(offset_of!(CpPosixTimers, timer), 32);
    }

    #[test]
    fn no_struct_has_hidden_padding() {
        // The sum of the field sizes equals the struct size: no padding byte the kernel could
        // leave uninitialised. The Pod derive already refuses padding at compile time; this
        // keeps the layout table, which the C comparison below reads, honest as well.
        fn sum(prefix: &str) -> usize {
            layout_table()
                .lines()
                .filter_map(|l| l.strip_prefix("field "))
                .filter(|l| l.starts_with(&format!("{prefix}.")))
                .map(|l| {
                    l.rsplit(' ')
                        .next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or(0)
                })
                .sum()
        }
        assert_eq!(sum("psnc_cp_header"), size_of::<CpHeader>());
        assert_eq!(sum("psnc_cp_version"), size_of::<CpVersion>());
        assert_eq!(sum("psnc_cp_sigaction"), size_of::<CpSigAction>());
        assert_eq!(sum("psnc_cp_sigactions"), size_of::<CpSigActions>());
        assert_eq!(sum("psnc_cp_sigaltstack"), size_of::<CpSigAltStack>());
        assert_eq!(sum("psnc_cp_itimer"), size_of::<CpITimer>());
        assert_eq!(sum("psnc_cp_itimers"), size_of::<CpITimers>());
        assert_eq!(sum("psnc_cp_task_misc"), size_of::<CpTaskMisc>());
        assert_eq!(sum("psnc_cp_task_misc2"), size_of::<CpTaskMisc2>());
        assert_eq!(sum("psnc_cp_posix_timer"), size_of::<CpPosixTimer>());
        assert_eq!(sum("psnc_cp_posix_timers"), size_of::<CpPosixTimers>());
        // 8-byte alignment on x86_64; i386 aligns u64 to 4, which is harmless because every
        // u64 sits at an 8-byte offset (checked against `cc -m32` below).
        assert_eq!(align_of::<CpSigActions>(), 8);
    }

    #[test]
    fn ioctl_numbers_are_pinned() {
        assert_eq!(GET_VERSION, 0xc050_c500);
        assert_eq!(GET_SIGACTIONS, 0xc820_c501);
        assert_eq!(GET_SIGALTSTACK, 0xc030_c502);
        assert_eq!(GET_ITIMERS, 0xc048_c503);
        assert_eq!(GET_TASK_MISC, 0xc050_c504);
        assert_eq!(GET_TASK_MISC2, 0xc040_c505);
        assert_eq!(GET_POSIX_TIMERS, 0xc620_c506);
    }

    #[test]
    fn for_tid_fills_the_header() {
        let a = CpTaskMisc::for_tid(42);
        assert_eq!(
            a.hdr,
            CpHeader {
                version: 1,
                size: 80,
                tid: 42,
                flags: 0,
                reserved: 0
            }
        );
        let v = CpVersion::for_tid(0);
        assert_eq!(v.hdr.size, 80);
        assert_eq!(CpSigActions::for_tid(7).hdr.size, 2080);
        assert_eq!(CpTaskMisc2::for_tid(7).hdr.size, 64);
        assert_eq!(CpPosixTimers::for_tid(7).hdr.size, 1568);
    }

    #[test]
    fn module_version_stops_at_nul() {
        let mut v = CpVersion::default();
        v.module_version[..5].copy_from_slice(b"0.1.0");
        assert_eq!(v.module_version(), "0.1.0");
        v.module_version = [b'x'; 32];
        assert_eq!(v.module_version().len(), 32);
    }

    /// `kmod/` of this repository.
    fn kmod_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kmod")
    }

    /// Builds and runs layout.c with `cc` and the given extra flags; None if cc cannot build
    /// for that target (no multilib).
    fn c_table(kmod: &Path, flags: &[&str]) -> Option<String> {
        let out = std::env::temp_dir().join(format!(
            "psnc-cp-layout-{}-{}",
            std::process::id(),
            flags.join("")
        ));
        let built = Command::new("cc")
            .stderr(Stdio::null())
            .args(flags)
            .arg("-I")
            .arg(kmod.join("include/uapi"))
            .arg("-o")
            .arg(&out)
            .arg(kmod.join("tests/layout.c"))
            .status()
            .ok()?;
        if !built.success() {
            return None;
        }
        let run = Command::new(&out).output();
        let _ = std::fs::remove_file(&out);
        let run = run.ok()?;
        assert!(run.status.success(), "layout printer {flags:?} failed");
        Some(String::from_utf8_lossy(&run.stdout).into_owned())
    }

    #[test]
    fn table_matches_the_c_header() {
        let kmod = kmod_dir();
        let c64 = c_table(&kmod, &[]).expect("cc cannot build kmod/tests/layout.c");
        assert_eq!(
            layout_table(),
            c64,
            "Rust mirror and C header differ (x86_64)"
        );
        // i386 needs gcc-multilib; without it only x86_64 is compared.
        if let Some(c32) = c_table(&kmod, &["-m32"]) {
            assert_eq!(
                layout_table(),
                c32,
                "Rust mirror and C header differ (i386)"
            );
        } else {
            psnc_testkit::skip("table_matches_the_c_header i386", psnc_testkit::NO_M32);
        }
    }
}
