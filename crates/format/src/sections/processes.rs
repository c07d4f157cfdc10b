//! Section kind 2, `processes` (FORMAT.md §8.2): the frozen `ProcessV1` with its `ArchV1`,
//! `CredsV1`, `RlimitV1` and `MmV1`, version 1, and their model conversions.

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use super::shared::FileRefV1;
use crate::class::{Class, Word};
use crate::error::Result;
use crate::model;

/// Task architecture, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchV1 {
    /// x86_64.
    X86_64,
    /// i386.
    I386,
}

/// Credentials, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct CredsV1 {
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    pub securebits: u32,
}

/// mm fields, version 1: all class-width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct MmV1<C: Class> {
    pub start_code: C::Word,
    pub end_code: C::Word,
    pub start_data: C::Word,
    pub end_data: C::Word,
    pub start_brk: C::Word,
    pub brk: C::Word,
    pub start_stack: C::Word,
    pub arg_start: C::Word,
    pub arg_end: C::Word,
    pub env_start: C::Word,
    pub env_end: C::Word,
}

impl<C: Class> MmV1<C> {
    fn from_model(m: &model::MmFields, at: &str) -> Result<Self> {
        Ok(MmV1 {
            start_code: narrow!(m, at, start_code),
            end_code: narrow!(m, at, end_code),
            start_data: narrow!(m, at, start_data),
            end_data: narrow!(m, at, end_data),
            start_brk: narrow!(m, at, start_brk),
            brk: narrow!(m, at, brk),
            start_stack: narrow!(m, at, start_stack),
            arg_start: narrow!(m, at, arg_start),
            arg_end: narrow!(m, at, arg_end),
            env_start: narrow!(m, at, env_start),
            env_end: narrow!(m, at, env_end),
        })
    }

    fn into_model(self) -> model::MmFields {
        model::MmFields {
            start_code: self.start_code.widen(),
            end_code: self.end_code.widen(),
            start_data: self.start_data.widen(),
            end_data: self.end_data.widen(),
            start_brk: self.start_brk.widen(),
            brk: self.brk.widen(),
            start_stack: self.start_stack.widen(),
            arg_start: self.arg_start.widen(),
            arg_end: self.arg_end.widen(),
            env_start: self.env_start.widen(),
            env_end: self.env_end.widen(),
        }
    }
}

/// A resource limit, version 1 (`u64::MAX` = infinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct RlimitV1 {
    pub cur: u64,
    pub max: u64,
}

/// A process, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct ProcessV1<C: Class> {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub arch: ArchV1,
    pub comm: String,
    pub creds: CredsV1,
    pub cwd: String,
    pub root: String,
    pub umask: u32,
    pub personality: u32,
    pub rlimits: Vec<RlimitV1>,
    pub exe: FileRefV1,
    pub mm: MmV1<C>,
    pub auxv: Vec<u8>,
    pub cmdline: Vec<u8>,
    pub dumpable: u32,
    pub no_new_privs: bool,
    pub pdeathsig: u32,
    pub child_subreaper: bool,
    pub seccomp_mode: u32,
}

impl<C: Class> ProcessV1<C> {
    pub(super) fn from_model(p: &model::Process) -> Result<Self> {
        let c = &p.creds;
        Ok(ProcessV1 {
            pid: p.pid,
            ppid: p.ppid,
            pgid: p.pgid,
            sid: p.sid,
            arch: match p.arch {
                model::Arch::X86_64 => ArchV1::X86_64,
                model::Arch::I386 => ArchV1::I386,
            },
            comm: p.comm.clone(),
            creds: CredsV1 {
                uids: c.uids,
                gids: c.gids,
                groups: c.groups.clone(),
                cap_inh: c.cap_inh,
                cap_prm: c.cap_prm,
                cap_eff: c.cap_eff,
                cap_bnd: c.cap_bnd,
                cap_amb: c.cap_amb,
                securebits: c.securebits,
            },
            cwd: p.cwd.clone(),
            root: p.root.clone(),
            umask: p.umask,
            personality: p.personality,
            rlimits: p
                .rlimits
                .iter()
                .map(|r| RlimitV1 {
                    cur: r.cur,
                    max: r.max,
                })
                .collect(),
            exe: FileRefV1::from(&p.exe),
            mm: MmV1::from_model(&p.mm, &format!("process {} mm", p.pid))?,
            auxv: p.auxv.clone(),
            cmdline: p.cmdline.clone(),
            dumpable: p.dumpable,
            no_new_privs: p.no_new_privs,
            pdeathsig: p.pdeathsig,
            child_subreaper: p.child_subreaper,
            seccomp_mode: p.seccomp_mode,
        })
    }

    pub(super) fn into_model(self) -> model::Process {
        let c = self.creds;
        model::Process {
            pid: self.pid,
            ppid: self.ppid,
            pgid: self.pgid,
            sid: self.sid,
            arch: match self.arch {
                ArchV1::X86_64 => model::Arch::X86_64,
                ArchV1::I386 => model::Arch::I386,
            },
            comm: self.comm,
            creds: model::Creds {
                uids: c.uids,
                gids: c.gids,
                groups: c.groups,
                cap_inh: c.cap_inh,
                cap_prm: c.cap_prm,
                cap_eff: c.cap_eff,
                cap_bnd: c.cap_bnd,
                cap_amb: c.cap_amb,
                securebits: c.securebits,
            },
            cwd: self.cwd,
            root: self.root,
            umask: self.umask,
            personality: self.personality,
            rlimits: self
                .rlimits
                .iter()
                .map(|r| model::Rlimit {
                    cur: r.cur,
                    max: r.max,
                })
                .collect(),
            exe: self.exe.into(),
            mm: self.mm.into_model(),
            auxv: self.auxv,
            cmdline: self.cmdline,
            dumpable: self.dumpable,
            no_new_privs: self.no_new_privs,
            pdeathsig: self.pdeathsig,
            child_subreaper: self.child_subreaper,
            seccomp_mode: self.seccomp_mode,
            ..Default::default()
        }
    }
}
