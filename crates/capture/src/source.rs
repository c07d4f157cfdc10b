//! Where the kernel-only state comes from: the module `/dev/checkpoint`, or system calls run
//! inside the target.
//!
//! A few values have no file in `/proc` and no ptrace request; only the target itself can ask
//! for them, or the kernel module. Both sources fill the same [`KernelState`], each field what
//! the system call would report in the target at that moment, so the image does not depend on
//! the source (the VM harness captures one stopped process both ways and diffs the images):
//!
//! ```text
//!  piece                           remote (run in the target)       /dev/checkpoint
//!  ------------------------------  -------------------------------  -------------------------
//!  64 handlers                     rt_sigaction x 64                GET_SIGACTIONS
//!  ITIMER_REAL/VIRTUAL/PROF        getitimer x 3                    GET_ITIMERS (ns -> µs)
//!  brk, dumpable, child_subreaper  brk(0), prctl                    GET_TASK_MISC
//!  pdeathsig (of the leader)       prctl(PR_GET_PDEATHSIG)          GET_TASK_MISC
//!  securebits                      prctl(PR_GET_SECUREBITS)         GET_TASK_MISC2
//!  per thread: sigaltstack         sigaltstack                      GET_SIGALTSTACK
//!  per thread: clear_child_tid     prctl(PR_GET_TID_ADDRESS)        GET_TASK_MISC
//!  per i386 thread: robust list    compat get_robust_list           GET_TASK_MISC2
//!  POSIX timer values              timer_gettime                    GET_POSIX_TIMERS (module 0.3.0)
//! ```
//!
//! With the module nothing runs in the target, unless the module cannot give the value of a
//! POSIX timer: a module older than 0.3.0, a timer on a CPU-time or alarm clock, or more than
//! 32 timers. Then that process's timer values (and the scratch page they need) are still
//! asked with injected `timer_gettime`, and `-v` says why. `GET_POSIX_TIMERS` is not in
//! [`NEEDED_FEATURES`]: a 0.2.0 module still serves everything else.
//!
//! [`KmodMode`] is the user's choice (`--kmod auto|always|never`); [`StateSource::select`] turns
//! it into a source before the target is touched, so `always` without a usable module fails with
//! the target never stopped.

use std::fmt;
use std::str::FromStr;

use psnc_format::model::Arch;
use psnc_ptrace::kmod::{uapi, KmodDevice, ModuleVersion};
use psnc_ptrace::RemoteSyscaller;

use crate::error::{CaptureError, Result};
use crate::procfs::TimerInfo;
use crate::signals::{self, KernelSignalState};
use crate::stop::{trace_error, Frozen};
use crate::threads::{self, KernelThreadState};
use crate::timers::{self, KernelTimerState};

/// The module features capture needs: every command it reads state with.
pub const NEEDED_FEATURES: u64 = uapi::FEAT_SIGACTIONS
    | uapi::FEAT_SIGALTSTACK
    | uapi::FEAT_ITIMERS
    | uapi::FEAT_TASK_MISC
    | uapi::FEAT_TASK_MISC2;

/// Whether to use `/dev/checkpoint` (`--kmod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KmodMode {
    /// The module when it is loaded and speaks a supported ABI, else remote syscalls.
    #[default]
    Auto,
    /// The module, or fail before touching the target.
    Always,
    /// Remote syscalls, even when the module is loaded.
    Never,
}

impl FromStr for KmodMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(KmodMode::Auto),
            "always" => Ok(KmodMode::Always),
            "never" => Ok(KmodMode::Never),
            _ => Err(format!(
                "{s:?} is not a --kmod mode; use auto, always or never"
            )),
        }
    }
}

impl fmt::Display for KmodMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KmodMode::Auto => "auto",
            KmodMode::Always => "always",
            KmodMode::Never => "never",
        })
    }
}

/// The source of the kernel-only state for one capture.
#[derive(Debug)]
pub enum StateSource {
    /// System calls run inside the target.
    Remote {
        /// Why not the module (for `-v`).
        why: String,
    },
    /// `/dev/checkpoint`.
    Kmod {
        /// The open device.
        dev: KmodDevice,
        /// What it reported.
        version: ModuleVersion,
    },
}

/// The commands behind feature bits, for messages.
fn feature_names(bits: u64) -> Vec<&'static str> {
    [
        (uapi::FEAT_SIGACTIONS, "PSNC_CP_GET_SIGACTIONS"),
        (uapi::FEAT_SIGALTSTACK, "PSNC_CP_GET_SIGALTSTACK"),
        (uapi::FEAT_ITIMERS, "PSNC_CP_GET_ITIMERS"),
        (uapi::FEAT_TASK_MISC, "PSNC_CP_GET_TASK_MISC"),
        (uapi::FEAT_TASK_MISC2, "PSNC_CP_GET_TASK_MISC2"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|&(_, n)| n)
    .collect()
}

/// Why the module cannot be used (a phrase after "/dev/checkpoint"), or `Ok(device, version)`.
fn usable_module() -> std::result::Result<(KmodDevice, ModuleVersion), String> {
    let dev = match KmodDevice::open() {
        Ok(Some(dev)) => dev,
        Ok(None) => return Err("does not exist (the module is not loaded)".into()),
        Err(e) => return Err(format!("cannot be opened ({e})")),
    };
    let version = dev
        .version()
        .map_err(|e| format!("does not answer PSNC_CP_GET_VERSION ({e})"))?;
    if version.abi_version != uapi::ABI_VERSION {
        return Err(format!(
            "speaks ABI {} (module {}); this psnc-capture speaks ABI {}",
            version.abi_version,
            version.module_version,
            uapi::ABI_VERSION
        ));
    }
    let missing = version.missing(NEEDED_FEATURES);
    if missing != 0 {
        return Err(format!(
            "is module {}, which does not serve {} (features {:#x}, needed {NEEDED_FEATURES:#x})",
            version.module_version,
            feature_names(missing).join(", "),
            version.features
        ));
    }
    Ok((dev, version))
}

impl StateSource {
    /// Picks the source for `mode`. Only `Always` fails: with the reason the module cannot be
    /// used and what to do.
    pub fn select(mode: KmodMode) -> Result<StateSource> {
        match mode {
            KmodMode::Never => Ok(StateSource::Remote {
                why: "--kmod never".into(),
            }),
            KmodMode::Auto => Ok(match usable_module() {
                Ok((dev, version)) => StateSource::Kmod { dev, version },
                Err(why) => StateSource::Remote {
                    why: format!("{} {why}", uapi::DEVICE),
                },
            }),
            KmodMode::Always => match usable_module() {
                Ok((dev, version)) => Ok(StateSource::Kmod { dev, version }),
                Err(why) => Err(CaptureError::KmodUnavailable { why }),
            },
        }
    }

    /// One line for `-v`: which source and why.
    pub fn describe(&self) -> String {
        match self {
            StateSource::Remote { why } => {
                format!("kernel-only state from remote syscalls in the target ({why})")
            }
            StateSource::Kmod { dev, version } => format!(
                "kernel-only state from {} (module {}, ABI {})",
                dev.path().display(),
                version.module_version,
                version.abi_version
            ),
        }
    }

    /// Whether this is the module.
    pub fn is_kmod(&self) -> bool {
        matches!(self, StateSource::Kmod { .. })
    }

    /// Reads the kernel-only state of every thread of `frozen`, whose threads run in mode
    /// `arch`, and the values of the POSIX timers `timers` (from `/proc/PID/timers`).
    pub fn collect(
        &self,
        frozen: &mut Frozen,
        arch: Arch,
        timers: &[TimerInfo],
    ) -> Result<KernelState> {
        match self {
            StateSource::Remote { .. } => remote_state(frozen, timers),
            StateSource::Kmod { dev, version } => {
                crate::kmod::kmod_state(dev, version, frozen, arch, timers)
            }
        }
    }
}

/// What the process as a whole reports (in the thread-group leader).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelProcessState {
    /// `brk(0)`.
    pub brk: u64,
    /// `PR_GET_DUMPABLE`.
    pub dumpable: u32,
    /// `PR_GET_PDEATHSIG` of the leader.
    pub pdeathsig: u32,
    /// `PR_GET_CHILD_SUBREAPER`.
    pub child_subreaper: bool,
    /// `PR_GET_SECUREBITS` of the leader.
    pub securebits: u32,
}

/// The kernel-only state of a process, from either source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelState {
    /// Process-wide values.
    pub process: KernelProcessState,
    /// Handlers.
    pub signals: KernelSignalState,
    /// Interval timers and POSIX timer values.
    pub timers: KernelTimerState,
    /// One per thread, in the order of [`Frozen::threads`].
    pub threads: Vec<KernelThreadState>,
    /// Which way each piece was read, one line per piece, for `-v`.
    pub provenance: Vec<String>,
    /// Whether any system call ran inside the target.
    pub injected: bool,
}

/// Runs every remote syscall of the capture: process-wide ones in the leader, per-thread ones in
/// each thread, all sharing one scratch page, which is unmapped at the end.
fn remote_state(frozen: &mut Frozen, timers: &[TimerInfo]) -> Result<KernelState> {
    let pid = frozen.pid();
    let Some((leader, others)) = frozen.threads().split_first_mut() else {
        return Err(CaptureError::NoSuchProcess { pid });
    };
    let ltid = leader.tid();
    let err = |what: &'static str| move |e| trace_error(pid, ltid, what, e);
    let mut sc = RemoteSyscaller::find(leader).map_err(err("finding a syscall instruction"))?;
    let pc = sc
        .get_process_calls()
        .map_err(err("brk(0), prctl(PR_GET_*), getitimer"))?;
    let process = KernelProcessState {
        brk: pc.brk,
        dumpable: pc.dumpable,
        pdeathsig: pc.pdeathsig,
        child_subreaper: pc.child_subreaper,
        securebits: pc.securebits,
    };
    let signals = signals::remote_signal_state(pid, &mut sc)?;
    let timer_state = timers::remote_timer_state(pid, &mut sc, timers, &pc.itimers)?;
    let mut thread_states = vec![threads::remote_thread_state(pid, &mut sc)?];
    thread_states.extend(threads::remote_thread_states(pid, &mut sc, others)?);
    sc.finish().map_err(err("unmapping the scratch page"))?;
    let n = thread_states.len();
    let provenance = vec![
        "handlers: remote rt_sigaction x 64, in one batch".into(),
        "interval timers: remote getitimer x 3".into(),
        if timers.is_empty() {
            "POSIX timers: none".into()
        } else {
            format!("POSIX timers ({}): remote timer_gettime", timers.len())
        },
        "brk, dumpable, pdeathsig, child_subreaper, securebits: remote brk(0), prctl (one \
         batch with the interval timers)"
            .into(),
        format!(
            "{n} thread(s): sigaltstack, clear_child_tid{}: remote sigaltstack, \
             prctl(PR_GET_TID_ADDRESS){}",
            if thread_states.iter().any(|t| t.compat_robust_list.is_some()) {
                ", compat robust list"
            } else {
                ""
            },
            if thread_states.iter().any(|t| t.compat_robust_list.is_some()) {
                ", get_robust_list"
            } else {
                ""
            }
        ),
        "scratch page and batch area (the calls of each thread in one resume) mapped and \
         unmapped again"
            .into(),
    ];
    Ok(KernelState {
        process,
        signals,
        timers: timer_state,
        threads: thread_states,
        provenance,
        injected: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmod_modes_parse() {
        assert_eq!("auto".parse::<KmodMode>(), Ok(KmodMode::Auto));
        assert_eq!("always".parse::<KmodMode>(), Ok(KmodMode::Always));
        assert_eq!("never".parse::<KmodMode>(), Ok(KmodMode::Never));
        assert!("yes".parse::<KmodMode>().is_err());
        assert_eq!(KmodMode::default(), KmodMode::Auto);
        assert_eq!(KmodMode::Always.to_string(), "always");
    }

    #[test]
    fn missing_features_are_named() {
        assert_eq!(
            feature_names(uapi::FEAT_TASK_MISC2 | uapi::FEAT_ITIMERS),
            ["PSNC_CP_GET_ITIMERS", "PSNC_CP_GET_TASK_MISC2"]
        );
    }

    #[test]
    fn never_is_remote_without_looking() {
        assert!(matches!(
            StateSource::select(KmodMode::Never),
            Ok(StateSource::Remote { .. })
        ));
    }
}
