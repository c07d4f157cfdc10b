//! Starting the stub task a restore rebuilds into.
//!
//! The stub is generated for the image's mode ([`crate::stub`]), written to a memfd and exec'd
//! with `execveat(AT_EMPTY_PATH)` by a child created with the image's PID (`clone3` `set_tid`).
//! The child execs with `ADDR_NO_RANDOMIZE` (its stack and vdso land at predictable places, which
//! the restore moves out of the way anyway) and, unless `--shell-job`, in a new session. It is
//! seized with `PTRACE_O_EXITKILL` before it execs, so if the restore tool dies at any later point
//! the half-built task dies with it. The stub's entry point is an `int3`: the first stop after the
//! exec is its SIGTRAP, with the instruction pointer right after it.

use std::io::Write;

use psnc_format::model::Arch;
use psnc_ptrace::spawn::{spawn_held, ExecSpec};
use psnc_ptrace::{Options, ProcMem, PtraceError, Stop, Tracee};

use crate::error::{RestoreError, Result};
use crate::placement::{Region, SCRATCH_SIZE};
use crate::remote::Task;
use crate::stub::Stub;

/// Every signal but SIGKILL and SIGSTOP (which cannot be blocked): the mask the task runs the
/// rebuild with, so that timers it arms and signals it queues wait until the final mask is set.
pub const BLOCK_ALL: u64 = !((1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1)));

/// Creates the stub task for an image of mode `arch`, stopped at its `int3`, all signals blocked,
/// with the scratch area of `region` mapped. `pid` chooses its PID (`None`: any, for probes).
pub fn start_stub(
    pid: Option<u32>,
    arch: Arch,
    region: Region,
    new_session: bool,
    verbose: bool,
) -> Result<(Task, Stub)> {
    let started = std::time::Instant::now();
    let shown_pid = pid.unwrap_or(0);
    let stub_err = |why: String| RestoreError::Stub {
        pid: shown_pid,
        why,
    };
    let stub = Stub::generate(arch, region.code()).map_err(|e| stub_err(e.to_string()))?;
    let memfd = psnc_ptrace::sys::memfd_create(c"psnc-stub", libc::MFD_CLOEXEC)
        .map_err(|e| stub_err(format!("creating the stub memfd: {e}")))?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(&stub.bytes)
        .map_err(|e| stub_err(format!("writing the stub: {e}")))?;

    let set_tid = match pid {
        Some(p) => {
            Some(i32::try_from(p).map_err(|_| stub_err(format!("PID {p} is out of range")))?)
        }
        None => None,
    };
    use std::os::fd::AsFd;
    let spec = ExecSpec {
        exe: file.as_fd(),
        argv: vec![c"psnc-stub".to_owned()],
        envp: Vec::new(),
        set_tid,
        personality: Some(libc::ADDR_NO_RANDOMIZE as u32),
        new_session,
    };
    let held = spawn_held(&spec).map_err(|e| match e {
        PtraceError::Syscall {
            op: "clone3",
            errno: nix::errno::Errno::EEXIST,
            ..
        } => RestoreError::PidInUse {
            pid: shown_pid,
            comm: crate::checks::pid_holder(shown_pid),
        },
        PtraceError::Syscall {
            op: "clone3",
            errno: nix::errno::Errno::EPERM,
            ..
        } => RestoreError::NotPermitted {
            what: format!("creating a process with PID {shown_pid} (clone3 set_tid)"),
            need: "CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN: run psnc-restore as root".into(),
        },
        other => stub_err(format!("creating the task: {other}")),
    })?;
    let child = held.pid();
    let mut tracee = Tracee::seize(child, Options::PTRACE_O_EXITKILL)
        .map_err(|e| stub_err(format!("seizing the new task {child}: {e}")))?;
    // From here on, the task dies with us (EXITKILL) or with `kill` below.
    let (_, pidfd) = held
        .exec()
        .map_err(|e| stub_err(format!("exec of the stub: {e}")))?;
    drop(pidfd);
    let first = check_first_stop(&mut tracee, &stub, arch).and_then(|()| {
        ProcMem::open(child, true).map_err(|e| stub_err(format!("opening its memory: {e}")))
    });
    let mem = match first {
        Ok(mem) => mem,
        Err(e) => {
            let _ = tracee.kill();
            return Err(e);
        }
    };
    let mut task = Task {
        pid: child,
        tracee,
        arch,
        insn: stub.syscall_addr,
        batch: None,
        mem,
        scratch: (0, 0),
        verbose,
        started,
    };
    match map_scratch(&mut task, region) {
        Ok(()) => Ok((task, stub)),
        Err(e) => {
            task.kill();
            Err(e)
        }
    }
}

/// Checks the first stop after the exec: the SIGTRAP of the stub's `int3`, in the right mode.
/// Blocks every signal for the rebuild.
fn check_first_stop(tracee: &mut Tracee, stub: &Stub, arch: Arch) -> Result<()> {
    let pid = tracee.tid() as u32;
    let stub_err = |why: String| RestoreError::Stub { pid, why };
    let stop = tracee
        .wait_stop()
        .map_err(|e| stub_err(format!("waiting for the stub: {e}")))?;
    let regs = tracee
        .get_regs()
        .map_err(|e| stub_err(format!("reading the stub's registers: {e}")))?;
    if stop != Stop::Signal(libc::SIGTRAP) || regs.ip() != stub.entry + 1 {
        return Err(stub_err(format!(
            "the stub stopped with {stop:?} at {:#x}, expected its int3 trap at {:#x}",
            regs.ip(),
            stub.entry + 1
        )));
    }
    if regs.arch() != arch {
        return Err(stub_err(format!(
            "the stub runs {:?} code, expected {arch:?}",
            regs.arch()
        )));
    }
    tracee
        .set_sigmask(BLOCK_ALL)
        .map_err(|e| stub_err(format!("blocking signals: {e}")))
}

/// Maps the scratch area at its fixed place in the restore's region.
fn map_scratch(task: &mut Task, region: Region) -> Result<()> {
    let step = "mapping the scratch area";
    let addr = task.call(
        step,
        psnc_ptrace::Sysno::Mmap,
        &[
            region.scratch(),
            SCRATCH_SIZE,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64,
            u64::MAX,
            0,
        ],
    )?;
    if addr != region.scratch() {
        return Err(RestoreError::Stub {
            pid: task.pid as u32,
            why: format!(
                "scratch area mapped at {addr:#x} instead of {:#x}",
                region.scratch()
            ),
        });
    }
    task.scratch = (addr, SCRATCH_SIZE);
    // The batch loop, in a read-execute page of its own below the scratch area (written
    // through /proc/PID/mem): it outlives the stub code, which goes before the exe change.
    let step = "mapping the batch loop";
    let code = region.batch_code();
    let got = task.call(
        step,
        psnc_ptrace::Sysno::Mmap,
        &[
            code,
            crate::stub::PAGE_SIZE,
            (libc::PROT_READ | libc::PROT_EXEC) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64,
            u64::MAX,
            0,
        ],
    )?;
    if got != code {
        return Err(RestoreError::Stub {
            pid: task.pid as u32,
            why: format!("batch loop mapped at {got:#x} instead of {code:#x}"),
        });
    }
    task.write(step, code, psnc_ptrace::batch::loop_code(task.arch))?;
    task.batch = Some(code);
    Ok(())
}
