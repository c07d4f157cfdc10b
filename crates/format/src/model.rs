//! The in-memory model of a checkpoint: what a checkpoint *is*, independent of how it is stored.
//!
//! Capture fills a [`Checkpoint`]; restore and imgtool read one. Nothing here knows about bytes on
//! disk: the `sections` module converts to and from the frozen, per-section-version on-disk structs of
//! either layout class. Every address, size and file offset is a `u64` here; the 32-bit layout class
//! narrows them on write and names the first field that does not fit.
//!
//! Bulk data (page contents, stored file contents) is *not* part of the model: the model holds
//! indexes ([`PageRun`], [`StoredFile`]) and the bytes live in raw sections that a reader maps.

use serde::{Deserialize, Serialize};

/// The kernel types the model stores, defined once in psnc-abi: capture reads them through
/// psnc-ptrace and restore hands them back as the very same types. Their serde derives and
/// field meanings are part of what the frozen sections convert, so they change only with a
/// format change.
pub use psnc_abi::{
    Arch, ITimer, PosixTimer, Regs, Rseq, SigAction, SigAltStack, SigInfo, UserDesc,
};

/// A whole checkpoint: identity, every process of the tree, and the indexes of the bulk data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Who made the image, when, where, and of what.
    pub identity: Identity,
    /// The processes, the root of the captured tree first, parents before children.
    pub processes: Vec<Process>,
    /// Every stored file (executables, mapped libraries, deleted-but-open files), deduplicated by
    /// content hash. Processes refer to them by [`FileId`].
    pub files: Vec<StoredFile>,
    /// The open file descriptions held by two or more fds (format 1.3, `fd-shares`): after a
    /// `dup` or a fork, one offset and one set of status flags serve every fd of the group.
    /// An fd in no group has a description of its own.
    pub fd_shares: Vec<FdShare>,
    /// The zombies of the tree: processes that exited and that their parent (a process of the
    /// image) has not reaped yet, in capture order. Format 1.3, section `zombies`.
    pub zombies: Vec<Zombie>,
    /// The shared memory objects (shared anonymous memory), each with its contents stored
    /// once and the mappings of every process that maps it (format 1.3, section
    /// `shared-memory`).
    pub shared_memory: Vec<SharedMemory>,
    /// The pseudo-terminal pairs whose master is an fd of the image (format 1.3, section
    /// `ttys`), by index.
    pub ptys: Vec<Pty>,
    /// The System V shared memory segments attached by some process of the tree (format 1.3,
    /// section `sysv-shm`), each with its contents stored once and every attachment. A segment
    /// no process of the tree attaches is not part of a process checkpoint.
    pub sysv_shm: Vec<SysvShm>,
    /// The unix sockets of the image connected to a socket no process of the image holds
    /// (format 1.3, section `unix-peers`), with that peer's name.
    pub unix_peers: Vec<UnixPeer>,
    /// For an incremental image (format 1.4, section `parent`): the image it was captured
    /// against, and which of its pages and stored files are that image's. `None` for a full
    /// image, and in the flattened view [`Image::with_parents`](crate::Image::with_parents)
    /// gives, where the parent's pages and files are merged in.
    pub parent: Option<Parent>,
}

/// The parent of an incremental image (`psnc-capture --parent`): pages and stored files that
/// had not changed since the parent image was captured are not stored again, only referenced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Parent {
    /// The parent's image digest (its trailer's `image_sha256`, spec §9): the one image this
    /// one completes. A parent with another digest is refused.
    pub digest: [u8; 32],
    /// Where the parent was at capture (psnc-capture writes an absolute path; a relative one
    /// is relative to the image's directory), where readers look for it first.
    pub path: String,
    /// The page runs whose contents are the parent's pages at the same addresses of the process
    /// with the same PID (or, the parent being incremental too, its parent's, and so on).
    /// Sorted by PID and address, disjoint, each inside a VMA and apart from the image's own runs.
    pub pages: Vec<ParentRun>,
    /// The entries of [`Checkpoint::files`] whose contents are not in this image's file data
    /// but in the parent's: the stored file of the parent chain with the same SHA-256 and size.
    pub files: Vec<FileId>,
}

/// Pages of a process whose contents an incremental image takes from its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ParentRun {
    /// The process (the same PID in the parent).
    pub pid: u32,
    /// Virtual address of the first page.
    pub addr: u64,
    /// Number of 4096-byte pages.
    pub pages: u64,
}

/// A unix socket of the image whose peer is outside it: a connection to a daemon's listener
/// (the peer is the daemon's accepted socket, named like the listener), a datagram socket
/// connected to a bound one (`/dev/log`), a socketpair end whose other end the launcher kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnixPeer {
    /// The socket of the image (its inode).
    pub ino: u64,
    /// Its peer's inode at capture (no socket of the image).
    pub peer_ino: u64,
    /// The peer's name: `sun_path` bytes, a leading NUL for the abstract namespace; empty for
    /// an unnamed peer. Restore connects to it again when something accepts there.
    pub name: Vec<u8>,
}

/// One System V shared memory segment (`shmget`) attached by some process of the image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SysvShm {
    /// Its key (`IPC_PRIVATE` is 0; a segment marked for removal shows key 0 too, and its key
    /// is kept here as 0: it can no longer be found by key).
    pub key: i32,
    /// Its identifier (`shmid`): programs keep it, so restore recreates it with the same one.
    pub shmid: i32,
    /// Its permission bits (`shm_perm.mode & 0o777`).
    pub mode: u32,
    /// Owner uid (`shm_perm.uid`).
    pub uid: u32,
    /// Owner gid (`shm_perm.gid`).
    pub gid: u32,
    /// Creator uid (`shm_perm.cuid`).
    pub cuid: u32,
    /// Creator gid (`shm_perm.cgid`).
    pub cgid: u32,
    /// Its size in bytes as given to `shmget` (`shm_segsz`; not rounded).
    pub size: u64,
    /// Marked for removal (`IPC_RMID` while still attached: `SHM_DEST`): restore marks it again
    /// once every process has attached it.
    pub removed: bool,
    /// Locked in memory (`SHM_LOCK`, `SHM_LOCKED` in `shm_perm.mode`).
    pub locked: bool,
    /// Its stored pages: `addr` is the byte offset into the segment. Pages no run covers read
    /// as zeros.
    pub pages: Vec<PageRun>,
    /// Every attachment, by process and start address, in image order.
    pub attachments: Vec<SysvAttach>,
}

/// One VMA that attaches a [`SysvShm`] (`shmat`): a shared [`VmaKind::Anonymous`] VMA whose
/// `file_offset` is the offset into the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SysvAttach {
    /// The process.
    pub pid: u32,
    /// The start address of its VMA.
    pub start: u64,
    /// Attached read-only (`SHM_RDONLY`: the VMA was never writable).
    pub read_only: bool,
}

/// A pseudo-terminal pair whose master is held in the image (format 1.3). Bytes queued in
/// either direction are not kept: they cannot be read without consuming them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pty {
    /// The index at capture (`TIOCGPTN`): the slave was `/dev/pts/<index>`, device 136:index.
    pub index: u32,
    /// The slave was locked (`TIOCGPTLCK`).
    pub locked: bool,
    /// The master was in packet mode (`TIOCGPKT`).
    pub packet: bool,
    /// The pair's kernel `struct termios` (`TCGETS`), 36 bytes.
    pub termios: Vec<u8>,
    /// The window size (`struct winsize`, `TIOCGWINSZ`), 8 bytes.
    pub winsize: Vec<u8>,
    /// Every fd of the image on the master, in image order.
    pub masters: Vec<FdRef>,
    /// Every fd of the image on the slave (`/dev/pts/<index>`), in image order.
    pub slaves: Vec<FdRef>,
    /// The session (its leader's PID) whose controlling terminal the pair is; 0 for none.
    pub session: u32,
    /// The terminal's foreground process group (`tpgid`), when `session` is set.
    pub foreground: u32,
}

/// One open file description held by two or more fds, of one process or of several (format
/// 1.3). Every member is an fd of the image, of the same kind, with the same flags and offset
/// (the description's); restore opens or creates it once and hands it to every member.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FdShare {
    /// The fds, in image order: by process (as in [`Checkpoint::processes`]), then by number.
    pub fds: Vec<FdRef>,
}

/// One fd of one process of the image.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct FdRef {
    /// The process.
    pub pid: u32,
    /// The fd number in it.
    pub fd: i32,
}

/// A zombie: a child that exited and waits for its parent (a process of the image) to reap it.
/// It has no threads, memory or fds; its own children were reparented at its exit. Restore
/// recreates it so that the parent's `wait` still gets its status, and so that a process group
/// or session it leads keeps existing for the live members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Zombie {
    /// Its PID.
    pub pid: u32,
    /// Its parent, a process of the image.
    pub ppid: u32,
    /// Its process group.
    pub pgid: u32,
    /// Its session.
    pub sid: u32,
    /// How it ended.
    pub status: ExitStatus,
}

/// How a process ended, as `wait(2)` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It called `exit`/`_exit` with this code (`WEXITSTATUS`).
    Exited(u8),
    /// It was killed by `signal` (`WTERMSIG`, 1..=64); `core`: it dumped core (`WCOREDUMP`).
    Killed {
        /// The signal number.
        signal: u8,
        /// Whether a core was dumped.
        core: bool,
    },
}

impl Default for ExitStatus {
    fn default() -> Self {
        ExitStatus::Exited(0)
    }
}

impl ExitStatus {
    /// Decodes a `wait(2)`-style status (`/proc/PID/stat` field 52 of a zombie): `code << 8`, or
    /// the signal with `0x80` for a core. `None` for a status no dead process has (a stop
    /// status, or bits outside the low 16).
    pub fn from_wait_status(status: i32) -> Option<ExitStatus> {
        if !(0..=0xffff).contains(&status) {
            return None;
        }
        let sig = (status & 0x7f) as u8;
        if sig == 0 {
            return Some(ExitStatus::Exited((status >> 8) as u8));
        }
        // 0x7f in the low bits is a stop status; a killing signal leaves the high byte 0.
        if sig == 0x7f || status >> 8 != 0 {
            return None;
        }
        Some(ExitStatus::Killed {
            signal: sig,
            core: status & 0x80 != 0,
        })
    }

    /// The `wait(2)`-style status, the inverse of [`ExitStatus::from_wait_status`].
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => i32::from(code) << 8,
            ExitStatus::Killed { signal, core } => i32::from(signal) | if core { 0x80 } else { 0 },
        }
    }
}

impl std::fmt::Display for ExitStatus {
    /// `exit 7`, `killed by signal 15`, `killed by signal 11 (core dumped)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit {code}"),
            ExitStatus::Killed { signal, core } => {
                write!(f, "killed by signal {signal}")?;
                if *core {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// The identity of an image: versions, time, host and the capture command.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Identity {
    /// Version of the tool that wrote the image (`CARGO_PKG_VERSION` of psnc-capture).
    pub tool_version: String,
    /// Creation time, nanoseconds since the Unix epoch (UTC).
    pub created_ns: u64,
    /// The machine the image was captured on.
    pub host: Host,
    /// Real uid of the capturing user.
    pub capture_uid: u32,
    /// Real gid of the capturing user.
    pub capture_gid: u32,
    /// The capture tool's own command line.
    pub capture_cmdline: Vec<String>,
}

/// The capturing host: kernel and CPU, so a restore can refuse what this machine cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Host {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -m` (always `x86_64` for now: i386 processes run on an x86_64 kernel).
    pub machine: String,
    /// Host name (`uname -n`), informational only.
    pub hostname: String,
    /// CPUID vendor string, e.g. `AuthenticAMD`.
    pub cpu_vendor: String,
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// The CPU feature flags the processes may depend on (the `flags` line of `/proc/cpuinfo`,
    /// sorted). glibc chooses code paths at start-up from these, so a restore needs every one that
    /// matters (see the restore crate's CPU check).
    pub cpu_flags: Vec<String>,
    /// XCR0: the XSAVE feature mask the kernel enabled.
    pub xsave_features: u64,
    /// Size in bytes of the XSAVE area (NT_X86_XSTATE regset) on this host.
    pub xsave_size: u32,
}

/// One process of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Process {
    /// Process id (thread-group id) in the captured PID namespace.
    pub pid: u32,
    /// Parent process id at capture time.
    pub ppid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Session id.
    pub sid: u32,
    /// The architecture of the process's threads (all threads share it).
    pub arch: Arch,
    /// Command name (`/proc/PID/comm`, at most 15 bytes).
    pub comm: String,
    /// Credentials.
    pub creds: Creds,
    /// Working directory (absolute path).
    pub cwd: String,
    /// Root directory (absolute path, `/` unless chrooted).
    pub root: String,
    /// File mode creation mask.
    pub umask: u32,
    /// `personality(2)` flags.
    pub personality: u32,
    /// Resource limits, indexed by `RLIMIT_*` number (16 entries on Linux).
    pub rlimits: Vec<Rlimit>,
    /// The executable: its path at capture and its stored contents, if stored.
    pub exe: FileRef,
    /// The mm fields of `prctl(PR_SET_MM_MAP)`.
    pub mm: MmFields,
    /// The auxiliary vector as raw bytes in the task's own layout (u64 pairs for x86_64, u32 pairs
    /// for i386), as `/proc/PID/auxv` gives it.
    pub auxv: Vec<u8>,
    /// `/proc/PID/cmdline` bytes (NUL-separated), informational; the memory holds the real ones.
    pub cmdline: Vec<u8>,
    /// Whether the process is dumpable (`PR_GET_DUMPABLE`).
    pub dumpable: u32,
    /// `PR_SET_NO_NEW_PRIVS` state.
    pub no_new_privs: bool,
    /// Parent-death signal (`PR_GET_PDEATHSIG`), 0 for none.
    pub pdeathsig: u32,
    /// `PR_SET_CHILD_SUBREAPER` state.
    pub child_subreaper: bool,
    /// Seccomp mode from `/proc/PID/status` (0 = disabled; capture refuses filter mode for now).
    pub seccomp_mode: u32,
    /// Every thread, the thread-group leader first.
    pub threads: Vec<Thread>,
    /// Every VMA, sorted by start address, disjoint.
    pub vmas: Vec<Vma>,
    /// The stored page contents, sorted by address, each run inside one VMA.
    pub pages: Vec<PageRun>,
    /// Open file descriptors, sorted by number.
    pub fds: Vec<Fd>,
    /// Signal dispositions, process-wide pending signals and timers.
    pub signals: ProcessSignals,
    /// AIO contexts (`io_setup`), sorted by ring address. Their rings are not among `vmas`:
    /// restore recreates each with `io_setup` and moves it to its address.
    pub aio: Vec<AioContext>,
}

/// One AIO context (`io_setup`) of a process: its ring mapping and the completed events the
/// ring still holds. Requests in flight are not part of it (capture refuses the rings it can
/// tell have them, see the capture crate's `aio` module).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AioContext {
    /// The ring's address, which is also the context id (`aio_context_t`).
    pub ring: u64,
    /// The ring mapping's length in bytes (whole pages).
    pub ring_len: u64,
    /// The ring's number of event slots (its header's `nr`).
    pub nr_events: u32,
    /// The header's `head`: the next slot the process consumes.
    pub head: u32,
    /// The header's `tail`: the next slot the kernel fills.
    pub tail: u32,
    /// The completed, not yet consumed events, from `head` to `tail` (wrapping at
    /// `nr_events`), 32 bytes (`struct io_event`) each.
    pub events: Vec<u8>,
}

/// Credentials of a process (from `/proc/PID/status`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Creds {
    /// Real, effective, saved and filesystem uid.
    pub uids: [u32; 4],
    /// Real, effective, saved and filesystem gid.
    pub gids: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Inheritable capability set.
    pub cap_inh: u64,
    /// Permitted capability set.
    pub cap_prm: u64,
    /// Effective capability set.
    pub cap_eff: u64,
    /// Bounding set.
    pub cap_bnd: u64,
    /// Ambient set.
    pub cap_amb: u64,
    /// `prctl(PR_GET_SECUREBITS)`.
    pub securebits: u32,
}

/// One resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rlimit {
    /// Soft limit (`u64::MAX` = RLIM_INFINITY).
    pub cur: u64,
    /// Hard limit (`u64::MAX` = RLIM_INFINITY).
    pub max: u64,
}

/// The memory-layout fields that `prctl(PR_SET_MM, PR_SET_MM_MAP)` restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MmFields {
    /// Start of the text segment.
    pub start_code: u64,
    /// End of the text segment.
    pub end_code: u64,
    /// Start of the data segment.
    pub start_data: u64,
    /// End of the data segment.
    pub end_data: u64,
    /// Start of the heap (`start_brk`).
    pub start_brk: u64,
    /// Current program break, from an injected `brk(0)`.
    pub brk: u64,
    /// Bottom of the initial stack (argv/envp live above).
    pub start_stack: u64,
    /// Start of the argument strings.
    pub arg_start: u64,
    /// End of the argument strings.
    pub arg_end: u64,
    /// Start of the environment strings.
    pub env_start: u64,
    /// End of the environment strings.
    pub env_end: u64,
}

/// A reference to a file by path, optionally with its stored contents.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileRef {
    /// The path at capture time (without the ` (deleted)` suffix).
    pub path: String,
    /// The file had been unlinked at capture time.
    pub deleted: bool,
    /// Identity of the file at capture time, to tell whether the file on disk is still the same.
    pub identity: FileIdentity,
    /// The stored contents, if stored (`None` with `--no-store-files` or for special files).
    pub stored: Option<FileId>,
}

/// What identifies a file's contents at capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileIdentity {
    /// Device number (`st_dev`, kernel encoding).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Mode bits and file type (`st_mode`).
    pub mode: u32,
    /// SHA-256 of the contents (all zero when not computed, e.g. a device).
    pub sha256: [u8; 32],
}

/// Index into [`Checkpoint::files`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct FileId(pub u32);

/// A file whose contents are stored in the image, once per distinct content.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoredFile {
    /// SHA-256 of the contents; the deduplication key.
    pub sha256: [u8; 32],
    /// Length of the contents in bytes.
    pub size: u64,
    /// A path the contents were seen under (the first one), informational.
    pub path: String,
    /// Byte offset of the contents inside the file-data section (4096-aligned). Filled by the
    /// writer; capture leaves it 0.
    pub data_offset: u64,
}

/// One shared memory object: the kernel object behind shared mappings of several processes, or
/// of one (a `MAP_SHARED | MAP_ANONYMOUS` mapping and the copies fork made of it). Its contents
/// are stored once, whichever process they were read through.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SharedMemory {
    /// What the object is.
    pub kind: SharedMemoryKind,
    /// Device of the object's inode at capture (the shmem inode `/proc/PID/maps` shows),
    /// informational.
    pub dev: u64,
    /// Inode number at capture: mappings with the same one share the object.
    pub ino: u64,
    /// Size of the object in bytes (a multiple of 4096). It may exceed every mapping of it.
    pub size: u64,
    /// Its stored pages: here `addr` is the byte offset into the object, not an address. Pages
    /// no run covers read as zeros.
    pub pages: Vec<PageRun>,
    /// Every VMA mapping it, by process and start address, in image order. The VMA is a shared
    /// [`VmaKind::Anonymous`] one (also for a memfd) whose `file_offset` is the offset into the
    /// object.
    pub mappings: Vec<SharedMapping>,
}

/// What a shared memory object is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SharedMemoryKind {
    /// Shared anonymous memory: `mmap(MAP_SHARED | MAP_ANONYMOUS)` or a shared mapping of
    /// `/dev/zero` (maps shows `/dev/zero (deleted)`).
    #[default]
    Anonymous,
    /// A memfd (`memfd_create`), mapped shared (maps shows `/memfd:NAME (deleted)`).
    Memfd {
        /// Its name, without the `memfd:` prefix.
        name: String,
        /// Its seals (`F_GET_SEALS`: `F_SEAL_SEAL` 1, `F_SEAL_SHRINK` 2, `F_SEAL_GROW` 4,
        /// `F_SEAL_WRITE` 8, `F_SEAL_FUTURE_WRITE` 16, `F_SEAL_EXEC` 32); a memfd created
        /// without `MFD_ALLOW_SEALING` has `F_SEAL_SEAL`.
        seals: u32,
    },
}

/// One VMA that maps a [`SharedMemory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SharedMapping {
    /// The process.
    pub pid: u32,
    /// The start address of its VMA.
    pub start: u64,
}

/// One thread.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Thread {
    /// Thread id.
    pub tid: u32,
    /// Thread name (`/proc/PID/task/TID/comm`).
    pub comm: String,
    /// General-purpose registers, with syscall restart already resolved (see [`SyscallRestart`]).
    pub regs: Regs,
    /// The XSAVE area exactly as `PTRACE_GETREGSET(NT_X86_XSTATE)` returned it. Bytes 464..511 hold
    /// the supported mask (XCR0), the u64 at 512 the in-use mask (XSTATE_BV).
    pub xsave: Vec<u8>,
    /// The in-use mask (XSTATE_BV) copied out of `xsave`, for checks without parsing.
    pub xstate_bv: u64,
    /// fs base (x86_64; for i386 see `tls`).
    pub fs_base: u64,
    /// gs base (x86_64).
    pub gs_base: u64,
    /// i386 GDT TLS entries 12..14 (`struct user_desc`), empty for x86_64 threads that never set
    /// them.
    pub tls: Vec<UserDesc>,
    /// Blocked signal mask (bit N-1 = signal N).
    pub sigmask: u64,
    /// Per-thread pending signals, in queue order.
    pub pending: Vec<SigInfo>,
    /// Alternate signal stack.
    pub sigaltstack: SigAltStack,
    /// `set_tid_address` value (`PR_GET_TID_ADDRESS`).
    pub clear_child_tid: u64,
    /// Robust futex list head and its length (`get_robust_list`).
    pub robust_list: u64,
    /// Length of the robust list head structure.
    pub robust_list_len: u64,
    /// Registered rseq area, if any.
    pub rseq: Option<Rseq>,
    /// How the thread was stopped relative to a system call.
    pub restart: SyscallRestart,
}

/// The syscall-restart state of a thread at capture. Capture resolves restarts: the registers
/// stored in [`Thread::regs`] already re-issue the interrupted call; this records what was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SyscallRestart {
    /// Not in a system call, or the call had completed.
    #[default]
    None,
    /// Stopped in syscall `nr` with restart code `code` (-512, -513, -514 or -516); the stored
    /// registers point back at the syscall instruction with the original number.
    Reissue {
        /// The interrupted system call number (in the task's own numbering).
        nr: u64,
        /// The kernel's restart code.
        code: i64,
    },
}

/// One virtual memory area, from `/proc/PID/maps` and `smaps`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Vma {
    /// First address (page-aligned).
    pub start: u64,
    /// One past the last address (page-aligned).
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u32,
    /// `MAP_SHARED` (true) or `MAP_PRIVATE` (false).
    pub shared: bool,
    /// What the VMA maps.
    pub kind: VmaKind,
    /// Offset into the mapped file (bytes; 0 for anonymous).
    pub file_offset: u64,
    /// The mapped file, for [`VmaKind::File`].
    pub file: Option<FileRef>,
    /// Selected `VmFlags` from smaps, as [`vm_flags`] bits.
    pub vm_flags: u32,
}

/// What a VMA maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VmaKind {
    /// Private or shared anonymous memory with no name.
    #[default]
    Anonymous,
    /// The `[heap]`.
    Heap,
    /// The main thread's `[stack]`.
    Stack,
    /// A regular file.
    File,
    /// `[vdso]`: its bytes are stored as pages, so restore can compare them with this kernel's.
    Vdso,
    /// `[vvar]`: recorded, not stored.
    Vvar,
    /// `[vvar_vclock]` (6.13+): recorded, not stored.
    VvarVclock,
    /// `[vsyscall]`: recorded, not stored.
    Vsyscall,
}

/// Bits of [`Vma::vm_flags`], named after their smaps `VmFlags` mnemonics.
pub mod vm_flags {
    /// `gd`: grows down.
    pub const GROWSDOWN: u32 = 1 << 0;
    /// `lo`: locked (mlock).
    pub const LOCKED: u32 = 1 << 1;
    /// `dd`: MADV_DONTDUMP.
    pub const DONTDUMP: u32 = 1 << 2;
    /// `dc`: MADV_DONTFORK.
    pub const DONTFORK: u32 = 1 << 3;
    /// `wf`: MADV_WIPEONFORK.
    pub const WIPEONFORK: u32 = 1 << 4;
    /// `hg`: MADV_HUGEPAGE.
    pub const HUGEPAGE: u32 = 1 << 5;
    /// `nh`: MADV_NOHUGEPAGE.
    pub const NOHUGEPAGE: u32 = 1 << 6;
    /// `mg`: MADV_MERGEABLE (KSM).
    pub const MERGEABLE: u32 = 1 << 7;
    /// `rr`: MADV_RANDOM.
    pub const RANDOM: u32 = 1 << 8;
    /// `sr`: MADV_SEQUENTIAL.
    pub const SEQUENTIAL: u32 = 1 << 9;
    /// `io`: VM_IO.
    pub const IO: u32 = 1 << 10;
    /// `sd`: soft-dirty (informational).
    pub const SOFTDIRTY: u32 = 1 << 11;
    /// `ht`: huge pages (hugetlbfs).
    pub const HUGETLB: u32 = 1 << 12;
    /// `lf`: VM_LOCKONFAULT.
    pub const LOCKONFAULT: u32 = 1 << 13;
    /// `ac`: VM_ACCOUNT, charged to the commit limit: a private mapping that was writable at some
    /// point keeps it after its protection is lowered (glibc's RELRO), and it is what keeps such a
    /// mapping apart from a never-writable neighbour. Restore recreates it writable first.
    pub const ACCOUNT: u32 = 1 << 14;
}

/// A run of stored, contiguous pages of one process. The bytes live in the page-data section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PageRun {
    /// Virtual address of the first page.
    pub addr: u64,
    /// Number of 4096-byte pages.
    pub pages: u64,
    /// Byte offset of the run in the page-data section (4096-aligned). Filled by the writer.
    pub data_offset: u64,
}

/// One open file descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fd {
    /// Descriptor number.
    pub fd: i32,
    /// `O_*` status flags from fdinfo (access mode, O_APPEND, O_NONBLOCK, ...).
    pub flags: u32,
    /// Close-on-exec.
    pub cloexec: bool,
    /// File position (fdinfo `pos`).
    pub pos: u64,
    /// What it refers to, with the per-kind state.
    pub kind: FdKind,
}

/// What a file descriptor refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdKind {
    /// A regular file (possibly deleted: then its contents are stored).
    Regular(FileRef),
    /// A directory.
    Directory {
        /// Its path.
        path: String,
    },
    /// A character device other than a tty (e.g. `/dev/null`), reopened by path.
    CharDevice {
        /// Its path.
        path: String,
        /// `st_rdev`.
        rdev: u64,
    },
    /// A terminal.
    Tty {
        /// Its path (e.g. `/dev/pts/3`).
        path: String,
        /// `st_rdev`.
        rdev: u64,
    },
    /// One end of a pipe.
    Pipe(PipeEnd),
    /// A named pipe (FIFO), reopened by path.
    Fifo {
        /// Its path.
        path: String,
        /// Bytes buffered in it at capture, read without consuming them.
        buffered: Vec<u8>,
    },
    /// A socket. Only AF_UNIX sockets are captured (format 1.3: their state is in the
    /// `unix-sockets` section, `unix`); other families are refused by capture.
    Socket {
        /// `AF_*` family.
        family: u32,
        /// `SOCK_*` type.
        sock_type: u32,
        /// Inode number of the socket.
        ino: u64,
        /// The state of an AF_UNIX socket; `None` for other families.
        unix: Option<Box<UnixSocket>>,
    },
    /// An eventfd (format 1.2: its `semaphore` flag is in the `event-fds` section).
    EventFd {
        /// Counter value.
        count: u64,
        /// Created with `EFD_SEMAPHORE`: each read takes 1 from the counter.
        semaphore: bool,
    },
    /// An epoll instance and its interest list. Restore creates it after every other fd of the
    /// process exists, then re-adds each watch; the watched fds are fds of the same process.
    Epoll {
        /// The interest list, in `/proc/PID/fdinfo` order.
        watches: Vec<EpollWatch>,
    },
    /// A timerfd with its clock and setting (format 1.2: the state is in the `event-fds`
    /// section).
    TimerFd(TimerFdState),
    /// A signalfd (format 1.2: restored from its `event-fds` record).
    SignalFd {
        /// The signal mask: bit `n - 1` for signal `n`.
        mask: u64,
    },
    /// A memfd named by name only: the format 1.0 variant, never written by capture (it
    /// refused memfd fds before 1.3) and refused by restore, which has no contents for it.
    MemFd {
        /// Its name.
        name: String,
    },
    /// An AF_NETLINK socket (format 1.3): recreated with its protocol, port id, multicast
    /// groups and destination. Only sockets with nothing queued are captured (a netlink
    /// conversation in flight cannot be replayed).
    Netlink(NetlinkSocket),
    /// A memfd (format 1.3): the fd of a shared memory object of the image's `shared_memory`
    /// (its name, seals and contents are the object's, stored once for every fd and mapping);
    /// offset and flags are the fd's own.
    MemFdObject {
        /// Index of the object in `shared_memory`.
        object: u32,
        /// The memfd's size in bytes at capture (`st_size`; the object's size is this rounded
        /// up to a page).
        size: u64,
    },
    /// An inotify instance and its watches (format 1.2, `event-fds` section). Queued events
    /// are not kept.
    Inotify {
        /// The watches, in increasing wd order.
        watches: Vec<InotifyWatch>,
    },
    /// An IPv4 or IPv6 socket with its state (format 1.3: the state is in the `inet-sockets`
    /// section; the `fds` section keeps it as a `Socket`).
    InetSocket(InetSocket),
    /// Anything else: kept for inspection, refused by restore.
    Other {
        /// The `/proc/PID/fd/N` link target.
        link: String,
    },
    /// The master of a pseudo-terminal pair (`/dev/ptmx`; format 1.3: the pair's state is its
    /// [`Pty`] in [`Checkpoint::ptys`]).
    PtyMaster {
        /// The pair's index at capture: its slave was `/dev/pts/<index>`.
        index: u32,
    },
}

/// An IPv4 or IPv6 socket (TCP or UDP) that restore recreates: bound, listening, a connected
/// UDP socket, an established TCP connection with its repair state (`--tcp-established`) or one
/// captured as closed (`--tcp-close`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InetSocket {
    /// `AF_INET` 2 or `AF_INET6` 10.
    pub family: u32,
    /// `SOCK_STREAM` 1 or `SOCK_DGRAM` 2.
    pub sock_type: u32,
    /// `IPPROTO_TCP` 6 or `IPPROTO_UDP` 17.
    pub protocol: u32,
    /// Inode number of the socket.
    pub ino: u64,
    /// What was done with it.
    pub state: InetState,
    /// The local address (`getsockname`): all zero bytes and port 0 when unbound.
    pub local: InetAddr,
    /// The peer (`getpeername`) of a connected UDP socket.
    pub peer: Option<InetAddr>,
    /// The `listen` backlog of a listener (the kernel's `sk_max_ack_backlog`); 0 otherwise.
    pub backlog: u32,
    /// The integer options whose value differs from a new socket's, in the order restore sets
    /// them (all before `bind`).
    pub options: Vec<SockOption>,
    /// The repair state of an [`InetState::Established`] TCP connection; `None` otherwise.
    pub tcp: Option<TcpConnection>,
}

/// An established TCP connection as `TCP_REPAIR` reads and restores it (`--tcp-established`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TcpConnection {
    /// `TCP_QUEUE_SEQ` of the send queue: the sequence number after the last byte queued
    /// (`write_seq`).
    pub snd_seq: u32,
    /// `TCP_QUEUE_SEQ` of the receive queue: the next sequence number expected (`rcv_nxt`).
    pub rcv_seq: u32,
    /// The send queue: bytes sent and not acknowledged, then `unsent` bytes never sent.
    pub send_queue: Vec<u8>,
    /// How many bytes at the end of `send_queue` were never sent (`SIOCOUTQNSD`).
    pub unsent: u32,
    /// The receive queue: bytes received and not yet read by the program.
    pub recv_queue: Vec<u8>,
    /// `TCP_MAXSEG`: the MSS, restored as the MSS clamp.
    pub mss: u32,
    /// `tcpi_options` of `TCP_INFO` (`TCPI_OPT_TIMESTAMPS` 1, `SACK` 2, `WSCALE` 4).
    pub tcp_options: u8,
    /// The window scale for sending (with `TCPI_OPT_WSCALE`).
    pub snd_wscale: u8,
    /// The window scale for receiving (with `TCPI_OPT_WSCALE`).
    pub rcv_wscale: u8,
    /// `TCP_TIMESTAMP` (with `TCPI_OPT_TIMESTAMPS`): the connection's timestamp clock.
    pub timestamp: u32,
    /// `TCP_REPAIR_WINDOW`: `snd_wl1`, `snd_wnd`, `max_window`, `rcv_wnd`, `rcv_wup`.
    pub window: [u32; 5],
}

/// The state of an [`InetSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum InetState {
    /// Neither bound nor connected.
    #[default]
    Closed,
    /// Bound to its local address.
    Bound,
    /// A TCP listener (bound, `listen` called, nothing waiting in its accept queue).
    Listening,
    /// A UDP socket with a peer (bound too: to the local address).
    Connected,
    /// An established TCP connection, with its [`TcpConnection`] (`--tcp-established`).
    Established,
    /// A TCP connection captured as closed (`--tcp-close`): restore gives a socket shut down
    /// both ways, on which reads return 0 (end of file) and writes fail with `EPIPE`.
    Shut,
}

/// An IPv4 or IPv6 address and port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InetAddr {
    /// The address in network order: 4 bytes (IPv4) or 16 (IPv6).
    pub addr: Vec<u8>,
    /// The port.
    pub port: u16,
}

/// An integer socket option (`setsockopt(level, name, value)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SockOption {
    /// `SOL_SOCKET` 1, `IPPROTO_IP` 0, `IPPROTO_TCP` 6, `IPPROTO_IPV6` 41.
    pub level: i32,
    /// The option number at that level (`SO_REUSEADDR` 2, `TCP_NODELAY` 1, ...).
    pub name: i32,
    /// The value to set: for `SO_RCVBUF` and `SO_SNDBUF` the one the program set (half of
    /// what `getsockopt` reports: the kernel doubles it).
    pub value: i32,
}

/// The state of one AF_UNIX socket (`sock_diag`, `getsockopt`, its receive queue peeked).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnixSocket {
    /// `TCP_ESTABLISHED` 1 (connected), `TCP_CLOSE` 7 (unconnected), `TCP_LISTEN` 10, as
    /// `sock_diag` reports it.
    pub state: u8,
    /// The connected peer's inode (a socket of the image), 0 when not connected.
    pub peer_ino: u64,
    /// The bound name: `sun_path` bytes, a leading NUL for the abstract namespace; empty when
    /// unbound.
    pub name: Vec<u8>,
    /// The socket file of a name in the filesystem, as it was at capture; `None` for an
    /// abstract or no name, or a path unlinked (or replaced) after bind.
    pub file: Option<UnixSocketFile>,
    /// A listener's backlog (`listen`'s argument as the kernel keeps it).
    pub backlog: u32,
    /// `RCV_SHUTDOWN` 1 | `SEND_SHUTDOWN` 2.
    pub shutdown: u8,
    /// `SO_PASSCRED`.
    pub passcred: bool,
    /// `SO_RCVBUF` and `SO_SNDBUF` as `getsockopt` returns them (the kernel doubles the value
    /// set).
    pub rcvbuf: u32,
    /// See `rcvbuf`.
    pub sndbuf: u32,
    /// The receive queue, oldest first: one entry per message of a datagram or seqpacket
    /// socket, the bytes in one or more entries for a stream socket.
    pub queued: Vec<Vec<u8>>,
}

/// The state of an AF_NETLINK socket.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetlinkSocket {
    /// `SOCK_RAW` 3 or `SOCK_DGRAM` 2.
    pub sock_type: u32,
    /// The netlink protocol (`NETLINK_ROUTE` 0, `NETLINK_AUDIT` 9, `NETLINK_KOBJECT_UEVENT` 15,
    /// `NETLINK_GENERIC` 16, ...).
    pub protocol: u32,
    /// The socket's inode.
    pub ino: u64,
    /// The bound port id (`nl_pid` of `getsockname`); 0 when unbound.
    pub portid: u32,
    /// The multicast groups joined, as `NETLINK_LIST_MEMBERSHIPS` gives them: bit `n % 32` of
    /// word `n / 32` for group `n + 1`. Trailing zero words are left out.
    pub groups: Vec<u32>,
    /// The connected destination's port id (`getpeername`), 0 when not connected.
    pub dst_portid: u32,
    /// The connected destination's group (a group number, not a mask), 0 for none.
    pub dst_group: u32,
}

/// The socket file a unix socket was bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnixSocketFile {
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The state of a timerfd (`timerfd_gettime` and `/proc/PID/fdinfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimerFdState {
    /// The clock (`CLOCK_REALTIME` 0, `CLOCK_MONOTONIC` 1, `CLOCK_BOOTTIME` 7,
    /// `CLOCK_REALTIME_ALARM` 8, `CLOCK_BOOTTIME_ALARM` 9).
    pub clockid: i32,
    /// The `timerfd_settime` flags: `TFD_TIMER_ABSTIME` 1, `TFD_TIMER_CANCEL_ON_SET` 2.
    pub settime_flags: u32,
    /// Expirations counted but not yet read.
    pub ticks: u64,
    /// Next expiry in nanoseconds: for a relative timer the time left at capture, for an
    /// absolute one (`TFD_TIMER_ABSTIME`) the expiry on `clockid`. 0: disarmed.
    pub value_ns: u64,
    /// The period in nanoseconds; 0 for a one-shot timer.
    pub interval_ns: u64,
}

/// One watch of an inotify instance (`inotify_add_watch(path, mask)` that returned `wd`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InotifyWatch {
    /// The watch descriptor, which programs keep: restore reproduces it.
    pub wd: i32,
    /// The event mask and flags (`IN_MODIFY`, `IN_ONESHOT`, ...) as fdinfo reports them.
    pub mask: u32,
    /// The watched inode's path at capture, resolved from its file handle.
    pub path: String,
    /// The watched inode number.
    pub ino: u64,
    /// Its superblock's device (`st_dev` encoding, `makedev(major, minor)`).
    pub dev: u64,
}

/// One watch of an epoll instance (`EPOLL_CTL_ADD` of `tfd` with `events` and `data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EpollWatch {
    /// The watched fd number in the owning process. The kernel keys a watch by (file, fd), so the
    /// fd must still be open and refer to the watched file; capture refuses otherwise.
    pub tfd: i32,
    /// The event mask (`EPOLLIN`, `EPOLLET`, `EPOLLONESHOT`, ...) as fdinfo reports it. A
    /// one-shot watch that has fired reports only its flag bits (`EPOLLONESHOT` and the like):
    /// re-adding that mask keeps it disarmed, as it was.
    pub events: u32,
    /// `epoll_data` as the kernel stores it: 64 bits on both architectures.
    pub data: u64,
}

/// One end of a pipe.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PipeEnd {
    /// Pipe inode number: fds with the same inode share one pipe.
    pub ino: u64,
    /// True for the write end.
    pub write_end: bool,
    /// Bytes buffered in the pipe at capture (stored once, with the lowest fd of the pipe).
    pub buffered: Vec<u8>,
    /// The pipe's capacity (`F_GETPIPE_SZ`).
    pub capacity: u32,
    /// The other end is not held by any process in the image: restore needs `--inherit-fd`.
    pub external: bool,
}

/// Process-wide signal state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessSignals {
    /// The 64 handlers; index N-1 is signal N (SIGKILL and SIGSTOP entries are default).
    pub actions: Vec<SigAction>,
    /// Process-wide (shared) pending signals, in queue order.
    pub shared_pending: Vec<SigInfo>,
    /// `ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF`, in that order.
    pub itimers: [ITimer; 3],
    /// POSIX timers (`timer_create`), from `/proc/PID/timers`.
    pub posix_timers: Vec<PosixTimer>,
}
