//! Lazy restore (`psnc-restore --lazy`): the process runs before its memory is filled; each
//! page comes on first touch, through a userfaultfd in missing mode, and the rest in the
//! background, until every page is there and the userfaultfd is closed.
//!
//! ```text
//!  rebuild     plan: the lazy ranges, private anonymous writable memory (heap, stacks,
//!              anonymous mappings) that is not executable and not locked; the rest, and the
//!              pages holding a thread's rseq area (the kernel writes it on every return to
//!              user space, also during the rebuild), are filled as usual
//!              userfaultfd() run in the process while it still holds the restore's privileges
//!              (kernel-mode faults must wait for their page too), taken with pidfd_getfd
//!  finish      the lazy ranges registered (missing mode), after the last remote call
//!  start_server  the server forked off (a process of its own, holding only the userfaultfds
//!              and stderr) before the release
//!  release     the process runs; Server::run fills pages: on a fault the faulting page and
//!              the next ones of its run, otherwise the next MiB of what is left; each chunk
//!              of the page data is checked against its digest before any byte of it is
//!              copied; fork, mremap, MADV_DONTNEED and munmap are followed (the events of
//!              psnc_ptrace::uffd::MissingPages)
//!  done        every stored page is there: the userfaultfds are closed, which unregisters
//!              every range (a page the image did not store reads as zeros, as before)
//! ```
//!
//! A child the process forks before its memory is complete gets a userfaultfd of its own
//! (the fork event), and its pages still missing are filled like its parent's: they become its
//! own copies rather than pages shared copy-on-write. The server ends once every address space
//! is complete or gone; killing it before leaves the pages it had not filled reading as zeros.
//!
//! A chunk whose digest does not match is found before the process sees any byte of it: the
//! process and its descendants are killed, with the reason on stderr. In a tree every process
//! has its userfaultfd, and one server fills them all.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use psnc_format::model::{Process, Vma, VmaKind};
use psnc_format::reader::ChunkCheck;
use psnc_format::Image;
use psnc_ptrace::uffd::{Event, Filled, MissingPages};
use psnc_ptrace::Sysno;

use crate::error::{RestoreError, Result};
use crate::remote::Task;

/// Pages filled per fault: the faulting one and the next ones of its run (64 KiB).
const FAULT_PAGES: u64 = 16;
/// Bytes filled per step in the background (the page data's chunk size).
const BACKGROUND: u64 = 1 << 20;
const PAGE: u64 = 4096;

/// Whether a VMA's memory is left to the lazy fill.
fn lazy_vma(v: &Vma) -> bool {
    use psnc_format::model::vm_flags::{LOCKED, LOCKONFAULT};
    matches!(v.kind, VmaKind::Anonymous | VmaKind::Heap | VmaKind::Stack)
        && !v.shared
        && v.prot & libc::PROT_WRITE as u32 != 0
        && v.prot & libc::PROT_EXEC as u32 == 0
        && v.vm_flags & (LOCKED | LOCKONFAULT) == 0
}

/// What a lazy restore leaves to the server: the VMAs to register and the stored pages that
/// are not written during the rebuild.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The lazy VMAs, `(start, end)`, sorted.
    pub vmas: Vec<(u64, u64)>,
    /// The stored pages of those VMAs minus the ones filled during the rebuild, `(start,
    /// end)`, sorted, each inside one page run of the image.
    pub deferred: Vec<(u64, u64)>,
}

impl Plan {
    /// The plan for process `p`.
    pub fn of(p: &Process) -> Plan {
        let vmas: Vec<(u64, u64)> = p
            .vmas
            .iter()
            .filter(|v| lazy_vma(v))
            .map(|v| (v.start, v.end))
            .collect();
        // The pages the kernel writes during the rebuild and at every return to user space.
        let mut eager: Vec<(u64, u64)> = p
            .threads
            .iter()
            .filter_map(|t| t.rseq.as_ref())
            .filter(|r| r.addr != 0)
            .map(|r| {
                let s = r.addr & !(PAGE - 1);
                (
                    s,
                    (r.addr + u64::from(r.len.max(32))).next_multiple_of(PAGE),
                )
            })
            .collect();
        eager.sort_unstable();
        let mut deferred = Vec::new();
        for r in &p.pages {
            let (rs, re) = (r.addr, r.addr + r.pages * PAGE);
            let first = vmas.partition_point(|v| v.1 <= rs);
            for &(vs, ve) in &vmas[first..] {
                if vs >= re {
                    break;
                }
                let (s, e) = (rs.max(vs), re.min(ve));
                subtract(s, e, &eager, &mut deferred);
            }
        }
        Plan { vmas, deferred }
    }

    /// The parts of `[start, end)` that the rebuild writes (not deferred), in order.
    pub fn eager_parts(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        subtract(start, end, &self.deferred, &mut out);
        out
    }

    /// Pages left to the server.
    pub fn pages(&self) -> u64 {
        self.deferred.iter().map(|(s, e)| (e - s) / PAGE).sum()
    }
}

/// Appends `[start, end)` minus the sorted, disjoint `holes` to `out`.
fn subtract(start: u64, end: u64, holes: &[(u64, u64)], out: &mut Vec<(u64, u64)>) {
    let mut at = start;
    let first = holes.partition_point(|h| h.1 <= start);
    for &(hs, he) in &holes[first..] {
        if hs >= end {
            break;
        }
        if hs > at {
            out.push((at, hs));
        }
        at = at.max(he);
    }
    if at < end {
        out.push((at, end));
    }
}

/// Creates the userfaultfd inside the task, while it still holds the restore's privileges.
pub fn create_uffd(task: &mut Task) -> Result<MissingPages> {
    let pid = task.pid;
    let fd = task.call(
        "creating the userfaultfd of the lazy restore",
        Sysno::Userfaultfd,
        &[(libc::O_CLOEXEC | libc::O_NONBLOCK) as u64],
    )? as i32;
    let step = "taking the userfaultfd of the lazy restore";
    let taken = psnc_ptrace::sys::pidfd_open(pid)
        .and_then(|p| psnc_ptrace::sys::pidfd_getfd(p.as_fd(), pid, fd));
    task.call(
        "closing the process's copy of the userfaultfd",
        Sysno::Close,
        &[fd as u64],
    )?;
    let uffd: OwnedFd = taken.map_err(|source| RestoreError::Step {
        pid: pid as u32,
        step: step.into(),
        source,
    })?;
    MissingPages::new(uffd, pid).map_err(|source| RestoreError::Step {
        pid: pid as u32,
        step: "enabling the userfaultfd's events (fork, mremap, madvise, munmap)".into(),
        source,
    })
}

/// Registers the lazy VMAs of `plan` with `uffd`.
pub fn register(uffd: &MissingPages, plan: &Plan, pid: u32) -> Result<()> {
    for &(s, e) in &plan.vmas {
        uffd.register(s, e - s)
            .map_err(|source| RestoreError::Step {
                pid,
                step: format!("registering {s:#x}-{e:#x} for the lazy restore"),
                source,
            })?;
    }
    Ok(())
}

/// The pages still to fill of one mm: `start -> (end, image address of start)`.
type Pending = BTreeMap<u64, (u64, u64)>;

/// Takes `[start, end)` out of `pending`, returning the pieces taken `(start, end, source)`.
fn take(pending: &mut Pending, start: u64, end: u64) -> Vec<(u64, u64, u64)> {
    let mut hit: Vec<(u64, u64, u64)> = Vec::new();
    if let Some((&s, &(e, src))) = pending.range(..start).next_back() {
        if e > start {
            hit.push((s, e, src));
        }
    }
    hit.extend(pending.range(start..end).map(|(&s, &(e, src))| (s, e, src)));
    let mut taken = Vec::new();
    for (s, e, src) in hit {
        pending.remove(&s);
        if s < start {
            pending.insert(s, (start, src));
        }
        if e > end {
            pending.insert(end, (e, src + (end - s)));
        }
        let (a, b) = (s.max(start), e.min(end));
        taken.push((a, b, src + (a - s)));
    }
    taken
}

/// One address space the server fills: a restored process's, or a child's of a fork.
struct Mm {
    /// The image's process whose pages it takes (a forked child: its parent's).
    process: usize,
    uffd: MissingPages,
    pending: Pending,
    /// Faults not served yet (an event was pending).
    faults: Vec<u64>,
}

/// What the server did, for `-v`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Faults served.
    pub faults: u64,
    /// Pages filled because of a fault.
    pub fault_pages: u64,
    /// Pages filled in the background.
    pub background_pages: u64,
    /// Address spaces served (1 + the forks).
    pub mms: usize,
}

/// The lazy server of one restored process: see the module documentation.
pub struct Server<'a> {
    image: &'a Image,
    /// The restored root: on a bad chunk it and its descendants are killed.
    pid: u32,
    mms: Vec<Mm>,
    chunks: ChunkCheck<'a>,
    stats: Stats,
}

impl std::fmt::Debug for Server<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// One restored process whose memory the server fills: its index in the image, its
/// userfaultfd (the plan's VMAs registered) and its plan.
#[derive(Debug)]
pub struct Handoff {
    /// The image's process (index into `Checkpoint::processes`).
    pub process: usize,
    /// The userfaultfd, with the plan's VMAs registered.
    pub uffd: MissingPages,
    /// What is left to fill.
    pub plan: Plan,
}

impl<'a> Server<'a> {
    /// The server of the processes `handoffs` of `image`, restored under the root `pid`.
    pub fn new(image: &'a Image, pid: u32, handoffs: Vec<Handoff>) -> Result<Server<'a>> {
        let chunks = image.page_chunks()?;
        let mut mms = Vec::with_capacity(handoffs.len());
        for h in handoffs {
            let mut uffd = h.uffd;
            let p = &image.checkpoint().processes[h.process];
            if p.arch == psnc_format::model::Arch::I386 {
                uffd.below_4g(BACKGROUND as usize)
                    .map_err(|source| RestoreError::Step {
                        pid: p.pid,
                        step: "mapping the lazy server's buffer below 4 GiB".into(),
                        source,
                    })?;
            }
            mms.push(Mm {
                process: h.process,
                uffd,
                pending: h.plan.deferred.iter().map(|&(s, e)| (s, (e, s))).collect(),
                faults: Vec::new(),
            });
        }
        Ok(Server {
            image,
            pid,
            stats: Stats {
                mms: mms.len(),
                ..Stats::default()
            },
            mms,
            chunks,
        })
    }

    /// The descriptors the server needs (its userfaultfds).
    pub fn descriptors(&self) -> Vec<i32> {
        self.mms.iter().map(|m| m.uffd.raw_fd()).collect()
    }

    /// The bytes of the image at address `src` of process `process`, `len` of them (inside
    /// one run), their chunks checked first.
    fn source(&mut self, process: usize, src: u64, len: u64) -> Result<&'a [u8]> {
        let p = &self.image.checkpoint().processes[process];
        let i = p.pages.partition_point(|r| r.addr + r.pages * PAGE <= src);
        let run = p
            .pages
            .get(i)
            .filter(|r| r.addr <= src && src + len <= r.addr + r.pages * PAGE)
            .ok_or_else(|| {
                RestoreError::Inconsistent(format!(
                    "lazy restore: no stored run holds {src:#x}+{len:#x}"
                ))
            })?;
        let off = run.data_offset + (src - run.addr);
        self.chunks.check(off, len)?;
        let bytes = self.image.page_bytes(run)?;
        let at = (src - run.addr) as usize;
        Ok(&bytes[at..at + len as usize])
    }

    /// Fills `[start, end)` of mm `m` (taken out of its pending set) from the image. Returns
    /// whether the mm is gone; gives the pieces back when an event must be read first.
    fn fill(&mut self, m: usize, start: u64, end: u64) -> Result<(bool, bool)> {
        let pieces = take(&mut self.mms[m].pending, start, end);
        let mut again = false;
        for (i, &(a, b, src)) in pieces.iter().enumerate() {
            let mut at = a;
            while at < b {
                let bytes = self.source(self.mms[m].process, src + (at - a), b - at)?;
                match self.mms[m]
                    .uffd
                    .copy(at, bytes)
                    .map_err(|source| self.err(source))?
                {
                    Filled::Bytes(0) | Filled::Exists => at += PAGE,
                    Filled::Bytes(n) => at += n,
                    Filled::Gone => return Ok((true, false)),
                    Filled::Again => {
                        // Give back what is left and read the events first.
                        for &(c, d, s) in
                            std::iter::once(&(at, b, src + (at - a))).chain(pieces[i + 1..].iter())
                        {
                            self.mms[m].pending.insert(c, (d, s));
                        }
                        again = true;
                        break;
                    }
                }
            }
            if again {
                break;
            }
        }
        Ok((false, again))
    }

    fn err(&self, source: psnc_ptrace::PtraceError) -> RestoreError {
        RestoreError::Step {
            pid: self.pid,
            step: "filling memory (lazy restore)".into(),
            source,
        }
    }

    /// Serves a fault at `addr` of mm `m`. Returns false when it must wait for an event.
    fn serve(&mut self, m: usize, addr: u64) -> Result<bool> {
        let pending = self.mms[m]
            .pending
            .range(..=addr)
            .next_back()
            .filter(|(_, &(e, _))| e > addr)
            .map(|(_, &(e, _))| e);
        let done = match pending {
            Some(e) => {
                let end = e.min(addr + FAULT_PAGES * PAGE);
                let (gone, again) = self.fill(m, addr, end)?;
                if again {
                    return Ok(false);
                }
                self.stats.fault_pages += (end - addr) / PAGE;
                gone
            }
            // Not stored, dropped or filled already: a zero page, or the threads woken.
            None => match self.mms[m].uffd.zero(addr, PAGE).map_err(|e| self.err(e))? {
                Filled::Again => return Ok(false),
                Filled::Exists => {
                    let _ = self.mms[m].uffd.wake(addr, PAGE);
                    false
                }
                Filled::Gone => true,
                Filled::Bytes(_) => false,
            },
        };
        self.stats.faults += 1;
        if done {
            self.mms[m].pending.clear();
        }
        Ok(true)
    }

    /// Reads and handles the events of mm `m`.
    fn events(&mut self, m: usize) -> Result<()> {
        let mut events = Vec::new();
        // A read that fails leaves the events unknown: the pages could no longer be filled
        // right, so it ends the restore (the process is killed) rather than guess.
        self.mms[m]
            .uffd
            .events(&mut events)
            .map_err(|e| self.err(e))?;
        for e in events {
            match e {
                Event::PageFault { addr } => self.mms[m].faults.push(addr),
                Event::Fork { child } => {
                    let pending = self.mms[m].pending.clone();
                    let process = self.mms[m].process;
                    let i386 = self.image.checkpoint().processes[process].arch
                        == psnc_format::model::Arch::I386;
                    let uffd = MissingPages::of_child(
                        child,
                        self.mms[m].uffd.pid(),
                        i386.then_some(BACKGROUND as usize),
                    )
                    .map_err(|e| self.err(e))?;
                    self.mms.push(Mm {
                        process,
                        uffd,
                        pending,
                        faults: Vec::new(),
                    });
                    self.stats.mms += 1;
                }
                Event::Remap { from, to, len } => {
                    for (a, b, src) in take(&mut self.mms[m].pending, from, from + len) {
                        self.mms[m]
                            .pending
                            .insert(to + (a - from), (to + (b - from), src));
                    }
                }
                Event::Removed { start, end } => {
                    take(&mut self.mms[m].pending, start, end);
                }
            }
        }
        Ok(())
    }

    /// Fills everything, serving faults first; returns when every stored page is there (or
    /// its address space gone), closing the userfaultfds. A corrupt chunk kills the process
    /// and its descendants before any of them can see it, and is the error returned.
    pub fn run(mut self) -> Result<Stats> {
        let pid = self.pid;
        // A panic would close the userfaultfds with pages still missing, which the processes
        // would then read as zeros: it ends the restore like an error.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve_all()))
            .unwrap_or_else(|_| {
                Err(RestoreError::Inconsistent(
                    "the lazy server panicked".into(),
                ))
            });
        if r.is_err() {
            kill_tree(pid);
        }
        r.map(|()| self.stats)
    }

    fn serve_all(&mut self) -> Result<()> {
        // Test-only: a pause before each background step, so that tests can act on memory
        // that is not filled yet (faults are served at once all the same).
        let pause = std::env::var("PSNC_LAZY_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        loop {
            // Drop the address spaces that are complete: closing unregisters their ranges.
            self.mms
                .retain(|m| !m.pending.is_empty() || !m.faults.is_empty());
            if self.mms.is_empty() {
                return Ok(());
            }
            let ready = {
                let all: Vec<&MissingPages> = self.mms.iter().map(|m| &m.uffd).collect();
                MissingPages::poll(&all, 0).map_err(|e| self.err(e))?
            };
            for m in ready {
                self.events(m)?;
            }
            let mut served_any = false;
            for m in 0..self.mms.len() {
                let faults = std::mem::take(&mut self.mms[m].faults);
                for (i, &addr) in faults.iter().enumerate() {
                    if !self.serve(m, addr)? {
                        self.mms[m].faults.extend_from_slice(&faults[i..]);
                        break;
                    }
                    served_any = true;
                }
            }
            if served_any {
                continue;
            }
            // The background: the next MiB of the first address space with pages left.
            if let Some(d) = pause {
                let all: Vec<&MissingPages> = self.mms.iter().map(|m| &m.uffd).collect();
                if !MissingPages::poll(&all, d.as_millis() as i32)
                    .map_err(|e| self.err(e))?
                    .is_empty()
                {
                    continue;
                }
            }
            if let Some(m) = self.mms.iter().position(|m| !m.pending.is_empty()) {
                let (&s, &(e, _)) = self.mms[m].pending.iter().next().expect("not empty");
                let end = e.min(s + BACKGROUND);
                let (gone, again) = self.fill(m, s, end)?;
                if gone {
                    self.mms[m].pending.clear();
                } else if !again {
                    self.stats.background_pages += (end - s) / PAGE;
                } else {
                    // Wait for the event that blocks the copy.
                    let all: Vec<&MissingPages> = self.mms.iter().map(|m| &m.uffd).collect();
                    let _ = MissingPages::poll(&all, 10);
                }
            }
        }
    }
}

/// SIGKILLs `pid` and every descendant of it (children first found through
/// `/proc/PID/task/*/children`), before any of them can use a page that failed its check.
fn kill_tree(pid: u32) {
    let mut todo = vec![pid as i32];
    let mut all = Vec::new();
    while let Some(p) = todo.pop() {
        // Stop it first, so that it forks no more while its children are listed.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGSTOP,
        );
        all.push(p);
        let dir = psnc_proc::ProcDir::new(p);
        for t in dir.list_numeric("task").unwrap_or_default() {
            todo.extend(
                psnc_proc::ProcDir::new(p)
                    .task(t)
                    .children()
                    .unwrap_or_default(),
            );
        }
    }
    for p in all {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Starts the server of `handoffs` (the restored processes under the root `pid`) as a process
/// of its own, detached from this tool's session, before the processes are released: from
/// then on the userfaultfds are the server's, so that neither this tool's exit nor its death
/// can leave a page unfilled (before the release the processes die with the tool, which
/// traces them with PTRACE_O_EXITKILL). The server closes its stdout (a reader of this tool's
/// stdout to its end must not wait for it) and keeps stderr for its reports. Call it only
/// while this process has one thread.
pub fn start_server(image: &Image, pid: u32, handoffs: Vec<Handoff>, verbose: bool) -> Result<()> {
    if handoffs.is_empty() {
        return Ok(());
    }
    let server = Server::new(image, pid, handoffs)?;
    let child = psnc_ptrace::sys::fork_detached().map_err(|source| RestoreError::Step {
        pid,
        step: "starting the lazy server".into(),
        source,
    })?;
    if !child {
        // Our copies of the userfaultfds close with `server`; the server's keep them alive.
        return Ok(());
    }
    // The tool's descriptors (pipe ends and files prepared for the processes, pidfds) must not
    // live on in the server: a pipe whose other end the restore closed would not see its end
    // of file while the server runs. Only the userfaultfds and stderr stay.
    let keep = server.descriptors();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            let _ = nix::unistd::close(fd);
        }
    }
    let ok = serve(server, verbose).is_ok();
    // Nothing of the tool's state is ours to tear down: leave without unwinding it.
    std::process::exit(if ok { 0 } else { 1 })
}

/// Runs `server` and says on stderr what it did (`verbose`) or why it killed the process.
pub fn serve(server: Server<'_>, verbose: bool) -> Result<()> {
    let pid = server.pid;
    let started = Instant::now();
    match server.run() {
        Ok(s) => {
            if verbose {
                eprintln!(
                    "psnc-restore: lazy restore of PID {pid} complete in {:.3} s: {} faults \
                     ({} pages), {} pages in the background, {} address space(s)",
                    started.elapsed().as_secs_f64(),
                    s.faults,
                    s.fault_pages,
                    s.background_pages,
                    s.mms
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "psnc-restore: lazy restore of PID {pid}: {e}; the process and its descendants \
                 were killed before they could read it"
            );
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_splits_and_keeps_the_sources() {
        let mut p: Pending = BTreeMap::new();
        p.insert(0x1000, (0x5000, 0x1000));
        p.insert(0x8000, (0x9000, 0x8000));
        let t = take(&mut p, 0x2000, 0x8800);
        assert_eq!(t, vec![(0x2000, 0x5000, 0x2000), (0x8000, 0x8800, 0x8000)]);
        assert_eq!(p.get(&0x1000), Some(&(0x2000, 0x1000)));
        assert_eq!(p.get(&0x8800), Some(&(0x9000, 0x8800)));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn subtract_leaves_the_gaps() {
        let mut out = Vec::new();
        subtract(0, 100, &[(10, 20), (30, 40), (90, 120)], &mut out);
        assert_eq!(out, vec![(0, 10), (20, 30), (40, 90)]);
    }
}
