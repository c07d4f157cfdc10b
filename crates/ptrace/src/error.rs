//! The one error type of this crate.
//!
//! Every variant names the operation that failed and the thread or process it was aimed at, so a
//! message such as "PTRACE_GETREGSET(NT_PRSTATUS) on thread 4242: No such process" is enough to
//! find the failing step without a backtrace.

use nix::errno::Errno;

/// What went wrong while tracing a thread or running a syscall on behalf of one.
#[derive(Debug, thiserror::Error)]
pub enum PtraceError {
    /// A ptrace request failed.
    #[error("{op} on thread {tid}: {errno}{}", hint(*errno))]
    Ptrace {
        /// The request, e.g. `"PTRACE_SEIZE"`.
        op: &'static str,
        /// The thread the request was aimed at.
        tid: i32,
        /// The kernel's error.
        errno: Errno,
    },
    /// A syscall the tool made for itself (not inside the target) failed.
    #[error("{op} for process {pid}: {errno}{}", hint(*errno))]
    Syscall {
        /// The syscall, e.g. `"process_vm_readv"`.
        op: &'static str,
        /// The process (or thread, fd owner) the call concerned; 0 when none.
        pid: i32,
        /// The kernel's error.
        errno: Errno,
    },
    /// Reading or writing a file under `/proc` failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"read"`.
        op: &'static str,
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The traced thread exited while we waited for it to stop.
    #[error("thread {tid} exited with status {status} during {op}")]
    Exited {
        /// The thread.
        tid: i32,
        /// Its exit status.
        status: i32,
        /// What we were doing.
        op: &'static str,
    },
    /// The traced thread was killed by a signal while we waited for it to stop.
    #[error("thread {tid} was killed by signal {signal} during {op}")]
    Killed {
        /// The thread.
        tid: i32,
        /// The signal that killed it.
        signal: i32,
        /// What we were doing.
        op: &'static str,
    },
    /// The thread is not in a ptrace-stop, but the operation needs one.
    #[error("thread {tid} is not stopped; {op} needs a ptrace-stop (call interrupt() and wait_stop() first)")]
    NotStopped {
        /// The thread.
        tid: i32,
        /// The operation that was refused.
        op: &'static str,
    },
    /// The kernel returned a register set of a size this crate does not know.
    #[error("thread {tid}: {regset} has {len} bytes, expected one of {expected:?}")]
    RegsetSize {
        /// The thread.
        tid: i32,
        /// The regset, e.g. `"NT_PRSTATUS"`.
        regset: &'static str,
        /// The size the kernel returned.
        len: usize,
        /// The sizes this crate understands.
        expected: &'static [usize],
    },
    /// The mode from CS and the mode from the NT_PRSTATUS size disagree.
    #[error("thread {tid}: CS {cs:#x} and NT_PRSTATUS size {regset_len} disagree about the mode")]
    ArchMismatch {
        /// The thread.
        tid: i32,
        /// CS from the 64-bit register view.
        cs: u64,
        /// Size of NT_PRSTATUS.
        regset_len: usize,
    },
    /// CS holds a selector that is neither the 64-bit (0x33) nor the 32-bit (0x23) user code
    /// segment.
    #[error(
        "thread {tid}: unknown code segment selector {cs:#x} (not 0x33 x86_64, not 0x23 i386)"
    )]
    UnknownCs {
        /// The thread.
        tid: i32,
        /// The selector.
        cs: u64,
    },
    /// Registers of one layout were given for a thread in the other mode.
    #[error("thread {tid} runs {thread:?} code but the registers given are {given:?}")]
    WrongArch {
        /// The thread.
        tid: i32,
        /// The thread's mode.
        thread: crate::Arch,
        /// The layout of the registers passed in.
        given: crate::Arch,
    },
    /// No executable mapping of the target contains the syscall instruction for its mode.
    #[error("process {pid}: no executable mapping holds a {arch:?} syscall instruction (is [vdso] unmapped?)")]
    NoSyscallInsn {
        /// The process.
        pid: i32,
        /// The mode whose instruction was searched for.
        arch: crate::Arch,
    },
    /// The syscall has no number in this mode (e.g. `arch_prctl` does not exist for i386 callers
    /// in the form needed).
    #[error("{sysno:?} has no {arch:?} syscall number")]
    NoSyscallNr {
        /// The syscall.
        sysno: crate::Sysno,
        /// The mode.
        arch: crate::Arch,
    },
    /// The thread stopped for a reason the remote-syscall engine cannot handle.
    #[error("thread {tid}: unexpected stop {stop:?} during {op}")]
    UnexpectedStop {
        /// The thread.
        tid: i32,
        /// The stop that arrived.
        stop: crate::Stop,
        /// What we were doing.
        op: &'static str,
    },
    /// The syscall instruction given to the remote-syscall engine faulted (not mapped, not
    /// executable); the thread's registers were put back and the fault was discarded.
    #[error("thread {tid}: injected syscall instruction at {addr:#x} faulted with signal {signal} (not an executable syscall instruction?)")]
    InjectionFault {
        /// The thread.
        tid: i32,
        /// The fault signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE).
        signal: i32,
        /// The instruction address used.
        addr: u64,
    },
    /// A syscall run inside the target returned an error.
    #[error("thread {tid}: remote {sysno:?} failed: {errno}")]
    RemoteSyscall {
        /// The thread that ran the call.
        tid: i32,
        /// The syscall.
        sysno: crate::Sysno,
        /// The error it returned.
        errno: Errno,
    },
    /// A memory transfer moved fewer bytes than asked.
    #[error("process {pid}: {op} at {addr:#x}: only {done} of {len} bytes transferred")]
    ShortTransfer {
        /// The process.
        pid: i32,
        /// `"read"` or `"write"`.
        op: &'static str,
        /// Where the transfer started.
        addr: u64,
        /// Bytes asked for.
        len: usize,
        /// Bytes moved.
        done: usize,
    },
    /// An argument does not fit the target's mode (e.g. an address above 4 GiB for an i386 task).
    #[error("thread {tid}: value {value:#x} for {what} does not fit a {arch:?} register")]
    DoesNotFit {
        /// The thread.
        tid: i32,
        /// What the value is.
        what: &'static str,
        /// The value.
        value: u64,
        /// The target's mode.
        arch: crate::Arch,
    },
    /// A `/dev/checkpoint` command failed.
    #[error("{op} on /dev/checkpoint for thread {tid}: {errno}{}", kmod_hint(*errno))]
    Kmod {
        /// The command, e.g. `"PSNC_CP_GET_SIGACTIONS"`.
        op: &'static str,
        /// The thread asked about (0 for GET_VERSION).
        tid: i32,
        /// The module's error.
        errno: Errno,
    },
}

/// What the module's errors mean (kmod/README.md, "Errors").
fn kmod_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOTTY => " (the module does not know this command: load kmod/psnc_checkpoint.ko of this tree)",
        Errno::EPERM => " (it needs CAP_SYS_PTRACE, and the caller must be the thread that ptrace-attached the target)",
        Errno::EBUSY => " (the thread is not in a ptrace stop)",
        Errno::ESRCH => " (no such thread, or it is exiting)",
        Errno::EINVAL => " (bad header: this tool and the module disagree about the ABI)",
        _ => "",
    }
}

/// Adds what the user can do for the errors with a usual cause.
fn hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EPERM => {
            " (are you root or the owner, with ptrace allowed by kernel.yama.ptrace_scope?)"
        }
        Errno::ESRCH => " (the thread is gone, or not stopped under our trace)",
        _ => "",
    }
}

/// Shorthand for this crate's results.
pub type Result<T> = std::result::Result<T, PtraceError>;
