//! Restore a process from a psnc-cr image, without the runtime linker.
//!
//! The restored process is rebuilt, not relaunched: a stub executable of the image's mode is
//! exec'd with the image's PID, and the restore then drives it with remote system calls until it
//! holds the image's memory, files and kernel state, and finally its registers. Nothing of the
//! program runs before it continues exactly where it was captured.
//!
//! ```text
//!  Image::open ─► checks::check ─► prepare ────────► spawn::start_stub ─► rebuild ─► release
//!  (digests)      (refusals: CPU,   (open/recreate    (clone3 set_tid,    (memory,   (detach, or
//!                 vdso, files, PID,  files, pipes)     execveat stub,      vdso, mm,  SIGSTOP with
//!                 region)                              seize, int3 stop)   fds, ...)  --leave-stopped)
//! ```
//!
//! Refusals happen before anything is created ([`RestoreError::is_refusal`]); a failure after the
//! stub exists kills it, so a failed restore leaves no process behind. One check may end after
//! the stub exists: the page data's digests of an image with 64 MiB of pages or more are hashed
//! on other threads while the process is rebuilt ([`checks::PageDigests`]), and the restore
//! waits for them before anything of the process runs.
//!
//! # Modules
//!
//! One module per kind of kernel object, named as in psnc-capture:
//!
//! | module      | owns                                                                      |
//! |-------------|---------------------------------------------------------------------------|
//! | [`memory`]  | VMAs, pages, the mm fields (`PR_SET_MM_MAP`), the scratch unmap           |
//! | [`lazy`]    | `--lazy`: memory filled on first touch and in the background (userfaultfd) |
//! | [`threads`] | the other threads (with their TIDs), each thread's state and registers    |
//! | [`signals`] | signal handlers, the process-wide pending queue                           |
//! | [`timers`]  | interval timers, POSIX timers                                             |
//! | [`creds`]   | credentials, and dumpable and pdeathsig, which a credential change resets |
//! | [`process`] | cwd and root, umask, personality, name, rlimits, prctl flags, the pidfd   |
//! | [`files`]   | the stored files: replicas of deleted or changed files, the exe           |
//! | [`shared_memory`] | shared anonymous memory and memfds: one memfd per object, for all its mappings and fds |
//! | [`fds`]     | fds, one submodule per kind: regular, tty, pipe, fifo, epoll, eventfd,    |
//! |             | timerfd, signalfd, inotify; `shares`: one description for a shared group  |
//! | [`tree`]    | a tree of processes: forks from the parents' stubs, sessions, groups      |
//! | [`zombies`] | unreaped children back as zombies of their parent, with their status      |
//!
//! And the machinery around them: [`checks`] (the refusals and the [`checks::Plan`]), [`cpu`],
//! [`vdso`], [`placement`] (where the restore's own pages go), [`stub`] and [`spawn`] (the task
//! to rebuild), [`remote`] (driving it with remote calls), [`error`]; `/proc` is read through
//! `psnc_proc`.
//!
//! # Which ids change
//! - PID and TIDs stay the image's (`clone3` `set_tid`).
//! - The root's parent is the restore tool, and once it exits (background mode) the nearest
//!   subreaper or init: `ppid` changes. Every other process of a tree keeps its parent, group
//!   and session ([`tree`]); the root's group and session, when they were outside the tree, are
//!   replaced as below, and the processes that shared them follow the root.
//! - Session and process group: without `--shell-job` the process gets a new session, so its SID
//!   and PGID become its PID. That equals the image's ids when the process was its session's
//!   leader; otherwise they change. With `--shell-job` it joins the restore tool's session and
//!   process group (the shell's job), and a terminal reopened by path is its controlling tty.
//! - `/proc/PID/stat` start time, and the remaining time of interval timers (time passed while the
//!   image was stored is not counted).
//! - `PR_SET_PDEATHSIG` is restored only with `--foreground` (the restore tool is the parent; in
//!   background mode its exit would fire the signal).
//! - Open file descriptions shared between several fds (through dup or fork) become one per fd,
//!   except for pipes; offsets of such fds no longer move together.
//! - An inotify instance comes back with its watches and their wd numbers but an empty queue:
//!   the events queued at capture are lost (`-v` says so). A relative timerfd, like an interval
//!   timer, resumes with the time it had left; an absolute one keeps its expiry.
//!
//! # Fds whose other end was outside the image
//!
//! A process inherits fds from whoever started it: stdin a pipe from a shell pipeline, stdout a
//! pipe to a logger, a FIFO a supervisor opened. Capture records such a pipe as external, with
//! the bytes buffered in it. Without a flag (`--external=recreate`, the default) restore does what
//! CRIU does for a pipe whose peer is not in the tree: it creates a new pipe holding those bytes,
//! gives the process its end and closes the other, and prints one line per such fd on stderr
//! ([`checks::ExternalFd`]): the fd, its resource, the end and the buffered byte count, what the
//! process will see (a read end: the bytes, then EOF; a write end: EPIPE, and SIGPIPE unless the
//! process ignores it), and the `--inherit-fd fd[N]:pipe:[INO]` that would reconnect it.
//! - `--inherit-fd` takes precedence: the tool's fd is handed over as it is, and the bytes that
//!   were buffered at capture are not put into it (as in CRIU: the new peer owns that pipe).
//! - `--external=refuse` refuses such a pipe before anything is created
//!   ([`RestoreError::ExternalFd`]).
//! - A FIFO is reopened by its path in either mode, without blocking on a missing peer (a
//!   read-write keeper is open meanwhile, as in CRIU's `fifo.c`); its bytes are put back unless
//!   the FIFO still holds bytes (an outside peer kept it open, so they are still there). When
//!   the process held only one of its ends, the same kind of line is printed.
//!
//! # Order of the rebuild
//!
//! `rebuild` calls the modules in one fixed order: clear the stub and place the vdso
//! ([`memory`], [`vdso`]); close the inherited fds and open the tool's pidfd ([`process`]);
//! VMAs, pages and the mm fields ([`memory`]); the other threads ([`threads`]); leave the stub
//! code and set the exe link ([`memory`]); fds, root and cwd ([`fds`], [`process`]); umask,
//! personality, name and rlimits ([`process`]), handlers ([`signals`]), interval timers
//! ([`timers`]), process-wide pending signals ([`signals`]), prctl flags ([`process`]); each
//! thread's state ([`threads`]), POSIX timers ([`timers`]), each thread's pending signals and
//! AMX permission ([`threads`]); credentials, then dumpable and pdeathsig ([`creds`]); the
//! scratch unmap ([`memory`]). Then `finish` loads every thread's registers ([`threads`]) and
//! `release` lets them go. The reasons:
//! - `PR_SET_MM_MAP` before rlimits (the kernel checks RLIMIT_DATA against the new brk);
//! - fds before rlimits (an fd above the image's RLIMIT_NOFILE could not be installed after);
//! - signals are queued while every signal is blocked, and the real mask is set last, so nothing
//!   is delivered before the task runs on its own;
//! - `sigaltstack` before the final registers (it fails with EPERM while the stack pointer is on
//!   the alternate stack);
//! - credentials last but for `PR_SET_DUMPABLE` and `PR_SET_PDEATHSIG`, which a credential
//!   change resets;
//! - the scratch area is unmapped by the very last remote call.

#![forbid(unsafe_code)]

pub mod aio;
pub mod checks;
pub mod cpu;
pub mod creds;
pub mod error;
pub mod fds;
pub mod files;
pub mod lazy;
pub mod memory;
pub mod placement;
pub mod process;
pub mod remote;
pub mod shared_memory;
pub mod signals;
pub mod spawn;
pub mod stub;
pub mod sysv_shm;
pub mod threads;
pub mod timers;
pub mod tree;
pub mod vdso;
pub mod zombies;

pub use error::{RestoreError, Result};

use std::os::fd::OwnedFd;
use std::rc::Rc;

use nix::sys::signal::Signal;
use psnc_format::model::Arch;
use psnc_format::Image;
use psnc_ptrace::{Stop, Sysno, Tracee};

use crate::checks::Plan;
use crate::remote::Task;

/// What a terminal fd of the image becomes when the restore does not reattach the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StdioMode {
    /// The restore tool's own stdin/stdout/stderr (same number for fds 0..=2; stdin for other
    /// read-only fds, stdout for the rest).
    #[default]
    Inherit,
    /// `/dev/null`, opened with the fd's flags.
    Null,
}

/// What an `--inherit-fd` argument hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InheritTarget {
    /// The image's fd with this number.
    Fd(i32),
    /// Every image fd whose resource has this name: `pipe:[INO]`, `socket:[INO]`, or a path.
    Resource(String),
}

/// One `--inherit-fd fd[N]:RES`: the restore tool's fd `N` stands in for resource `RES` of the
/// image, for resources whose other end was outside the image (pipes, sockets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InheritFd {
    /// The restore tool's descriptor.
    pub ours: i32,
    /// What it replaces.
    pub target: InheritTarget,
    /// The argument as given, for messages.
    pub arg: String,
}

impl InheritFd {
    /// Parses `fd[N]:fd:M` (the image's fd M) or `fd[N]:RES` (a resource name, e.g.
    /// `pipe:[1234]` or a path).
    pub fn parse(arg: &str) -> Result<InheritFd> {
        let bad = |why: &str| RestoreError::InheritFd {
            arg: arg.to_string(),
            why: why.to_string(),
        };
        let rest = arg
            .strip_prefix("fd[")
            .ok_or_else(|| bad("expected fd[N]:fd:M or fd[N]:RESOURCE"))?;
        let (n, rest) = rest
            .split_once("]:")
            .ok_or_else(|| bad("expected fd[N]:fd:M or fd[N]:RESOURCE"))?;
        let ours: i32 = n
            .parse()
            .map_err(|_| bad("N in fd[N] is not a descriptor number"))?;
        if ours < 0 {
            return Err(bad("N in fd[N] is negative"));
        }
        let target = match rest.strip_prefix("fd:") {
            Some(m) => InheritTarget::Fd(
                m.parse()
                    .map_err(|_| bad("M in fd:M is not a descriptor number"))?,
            ),
            None if rest.is_empty() => return Err(bad("the resource after fd[N]: is empty")),
            None => InheritTarget::Resource(rest.to_string()),
        };
        Ok(InheritFd {
            ours,
            target,
            arg: arg.to_string(),
        })
    }
}

/// What the restore does with an fd whose other end was outside the image (a pipe or FIFO the
/// process inherited from whoever started it) and that no `--inherit-fd` hands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExternalMode {
    /// Recreate it, as CRIU does for a pipe whose peer is not in the tree: a new pipe holding
    /// the buffered bytes whose other end is closed (a FIFO is reopened by its path), and one
    /// line per such fd on stderr ([`checks::ExternalFd`]) saying what the process will see and
    /// which `--inherit-fd` would reconnect it.
    #[default]
    Recreate,
    /// Refuse the image before creating anything, naming the fd, its resource and the
    /// `--inherit-fd` that would satisfy it ([`RestoreError::ExternalFd`]). FIFOs are reopened by
    /// path either way.
    Refuse,
}

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Leave the restored process stopped (SIGSTOP, a job-control stop) instead of running.
    pub leave_stopped: bool,
    /// Keep the restore tool's session and process group; reopen terminals by path.
    pub shell_job: bool,
    /// What terminal fds become without `shell_job`.
    pub stdio: StdioMode,
    /// Resources handed in from outside.
    pub inherit_fds: Vec<InheritFd>,
    /// What fds whose other end was outside the image become when no `inherit_fds` entry
    /// matches them.
    pub external: ExternalMode,
    /// Restore the parent-death signal (only meaningful while the restore tool stays the parent).
    pub keep_pdeathsig: bool,
    /// Log each step on stderr.
    pub verbose: bool,
    /// Let the process run before its private anonymous memory is filled ([`lazy`]): a server
    /// process started before the release fills it on first touch and in the background (one
    /// server for a whole tree), and ends once everything is there.
    pub lazy: bool,
}

/// A restored process, running on its own (or stopped, with `leave_stopped`).
#[derive(Debug)]
pub struct Restored {
    /// Its PID (the image's). It is a child of the calling process.
    pub pid: u32,
    /// Whether it was left stopped.
    pub stopped: bool,
}

/// Restores the process of `image`, with all its threads. Refusals come before anything is
/// created; a failure later kills the half-built process.
pub fn restore(image: &Image, opts: &Options) -> Result<Restored> {
    let started = std::time::Instant::now();
    let log = |m: String| {
        if opts.verbose {
            eprintln!("psnc-restore: {:8.3}s {m}", started.elapsed().as_secs_f64());
        }
    };
    log("checking the image".into());
    let tree = image.checkpoint().processes.len() > 1 || !image.checkpoint().zombies.is_empty();
    // Lazily, each chunk is checked when first used: by the fill of what is not lazy, and by
    // the server for the rest, against the stored chunk digests (checked here, before anything
    // exists, against the section table).
    if opts.lazy {
        image.page_chunks()?;
        psnc_ptrace::uffd::MissingPages::probe()
            .map_err(|e| RestoreError::LazyUnavailable { why: e.to_string() })?;
    }
    let pages = if opts.lazy {
        checks::PageDigests::Lazy
    } else {
        checks::page_digests_for(image)
    };
    std::thread::scope(|scope| {
        // The page data's digests, hashed on other threads while the process is rebuilt;
        // `pages_checked` waits for them before anything of the process runs.
        let mut hashing = (pages == checks::PageDigests::Later).then(|| {
            scope.spawn(|| image.verify_section_data(psnc_format::SectionKind::PageData, 1))
        });
        let mut pages_checked = move || pages_checked(hashing.take());
        // A process with zombie children is a tree too: the zombies are forked from its stub.
        if tree {
            let plans = checks::check_tree_with(image, opts, pages)?;
            return tree::restore_tree(image, &plans, opts, started, &mut pages_checked);
        }
        let plan = checks::check_with(image, opts, pages)?;
        restore_one(image, &plan, opts, started, &mut pages_checked)
    })
}

/// Waits for the page data's digests hashed by `hashing` (nothing to wait for when `None`).
fn pages_checked(
    hashing: Option<std::thread::ScopedJoinHandle<'_, psnc_format::Result<()>>>,
) -> Result<()> {
    match hashing.map(|h| h.join()) {
        None => Ok(()),
        Some(Ok(r)) => Ok(r?),
        Some(Err(_)) => Err(RestoreError::Inconsistent(
            "the thread checking the page data's digests panicked".into(),
        )),
    }
}

/// The restore of a single process, planned by `plan`. `pages_checked` returns once the page
/// data is known good (or with the digest mismatch): it is called before the process runs.
fn restore_one(
    image: &Image,
    plan: &Plan,
    opts: &Options,
    started: std::time::Instant,
    pages_checked: &mut dyn FnMut() -> Result<()>,
) -> Result<Restored> {
    let log = |m: String| {
        if opts.verbose {
            eprintln!("psnc-restore: {:8.3}s {m}", started.elapsed().as_secs_f64());
        }
    };
    let p = plan.process(image.checkpoint());
    log(format!(
        "plan: process {} ({:?}, {} threads, {} mappings, {} fds), restore region at {:#x}",
        p.pid,
        p.arch,
        p.threads.len(),
        p.vmas.len(),
        p.fds.len(),
        plan.region.base
    ));
    let segments = sysv_shm::Segments::create(image)?;
    let local = prepare(image, plan)?;
    for f in &p.fds {
        if let psnc_format::model::FdKind::Inotify { watches } = &f.kind {
            log(format!(
                "inotify fd {}: {} watches restored with their wd numbers; events queued at \
                 capture are not kept",
                f.fd,
                watches.len()
            ));
        }
    }
    log(format!("starting the stub as PID {}", p.pid));
    let (mut task, stub) = spawn::start_stub(
        Some(p.pid),
        p.arch,
        plan.region,
        !opts.shell_job,
        opts.verbose,
    )?;
    task.started = started;
    let mut others = Vec::new();
    let mut lazy = opts.lazy.then(|| lazy::Plan::of(p));
    let mut uffd = None;
    let rebuilt = rebuild(
        &mut task,
        &stub,
        &mut others,
        image,
        plan,
        &local,
        opts,
        lazy.as_ref().map(|l| (l, &mut uffd)),
    )
    .and_then(|xsaves| finish(&mut task, &mut others, p, &xsaves).map(|()| xsaves))
    .and_then(|xsaves| match (&uffd, &lazy) {
        (Some(u), Some(l)) => {
            task.log(|| {
                format!(
                    "lazy: {} VMAs registered, {} pages left to the server",
                    l.vmas.len(),
                    l.pages()
                )
            });
            lazy::register(u, l, p.pid).map(|()| xsaves)
        }
        _ => Ok(xsaves),
    })
    .and_then(|xsaves| {
        task.log(|| "waiting for the page data's digests".into());
        pages_checked().map(|()| xsaves)
    })
    .and_then(|xsaves| segments.commit().map(|()| xsaves));
    match rebuilt {
        Ok(_) => {
            if let (Some(uffd), Some(plan)) = (uffd, lazy.take()) {
                let h = lazy::Handoff {
                    process: plan_index(image, p.pid),
                    uffd,
                    plan,
                };
                if let Err(e) = lazy::start_server(image, p.pid, vec![h], opts.verbose) {
                    task.kill();
                    return Err(e);
                }
            }
            let restored = release(task, others, p, opts)?;
            // Said once the process exists: what each fd reconnected to nothing will see.
            for e in &plan.external {
                eprintln!("psnc-restore: {e}");
            }
            for n in &local.notes {
                eprintln!("psnc-restore: {n}");
            }
            Ok(restored)
        }
        Err(e) => {
            task.log(|| format!("failed: {e}; killing the half-built process"));
            task.kill();
            drop(others);
            Err(e)
        }
    }
}

/// Everything the restore tool opened for one restore, for the task to take over.
#[derive(Debug, Default)]
pub struct LocalFiles {
    /// For each fd of the process (same index as `Process::fds`).
    pub fds: Vec<fds::LocalFd>,
    /// For each file-backed VMA (same index as `Process::vmas`), the fd it is mapped from.
    pub vmas: Vec<Option<Rc<OwnedFd>>>,
    /// The executable, for `PR_SET_MM_EXE_FILE`.
    pub exe: Option<OwnedFd>,
    /// The working directory, entered with `fchdir`.
    pub cwd: Option<OwnedFd>,
    /// What became of the unix sockets whose peer was outside the image, one line each,
    /// printed once the process exists.
    pub notes: Vec<String>,
}

/// Prepares every file of `plan` in the restore tool, before the stub exists: the working
/// directory, the executable, the files behind mappings, then the fds, each by the module of its
/// object, with one replica per stored file shared by all of them ([`files::Replicas`]). The
/// task takes them over later with `pidfd_getfd` on the tool.
pub fn prepare(image: &Image, plan: &Plan) -> Result<LocalFiles> {
    let mut replicas = files::Replicas::new(image);
    let mut descriptions = fds::shares::Descriptions::new(image.checkpoint());
    let mut pipes = fds::pipe::Pipes::default();
    let local = prepare_shared(
        image,
        plan,
        &mut replicas,
        &mut pipes,
        &mut fds::tty::Ptys::new(image.checkpoint()),
        &mut descriptions,
    )?;
    pipes.tcp.release(plan.process(image.checkpoint()).pid)?;
    Ok(local)
}

/// [`prepare`] with the replicas, pipes and shared descriptions of every process of a tree: a
/// pipe between two processes is one pipe, its buffered bytes put back once, and a description
/// shared across fork is opened once.
pub fn prepare_shared(
    image: &Image,
    plan: &Plan,
    replicas: &mut files::Replicas<'_>,
    pipes: &mut fds::pipe::Pipes,
    ptys: &mut fds::tty::Ptys,
    descriptions: &mut fds::shares::Descriptions,
) -> Result<LocalFiles> {
    let p = plan.process(image.checkpoint());
    let cwd = process::open_cwd(p)?;
    let exe = files::open_exe(&plan.exe, p, replicas)?;
    let vmas = memory::open_mapping_files(p, &plan.vma_files, replicas)?;
    let fds = fds::prepare_shared(p, &plan.fds, replicas, pipes, ptys, descriptions)?;
    let notes = std::mem::take(&mut pipes.unix.notes)
        .into_iter()
        .map(|(_, line)| line)
        .collect();
    Ok(LocalFiles {
        fds,
        vmas,
        exe: Some(exe),
        cwd: Some(cwd),
        notes,
    })
}

/// The index of process `pid` in the image.
pub(crate) fn plan_index(image: &Image, pid: u32) -> usize {
    image
        .checkpoint()
        .processes
        .iter()
        .position(|q| q.pid == pid)
        .unwrap_or(0)
}

/// Everything between the stub's first stop and the final registers: memory, threads, files,
/// kernel state, in the order of the crate doc's "Order of the rebuild". Returns the XSAVE area
/// to load into each thread (same order as the image's). With `lazy` (`--lazy`), the memory
/// of its plan is left out of the fill (the chunks of what is written are checked as they are
/// written), and the userfaultfd is made into its second part before the credentials drop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rebuild(
    task: &mut Task,
    stub: &stub::Stub,
    others: &mut Vec<Tracee>,
    image: &Image,
    plan: &Plan,
    local: &LocalFiles,
    opts: &Options,
    lazy: Option<(&lazy::Plan, &mut Option<psnc_ptrace::uffd::MissingPages>)>,
) -> Result<Vec<Option<Vec<u8>>>> {
    let ckpt = image.checkpoint();
    let p = plan.process(ckpt);
    let main = &p.threads[0];

    // This machine's XSAVE layout, from the stub itself, before any of the image is built.
    let host_xsave = task
        .tracee
        .get_xstate()
        .map_err(task.step_err("reading the stub's XSAVE area"))?;
    let xsaves = p
        .threads
        .iter()
        .map(|t| threads::xsave_for_host(t, &host_xsave, ckpt.identity.host.xsave_features))
        .collect::<Result<Vec<_>>>()?;

    task.log(|| "clearing the stub's address space".into());
    let stub_group = memory::clear_stub(task, plan.region)?;
    let image_vdso = match (&plan.vdso, p.arch) {
        (Some(g), Arch::I386) => Some(vdso::stored_vdso_bytes(image, p, g)?),
        _ => None,
    };
    vdso::place(
        task,
        stub_group.as_ref(),
        plan.vdso.as_ref(),
        plan.region,
        image_vdso.as_deref(),
        &ckpt.identity.host.kernel_release,
    )?;

    process::close_inherited(task)?;
    let pidfd = process::open_pidfd(task, p)?;
    task.log(|| format!("recreating {} mappings", p.vmas.len()));
    let lowered = memory::create_vmas(task, ckpt, p, local, pidfd)?;
    let (lazy_plan, uffd_out) = match lazy {
        Some((l, u)) => (Some(l), Some(u)),
        None => (None, None),
    };
    let bytes = match lazy_plan {
        None => memory::fill_pages(task, image, p, &lowered)?,
        Some(l) => {
            memory::fill_pages_except(task, image, p, &lowered, l, &mut image.page_chunks()?)?
        }
    };
    memory::lower_protections(task, &lowered)?;
    task.log(|| format!("wrote {bytes} bytes of memory"));
    memory::advise(task, p)?;
    memory::set_mm(task, p, None)?;
    aio::restore_contexts(task, p)?;

    // The other threads, while the stub's clone instruction and pause loop are still mapped.
    for t in &p.threads[1..] {
        others.push(threads::create_thread(task, stub, t.tid)?);
    }

    // Leave the stub: from here on, calls run from a syscall instruction of the image's own code,
    // so that no mapping of the stub (the old exe) remains for the exe change.
    task.insn = memory::find_image_syscall(task, p, plan.region)?;
    task.log(|| {
        format!(
            "switching to the syscall instruction at {:#x}; unmapping the stub code",
            task.insn
        )
    });
    task.call(
        "unmapping the stub code",
        Sysno::Munmap,
        &[plan.region.code(), stub::PAGE_SIZE],
    )?;
    if let Some(exe) = &local.exe {
        use std::os::fd::AsRawFd;
        let fd = task.call(
            "taking over the executable",
            Sysno::PidfdGetfd,
            &[pidfd, exe.as_raw_fd() as u64, 0],
        )?;
        memory::set_mm(task, p, Some(fd))?;
        task.call("closing the executable fd", Sysno::Close, &[fd])?;
    }

    task.log(|| format!("installing {} fds", p.fds.len()));
    let descriptions = fds::shares::Descriptions::new(ckpt);
    fds::install_fds(task, p, local, pidfd, &descriptions)?;
    fds::tty::set_controlling(task, p, ckpt)?;
    process::set_cwd(task, p, local, pidfd)?;
    task.call(
        "closing the pidfd of the restore tool",
        Sysno::Close,
        &[pidfd],
    )?;

    task.log(|| "restoring process state".into());
    process::restore_attributes(task, p)?;
    signals::restore_handlers(task, p)?;
    timers::restore_itimers(task, p)?;
    signals::queue_shared_pending(task, p)?;
    process::restore_flags(task, p)?;
    threads::restore_thread_state(task, main)?;
    for (t, tracee) in p.threads[1..].iter().zip(others.iter_mut()) {
        task.in_thread(tracee, |task| threads::restore_thread_state(task, t))?;
    }
    timers::restore_posix_timers(task, p)?;
    for t in &p.threads {
        threads::queue_thread_signals(task, p.pid, t)?;
    }
    threads::request_xstate_perm(task, main)?;
    // With the restore's privileges still: a userfaultfd that also takes kernel-mode faults.
    if let Some(out) = uffd_out {
        *out = Some(lazy::create_uffd(task)?);
    }
    if creds::creds_in_place(task, &p.creds)? {
        task.log(|| "credentials: every thread already holds the image's".into());
    } else {
        task.log(|| "restoring credentials".into());
        for tracee in others.iter_mut() {
            task.in_thread(tracee, |task| creds::restore_creds(task, &p.creds))?;
        }
        creds::restore_creds(task, &p.creds)?;
    }
    creds::after_creds(task, p, opts.keep_pdeathsig)?;
    memory::unmap_scratch(task)?;
    Ok(xsaves)
}

/// Loads every thread's final registers, XSAVE area, TLS and signal mask (no more remote calls).
pub(crate) fn finish(
    task: &mut Task,
    others: &mut [Tracee],
    p: &psnc_format::model::Process,
    xsaves: &[Option<Vec<u8>>],
) -> Result<()> {
    for ((t, tracee), x) in p.threads[1..]
        .iter()
        .zip(others.iter_mut())
        .zip(&xsaves[1..])
    {
        task.in_thread(tracee, |task| threads::finish_thread(task, t, x.as_deref()))?;
    }
    threads::finish_thread(task, &p.threads[0], xsaves[0].as_deref())
}

/// Lets the process go, every thread at the same moment, only once all of them hold their final
/// state (they all sit in ptrace-stops until then).
///
/// Detaching one thread after the other lets the first ones run while the last ones are still
/// held (a few microseconds per thread). So a multithreaded process is released through a
/// job-control stop instead: the leader takes SIGSTOP in place of its pending step trap, which
/// makes every thread's stop pending; each detached thread then enters the group stop before it
/// runs a single instruction; finally one SIGCONT wakes them all in one pass of the kernel over
/// the thread list. What remains uneven is the scheduler: with more runnable threads than CPUs
/// the last ones start when a CPU frees up, as after any wake-up.
///
/// The cycle is invisible to the process only when SIGCONT runs no handler and does not stay
/// pending, and when no stop signal is pending (SIGCONT discards those): see
/// [`release_through_group_stop`]. Otherwise, and for a single thread, the threads are detached
/// in a tight loop, the leader last. With `leave_stopped` the group stop is kept (no SIGCONT):
/// the process stays in a job-control stop until someone sends SIGCONT.
fn release(
    mut task: Task,
    others: Vec<Tracee>,
    p: &psnc_format::model::Process,
    opts: &Options,
) -> Result<Restored> {
    let pid = p.pid;
    let step = |s: &'static str| {
        move |source| RestoreError::Step {
            pid,
            step: s.to_string(),
            source,
        }
    };
    let group_stop = opts.leave_stopped || release_through_group_stop(p);
    if group_stop {
        // Deliver SIGSTOP in place of the pending step trap: the task enters a group-stop before
        // it runs a single instruction or takes any other signal; detaching leaves it stopped.
        task.tracee
            .cont(libc::SIGSTOP)
            .map_err(step("stopping the restored process"))?;
        loop {
            match task
                .tracee
                .wait_stop()
                .map_err(step("stopping the restored process"))?
            {
                Stop::Group(_) => break,
                Stop::Signal(sig) => task
                    .tracee
                    .cont(sig)
                    .map_err(step("stopping the restored process"))?,
                _ => task
                    .tracee
                    .cont(0)
                    .map_err(step("stopping the restored process"))?,
            }
        }
    }
    let threads = others.len() + 1;
    let Task {
        tracee: leader,
        verbose,
        started: restore_started,
        ..
    } = task;
    let started = std::time::Instant::now();
    // Nothing but PTRACE_DETACH in this loop. A thread whose detach fails is detached again when
    // its Tracee drops; the others are released all the same.
    let mut failed = None;
    for t in others {
        if let Err(e) = t.detach() {
            failed.get_or_insert(e);
        }
    }
    if let Err(e) = leader.detach() {
        failed.get_or_insert(e);
    }
    let detached = started.elapsed();
    if group_stop && !opts.leave_stopped {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGCONT).map_err(
            |errno| RestoreError::RemoteCall {
                pid,
                step: "releasing the threads together".into(),
                call: "kill(SIGCONT)",
                errno,
            },
        )?;
    }
    if verbose {
        eprintln!(
            "psnc-restore: {:8.3}s [{pid}] released {threads} thread(s): detached in {:.3} ms{}",
            restore_started.elapsed().as_secs_f64(),
            detached.as_secs_f64() * 1e3,
            match (group_stop, opts.leave_stopped) {
                (true, false) => ", then one SIGCONT woke them all",
                (true, true) => ", left in a job-control stop",
                (false, _) => " (one after the other)",
            }
        );
    }
    if let Some(e) = failed {
        return Err(RestoreError::Step {
            pid,
            step: "detaching from the restored process".into(),
            source: e,
        });
    }
    Ok(Restored {
        pid,
        stopped: opts.leave_stopped,
    })
}

/// Whether a multithreaded process can be released through a SIGSTOP/SIGCONT cycle without a
/// trace: SIGCONT's action is the default or ignore (no handler runs), no thread blocks it (a
/// blocked SIGCONT is queued even when its action ignores it), and neither SIGCONT nor a stop
/// signal is pending anywhere (SIGSTOP would not touch them, but SIGCONT discards pending stop
/// signals).
pub fn release_through_group_stop(p: &psnc_format::model::Process) -> bool {
    let bit = |sig: i32| 1u64 << (sig - 1);
    let sigcont = libc::SIGCONT;
    let touched = [
        sigcont,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ];
    let action_ok = p
        .signals
        .actions
        .get(sigcont as usize - 1)
        .map_or(true, |a| a.handler <= 1);
    let unblocked = p.threads.iter().all(|t| t.sigmask & bit(sigcont) == 0);
    let pending = p
        .signals
        .shared_pending
        .iter()
        .chain(p.threads.iter().flat_map(|t| t.pending.iter()))
        .any(|s| touched.contains(&(s.signo as i32)));
    p.threads.len() > 1 && action_ok && unblocked && !pending
}
