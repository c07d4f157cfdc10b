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

    /// `TCP_REPAIR` refused: the capturing user lacks `CAP_NET_ADMIN`.
    #[error(
        "PID {pid}: fd {fd} is the TCP connection {conn}; --tcp-established puts it in repair \
         mode (TCP_REPAIR), which needs CAP_NET_ADMIN: run psnc-capture as root, or use \
         --tcp-close"
    )]
    TcpRepairDenied {
        /// The PID.
        pid: i32,
        /// The fd.
        fd: i32,
        /// `local -> peer`.
        conn: String,
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

    /// A socket of a family, type or protocol no section of the image describes (a packet
    /// socket, a raw IP socket, netlink, vsock, ...); restore could not make it again.
    #[error(
        "PID {pid}: fd {fd} is {kind}: not supported; close it in the process or leave the \
         process out of the capture"
    )]
    UnsupportedSocket {
        /// The PID.
        pid: i32,
        /// The fd.
        fd: i32,
        /// The socket by family, type and protocol names:
        /// `"a packet socket (AF_PACKET, SOCK_RAW, protocol ETH_P_ALL)"`.
        kind: String,
    },

    /// An AIO ring that does not look as the kernel lays one out.
    #[error(
        "PID {pid}: AIO context {ctx:#x}: the ring is not as the kernel lays it out ({why}); \
         psnc-capture cannot tell what it holds"
    )]
    AioRing {
        /// The PID.
        pid: i32,
        /// The context id (the ring's address).
        ctx: u64,
        /// The first field that is wrong, with its value.
        why: String,
    },

    /// An AIO request completed while the process was stopped: it had requests in flight.
    #[error(
        "PID {pid}: AIO context {ctx:#x} has requests in flight (an event completed while the \
         process was stopped: ring tail {before} -> {after}), which psnc-capture cannot capture; \
         capture it again once its requests have completed"
    )]
    AioInFlight {
        /// The PID.
        pid: i32,
        /// The context id (the ring's address).
        ctx: u64,
        /// The ring's tail when its events were read.
        before: u32,
        /// The ring's tail at the end of the process's capture.
        after: u32,
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

    /// `--parent` names the output itself: the new image would replace the one it needs.
    #[error("--parent {path} is also the output (-o): the new image would replace its own parent; write it under another name")]
    ParentIsOutput {
        /// The path.
        path: PathBuf,
    },

    /// The parent image of `--parent` cannot be used (missing, corrupt, not an image).
    #[error("--parent {path}: {source}; the target was not touched")]
    Parent {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: psnc_format::FormatError,
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

    /// A child of the tree whose thread-group leader has exited while other threads of it
    /// remain (it is exiting, or its main thread called `pthread_exit`): `/proc` shows it as a
    /// zombie, but it is not one, and its leader cannot be seized.
    #[error(
        "PID {pid}, a child of PID {ppid}, shows as a zombie but still has other threads (its \
         main thread exited while they run, or it is still exiting); psnc-capture cannot \
         capture such a process: capture again once it has exited, or capture PID {ppid} with \
         --no-children"
    )]
    ZombieInTree {
        /// The process whose leader is a zombie.
        pid: i32,
        /// Its parent.
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

    /// The process attaches System V shared memory of another IPC namespace than the tool's: a
    /// segment identifier means nothing outside its namespace.
    #[error(
        "PID {pid} attaches System V shared memory of another IPC namespace ({theirs}) than \
         psnc-capture's ({ours}); run psnc-capture inside it (nsenter --ipc --target {pid})"
    )]
    OtherIpcNamespace {
        /// The process.
        pid: i32,
        /// Its namespace (`ipc:[INODE]`).
        theirs: String,
        /// The tool's.
        ours: String,
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

    /// A process's controlling terminal is a pty pair of the image that restore could not make
    /// its controlling terminal again: only a session leader of the image can take it, through
    /// an fd on its slave.
    #[error(
        "PID {pid}: its controlling terminal is the pty /dev/pts/{index} of the image, but \
         {why}; restore could not make it its controlling terminal again"
    )]
    ControllingTty {
        /// The PID.
        pid: i32,
        /// The pair's index.
        index: u32,
        /// What is missing.
        why: String,
    },

    /// An epoll instance shared by several processes watches a file that restore could not add
    /// again: restore adds a shared instance's watch in the first process of the group (image
    /// order) that has an fd with the watch's number, and there that fd is closed or another
    /// file (the watch was added by another process, through an fd of its own).
    #[error(
        "PID {pid1} fd {fd1} and PID {pid2} fd {fd2} share an epoll instance that watches fd \
         {tfd}, but {why}; restore could not re-add the watch. Have the program remove the watch \
         (EPOLL_CTL_DEL) before closing or reusing the fd, or give every process the watched fd \
         at the same number"
    )]
    SharedEpollWatchUnreachable {
        /// The first process holding the instance.
        pid1: i32,
        /// Its epoll fd.
        fd1: i32,
        /// Another process holding it (the one restore would add the watch from, if any).
        pid2: i32,
        /// Its epoll fd.
        fd2: i32,
        /// The watched fd number as the kernel recorded it at EPOLL_CTL_ADD.
        tfd: i32,
        /// What is wrong with it.
        why: String,
    },

    /// `--pre-copy=always` and the write tracking could not be armed (or the tree changed mode
    /// during the pre-copy).
    #[error(
        "PID {pid}: no pre-copy: {why}; capture with --pre-copy=auto (copies what cannot be \
         tracked while stopped) or --pre-copy=never"
    )]
    PreCopy {
        /// The root of the tree.
        pid: i32,
        /// Which process failed and how.
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
            | CaptureError::UnsupportedSocket { .. }
            | CaptureError::SeccompFilter { .. }
            | CaptureError::AioRing { .. }
            | CaptureError::AioInFlight { .. }
            | CaptureError::LayoutTooNarrow { .. }
            | CaptureError::ThreadsUnsettled { .. }
            | CaptureError::KmodUnavailable { .. }
            | CaptureError::EpollWatchUnreachable { .. }
            | CaptureError::ControllingTty { .. }
            | CaptureError::SharedEpollWatchUnreachable { .. }
            | CaptureError::ZombieInTree { .. }
            | CaptureError::OtherPidNamespace { .. }
            | CaptureError::OtherIpcNamespace { .. }
            | CaptureError::TreeUnsettled { .. }
            | CaptureError::PreCopy { .. } => Exit::Refused,
            CaptureError::PermissionDenied { .. } | CaptureError::TcpRepairDenied { .. } => {
                Exit::NoPermission
            }
            CaptureError::Output { .. } => Exit::CannotWrite,
            CaptureError::Format { source, .. } => Exit::writing_image(source),
            CaptureError::Parent { source, .. } => Exit::reading_image(source),
            CaptureError::ParentIsOutput { .. } => Exit::Usage,
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
