//! The image's other threads, recreated inside the rebuilt process with their own TIDs.
//!
//! glibc keeps each thread's TID in its thread control block (mutex owners, `pthread_kill`,
//! `pthread_join`), so a thread must come back with the same TID: the leader runs `clone3` with
//! `CLONE_THREAD` and `set_tid` from the stub's clone instruction. The engine single-steps the
//! leader, which traps right after the instruction; the new thread runs on into the stub's `pause`
//! loop and sleeps there (every signal is blocked) until the restore seizes and stops it. From
//! then on it is driven like the leader, through [`Task::in_thread`], and gets its own state with
//! [`crate::task::restore_thread_state`] and [`crate::task::finish_thread`].
//!
//! A new thread starts with what `clone3` gives a `CLONE_VM` child: no rseq registration, no
//! robust list, no clear_child_tid, no alternate signal stack, the leader's (all-blocked) mask.
//! Everything else it shares with the leader (memory, files, handlers, credentials).

use psnc_ptrace::{Options, Stop, Sysno, Tracee};

use crate::error::{RestoreError, Result};
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

/// Creates thread `tid` in the task's process and returns it seized and stopped.
pub fn create_thread(task: &mut Task, stub: &Stub, tid: u32) -> Result<Tracee> {
    let step = format!("creating thread {tid}");
    let tid_addr = task.scratch.0 + ARGS_OFFSET + 128;
    task.put(&step, ARGS_OFFSET + 128, &tid.to_le_bytes())?;
    let mut args = [0u64; 11];
    args[0] = THREAD_FLAGS;
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
                comm: "a thread that took it after the checks".into(),
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
