//! The one error type of the capture library.
//!
//! Every variant names the process (and where it applies the thread, fd, mapping or path) so a
//! message alone tells the user what went wrong and where. Variants for things the user can act on
//! say what to do. A failed capture always leaves the target running and untouched: the error is
//! returned only after every thread has been detached.

use std::path::PathBuf;

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// There is no process with this PID (or it exited during the capture).
    #[error("no process with PID {pid}")]
    NoSuchProcess {
        /// The PID asked for.
        pid: i32,
    },

    /// The PID is a kernel thread, which has no user-space state to capture.
    #[error("PID {pid} is a kernel thread ({comm}); only user-space processes can be captured")]
    KernelThread {
        /// The PID asked for.
        pid: i32,
        /// Its command name.
        comm: String,
    },

    /// The number is a thread of another process, not a process.
    #[error("{tid} is a thread of process {tgid}, not a process; capture PID {tgid}")]
    NotAProcess {
        /// The number asked for.
        tid: i32,
        /// The process the thread belongs to.
        tgid: i32,
    },

    /// The process is a zombie (it has exited and waits for its parent).
    #[error("PID {pid} is a zombie (it has exited); there is nothing to capture")]
    Zombie {
        /// The PID asked for.
        pid: i32,
    },

    /// The tool cannot capture itself or one of its own threads.
    #[error("PID {pid} is psnc-capture itself")]
    SelfCapture {
        /// The PID asked for.
        pid: i32,
    },

    /// The kernel refused access to the process.
    #[error(
        "permission denied on PID {pid} ({what}); run psnc-capture as the process's owner with \
         ptrace allowed (kernel.yama.ptrace_scope) or as root"
    )]
    PermissionDenied {
        /// The PID.
        pid: i32,
        /// What was refused (e.g. "PTRACE_SEIZE", "/proc/PID/mem").
        what: String,
    },

    /// Another tracer (a debugger, strace, another psnc-capture) holds the process.
    #[error("PID {pid} is already traced by PID {tracer}; detach that tracer first")]
    AlreadyTraced {
        /// The PID.
        pid: i32,
        /// The tracer's PID from `/proc/PID/status`.
        tracer: i32,
    },

    /// A `/proc` file could not be read.
    #[error("cannot read {path}: {source}")]
    Proc {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// A `/proc` file had content the parser did not expect.
    #[error("cannot parse {path}: {detail}")]
    ProcParse {
        /// The file.
        path: PathBuf,
        /// What was wrong, quoting the offending text.
        detail: String,
    },

    /// The process (or a thread) uses a kind of resource that capture does not support yet.
    #[error("PID {pid}: {what} is {kind}, which psnc-capture does not support yet")]
    Unsupported {
        /// The PID.
        pid: i32,
        /// The resource: "fd 5", "mapping 7f00..-7f10..", "thread 1234", ...
        what: String,
        /// Its kind: `"a socket (socket:[1234])"`, `"shared anonymous memory"`, ...
        kind: String,
    },

    /// The process runs under a seccomp filter, which capture cannot read back and restore yet.
    #[error(
        "PID {pid} runs under a seccomp filter (mode 2), which psnc-capture does not support yet"
    )]
    SeccompFilter {
        /// The PID.
        pid: i32,
    },

    /// A ptrace or remote-syscall operation on a thread failed.
    #[error("PID {pid}, thread {tid}: {what}: {source}")]
    Trace {
        /// The PID.
        pid: i32,
        /// The thread.
        tid: i32,
        /// The operation.
        what: String,
        /// The error from the ptrace crate.
        #[source]
        source: psnc_ptrace::PtraceError,
    },

    /// Reading the target's memory failed.
    #[error("PID {pid}: cannot read memory {start:#x}..{end:#x}: {source}")]
    Memory {
        /// The PID.
        pid: i32,
        /// First address of the range that failed.
        start: u64,
        /// One past its last address.
        end: u64,
        /// The error.
        #[source]
        source: psnc_ptrace::PtraceError,
    },

    /// A file the image should contain (the executable, a mapped file, a deleted open file) could
    /// not be read. `--no-store-files` skips storing files that still exist on disk.
    #[error("PID {pid}: cannot read {what} {path}: {source}")]
    File {
        /// The PID.
        pid: i32,
        /// Which file: "the executable", "mapped file", "fd 4", ...
        what: String,
        /// The path at capture time.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// The output image could not be created or written.
    #[error("cannot write image {path}: {source}")]
    Output {
        /// The image path (`-` for stdout).
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// The image writer refused the data (e.g. a value too wide for `--layout 32`).
    #[error("cannot write image {path}: {source}")]
    Format {
        /// The image path (`-` for stdout).
        path: PathBuf,
        /// The format crate's error.
        #[source]
        source: psnc_format::FormatError,
    },

    /// The requested layout class cannot hold this process.
    #[error("PID {pid} is a {arch} process; --layout 32 cannot hold it (use --layout 64)")]
    LayoutTooNarrow {
        /// The PID.
        pid: i32,
        /// The process's architecture.
        arch: &'static str,
    },

    /// The tool received SIGINT, SIGTERM or SIGHUP; it detached from the target and stopped.
    #[error("interrupted by signal {signal}; the target was detached and left running")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },

    /// `--kill` could not kill the process after the image was written.
    #[error("image written, but killing PID {pid} failed: {source}")]
    Kill {
        /// The PID.
        pid: i32,
        /// Why.
        #[source]
        source: Box<CaptureError>,
    },

    /// Threads kept appearing while the capture seized them: every one of `rounds` listings of
    /// `/proc/PID/task` found threads not seen before. Every seized thread was detached again.
    #[error(
        "PID {pid} creates threads faster than they can be seized: its thread list still changed \
         after {rounds} seize rounds; nothing was captured and the process runs on untouched \
         (try again when it creates fewer threads)"
    )]
    ThreadsUnsettled {
        /// The PID.
        pid: i32,
        /// How many listings of `/proc/PID/task` found new threads.
        rounds: usize,
    },

    /// A process of the tree is a zombie: it has exited and waits for its parent to reap it.
    /// Restoring it needs its exit status, which the image does not hold yet.
    #[error(
        "PID {pid}, a child of PID {ppid}, is a zombie (it exited and PID {ppid} has not reaped \
         it yet); psnc-capture cannot restore zombies yet: capture once PID {ppid} has waited \
         for it, or capture PID {ppid} with --no-children"
    )]
    ZombieInTree {
        /// The zombie.
        pid: i32,
        /// Its parent, which has not waited for it.
        ppid: i32,
    },

    /// A process lives in another PID namespace than psnc-capture: its PIDs there differ from
    /// the ones the tool sees, so they could not be restored.
    #[error(
        "PID {pid} is in another PID namespace ({theirs}) than psnc-capture ({ours}); run \
         psnc-capture inside that namespace"
    )]
    OtherPidNamespace {
        /// The process.
        pid: i32,
        /// Its namespace (`pid:[INODE]`).
        theirs: String,
        /// The tool's.
        ours: String,
    },

    /// Two processes of the tree share one open file description (inherited across fork):
    /// restore would give each its own, so their offset or contents would no longer move
    /// together.
    #[error(
        "PID {pid1} fd {fd1} and PID {pid2} fd {fd2} share one open file description of \
         {kind} (inherited across fork); psnc-capture does not support file descriptions shared \
         between processes yet (their offset would no longer be shared after restore): have one \
         of them reopen the file, or capture one process with --no-children"
    )]
    SharedDescription {
        /// The first process.
        pid1: i32,
        /// Its fd.
        fd1: i32,
        /// The second process.
        pid2: i32,
        /// Its fd.
        fd2: i32,
        /// What the file is.
        kind: String,
    },

    /// The process tree kept changing while it was seized.
    #[error(
        "the process tree of PID {pid} did not settle: {why}; nothing was captured and every \
         process runs on untouched"
    )]
    TreeUnsettled {
        /// The root of the tree.
        pid: i32,
        /// What kept changing.
        why: String,
    },

    /// `--kmod always`, but `/dev/checkpoint` cannot be used. Checked before the target is
    /// touched.
    #[error(
        "--kmod always: /dev/checkpoint {why}. Load the module (make -C kmod && insmod \
         kmod/psnc_checkpoint.ko, as root), or capture with --kmod auto or never; the target was \
         not touched"
    )]
    KmodUnavailable {
        /// Why not (missing device, unsupported ABI, missing features).
        why: String,
    },

    /// An epoll fd watches a file that restore could not add again: the watched fd number was
    /// closed (another fd or process keeps the file description, and with it the watch, alive)
    /// or now refers to another file.
    #[error(
        "PID {pid}: epoll fd {epfd} watches fd {tfd}, but {why}; restore could not re-add the \
         watch. Have the program remove the watch (EPOLL_CTL_DEL) before closing the fd"
    )]
    EpollWatchUnreachable {
        /// The PID.
        pid: i32,
        /// The epoll fd.
        epfd: i32,
        /// The watched fd number as the kernel recorded it at EPOLL_CTL_ADD.
        tfd: i32,
        /// What is wrong with it.
        why: String,
    },
}

impl CaptureError {
    /// A `/proc` read error, turned into [`CaptureError::NoSuchProcess`] when the file is gone
    /// because the process exited.
    pub(crate) fn proc_io(pid: i32, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => CaptureError::NoSuchProcess { pid },
            _ => CaptureError::Proc {
                path: path.into(),
                source,
            },
        }
    }

    /// A parse error of a `/proc` file.
    pub(crate) fn parse(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        CaptureError::ProcParse {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// The exit status of `psnc-capture` for this error (the scheme of all three tools): the
    /// target or a file it needs is missing 66, refusals before touching anything 69, missing
    /// privilege 77, the output 73, a failure part-way 70, a failed `--kill` after the image
    /// was written 3.
    pub fn exit_status(&self) -> psnc_cli::Exit {
        use psnc_cli::Exit;
        match self {
            CaptureError::NoSuchProcess { .. }
            | CaptureError::NotAProcess { .. }
            | CaptureError::Zombie { .. }
            | CaptureError::File { .. } => Exit::NoInput,
            CaptureError::KernelThread { .. }
            | CaptureError::SelfCapture { .. }
            | CaptureError::AlreadyTraced { .. }
            | CaptureError::Unsupported { .. }
            | CaptureError::SeccompFilter { .. }
            | CaptureError::LayoutTooNarrow { .. }
            | CaptureError::ThreadsUnsettled { .. }
            | CaptureError::KmodUnavailable { .. }
            | CaptureError::EpollWatchUnreachable { .. }
            | CaptureError::ZombieInTree { .. }
            | CaptureError::OtherPidNamespace { .. }
            | CaptureError::SharedDescription { .. }
            | CaptureError::TreeUnsettled { .. } => Exit::Refused,
            CaptureError::PermissionDenied { .. } => Exit::NoPermission,
            CaptureError::Output { .. } => Exit::CannotWrite,
            CaptureError::Format { source, .. } => Exit::writing_image(source),
            CaptureError::Proc { .. }
            | CaptureError::ProcParse { .. }
            | CaptureError::Trace { .. }
            | CaptureError::Memory { .. }
            | CaptureError::Interrupted { .. } => Exit::Failed,
            CaptureError::Kill { .. } => Exit::KillFailed,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = CaptureError> = std::result::Result<T, E>;
