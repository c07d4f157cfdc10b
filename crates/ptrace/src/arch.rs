//! The two user modes of an x86_64 kernel, their register layouts, syscall conventions and
//! numbers.
//!
//! They are kernel ABI and so live in psnc-abi, the one home of the kernel types that capture,
//! the image format and restore share; this module re-exports them so that
//! `psnc_ptrace::arch::{Arch, Regs, Sysno, x86_64, i386, restart, ...}` keep naming them. The
//! rest of this crate asks an [`Arch`] or a [`Regs`] and never matches on the mode itself.

pub use psnc_abi::arch::*;
pub use psnc_abi::regs::*;
pub use psnc_abi::sysno::Sysno;
