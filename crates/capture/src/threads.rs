//! Per-thread state: registers, XSAVE area, TLS, signal mask and queue, rseq, robust list, and
//! the syscall-restart resolution.
//!
//! Everything here is read from a stopped [`Tracee`] with ptrace, without running code in the
//! target (the thread's name comes from `/proc/PID/task/TID/comm`), except what only the thread
//! itself can report (sigaltstack, clear_child_tid, and the compat robust list of an i386
//! thread): [`KernelThreadState`], from `/dev/checkpoint` or gathered with remote syscalls by
//! [`remote_thread_state`] (see [`crate::source`]). All threads must run in one mode (x86_64 or
//! i386), which becomes the process's [`Arch`] ([`process_arch`]). Model type: [`Thread`] in
//! `psnc_format::model`.

use psnc_format::model::{Arch, Regs, SigAltStack, SigInfo, SyscallRestart, Thread, UserDesc};
use psnc_ptrace::arch::{i386, restart, x86_64};
use psnc_ptrace::{RemoteSyscaller, Tracee};

use crate::error::{CaptureError, Result};
use crate::host::xstate_bv;
use crate::procfs::ProcDir;
use crate::stop::{trace_error, Frozen};

/// The GDT entries of the TLS area of an i386 thread (`GDT_ENTRY_TLS_MIN..=MAX`).
const TLS_ENTRIES: std::ops::RangeInclusive<u32> = 12..=14;

/// Length in bytes of `syscall` (0f 05) and of `int 0x80` (cd 80): how far back the instruction
/// pointer goes to issue the call again.
const SYSCALL_INSN_LEN: u64 = 2;

/// Resolves a syscall restart in the registers to be stored: the one place of the project that
/// decides it.
///
/// A thread stopped inside an interrupted system call has `orig_rax` = the call and `rax` = a
/// restart code: -512 (ERESTARTSYS), -513 (ERESTARTNOINTR), -514 (ERESTARTNOHAND) or -516
/// (ERESTART_RESTARTBLOCK). The kernel would restart the call when the thread resumes from this
/// stop; a restored thread does not resume from it, so the restart is done here, in the stored
/// registers: the instruction pointer goes back over the `syscall`/`int 0x80` instruction, `rax`
/// gets the call's number again and `orig_rax` becomes -1 so the kernel applies no restart logic
/// of its own on top (a raw -51x value would otherwise reach the program as errno 512..516).
///
/// -516 normally restarts through `restart_syscall` with state kept in the kernel's restart block,
/// which does not survive a checkpoint; the original call is re-issued instead. Consequence: a
/// relative sleep (`nanosleep`, `clock_nanosleep` without TIMER_ABSTIME) starts over with its
/// full request after restore; an absolute one ends at its time as before. A call interrupted
/// with -512/-514 while a signal is about to run its handler would have returned EINTR to the
/// program instead of restarting; since capture holds such signals as pending and does not
/// deliver them, the call is re-issued and the signal arrives during it, which POSIX allows.
///
/// The live target is not affected: only the stored copy is changed.
pub fn resolve_syscall_restart(regs: &mut Regs) -> SyscallRestart {
    let is_restart = |code: i64| {
        matches!(
            code,
            restart::ERESTARTSYS
                | restart::ERESTARTNOINTR
                | restart::ERESTARTNOHAND
                | restart::ERESTART_RESTARTBLOCK
        )
    };
    let (nr, code) = nr_and_code(regs);
    if nr < 0 || !is_restart(code) {
        return SyscallRestart::None;
    }
    match regs {
        Regs::X86_64(r) => {
            r[x86_64::RIP] = r[x86_64::RIP].wrapping_sub(SYSCALL_INSN_LEN);
            r[x86_64::RAX] = nr as u64;
            r[x86_64::ORIG_RAX] = u64::MAX;
            SyscallRestart::Reissue {
                nr: nr as u64,
                code,
            }
        }
        Regs::I386(r) => {
            r[i386::EIP] = r[i386::EIP].wrapping_sub(SYSCALL_INSN_LEN as u32);
            r[i386::EAX] = nr as u32;
            r[i386::ORIG_EAX] = u32::MAX;
            SyscallRestart::Reissue {
                nr: nr as u64,
                code,
            }
        }
    }
}

/// The system call a stopped thread is in (`orig_rax`, negative when none) and its result or
/// restart code (`rax`), sign-extended from the thread's mode.
fn nr_and_code(regs: &Regs) -> (i64, i64) {
    match regs {
        Regs::X86_64(r) => (r[x86_64::ORIG_RAX] as i64, r[x86_64::RAX] as i64),
        Regs::I386(r) => (
            i64::from(r[i386::ORIG_EAX] as i32),
            i64::from(r[i386::EAX] as i32),
        ),
    }
}

/// A call a thread was in, interrupted with -516 (ERESTART_RESTARTBLOCK): the kernel goes on
/// with it through `restart_syscall`, and a later stop finds the thread in that instead, with
/// the original call's number gone (the arguments stay in their registers). Pre-copy stops a
/// target twice: what the first stop saw lets [`RestartedCall::fix`] put the original call back
/// at the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartedCall {
    /// The interrupted call.
    pub nr: u64,
    /// Its six argument registers, in syscall order.
    pub args: [u64; 6],
}

/// The six syscall argument registers of `regs`, in syscall order.
fn syscall_args(regs: &Regs) -> [u64; 6] {
    match regs {
        Regs::X86_64(r) => [
            r[x86_64::RDI],
            r[x86_64::RSI],
            r[x86_64::RDX],
            r[x86_64::R10],
            r[x86_64::R8],
            r[x86_64::R9],
        ],
        Regs::I386(r) => [
            r[i386::EBX],
            r[i386::ECX],
            r[i386::EDX],
            r[i386::ESI],
            r[i386::EDI],
            r[i386::EBP],
        ]
        .map(u64::from),
    }
}

impl RestartedCall {
    /// The call `regs` (a thread's live registers at a stop) was interrupted in with -516,
    /// unless it is `restart_syscall` already (whose original is not known).
    pub fn of(regs: &Regs, arch: Arch) -> Option<RestartedCall> {
        let (nr, code) = nr_and_code(regs);
        let restart_nr = psnc_ptrace::Sysno::RestartSyscall.nr(arch)? as i64;
        (code == restart::ERESTART_RESTARTBLOCK && nr >= 0 && nr != restart_nr).then(|| {
            RestartedCall {
                nr: nr as u64,
                args: syscall_args(regs),
            }
        })
    }

    /// When `thread` (resolved by [`resolve_syscall_restart`]) re-issues `restart_syscall` with
    /// this call's arguments, re-issues this call instead: `restart_syscall` in a restored task
    /// would find no restart block and fail with EINTR.
    pub fn fix(&self, thread: &mut Thread, arch: Arch) {
        let Some(restart_nr) = psnc_ptrace::Sysno::RestartSyscall.nr(arch) else {
            return;
        };
        let SyscallRestart::Reissue { nr, code } = thread.restart else {
            return;
        };
        if nr != restart_nr || syscall_args(&thread.regs) != self.args {
            return;
        }
        match &mut thread.regs {
            Regs::X86_64(r) => r[x86_64::RAX] = self.nr,
            Regs::I386(r) => r[i386::EAX] = self.nr as u32,
        }
        thread.restart = SyscallRestart::Reissue { nr: self.nr, code };
    }
}

/// What only the thread itself can report (or the module), from either source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelThreadState {
    /// `sigaltstack(NULL, &old)`.
    pub sigaltstack: SigAltStack,
    /// `prctl(PR_GET_TID_ADDRESS)`.
    pub clear_child_tid: u64,
    /// The compat robust list (i386 threads only; x86_64 threads' list is read from outside).
    pub compat_robust_list: Option<(u64, u64)>,
}

/// Runs the per-thread remote syscalls in one thread.
pub fn remote_thread_state(pid: i32, sc: &mut RemoteSyscaller<'_>) -> Result<KernelThreadState> {
    let tid = sc.tracee().tid();
    let c = sc
        .get_thread_calls()
        .map_err(|e| trace_error(pid, tid, THREAD_CALLS, e))?;
    Ok(c.into())
}

/// The remote calls behind [`KernelThreadState`], as errors name them.
const THREAD_CALLS: &str = "sigaltstack, prctl(PR_GET_TID_ADDRESS), get_robust_list";

impl From<psnc_ptrace::remote::ThreadCalls> for KernelThreadState {
    fn from(c: psnc_ptrace::remote::ThreadCalls) -> Self {
        KernelThreadState {
            sigaltstack: c.sigaltstack,
            clear_child_tid: c.clear_child_tid,
            compat_robust_list: c.robust_list,
        }
    }
}

/// [`remote_thread_state`] of `others` (the other threads of `sc`'s process), all run side by
/// side ([`RemoteSyscaller::get_thread_calls_of`]).
pub fn remote_thread_states(
    pid: i32,
    sc: &mut RemoteSyscaller<'_>,
    others: &mut [Tracee],
) -> Result<Vec<KernelThreadState>> {
    let calls = sc.get_thread_calls_of(others).map_err(|e| {
        let tid = match &e {
            psnc_ptrace::PtraceError::RemoteSyscall { tid, .. } => *tid,
            _ => pid,
        };
        trace_error(pid, tid, THREAD_CALLS, e)
    })?;
    Ok(calls.into_iter().map(Into::into).collect())
}

/// The mode of the process's threads (read first: every remote syscall needs the right
/// instruction and numbering). A thread in another mode than the leader is refused.
pub fn process_arch(frozen: &mut Frozen) -> Result<Arch> {
    let pid = frozen.pid();
    let mut arch = None;
    for t in frozen.threads().iter_mut() {
        let tid = t.tid();
        let a = t
            .arch()
            .map_err(|e| trace_error(pid, tid, "reading the thread's mode", e))?;
        if *arch.get_or_insert(a) != a {
            return Err(CaptureError::Unsupported {
                pid,
                what: format!("thread {tid}"),
                kind: "running in a different mode (x86_64 / i386) than the thread-group leader"
                    .into(),
            });
        }
    }
    Ok(arch.unwrap_or(Arch::X86_64))
}

/// Reads the state of every stopped thread of `frozen`; `kernel` is their kernel-only state, in
/// the order of [`Frozen::threads`].
pub fn collect(
    proc_dir: &ProcDir,
    frozen: &mut Frozen,
    kernel: Vec<KernelThreadState>,
) -> Result<Vec<Thread>> {
    let mut threads = Vec::new();
    for (t, remote) in frozen.threads().iter_mut().zip(kernel) {
        threads.push(capture_thread(proc_dir, t, remote)?);
    }
    Ok(threads)
}

/// Reads the state of one stopped thread. `remote` is its kernel-only state, from either source.
/// Signals the ptrace crate holds for the thread (dequeued on the way to the stop) come first in
/// the pending list, then the thread's queue.
pub fn capture_thread(
    proc_dir: &ProcDir,
    t: &mut Tracee,
    remote: KernelThreadState,
) -> Result<Thread> {
    let pid = proc_dir.pid();
    let tid = t.tid();
    let err = |what: &'static str| move |e| trace_error(pid, tid, what, e);

    let mut regs = t
        .get_regs()
        .map_err(err("reading registers (NT_PRSTATUS)"))?;
    let xsave = t
        .get_xstate()
        .map_err(err("reading the XSAVE area (NT_X86_XSTATE)"))?;
    let sigmask = t.get_sigmask().map_err(err("PTRACE_GETSIGMASK"))?;
    let mut pending: Vec<SigInfo> = t.held_signals().iter().map(SigInfo::from).collect();
    pending.extend(
        t.peek_siginfo(false)
            .map_err(err("PTRACE_PEEKSIGINFO"))?
            .iter()
            .map(SigInfo::from),
    );
    let rseq = t.get_rseq().map_err(err("PTRACE_GET_RSEQ_CONFIGURATION"))?;
    let rseq = (rseq.addr != 0).then_some(rseq);

    let (fs_base, gs_base, tls) = match &regs {
        Regs::X86_64(r) => (r[x86_64::FS_BASE], r[x86_64::GS_BASE], Vec::new()),
        Regs::I386(_) => {
            let mut tls = Vec::new();
            for entry in TLS_ENTRIES {
                let d = t
                    .get_thread_area(entry)
                    .map_err(err("PTRACE_GET_THREAD_AREA"))?;
                tls.push(UserDesc {
                    entry_number: entry,
                    base_addr: d.base_addr,
                    limit: d.limit,
                    flags: d.flags,
                });
            }
            (0, 0, tls)
        }
    };
    let (robust_list, robust_list_len) = match remote.compat_robust_list {
        Some(r) => r,
        None => psnc_ptrace::sys::get_robust_list(tid).map_err(err("get_robust_list"))?,
    };
    let restart = resolve_syscall_restart(&mut regs);
    let comm = proc_dir
        .task(tid)
        .read_string("comm")?
        .trim_end_matches('\n')
        .to_string();

    Ok(Thread {
        tid: u32::try_from(tid).map_err(|_| CaptureError::NoSuchProcess { pid })?,
        comm,
        regs,
        xstate_bv: xstate_bv(&xsave),
        xsave,
        fs_base,
        gs_base,
        tls,
        sigmask,
        pending,
        sigaltstack: remote.sigaltstack,
        clear_child_tid: remote.clear_child_tid,
        robust_list,
        robust_list_len,
        rseq,
        restart,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x64(rax: i64, orig: i64, rip: u64) -> Regs {
        let mut r = [0u64; 27];
        r[x86_64::RAX] = rax as u64;
        r[x86_64::ORIG_RAX] = orig as u64;
        r[x86_64::RIP] = rip;
        Regs::X86_64(r)
    }

    #[test]
    fn restart_codes_are_reissued() {
        for code in [-512i64, -513, -514, -516] {
            let mut r = x64(code, 230, 0x1002);
            assert_eq!(
                resolve_syscall_restart(&mut r),
                SyscallRestart::Reissue { nr: 230, code }
            );
            assert_eq!(r, x64(230, -1, 0x1000));
        }
    }

    #[test]
    fn other_states_are_left_alone() {
        // Not in a syscall.
        let mut r = x64(-512, -1, 0x1002);
        assert_eq!(resolve_syscall_restart(&mut r), SyscallRestart::None);
        assert_eq!(r, x64(-512, -1, 0x1002));
        // A completed call (EINTR, or a result).
        for ret in [-4i64, 0, 5, -515, -517] {
            let mut r = x64(ret, 0, 0x1002);
            assert_eq!(resolve_syscall_restart(&mut r), SyscallRestart::None);
            assert_eq!(r, x64(ret, 0, 0x1002));
        }
    }

    #[test]
    fn i386_restart() {
        let mut r = [0u32; 17];
        r[i386::EAX] = (-516i32) as u32;
        r[i386::ORIG_EAX] = 162; // nanosleep
        r[i386::EIP] = 0x8000_1002;
        let mut regs = Regs::I386(r);
        assert_eq!(
            resolve_syscall_restart(&mut regs),
            SyscallRestart::Reissue {
                nr: 162,
                code: -516
            }
        );
        let Regs::I386(r) = regs else { unreachable!() };
        assert_eq!(
            (r[i386::EAX], r[i386::ORIG_EAX], r[i386::EIP]),
            (162, u32::MAX, 0x8000_1000)
        );
    }
}
