//! `/dev/checkpoint`: the optional kernel module that hands a ptracer the kernel-only state of a
//! stopped thread (signal handlers, sigaltstack, interval timers, clear_child_tid, brk, pdeathsig,
//! child_subreaper, dumpable, securebits, the compat robust list, POSIX timer values), so that a capture reads them
//! without running anything inside the target.
//!
//! The module lives in `kmod/` (its ABI in `kmod/include/uapi/psnc_checkpoint.h`, mirrored in
//! [`uapi`]). [`KmodDevice`] wraps it: each method is exactly one `ioctl`, its errno turned into
//! [`PtraceError::Kmod`] at once. The module serves a thread only to the *thread* that
//! ptrace-attached it, only while it sits in a ptrace stop, and only with `CAP_SYS_PTRACE`: call
//! these methods from the thread that seized the target, between interrupt and detach.
//!
//! ```no_run
//! use psnc_ptrace::kmod::KmodDevice;
//! # fn main() -> psnc_ptrace::Result<()> {
//! if let Some(dev) = KmodDevice::open()? {
//!     let v = dev.version()?;
//!     println!("module {} (ABI {})", v.module_version, v.abi_version);
//! }
//! # Ok(()) }
//! ```

pub mod uapi;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use psnc_abi::{SigAction, SigAltStack};

use crate::error::{PtraceError, Result};
use uapi::{
    CpArg, CpITimers, CpPosixTimers, CpSigActions, CpSigAltStack, CpTaskMisc, CpTaskMisc2,
    CpVersion,
};

/// Path of the device node.
pub const DEVICE: &str = uapi::DEVICE;

/// What `PSNC_CP_GET_VERSION` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleVersion {
    /// The ABI version; this crate speaks [`uapi::ABI_VERSION`].
    pub abi_version: u32,
    /// `uapi::FEAT_*` bits: the commands the module serves.
    pub features: u64,
    /// The module's own version, e.g. "0.2.0".
    pub module_version: String,
}

impl ModuleVersion {
    /// The bits of `wanted` this module lacks (0 when it serves all of them).
    pub fn missing(&self, wanted: u64) -> u64 {
        wanted & !self.features
    }
}

/// One interval timer as the module reports it, in nanoseconds (`getitimer` truncates to µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ITimerNs {
    /// Time to the next expiry; 0 = disarmed.
    pub value_ns: u64,
    /// Reload value.
    pub interval_ns: u64,
}

/// Which restartable call a thread is stopped in when its saved return value is
/// `-ERESTART_RESTARTBLOCK` (the restart block lives in the kernel only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartKind {
    /// Not stopped in such a call.
    None,
    /// A relative `nanosleep`/`clock_nanosleep` on an hrtimer clock.
    Nanosleep {
        /// The clock it sleeps on (`CLOCK_MONOTONIC` for a relative `CLOCK_REALTIME` sleep).
        clockid: i32,
        /// Time left (what the kernel would write to rmtp).
        remaining_ns: u64,
    },
    /// `clock_nanosleep` on a CPU-time clock.
    CpuNanosleep,
    /// `futex(FUTEX_WAIT)` with a timeout.
    FutexWait,
    /// `poll`/`ppoll`.
    Poll,
    /// Another restart function (the raw `restart_kind`).
    Other(u32),
}

/// What `PSNC_CP_GET_TASK_MISC` reports for one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskMisc {
    /// `set_tid_address(2)` value (`PR_GET_TID_ADDRESS`), per thread.
    pub clear_child_tid: u64,
    /// The program break of the process (`brk(0)`), unaligned.
    pub brk: u64,
    /// `PR_GET_PDEATHSIG` of the thread.
    pub pdeathsig: u32,
    /// `PR_GET_CHILD_SUBREAPER` of the process.
    pub child_subreaper: bool,
    /// `PR_GET_DUMPABLE` of the process.
    pub dumpable: u32,
    /// The interrupted restartable call, if any.
    pub restart: RestartKind,
}

/// What `PSNC_CP_GET_TASK_MISC2` reports for one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskMisc2 {
    /// `PR_GET_SECUREBITS` of the thread.
    pub securebits: u32,
    /// The compat (i386) robust-futex list head and its length, as the compat `get_robust_list`
    /// called by the thread itself reports them; head 0 when none.
    pub compat_robust_list: (u64, u64),
}

/// One POSIX timer as `PSNC_CP_GET_POSIX_TIMERS` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PosixTimerNs {
    /// Timer ID.
    pub id: i32,
    /// The clock it runs on, as `/proc/PID/timers` shows it (the kernel's encoding:
    /// `CLOCK_PROCESS_CPUTIME_ID` reads -6).
    pub clockid: i32,
    /// `sigev_notify`, `SIGEV_THREAD_ID` included.
    pub sigev_notify: i32,
    /// `sigev_signo`.
    pub signo: u32,
    /// Time to the next expiry as `timer_gettime` would report it (0 = disarmed); `None` when
    /// the module cannot tell (a CPU-time clock, an alarm timer, or an expiry being handled on
    /// another CPU at that moment): ask `timer_gettime` instead.
    pub value_ns: Option<u64>,
    /// Reload value.
    pub interval_ns: u64,
}

/// The POSIX timers of a process (`PSNC_CP_GET_POSIX_TIMERS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixTimersNs {
    /// The timers, in no order.
    pub timers: Vec<PosixTimerNs>,
    /// The process has more than [`uapi::MAX_POSIX_TIMERS`]; `timers` is incomplete.
    pub more: bool,
}

impl PosixTimersNs {
    /// Whether every timer of the process is listed with a known value.
    pub fn complete(&self) -> bool {
        !self.more && self.timers.iter().all(|t| t.value_ns.is_some())
    }
}

/// An open `/dev/checkpoint`.
#[derive(Debug)]
pub struct KmodDevice {
    file: File,
    path: PathBuf,
}

impl KmodDevice {
    /// Opens [`DEVICE`]; `Ok(None)` when the module is not loaded (no node, or a stale node
    /// without a driver).
    pub fn open() -> Result<Option<KmodDevice>> {
        Self::open_path(Path::new(DEVICE))
    }

    /// Opens the device at `path` (tests, or a node created elsewhere); `Ok(None)` when there is
    /// nothing there.
    pub fn open_path(path: &Path) -> Result<Option<KmodDevice>> {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
        {
            Ok(file) => Ok(Some(KmodDevice {
                file,
                path: path.to_path_buf(),
            })),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENODEV | libc::ENXIO)
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(PtraceError::Io {
                op: "open",
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The path the device was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs command `T` for `tid` (0 for GET_VERSION): the one `ioctl` of each method.
    fn call<T: CpArg>(&self, op: &'static str, tid: i32) -> Result<T> {
        let mut arg = T::for_tid(tid);
        let buf: &mut [u8] = bytemuck::bytes_of_mut(&mut arg);
        // `buf` is all of `arg` (alive across the call), exactly the size T::REQUEST encodes
        // (CpArg computes it from size_of::<T>()).
        // SAFETY: the kernel reads and writes only inside `buf`; T is Pod, so whatever bytes it
        // writes form a valid T; the fd stays open as long as `self`.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), T::REQUEST as _, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(PtraceError::Kmod {
                op,
                tid,
                errno: Errno::last(),
            });
        }
        Ok(arg)
    }

    /// ABI version, features and module version (`PSNC_CP_GET_VERSION`; needs no privilege).
    pub fn version(&self) -> Result<ModuleVersion> {
        let v: CpVersion = self.call("PSNC_CP_GET_VERSION", 0)?;
        Ok(ModuleVersion {
            abi_version: v.abi_version,
            features: v.features,
            module_version: v.module_version(),
        })
    }

    /// The 64 handlers of the thread's process, index 0 = signal 1, as `rt_sigaction(sig, NULL,
    /// &old)` reports them (`PSNC_CP_GET_SIGACTIONS`).
    pub fn sigactions(&self, tid: i32) -> Result<Vec<SigAction>> {
        let a: CpSigActions = self.call("PSNC_CP_GET_SIGACTIONS", tid)?;
        let n = (a.nr as usize).min(uapi::NSIG);
        Ok(a.act[..n]
            .iter()
            .map(|s| SigAction {
                handler: s.handler,
                flags: s.flags,
                restorer: s.restorer,
                mask: s.mask,
            })
            .collect())
    }

    /// The thread's alternate signal stack as `sigaltstack(NULL, &old)` in the thread would
    /// report it (`PSNC_CP_GET_SIGALTSTACK`).
    pub fn sigaltstack(&self, tid: i32) -> Result<SigAltStack> {
        let s: CpSigAltStack = self.call("PSNC_CP_GET_SIGALTSTACK", tid)?;
        Ok(SigAltStack {
            sp: s.sp,
            flags: s.flags,
            size: s.size,
        })
    }

    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF of the thread's process, in nanoseconds
    /// (`PSNC_CP_GET_ITIMERS`).
    pub fn itimers(&self, tid: i32) -> Result<[ITimerNs; 3]> {
        let t: CpITimers = self.call("PSNC_CP_GET_ITIMERS", tid)?;
        Ok(t.timer.map(|t| ITimerNs {
            value_ns: t.value_ns,
            interval_ns: t.interval_ns,
        }))
    }

    /// clear_child_tid, brk, pdeathsig, child_subreaper, dumpable and the interrupted restartable
    /// call of the thread (`PSNC_CP_GET_TASK_MISC`).
    pub fn task_misc(&self, tid: i32) -> Result<TaskMisc> {
        let m: CpTaskMisc = self.call("PSNC_CP_GET_TASK_MISC", tid)?;
        let restart = match m.restart_kind {
            uapi::RESTART_NONE => RestartKind::None,
            uapi::RESTART_NANOSLEEP => RestartKind::Nanosleep {
                clockid: m.restart_clockid,
                remaining_ns: m.restart_remaining_ns,
            },
            uapi::RESTART_CPU_NANOSLEEP => RestartKind::CpuNanosleep,
            uapi::RESTART_FUTEX_WAIT => RestartKind::FutexWait,
            uapi::RESTART_POLL => RestartKind::Poll,
            other => RestartKind::Other(other),
        };
        Ok(TaskMisc {
            clear_child_tid: m.clear_child_tid,
            brk: m.brk,
            pdeathsig: m.pdeathsig,
            child_subreaper: m.child_subreaper != 0,
            dumpable: m.dumpable,
            restart,
        })
    }

    /// securebits and the compat robust list of the thread (`PSNC_CP_GET_TASK_MISC2`, module
    /// 0.2.0: check [`uapi::FEAT_TASK_MISC2`]; an older module answers ENOTTY).
    pub fn task_misc2(&self, tid: i32) -> Result<TaskMisc2> {
        let m: CpTaskMisc2 = self.call("PSNC_CP_GET_TASK_MISC2", tid)?;
        Ok(TaskMisc2 {
            securebits: m.securebits,
            compat_robust_list: (m.compat_robust_list, m.compat_robust_list_len),
        })
    }

    /// The POSIX timers of the thread's process with their values (`PSNC_CP_GET_POSIX_TIMERS`,
    /// module 0.3.0: check [`uapi::FEAT_POSIX_TIMERS`]; an older module answers ENOTTY). The
    /// values are consistent only while every thread of the process is stopped.
    pub fn posix_timers(&self, tid: i32) -> Result<PosixTimersNs> {
        let p: CpPosixTimers = self.call("PSNC_CP_GET_POSIX_TIMERS", tid)?;
        let n = (p.nr as usize).min(uapi::MAX_POSIX_TIMERS);
        Ok(PosixTimersNs {
            timers: p.timer[..n]
                .iter()
                .map(|t| PosixTimerNs {
                    id: t.id,
                    clockid: t.clockid,
                    sigev_notify: t.sigev_notify,
                    signo: t.signo,
                    value_ns: (t.flags & uapi::PTIMER_VALUE_KNOWN != 0).then_some(t.value_ns),
                    interval_ns: t.interval_ns,
                })
                .collect(),
            more: p.flags & uapi::PTIMERS_MORE != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_device_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let r = KmodDevice::open_path(&dir.path().join("checkpoint"));
        assert!(matches!(r, Ok(None)), "{r:?}");
    }

    #[test]
    fn another_device_answers_enotty() {
        // /dev/null takes no ioctl: every command fails with ENOTTY, named and typed.
        let dev = KmodDevice::open_path(Path::new("/dev/null"))
            .unwrap()
            .unwrap();
        assert!(matches!(
            dev.version(),
            Err(PtraceError::Kmod {
                op: "PSNC_CP_GET_VERSION",
                tid: 0,
                errno: Errno::ENOTTY
            })
        ));
        assert!(matches!(
            dev.task_misc2(42),
            Err(PtraceError::Kmod {
                op: "PSNC_CP_GET_TASK_MISC2",
                tid: 42,
                errno: Errno::ENOTTY
            })
        ));
        assert!(matches!(
            dev.posix_timers(43),
            Err(PtraceError::Kmod {
                op: "PSNC_CP_GET_POSIX_TIMERS",
                tid: 43,
                errno: Errno::ENOTTY
            })
        ));
        let e = dev.sigactions(7).unwrap_err().to_string();
        assert!(
            e.contains("/dev/checkpoint") && e.contains("thread 7"),
            "{e}"
        );
    }

    #[test]
    fn missing_features() {
        let v = ModuleVersion {
            abi_version: 1,
            features: uapi::FEAT_SIGACTIONS | uapi::FEAT_TASK_MISC,
            module_version: "0.1.0".into(),
        };
        assert_eq!(
            v.missing(uapi::FEAT_SIGACTIONS | uapi::FEAT_TASK_MISC2),
            uapi::FEAT_TASK_MISC2
        );
        assert_eq!(v.missing(uapi::FEAT_SIGACTIONS), 0);
    }
}
