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
    /// A socket (not yet supported by capture; the variant exists so the model need not change).
    Socket {
        /// `AF_*` family.
        family: u32,
        /// `SOCK_*` type.
        sock_type: u32,
        /// Inode number of the socket.
        ino: u64,
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
    /// A memfd (not yet supported by capture).
    MemFd {
        /// Its name.
        name: String,
    },
    /// An inotify instance and its watches (format 1.2, `event-fds` section). Queued events
    /// are not kept.
    Inotify {
        /// The watches, in increasing wd order.
        watches: Vec<InotifyWatch>,
    },
    /// Anything else: kept for inspection, refused by restore.
    Other {
        /// The `/proc/PID/fd/N` link target.
        link: String,
    },
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
