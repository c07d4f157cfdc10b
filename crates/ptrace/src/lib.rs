//! Safe API over ptrace, remote system calls and the raw syscalls psnc-cr needs.
//!
//! This crate is the one place of the project with `unsafe` syscalls: every other crate drives
//! threads and processes through it. Its parts:
//!
//! | module      | what                                                                       |
//! |-------------|----------------------------------------------------------------------------|
//! | [`tracee`]  | [`Tracee`]: seize, interrupt, wait, park, detach, kill; registers, XSAVE,   |
//! |             | TLS, signal mask, pending signals, rseq                                    |
//! | [`remote`]  | the remote-syscall engine (x86_64 `syscall`, i386 `int 0x80`) and typed    |
//! |             | wrappers ([`RemoteSyscaller`])                                             |
//! | [`batch`]   | many syscalls in one resume: a table run by a small loop in the target     |
//! | [`arch`]    | [`Arch`], [`Regs`] layouts, syscall conventions and numbers of both modes  |
//! |             | (re-exported from psnc-abi, where every kernel type is defined once)       |
//! | [`siginfo`] | `siginfo_t` layouts: which member is live, 64-bit to compat conversion     |
//! |             | (re-exported from psnc-abi)                                                |
//! | [`mem`]     | `process_vm_readv` over many ranges and `/proc/PID/mem`                    |
//! | [`sock`]    | AF_UNIX sockets: the sock_diag dump, peeking queues, socketpair, bind, ... |
//! | [`sys`]     | pidfd_open/getfd, tee, memfd_create, personality, clone3 with set_tid, ... |
//! | [`spawn`]   | a held child that execs from a descriptor (restore's fresh task)           |
//! | [`uffd`]    | [`uffd::WriteTracker`]: which pages a running process writes (userfaultfd  |
//! |             | asynchronous write protection and `PAGEMAP_SCAN`), for pre-copy            |
//! | [`kmod`]    | `/dev/checkpoint` ([`KmodDevice`]): kernel-only state without injection    |
//!
//! A typical capture of one thread:
//! ```no_run
//! use psnc_ptrace::{OnSignal, Options, RemoteSyscaller, Tracee};
//! # fn main() -> psnc_ptrace::Result<()> {
//! let mut t = Tracee::seize(1234, Options::empty())?;
//! t.stop(OnSignal::Deliver)?;
//! let regs = t.get_regs()?;
//! let mut sc = RemoteSyscaller::find(&mut t)?;
//! let brk = sc.brk(0)?;
//! sc.finish()?;
//! t.detach()?; // also done by Drop
//! # let _ = (regs, brk); Ok(()) }
//! ```

// The one crate of the workspace allowed to hold unsafe code (the workspace denies it).
#![allow(unsafe_code)]

pub mod arch;
pub mod batch;
pub mod error;
pub mod kmod;
pub mod mem;
pub mod netlink_sock;
pub mod netlock;
pub mod remote;
pub mod shm;
pub mod siginfo;
pub mod sock;
pub mod spawn;
pub mod sys;
pub mod tracee;
pub mod uffd;
pub mod unix_sock;

pub use error::{PtraceError, Result};
pub use kmod::KmodDevice;
pub use mem::{vm_read, vm_read_exact, vm_write, vm_write_many, ProcMem, RemoteRange};
pub use nix::sys::ptrace::Options;
/// The kernel types this crate reads and writes; defined in psnc-abi, with the same names the
/// image format's model uses.
pub use psnc_abi::{
    xstate_masks, Arch, ITimerSpec, ITimerVal, KernelSigInfo, Regs, Rseq, SigAction, Sysno,
    UserDesc, XstateMasks,
};
pub use remote::{find_syscall_insn, RemoteSyscaller, Snapshot};
pub use tracee::{kill_all, OnSignal, Stop, Tracee};
