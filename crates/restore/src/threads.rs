//! Per-thread state: the image's other threads, recreated inside the rebuilt process with their
//! own TIDs, and the state of every thread, the leader's included: name, sigaltstack, rseq,
//! robust list, clear_child_tid, pending signals, AMX permission, and at the very end its TLS
//! entries, registers, XSAVE area and signal mask.
//!
//! Model: [`psnc_format::model::Thread`] (with [`psnc_format::model::Regs`],
//! [`psnc_format::model::UserDesc`], [`psnc_format::model::SigAltStack`],
//! [`psnc_format::model::Rseq`] and its pending [`psnc_format::model::SigInfo`]s).
//!
//! Per-thread state is kept apart from the process-wide state because a multithreaded restore
//! (issue 4) runs [`restore_thread_state`] and [`finish_thread`] once per thread, each in its own
//! traced thread, and the rest once.
//!
//! # Creating the threads
//!
//! glibc keeps each thread's TID in its thread control block (mutex owners, `pthread_kill`,
//! `pthread_join`), so a thread must come back with the same TID: the leader runs `clone3` with
//! `CLONE_THREAD` and `set_tid` from the stub's clone instruction. The engine single-steps the
//! leader, which traps right after the instruction; the new thread runs on into the stub's `pause`
//! loop and sleeps there (every signal is blocked) until the restore seizes and stops it. From
//! then on it is driven like the leader, through [`Task::in_thread`], and gets its own state with
//! [`restore_thread_state`] and [`finish_thread`].
//!
//! A new thread starts with what `clone3` gives a `CLONE_VM` child: no rseq registration, no
//! robust list, no clear_child_tid, no alternate signal stack, the leader's (all-blocked) mask.
//! Everything else it shares with the leader (memory, files, handlers, credentials).

use psnc_format::model::Thread;
use psnc_ptrace::{KernelSigInfo, Options, Stop, Sysno, Tracee, UserDesc};

use crate::error::{RestoreError, Result};
use crate::process::PR_SET_NAME;
use crate::remote::Task;
use crate::stub::Stub;

/// `clone3` flags of a thread, as glibc's `pthread_create` uses them (without the TID and TLS
/// settings, which the restore sets itself).
const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM) as u64;

/// Offset in the scratch area of the `clone_args` and the TID array.
const ARGS_OFFSET: u64 = 0x8000;

const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
const XFEATURE_XTILEDATA: u32 = 18;
/// XSAVE components that sit at the same place in every standard-format layout: x87 and SSE in
/// the legacy area, AVX (YMM_Hi128) at byte 576.
const XSTATE_FIXED_LAYOUT: u64 = 0b111;
const XSAVE_FIXED_END: usize = 576 + 256;

/// Creates thread `tid` in the task's process and returns it seized and stopped.
pub fn create_thread(task: &mut Task, stub: &Stub, tid: u32) -> Result<Tracee> {
    clone_seized(
        task,
        stub,
        THREAD_FLAGS,
        0,
        tid,
        format!("creating thread {tid}"),
    )
}

/// Runs `clone3` with `flags`, `exit_signal` and `set_tid` = `tid` from the stub's clone
/// instruction in the task, and returns the new task seized and in an interrupt stop (it waits
/// in the stub's pause loop until then). A thread with [`THREAD_FLAGS`]; a child process
/// (a copy of the stub, [`crate::tree`]) with no flags and `SIGCHLD`.
pub(crate) fn clone_seized(
    task: &mut Task,
    stub: &Stub,
    flags: u64,
    exit_signal: u64,
    tid: u32,
    step: String,
) -> Result<Tracee> {
    let tid_addr = task.scratch.0 + ARGS_OFFSET + 128;
    task.put(&step, ARGS_OFFSET + 128, &tid.to_le_bytes())?;
    let mut args = [0u64; 11];
    args[0] = flags;
    args[4] = exit_signal;
    args[8] = tid_addr; // set_tid
    args[9] = 1; // set_tid_size
    let bytes: Vec<u8> = args.iter().flat_map(|v| v.to_le_bytes()).collect();
    let args_addr = task.put(&step, ARGS_OFFSET, &bytes)?;
    let nr = Sysno::Clone3
        .nr(task.arch)
        .ok_or(psnc_ptrace::PtraceError::NoSyscallNr {
            sysno: Sysno::Clone3,
            arch: task.arch,
        })
        .map_err(task.step_err(&step))?;
    task.log(|| step.clone());
    let r = task
        .tracee
        .remote_syscall(
            stub.clone_addr,
            nr,
            &[args_addr, bytes.len() as u64, 0, 0, 0, 0],
        )
        .map_err(task.step_err(&step))?;
    if r < 0 {
        let errno = nix::errno::Errno::from_raw(-r as i32);
        if errno == nix::errno::Errno::EEXIST {
            return Err(RestoreError::PidInUse {
                pid: tid,
                comm: crate::checks::pid_holder(tid),
            });
        }
        return Err(RestoreError::RemoteCall {
            pid: task.pid as u32,
            step,
            call: "clone3",
            errno,
        });
    }
    if r != i64::from(tid) {
        return Err(RestoreError::Inconsistent(format!(
            "{step}: clone3 returned {r}"
        )));
    }
    let mut tracee =
        Tracee::seize(tid as i32, Options::PTRACE_O_EXITKILL).map_err(task.step_err(&step))?;
    tracee.interrupt().map_err(task.step_err(&step))?;
    loop {
        match tracee.wait_stop().map_err(task.step_err(&step))? {
            Stop::Interrupt => break,
            // Every signal is blocked; a group-stop or event is left as it is.
            Stop::Signal(sig) => tracee.cont(sig).map_err(task.step_err(&step))?,
            Stop::Group(_) | Stop::Event { .. } | Stop::Syscall => {
                tracee.interrupt().map_err(task.step_err(&step))?;
                tracee.cont(0).map_err(task.step_err(&step))?;
            }
        }
    }
    Ok(tracee)
}

/// The little-endian u64 at byte `o` of `b`, 0 when `b` is too short.
pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(o..o + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// The XSAVE area to write for `t` on this machine (`host` is the stub's own area): the image's
/// when the layouts agree, re-laid when only fixed-place components are live, else a refusal.
pub fn xsave_for_host(t: &Thread, host: &[u8], image_xcr0: u64) -> Result<Option<Vec<u8>>> {
    if t.xsave.is_empty() {
        return Ok(None);
    }
    let host_xcr0 = u64_at(host, 464);
    let missing = t.xstate_bv & !host_xcr0;
    if missing != 0 {
        return Err(RestoreError::XsaveFeatures {
            image: image_xcr0,
            host: host_xcr0,
            missing,
        });
    }
    if t.xsave.len() == host.len() {
        return Ok(Some(t.xsave.clone()));
    }
    if t.xstate_bv & !XSTATE_FIXED_LAYOUT != 0 || t.xsave.len() < XSAVE_FIXED_END.min(host.len()) {
        return Err(RestoreError::XsaveLayout {
            tid: t.tid,
            image: t.xsave.len(),
            host: host.len(),
            live: t.xstate_bv,
        });
    }
    let mut out = vec![0u8; host.len()];
    let n = XSAVE_FIXED_END.min(host.len());
    out[..n].copy_from_slice(&t.xsave[..n]);
    // The software-reserved words describe this machine, not the image's.
    out[464..512].copy_from_slice(&host[464..512]);
    Ok(Some(out))
}

/// Per-thread kernel state, run inside that thread: name, sigaltstack, rseq, robust list and
/// clear_child_tid.
pub fn restore_thread_state(task: &mut Task, t: &Thread) -> Result<()> {
    if !t.comm.is_empty() {
        let step = format!("thread {}: setting its name", t.tid);
        let mut comm: Vec<u8> = t.comm.as_bytes().iter().copied().take(15).collect();
        comm.push(0);
        let addr = task.put(&step, 0, &comm)?;
        task.call(&step, Sysno::Prctl, &[PR_SET_NAME, addr])?;
    }
    let ss = &t.sigaltstack;
    if ss.sp != 0 || ss.size != 0 || ss.flags & libc::SS_DISABLE as u32 == 0 {
        task.with_syscaller(&format!("thread {}: setting sigaltstack", t.tid), |sc| {
            sc.set_sigaltstack(ss)
        })?;
    }
    if let Some(r) = t.rseq.filter(|r| r.addr != 0) {
        let step = format!("thread {}: registering rseq at {:#x}", t.tid, r.addr);
        task.call(
            &step,
            Sysno::Rseq,
            &[r.addr, u64::from(r.len), 0, u64::from(r.sig)],
        )?;
    }
    if t.robust_list != 0 {
        let step = format!("thread {}: setting the robust list", t.tid);
        task.call(
            &step,
            Sysno::SetRobustList,
            &[t.robust_list, t.robust_list_len],
        )?;
    }
    if t.clear_child_tid != 0 {
        let step = format!("thread {}: set_tid_address", t.tid);
        task.call(&step, Sysno::SetTidAddress, &[t.clear_child_tid])?;
    }
    Ok(())
}

/// Queues a thread's pending signals with their full siginfo. Runs in the thread-group leader:
/// the kernel lets a task queue a signal with a kernel `si_code` only to its own thread group,
/// from the thread whose TID is the group's ID.
pub fn queue_thread_signals(task: &mut Task, pid: u32, t: &Thread) -> Result<()> {
    for s in &t.pending {
        let step = format!("thread {}: queueing signal {}", t.tid, s.signo);
        let info = KernelSigInfo::from(s);
        task.with_syscaller(&step, |sc| {
            sc.rt_tgsigqueueinfo(pid as i32, t.tid as i32, &info)
        })?;
    }
    Ok(())
}

/// Asks for AMX state permission when the thread's XSAVE area holds live tile data.
pub fn request_xstate_perm(task: &mut Task, t: &Thread) -> Result<()> {
    if task.arch == psnc_ptrace::Arch::X86_64 && t.xstate_bv & (1 << XFEATURE_XTILEDATA) != 0 {
        task.call(
            "requesting AMX state permission",
            Sysno::ArchPrctl,
            &[ARCH_REQ_XCOMP_PERM, u64::from(XFEATURE_XTILEDATA)],
        )?;
    }
    Ok(())
}

/// The thread's final user-visible state, written through ptrace with no more remote calls:
/// i386 TLS entries, registers, XSAVE area, and the signal mask.
pub fn finish_thread(task: &mut Task, t: &Thread, xsave: Option<&[u8]>) -> Result<()> {
    let tid = t.tid;
    for d in &t.tls {
        let desc = UserDesc {
            entry_number: d.entry_number,
            base_addr: d.base_addr,
            limit: d.limit,
            flags: d.flags,
        };
        task.tracee
            .set_thread_area(&desc)
            .map_err(task.step_err(format!(
                "thread {tid}: setting TLS entry {}",
                d.entry_number
            )))?;
    }
    let regs = t.regs;
    task.tracee
        .set_regs(&regs)
        .map_err(task.step_err(format!("thread {tid}: setting the registers")))?;
    if let Some(x) = xsave {
        task.tracee
            .set_xstate(x)
            .map_err(task.step_err(format!("thread {tid}: setting the XSAVE area")))?;
    }
    task.tracee
        .set_sigmask(t.sigmask)
        .map_err(task.step_err(format!("thread {tid}: setting the signal mask")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(xsave_len: usize, bv: u64) -> Thread {
        let mut xsave = vec![0xab; xsave_len];
        xsave[512..520].copy_from_slice(&bv.to_le_bytes());
        Thread {
            xsave,
            xstate_bv: bv,
            ..Thread::default()
        }
    }

    fn host(len: usize, xcr0: u64) -> Vec<u8> {
        let mut h = vec![0u8; len];
        h[464..472].copy_from_slice(&xcr0.to_le_bytes());
        h
    }

    #[test]
    fn xsave_same_layout_is_kept() {
        let t = thread(2696, 0xe7);
        assert_eq!(
            xsave_for_host(&t, &host(2696, 0x2e7), 0x2e7).unwrap(),
            Some(t.xsave.clone())
        );
    }

    #[test]
    fn xsave_missing_component_is_refused() {
        let t = thread(2696, 0xe7);
        let err = xsave_for_host(&t, &host(2696, 0x7), 0xe7).unwrap_err();
        assert!(matches!(
            err,
            RestoreError::XsaveFeatures {
                missing: 0xe0,
                host: 0x7,
                ..
            }
        ));
    }

    #[test]
    fn xsave_relaid_when_only_avx_is_live() {
        let t = thread(2696, 0x7);
        let out = xsave_for_host(&t, &host(1088, 0x7), 0xe7).unwrap().unwrap();
        assert_eq!(out.len(), 1088);
        assert_eq!(&out[..464], &t.xsave[..464]);
        assert_eq!(&out[512..832], &t.xsave[512..832]);
        assert!(out[832..].iter().all(|&b| b == 0));
        let t = thread(2696, 0xe7);
        assert!(matches!(
            xsave_for_host(&t, &host(1088, 0xff), 0xe7),
            Err(RestoreError::XsaveLayout {
                image: 2696,
                host: 1088,
                ..
            })
        ));
    }
}
