//! Section kind 3, `threads` (FORMAT.md §8.3): the frozen `ThreadV1` with its `RegsV1`,
//! `UserDescV1`, `SigAltStackV1`, `RseqV1` and `RestartV1`, version 1, and their model
//! conversions.

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use super::shared::SigInfoV1;
use crate::class::{Class, Word};
use crate::error::Result;
use crate::model;

/// Registers, version 1: the NT_PRSTATUS regset in kernel order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegsV1 {
    /// x86_64 `user_regs_struct`.
    X86_64([u64; 27]),
    /// i386 `user_regs_struct`.
    I386([u32; 17]),
}

/// An i386 TLS descriptor, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct UserDescV1 {
    pub entry_number: u32,
    pub base_addr: u32,
    pub limit: u32,
    pub flags: u32,
}

/// `stack_t`, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct SigAltStackV1<C: Class> {
    pub sp: C::Word,
    pub flags: u32,
    pub size: C::Word,
}

/// rseq registration, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct RseqV1<C: Class> {
    pub addr: C::Word,
    pub len: u32,
    pub sig: u32,
    pub flags: u32,
}

/// Syscall-restart record, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum RestartV1 {
    None,
    Reissue { nr: u64, code: i64 },
}

/// A thread, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct ThreadV1<C: Class> {
    /// The owning process.
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub regs: RegsV1,
    pub xsave: Vec<u8>,
    pub xstate_bv: u64,
    pub fs_base: C::Word,
    pub gs_base: C::Word,
    pub tls: Vec<UserDescV1>,
    pub sigmask: u64,
    pub pending: Vec<SigInfoV1>,
    pub sigaltstack: SigAltStackV1<C>,
    pub clear_child_tid: C::Word,
    pub robust_list: C::Word,
    pub robust_list_len: C::Word,
    pub rseq: Option<RseqV1<C>>,
    pub restart: RestartV1,
}

impl<C: Class> ThreadV1<C> {
    pub(super) fn from_model(pid: u32, t: &model::Thread) -> Result<Self> {
        let at = format!("thread {} (pid {pid})", t.tid);
        let ss = &t.sigaltstack;
        Ok(ThreadV1 {
            pid,
            tid: t.tid,
            comm: t.comm.clone(),
            regs: match &t.regs {
                model::Regs::X86_64(r) => RegsV1::X86_64(*r),
                model::Regs::I386(r) => RegsV1::I386(*r),
            },
            xsave: t.xsave.clone(),
            xstate_bv: t.xstate_bv,
            fs_base: narrow!(t, at, fs_base),
            gs_base: narrow!(t, at, gs_base),
            tls: t
                .tls
                .iter()
                .map(|d| UserDescV1 {
                    entry_number: d.entry_number,
                    base_addr: d.base_addr,
                    limit: d.limit,
                    flags: d.flags,
                })
                .collect(),
            sigmask: t.sigmask,
            pending: t.pending.iter().map(SigInfoV1::from).collect(),
            sigaltstack: SigAltStackV1 {
                sp: narrow!(ss, format!("{at}.sigaltstack"), sp),
                flags: ss.flags,
                size: narrow!(ss, format!("{at}.sigaltstack"), size),
            },
            clear_child_tid: narrow!(t, at, clear_child_tid),
            robust_list: narrow!(t, at, robust_list),
            robust_list_len: narrow!(t, at, robust_list_len),
            rseq: match &t.rseq {
                None => None,
                Some(r) => Some(RseqV1 {
                    addr: narrow!(r, format!("{at}.rseq"), addr),
                    len: r.len,
                    sig: r.sig,
                    flags: r.flags,
                }),
            },
            restart: match t.restart {
                model::SyscallRestart::None => RestartV1::None,
                model::SyscallRestart::Reissue { nr, code } => RestartV1::Reissue { nr, code },
            },
        })
    }

    pub(super) fn into_model(self) -> model::Thread {
        model::Thread {
            tid: self.tid,
            comm: self.comm,
            regs: match self.regs {
                RegsV1::X86_64(r) => model::Regs::X86_64(r),
                RegsV1::I386(r) => model::Regs::I386(r),
            },
            xsave: self.xsave,
            xstate_bv: self.xstate_bv,
            fs_base: self.fs_base.widen(),
            gs_base: self.gs_base.widen(),
            tls: self
                .tls
                .iter()
                .map(|d| model::UserDesc {
                    entry_number: d.entry_number,
                    base_addr: d.base_addr,
                    limit: d.limit,
                    flags: d.flags,
                })
                .collect(),
            sigmask: self.sigmask,
            pending: self.pending.into_iter().map(Into::into).collect(),
            sigaltstack: model::SigAltStack {
                sp: self.sigaltstack.sp.widen(),
                flags: self.sigaltstack.flags,
                size: self.sigaltstack.size.widen(),
            },
            clear_child_tid: self.clear_child_tid.widen(),
            robust_list: self.robust_list.widen(),
            robust_list_len: self.robust_list_len.widen(),
            rseq: self.rseq.map(|r| model::Rseq {
                addr: r.addr.widen(),
                len: r.len,
                sig: r.sig,
                flags: r.flags,
            }),
            restart: match self.restart {
                RestartV1::None => model::SyscallRestart::None,
                RestartV1::Reissue { nr, code } => model::SyscallRestart::Reissue { nr, code },
            },
        }
    }
}
