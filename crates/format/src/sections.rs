//! Section kinds and their frozen on-disk encodings.
//!
//! Each metadata section is a postcard-encoded value of a `*V1` struct defined here. postcard is
//! positional and not self-describing, so these structs are FROZEN: a change of meaning or a new
//! field makes a new struct (`VmaV2`) with a new section version and an explicit conversion, or a
//! new section kind. Enums may only gain variants at the end. Class-width fields are `C::Word`
//! (fixed 4 or 8 bytes); every other integer is a postcard varint.
//!
//! The model <-> section conversions live here too; narrowing names the first field that does not
//! fit the class.

use serde::{Deserialize, Serialize};

use crate::class::{Class, Word};
use crate::error::{FormatError, Result};
use crate::layout::{PageIndexEntry, SECTION_CHUNKED, SECTION_CRITICAL, SECTION_SAFE_TO_COPY};
use crate::model;

/// The section kinds of format 1.x.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionKind {
    /// [`IdentityV1`]: versions, time, host, capturing user.
    Identity,
    /// `Vec<ProcessV1>`: the process tree.
    Processes,
    /// `Vec<ThreadV1>`: every thread of every process.
    Threads,
    /// `Vec<VmaV1>`: every VMA of every process.
    Vmas,
    /// Fixed [`PageIndexEntry`] structs: where each stored page run's bytes are.
    PageIndex,
    /// Raw page contents, every run 4096-aligned; chunked digest.
    PageData,
    /// `Vec<StoredFileV1>`: the stored-file table.
    Files,
    /// Raw stored file contents, each file 4096-aligned; chunked digest.
    FileData,
    /// `Vec<FdV1>`: open file descriptors.
    Fds,
    /// `Vec<SignalsV1>`: per-process signal dispositions, shared pending signals, timers.
    Signals,
    /// [`ChunkDigestsV1`]: the per-chunk digests of one chunked section (ancillary).
    ChunkDigests,
    /// `Vec<EpollV1>`: the interest lists of epoll fds (format 1.1). Written only when some
    /// process has an epoll fd, so images without one stay readable by 1.0 readers; critical,
    /// because an epoll fd restored without its watches would never wake its waiters.
    Epoll,
}

impl SectionKind {
    /// Every kind, in the order a writer emits them.
    pub const ALL: [SectionKind; 12] = [
        SectionKind::PageData,
        SectionKind::FileData,
        SectionKind::Identity,
        SectionKind::Processes,
        SectionKind::Threads,
        SectionKind::Vmas,
        SectionKind::PageIndex,
        SectionKind::Files,
        SectionKind::Fds,
        SectionKind::Signals,
        SectionKind::Epoll,
        SectionKind::ChunkDigests,
    ];

    /// The kind number in the section table.
    pub fn number(self) -> u32 {
        match self {
            SectionKind::Identity => 1,
            SectionKind::Processes => 2,
            SectionKind::Threads => 3,
            SectionKind::Vmas => 4,
            SectionKind::PageIndex => 5,
            SectionKind::PageData => 6,
            SectionKind::Files => 7,
            SectionKind::FileData => 8,
            SectionKind::Fds => 9,
            SectionKind::Signals => 10,
            SectionKind::ChunkDigests => 11,
            SectionKind::Epoll => 12,
        }
    }

    /// The kind for a number, if this reader knows it.
    pub fn from_number(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.number() == n)
    }

    /// The name used in messages, `--section` and the spec.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Identity => "identity",
            SectionKind::Processes => "processes",
            SectionKind::Threads => "threads",
            SectionKind::Vmas => "vmas",
            SectionKind::PageIndex => "page-index",
            SectionKind::PageData => "page-data",
            SectionKind::Files => "files",
            SectionKind::FileData => "file-data",
            SectionKind::Fds => "fds",
            SectionKind::Signals => "signals",
            SectionKind::ChunkDigests => "chunk-digests",
            SectionKind::Epoll => "epoll",
        }
    }

    /// Parses a name as printed by [`SectionKind::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The newest version of this section's encoding that this crate reads and writes.
    pub fn current_version(self) -> u16 {
        1
    }

    /// The section flags a writer sets.
    pub fn flags(self) -> u16 {
        match self {
            SectionKind::PageData | SectionKind::FileData => SECTION_CRITICAL | SECTION_CHUNKED,
            SectionKind::ChunkDigests => SECTION_SAFE_TO_COPY,
            _ => SECTION_CRITICAL,
        }
    }

    /// Whether the section's body is raw bytes (not postcard).
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            SectionKind::PageData | SectionKind::FileData | SectionKind::PageIndex
        )
    }

    /// Whether the section must appear exactly once in a 1.x image. The others appear at most
    /// once (chunk-digests once per chunked section).
    pub fn required(self) -> bool {
        !matches!(self, SectionKind::ChunkDigests | SectionKind::Epoll)
    }
}

impl std::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of a section kind number for messages, known or not.
pub fn kind_name(n: u32) -> String {
    SectionKind::from_number(n).map_or_else(|| format!("unknown kind {n:#x}"), |k| k.name().into())
}

macro_rules! narrow {
    ($m:expr, $at:expr, $f:ident) => {
        <C::Word as Word>::narrow($m.$f, || format!("{}.{}", $at, stringify!($f)))?
    };
}

/// Identity section, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityV1 {
    /// Tool version.
    pub tool_version: String,
    /// Creation time, ns since the epoch.
    pub created_ns: u64,
    /// Host.
    pub host: HostV1,
    /// Capturing uid.
    pub capture_uid: u32,
    /// Capturing gid.
    pub capture_gid: u32,
    /// Capture command line.
    pub capture_cmdline: Vec<String>,
}

/// Host record, version 1 (see [`model::Host`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct HostV1 {
    pub kernel_release: String,
    pub machine: String,
    pub hostname: String,
    pub cpu_vendor: String,
    pub cpu_model: String,
    pub cpu_flags: Vec<String>,
    pub xsave_features: u64,
    pub xsave_size: u32,
}

impl From<&model::Identity> for IdentityV1 {
    fn from(m: &model::Identity) -> Self {
        let h = &m.host;
        IdentityV1 {
            tool_version: m.tool_version.clone(),
            created_ns: m.created_ns,
            host: HostV1 {
                kernel_release: h.kernel_release.clone(),
                machine: h.machine.clone(),
                hostname: h.hostname.clone(),
                cpu_vendor: h.cpu_vendor.clone(),
                cpu_model: h.cpu_model.clone(),
                cpu_flags: h.cpu_flags.clone(),
                xsave_features: h.xsave_features,
                xsave_size: h.xsave_size,
            },
            capture_uid: m.capture_uid,
            capture_gid: m.capture_gid,
            capture_cmdline: m.capture_cmdline.clone(),
        }
    }
}

impl From<IdentityV1> for model::Identity {
    fn from(v: IdentityV1) -> Self {
        let h = v.host;
        model::Identity {
            tool_version: v.tool_version,
            created_ns: v.created_ns,
            host: model::Host {
                kernel_release: h.kernel_release,
                machine: h.machine,
                hostname: h.hostname,
                cpu_vendor: h.cpu_vendor,
                cpu_model: h.cpu_model,
                cpu_flags: h.cpu_flags,
                xsave_features: h.xsave_features,
                xsave_size: h.xsave_size,
            },
            capture_uid: v.capture_uid,
            capture_gid: v.capture_gid,
            capture_cmdline: v.capture_cmdline,
        }
    }
}

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

/// File identity, version 1 (file sizes are LFS 64-bit, not class-width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FileIdentityV1 {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub mode: u32,
    pub sha256: [u8; 32],
}

/// A file reference, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FileRefV1 {
    pub path: String,
    pub deleted: bool,
    pub identity: FileIdentityV1,
    /// Index into the files section.
    pub stored: Option<u32>,
}

impl From<&model::FileRef> for FileRefV1 {
    fn from(m: &model::FileRef) -> Self {
        let i = &m.identity;
        FileRefV1 {
            path: m.path.clone(),
            deleted: m.deleted,
            identity: FileIdentityV1 {
                dev: i.dev,
                ino: i.ino,
                size: i.size,
                mtime_ns: i.mtime_ns,
                mode: i.mode,
                sha256: i.sha256,
            },
            stored: m.stored.map(|f| f.0),
        }
    }
}

impl From<FileRefV1> for model::FileRef {
    fn from(v: FileRefV1) -> Self {
        let i = v.identity;
        model::FileRef {
            path: v.path,
            deleted: v.deleted,
            identity: model::FileIdentity {
                dev: i.dev,
                ino: i.ino,
                size: i.size,
                mtime_ns: i.mtime_ns,
                mode: i.mode,
                sha256: i.sha256,
            },
            stored: v.stored.map(model::FileId),
        }
    }
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
    fn from_model(p: &model::Process) -> Result<Self> {
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

    fn into_model(self) -> model::Process {
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

/// A queued signal, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SigInfoV1 {
    pub signo: u32,
    pub code: i32,
    pub raw: Vec<u8>,
}

impl From<&model::SigInfo> for SigInfoV1 {
    fn from(m: &model::SigInfo) -> Self {
        SigInfoV1 {
            signo: m.signo,
            code: m.code,
            raw: m.raw.clone(),
        }
    }
}
impl From<SigInfoV1> for model::SigInfo {
    fn from(v: SigInfoV1) -> Self {
        model::SigInfo {
            signo: v.signo,
            code: v.code,
            raw: v.raw,
        }
    }
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
    fn from_model(pid: u32, t: &model::Thread) -> Result<Self> {
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

    fn into_model(self) -> model::Thread {
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

/// What a VMA maps, version 1 (append-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum VmaKindV1 {
    Anonymous,
    Heap,
    Stack,
    File,
    Vdso,
    Vvar,
    VvarVclock,
    Vsyscall,
}

/// A VMA, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct VmaV1<C: Class> {
    /// The owning process.
    pub pid: u32,
    pub start: C::Word,
    pub end: C::Word,
    pub prot: u32,
    pub shared: bool,
    pub kind: VmaKindV1,
    /// A file offset: LFS, always 64-bit.
    pub file_offset: u64,
    pub file: Option<FileRefV1>,
    pub vm_flags: u32,
}

impl<C: Class> VmaV1<C> {
    fn from_model(pid: u32, v: &model::Vma) -> Result<Self> {
        let at = format!("vma {:#x} (pid {pid})", v.start);
        Ok(VmaV1 {
            pid,
            start: narrow!(v, at, start),
            end: narrow!(v, at, end),
            prot: v.prot,
            shared: v.shared,
            kind: match v.kind {
                model::VmaKind::Anonymous => VmaKindV1::Anonymous,
                model::VmaKind::Heap => VmaKindV1::Heap,
                model::VmaKind::Stack => VmaKindV1::Stack,
                model::VmaKind::File => VmaKindV1::File,
                model::VmaKind::Vdso => VmaKindV1::Vdso,
                model::VmaKind::Vvar => VmaKindV1::Vvar,
                model::VmaKind::VvarVclock => VmaKindV1::VvarVclock,
                model::VmaKind::Vsyscall => VmaKindV1::Vsyscall,
            },
            file_offset: v.file_offset,
            file: v.file.as_ref().map(FileRefV1::from),
            vm_flags: v.vm_flags,
        })
    }

    fn into_model(self) -> model::Vma {
        model::Vma {
            start: self.start.widen(),
            end: self.end.widen(),
            prot: self.prot,
            shared: self.shared,
            kind: match self.kind {
                VmaKindV1::Anonymous => model::VmaKind::Anonymous,
                VmaKindV1::Heap => model::VmaKind::Heap,
                VmaKindV1::Stack => model::VmaKind::Stack,
                VmaKindV1::File => model::VmaKind::File,
                VmaKindV1::Vdso => model::VmaKind::Vdso,
                VmaKindV1::Vvar => model::VmaKind::Vvar,
                VmaKindV1::VvarVclock => model::VmaKind::VvarVclock,
                VmaKindV1::Vsyscall => model::VmaKind::Vsyscall,
            },
            file_offset: self.file_offset,
            file: self.file.map(Into::into),
            vm_flags: self.vm_flags,
        }
    }
}

/// A stored file, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct StoredFileV1<C: Class> {
    pub sha256: [u8; 32],
    pub size: C::Word,
    pub path: String,
    /// Offset inside the file-data section, 4096-aligned.
    pub data_offset: C::Word,
}

impl<C: Class> StoredFileV1<C> {
    fn from_model(i: usize, f: &model::StoredFile) -> Result<Self> {
        let at = format!("stored file {i} ({})", f.path);
        Ok(StoredFileV1 {
            sha256: f.sha256,
            size: narrow!(f, at, size),
            path: f.path.clone(),
            data_offset: narrow!(f, at, data_offset),
        })
    }

    fn into_model(self) -> model::StoredFile {
        model::StoredFile {
            sha256: self.sha256,
            size: self.size.widen(),
            path: self.path,
            data_offset: self.data_offset.widen(),
        }
    }
}

/// One end of a pipe, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PipeEndV1 {
    pub ino: u64,
    pub write_end: bool,
    pub buffered: Vec<u8>,
    pub capacity: u32,
    pub external: bool,
}

/// What an fd refers to, version 1 (append-only; no class-width fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum FdKindV1 {
    Regular(FileRefV1),
    Directory {
        path: String,
    },
    CharDevice {
        path: String,
        rdev: u64,
    },
    Tty {
        path: String,
        rdev: u64,
    },
    Pipe(PipeEndV1),
    Fifo {
        path: String,
        buffered: Vec<u8>,
    },
    Socket {
        family: u32,
        sock_type: u32,
        ino: u64,
    },
    EventFd {
        count: u64,
    },
    Epoll,
    TimerFd,
    SignalFd {
        mask: u64,
    },
    MemFd {
        name: String,
    },
    Other {
        link: String,
    },
}

/// An open file descriptor, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FdV1 {
    /// The owning process.
    pub pid: u32,
    pub fd: i32,
    pub flags: u32,
    pub cloexec: bool,
    /// File position: LFS, always 64-bit.
    pub pos: u64,
    pub kind: FdKindV1,
}

impl FdV1 {
    fn from_model(pid: u32, f: &model::Fd) -> Self {
        use model::FdKind as K;
        let kind = match &f.kind {
            K::Regular(r) => FdKindV1::Regular(r.into()),
            K::Directory { path } => FdKindV1::Directory { path: path.clone() },
            K::CharDevice { path, rdev } => FdKindV1::CharDevice {
                path: path.clone(),
                rdev: *rdev,
            },
            K::Tty { path, rdev } => FdKindV1::Tty {
                path: path.clone(),
                rdev: *rdev,
            },
            K::Pipe(p) => FdKindV1::Pipe(PipeEndV1 {
                ino: p.ino,
                write_end: p.write_end,
                buffered: p.buffered.clone(),
                capacity: p.capacity,
                external: p.external,
            }),
            K::Fifo { path, buffered } => FdKindV1::Fifo {
                path: path.clone(),
                buffered: buffered.clone(),
            },
            K::Socket {
                family,
                sock_type,
                ino,
            } => FdKindV1::Socket {
                family: *family,
                sock_type: *sock_type,
                ino: *ino,
            },
            K::EventFd { count } => FdKindV1::EventFd { count: *count },
            // The watches go to the epoll section (format 1.1): FdKindV1 is frozen.
            K::Epoll { .. } => FdKindV1::Epoll,
            K::TimerFd => FdKindV1::TimerFd,
            K::SignalFd { mask } => FdKindV1::SignalFd { mask: *mask },
            K::MemFd { name } => FdKindV1::MemFd { name: name.clone() },
            K::Other { link } => FdKindV1::Other { link: link.clone() },
        };
        FdV1 {
            pid,
            fd: f.fd,
            flags: f.flags,
            cloexec: f.cloexec,
            pos: f.pos,
            kind,
        }
    }

    fn into_model(self) -> model::Fd {
        use model::FdKind as K;
        let kind = match self.kind {
            FdKindV1::Regular(r) => K::Regular(r.into()),
            FdKindV1::Directory { path } => K::Directory { path },
            FdKindV1::CharDevice { path, rdev } => K::CharDevice { path, rdev },
            FdKindV1::Tty { path, rdev } => K::Tty { path, rdev },
            FdKindV1::Pipe(p) => K::Pipe(model::PipeEnd {
                ino: p.ino,
                write_end: p.write_end,
                buffered: p.buffered,
                capacity: p.capacity,
                external: p.external,
            }),
            FdKindV1::Fifo { path, buffered } => K::Fifo { path, buffered },
            FdKindV1::Socket {
                family,
                sock_type,
                ino,
            } => K::Socket {
                family,
                sock_type,
                ino,
            },
            FdKindV1::EventFd { count } => K::EventFd { count },
            // Filled from the epoll section by `decode_metadata`.
            FdKindV1::Epoll => K::Epoll {
                watches: Vec::new(),
            },
            FdKindV1::TimerFd => K::TimerFd,
            FdKindV1::SignalFd { mask } => K::SignalFd { mask },
            FdKindV1::MemFd { name } => K::MemFd { name },
            FdKindV1::Other { link } => K::Other { link },
        };
        model::Fd {
            fd: self.fd,
            flags: self.flags,
            cloexec: self.cloexec,
            pos: self.pos,
            kind,
        }
    }
}

/// A signal disposition, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct SigActionV1<C: Class> {
    pub handler: C::Word,
    pub flags: u64,
    pub restorer: C::Word,
    pub mask: u64,
}

/// An interval timer, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ITimerV1 {
    pub value_us: u64,
    pub interval_us: u64,
}

/// A POSIX timer, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct PosixTimerV1<C: Class> {
    pub id: u32,
    pub clock: u32,
    pub notify: u32,
    pub signo: u32,
    pub sigev_value: C::Word,
    pub notify_tid: u32,
    pub value_ns: u64,
    pub interval_ns: u64,
    pub overrun: u32,
}

/// Process-wide signal state, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct SignalsV1<C: Class> {
    /// The owning process.
    pub pid: u32,
    pub actions: Vec<SigActionV1<C>>,
    pub shared_pending: Vec<SigInfoV1>,
    pub itimers: [ITimerV1; 3],
    pub posix_timers: Vec<PosixTimerV1<C>>,
}

impl<C: Class> SignalsV1<C> {
    fn from_model(pid: u32, s: &model::ProcessSignals) -> Result<Self> {
        let mut actions = Vec::with_capacity(s.actions.len());
        for (i, a) in s.actions.iter().enumerate() {
            let at = format!("process {pid} sigaction {}", i + 1);
            actions.push(SigActionV1 {
                handler: narrow!(a, at, handler),
                flags: a.flags,
                restorer: narrow!(a, at, restorer),
                mask: a.mask,
            });
        }
        let mut posix_timers = Vec::with_capacity(s.posix_timers.len());
        for t in &s.posix_timers {
            let at = format!("process {pid} posix timer {}", t.id);
            posix_timers.push(PosixTimerV1 {
                id: t.id,
                clock: t.clock,
                notify: t.notify,
                signo: t.signo,
                sigev_value: narrow!(t, at, sigev_value),
                notify_tid: t.notify_tid,
                value_ns: t.value_ns,
                interval_ns: t.interval_ns,
                overrun: t.overrun,
            });
        }
        let it = |t: &model::ITimer| ITimerV1 {
            value_us: t.value_us,
            interval_us: t.interval_us,
        };
        Ok(SignalsV1 {
            pid,
            actions,
            shared_pending: s.shared_pending.iter().map(SigInfoV1::from).collect(),
            itimers: [it(&s.itimers[0]), it(&s.itimers[1]), it(&s.itimers[2])],
            posix_timers,
        })
    }

    fn into_model(self) -> model::ProcessSignals {
        let it = |t: &ITimerV1| model::ITimer {
            value_us: t.value_us,
            interval_us: t.interval_us,
        };
        model::ProcessSignals {
            actions: self
                .actions
                .iter()
                .map(|a| model::SigAction {
                    handler: a.handler.widen(),
                    flags: a.flags,
                    restorer: a.restorer.widen(),
                    mask: a.mask,
                })
                .collect(),
            shared_pending: self.shared_pending.into_iter().map(Into::into).collect(),
            itimers: [
                it(&self.itimers[0]),
                it(&self.itimers[1]),
                it(&self.itimers[2]),
            ],
            posix_timers: self
                .posix_timers
                .iter()
                .map(|t| model::PosixTimer {
                    id: t.id,
                    clock: t.clock,
                    notify: t.notify,
                    signo: t.signo,
                    sigev_value: t.sigev_value.widen(),
                    notify_tid: t.notify_tid,
                    value_ns: t.value_ns,
                    interval_ns: t.interval_ns,
                    overrun: t.overrun,
                })
                .collect(),
        }
    }
}

/// One watch of an epoll fd, version 1 (see [`model::EpollWatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollWatchV1 {
    /// The watched fd of the same process.
    pub tfd: i32,
    /// The event mask as `/proc/PID/fdinfo` reports it.
    pub events: u32,
    /// `epoll_data`: 64 bits on both architectures, so a varint and not class-width.
    pub data: u64,
}

/// The interest list of one epoll fd, version 1 (section `epoll`, format 1.1). The fd itself is
/// an `FdKindV1::Epoll` entry of the fds section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollV1 {
    /// The owning process.
    pub pid: u32,
    /// The epoll fd.
    pub fd: i32,
    /// Its watches, in fdinfo order.
    pub watches: Vec<EpollWatchV1>,
}

/// The chunk digests of one chunked section, version 1 (ancillary, safe to copy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDigestsV1 {
    /// Kind number of the section the digests belong to (each chunked kind appears once).
    pub section_kind: u32,
    /// Chunk size in bytes (`1 << header.chunk_shift`).
    pub chunk_size: u32,
    /// SHA-256 of each chunk, in order; the last chunk may be short.
    pub digests: Vec<[u8; 32]>,
}

/// The encoded metadata sections of a checkpoint, in writing order.
pub struct EncodedMetadata {
    /// `(kind, body)` pairs.
    pub sections: Vec<(SectionKind, Vec<u8>)>,
}

fn postcard_enc<T: Serialize>(kind: SectionKind, v: &T) -> Result<(SectionKind, Vec<u8>)> {
    postcard::to_stdvec(v)
        .map(|b| (kind, b))
        .map_err(|e| FormatError::Invalid(format!("cannot encode section {kind}: {e}")))
}

/// Encodes every metadata section (all but the raw data sections) of `ck` in class `C`.
pub fn encode_metadata<C: Class>(ck: &model::Checkpoint) -> Result<EncodedMetadata> {
    let mut processes = Vec::new();
    let mut threads = Vec::new();
    let mut vmas = Vec::new();
    let mut fds = Vec::new();
    let mut signals = Vec::new();
    let mut epolls = Vec::new();
    let mut index = Vec::new();
    for p in &ck.processes {
        processes.push(ProcessV1::<C>::from_model(p)?);
        for t in &p.threads {
            threads.push(ThreadV1::<C>::from_model(p.pid, t)?);
        }
        for v in &p.vmas {
            vmas.push(VmaV1::<C>::from_model(p.pid, v)?);
        }
        for f in &p.fds {
            fds.push(FdV1::from_model(p.pid, f));
            if let model::FdKind::Epoll { watches } = &f.kind {
                epolls.push(EpollV1 {
                    pid: p.pid,
                    fd: f.fd,
                    watches: watches
                        .iter()
                        .map(|w| EpollWatchV1 {
                            tfd: w.tfd,
                            events: w.events,
                            data: w.data,
                        })
                        .collect(),
                });
            }
        }
        signals.push(SignalsV1::<C>::from_model(p.pid, &p.signals)?);
        for r in &p.pages {
            PageIndexEntry {
                pid: p.pid,
                flags: 0,
                addr: r.addr,
                pages: r.pages,
                data_offset: r.data_offset,
            }
            .encode::<C>(&mut index)?;
        }
    }
    let mut files = Vec::new();
    for (i, f) in ck.files.iter().enumerate() {
        files.push(StoredFileV1::<C>::from_model(i, f)?);
    }
    let mut sections = vec![
        postcard_enc(SectionKind::Identity, &IdentityV1::from(&ck.identity))?,
        postcard_enc(SectionKind::Processes, &processes)?,
        postcard_enc(SectionKind::Threads, &threads)?,
        postcard_enc(SectionKind::Vmas, &vmas)?,
        (SectionKind::PageIndex, index),
        postcard_enc(SectionKind::Files, &files)?,
        postcard_enc(SectionKind::Fds, &fds)?,
        postcard_enc(SectionKind::Signals, &signals)?,
    ];
    // Only when needed: an image without epoll fds stays a valid 1.0 image for older readers.
    if !epolls.is_empty() {
        sections.push(postcard_enc(SectionKind::Epoll, &epolls)?);
    }
    Ok(EncodedMetadata { sections })
}

/// Decodes one postcard section body, naming the section on failure. The body must be consumed
/// exactly: trailing bytes mean the writer and reader disagree on the layout.
pub fn postcard_dec<'a, T: Deserialize<'a>>(
    kind: SectionKind,
    offset: u64,
    body: &'a [u8],
) -> Result<T> {
    let (v, rest) = postcard::take_from_bytes(body).map_err(|e| FormatError::Decode {
        kind: kind.name(),
        offset,
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(FormatError::Decode {
            kind: kind.name(),
            offset,
            detail: format!("{} trailing bytes after the value", rest.len()),
        });
    }
    Ok(v)
}

/// The metadata section bodies a decoder needs, by kind.
pub struct MetadataBodies<'a> {
    /// `(kind, offset in the image, body)`.
    pub bodies: Vec<(SectionKind, u64, &'a [u8])>,
}

impl<'a> MetadataBodies<'a> {
    /// An optional section: absent is fine, more than one is an error.
    fn get_optional(&self, kind: SectionKind) -> Result<Option<(u64, &'a [u8])>> {
        let mut found = self.bodies.iter().filter(|(k, _, _)| *k == kind);
        match (found.next(), found.count()) {
            (None, _) => Ok(None),
            (Some((_, o, b)), 0) => Ok(Some((*o, *b))),
            (Some(_), more) => Err(FormatError::SectionCount {
                kind: kind.name(),
                count: more + 1,
            }),
        }
    }

    fn get(&self, kind: SectionKind) -> Result<(u64, &'a [u8])> {
        self.bodies
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, o, b)| (*o, *b))
            .ok_or(FormatError::SectionCount {
                kind: kind.name(),
                count: 0,
            })
    }
}

fn owner<'m>(
    procs: &'m mut [model::Process],
    pid: u32,
    what: &str,
) -> Result<&'m mut model::Process> {
    procs.iter_mut().find(|p| p.pid == pid).ok_or_else(|| {
        FormatError::Invalid(format!(
            "{what} belongs to pid {pid}, which is not in the image"
        ))
    })
}

/// Decodes the metadata sections of class `C` into a model.
pub fn decode_metadata<C: Class>(m: &MetadataBodies<'_>) -> Result<model::Checkpoint> {
    let (o, b) = m.get(SectionKind::Identity)?;
    let identity: IdentityV1 = postcard_dec(SectionKind::Identity, o, b)?;
    let (o, b) = m.get(SectionKind::Processes)?;
    let procs: Vec<ProcessV1<C>> = postcard_dec(SectionKind::Processes, o, b)?;
    let mut processes: Vec<model::Process> = procs.into_iter().map(ProcessV1::into_model).collect();

    let (o, b) = m.get(SectionKind::Threads)?;
    let threads: Vec<ThreadV1<C>> = postcard_dec(SectionKind::Threads, o, b)?;
    for t in threads {
        let pid = t.pid;
        owner(&mut processes, pid, &format!("thread {}", t.tid))?
            .threads
            .push(t.into_model());
    }
    let (o, b) = m.get(SectionKind::Vmas)?;
    let vmas: Vec<VmaV1<C>> = postcard_dec(SectionKind::Vmas, o, b)?;
    for v in vmas {
        let pid = v.pid;
        owner(&mut processes, pid, "a vma")?
            .vmas
            .push(v.into_model());
    }
    let (o, b) = m.get(SectionKind::Fds)?;
    let fds: Vec<FdV1> = postcard_dec(SectionKind::Fds, o, b)?;
    for f in fds {
        let pid = f.pid;
        owner(&mut processes, pid, &format!("fd {}", f.fd))?
            .fds
            .push(f.into_model());
    }
    if let Some((o, b)) = m.get_optional(SectionKind::Epoll)? {
        let epolls: Vec<EpollV1> = postcard_dec(SectionKind::Epoll, o, b)?;
        let mut seen = std::collections::HashSet::new();
        for e in epolls {
            if !seen.insert((e.pid, e.fd)) {
                return Err(FormatError::Invalid(format!(
                    "the epoll section has two records for pid {} fd {}",
                    e.pid, e.fd
                )));
            }
            let p = owner(
                &mut processes,
                e.pid,
                &format!("epoll record of fd {}", e.fd),
            )?;
            let fd = p.fds.iter_mut().find(|f| f.fd == e.fd);
            let Some(model::Fd {
                kind: model::FdKind::Epoll { watches },
                ..
            }) = fd
            else {
                return Err(FormatError::Invalid(format!(
                    "the epoll section has a record for pid {} fd {}, which is not an epoll fd",
                    e.pid, e.fd
                )));
            };
            watches.extend(e.watches.into_iter().map(|w| model::EpollWatch {
                tfd: w.tfd,
                events: w.events,
                data: w.data,
            }));
        }
    }
    let (o, b) = m.get(SectionKind::Signals)?;
    let sigs: Vec<SignalsV1<C>> = postcard_dec(SectionKind::Signals, o, b)?;
    for s in sigs {
        let pid = s.pid;
        owner(&mut processes, pid, "a signal record")?.signals = s.into_model();
    }
    let (o, b) = m.get(SectionKind::PageIndex)?;
    let esz = PageIndexEntry::size(C::LAYOUT);
    if b.len() % esz != 0 {
        return Err(FormatError::Decode {
            kind: SectionKind::PageIndex.name(),
            offset: o,
            detail: format!(
                "length {} is not a multiple of the entry size {esz}",
                b.len()
            ),
        });
    }
    for chunk in b.chunks_exact(esz) {
        let e = PageIndexEntry::decode::<C>(chunk);
        owner(&mut processes, e.pid, &format!("page run {:#x}", e.addr))?
            .pages
            .push(model::PageRun {
                addr: e.addr,
                pages: e.pages,
                data_offset: e.data_offset,
            });
    }
    let (o, b) = m.get(SectionKind::Files)?;
    let files: Vec<StoredFileV1<C>> = postcard_dec(SectionKind::Files, o, b)?;
    Ok(model::Checkpoint {
        identity: identity.into(),
        processes,
        files: files.into_iter().map(StoredFileV1::into_model).collect(),
    })
}
