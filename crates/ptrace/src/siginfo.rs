//! `siginfo_t` in the two modes: the 64-bit layout ptrace gives us, and the compat layout an
//! i386 task passes to `rt_tgsigqueueinfo` through `int 0x80`.
//!
//! The layout rules are plain byte work and live in psnc-abi ([`psnc_abi::siginfo`]); this
//! module re-exports them so that `psnc_ptrace::siginfo::to_compat` keeps naming them.

pub use psnc_abi::siginfo::*;
