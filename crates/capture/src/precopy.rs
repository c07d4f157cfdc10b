//! Pre-copy: the target's private memory is copied while it runs, with its writes tracked, and
//! only the pages written since are copied while it is stopped. The stop then lasts about as
//! long as the rest of the capture (threads, fds, the final scan), not as long as the memory
//! copy: on a 4 GiB target, tens of milliseconds instead of seconds.
//!
//! ```text
//!  stop 1   PreCopy::arm        every process of the tree: userfaultfd() run inside it, taken
//!                               with pidfd_getfd, closed in it again (psnc_ptrace::uffd)
//!  running  PreCopy::run        round 0: register + write-protect every anonymous VMA, copy its
//!                               present pages into the image; round k: PAGEMAP_SCAN lists and
//!                               protects again what was written, which is copied again; until
//!                               a round finds little written, stops shrinking, or MAX_ROUNDS
//!  stop 2   final_copies        for each process: the last scan and the `uw` check
//!           use_copies          the page plan of the capture proper: the pages written since
//!                               the last round and everything untracked are read, the rest
//!                               points at the copies already in the image
//!  running  drop                the tool's userfaultfds closed: the kernel unregisters and
//!                               unprotects everything (about 23 ms per GiB, off the stop)
//! ```
//!
//! The page plan of the second stop decides what the image holds (a page not present then is
//! not stored, whatever was copied before); pre-copy only supplies bytes. A copy is used only
//! when three things hold: the page was not written since it was read (the scan), its VMA is
//! still the tracked one (smaps still shows `uw` at the final stop: a VMA mapped, or moved by
//! `mremap`, since round 0 has no registration, and the scans skip it), and the process is the
//! one armed (an exec gives it a new mm without `uw` anywhere). Each round and the final stop
//! scan all tracked ranges of a process in one walk (`PAGEMAP_SCAN` over the span from the
//! first to the last, which reports only pages of registered VMAs). Pages
//! copied in an earlier round and written again stay in the page data, unreferenced: the image
//! grows by what was written during the copy (spec 8.6 allows unreferenced bytes).
//!
//! What is not tracked is copied in the second stop as before: shared memory (anonymous shared,
//! memfd, System V), the copied-on-write pages of private file mappings (see `trackable`),
//! VMAs that already have a userfaultfd of the target's own, hugetlb, and the special mappings. A process where arming fails (no userfaultfd in the kernel, no asynchronous
//! write protection before 6.7) is captured stopped, and `-v` and `--json` say why. Writes that
//! bypass the page tables (DMA into memory pinned before the capture, e.g. RDMA) are not seen.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use psnc_format::model::PageRun;
use psnc_ptrace::uffd::WriteTracker;
use psnc_ptrace::RemoteSyscaller;

use crate::error::Result;
use crate::memory::{self, MemorySource, PagePlan, PageRange, PageSink, StorePolicy, TargetMemory};
use crate::procfs::{ProcDir, PAGE_SIZE};
use crate::stop::FrozenTree;
use crate::threads::RestartedCall;

/// At most this many rounds of copying while the target runs (round 0 included).
pub const MAX_ROUNDS: usize = 8;
/// A round that finds at most this many pages written ends the pre-copy (4 MiB: a few
/// milliseconds to copy while stopped).
pub const SMALL_ENOUGH: u64 = 1024;
/// A round that finds more than this fraction (in quarters) of the previous round's pages
/// written ends the pre-copy: the target writes about as fast as the copy goes, and another
/// round would only grow the image by what it copies again.
pub const SHRINK_QUARTERS: u64 = 3;

/// `--pre-copy`: whether memory is copied while the target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreCopyMode {
    /// Pre-copy where the kernel allows it, else a plain stop (the default).
    #[default]
    Auto,
    /// Pre-copy, or fail the capture (target left running) when it cannot be armed.
    Always,
    /// Everything while stopped.
    Never,
    /// No write tracking: the memory is read from a copy-on-write fork of each process after
    /// it runs on ([`crate::snapshot`]).
    Fork,
}

impl std::str::FromStr for PreCopyMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(PreCopyMode::Auto),
            "always" => Ok(PreCopyMode::Always),
            "never" => Ok(PreCopyMode::Never),
            "fork" => Ok(PreCopyMode::Fork),
            _ => Err(format!(
                "{s:?} is not a pre-copy mode; use auto, always, fork or never"
            )),
        }
    }
}

impl std::fmt::Display for PreCopyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PreCopyMode::Auto => "auto",
            PreCopyMode::Always => "always",
            PreCopyMode::Never => "never",
            PreCopyMode::Fork => "fork",
        })
    }
}

/// Pages already in the image's page data, by address: disjoint runs `start -> (end, offset)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copies {
    runs: BTreeMap<u64, (u64, u64)>,
}

/// A piece of a range, as [`Copies::pieces`] cuts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// `[start, end)` is copied, its first byte at this page-data offset.
    Copied(u64, u64, u64),
    /// `[start, end)` has no copy.
    Missing(u64, u64),
}

impl Copies {
    /// Forgets every copy of a page in `[start, end)`.
    pub fn remove(&mut self, start: u64, end: u64) {
        let mut hit: Vec<(u64, u64, u64)> = Vec::new();
        if let Some((&s, &(e, off))) = self.runs.range(..start).next_back() {
            if e > start {
                hit.push((s, e, off));
            }
        }
        hit.extend(
            self.runs
                .range(start..end)
                .map(|(&s, &(e, off))| (s, e, off)),
        );
        for (s, e, off) in hit {
            self.runs.remove(&s);
            if s < start {
                self.runs.insert(s, (start, off));
            }
            if e > end {
                self.runs.insert(end, (e, off + (end - s)));
            }
        }
    }

    /// Records that `[start, end)` is at page-data offset `offset` (replacing older copies).
    pub fn insert(&mut self, start: u64, end: u64, offset: u64) {
        if start >= end {
            return;
        }
        self.remove(start, end);
        self.runs.insert(start, (end, offset));
    }

    /// Keeps only the copies inside `ranges` (sorted, disjoint `(start, end)`).
    pub fn retain_within(&mut self, ranges: &[(u64, u64)]) {
        let mut kept = Copies::default();
        for &(s, e) in ranges {
            self.pieces(s, e, &mut |p| {
                if let Piece::Copied(a, b, off) = p {
                    kept.runs.insert(a, (b, off));
                }
            });
        }
        *self = kept;
    }

    /// Cuts `[start, end)` into copied and missing pieces, in address order.
    pub fn pieces(&self, start: u64, end: u64, f: &mut dyn FnMut(Piece)) {
        let mut at = start;
        let first = self
            .runs
            .range(..start)
            .next_back()
            .filter(|(_, &(e, _))| e > start)
            .map(|(&s, &v)| (s, v));
        let rest = self.runs.range(start..end).map(|(&s, &v)| (s, v));
        for (s, (e, off)) in first.into_iter().chain(rest) {
            let a = s.max(start);
            let b = e.min(end);
            if a > at {
                f(Piece::Missing(at, a));
            }
            f(Piece::Copied(a, b, off + (a - s)));
            at = b;
        }
        if at < end {
            f(Piece::Missing(at, end));
        }
    }

    /// Pages with a copy.
    pub fn pages(&self) -> u64 {
        self.runs
            .iter()
            .map(|(s, (e, _))| (e - s) / PAGE_SIZE)
            .sum()
    }
}

/// A tracked range: one VMA as it was when tracking began.
#[derive(Debug, Clone, Copy)]
struct Range {
    start: u64,
    end: u64,
    readable: bool,
}

/// One process under write tracking.
#[derive(Debug)]
struct Tracked {
    pid: i32,
    tracker: WriteTracker,
    ranges: Vec<Range>,
    copies: Copies,
}

/// The pre-copy of a tree; see the module documentation. Dropping it ends every tracking.
#[derive(Debug, Default)]
pub struct PreCopy {
    tracked: Vec<Tracked>,
    /// Processes captured without pre-copy, each with the reason.
    pub untracked: Vec<(i32, String)>,
    /// Rounds copied while the target ran.
    pub rounds: usize,
    /// Pages copied while the target ran (all rounds, copies later replaced included).
    pub pages_running: u64,
    /// Pages the last round found written.
    pub last_written: u64,
    /// Pages of the tracked processes read during the final stop.
    pub pages_stopped: u64,
    /// Pages of the final plan taken from the copies.
    pub pages_reused: u64,
    /// How long the arming stop lasted.
    pub arm_stop: Duration,
    /// The threads the arming stop found in a call the kernel restarts through
    /// `restart_syscall` ([`RestartedCall`]), by TID.
    pub restarted: HashMap<i32, RestartedCall>,
}

/// A running target's memory: a read that fails (the VMA unmapped meanwhile) gives zeros and is
/// remembered, so that its copy is dropped.
struct Running<'a> {
    mem: &'a mut TargetMemory,
    failed: Vec<(u64, u64)>,
}

impl MemorySource for Running<'_> {
    fn read(&mut self, addr: u64, buf: &mut [u8], readable: bool) -> Result<()> {
        if self.mem.read(addr, buf, readable).is_err() {
            buf.fill(0);
            self.failed.push((addr, addr + buf.len() as u64));
        }
        Ok(())
    }

    fn read_many(&mut self, pieces: &[(u64, usize, bool)], buf: &mut [u8]) -> Result<()> {
        if self.mem.read_many(pieces, buf).is_ok() {
            return Ok(());
        }
        // Some piece is gone (unmapped meanwhile): piece by piece, to know which.
        let mut at = 0;
        for &(addr, len, readable) in pieces {
            self.read(addr, &mut buf[at..at + len], readable)?;
            at += len;
        }
        Ok(())
    }
}

/// Whether a VMA is tracked: private anonymous memory (heap, stacks, anonymous mappings) whose
/// touched pages the image stores, not a special mapping or hugetlb (a file mapping in maps).
/// One already under a userfaultfd of the target's own is found at registration (EBUSY).
///
/// Private file mappings are not: the copied-on-write pages the image stores are mixed with
/// page-cache pages it does not, and a protected file page not faulted in yet gets a PTE
/// marker, which pagemap reports as swapped. Anonymous VMAs are protected only where pages
/// are populated ([`WriteTracker::protect`]); a page populated after the protection has no
/// write-protect bit, which `PAGEMAP_SCAN` reports as written, so it is copied again like any
/// written page.
fn trackable(entry: &crate::procfs::MapsEntry) -> bool {
    let anonymous = matches!(entry.path.as_str(), "" | "[heap]" | "[stack]");
    !entry.shared && anonymous && entry.inode == 0
}

impl PreCopy {
    /// While `tree` is stopped: a write tracker for each process (a userfaultfd made inside it
    /// and closed there again). A process where that fails is left to the plain stop, with the
    /// reason in [`PreCopy::untracked`]. The threads are parked again afterwards.
    pub fn arm(tree: &mut FrozenTree) -> Result<PreCopy> {
        let mut pre = PreCopy::default();
        // Test-only: act as a kernel without asynchronous write protection would, so that the
        // tests can take the fallbacks (fork snapshot, plain stop) on a kernel that has it.
        if std::env::var_os("PSNC_TEST_NO_WRITE_TRACKING").is_some() {
            for f in tree.processes().iter_mut() {
                pre.untracked.push((
                    f.pid(),
                    "write tracking disabled (PSNC_TEST_NO_WRITE_TRACKING)".into(),
                ));
            }
            return Ok(pre);
        }
        for f in tree.processes().iter_mut() {
            let pid = f.pid();
            // Before anything runs in the process: which threads this stop interrupts in a call
            // that will go on as restart_syscall.
            for t in f.threads().iter_mut() {
                let tid = t.tid();
                if let (Ok(regs), Ok(arch)) = (t.get_regs(), t.arch()) {
                    if let Some(call) = RestartedCall::of(&regs, arch) {
                        pre.restarted.insert(tid, call);
                    }
                }
            }
            let made = match f.threads().first_mut() {
                Some(leader) => RemoteSyscaller::find(leader).and_then(|mut sc| {
                    let t = WriteTracker::create(&mut sc, pid);
                    let finished = sc.finish();
                    let t = t?;
                    finished.map(|()| t)
                }),
                None => {
                    pre.untracked.push((pid, "no thread".into()));
                    continue;
                }
            };
            f.park()?;
            match made {
                Ok(tracker) => pre.tracked.push(Tracked {
                    pid,
                    tracker,
                    ranges: Vec::new(),
                    copies: Copies::default(),
                }),
                Err(e) => pre.untracked.push((pid, e.to_string())),
            }
        }
        Ok(pre)
    }

    /// Puts back, in the threads of the final stop, the calls the arming stop interrupted
    /// ([`RestartedCall::fix`]).
    pub fn fix_restarts(
        &self,
        threads: &mut [psnc_format::model::Thread],
        arch: psnc_format::model::Arch,
    ) {
        for t in threads {
            if let Some(call) = self.restarted.get(&(t.tid as i32)) {
                call.fix(t, arch);
            }
        }
    }

    /// Whether some process is tracked.
    pub fn is_armed(&self) -> bool {
        !self.tracked.is_empty()
    }

    /// While the target runs: round 0 protects and copies every tracked VMA, each later round
    /// copies again what the previous one found written, until a round finds at most
    /// [`SMALL_ENOUGH`] pages, finds more than three quarters of the round before, or
    /// [`MAX_ROUNDS`] are done.
    /// `log` gets one line per round. A process that vanished is dropped from the tracking.
    pub fn run(
        &mut self,
        sink: &mut dyn PageSink,
        log: &dyn Fn(String),
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let mut copied = 0;
        let mut gone = Vec::new();
        for t in self.tracked.iter_mut() {
            match round0(t, sink, check) {
                Ok(n) => copied += n,
                Err(e) if process_gone(t.pid) => gone.push((t.pid, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        self.drop_gone(gone);
        self.rounds = 1;
        self.pages_running += copied;
        log(format!(
            "pre-copy round 0: {copied} pages of {} process(es) copied while running",
            self.tracked.len()
        ));
        // Round 0 counts as the round before the first: a target that rewrote three quarters of
        // what round 0 copied while it copied writes as fast as the copy goes.
        let mut previous = copied;
        while self.rounds < MAX_ROUNDS {
            let mut written = 0;
            let mut gone = Vec::new();
            for t in self.tracked.iter_mut() {
                match round(t, sink, check) {
                    Ok(n) => written += n,
                    Err(e) if process_gone(t.pid) => gone.push((t.pid, e.to_string())),
                    Err(e) => return Err(e),
                }
            }
            self.drop_gone(gone);
            self.rounds += 1;
            self.pages_running += written;
            self.last_written = written;
            log(format!(
                "pre-copy round {}: {written} pages written since the last round, copied again",
                self.rounds - 1
            ));
            if written <= SMALL_ENOUGH || written > previous / 4 * SHRINK_QUARTERS {
                break;
            }
            previous = written;
        }
        Ok(())
    }

    /// Why some processes are not tracked, one `PID n: reason` per process joined with `; `;
    /// `None` when every process is.
    pub fn untracked_reason(&self) -> Option<String> {
        (!self.untracked.is_empty()).then(|| {
            self.untracked
                .iter()
                .map(|(pid, why)| format!("PID {pid}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn drop_gone(&mut self, gone: Vec<(i32, String)>) {
        for (pid, why) in gone {
            self.tracked.retain(|t| t.pid != pid);
            self.untracked
                .push((pid, format!("gone during the pre-copy ({why})")));
        }
    }

    /// While stopped, for process `pid`: the copies still good. The last scan drops what was
    /// written since the last round, and only copies inside `uffd_wp` (the VMAs whose smaps
    /// shows `uw` now: a VMA mapped, or moved by mremap, since the round has lost the
    /// registration) are kept. `None` when `pid` is not tracked. The tracking itself goes on
    /// until the [`PreCopy`] is dropped, after the stop (ending it unprotects every page,
    /// which takes about 23 ms per GiB: not while the target is stopped).
    pub fn final_copies(&mut self, pid: i32, uffd_wp: &[(u64, u64)]) -> Option<Copies> {
        let t = self.tracked.iter_mut().find(|t| t.pid == pid)?;
        let (Some(first), Some(last)) = (t.ranges.first(), t.ranges.last()) else {
            return Some(Copies::default());
        };
        let mut written = Vec::new();
        match t
            .tracker
            .written(first.start, last.end, false, &mut written)
        {
            Ok(()) => {
                for &(s, e) in &written {
                    t.copies.remove(s, e);
                }
            }
            Err(_) => t.copies = Copies::default(),
        }
        t.copies.retain_within(uffd_wp);
        Some(std::mem::take(&mut t.copies))
    }

    /// While stopped: the page runs of the final page `plan` of a tracked process, pointing at
    /// the `copies` [`PreCopy::final_copies`] kept and reading the rest through `mem` into
    /// `sink`.
    pub fn use_copies(
        &mut self,
        copies: &Copies,
        plan: &PagePlan,
        mem: &mut TargetMemory,
        sink: &mut dyn PageSink,
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Vec<PageRun>> {
        let mut runs = Vec::new();
        let mut missing = PagePlan::default();
        for range in &plan.ranges {
            copies.pieces(range.start, range.end(), &mut |p| match p {
                Piece::Copied(s, e, off) => runs.push(PageRun {
                    addr: s,
                    pages: (e - s) / PAGE_SIZE,
                    data_offset: off,
                }),
                Piece::Missing(s, e) => missing.ranges.push(PageRange {
                    start: s,
                    pages: (e - s) / PAGE_SIZE,
                    readable: range.readable,
                }),
            });
        }
        self.pages_reused += runs.iter().map(|r| r.pages).sum::<u64>();
        self.pages_stopped += missing.pages();
        runs.extend(memory::copy_pages(&missing, mem, sink, check)?);
        runs.sort_by_key(|r| r.addr);
        Ok(coalesce(runs, plan))
    }

    /// The one-line account for `-v` and the summary.
    pub fn describe(&self) -> String {
        format!(
            "pre-copy: {} round(s) while running ({} pages), {} pages reused, {} read stopped",
            self.rounds, self.pages_running, self.pages_reused, self.pages_stopped
        )
    }
}

/// Whether `pid` no longer exists (or is a zombie): its tracking errors are not the capture's.
fn process_gone(pid: i32) -> bool {
    ProcDir::new(pid)
        .stat()
        .map_or(true, |s| s.state == 'Z' || s.state == 'X')
}

/// Round 0 of one process: track every trackable VMA and copy its present pages.
fn round0(
    t: &mut Tracked,
    sink: &mut dyn PageSink,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<u64> {
    let dir = ProcDir::new(t.pid);
    // maps only: neither the files behind the mappings nor smaps (43 MB of text for 60,000
    // VMAs, and a walk of every page table) is needed to track anonymous memory. The VmFlags
    // would add nothing for it: a VMA under a userfaultfd of the target's own refuses our
    // registration (EBUSY), and anonymous hugetlb memory is a file mapping in maps.
    // Every VMA, the untracked ones with nothing to plan: they end the plan's scan walks.
    let selected: Vec<_> = dir
        .maps()?
        .into_iter()
        .map(|entry| {
            let policy = if trackable(&entry) {
                StorePolicy::Touched
            } else {
                StorePolicy::Nothing
            };
            (entry, policy)
        })
        .collect();
    // One registration per run of tracked VMAs next to each other in the maps (no VMA between
    // them; the kernel registers every VMA of the range), one by one where that fails.
    let tracked = |v: &(_, StorePolicy)| v.1 != StorePolicy::Nothing;
    for run in selected.chunk_by(|a, b| tracked(a) == tracked(b)) {
        if !tracked(&run[0]) {
            continue;
        }
        let (start, end) = (run[0].0.start, run[run.len() - 1].0.end);
        let whole = t.tracker.register(start, end - start).is_ok();
        for (entry, _) in run {
            if whole
                || t.tracker
                    .register(entry.start, entry.end - entry.start)
                    .is_ok()
            {
                t.ranges.push(Range {
                    start: entry.start,
                    end: entry.end,
                    readable: entry.read,
                });
            }
        }
    }
    // Only the populated pages are protected (WriteTracker::protect: a protected unpopulated
    // page would read as swapped in pagemap, and so be stored). A page populated after the
    // plan has no protection: the scans see it as written.
    let mut plan = memory::plan_pages(&selected, &dir.pagemap()?)?;
    let ranges = &t.ranges;
    plan.ranges.retain(|p| {
        // `ranges` is sorted and disjoint (maps order): the one that may hold `p`.
        let i = ranges.partition_point(|r| r.end <= p.start);
        ranges
            .get(i)
            .is_some_and(|r| r.start <= p.start && p.end() <= r.end)
    });
    // One protection per run of plan ranges that touch (across VMA bounds: all registered),
    // range by range where that fails; a range left unprotected is not copied now.
    let mut protected = Vec::with_capacity(plan.ranges.len());
    for run in plan.ranges.chunk_by(|a, b| b.start == a.end()) {
        let (start, end) = (run[0].start, run[run.len() - 1].end());
        if t.tracker.protect(start, end - start).is_ok() {
            protected.extend_from_slice(run);
        } else {
            protected.extend(
                run.iter()
                    .filter(|p| t.tracker.protect(p.start, p.end() - p.start).is_ok()),
            );
        }
    }
    plan.ranges = protected;
    copy_into(t, &plan, sink, check)?;
    Ok(plan.pages())
}

/// A later round of one process: what was written since the last scan, protected again and
/// copied again. Returns the pages written.
fn round(
    t: &mut Tracked,
    sink: &mut dyn PageSink,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<u64> {
    let mut plan = PagePlan::default();
    let (Some(first), Some(last)) = (t.ranges.first(), t.ranges.last()) else {
        return Ok(0);
    };
    // One walk over every tracked range (VMAs between them are skipped by the kernel).
    let mut written = Vec::new();
    if t.tracker
        .written(first.start, last.end, true, &mut written)
        .is_err()
    {
        // No tracking to trust for this process: the final stop copies all of it.
        t.copies = Copies::default();
        t.ranges.clear();
        return Ok(0);
    }
    for &(s, e) in &written {
        // Cut at the tracked ranges: a plan range lies in one VMA.
        let mut i = t.ranges.partition_point(|r| r.end <= s);
        let mut at = s;
        while at < e && i < t.ranges.len() {
            let r = t.ranges[i];
            let (a, b) = (at.max(r.start), e.min(r.end));
            if a < b {
                t.copies.remove(a, b);
                plan.ranges.push(PageRange {
                    start: a,
                    pages: (b - a) / PAGE_SIZE,
                    readable: r.readable,
                });
            }
            at = b.max(at);
            i += 1;
        }
    }
    copy_into(t, &plan, sink, check)?;
    Ok(plan.pages())
}

/// Copies `plan` of a running process into `sink` and records the copies.
fn copy_into(
    t: &mut Tracked,
    plan: &PagePlan,
    sink: &mut dyn PageSink,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    if plan.ranges.is_empty() {
        return Ok(());
    }
    let mut mem = TargetMemory::open(t.pid)?;
    sink.process(t.pid);
    let mut src = Running {
        mem: &mut mem,
        failed: Vec::new(),
    };
    let runs = memory::copy_pages(plan, &mut src, sink, check)?;
    for r in &runs {
        t.copies
            .insert(r.addr, r.addr + r.pages * PAGE_SIZE, r.data_offset);
    }
    for (s, e) in src.failed {
        t.copies.remove(s, e);
    }
    Ok(())
}

/// Merges runs (sorted by address) that continue each other in memory and in the page data,
/// inside one range of `plan` (so inside one VMA, as restore expects).
fn coalesce(runs: Vec<PageRun>, plan: &PagePlan) -> Vec<PageRun> {
    let range_of = |addr: u64| plan.ranges.partition_point(|r| r.start <= addr);
    let mut out: Vec<PageRun> = Vec::with_capacity(runs.len());
    for r in runs {
        match out.last_mut() {
            Some(l)
                if l.addr + l.pages * PAGE_SIZE == r.addr
                    && l.data_offset + l.pages * PAGE_SIZE == r.data_offset
                    && range_of(l.addr) == range_of(r.addr) =>
            {
                l.pages += r.pages
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PAGE_SIZE;

    fn pieces(c: &Copies, s: u64, e: u64) -> Vec<Piece> {
        let mut v = Vec::new();
        c.pieces(s, e, &mut |p| v.push(p));
        v
    }

    #[test]
    fn a_newer_copy_replaces_the_middle_of_an_older_one() {
        let mut c = Copies::default();
        c.insert(0, 10 * P, 0);
        c.insert(4 * P, 6 * P, 100 * P);
        assert_eq!(
            pieces(&c, 0, 10 * P),
            vec![
                Piece::Copied(0, 4 * P, 0),
                Piece::Copied(4 * P, 6 * P, 100 * P),
                Piece::Copied(6 * P, 10 * P, 6 * P),
            ]
        );
        assert_eq!(c.pages(), 10);
    }

    #[test]
    fn removed_pages_are_missing_and_the_rest_keeps_its_offsets() {
        let mut c = Copies::default();
        c.insert(0, 4 * P, 8 * P);
        c.insert(8 * P, 12 * P, 0);
        c.remove(2 * P, 9 * P);
        assert_eq!(
            pieces(&c, P, 13 * P),
            vec![
                Piece::Copied(P, 2 * P, 9 * P),
                Piece::Missing(2 * P, 9 * P),
                Piece::Copied(9 * P, 12 * P, P),
                Piece::Missing(12 * P, 13 * P),
            ]
        );
    }

    #[test]
    fn retain_within_drops_what_lies_outside() {
        let mut c = Copies::default();
        c.insert(0, 10 * P, 0);
        c.retain_within(&[(2 * P, 3 * P), (5 * P, 20 * P)]);
        assert_eq!(
            pieces(&c, 0, 10 * P),
            vec![
                Piece::Missing(0, 2 * P),
                Piece::Copied(2 * P, 3 * P, 2 * P),
                Piece::Missing(3 * P, 5 * P),
                Piece::Copied(5 * P, 10 * P, 5 * P),
            ]
        );
    }

    #[test]
    fn coalesce_joins_only_runs_contiguous_in_both() {
        let r = |addr, pages, data_offset| PageRun {
            addr,
            pages,
            data_offset,
        };
        let range = |start, pages| PageRange {
            start,
            pages,
            readable: true,
        };
        let plan = PagePlan {
            ranges: vec![range(0, 4), range(4 * P, 1), range(5 * P, 1)],
        };
        assert_eq!(
            coalesce(
                vec![
                    r(0, 2, 0),
                    r(2 * P, 1, 2 * P),
                    r(3 * P, 1, 9 * P),
                    r(4 * P, 1, 10 * P),
                    r(5 * P, 1, 11 * P)
                ],
                &plan
            ),
            vec![
                r(0, 3, 0),
                r(3 * P, 1, 9 * P),
                r(4 * P, 1, 10 * P),
                r(5 * P, 1, 11 * P)
            ]
        );
    }
}
