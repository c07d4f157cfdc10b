//! Capture a running, unmodified Linux process into one self-contained checkpoint image.
//!
//! [`capture`] is the whole operation; the binary `psnc-capture` only parses arguments and prints
//! the [`Summary`]. The steps, in this order, each named by the module that does it:
//!
//! ```text
//!  preflight        procfs: exists, not a kernel thread / zombie / traced / seccomp filter
//!  source           --kmod: /dev/checkpoint or remote syscalls (always: fails here without it)
//!  open output      AtomicFile next to IMAGE (or stdout): fails before the target is touched
//!  stop::FrozenTree PTRACE_SEIZE + PTRACE_INTERRUPT every thread (no SIGSTOP) of PID, then of
//!                   each child its stopped threads list (tree: the checks on each child)
//!  tree_layout      the mode of every process -> the layout class; the ImageWriter
//!  precopy          (--pre-copy, default auto) arm a write tracker in each process, thaw,
//!                   copy the anonymous memory while it runs, round after round, then
//!                   stop the tree again (stop::FrozenTree once more)
//!  -- for each process of the tree, root first:
//!  threads          every thread's mode (x86_64 / i386, process_arch) -> the layout class
//!  source::collect  kernel state: handlers, itimers, POSIX timer values, brk, prctl gets,
//!                   securebits, per thread sigaltstack, clear_child_tid; from the module
//!                   (kmod), or a remote batch (rt_sigaction x64, getitimer, timer_gettime,
//!                   brk(0), prctl, sigaltstack, PR_GET_TID_ADDRESS; scratch page unmapped after)
//!  Frozen::park     threads back from the step's SIGTRAP stop into an interrupt stop
//!  threads          registers (syscall restart resolved), XSAVE, TLS, mask, queue, rseq, robust
//!  signals          handlers and shared queue, with the values of timers
//!  procfs           stat, status (seccomp checked again)
//!  files            the executable into the catalog of stored files
//!  precopy          the last scan of what was written, then the tracking closed
//!  memory           maps + smaps: classify VMAs, file mappings into the catalog
//!  fds              classify every fd (fds::regular, tty, pipe, fifo, epoll, eventfd,
//!                   timerfd, signalfd, inotify), peek pipe and FIFO buffers
//!  memory           pagemap -> plan, process_vm_readv -> ImageWriter page runs (with
//!                   pre-copy: only what has no good copy in the image already)
//!  process          auxv, cmdline, comm, cwd, root, personality, limits, ids, prctl flags
//!  creds, memory    uids, gids, groups, caps, securebits; mm fields (stat's, and brk)
//!  -- then, once:
//!  tree             pipes joined across the tree
//!  fds::shares      every fd grouped by open file description (kcmp), for fd-shares
//!  files            deleted files hashed and stored (target still stopped)
//!  release          default: detach, then store the other files through handles opened while
//!                   stopped, finish + commit; --kill: all of it stopped, commit, then SIGKILL
//! ```
//!
//! A failed capture leaves the target running and untouched (every error path detaches every
//! thread, the `AtomicFile` removes its temporary file) and no file under the image's name. With
//! `/dev/checkpoint` ([`source`]) nothing runs in the target (POSIX timer values apart). Without
//! it the target's registers are borrowed only inside remote syscalls, all in one batch at the
//! start (see `psnc_ptrace::remote` for that window: a SIGKILL of the tool inside it leaves the
//! thread with injected registers and usually kills it). Outside the batch a dead tool leaves the target
//! running and unchanged: the kernel detaches it from its interrupt stop (tested). SIGINT,
//! SIGTERM and SIGHUP of the tool are deferred to safe points ([`interrupt::Interrupts`]).
//!
//! What the live target may notice: the stop itself (its clocks run on), a scratch page mapped
//! and unmapped again during the batch, a pipe's extra reader for the moment its buffer is
//! copied, and with pre-copy two stops instead of one, a userfaultfd descriptor that exists
//! only inside the first, and `uw` in its smaps `VmFlags` between them. Syscalls it was blocked in are restarted by the kernel as after any ptrace stop.
//!
//! # Modules
//!
//! One module per kind of kernel object, named as in psnc-restore:
//!
//! | module      | owns                                                                        |
//! |-------------|-----------------------------------------------------------------------------|
//! | [`threads`] | each thread: registers, syscall restart, XSAVE, TLS, mask, queue, rseq, ... |
//! | [`memory`]  | VMAs, pages, the mm fields (the `PR_SET_MM_MAP` values)                     |
//! | [`precopy`] | memory copied while the target runs, its writes tracked (userfaultfd)      |
//! | [`shared_memory`] | shared anonymous memory objects, stored once for all their mappings   |
//! | [`signals`] | signal handlers, the process-wide pending queue                             |
//! | [`timers`]  | interval timers, POSIX timers                                               |
//! | [`creds`]   | credentials: uids, gids, groups, capabilities, securebits                   |
//! | [`process`] | ids, cwd, root, umask, personality, rlimits, prctl flags, comm/cmdline/auxv |
//! | [`files`]   | the stored-file catalog: identities, hashes, stored contents                |
//! | [`fds`]     | fds, one submodule per kind: regular, tty, pipe, fifo, epoll, eventfd,      |
//! |             | timerfd, signalfd, inotify; `shares`: descriptions shared by several fds    |
//! | [`tree`]    | the process tree: which processes, checks on each child, what they share    |
//! | [`zombies`] | children that exited unreaped: ids and exit status (`/proc/PID/stat` 52)    |
//!
//! And the machinery around them: [`source`] (where the kernel-only state comes from) with
//! [`kmod`] (the `/dev/checkpoint` side of it), [`stop`] (seize, park, thaw), [`interrupt`]
//! (the tool's own termination signals), [`procfs`] (the `/proc/PID` parsers), [`host`] (the
//! host identity), [`error`].

#![forbid(unsafe_code)]

pub mod aio;
pub mod creds;
pub mod error;
pub mod fds;
pub mod files;
pub mod host;
pub mod interrupt;
pub mod kmod;
pub mod memory;
pub mod parent;
pub mod precopy;
pub mod process;
pub mod procfs;
pub mod shared_memory;
pub mod signals;
pub mod snapshot;
pub mod source;
pub mod stop;
pub mod sysv_shm;
pub mod threads;
pub mod timers;
pub mod tree;
pub mod zombies;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use psnc_format::model::{Arch, Checkpoint, Identity, Process};
use psnc_format::{AtomicFile, ImageWriter, LayoutClass};

pub use error::{CaptureError, Result};
use fds::pipe::TeePipePeek;
use files::{FileCatalog, FilePhase};
use interrupt::Interrupts;
use memory::TargetMemory;
use precopy::PreCopy;
pub use precopy::PreCopyMode;
use procfs::ProcDir;
pub use source::KmodMode;
use source::StateSource;
use stop::{Frozen, FrozenTree};

/// Where the image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file, created atomically (temporary name, renamed on success).
    Path(PathBuf),
    /// Standard output (`-o -`).
    Stdout,
}

impl Output {
    /// The path as the user gave it, for messages (`-` for stdout).
    pub fn display(&self) -> PathBuf {
        match self {
            Output::Path(p) => p.clone(),
            Output::Stdout => PathBuf::from("-"),
        }
    }
}

/// How to capture.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the image goes.
    pub output: Output,
    /// Kill the target once the image is safely written (it stays stopped until then).
    pub kill: bool,
    /// Store the executable and mapped files in the image (deleted files are always stored).
    pub store_files: bool,
    /// The layout class of the image; `None` = the process's own (32 for i386, 64 for x86_64).
    pub layout: Option<LayoutClass>,
    /// Step-by-step log on stderr.
    pub verbose: bool,
    /// Termination signals of the tool, checked at safe points; `None` = not watched.
    pub interrupts: Option<Arc<Interrupts>>,
    /// The tool's command line, recorded in the image identity.
    pub cmdline: Vec<String>,
    /// Whether the kernel-only state comes from `/dev/checkpoint` (`--kmod`).
    pub kmod: KmodMode,
    /// Capture every descendant too (default); `false` (`--no-children`) takes the one process,
    /// and pipes it shares with its children become external like any pipe to outside.
    pub children: bool,
    /// What to do with established TCP connections (`--tcp-established`, `--tcp-close`).
    pub tcp: fds::tcp::TcpMode,
    /// Whether memory is copied while the target runs ([`precopy`], `--pre-copy`).
    pub pre_copy: PreCopyMode,
    /// An earlier image of the tree: store only what differs from it ([`parent`], `--parent`).
    pub parent: Option<PathBuf>,
}

impl Options {
    /// Defaults: keep the target running, store files, native layout, quiet.
    pub fn new(output: Output) -> Self {
        Options {
            output,
            kill: false,
            store_files: true,
            layout: None,
            verbose: false,
            interrupts: None,
            cmdline: Vec::new(),
            kmod: KmodMode::Auto,
            children: true,
            tcp: fds::tcp::TcpMode::Refuse,
            pre_copy: PreCopyMode::Auto,
            parent: None,
        }
    }
}

/// What a capture did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The captured process (the root of the tree).
    pub pid: i32,
    /// Processes captured (the root and its descendants).
    pub processes: usize,
    /// Zombies recorded (children that had exited unreaped; not counted in `processes`).
    pub zombies: usize,
    /// Where the image went (`-` for stdout).
    pub image: PathBuf,
    /// Size of the image in bytes.
    pub image_bytes: u64,
    /// Pages of memory stored.
    pub pages_stored: u64,
    /// With `--parent`: the parent image, and the pages and distinct files taken from its
    /// chain instead of being stored.
    pub parent: Option<ParentUse>,
    /// VMAs recorded.
    pub vmas: usize,
    /// Threads captured.
    pub threads: usize,
    /// File descriptors captured.
    pub fds: usize,
    /// Distinct files whose contents were stored.
    pub files_stored: usize,
    /// The longest time the target was stopped (with pre-copy: the longer of the two stops).
    pub stopped: Duration,
    /// How the memory was copied.
    pub memory_copy: MemoryCopy,
    /// How long the whole capture took.
    pub total: Duration,
    /// Whether the target was killed after the image was written (`--kill`).
    pub killed: bool,
    /// What the image will not bring back exactly, one sentence each (e.g. two fds of one
    /// process sharing a file description): the binary prints each as a warning.
    pub warnings: Vec<String>,
}

impl Summary {
    /// The one-line human summary.
    pub fn line(&self) -> String {
        let mut tree = if self.processes > 1 {
            format!(" and {} descendants", self.processes - 1)
        } else {
            String::new()
        };
        if self.zombies > 0 {
            tree.push_str(&format!(" with {} zombie(s)", self.zombies));
        }
        format!(
            "captured PID {}{tree} into {}: {} bytes, {} pages, {} threads, {} files stored; target stopped {:.3} ms{}",
            self.pid,
            self.image.display(),
            self.image_bytes,
            self.pages_stored,
            self.threads,
            self.files_stored,
            self.stopped.as_secs_f64() * 1e3,
            if self.killed { ", then killed" } else { ", running on" },
        ) + &self.parent.as_ref().map_or(String::new(), |p| {
            format!(
                "; incremental: {} pages and {} files are in the parent {}",
                p.pages,
                p.files,
                p.path.display()
            )
        })
    }

    /// The summary as JSON, for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "pid": self.pid,
            "processes": self.processes,
            "zombies": self.zombies,
            "image": self.image.to_string_lossy(),
            "image_bytes": self.image_bytes,
            "pages_stored": self.pages_stored,
            "parent": self.parent.as_ref().map(|p| serde_json::json!({
                "path": p.path.to_string_lossy(),
                "depth": p.depth,
                "pages": p.pages,
                "files": p.files,
            })),
            "vmas": self.vmas,
            "threads": self.threads,
            "fds": self.fds,
            "files_stored": self.files_stored,
            "stopped_ms": self.stopped.as_secs_f64() * 1e3,
            "memory_copy": self.memory_copy.to_json(),
            "total_ms": self.total.as_secs_f64() * 1e3,
            "killed": self.killed,
            "warnings": self.warnings,
        })
    }
}

/// What an incremental capture took from its parent chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParentUse {
    /// The parent image (absolute).
    pub path: PathBuf,
    /// Images in the chain behind the new one (1: the parent is a full image).
    pub depth: usize,
    /// Pages referenced in the parent chain, not stored.
    pub pages: u64,
    /// Stored files referenced in the parent chain, not stored.
    pub files: usize,
}

/// How a capture copied the memory: while the target ran ([`precopy`]) or all while stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryCopy {
    /// `"pre-copy"` or `"stop"`.
    pub method: &'static str,
    /// Why pre-copy was not used, or which processes it left out and why.
    pub why_not: Option<String>,
    /// Rounds copied while the target ran.
    pub rounds: usize,
    /// Pages copied while the target ran.
    pub pages_running: u64,
    /// Pages of the image whose copy from a running round was used.
    pub pages_reused: u64,
    /// Pages read while the target was stopped.
    pub pages_stopped: u64,
    /// The first, short stop that arms the write tracking (zero without pre-copy).
    pub arm_stop: Duration,
    /// The final stop, in which everything else is captured.
    pub final_stop: Duration,
    /// With a fork snapshot: the longest of the moments a parent was stopped again to reap
    /// its snapshot.
    pub reap_stop: Duration,
}

impl MemoryCopy {
    /// The object of `--json`'s `memory_copy`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "method": self.method,
            "why_not": self.why_not,
            "rounds": self.rounds,
            "pages_running": self.pages_running,
            "pages_reused": self.pages_reused,
            "pages_stopped": self.pages_stopped,
            "arm_stop_ms": self.arm_stop.as_secs_f64() * 1e3,
            "final_stop_ms": self.final_stop.as_secs_f64() * 1e3,
            "reap_stop_ms": self.reap_stop.as_secs_f64() * 1e3,
        })
    }
}

/// The step-by-step log (`-v`).
#[derive(Debug)]
struct Log {
    verbose: bool,
    start: Instant,
}

impl Log {
    fn step(&self, msg: impl FnOnce() -> String) {
        if self.verbose {
            // One write per line (stderr is unbuffered: eprintln! would write each piece of
            // the format on its own, a dozen syscalls per line inside the stop).
            let line = format!(
                "psnc-capture: [{:9.3} ms] {}\n",
                self.start.elapsed().as_secs_f64() * 1e3,
                msg()
            );
            let _ = io::stderr().write_all(line.as_bytes());
        }
    }
}

/// Counts the bytes written through it (the image size, also on stdout).
#[derive(Debug)]
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The image destination: an atomic file or stdout.
enum Sink {
    File(AtomicFile),
    Stdout(io::Stdout),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
        }
    }
}

/// Checks, before touching the target, that `pid` is a process capture can handle.
pub fn preflight(pid: i32) -> Result<()> {
    if pid <= 0 {
        return Err(CaptureError::NoSuchProcess { pid });
    }
    let me = std::process::id() as i32;
    if pid == me || ProcDir::new(me).path("task").join(pid.to_string()).exists() {
        return Err(CaptureError::SelfCapture { pid });
    }
    let dir = ProcDir::new(pid);
    if !dir.exists() {
        return Err(CaptureError::NoSuchProcess { pid });
    }
    let stat = dir.stat()?;
    if stat.is_kernel_thread() {
        return Err(CaptureError::KernelThread {
            pid,
            comm: stat.comm,
        });
    }
    if matches!(stat.state, 'Z' | 'X' | 'x') {
        return Err(CaptureError::Zombie { pid });
    }
    let status = dir.status()?;
    if status.kthread {
        return Err(CaptureError::KernelThread {
            pid,
            comm: status.name,
        });
    }
    if status.tgid != pid {
        return Err(CaptureError::NotAProcess {
            tid: pid,
            tgid: status.tgid,
        });
    }
    if status.tracer_pid != 0 {
        return Err(CaptureError::AlreadyTraced {
            pid,
            tracer: status.tracer_pid,
        });
    }
    if status.seccomp == 2 {
        return Err(CaptureError::SeccompFilter { pid });
    }
    Ok(())
}

/// Captures process `pid` as `opts` say. On error the target is left running and unchanged and no
/// image exists under the output name.
pub fn capture(pid: i32, opts: &Options) -> Result<Summary> {
    let log = Log {
        verbose: opts.verbose,
        start: Instant::now(),
    };
    let check = || opts.interrupts.as_ref().map_or(Ok(()), |i| i.check());
    let out_name = opts.output.display();
    preflight(pid)?;
    // The parent is read and verified before anything touches the target.
    let base = match &opts.parent {
        Some(p) => {
            let b = parent::Baseline::open(p)?;
            if let Output::Path(out) = &opts.output {
                if std::fs::canonicalize(out).is_ok_and(|o| o == b.path()) {
                    return Err(CaptureError::ParentIsOutput { path: p.clone() });
                }
            }
            log.step(|| {
                format!(
                    "parent {} verified ({} image(s) in the chain); only what differs is stored",
                    b.path().display(),
                    b.depth()
                )
            });
            Some(b)
        }
        None => None,
    };
    let base = base.as_ref();
    let source = StateSource::select(opts.kmod)?;
    log.step(|| source.describe());
    log.step(|| {
        format!(
            "PID {pid} is a user process; opening {}",
            out_name.display()
        )
    });
    let sink = match &opts.output {
        Output::Path(p) => {
            Sink::File(
                AtomicFile::create(p).map_err(|source| CaptureError::Output {
                    path: p.clone(),
                    source,
                })?,
            )
        }
        Output::Stdout => Sink::Stdout(io::stdout()),
    };
    check()?;

    let frozen = FrozenTree::freeze(pid, opts.children)?;
    log.step(|| stopped_line(&frozen));
    let (frozen, arch, writer) = match start_image(frozen, opts, sink) {
        Ok(v) => v,
        Err((frozen, e)) => {
            log.step(|| format!("failed ({e}); detaching"));
            drop(frozen.thaw());
            return Err(e);
        }
    };
    let mut writer = writer;
    let (mut frozen, mut pre, why_not) = pre_copy(
        pid,
        opts,
        &source,
        frozen,
        &mut writer,
        arch,
        base,
        &log,
        &check,
    )?;
    // Without write tracking, a fork snapshot keeps the stop short, unless the target stays
    // stopped anyway (--kill) or nothing may run in it (the module's source, with auto).
    let want_fork = pre.is_none()
        && !opts.kill
        && (opts.pre_copy == PreCopyMode::Fork
            || (opts.pre_copy == PreCopyMode::Auto && !matches!(source, StateSource::Kmod { .. })));
    let snaps = if want_fork {
        match snapshot::Snapshots::take(&mut frozen) {
            Ok(s) if s.any() => {
                log.step(|| {
                    "fork snapshot taken: memory is read from it after the target runs on".into()
                });
                Some(s)
            }
            Ok(s) => {
                log.step(|| {
                    format!(
                        "no fork snapshot ({}); everything is copied stopped",
                        s.missing_reason().unwrap_or_default()
                    )
                });
                None
            }
            Err(e) => {
                drop(frozen.thaw());
                return Err(e);
            }
        }
    } else {
        None
    };
    let mut repairs = fds::tcp::Repairs::new(opts.tcp);
    let collected = collect(
        &mut frozen,
        &source,
        opts,
        &mut repairs,
        &log,
        &check,
        writer,
        arch,
        pre.as_mut(),
        base,
        snaps.as_ref(),
    );
    let mut memory_copy = match &pre {
        None if snaps.is_some() => MemoryCopy {
            method: "fork snapshot",
            why_not: snaps.as_ref().and_then(|s| s.missing_reason()),
            ..Default::default()
        },
        Some(p) => MemoryCopy {
            method: "pre-copy",
            why_not: p.untracked_reason(),
            rounds: p.rounds,
            pages_running: p.pages_running,
            pages_reused: p.pages_reused,
            pages_stopped: p.pages_stopped,
            arm_stop: p.arm_stop,
            ..Default::default()
        },
        None => MemoryCopy {
            method: "stop",
            why_not,
            ..Default::default()
        },
    };
    if let Some(p) = &pre {
        log.step(|| p.describe());
    }
    let mut c = match collected {
        Ok(c) => c,
        Err(e) => {
            log.step(|| format!("failed ({e}); detaching"));
            repairs.release();
            drop(frozen.thaw());
            return Err(e);
        }
    };

    // Without --kill the target runs on now; the stable files are read through the handles
    // opened while it was stopped. With --kill it stays stopped until the image is committed,
    // so nothing it does can differ from the image.
    if !repairs.is_empty() {
        log.step(|| format!("{} TCP connection(s) in repair mode", repairs.len()));
    }
    // Killed, the connections are down until the restore: their packets are dropped meanwhile
    // (psnc_ptrace::netlock), or a peer that sends gets a reset from this host.
    let locked = if opts.kill && !repairs.is_empty() {
        let conns = fds::tcp::connections(&c.ckpt);
        let table = psnc_ptrace::netlock::table_name(pid as u32);
        match psnc_ptrace::netlock::lock(&table, &conns) {
            Ok(()) => {
                log.step(|| {
                    format!(
                        "network lock: nft table inet {table} drops the packets of {} \
                         connection(s) until psnc-restore removes it",
                        conns.len()
                    )
                });
                Some(table)
            }
            Err(e) => {
                c.warnings.push(format!(
                    "no network lock for the {} TCP connection(s): {e}; a peer that sends \
                     before the restore gets a reset from this host, which ends its connection",
                    conns.len()
                ));
                None
            }
        }
    } else {
        None
    };
    let unlock = |locked: &Option<String>| {
        if let Some(t) = locked {
            let _ = psnc_ptrace::netlock::unlock(t);
        }
    };
    let state = if opts.kill {
        Release::StillFrozen(frozen)
    } else {
        repairs.release();
        let s = frozen.thaw()?;
        log.step(|| {
            format!(
                "detached; the target runs on after {:.3} ms",
                s.as_secs_f64() * 1e3
            )
        });
        // The write tracking ends now, while the target runs: closing the tool's userfaultfds
        // unregisters and unprotects every range (the target's own descriptor was closed
        // when it was armed). Error paths end it the same way, when `pre` goes out of scope.
        if pre.take().is_some() {
            log.step(|| "write tracking ended".into());
        }
        Release::Thawed(s)
    };
    let processes = c.ckpt.processes.len();
    let zombies = c.ckpt.zombies.len();
    // With a fork snapshot: the private pages, read from it now that the target runs; then
    // the deleted files; then the snapshots go.
    let from_snapshots = match snaps {
        Some(snaps) => {
            let r = copy_deferred(pid, opts, base, &log, &check, &mut c).map(|n| {
                memory_copy.pages_running = n;
                memory_copy.pages_stopped = c.stats.pages.saturating_sub(n);
            });
            memory_copy.reap_stop = snaps.reap();
            log.step(|| {
                format!(
                    "fork snapshot(s) killed and reaped by their parents ({:.3} ms stopped)",
                    memory_copy.reap_stop.as_secs_f64() * 1e3
                )
            });
            r
        }
        None => Ok(()),
    };
    let written = from_snapshots
        .and_then(|()| {
            incremental_record(base, &mut c, &log);
            write_rest(pid, opts, base, &log, &check, &mut c)
        })
        .and_then(|()| {
            let out_err = |source| CaptureError::Output {
                path: out_name.clone(),
                source,
            };
            let out = c
                .writer
                .finish(c.ckpt)
                .map_err(|source| CaptureError::Format {
                    path: out_name.clone(),
                    source,
                })?;
            log.step(|| "metadata, section table and trailer written".into());
            commit(out).map_err(out_err)
        });
    let (final_stop, killed, image_bytes) = match (state, written) {
        (Release::Thawed(s), Ok(n)) => (s, false, n),
        (Release::StillFrozen(frozen), Ok(n)) => {
            let s = frozen.kill().map_err(|e| CaptureError::Kill {
                pid,
                source: Box::new(e),
            })?;
            log.step(|| format!("killed PID {pid} ({processes} process(es))"));
            // Dead: the sockets' last references are the tool's, closed in repair mode (no
            // FIN, no RST to the peers).
            repairs.close_in_repair();
            (s, true, n)
        }
        (Release::StillFrozen(frozen), Err(e)) => {
            repairs.release();
            unlock(&locked);
            drop(frozen.thaw());
            return Err(e);
        }
        (Release::Thawed(_), Err(e)) => return Err(e),
    };
    log.step(|| format!("image complete: {image_bytes} bytes"));
    memory_copy.final_stop = final_stop;
    let stopped = final_stop.max(memory_copy.arm_stop);
    Ok(Summary {
        pid,
        processes,
        zombies,
        image: out_name,
        image_bytes,
        pages_stored: c.stats.pages,
        parent: base.map(|b| ParentUse {
            path: b.path().to_path_buf(),
            depth: b.depth(),
            pages: c.stats.pages_in_parent,
            files: c.stats.files_in_parent,
        }),
        vmas: c.stats.vmas,
        threads: c.stats.threads,
        fds: c.stats.fds,
        files_stored: c.stats.files,
        stopped,
        memory_copy,
        total: log.start.elapsed(),
        killed,
        warnings: c.warnings,
    })
}

/// The `-v` line of a stop.
fn stopped_line(frozen: &FrozenTree) -> String {
    format!(
        "stopped {} process(es), {} thread(s) with PTRACE_SEIZE + PTRACE_INTERRUPT in {} round(s)",
        frozen.len(),
        frozen.threads(),
        frozen.rounds()
    )
}

/// The stopped tree, its mode and the image writer, as [`start_image`] makes them.
type Started = (FrozenTree, Arch, ImageWriter<Counting<Sink>>);

/// While the tree is stopped the first time: its mode and layout class, and the image writer
/// of that class. On error the tree comes back for the caller to thaw.
#[allow(clippy::result_large_err)]
fn start_image(
    mut frozen: FrozenTree,
    opts: &Options,
    sink: Sink,
) -> std::result::Result<Started, (FrozenTree, CaptureError)> {
    let (arch, class) = match tree_layout(&mut frozen, opts) {
        Ok(v) => v,
        Err(e) => return Err((frozen, e)),
    };
    match ImageWriter::new(
        Counting {
            inner: sink,
            count: 0,
        },
        class,
    ) {
        Ok(w) => Ok((frozen, arch, w)),
        Err(source) => Err((
            frozen,
            CaptureError::Format {
                path: opts.output.display(),
                source,
            },
        )),
    }
}

/// Arms the write tracking while `frozen` is stopped, lets the tree run while memory is copied
/// into `writer` ([`precopy`]), and stops it again. Returns the tree stopped for the capture
/// proper, with the pre-copy, or without one and why. On error the tree runs, unwatched.
#[allow(clippy::too_many_arguments)]
fn pre_copy<W: Write>(
    pid: i32,
    opts: &Options,
    source: &StateSource,
    mut frozen: FrozenTree,
    writer: &mut ImageWriter<W>,
    arch: Arch,
    base: Option<&parent::Baseline>,
    log: &Log,
    check: &dyn Fn() -> Result<()>,
) -> Result<(FrozenTree, Option<PreCopy>, Option<String>)> {
    if opts.pre_copy == PreCopyMode::Never {
        return Ok((frozen, None, Some("--pre-copy=never".into())));
    }
    if opts.pre_copy == PreCopyMode::Fork {
        let why = if opts.kill {
            "--pre-copy=fork with --kill: the target stays stopped until the image is written, \
             a fork snapshot would not shorten that"
        } else {
            "--pre-copy=fork"
        };
        return Ok((frozen, None, Some(why.into())));
    }
    // With the module nothing runs in the target; arming would run userfaultfd() and close().
    if opts.pre_copy == PreCopyMode::Auto && matches!(source, StateSource::Kmod { .. }) {
        return Ok((
            frozen,
            None,
            Some(
                "the state comes from /dev/checkpoint, which runs nothing in the target \
                 (--pre-copy=always arms the write tracking with two syscalls in it)"
                    .into(),
            ),
        ));
    }
    let pre = match PreCopy::arm(&mut frozen) {
        Ok(p) => p,
        Err(e) => {
            drop(frozen.thaw());
            return Err(e);
        }
    };
    if !pre.is_armed() || (opts.pre_copy == PreCopyMode::Always && !pre.untracked.is_empty()) {
        let why = pre.untracked_reason().unwrap_or_default();
        log.step(|| format!("no pre-copy ({why}); everything is copied stopped"));
        if opts.pre_copy == PreCopyMode::Always {
            drop(pre);
            drop(frozen.thaw());
            return Err(CaptureError::PreCopy { pid, why });
        }
        return Ok((frozen, None, Some(why)));
    }
    let mut pre = pre;
    pre.arm_stop = frozen.thaw()?;
    log.step(|| {
        format!(
            "write tracking armed in {:.3} ms; the target runs during the pre-copy",
            pre.arm_stop.as_secs_f64() * 1e3
        )
    });
    let path = opts.output.display();
    pre.run(
        &mut PagesInto {
            writer,
            path: &path,
            base,
            pid: 0,
        },
        &|m| log.step(|| m),
        &mut || check(),
    )?;
    let mut frozen = FrozenTree::freeze(pid, opts.children)?;
    log.step(|| stopped_line(&frozen));
    match tree_layout(&mut frozen, opts) {
        Ok((a, _)) if a == arch => Ok((frozen, Some(pre), None)),
        Ok(_) => {
            drop(pre);
            drop(frozen.thaw());
            Err(CaptureError::PreCopy {
                pid,
                why: "the tree changed mode (x86_64/i386) during the pre-copy".into(),
            })
        }
        Err(e) => {
            drop(pre);
            drop(frozen.thaw());
            Err(e)
        }
    }
}

/// Where the target is once the stopped part of a capture is done.
enum Release {
    /// Detached and running on, after being stopped this long.
    Thawed(Duration),
    /// Still stopped (`--kill`: killed once the image is committed).
    StillFrozen(FrozenTree),
}

/// Stores the stable files and fills every `FileRef`.
fn write_rest<W: Write>(
    pid: i32,
    opts: &Options,
    base: Option<&parent::Baseline>,
    log: &Log,
    check: &dyn Fn() -> Result<()>,
    c: &mut Collected<W>,
) -> Result<()> {
    store_phase(
        pid,
        opts,
        base,
        check,
        &mut c.catalog,
        &mut c.writer,
        &mut c.stats,
        FilePhase::Stable,
    )?;
    c.stats.files = c.catalog.stored() - c.stats.files_in_parent;
    log.step(|| {
        format!(
            "{} distinct files, {} stored",
            c.catalog.len(),
            c.stats.files
        )
    });
    for p in &mut c.ckpt.processes {
        c.catalog.fill_refs(p);
    }
    Ok(())
}

/// With a fork snapshot, once the target runs on: the pages planned in the stop, read from
/// each process's snapshot, then the deleted files (which the writer takes after the pages).
fn copy_deferred<W: Write>(
    pid: i32,
    opts: &Options,
    base: Option<&parent::Baseline>,
    log: &Log,
    check: &dyn Fn() -> Result<()>,
    c: &mut Collected<W>,
) -> Result<u64> {
    let path = opts.output.display();
    let mut pages = 0;
    for (owner, snap, plan) in std::mem::take(&mut c.deferred) {
        let mut mem = TargetMemory::open(snap)?;
        let mut sink = PagesInto {
            writer: &mut c.writer,
            path: &path,
            base,
            pid: owner,
        };
        let runs = memory::copy_pages(&plan, &mut mem, &mut sink, &mut || check())
            .map_err(|e| snapshot::read_error(pid, snap, e))?;
        pages += plan.pages();
        if let Some(p) = c.ckpt.processes.iter_mut().find(|p| p.pid == owner) {
            p.pages.extend(runs);
            p.pages.sort_by_key(|r| r.addr);
        }
    }
    log.step(|| format!("{pages} pages read from the fork snapshot(s) while the target ran"));
    store_phase(
        pid,
        opts,
        base,
        check,
        &mut c.catalog,
        &mut c.writer,
        &mut c.stats,
        FilePhase::Volatile,
    )?;
    Ok(pages)
}

/// Stores the files of `phase` of `catalog` into `writer` ([`store_file`]).
#[allow(clippy::too_many_arguments)]
fn store_phase<W: Write>(
    pid: i32,
    opts: &Options,
    base: Option<&parent::Baseline>,
    check: &dyn Fn() -> Result<()>,
    catalog: &mut FileCatalog,
    writer: &mut ImageWriter<W>,
    stats: &mut Stats,
    phase: FilePhase,
) -> Result<()> {
    let fmt = |source| CaptureError::Format {
        path: opts.output.display(),
        source,
    };
    catalog.store(
        pid,
        phase,
        opts.store_files,
        &mut |path, sha, rd| store_file(writer, base, stats, path, sha, rd).map_err(fmt),
        &mut || check(),
    )
}

/// Incremental (`--parent`): moves the runs that point into the parent out of each process's
/// runs into the image's parent record.
fn incremental_record<W: Write>(base: Option<&parent::Baseline>, c: &mut Collected<W>, log: &Log) {
    let Some(b) = base else {
        return;
    };
    let mut record = b.record();
    for p in &mut c.ckpt.processes {
        record.pages.extend(parent::split(p));
    }
    let taken: u64 = record.pages.iter().map(|r| r.pages).sum();
    c.stats.pages -= taken;
    c.stats.pages_in_parent = taken;
    log.step(|| {
        format!(
            "{taken} pages are the same as in the parent, in {} runs: not stored",
            record.pages.len()
        )
    });
    c.ckpt.parent = Some(record);
}

/// Stores a file's contents, or with a parent that stores the same (by SHA-256) refers to it.
fn store_file<W: Write>(
    writer: &mut ImageWriter<W>,
    base: Option<&parent::Baseline>,
    stats: &mut Stats,
    path: &str,
    sha: &[u8; 32],
    rd: &mut dyn io::Read,
) -> std::result::Result<psnc_format::model::FileId, psnc_format::FormatError> {
    if let Some(size) = base.and_then(|b| b.stored_file(sha)) {
        stats.files_in_parent += 1;
        return Ok(writer.file_in_parent(path, *sha, size));
    }
    writer.store_file_from(path, &mut &mut *rd)
}

/// Flushes (and for a file, fsyncs and renames) the image; returns its size.
fn commit(out: Counting<Sink>) -> io::Result<u64> {
    let count = out.count;
    match out.inner {
        Sink::File(f) => f.commit()?,
        Sink::Stdout(mut s) => s.flush()?,
    }
    Ok(count)
}

/// Counts for the summary.
#[derive(Debug, Default)]
struct Stats {
    pages: u64,
    /// Pages and distinct files taken from the parent chain (`--parent`).
    pages_in_parent: u64,
    files_in_parent: usize,
    vmas: usize,
    threads: usize,
    fds: usize,
    files: usize,
}

/// The image writer as the copy loop's page sink: buffers from its hashing pool, one write each.
struct PagesInto<'a, W: Write> {
    writer: &'a mut ImageWriter<W>,
    /// The image path, for errors.
    path: &'a std::path::Path,
    /// With `--parent`: pages the same as the parent's are referenced, not written.
    base: Option<&'a parent::Baseline>,
    /// The process whose pages are being written.
    pid: u32,
}

impl<W: Write> memory::PageSink for PagesInto<'_, W> {
    fn buffer(&mut self, len: usize) -> Result<Vec<u8>> {
        self.writer
            .page_buffer(len)
            .map_err(|source| CaptureError::Format {
                path: self.path.to_path_buf(),
                source,
            })
    }

    fn write(
        &mut self,
        runs: &[(u64, u64)],
        mut buf: Vec<u8>,
    ) -> Result<Vec<psnc_format::model::PageRun>> {
        let err = |source| CaptureError::Format {
            path: self.path.to_path_buf(),
            source,
        };
        let Some(base) = self.base else {
            return self.writer.write_page_buffer(runs, buf).map_err(err);
        };
        let (keep, pieces) = parent::compact(base, self.pid, runs, &mut buf);
        let stored = if keep.is_empty() {
            Vec::new()
        } else {
            self.writer.write_page_buffer(&keep, buf).map_err(err)?
        };
        // `compact` keeps one run per piece that is not the parent's, in order: each gets the
        // next stored run.
        let mut stored = stored.into_iter();
        pieces
            .into_iter()
            .map(|(addr, pages, in_parent)| {
                if in_parent {
                    return Ok(psnc_format::model::PageRun {
                        addr,
                        pages,
                        data_offset: parent::IN_PARENT + addr,
                    });
                }
                stored
                    .next()
                    .filter(|r| r.addr == addr && r.pages == pages)
                    .ok_or_else(|| CaptureError::Format {
                        path: self.path.to_path_buf(),
                        source: psnc_format::FormatError::WriterState(
                            "the pages kept apart from the parent's do not match the runs written",
                        ),
                    })
            })
            .collect()
    }

    fn process(&mut self, pid: i32) {
        self.pid = pid as u32;
    }
}

/// What [`collect`] gathered while the target was stopped.
struct Collected<W: Write> {
    /// The model; its `FileRef`s get hashes and stored ids from `catalog` at the end.
    ckpt: Checkpoint,
    /// Files still to hash and store ([`FilePhase::Stable`]).
    catalog: FileCatalog,
    /// The writer, past the page runs and the deleted files.
    writer: ImageWriter<W>,
    stats: Stats,
    /// What the image will not bring back exactly ([`Summary::warnings`]).
    warnings: Vec<String>,
    /// With a fork snapshot: per process (its PID), the snapshot's PID and the pages to read
    /// from it once the target runs on.
    deferred: Vec<(u32, i32, memory::PagePlan)>,
}

/// The mode of every process of the stopped tree (one for all) and the image's layout class.
fn tree_layout(tree: &mut FrozenTree, opts: &Options) -> Result<(Arch, LayoutClass)> {
    let root = tree.root();
    let procs = tree.processes();
    // Modes first: every remote syscall needs the right instruction and numbering.
    let mut arches = Vec::with_capacity(procs.len());
    for f in procs.iter_mut() {
        arches.push(threads::process_arch(f)?);
    }
    let arch = arches[0];
    if let Some((f, a)) = procs.iter().zip(&arches).find(|(_, a)| **a != arch) {
        let name = |a: &Arch| match a {
            Arch::X86_64 => "an x86_64",
            Arch::I386 => "an i386",
        };
        return Err(CaptureError::Unsupported {
            pid: f.pid(),
            what: format!("this descendant of PID {root}"),
            kind: format!(
                "{} process under {} root (a tree mixing modes)",
                name(a),
                name(&arch)
            ),
        });
    }
    let class = match (opts.layout, arch) {
        (Some(LayoutClass::Bits32), Arch::X86_64) => {
            return Err(CaptureError::LayoutTooNarrow {
                pid: root,
                arch: "x86_64",
            });
        }
        (Some(c), _) => c,
        (None, Arch::X86_64) => LayoutClass::Bits64,
        (None, Arch::I386) => LayoutClass::Bits32,
    };
    Ok((arch, class))
}

/// Everything that needs the tree stopped: the model of every process, with the pages and
/// deleted files streamed into one writer.
#[allow(clippy::too_many_arguments)]
fn collect<W: Write>(
    tree: &mut FrozenTree,
    source: &StateSource,
    opts: &Options,
    repairs: &mut fds::tcp::Repairs,
    log: &Log,
    check: &dyn Fn() -> Result<()>,
    mut writer: ImageWriter<W>,
    arch: Arch,
    mut pre: Option<&mut PreCopy>,
    base: Option<&parent::Baseline>,
    snaps: Option<&snapshot::Snapshots>,
) -> Result<Collected<W>> {
    let root = tree.root();
    check()?;
    let procs = tree.processes();
    let mut catalog = FileCatalog::new();
    let mut stats = Stats::default();
    let mut shared = shared_memory::SharedObjects::new();
    let mut sysv = sysv_shm::Segments::new();
    let mut processes = Vec::with_capacity(procs.len());
    let mut deferred = Vec::new();
    for frozen in procs.iter_mut() {
        let p = collect_process(
            frozen,
            arch,
            source,
            opts,
            log,
            check,
            &mut writer,
            &mut catalog,
            &mut shared,
            &mut sysv,
            &mut stats,
            repairs,
            pre.as_deref_mut(),
            base,
            snaps,
            &mut deferred,
        )?;
        processes.push(p);
    }
    if processes.len() > 1 {
        tree::link_pipes(&mut processes);
        tree::link_fifos(&mut processes);
    }
    // Every process is stopped: no fd changes while the descriptions are compared.
    let fd_shares = fds::shares::group(&processes)?;
    let unix_peers = fds::unix::external_peers(&processes)?;
    fds::epoll::check_watches(&processes, &fd_shares)?;
    let ptys = fds::tty::collect_ptys(&processes)?;
    let warnings: Vec<String> = processes
        .iter()
        .filter_map(|p| aio::warning(p.pid as i32, &p.aio))
        .collect();

    // With a fork snapshot the page data is not complete yet: the deleted files come after it.
    if snaps.is_none() {
        store_phase(
            root,
            opts,
            base,
            check,
            &mut catalog,
            &mut writer,
            &mut stats,
            FilePhase::Volatile,
        )?;
        log.step(|| format!("{} deleted file(s) stored", catalog.stored()));
    }
    // Last of what runs while every process is stopped: the longer the window, the more
    // requests in flight complete in it and are caught.
    aio::check_unchanged(&processes)?;

    let mut host = host::host_identity()?;
    if let Some(t) = processes.first().and_then(|p| p.threads.first()) {
        (host.xsave_features, host.xsave_size) = host::xsave_identity(&t.xsave);
    }
    let me = ProcDir::new(std::process::id() as i32).status()?;
    let identity = Identity {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        created_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        host,
        capture_uid: me.uids[0],
        capture_gid: me.gids[0],
        capture_cmdline: opts.cmdline.clone(),
    };
    Ok(Collected {
        ckpt: Checkpoint {
            identity,
            processes,
            files: Vec::new(),
            fd_shares,
            zombies: tree.zombies().to_vec(),
            shared_memory: shared.into_objects(),
            ptys,
            sysv_shm: sysv.into_segments(),
            unix_peers,
            parent: None,
        },
        deferred,
        catalog,
        writer,
        stats,
        warnings,
    })
}

/// One process of the tree, while it is stopped: its model, with its pages streamed into
/// `writer` and its files registered in `catalog`; `stats` gets its counts added.
#[allow(clippy::too_many_arguments)]
fn collect_process<W: Write>(
    frozen: &mut Frozen,
    arch: Arch,
    source: &StateSource,
    opts: &Options,
    log: &Log,
    check: &dyn Fn() -> Result<()>,
    writer: &mut ImageWriter<W>,
    catalog: &mut FileCatalog,
    shared: &mut shared_memory::SharedObjects,
    sysv: &mut sysv_shm::Segments,
    stats: &mut Stats,
    repairs: &mut fds::tcp::Repairs,
    mut pre: Option<&mut PreCopy>,
    base: Option<&parent::Baseline>,
    snaps: Option<&snapshot::Snapshots>,
    deferred: &mut Vec<(u32, i32, memory::PagePlan)>,
) -> Result<Process> {
    let pid = frozen.pid();
    let dir = ProcDir::new(pid);

    // The kernel-only state, from the module or from the remote batch: all syscalls run inside
    // the target, in one place, before anything is read that they could disturb (the scratch
    // page is gone again before maps is read).
    let timers = dir.timers()?;
    let kstate = source.collect(frozen, arch, &timers)?;
    if kstate.injected {
        frozen.park()?;
    }
    for line in &kstate.provenance {
        log.step(|| format!("[{pid}] {line}"));
    }
    check()?;

    let mut threads = threads::collect(&dir, frozen, kstate.threads)?;
    if let Some(pre) = pre.as_deref() {
        pre.fix_restarts(&mut threads, arch);
    }
    log.step(|| {
        format!(
            "[{pid}] {} thread(s): registers, XSAVE, signal state",
            threads.len()
        )
    });
    let signals = signals::collect(pid, &frozen.threads()[0], kstate.signals, kstate.timers)?;

    let stat = dir.stat()?;
    let status = dir.status()?;
    // Checked before the stop too; a filter installed since then is caught here.
    if status.seccomp == 2 {
        return Err(CaptureError::SeccompFilter { pid });
    }
    let exe = files::exe_ref(&dir, catalog)?;

    // Memory layout and its refusals, before any byte is copied.
    let memory::MemoryLayout {
        vmas,
        plan_input,
        aio_rings,
        shared: shared_vmas,
        sysv: sysv_vmas,
        uffd_wp,
    } = memory::collect_vmas(&dir, catalog)?;
    // With pre-copy: the copies still good after the last scan.
    let copies = match pre.as_deref_mut() {
        Some(pre) => pre.final_copies(pid, &uffd_wp),
        None => None,
    };
    log.step(|| format!("[{pid}] {} VMAs", vmas.len()));
    let mut mem = TargetMemory::open(pid)?;
    let aio = aio::collect(pid, &aio_rings, &mut mem)?;
    if !aio.is_empty() {
        log.step(|| format!("[{pid}] {} AIO context(s)", aio.len()));
    }

    let mut fds = fds::collect_fds(&dir, catalog, &mut TeePipePeek::new(pid)?, repairs)?;
    log.step(|| format!("[{pid}] {} fds", fds.len()));
    check()?;

    let plan = memory::plan_pages(&plan_input, &dir.pagemap()?)?;
    log.step(|| {
        format!(
            "[{pid}] page plan: {} pages in {} ranges",
            plan.pages(),
            plan.ranges.len()
        )
    });

    let out_path = opts.output.display();
    let mut sink = PagesInto {
        writer,
        path: &out_path,
        base,
        pid: pid as u32,
    };
    // With pre-copy, the pages not written since their copy are in the image already.
    let snapshot = snaps.and_then(|s| s.of(pid));
    let pages = match (pre, &copies, snapshot) {
        (Some(pre), Some(copies), _) => {
            pre.use_copies(copies, &plan, &mut mem, &mut sink, &mut || check())?
        }
        // The snapshot has the private pages as they are now; what it lacks is read now.
        (_, _, Some(snap)) => {
            let (now, later) = snapshot::split_plan(&plan, &vmas);
            deferred.push((pid as u32, snap, later));
            memory::copy_pages(&now, &mut mem, &mut sink, &mut || check())?
        }
        _ => memory::copy_pages(&plan, &mut mem, &mut sink, &mut || check())?,
    };
    log.step(|| {
        format!(
            "[{pid}] {} pages copied in {} runs",
            plan.pages(),
            pages.len()
        )
    });
    // Page data of the shared objects (anonymous, System V, memfds), each stored once.
    let mut write_pages = |offset, bytes: &[u8]| {
        stats.pages += bytes.len() as u64 / procfs::PAGE_SIZE;
        writer
            .write_pages(offset, bytes)
            .map_err(|source| CaptureError::Format {
                path: out_path.to_path_buf(),
                source,
            })
    };
    for entry in &shared_vmas {
        shared.add(&dir, entry, &mut write_pages, &mut || check())?;
    }
    if !shared_vmas.is_empty() {
        log.step(|| {
            format!(
                "[{pid}] {} shared anonymous mapping(s), each object stored once",
                shared_vmas.len()
            )
        });
    }
    for (entry, may_write) in &sysv_vmas {
        sysv.add(&dir, entry, *may_write, &mut write_pages, &mut || check())?;
    }
    if !sysv_vmas.is_empty() {
        log.step(|| {
            format!(
                "[{pid}] {} System V shared memory attachment(s), each segment stored once",
                sysv_vmas.len()
            )
        });
    }
    // After the mappings: a memfd both mapped and open is the object its mapping gave.
    let memfds = fds::memfd::resolve(&dir, &mut fds, shared, &mut write_pages, &mut || check())?;
    if memfds > 0 {
        log.step(|| format!("[{pid}] {memfds} memfd fd(s), each naming its shared memory object"));
    }

    // The fields named here come from state read above; `process::collect` (evaluated after
    // them) reads the process-wide rest from /proc.
    let process = Process {
        arch,
        creds: creds::collect(&status, &kstate.process),
        exe,
        mm: memory::mm_fields(&stat, &kstate.process),
        threads,
        vmas,
        pages,
        fds,
        signals,
        aio,
        ..process::collect(&dir, &stat, &status, &kstate.process)?
    };
    stats.pages += plan.pages();
    stats.vmas += process.vmas.len();
    stats.threads += process.threads.len();
    stats.fds += process.fds.len();
    Ok(process)
}
