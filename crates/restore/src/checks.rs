//! Everything a restore checks before it creates anything, and the plan those checks produce.
//!
//! A refusal here leaves no trace: no process, no file, no PID taken. The checks run in the order
//! of how cheaply the user can act on them: image integrity, what the image holds that restore
//! cannot do yet, CPU features, the vdso, files, the PID. Their result, [`Plan`], says where every
//! file comes from, where the restore's own pages go, and how the vdso moves, so the steps that
//! follow only carry out decisions made here.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use psnc_format::model::{
    Arch, Checkpoint, FdKind, FileId, FileRef, PipeEnd, Process, Vma, VmaKind,
};
use psnc_format::Image;

use crate::error::{RestoreError, Result};
use crate::fds::tty;
use crate::placement::{choose_region, Region, REGION_SIZE};
use crate::stub::Stub;
use crate::vdso::{self, VdsoGroup};
use crate::{ExternalMode, InheritFd, InheritTarget, Options, StdioMode};

/// Where the contents of a file come from at restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// The file on disk at this path, unchanged since the capture (or, for a shared mapping or an
    /// fd, the same file, whose contents legitimately moved on).
    Original(PathBuf),
    /// The contents stored in the image.
    Stored(FileId),
}

/// How one fd of the image is recreated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdSource {
    /// Open this path with the fd's flags (regular files, directories, devices, FIFOs).
    Path(PathBuf),
    /// A regular file that was deleted at capture: recreate it from the stored contents.
    Deleted {
        /// The stored contents.
        id: FileId,
        /// The original path (the replica is created next to it when its directory exists).
        path: String,
    },
    /// One end of a pipe recreated by restore; fds with the same inode share one pipe.
    Pipe(PipeEnd),
    /// A descriptor of the restore tool itself (`--inherit-fd`, or its stdio for a tty).
    Ours(i32),
    /// `/dev/null` in place of a terminal (`--stdio null`).
    Null,
    /// An epoll instance: created inside the task after every other fd, then given its watches.
    Epoll,
    /// An eventfd, timerfd, signalfd or inotify instance, or an IPv4/IPv6 socket: created by
    /// the restore tool with its state.
    Event,
    /// A memfd: a description of its own on the memfd of shared memory object `object` (index
    /// into the image's `shared_memory`), made once for every fd and mapping of it.
    MemFd {
        /// The object.
        object: usize,
    },
    /// An end of a pseudo-terminal pair of the image (`ttys`), recreated once by the restore
    /// tool for every fd of the pair: the master, or a new open of the new slave.
    Pty {
        /// The pair's index at capture.
        index: u32,
        /// The master (else a slave).
        master: bool,
    },
    /// An AF_UNIX socket: created by the restore tool (a pair once for both ends, a listener
    /// bound to its name), with its queued messages.
    Unix,
    /// An AF_UNIX socket whose peer was outside the image (`unix-peers`): connected to the
    /// peer's name again when something accepts there, else to nothing.
    UnixOutside(psnc_format::model::UnixPeer),
}

/// The outcome of the checks: the decisions the rebuild carries out.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Index of the process being restored in [`Checkpoint::processes`].
    pub process: usize,
    /// The mode of its threads (selects the stub class and the syscall convention).
    pub arch: Arch,
    /// The restore's own region in the rebuilt task.
    pub region: Region,
    /// Where the executable comes from (for `PR_SET_MM_EXE_FILE`).
    pub exe: FileSource,
    /// For each VMA of the process (same index), where a file-backed one gets its file.
    pub vma_files: Vec<Option<FileSource>>,
    /// For each fd of the process (same index), how it is recreated.
    pub fds: Vec<FdSource>,
    /// The image's vdso group, if it had a vdso.
    pub vdso: Option<VdsoGroup>,
    /// The fds whose other end was outside the image and that come back connected to nothing
    /// (no `--inherit-fd` for them), in fd order; the restore says so once it succeeded.
    pub external: Vec<ExternalFd>,
}

/// Which end of a pipe or FIFO an fd held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeSide {
    /// Opened for reading.
    Read,
    /// Opened for writing.
    Write,
}

/// What a write to a pipe without readers raises, by the process's SIGPIPE action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigpipeAction {
    /// SIG_DFL: the signal kills the process.
    Kills,
    /// SIG_IGN: only the EPIPE error.
    Ignored,
    /// A handler runs.
    Handled,
}

impl SigpipeAction {
    /// The action of `p` for SIGPIPE (the image's signal table; a missing entry is SIG_DFL).
    pub fn of(p: &Process) -> SigpipeAction {
        match p
            .signals
            .actions
            .get(libc::SIGPIPE as usize - 1)
            .map_or(0, |a| a.handler)
        {
            0 => SigpipeAction::Kills,
            1 => SigpipeAction::Ignored,
            _ => SigpipeAction::Handled,
        }
    }
}

/// An fd whose other end was outside the image (a pipe or FIFO the process inherited), restored
/// connected to nothing. Its `Display` is the line the restore prints for it: the fd, what it
/// was, what the process will see, and the `--inherit-fd` that would reconnect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalFd {
    /// The image's fd number.
    pub fd: i32,
    /// `pipe:[INO]`, or the FIFO's path.
    pub resource: String,
    /// Whether it is a FIFO (reopened by path) rather than a pipe (recreated).
    pub fifo: bool,
    /// The end the process held.
    pub side: PipeSide,
    /// Bytes buffered in the pipe or FIFO at capture.
    pub buffered: usize,
    /// What a write without readers raises (meaningful for a write end).
    pub sigpipe: SigpipeAction,
}

impl std::fmt::Display for ExternalFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (end, peer) = match self.side {
            PipeSide::Read => ("read end", "writer"),
            PipeSide::Write => ("write end", "reader"),
        };
        let what = if self.fifo { "FIFO " } else { "" };
        write!(
            f,
            "fd {}: {what}{} ({end}, {} buffered bytes) had its {peer} outside the image; ",
            self.fd, self.resource, self.buffered
        )?;
        let then = if self.fifo {
            "reopened by path holding those bytes"
        } else {
            "restored as a new pipe holding those bytes, its other end closed"
        };
        let unless = if self.fifo {
            " while no process has the path open for writing"
        } else {
            ""
        };
        match self.side {
            PipeSide::Read => write!(f, "{then}: reads see them, then EOF{unless}")?,
            PipeSide::Write => {
                let unless = if self.fifo {
                    " while no process has the path open for reading"
                } else {
                    ""
                };
                let sig = match self.sigpipe {
                    SigpipeAction::Kills => {
                        " and raise SIGPIPE, which kills the process (its action is the default)"
                    }
                    SigpipeAction::Ignored => " (the process ignores SIGPIPE)",
                    SigpipeAction::Handled => " and raise SIGPIPE, which runs its handler",
                };
                write!(f, "{then}: writes fail with EPIPE{sig}{unless}")?;
            }
        }
        write!(
            f,
            "; to reconnect it, restore with --inherit-fd fd[N]:{}",
            self.resource
        )
    }
}

impl Plan {
    /// The process being restored.
    pub fn process<'a>(&self, ckpt: &'a Checkpoint) -> &'a Process {
        &ckpt.processes[self.process]
    }
}

/// Runs every check on an opened image and returns the plan, or the first refusal.
///
/// First everything `psnc-imgtool verify` checks ([`psnc_format::verify::verify_image`]: the
/// layout's zero padding, which no digest covers, the bulk digests, the model's invariants), so
/// that restore refuses every image that verify refuses. `verify_data` hashes the bulk data of
/// the image; it is the slow part for big images, and the reason this is not done in
/// [`Image::open`].
pub fn check(image: &Image, opts: &Options) -> Result<Plan> {
    check_with(image, opts, PageDigests::Now)
}

/// When the digests of the page data are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageDigests {
    /// With every other check, before anything is created.
    Now,
    /// By the caller, on another thread while the process is rebuilt, and before anything of
    /// it runs ([`crate::restore`]): hashing a GiB of pages takes as long as writing them into
    /// the process, so the two overlap. Only where a failure afterwards leaves nothing behind
    /// that a refusal would not ([`page_digests_for`]).
    Later,
    /// Chunk by chunk as the memory is filled (`--lazy`): the fill of what is not lazy checks
    /// the chunks it writes, the lazy server the rest, each before any byte of it is copied.
    Lazy,
}

/// When the page data of `image` is checked: [`PageDigests::Later`] for 64 MiB of it and more,
/// unless a failed restore would leave something outside the process behind (established TCP
/// connections are repaired in place under the network lock, so an image holding one is
/// checked whole first). A corrupt page chunk of a big image is then found after the process
/// exists but before any of it ran: the half-built process is killed, and the error and exit
/// status are those of a refusal (65), with no process left behind.
pub fn page_digests_for(image: &Image) -> PageDigests {
    // Below this much page data the check takes a few milliseconds: not worth a refusal that
    // comes after the process exists.
    const SMALL: usize = 64 << 20;
    let ckpt = image.checkpoint();
    let tcp = ckpt.processes.iter().any(|p| {
        p.fds
            .iter()
            .any(|f| matches!(&f.kind, FdKind::InetSocket(s) if s.tcp.is_some()))
    });
    if tcp || image.page_data().len() < SMALL {
        PageDigests::Now
    } else {
        PageDigests::Later
    }
}

/// The image checks of [`check`] and [`check_tree`], with the page data's digests left out
/// when `pages` is [`PageDigests::Later`].
fn verify(image: &Image, pages: PageDigests) -> Result<()> {
    // Its parent runs would be restored as zeros: the caller flattens the chain first.
    if image.checkpoint().parent.is_some() {
        return Err(RestoreError::Inconsistent(
            "the image is incremental and was opened without its parents \
             (psnc_format::Image::with_parents)"
                .into(),
        ));
    }
    let skip = (pages != PageDigests::Now).then_some(psnc_format::SectionKind::PageData);
    psnc_format::verify::verify_image_except(image, skip)?;
    Ok(())
}

/// [`check`], with the page data's digests checked as `pages` says.
pub fn check_with(image: &Image, opts: &Options, pages: PageDigests) -> Result<Plan> {
    verify(image, pages)?;
    let ckpt = image.checkpoint();
    check_fd_budget(ckpt)?;
    let process = check_shape(ckpt)?;
    check_cpu(ckpt)?;
    crate::sysv_shm::check_free(ckpt)?;
    plan_process(image, opts, process)
}

/// [`check`] for an image of any number of processes: one plan per process, in the image's
/// order (the root first, parents before children), all with one restore region, free in every
/// process (each child is forked from its parent's stub, so it starts with the stub at the
/// parent's place). The tree itself is checked by [`crate::tree::check_tree`].
pub fn check_tree(image: &Image, opts: &Options) -> Result<Vec<Plan>> {
    check_tree_with(image, opts, PageDigests::Now)
}

/// [`check_tree`], with the page data's digests checked as `pages` says.
pub fn check_tree_with(image: &Image, opts: &Options, pages: PageDigests) -> Result<Vec<Plan>> {
    let ckpt = image.checkpoint();
    if ckpt.processes.len() <= 1 && ckpt.zombies.is_empty() {
        return check_with(image, opts, pages).map(|p| vec![p]);
    }
    verify(image, pages)?;
    check_fd_budget(ckpt)?;
    if ckpt.processes.is_empty() {
        return Err(RestoreError::Inconsistent(
            "the image holds no process".into(),
        ));
    }
    for p in &ckpt.processes {
        check_process_shape(ckpt, p)?;
    }
    crate::tree::check_tree(ckpt, opts)?;
    for z in &ckpt.zombies {
        crate::zombies::check(z)?;
        check_pid_free(z.pid)?;
    }
    check_cpu(ckpt)?;
    crate::sysv_shm::check_free(ckpt)?;
    let mut plans = (0..ckpt.processes.len())
        .map(|i| {
            plan_process(image, opts, i).map_err(|e| match e {
                // The fd, mapping and file refusals name no process.
                RestoreError::UnsupportedFd { .. }
                | RestoreError::ExternalFd { .. }
                | RestoreError::UnsupportedVma { .. }
                | RestoreError::MissingFile { .. } => RestoreError::InProcess {
                    pid: ckpt.processes[i].pid,
                    source: Box::new(e),
                },
                e => e,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut all: Vec<Vma> = ckpt
        .processes
        .iter()
        .flat_map(|p| p.vmas.iter().cloned())
        .collect();
    // AIO rings are not among the VMAs (crate::aio recreates them), but their addresses are
    // taken all the same.
    all.extend(ckpt.processes.iter().flat_map(|p| {
        p.aio.iter().map(|a| Vma {
            start: a.ring,
            end: a.ring.saturating_add(a.ring_len),
            ..Vma::default()
        })
    }));
    all.sort_by_key(|v| v.start);
    let limit = Stub::addr_limit(ckpt.processes[0].arch);
    let region = choose_region(&all, limit).ok_or(RestoreError::NoRoom {
        size: REGION_SIZE,
        limit,
    })?;
    for plan in &mut plans {
        plan.region = region;
    }
    Ok(plans)
}

/// The plan of process `process` of the image, with a region of its own.
fn plan_process(image: &Image, opts: &Options, process: usize) -> Result<Plan> {
    let ckpt = image.checkpoint();
    let p = &ckpt.processes[process];
    let vdso = vdso::check_image_vdso(image, p)?;
    let mut stats = Stats::default();
    let exe = resolve_exe(ckpt, p, &mut stats)?;
    let vma_files = p
        .vmas
        .iter()
        .map(|v| resolve_vma(ckpt, v, &mut stats))
        .collect::<Result<Vec<_>>>()?;
    let (fds, external) = plan_fds(ckpt, p, opts, &mut stats)?;
    check_aio_rings(p)?;
    check_pid_free(p.pid)?;
    for t in p.threads.iter().skip(1) {
        check_pid_free(t.tid)?;
    }
    let region = choose_region(&p.vmas, Stub::addr_limit(p.arch)).ok_or(RestoreError::NoRoom {
        size: REGION_SIZE,
        limit: Stub::addr_limit(p.arch),
    })?;
    Ok(Plan {
        process,
        arch: p.arch,
        region,
        exe,
        vma_files,
        fds,
        vdso,
        external,
    })
}

/// The number of possible CPUs of this host (`/sys/devices/system/cpu/possible`, e.g. `0-3,5`),
/// if it can be read.
fn possible_cpus() -> Option<u32> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    let mut n = 0u32;
    for part in s.trim().split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u32, u32) = (lo.parse().ok()?, hi.parse().ok()?);
        n += hi.checked_sub(lo)? + 1;
    }
    Some(n)
}

/// Refuses AIO contexts whose ring `io_setup` cannot make again on this host: the kernel sizes
/// a ring by the number of possible CPUs as well as by the request (`crate::aio`).
fn check_aio_rings(p: &Process) -> Result<()> {
    match possible_cpus() {
        Some(cpus) if !p.aio.is_empty() => check_aio_rings_for(p, cpus),
        _ => Ok(()),
    }
}

/// [`check_aio_rings`] on a host with `cpus` possible CPUs.
fn check_aio_rings_for(p: &Process, cpus: u32) -> Result<()> {
    for a in &p.aio {
        let len = psnc_abi::aio::ring_len_for(psnc_abi::aio::io_setup_nr_events(a.nr_events), cpus);
        if len != a.ring_len {
            return Err(RestoreError::AioRingSize {
                pid: p.pid,
                ctx: a.ring,
                want: a.nr_events,
                got: psnc_abi::aio::slots_in(len),
            });
        }
    }
    Ok(())
}

/// Refuses what the restore does not do yet, and model inconsistencies that would make a later
/// step fail half-way.
fn check_shape(ckpt: &Checkpoint) -> Result<usize> {
    let unsupported = |what: String| Err(RestoreError::Unsupported { what });
    match ckpt.processes.len() {
        0 => {
            return Err(RestoreError::Inconsistent(
                "the image holds no process".into(),
            ))
        }
        1 => {}
        n => {
            return unsupported(format!(
                "a tree of {n} processes (one process at a time for now)"
            ))
        }
    }
    check_process_shape(ckpt, &ckpt.processes[0])?;
    Ok(0)
}

/// The per-process part of [`check_shape`].
fn check_process_shape(ckpt: &Checkpoint, p: &Process) -> Result<()> {
    let unsupported = |what: String| Err(RestoreError::Unsupported { what });
    if p.threads.is_empty() {
        return Err(RestoreError::Inconsistent(format!(
            "process {} has no threads",
            p.pid
        )));
    }
    let mut tids: Vec<u32> = p.threads.iter().map(|t| t.tid).collect();
    tids.sort_unstable();
    tids.dedup();
    if tids.len() != p.threads.len() {
        return Err(RestoreError::Inconsistent(format!(
            "process {} lists a TID twice",
            p.pid
        )));
    }
    if p.seccomp_mode != 0 {
        return unsupported(format!(
            "process {} under seccomp mode {}",
            p.pid, p.seccomp_mode
        ));
    }
    if p.threads[0].tid != p.pid {
        return Err(RestoreError::Inconsistent(format!(
            "the first thread of process {} has TID {}",
            p.pid, p.threads[0].tid
        )));
    }
    for t in &p.threads {
        let ok = matches!(
            (&t.regs, p.arch),
            (psnc_format::model::Regs::X86_64(_), Arch::X86_64)
                | (psnc_format::model::Regs::I386(_), Arch::I386)
        );
        if !ok {
            return Err(RestoreError::Inconsistent(format!(
                "thread {} has registers of the other mode than its process ({:?})",
                t.tid, p.arch
            )));
        }
    }
    let mut prev_end = 0;
    for v in &p.vmas {
        if v.start >= v.end || v.start % 4096 != 0 || v.end % 4096 != 0 || v.start < prev_end {
            return Err(RestoreError::Inconsistent(format!(
                "mapping {:#x}-{:#x} is empty, unaligned or overlaps the previous one",
                v.start, v.end
            )));
        }
        prev_end = v.end;
        if v.shared
            && v.kind == VmaKind::Anonymous
            && !ckpt.shared_memory.iter().any(|o| {
                o.mappings
                    .iter()
                    .any(|m| m.pid == p.pid && m.start == v.start)
            })
            && crate::sysv_shm::attachment(ckpt, p.pid, v).is_none()
        {
            return Err(RestoreError::UnsupportedVma {
                start: v.start,
                end: v.end,
                what: "shared anonymous memory without its contents in the image".into(),
            });
        }
        if v.shared && matches!(v.kind, VmaKind::Heap | VmaKind::Stack) {
            return Err(RestoreError::UnsupportedVma {
                start: v.start,
                end: v.end,
                what: "a shared heap or stack".into(),
            });
        }
        if v.kind == VmaKind::File && v.file.is_none() {
            return Err(RestoreError::Inconsistent(format!(
                "file mapping {:#x}-{:#x} names no file",
                v.start, v.end
            )));
        }
    }
    for run in &p.pages {
        let end = run
            .pages
            .checked_mul(4096)
            .and_then(|l| run.addr.checked_add(l));
        // Inside one VMA, or several adjacent ones (spec 8.5).
        let inside =
            end.is_some_and(|end| crate::memory::run_pieces(&p.vmas, run.addr, end).is_ok());
        if !inside {
            return Err(RestoreError::Inconsistent(format!(
                "page run at {:#x} ({} pages) lies outside every mapping",
                run.addr, run.pages
            )));
        }
    }
    Ok(())
}

/// Refuses an image whose code may use instructions this CPU lacks.
pub fn check_cpu(ckpt: &Checkpoint) -> Result<()> {
    let cpu = psnc_proc::system::cpuinfo().map_err(|e| RestoreError::Io {
        what: "reading".into(),
        path: e.path().display().to_string(),
        source: e.into(),
    })?;
    let host = cpu.flags.into_iter().collect();
    check_cpu_flags(&ckpt.identity.host.cpu_flags, &host)
}

/// The comparison behind [`check_cpu`], with this CPU's flags given (for tests).
pub fn check_cpu_flags(image: &[String], host: &std::collections::BTreeSet<String>) -> Result<()> {
    let missing = crate::cpu::missing_flags(image, host);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RestoreError::CpuFeatures { missing })
    }
}

/// What the checks of one process found at each path: `(dev, ino, size, mtime_ns)` or why
/// there is nothing. One `stat` per path, not per fd or mapping (19,000 fds on one file are
/// 19,000 lookups otherwise).
#[derive(Debug, Default)]
pub struct Stats(BTreeMap<String, std::result::Result<Identity, String>>);

/// What [`Stats`] keeps of a file: device, inode, size, mtime in nanoseconds.
type Identity = (u64, u64, u64, i64);

impl Stats {
    fn of(&mut self, path: &str) -> &std::result::Result<Identity, String> {
        self.0.entry(path.to_string()).or_insert_with(|| {
            std::fs::metadata(path)
                .map(|m| {
                    let mtime_ns = m
                        .mtime()
                        .saturating_mul(1_000_000_000)
                        .saturating_add(m.mtime_nsec());
                    (m.dev(), m.ino(), m.len(), mtime_ns)
                })
                .map_err(|e| e.to_string())
        })
    }
}

/// Why the file at `r.path` cannot stand in for the captured one, or `None` when it can.
/// `same_contents` asks for the same identity (dev, inode, size, mtime): a private mapping or the
/// executable must see the very bytes it saw; an fd or a shared mapping only needs the same file.
fn unusable_reason(r: &FileRef, same_contents: bool, stats: &mut Stats) -> Option<String> {
    if r.deleted {
        return Some("deleted (it was already unlinked at capture)".into());
    }
    let (dev, ino, size, mtime_ns) = match stats.of(&r.path) {
        Ok(m) => *m,
        Err(e) => return Some(format!("missing ({e})")),
    };
    let id = &r.identity;
    if same_contents
        && (dev != id.dev || ino != id.ino || size != id.size || mtime_ns != id.mtime_ns)
    {
        return Some("changed since the capture (device, inode, size or mtime differ)".into());
    }
    if !same_contents && id.ino != 0 && (dev != id.dev || ino != id.ino) {
        return Some("a different file now (device or inode differ)".into());
    }
    None
}

/// Chooses the source of a file: the original when usable, else the stored contents, else a
/// refusal naming `used_by`.
pub fn resolve_file(
    r: &FileRef,
    same_contents: bool,
    stats: &mut Stats,
    used_by: impl FnOnce() -> String,
) -> Result<FileSource> {
    match (unusable_reason(r, same_contents, stats), r.stored) {
        (None, _) => Ok(FileSource::Original(PathBuf::from(&r.path))),
        (Some(_), Some(id)) => Ok(FileSource::Stored(id)),
        (Some(reason), None) => Err(RestoreError::MissingFile {
            path: r.path.clone(),
            used_by: used_by(),
            reason,
        }),
    }
}

fn check_file_id(ckpt: &Checkpoint, src: &FileSource, what: &str) -> Result<()> {
    if let FileSource::Stored(id) = src {
        if id.0 as usize >= ckpt.files.len() {
            return Err(RestoreError::Inconsistent(format!(
                "{what} refers to stored file {} but the image stores {}",
                id.0,
                ckpt.files.len()
            )));
        }
    }
    Ok(())
}

fn resolve_exe(ckpt: &Checkpoint, p: &Process, stats: &mut Stats) -> Result<FileSource> {
    let src = resolve_file(&p.exe, true, stats, || "the executable".into())?;
    check_file_id(ckpt, &src, "the executable")?;
    Ok(src)
}

fn resolve_vma(ckpt: &Checkpoint, v: &Vma, stats: &mut Stats) -> Result<Option<FileSource>> {
    let Some(f) = v.file.as_ref().filter(|_| v.kind == VmaKind::File) else {
        return Ok(None);
    };
    let used_by = || format!("mapping {:#x}-{:#x}", v.start, v.end);
    let src = resolve_file(f, !v.shared, stats, used_by)?;
    check_file_id(ckpt, &src, &used_by())?;
    Ok(Some(src))
}

/// The resource name an `--inherit-fd fd[N]:RES` is matched against for an fd of the image.
pub fn resource_name(kind: &FdKind) -> Option<String> {
    match kind {
        FdKind::Pipe(p) => Some(format!("pipe:[{}]", p.ino)),
        FdKind::Regular(r) => Some(r.path.clone()),
        FdKind::Directory { path } | FdKind::CharDevice { path, .. } | FdKind::Tty { path, .. } => {
            Some(path.clone())
        }
        FdKind::Fifo { path, .. } => Some(path.clone()),
        FdKind::Socket { ino, .. } => Some(format!("socket:[{ino}]")),
        FdKind::InetSocket(s) => Some(format!("socket:[{}]", s.ino)),
        FdKind::Netlink(n) => Some(format!("socket:[{}]", n.ino)),
        _ => None,
    }
}

pub(crate) fn inherited_for(fd: i32, kind: &FdKind, inherit: &[InheritFd]) -> Option<i32> {
    let name = resource_name(kind);
    inherit.iter().find_map(|i| match &i.target {
        InheritTarget::Fd(n) if *n == fd => Some(i.ours),
        InheritTarget::Resource(r) if name.as_deref() == Some(r.as_str()) => Some(i.ours),
        _ => None,
    })
}

/// The side of a pipe or FIFO fd with status flags `flags`, or `None` when it holds both (a FIFO
/// opened `O_RDWR`).
fn pipe_side(flags: u32, write_end: bool) -> Option<PipeSide> {
    match flags & libc::O_ACCMODE as u32 {
        a if a == libc::O_RDWR as u32 => None,
        _ if write_end => Some(PipeSide::Write),
        a if a == libc::O_WRONLY as u32 => Some(PipeSide::Write),
        _ => Some(PipeSide::Read),
    }
}

/// The FIFOs (by path) of which `p` holds only one end: their other end was outside the image.
/// An `O_RDWR` fd holds both.
pub fn external_fifos(p: &Process) -> BTreeMap<String, PipeSide> {
    let mut ends: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for f in &p.fds {
        if let FdKind::Fifo { path, .. } = &f.kind {
            let e = ends.entry(path.as_str()).or_default();
            match pipe_side(f.flags, false) {
                Some(PipeSide::Read) => e.0 = true,
                Some(PipeSide::Write) => e.1 = true,
                None => *e = (true, true),
            }
        }
    }
    ends.into_iter()
        .filter_map(|(path, (r, w))| match (r, w) {
            (true, false) => Some((path.to_string(), PipeSide::Read)),
            (false, true) => Some((path.to_string(), PipeSide::Write)),
            _ => None,
        })
        .collect()
}

/// The bytes buffered in each pipe (by inode) and FIFO (by path) of `p`: capture stores them
/// with one fd of the pipe only.
fn buffered_bytes(p: &Process) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for f in &p.fds {
        let n = match &f.kind {
            FdKind::Pipe(pe) => pe.buffered.len(),
            FdKind::Fifo { buffered, .. } => buffered.len(),
            _ => continue,
        };
        if let Some(name) = resource_name(&f.kind) {
            *out.entry(name).or_default() += n;
        }
    }
    out
}

pub(crate) fn plan_fds(
    ckpt: &Checkpoint,
    p: &Process,
    opts: &Options,
    stats: &mut Stats,
) -> Result<(Vec<FdSource>, Vec<ExternalFd>)> {
    for i in &opts.inherit_fds {
        let used = p
            .fds
            .iter()
            .any(|f| inherited_for(f.fd, &f.kind, std::slice::from_ref(i)).is_some());
        // In a tree, an argument may be meant for another process: crate::tree checks them.
        if !used && ckpt.processes.len() == 1 {
            return Err(RestoreError::InheritFd {
                arg: i.arg.clone(),
                why: "no fd of the image matches it (give fd:M for the image's fd M, or the resource \
                      as the original's /proc/PID/fd link showed it, e.g. pipe:[1234])"
                    .into(),
            });
        }
        if nix::fcntl::fcntl(i.ours, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            return Err(RestoreError::InheritFd {
                arg: i.arg.clone(),
                why: format!("fd {} is not open in the restore tool", i.ours),
            });
        }
    }
    let mut out = Vec::with_capacity(p.fds.len());
    let mut external = Vec::new();
    let buffered = buffered_bytes(p);
    let fifos = external_fifos(p);
    let sigpipe = SigpipeAction::of(p);
    let mut pipes: BTreeMap<u64, usize> = BTreeMap::new();
    for f in &p.fds {
        if let Some(ours) = inherited_for(f.fd, &f.kind, &opts.inherit_fds) {
            out.push(FdSource::Ours(ours));
            continue;
        }
        let unsupported = |kind: &str, hint: &str| RestoreError::UnsupportedFd {
            fd: f.fd,
            kind: kind.into(),
            hint: hint.into(),
        };
        let src = match &f.kind {
            FdKind::Regular(r) if r.deleted => match r.stored {
                Some(id) => {
                    check_file_id(ckpt, &FileSource::Stored(id), &format!("fd {}", f.fd))?;
                    FdSource::Deleted {
                        id,
                        path: r.path.clone(),
                    }
                }
                None => {
                    return Err(RestoreError::MissingFile {
                        path: r.path.clone(),
                        used_by: format!("fd {}", f.fd),
                        reason: "deleted (it was already unlinked at capture)".into(),
                    })
                }
            },
            FdKind::Regular(r) => match resolve_file(r, false, stats, || format!("fd {}", f.fd))? {
                FileSource::Original(path) => FdSource::Path(path),
                FileSource::Stored(id) => FdSource::Deleted {
                    id,
                    path: r.path.clone(),
                },
            },
            FdKind::Directory { path }
            | FdKind::CharDevice { path, .. }
            | FdKind::Fifo { path, .. } => {
                if let (FdKind::Fifo { .. }, Some(side)) = (&f.kind, fifos.get(path)) {
                    external.push(ExternalFd {
                        fd: f.fd,
                        resource: path.clone(),
                        fifo: true,
                        side: *side,
                        buffered: buffered.get(path).copied().unwrap_or(0),
                        sigpipe,
                    });
                }
                if let Err(e) = std::fs::metadata(path) {
                    return Err(RestoreError::MissingFile {
                        path: path.clone(),
                        used_by: format!("fd {}", f.fd),
                        reason: format!("missing ({e})"),
                    });
                }
                FdSource::Path(PathBuf::from(path))
            }
            FdKind::PtyMaster { index } => FdSource::Pty {
                index: *index,
                master: true,
            },
            FdKind::Tty { rdev, .. }
                if ckpt
                    .ptys
                    .iter()
                    .any(|t| psnc_format::sections::pts_rdev(t.index) == *rdev) =>
            {
                let index = ckpt
                    .ptys
                    .iter()
                    .find(|t| psnc_format::sections::pts_rdev(t.index) == *rdev)
                    .map_or(0, |t| t.index);
                FdSource::Pty {
                    index,
                    master: false,
                }
            }
            FdKind::Tty { path, .. } => match opts.stdio {
                StdioMode::Null => FdSource::Null,
                StdioMode::Inherit if opts.shell_job && std::fs::metadata(path).is_ok() => {
                    FdSource::Path(PathBuf::from(path))
                }
                StdioMode::Inherit => FdSource::Ours(tty::stdio_for(f.fd, f.flags)),
            },
            FdKind::Pipe(pe) => {
                if pe.external {
                    let resource = format!("pipe:[{}]", pe.ino);
                    let side = pipe_side(f.flags, pe.write_end).unwrap_or(PipeSide::Read);
                    let buffered = buffered.get(&resource).copied().unwrap_or(0);
                    if opts.external == ExternalMode::Refuse {
                        return Err(RestoreError::ExternalFd {
                            fd: f.fd,
                            resource,
                            end: match side {
                                PipeSide::Read => "read end",
                                PipeSide::Write => "write end",
                            }
                            .into(),
                            buffered,
                        });
                    }
                    external.push(ExternalFd {
                        fd: f.fd,
                        resource,
                        fifo: false,
                        side,
                        buffered,
                        sigpipe,
                    });
                }
                pipes.entry(pe.ino).or_insert(out.len());
                FdSource::Pipe(pe.clone())
            }
            FdKind::Socket {
                unix: Some(u),
                ino,
                sock_type,
                ..
            } => match ckpt.unix_peers.iter().find(|x| x.ino == *ino) {
                Some(peer) if opts.external == ExternalMode::Refuse => {
                    return Err(RestoreError::ExternalFd {
                        fd: f.fd,
                        resource: format!("socket:[{ino}]"),
                        end: format!(
                            "a unix {} socket connected to {}",
                            crate::fds::unix::type_name(*sock_type as i32),
                            crate::fds::unix::peer_shown(peer)
                        ),
                        buffered: u.queued.iter().map(Vec::len).sum(),
                    })
                }
                Some(peer) => FdSource::UnixOutside(peer.clone()),
                None => FdSource::Unix,
            },
            FdKind::Socket { .. } => {
                return Err(unsupported("a socket", "; pass it with --inherit-fd"))
            }
            FdKind::Epoll { watches } => {
                // Watches are re-added through the watched fd's number in the task: of this
                // process, or of any process sharing the instance (fd-shares, FORMAT.md §8.15).
                let me = psnc_format::model::FdRef {
                    pid: p.pid,
                    fd: f.fd,
                };
                let holders: Vec<u32> = match ckpt.fd_shares.iter().find(|s| s.fds.contains(&me)) {
                    Some(s) => s.fds.iter().map(|r| r.pid).collect(),
                    None => vec![p.pid],
                };
                let named = |tfd: i32| {
                    ckpt.processes
                        .iter()
                        .any(|q| holders.contains(&q.pid) && q.fds.iter().any(|g| g.fd == tfd))
                };
                if let Some(w) = watches.iter().find(|w| !named(w.tfd)) {
                    return Err(unsupported(
                        &format!("an epoll instance watching fd {}", w.tfd),
                        "; the watched fd is not an fd of the process in the image (inconsistent image)",
                    ));
                }
                FdSource::Epoll
            }
            FdKind::EventFd { .. }
            | FdKind::TimerFd(_)
            | FdKind::SignalFd { .. }
            | FdKind::Inotify { .. }
            | FdKind::InetSocket(_)
            | FdKind::Netlink(_) => FdSource::Event,
            FdKind::MemFd { .. } => {
                return Err(unsupported(
                    "a memfd without its shared memory object",
                    " (an image no psnc-capture writes)",
                ))
            }
            FdKind::MemFdObject { object, .. } => FdSource::MemFd {
                object: *object as usize,
            },
            FdKind::Other { link } => return Err(unsupported(&format!("`{link}`"), "")),
        };
        out.push(src);
    }
    Ok((out, external))
}

/// How long a PID held by a zombie (a killed process its parent has not reaped yet, typically
/// right after `psnc-capture --kill`) is waited for before the restore gives up.
pub const ZOMBIE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Refuses when `pid` names a live process or thread. A zombie gets [`ZOMBIE_GRACE`] to be
/// reaped first.
pub fn check_pid_free(pid: u32) -> Result<()> {
    // /proc/PID exists for every thread-group leader and (hidden from readdir) every thread.
    let dir = psnc_proc::ProcDir::new(pid as i32);
    let state = || dir.stat().ok().map(|s| s.state);
    let start = std::time::Instant::now();
    loop {
        let Some(state) = state() else {
            if !dir.exists() {
                return Ok(());
            }
            break;
        };
        if !matches!(state, 'Z' | 'X') || start.elapsed() >= ZOMBIE_GRACE {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut comm = dir
        .comm()
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "unknown".into());
    if matches!(state(), Some('Z' | 'X')) {
        comm.push_str(", a zombie its parent has not reaped");
    }
    Err(RestoreError::PidInUse { pid, comm })
}

/// Names what holds `pid` when clone3 refuses it (EEXIST) although the checks found no process
/// with it: a PID that just got taken, or one still in use as the process group or session ID of
/// live processes (a group whose leader has exited keeps its ID while any member lives).
pub fn pid_holder(pid: u32) -> String {
    let dir = psnc_proc::ProcDir::new(pid as i32);
    if dir.exists() {
        let comm = dir.comm().map(|s| s.trim_end().to_string());
        return format!(
            "{}, which took it after the checks",
            comm.unwrap_or_else(|_| "unknown".into())
        );
    }
    let pid = pid as i32;
    let found = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let other: i32 = e.file_name().to_str()?.parse().ok()?;
            let d = psnc_proc::ProcDir::new(other);
            let st = d.stat().ok()?;
            let what = if st.session == pid {
                "session"
            } else if st.pgrp == pid {
                "process group"
            } else {
                return None;
            };
            let comm = d
                .comm()
                .map(|s| s.trim_end().to_string())
                .unwrap_or_default();
            Some(format!(
                "held as the {what} ID of {comm} (PID {other}), whose leader has exited"
            ))
        });
    found.unwrap_or_else(|| "a process that took it after the checks".into())
}

/// Fds the restore tool needs beside the image's: stdio, the image, replicas, the stub, the
/// pidfds and the pairs' spare ends of one process at a time.
const FD_MARGIN: u64 = 64;

/// Makes room for the descriptors the restore tool holds at once: it prepares every fd of
/// every process of the image before it rebuilds any (so that fds shared across processes are
/// one description), so it needs about as many as the image holds (and half a one more per
/// connected unix socket). Raises its soft
/// RLIMIT_NOFILE as far as needed (up to the hard limit, or past it up to `fs.nr_open` with
/// CAP_SYS_RESOURCE); refuses, before anything exists, when that is not enough.
pub fn check_fd_budget(ckpt: &Checkpoint) -> Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let fds: usize = ckpt.processes.iter().map(|p| p.fds.len()).sum();
    // A socketpair made for its first end keeps a copy of that end until its second end is
    // prepared (fds::unix): half a descriptor more per connected unix socket, at worst.
    let pair_ends = ckpt
        .processes
        .iter()
        .flat_map(|p| &p.fds)
        .filter(|f| matches!(&f.kind, FdKind::Socket { unix: Some(u), .. } if u.peer_ino != 0))
        .count();
    let want = (fds + pair_ends.div_ceil(2)) as u64 + FD_MARGIN;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    if soft >= want {
        return Ok(());
    }
    let (new_soft, new_hard) = if want <= hard {
        (want, hard)
    } else {
        (want, want)
    };
    if setrlimit(Resource::RLIMIT_NOFILE, new_soft, new_hard).is_ok() {
        return Ok(());
    }
    // At least as far as the hard limit, for the error's numbers.
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((soft, hard));
    Err(RestoreError::TooManyFds {
        fds,
        soft,
        hard,
        want,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use psnc_format::model::Fd;

    #[test]
    fn aio_rings_this_host_cannot_make_again_are_refused() {
        let p = Process {
            pid: 42,
            aio: vec![psnc_format::model::AioContext {
                ring: 0x7f00_0000_0000,
                ring_len: 4096,
                nr_events: 127,
                ..Default::default()
            }],
            ..Default::default()
        };
        // One page holds 127 slots: io_setup(62) makes it on up to 15 CPUs, 2 pages on 16.
        assert!(check_aio_rings_for(&p, 2).is_ok());
        assert!(check_aio_rings_for(&p, 15).is_ok());
        let e = check_aio_rings_for(&p, 16).expect_err("a bigger ring on 16 CPUs");
        assert_eq!(
            e.to_string(),
            "process 42: AIO context 0x7f0000000000: io_setup would make a ring of 255 slots on \
             this host, the image's has 127 (the kernel sizes rings by the number of possible \
             CPUs too); restore it on a host with at most 15 possible CPUs"
        );
        assert!(e.is_refusal());
        assert_eq!(e.exit_status(), psnc_cli::Exit::Refused);
        assert!(possible_cpus().is_some_and(|n| n >= 1));
    }

    fn line(fifo: bool, side: PipeSide, sigpipe: SigpipeAction) -> String {
        let resource = if fifo { "/run/f" } else { "pipe:[1234]" };
        ExternalFd {
            fd: 1,
            resource: resource.into(),
            fifo,
            side,
            buffered: 12,
            sigpipe,
        }
        .to_string()
    }

    #[test]
    fn external_fd_lines_say_what_the_process_sees() {
        assert_eq!(
            line(false, PipeSide::Read, SigpipeAction::Kills),
            "fd 1: pipe:[1234] (read end, 12 buffered bytes) had its writer outside the image; \
             restored as a new pipe holding those bytes, its other end closed: reads see them, \
             then EOF; to reconnect it, restore with --inherit-fd fd[N]:pipe:[1234]"
        );
        assert_eq!(
            line(false, PipeSide::Write, SigpipeAction::Kills),
            "fd 1: pipe:[1234] (write end, 12 buffered bytes) had its reader outside the image; \
             restored as a new pipe holding those bytes, its other end closed: writes fail with \
             EPIPE and raise SIGPIPE, which kills the process (its action is the default); to \
             reconnect it, restore with --inherit-fd fd[N]:pipe:[1234]"
        );
        assert!(line(false, PipeSide::Write, SigpipeAction::Ignored)
            .contains("writes fail with EPIPE (the process ignores SIGPIPE); "));
        assert!(line(false, PipeSide::Write, SigpipeAction::Handled)
            .contains("writes fail with EPIPE and raise SIGPIPE, which runs its handler; "));
        assert_eq!(
            line(true, PipeSide::Read, SigpipeAction::Kills),
            "fd 1: FIFO /run/f (read end, 12 buffered bytes) had its writer outside the image; \
             reopened by path holding those bytes: reads see them, then EOF while no process \
             has the path open for writing; to reconnect it, restore with --inherit-fd \
             fd[N]:/run/f"
        );
    }

    #[test]
    fn fifos_held_by_one_end_are_external() {
        let fifo = |fd: i32, flags: i32, path: &str| Fd {
            fd,
            flags: flags as u32,
            cloexec: false,
            pos: 0,
            kind: FdKind::Fifo {
                path: path.into(),
                buffered: Vec::new(),
            },
        };
        let p = Process {
            fds: vec![
                fifo(3, libc::O_RDONLY, "/a"),
                fifo(4, libc::O_WRONLY, "/a"),
                fifo(5, libc::O_WRONLY | libc::O_NONBLOCK, "/b"),
                fifo(6, libc::O_RDWR, "/c"),
                fifo(7, libc::O_RDONLY, "/d"),
            ],
            ..Default::default()
        };
        let got: Vec<(String, PipeSide)> = external_fifos(&p).into_iter().collect();
        assert_eq!(
            got,
            [
                ("/b".to_string(), PipeSide::Write),
                ("/d".to_string(), PipeSide::Read)
            ]
        );
    }
}
