//! The one error type of the restore library.
//!
//! Two families: *refusals*, found by the checks before anything is created (the image is corrupt,
//! this machine cannot run it, a file or the PID is not available), and *failures* of a step while
//! the task is being rebuilt (the half-built task is killed; nothing of it survives). Each variant
//! names the place (PID, fd, address, path) and, where the user can act, says what to do.

use psnc_format::FormatError;
use psnc_ptrace::PtraceError;

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The image cannot be read or fails its integrity checks.
    #[error("the image is unreadable or corrupt: {0}")]
    Image(#[from] FormatError),

    /// `--lazy` was asked for on a kernel (or with privileges) that cannot serve it.
    #[error("--lazy cannot work here: {why}; it needs a userfaultfd that also takes kernel-mode faults (CONFIG_USERFAULTFD, and CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1) with the fork, remap, remove and unmap events; restore without --lazy")]
    LazyUnavailable {
        /// What the probe found.
        why: String,
    },

    /// The image holds something this restore does not support yet.
    #[error("cannot restore {what}: not supported yet")]
    Unsupported {
        /// What it is, e.g. "a process with 3 threads".
        what: String,
    },

    /// The image's code expects CPU features this CPU lacks.
    #[error(
        "the image needs CPU features this CPU lacks: {} (its libraries chose code paths using them \
         at start-up, so it would die with SIGILL here); restore it on a CPU that has them",
        missing.join(", ")
    )]
    CpuFeatures {
        /// The missing `/proc/cpuinfo` flags, sorted.
        missing: Vec<String>,
    },

    /// The image's register state uses XSAVE components this CPU or kernel does not enable.
    #[error(
        "the image's XSAVE state uses components {missing:#x} that this CPU/kernel does not enable \
         (image XCR0 {image:#x}, here {host:#x}); restore it on a machine with the same CPU features"
    )]
    XsaveFeatures {
        /// The image's XCR0.
        image: u64,
        /// This machine's XCR0.
        host: u64,
        /// In-use components missing here.
        missing: u64,
    },

    /// The XSAVE area of a thread does not have this machine's layout.
    #[error(
        "thread {tid}: XSAVE area is {image} bytes, this machine's is {host} bytes, and the live \
         components {live:#x} cannot be moved between the layouts"
    )]
    XsaveLayout {
        /// The thread.
        tid: u32,
        /// Size in the image.
        image: usize,
        /// Size here.
        host: usize,
        /// XSTATE_BV of the thread.
        live: u64,
    },

    /// A file the image refers to is neither on disk (unchanged) nor stored in the image.
    #[error(
        "{used_by}: file {path} is {reason} and the image does not contain it; restore it, or \
         capture without --no-store-files"
    )]
    MissingFile {
        /// The path at capture.
        path: String,
        /// Who needs it, e.g. "the executable", "mapping 0x7f..-0x7f..", "fd 3".
        used_by: String,
        /// What is wrong with it, e.g. "missing", "changed since the capture".
        reason: String,
    },

    /// The vdso of this kernel differs from the image's, so code that cached pointers into it (or
    /// stopped inside it) would jump into the wrong bytes.
    #[error(
        "the image's [vdso] at {addr:#x} differs from this kernel's ({detail}); restore on the \
         kernel the image was captured on ({kernel})"
    )]
    VdsoMismatch {
        /// The image's vdso address.
        addr: u64,
        /// What differs (size, first differing offset, layout of `[vvar]`).
        detail: String,
        /// The kernel release the image was captured on.
        kernel: String,
    },

    /// The image's PID (or a TID) is taken by a running process.
    #[error(
        "PID {pid} is in use by another process ({comm}); the image needs the same PID. Stop that \
         process, or restore in another PID namespace"
    )]
    PidInUse {
        /// The PID.
        pid: u32,
        /// The command of the process holding it, if known.
        comm: String,
    },

    /// The restore tool lacks a privilege a restore needs.
    #[error("{what} is not permitted: it needs {need}")]
    NotPermitted {
        /// What was refused.
        what: String,
        /// The privilege it needs, and what to do.
        need: String,
    },

    /// The image holds more fds than the restore tool may have open at once.
    #[error(
        "the image holds {fds} open fds, which the restore tool holds all at once while it \
         rebuilds the tree, but its RLIMIT_NOFILE is {soft} (hard {hard}) and it cannot raise it \
         further (raising past the hard limit needs CAP_SYS_RESOURCE); run it with a higher \
         limit (e.g. `ulimit -n {want}` as root, or LimitNOFILE= in a systemd unit)"
    )]
    TooManyFds {
        /// Fds of every process of the image.
        fds: usize,
        /// The tool's soft limit after trying to raise it.
        soft: u64,
        /// Its hard limit.
        hard: u64,
        /// A limit that would do.
        want: u64,
    },

    /// No room for the restore's own pages among the image's VMAs.
    #[error("the image's address space leaves no {size:#x}-byte hole below {limit:#x} for the restore's stub")]
    NoRoom {
        /// Bytes needed.
        size: u64,
        /// Highest usable address.
        limit: u64,
    },

    /// An open file descriptor of a kind restore cannot recreate.
    #[error("fd {fd} is {kind}, which restore cannot recreate yet{hint}")]
    UnsupportedFd {
        /// The descriptor.
        fd: i32,
        /// Its kind, e.g. "a socket".
        kind: String,
        /// What the user can do, starting with "; " (may be empty).
        hint: String,
    },

    /// A System V shared memory segment of the image cannot be made again with its identifier
    /// or key (before any process exists).
    #[error(
        "System V shared memory segment {shmid} (key {key:#010x}): {why}; the image needs the \
         same identifier and key: remove that segment (ipcrm) or restore in another IPC \
         namespace"
    )]
    SysvShmInUse {
        /// The identifier.
        shmid: i32,
        /// The key (0: `IPC_PRIVATE`).
        key: i32,
        /// What holds it.
        why: String,
    },

    /// A unix socket's name cannot be bound again (before the process exists).
    #[error("fd {fd}: cannot bind the unix socket to {name}: {why}")]
    UnixSocketName {
        /// The descriptor.
        fd: i32,
        /// The name: a path, or `@name` in the abstract namespace.
        name: String,
        /// Why, and what to do.
        why: String,
    },

    /// A pipe or unix socket whose other end was outside the image, refused because of
    /// `--external=refuse`.
    #[error(
        "fd {fd} is {resource} ({end}), whose other end was outside the image, and \
         --external=refuse is given; hand it one with --inherit-fd fd[N]:{resource} (or \
         fd[N]:fd:{fd}), or restore without --external=refuse to have it recreated holding its \
         {buffered} buffered bytes (a unix socket whose peer had a name is connected to that \
         name again)"
    )]
    ExternalFd {
        /// The descriptor.
        fd: i32,
        /// Its resource, as `/proc/PID/fd` showed it: `pipe:[INO]`, `socket:[INO]`.
        resource: String,
        /// `read end` or `write end`, or what the socket was connected to.
        end: String,
        /// Bytes buffered in the pipe at capture.
        buffered: usize,
    },

    /// A VMA restore cannot recreate.
    #[error("mapping {start:#x}-{end:#x} ({what}) cannot be restored yet")]
    UnsupportedVma {
        /// First address.
        start: u64,
        /// End address.
        end: u64,
        /// What it is.
        what: String,
    },

    /// An `--inherit-fd` argument is malformed or does not match the image.
    #[error("--inherit-fd {arg}: {why}")]
    InheritFd {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        why: String,
    },

    /// The image is internally inconsistent in a way the format checks cannot see.
    #[error("the image is inconsistent: {0}")]
    Inconsistent(String),

    /// A step of the rebuild failed in the traced task.
    #[error("restoring process {pid}: {step}: {source}")]
    Step {
        /// The PID being restored.
        pid: u32,
        /// The step, e.g. "recreating mapping 0x400000-0x401000".
        step: String,
        /// The underlying error.
        source: PtraceError,
    },

    /// A system call run inside the traced task returned an error.
    #[error("restoring process {pid}: {step}: {call} failed: {errno}")]
    RemoteCall {
        /// The PID being restored.
        pid: u32,
        /// The step.
        step: String,
        /// The kernel's name of the call.
        call: &'static str,
        /// The error it returned.
        errno: nix::errno::Errno,
    },

    /// `io_setup` on this host makes a ring of another size than the image's: the kernel sizes
    /// rings by the number of possible CPUs (found before anything is created).
    #[error(
        "process {pid}: AIO context {ctx:#x}: io_setup would make a ring of {got} slots on \
         this host, the image's has {want} (the kernel sizes rings by the number of possible \
         CPUs too); restore it on a host with at most {} possible CPUs",
        want.saturating_sub(2) / 8
    )]
    AioRingSize {
        /// The PID being restored.
        pid: u32,
        /// The context id (ring address) of the image.
        ctx: u64,
        /// The image's slots.
        want: u32,
        /// This host's slots.
        got: u32,
    },

    /// The stub task did not come up as expected.
    #[error("starting the stub for process {pid}: {why}")]
    Stub {
        /// The PID being restored.
        pid: u32,
        /// What went wrong.
        why: String,
    },

    /// A zombie of the image did not end as its record says (it is killed with the tree).
    #[error("recreating zombie {pid} (a child of process {ppid}, {status}): {why}")]
    Zombie {
        /// The zombie's PID.
        pid: u32,
        /// Its parent.
        ppid: u32,
        /// Its status in the image, e.g. "exit 7" or "killed by signal 15".
        status: String,
        /// What went wrong.
        why: String,
    },

    /// A local file operation of the restore tool failed (always before the process exists).
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done, e.g. "opening".
        what: String,
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A socket's address is taken on this host (by another process or a socket still in
    /// TIME_WAIT without `SO_REUSEADDR`).
    #[error(
        "cannot restore fd {fd} of PID {pid}: {addr} is in use on this host; stop what holds it \
         (or wait for its connections to time out) and restore again"
    )]
    AddressInUse {
        /// The process of the image.
        pid: u32,
        /// The socket's fd.
        fd: i32,
        /// The address and port.
        addr: String,
    },

    /// A refusal about one process of a tree (an fd or mapping number alone would not say
    /// whose).
    #[error("process {pid}: {source}")]
    InProcess {
        /// The process of the image.
        pid: u32,
        /// The refusal.
        #[source]
        source: Box<RestoreError>,
    },
}

impl RestoreError {
    /// A socket's address, taken on this host by another socket.
    pub fn address_in_use(pid: u32, fd: i32, addr: String) -> Self {
        RestoreError::AddressInUse { pid, fd, addr }
    }

    /// Whether this is a refusal found before anything was created rather than a failure while
    /// rebuilding. Local I/O errors count as refusals: the restore tool opens and prepares every
    /// file before the process exists.
    pub fn is_refusal(&self) -> bool {
        if let RestoreError::InProcess { source, .. } = self {
            return source.is_refusal();
        }
        !matches!(
            self,
            RestoreError::Step { .. }
                | RestoreError::RemoteCall { .. }
                | RestoreError::Stub { .. }
                | RestoreError::Zombie { .. }
        )
    }

    /// The exit status of `psnc-restore` for this error (the scheme of all three tools): the
    /// image's own problems as every tool classifies them, refusals 69, missing privilege 77,
    /// a failed step of the rebuild 70.
    pub fn exit_status(&self) -> psnc_cli::Exit {
        use psnc_cli::Exit;
        match self {
            RestoreError::Image(e) => Exit::reading_image(e),
            RestoreError::InProcess { source, .. } => source.exit_status(),
            RestoreError::Inconsistent(_) => Exit::BadImage,
            RestoreError::Unsupported { .. }
            | RestoreError::LazyUnavailable { .. }
            | RestoreError::CpuFeatures { .. }
            | RestoreError::XsaveFeatures { .. }
            | RestoreError::XsaveLayout { .. }
            | RestoreError::MissingFile { .. }
            | RestoreError::VdsoMismatch { .. }
            | RestoreError::PidInUse { .. }
            | RestoreError::NoRoom { .. }
            | RestoreError::TooManyFds { .. }
            | RestoreError::UnsupportedFd { .. }
            | RestoreError::ExternalFd { .. }
            | RestoreError::UnsupportedVma { .. }
            | RestoreError::AioRingSize { .. }
            | RestoreError::AddressInUse { .. }
            | RestoreError::SysvShmInUse { .. }
            | RestoreError::UnixSocketName { .. } => Exit::Refused,
            RestoreError::NotPermitted { .. } => Exit::NoPermission,
            RestoreError::InheritFd { .. } => Exit::Usage,
            RestoreError::Step { .. }
            | RestoreError::RemoteCall { .. }
            | RestoreError::Stub { .. }
            | RestoreError::Zombie { .. }
            | RestoreError::Io { .. } => Exit::Failed,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T> = std::result::Result<T, RestoreError>;
