//! The kernel ABI psnc-cr speaks, defined once.
//!
//! Capture reads kernel objects through psnc-ptrace, the format stores them in its model, restore
//! hands them back to the kernel through psnc-ptrace again. Each of those objects is one type,
//! here, with the same name on every side: a sigaction read by a remote `rt_sigaction` is the
//! [`SigAction`] the image stores and the one restore installs. This crate is a leaf (no other
//! crate of the workspace below it) and holds no `unsafe`: it is plain data and the byte layouts
//! of the two user modes of an x86_64 kernel.
//!
//! | module      | what                                                                      |
//! |-------------|---------------------------------------------------------------------------|
//! | [`aio`]     | the AIO ring header [`aio::AioRingHeader`] and [`aio::Iocb`] (`io_setup`, |
//! |             | `io_submit`)                                                              |
//! | [`arch`]    | [`Arch`]: the two modes, their code selectors, NT_PRSTATUS sizes, syscall |
//! |             | instruction and word size                                                 |
//! | [`regs`]    | [`Regs`] with its index modules, the syscall-restart codes, XSAVE masks   |
//! | [`sysno`]   | [`Sysno`]: every syscall the project runs in a target, numbered for both  |
//! |             | modes in one table                                                        |
//! | [`signal`]  | [`SigAction`], [`SigAltStack`], [`SigInfo`] and the kernel's 128-byte     |
//! |             | [`KernelSigInfo`]                                                         |
//! | [`siginfo`] | which `siginfo_t` union member is live, 64-bit to compat conversion       |
//! | [`timer`]   | interval and POSIX timers: [`ITimer`], [`PosixTimer`], and the syscall    |
//! |             | structs [`ITimerVal`], [`ITimerSpec`]                                     |
//! | [`rseq`]    | [`Rseq`]: a thread's rseq registration                                    |
//! | [`socket`]  | socket families, types and protocols by name, for messages                |
//! | [`tls`]     | [`UserDesc`]: an i386 GDT TLS entry                                       |
//!
//! Where a kernel struct's layout differs between the modes, its type has `to_bytes(arch)` and
//! `from_bytes(arch, ..)` for the bytes a syscall of that mode reads or writes; the fields are
//! always widened to the 64-bit size. The serde derives are what the image format's model
//! stores; the format converts them to frozen per-version on-disk structs, so a field here must
//! never change its meaning.

#![forbid(unsafe_code)]

pub mod aio;
pub mod arch;
mod bytes;
pub mod regs;
pub mod rseq;
pub mod siginfo;
pub mod signal;
pub mod socket;
pub mod sysno;
pub mod timer;
pub mod tls;

pub use arch::Arch;
pub use regs::{xstate_masks, Regs, XstateMasks};
pub use rseq::Rseq;
pub use signal::{KernelSigInfo, SigAction, SigAltStack, SigInfo};
pub use sysno::Sysno;
pub use timer::{ITimer, ITimerSpec, ITimerVal, PosixTimer};
pub use tls::UserDesc;
