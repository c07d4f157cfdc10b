//! The memory of a process: which VMAs exist, which of their pages go into the image, how the
//! bytes are read, and the mm fields (the code, data, heap, stack, argument and environment
//! bounds restore sets with `PR_SET_MM_MAP`).
//!
//! The VMAs come from procfs (`/proc/PID/maps`, the VM flags of `smaps`, `pagemap` for the
//! pages), the bytes from `process_vm_readv` or `/proc/PID/mem`, the mm fields from
//! `/proc/PID/stat` except the current `brk`, which is kernel-only state (remote `brk(0)` or
//! `/dev/checkpoint` `GET_TASK_MISC`, see [`crate::source`]): [`collect_vmas`], [`mm_fields`].
//! Model types: [`Vma`] with its [`VmaKind`], [`PageRun`] and [`MmFields`] in
//! `psnc_format::model`.
//!
//! Three pieces, kept apart so a later pre-copy capture (copy while the target runs, then only the
//! pages written since, with userfaultfd write-protect or PAGEMAP_SCAN) can swap one without
//! touching the others:
//!
//! * [`classify`]: one VMA of `/proc/PID/maps` -> its [`VmaKind`] and [`StorePolicy`], or a
//!   refusal naming the mapping and its kind ([`collect_vmas`] applies it to every VMA).
//! * [`plan_pages`]: VMAs + pagemap -> the page ranges to store ([`PagePlan`]).
//! * [`MemorySource`]: reads those ranges ([`TargetMemory`] for a stopped target). [`copy_pages`] streams them into the image.
//!
//! The rules, in one place:
//!
//! | VMA                                   | stored pages                                      |
//! |---------------------------------------|---------------------------------------------------|
//! | private anonymous, `[heap]`, `[stack]`| present or swapped (never-touched pages read as 0)|
//! | private file mapping                  | present-and-not-file-backed, or swapped: the pages |
//! |                                       | copied on write; the rest is the file's contents  |
//! | shared file mapping                   | none: its contents are the file's (page cache)    |
//! | `[vdso]`                              | all: restore compares them with its own vdso      |
//! | `[vvar]`, `[vvar_vclock]`, `[vsyscall]`| none: recorded only (kernel-provided data)       |
//! | shared anonymous (`/dev/zero (deleted)`| none here: the object's pages are stored once, by |
//! | `[anon_shmem:NAME]`), shared memfd    | [`crate::shared_memory`], for every process       |
//! | SysV shm, private memfd, hugetlbfs,   | refused until their issue lands                   |
//! | device (VM_IO / VM_PFNMAP), others    |                                                   |
//! | `/[aio] (deleted)` (an AIO ring)      | not a VMA of the image: [`crate::aio`] owns it    |

use psnc_format::model::{MmFields, PageRun, Vma, VmaKind};

use crate::error::{CaptureError, Result};
use crate::files::{self, FileCatalog};
use crate::procfs::{MapsEntry, PageEntry, Pagemap, ProcDir, Stat, VmFlags, PAGE_SIZE};
use crate::source::KernelProcessState;

/// What capture stores of one VMA's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorePolicy {
    /// Pages that are present or swapped (anonymous memory).
    Touched,
    /// Pages that are present and not file-backed, or swapped (a private file mapping's
    /// copied-on-write pages).
    CopiedOnWrite,
    /// Every page (the vdso).
    All,
    /// Nothing: the VMA is recorded, its contents come from elsewhere.
    Nothing,
}

/// A mapping capture refuses, with its kind for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What the mapping is, e.g. "shared anonymous memory (/dev/zero (deleted))".
    pub kind: String,
}

/// Classifies one VMA: what it maps and what of it is stored.
pub fn classify(entry: &MapsEntry, flags: &VmFlags) -> Result<(VmaKind, StorePolicy), Refused> {
    let refuse = |kind: String| Err(Refused { kind });
    let path = entry.path.as_str();
    match path {
        "[heap]" => return Ok((VmaKind::Heap, StorePolicy::Touched)),
        "[stack]" => return Ok((VmaKind::Stack, StorePolicy::Touched)),
        "[vdso]" => return Ok((VmaKind::Vdso, StorePolicy::All)),
        "[vvar]" => return Ok((VmaKind::Vvar, StorePolicy::Nothing)),
        "[vvar_vclock]" => return Ok((VmaKind::VvarVclock, StorePolicy::Nothing)),
        "[vsyscall]" => return Ok((VmaKind::Vsyscall, StorePolicy::Nothing)),
        _ => {}
    }
    // After the kernel's own special mappings: [vvar] is VM_PFNMAP|VM_IO too.
    if flags.has("pf") || flags.has("io") {
        return refuse(format!(
            "a device mapping with VM_PFNMAP/VM_IO ({})",
            display_path(path)
        ));
    }
    if flags.has("ht") {
        return refuse(format!("a hugetlbfs mapping ({})", display_path(path)));
    }
    if path.starts_with("/SYSV") {
        if !entry.shared {
            return refuse(format!("a private mapping of SysV shared memory ({path})"));
        }
        // The segment's contents are stored once for all its attachments (crate::sysv_shm).
        return Ok((VmaKind::Anonymous, StorePolicy::Nothing));
    }
    if path == "/dev/zero" && !entry.shared {
        // A private mapping of /dev/zero is plain anonymous memory (the kernel makes it so).
        return Ok((VmaKind::Anonymous, StorePolicy::Touched));
    }
    if path.starts_with("/dev/zero")
        || path.starts_with("[anon_shmem:")
        || (entry.shared && path.is_empty())
    {
        if !entry.shared {
            // A private mapping of a shmem object: the kernel never makes one of these names.
            return refuse(format!(
                "a private mapping of shared anonymous memory ({})",
                display_path(path)
            ));
        }
        // The object's contents are stored once for all its mappings (crate::shared_memory).
        return Ok((VmaKind::Anonymous, StorePolicy::Nothing));
    }
    if path.starts_with("/memfd:") {
        if !entry.shared {
            return refuse(format!("a private memfd mapping ({path})"));
        }
        // A memfd object, stored once like shared anonymous memory (crate::shared_memory).
        return Ok((VmaKind::Anonymous, StorePolicy::Nothing));
    }
    if path.is_empty() || path.starts_with("[anon:") {
        // Private anonymous memory; a PR_SET_VMA_ANON_NAME name is not kept.
        return Ok((VmaKind::Anonymous, StorePolicy::Touched));
    }
    if path.starts_with('[') {
        return refuse(format!("a special kernel mapping {path}"));
    }
    if !path.starts_with('/') {
        return refuse(format!("a mapping of {path:?}"));
    }
    if entry.shared {
        Ok((VmaKind::File, StorePolicy::Nothing))
    } else {
        Ok((VmaKind::File, StorePolicy::CopiedOnWrite))
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "no name"
    } else {
        path
    }
}

/// The VMAs of a process, as the model records them and as [`plan_pages`] takes them.
#[derive(Debug, Clone, Default)]
pub struct MemoryLayout {
    /// The VMAs, sorted by address.
    pub vmas: Vec<Vma>,
    /// The same VMAs as `/proc/PID/maps` lists them, each with its [`StorePolicy`].
    pub plan_input: Vec<(MapsEntry, StorePolicy)>,
    /// The AIO rings, left out of `vmas` ([`crate::aio`] records them as contexts).
    pub aio_rings: Vec<MapsEntry>,
    /// The shared anonymous VMAs, whose object [`crate::shared_memory`] stores.
    pub shared: Vec<MapsEntry>,
    /// The System V shared memory attachments, whose segment [`crate::sysv_shm`] stores, each
    /// with whether it may be written (`VM_MAYWRITE`, smaps `mw`).
    pub sysv: Vec<(MapsEntry, bool)>,
    /// The VMAs under write tracking now (smaps `uw`), as `(start, end)`: where the pre-copy's
    /// copies may still be used ([`crate::precopy`]).
    pub uffd_wp: Vec<(u64, u64)>,
}

/// The VMAs of `/proc/PID/maps` with the VM flags of `smaps`, each classified (a refused one
/// fails the capture, naming the mapping), a file mapping's
/// [`FileRef`](psnc_format::model::FileRef) registered in `catalog`.
pub fn collect_vmas(proc_dir: &ProcDir, catalog: &mut FileCatalog) -> Result<MemoryLayout> {
    let pid = proc_dir.pid();
    let maps = proc_dir.maps()?;
    let vm_flags = proc_dir.smaps_vm_flags()?;
    let mut vmas = Vec::with_capacity(maps.len());
    let mut plan_input: Vec<(MapsEntry, StorePolicy)> = Vec::with_capacity(maps.len());
    let mut aio_rings = Vec::new();
    let mut shared = Vec::new();
    let mut sysv = Vec::new();
    let mut uffd_wp = Vec::new();
    for m in &maps {
        if crate::aio::is_ring(m) {
            aio_rings.push(m.clone());
            continue;
        }
        let flags = vm_flags.get(&m.start).cloned().unwrap_or_default();
        if flags.has("uw") {
            uffd_wp.push((m.start, m.end));
        }
        let (kind, policy) = classify(m, &flags).map_err(|r| CaptureError::Unsupported {
            pid,
            what: format!("mapping {:#x}-{:#x}", m.start, m.end),
            kind: r.kind,
        })?;
        let file = match kind {
            VmaKind::File => Some(files::mapping_ref(proc_dir, m, catalog)?),
            _ => None,
        };
        // A shared anonymous VMA's offset is the one into its object (it may be mapped from
        // the middle of one, after an munmap or mremap of part of it).
        let shared_anon = kind == VmaKind::Anonymous && m.shared;
        if shared_anon && crate::sysv_shm::is_attachment(m) {
            sysv.push((m.clone(), flags.has("mw")));
        } else if shared_anon {
            shared.push(m.clone());
        }
        vmas.push(Vma {
            start: m.start,
            end: m.end,
            prot: m.prot(),
            shared: m.shared,
            kind,
            file_offset: if kind == VmaKind::File || shared_anon {
                m.offset
            } else {
                0
            },
            file,
            vm_flags: flags.bits,
        });
        plan_input.push((m.clone(), policy));
    }
    Ok(MemoryLayout {
        vmas,
        plan_input,
        aio_rings,
        shared,
        sysv,
        uffd_wp,
    })
}

/// The mm fields of the process (what restore sets with `PR_SET_MM_MAP`): those of `stat`, and
/// the program break from the kernel-only `kernel` state (`stat` has only its start).
pub fn mm_fields(stat: &Stat, kernel: &KernelProcessState) -> MmFields {
    MmFields {
        start_code: stat.start_code,
        end_code: stat.end_code,
        start_data: stat.start_data,
        end_data: stat.end_data,
        start_brk: stat.start_brk,
        brk: kernel.brk,
        start_stack: stat.start_stack,
        arg_start: stat.arg_start,
        arg_end: stat.arg_end,
        env_start: stat.env_start,
        env_end: stat.env_end,
    }
}

/// Whether a page with this pagemap entry is stored under `policy`.
pub fn page_is_stored(policy: StorePolicy, page: PageEntry) -> bool {
    match policy {
        StorePolicy::Touched => page.present() || page.swapped(),
        // A swapped page of a private file mapping is always an anonymous (copied) page: file
        // pages are dropped, never swapped.
        StorePolicy::CopiedOnWrite => (page.present() && !page.file_or_shared()) || page.swapped(),
        StorePolicy::All => true,
        StorePolicy::Nothing => false,
    }
}

/// A contiguous range of pages to store, inside one VMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    /// First address (page-aligned).
    pub start: u64,
    /// Number of pages.
    pub pages: u64,
    /// Whether the VMA is readable (else the bytes must come through `/proc/PID/mem`).
    pub readable: bool,
}

impl PageRange {
    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.start + self.pages * PAGE_SIZE
    }
}

/// The pages to store, sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PagePlan {
    /// The ranges, sorted, each inside one VMA.
    pub ranges: Vec<PageRange>,
}

impl PagePlan {
    /// Total number of pages.
    pub fn pages(&self) -> u64 {
        self.ranges.iter().map(|r| r.pages).sum()
    }
}

/// How many pagemap entries to read at once (512 KiB of entries, 256 MiB of address space).
const PAGEMAP_BATCH: u64 = 64 * 1024;

/// Builds the page plan of a set of VMAs (`(entry, policy)`, sorted by address) from pagemap:
/// with `PAGEMAP_SCAN` (one call per run of VMAs returns their runs of pages instead of 8 bytes
/// per page; the kernel walks the page tables either way, about 10 ms per GiB of present pages
/// here, so the gain is on sparse mappings and many VMAs), else by reading the pagemap entries.
pub fn plan_pages(vmas: &[(MapsEntry, StorePolicy)], pagemap: &Pagemap) -> Result<PagePlan> {
    match plan_by_scan(vmas, pagemap) {
        Some(plan) => Ok(plan),
        None => plan_by_read(vmas, pagemap),
    }
}

/// Appends `[start, start + pages)` of `vma` to `plan`, joined to the range before when it
/// continues it inside the same VMA with the same readability.
fn push_range(plan: &mut PagePlan, vma: &MapsEntry, start: u64, pages: u64) {
    let readable = vma.read;
    if let Some(last) = plan.ranges.last_mut() {
        if last.end() == start && last.readable == readable && start != vma.start {
            last.pages += pages;
            return;
        }
    }
    plan.ranges.push(PageRange {
        start,
        pages,
        readable,
    });
}

/// [`plan_pages`] with `PAGEMAP_SCAN`; `None` when the kernel lacks it (or it fails: the
/// pagemap read then decides, and reports a real error itself).
///
/// One walk covers each run of consecutive VMAs whose pages are chosen by pagemap (policies
/// `Touched` and `CopiedOnWrite`), holes between them included (the kernel skips unmapped
/// ranges), so the cost is per page table, not per VMA: a process with 60,000 small VMAs
/// needs a handful of calls, not 60,000. A VMA stored whole or not at all ends a run.
pub fn plan_by_scan(vmas: &[(MapsEntry, StorePolicy)], pagemap: &Pagemap) -> Option<PagePlan> {
    use psnc_ptrace::uffd::category::{FILE, PRESENT, SWAPPED};
    let scanned = |p: &StorePolicy| matches!(p, StorePolicy::Touched | StorePolicy::CopiedOnWrite);
    let mut plan = PagePlan::default();
    let mut regions = Vec::new();
    // Runs of scanned VMAs; every other VMA is a run of its own.
    for group in vmas.chunk_by(|a, b| scanned(&a.1) && scanned(&b.1)) {
        let (vma, policy) = &group[0];
        if !scanned(policy) {
            if *policy == StorePolicy::All {
                push_range(&mut plan, vma, vma.start, vma.pages());
            }
            continue;
        }
        regions.clear();
        pagemap
            .scan(
                group[0].0.start,
                group[group.len() - 1].0.end,
                PRESENT | SWAPPED,
                PRESENT | SWAPPED | FILE,
                &mut regions,
            )
            .ok()?;
        // Both lists are sorted: cut each region at the bounds of the VMAs it covers.
        let mut v = 0;
        for &(s, e, cat) in &regions {
            while v < group.len() && group[v].0.end <= s {
                v += 1;
            }
            for (vma, policy) in group[v..].iter().take_while(|(vma, _)| vma.start < e) {
                // page_is_stored, by category: a present page-cache page of a private file
                // mapping is the file's; a swapped one is always a copy.
                let stored = match policy {
                    StorePolicy::CopiedOnWrite => cat & SWAPPED != 0 || cat & FILE == 0,
                    _ => true,
                };
                let (a, b) = (s.max(vma.start), e.min(vma.end));
                if stored && a < b {
                    push_range(&mut plan, vma, a, (b - a) / PAGE_SIZE);
                }
            }
        }
    }
    Some(plan)
}

/// [`plan_pages`] by reading the pagemap entries, 8 bytes per page.
pub fn plan_by_read(vmas: &[(MapsEntry, StorePolicy)], pagemap: &Pagemap) -> Result<PagePlan> {
    let mut plan = PagePlan::default();
    let mut entries = Vec::new();
    for (vma, policy) in vmas {
        let mut push = |start: u64, pages: u64| push_range(&mut plan, vma, start, pages);
        match policy {
            StorePolicy::Nothing => continue,
            StorePolicy::All => {
                push(vma.start, vma.pages());
                continue;
            }
            StorePolicy::Touched | StorePolicy::CopiedOnWrite => {}
        }
        let mut addr = vma.start;
        while addr < vma.end {
            let n = ((vma.end - addr) / PAGE_SIZE).min(PAGEMAP_BATCH);
            pagemap.read(addr, n, &mut entries)?;
            let mut run_start: Option<u64> = None;
            for (i, e) in entries.iter().enumerate() {
                let page = addr + i as u64 * PAGE_SIZE;
                match (page_is_stored(*policy, *e), run_start) {
                    (true, None) => run_start = Some(page),
                    (false, Some(s)) => {
                        push(s, (page - s) / PAGE_SIZE);
                        run_start = None;
                    }
                    _ => {}
                }
            }
            let batch_end = addr + n * PAGE_SIZE;
            if let Some(s) = run_start {
                push(s, (batch_end - s) / PAGE_SIZE);
            }
            addr = batch_end;
        }
    }
    Ok(plan)
}

/// A source of the target's memory. The stopped capture reads a stopped process; a pre-copy
/// capture will read a running one and re-read what changed.
pub trait MemorySource {
    /// Reads `buf.len()` bytes at `addr` of the target; `readable` says whether the VMA allows
    /// the target itself to read (if not, an implementation must read through protections).
    fn read(&mut self, addr: u64, buf: &mut [u8], readable: bool) -> Result<()>;

    /// Reads the pieces `(addr, len, readable)` back to back into `buf` (as long as their
    /// sum). The default reads them one by one; [`TargetMemory`] reads readable ones with one
    /// `process_vm_readv` per 1,024, which matters where memory is many small runs (a process
    /// of 60,000 small VMAs).
    fn read_many(&mut self, pieces: &[(u64, usize, bool)], buf: &mut [u8]) -> Result<()> {
        let mut at = 0;
        for &(addr, len, readable) in pieces {
            self.read(addr, &mut buf[at..at + len], readable)?;
            at += len;
        }
        Ok(())
    }
}

/// Reads a stopped target: `process_vm_readv` (one copy, the fast path), and `/proc/PID/mem`
/// (which reads through page protections) for PROT_NONE or otherwise unreadable pages.
#[derive(Debug)]
pub struct TargetMemory {
    pid: i32,
    mem: psnc_ptrace::ProcMem,
}

impl TargetMemory {
    /// Opens `/proc/PID/mem` for the fallback path (needs ptrace access to the process).
    pub fn open(pid: i32) -> Result<Self> {
        let mem = psnc_ptrace::ProcMem::open(pid, false)
            .map_err(|e| crate::stop::trace_error(pid, pid, "opening /proc/PID/mem", e))?;
        Ok(TargetMemory { pid, mem })
    }
}

impl MemorySource for TargetMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8], readable: bool) -> Result<()> {
        let pid = self.pid;
        let end = addr + buf.len() as u64;
        if readable && psnc_ptrace::vm_read_exact(pid, addr, buf).is_ok() {
            return Ok(());
        }
        self.mem
            .read_exact_at(addr, buf)
            .map_err(|source| CaptureError::Memory {
                pid,
                start: addr,
                end,
                source,
            })
    }

    fn read_many(&mut self, pieces: &[(u64, usize, bool)], buf: &mut [u8]) -> Result<()> {
        let mut at = 0;
        // A run of readable pieces in one vectored read; what it could not read (a page that
        // faults), and every unreadable piece, one by one through /proc/PID/mem.
        for run in pieces.chunk_by(|a, b| a.2 == b.2) {
            let mut done = 0;
            if run[0].2 {
                let ranges: Vec<psnc_ptrace::RemoteRange> = run
                    .iter()
                    .map(|&(addr, len, _)| psnc_ptrace::RemoteRange { addr, len })
                    .collect();
                let want: usize = ranges.iter().map(|r| r.len).sum();
                done =
                    psnc_ptrace::vm_read(self.pid, &ranges, &mut buf[at..at + want]).unwrap_or(0);
            }
            for &(addr, len, readable) in run {
                if done >= len {
                    done -= len;
                } else {
                    // Partly read or not at all: the rest of this piece through the slow path.
                    let skip = std::mem::take(&mut done);
                    self.read(addr + skip as u64, &mut buf[at + skip..at + len], readable)?;
                }
                at += len;
            }
        }
        Ok(())
    }
}

/// Bytes per copy buffer (1 MiB): the format's digest chunk, so every chunk is hashed in place;
/// big enough to amortize the syscalls, small enough that `write` finds the bytes
/// `process_vm_readv` just put there still in the core's L2 cache (measured: 1 MiB buffers beat
/// 4 MiB ones on a 1 GiB capture to tmpfs).
pub const COPY_BUFFER: usize = 1 << 20;

/// Where copied pages go: the image writer's page data section.
pub trait PageSink {
    /// A buffer of `len` bytes to fill (recycled: stale contents).
    fn buffer(&mut self, len: usize) -> Result<Vec<u8>>;
    /// Stores `buf`, which holds `runs` (address, pages) back to back; returns the runs in
    /// address order, at least one per input run and each inside one (an incremental capture's
    /// sink cuts a run where it switches between stored and parent pages).
    fn write(&mut self, runs: &[(u64, u64)], buf: Vec<u8>) -> Result<Vec<PageRun>>;
    /// The process whose pages the next writes hold (an incremental capture compares them with
    /// that process's pages in the parent).
    fn process(&mut self, _pid: i32) {}
}

/// Streams every range of `plan` from `source` into `sink`, packed into buffers of
/// [`COPY_BUFFER`] bytes (a range may end or start inside one; the last buffer is short).
/// Returns the page runs, one per range where a range spans several buffers. `check` runs
/// between buffers (the tool's interrupt check) and may abort the copy.
pub fn copy_pages(
    plan: &PagePlan,
    source: &mut dyn MemorySource,
    sink: &mut dyn PageSink,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<Vec<PageRun>> {
    let mut runs: Vec<PageRun> = Vec::new();
    let mut left = plan.pages() * PAGE_SIZE;
    // Position in the plan: range index and address inside it.
    let mut ri = 0;
    let mut addr = plan.ranges.first().map_or(0, |r| r.start);
    // Per buffer: (range index, address, pages) of each piece.
    let mut pieces: Vec<(usize, u64, u64)> = Vec::new();
    let mut piece_runs: Vec<(u64, u64)> = Vec::new();
    // Per buffer: what to read, (address, bytes, readable).
    let mut reads: Vec<(u64, usize, bool)> = Vec::new();
    while left > 0 {
        check()?;
        let len = left.min(COPY_BUFFER as u64) as usize;
        let mut buf = sink.buffer(len)?;
        pieces.clear();
        reads.clear();
        let mut at = 0;
        while at < len {
            let range = &plan.ranges[ri];
            let n = (range.end() - addr).min((len - at) as u64);
            reads.push((addr, n as usize, range.readable));
            pieces.push((ri, addr, n / PAGE_SIZE));
            at += n as usize;
            addr += n;
            if addr == range.end() && ri + 1 < plan.ranges.len() {
                ri += 1;
                addr = plan.ranges[ri].start;
            }
        }
        source.read_many(&reads, &mut buf[..len])?;
        left -= len as u64;
        piece_runs.clear();
        piece_runs.extend(pieces.iter().map(|p| (p.1, p.2)));
        let written = sink.write(&piece_runs, buf)?;
        // A range cut by a buffer boundary continues the previous buffer's last run.
        let continues = |last: &PageRun, run: &PageRun| {
            last.addr + last.pages * PAGE_SIZE == run.addr
                && last.data_offset + last.pages * PAGE_SIZE == run.data_offset
        };
        for (i, run) in written.into_iter().enumerate() {
            match runs.last_mut() {
                Some(last)
                    if i == 0
                        && continues(last, &run)
                        && pieces[0].1 != plan.ranges[pieces[0].0].start =>
                {
                    last.pages += run.pages;
                }
                _ => runs.push(run),
            }
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, shared: bool) -> MapsEntry {
        MapsEntry {
            start: 0x1000,
            end: 0x3000,
            read: true,
            shared,
            path: path.into(),
            ..Default::default()
        }
    }

    fn flags(m: &[&str]) -> VmFlags {
        VmFlags {
            bits: 0,
            ..VmFlags::from_mnemonics(m.iter().copied())
        }
    }

    #[test]
    fn classification_table() {
        let f = flags(&["rd", "mr"]);
        assert_eq!(
            classify(&entry("", false), &f),
            Ok((VmaKind::Anonymous, StorePolicy::Touched))
        );
        assert_eq!(
            classify(&entry("/dev/zero", false), &f),
            Ok((VmaKind::Anonymous, StorePolicy::Touched))
        );
        assert_eq!(
            classify(&entry("[anon:x]", false), &f),
            Ok((VmaKind::Anonymous, StorePolicy::Touched))
        );
        assert_eq!(
            classify(&entry("[heap]", false), &f),
            Ok((VmaKind::Heap, StorePolicy::Touched))
        );
        assert_eq!(
            classify(&entry("[stack]", false), &f),
            Ok((VmaKind::Stack, StorePolicy::Touched))
        );
        assert_eq!(
            classify(&entry("[vdso]", false), &f),
            Ok((VmaKind::Vdso, StorePolicy::All))
        );
        assert_eq!(
            classify(&entry("[vvar]", false), &f),
            Ok((VmaKind::Vvar, StorePolicy::Nothing))
        );
        assert_eq!(
            classify(&entry("[vvar_vclock]", false), &f),
            Ok((VmaKind::VvarVclock, StorePolicy::Nothing))
        );
        assert_eq!(
            classify(&entry("[vsyscall]", false), &f),
            Ok((VmaKind::Vsyscall, StorePolicy::Nothing))
        );
        assert_eq!(
            classify(&entry("/lib/x.so", false), &f),
            Ok((VmaKind::File, StorePolicy::CopiedOnWrite))
        );
        assert_eq!(
            classify(&entry("/tmp/x (deleted)", false), &f),
            Ok((VmaKind::File, StorePolicy::CopiedOnWrite))
        );
        assert_eq!(
            classify(&entry("/tmp/x", true), &f),
            Ok((VmaKind::File, StorePolicy::Nothing))
        );
        for shared_anon in [
            "/dev/zero (deleted)",
            "[anon_shmem:pool]",
            "",
            "/memfd:buf (deleted)",
            "/SYSV70733de6 (deleted)",
        ] {
            assert_eq!(
                classify(&entry(shared_anon, true), &f),
                Ok((VmaKind::Anonymous, StorePolicy::Nothing)),
                "{shared_anon}"
            );
        }
    }

    #[test]
    fn refusals_name_the_kind() {
        let f = flags(&[]);
        let kind = |p: &str, s: bool| classify(&entry(p, s), &f).unwrap_err().kind;
        assert_eq!(
            kind("[anon_shmem:x]", false),
            "a private mapping of shared anonymous memory ([anon_shmem:x])"
        );
        assert_eq!(
            kind("/SYSV00000000 (deleted)", false),
            "a private mapping of SysV shared memory (/SYSV00000000 (deleted))"
        );
        assert_eq!(
            kind("/memfd:buf (deleted)", false),
            "a private memfd mapping (/memfd:buf (deleted))"
        );
        assert_eq!(
            kind("[uprobes]", false),
            "a special kernel mapping [uprobes]"
        );
        assert_eq!(
            classify(&entry("/dev/dri/card0", true), &flags(&["pf", "io"]))
                .unwrap_err()
                .kind,
            "a device mapping with VM_PFNMAP/VM_IO (/dev/dri/card0)"
        );
    }

    #[test]
    fn page_rules() {
        let present = PageEntry(1 << 63);
        let swapped = PageEntry(1 << 62);
        let file_page = PageEntry((1 << 63) | (1 << 61));
        let untouched = PageEntry(0);
        assert!(page_is_stored(StorePolicy::Touched, present));
        assert!(page_is_stored(StorePolicy::Touched, swapped));
        assert!(!page_is_stored(StorePolicy::Touched, untouched));
        assert!(page_is_stored(StorePolicy::CopiedOnWrite, present));
        assert!(page_is_stored(StorePolicy::CopiedOnWrite, swapped));
        assert!(!page_is_stored(StorePolicy::CopiedOnWrite, file_page));
        assert!(!page_is_stored(StorePolicy::CopiedOnWrite, untouched));
        assert!(page_is_stored(StorePolicy::All, untouched));
        assert!(!page_is_stored(StorePolicy::Nothing, present));
    }

    struct Pattern;
    impl MemorySource for Pattern {
        fn read(&mut self, addr: u64, buf: &mut [u8], _readable: bool) -> Result<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = ((addr + i as u64) / PAGE_SIZE) as u8;
            }
            Ok(())
        }
    }

    /// Collects what `copy_pages` writes, like the image writer would lay it out.
    #[derive(Default)]
    struct Collect {
        data: Vec<u8>,
        buffers: Vec<usize>,
    }

    impl PageSink for Collect {
        fn buffer(&mut self, len: usize) -> Result<Vec<u8>> {
            Ok(vec![0xee; len])
        }
        fn write(&mut self, runs: &[(u64, u64)], buf: Vec<u8>) -> Result<Vec<PageRun>> {
            let mut out = Vec::new();
            let mut at = self.data.len() as u64;
            for &(addr, pages) in runs {
                out.push(PageRun {
                    addr,
                    pages,
                    data_offset: at,
                });
                at += pages * PAGE_SIZE;
            }
            self.buffers.push(buf.len());
            self.data.extend_from_slice(&buf);
            Ok(out)
        }
    }

    #[test]
    fn copy_packs_ranges_into_buffers() {
        let big = (COPY_BUFFER as u64 / PAGE_SIZE) + 3;
        let plan = PagePlan {
            ranges: vec![
                PageRange {
                    start: 0x10000,
                    pages: 2,
                    readable: true,
                },
                PageRange {
                    start: 0x100000,
                    pages: big,
                    readable: true,
                },
                // Adjacent to the previous range but its own VMA: stays its own run.
                PageRange {
                    start: 0x100000 + big * PAGE_SIZE,
                    pages: 1,
                    readable: false,
                },
            ],
        };
        let mut sink = Collect::default();
        let runs = copy_pages(&plan, &mut Pattern, &mut sink, &mut || Ok(())).unwrap();
        assert_eq!(sink.buffers, vec![COPY_BUFFER, 6 * 4096]);
        assert_eq!(
            runs,
            vec![
                PageRun {
                    addr: 0x10000,
                    pages: 2,
                    data_offset: 0
                },
                PageRun {
                    addr: 0x100000,
                    pages: big,
                    data_offset: 2 * PAGE_SIZE
                },
                PageRun {
                    addr: 0x100000 + big * PAGE_SIZE,
                    pages: 1,
                    data_offset: (2 + big) * PAGE_SIZE
                },
            ]
        );
        for run in &runs {
            for page in 0..run.pages {
                let off = (run.data_offset + page * PAGE_SIZE) as usize;
                assert_eq!(sink.data[off], ((run.addr / PAGE_SIZE) + page) as u8);
            }
        }
    }

    #[test]
    fn copy_stops_when_check_fails() {
        let plan = PagePlan {
            ranges: vec![PageRange {
                start: 0x10000,
                pages: 1,
                readable: true,
            }],
        };
        let err = copy_pages(&plan, &mut Pattern, &mut Collect::default(), &mut || {
            Err(CaptureError::Interrupted { signal: 2 })
        })
        .unwrap_err();
        assert!(matches!(err, CaptureError::Interrupted { signal: 2 }));
    }

    #[test]
    fn plan_of_own_memory() {
        // A fresh anonymous mapping of which only pages 1 and 2 were touched.
        let me = crate::procfs::ProcDir::new(std::process::id() as i32);
        let mut v = vec![0u8; 64 * 4096 + 4096];
        // Find a page-aligned window inside the vector's heap allocation and touch two pages.
        let base = (v.as_ptr() as u64 + 4095) & !4095;
        let off = (base - v.as_ptr() as u64) as usize;
        v[off + 4096] = 1;
        v[off + 2 * 4096] = 1;
        let maps = me.maps().unwrap();
        let vma = maps
            .iter()
            .find(|m| m.start <= base && base < m.end)
            .unwrap()
            .clone();
        let plan = plan_pages(
            &[(vma.clone(), StorePolicy::Touched)],
            &me.pagemap().unwrap(),
        )
        .unwrap();
        let covers = |a: u64| plan.ranges.iter().any(|r| r.start <= a && a < r.end());
        assert!(covers(base + 4096));
        assert!(covers(base + 2 * 4096));
        assert!(plan
            .ranges
            .iter()
            .all(|r| r.start >= vma.start && r.end() <= vma.end));
        std::hint::black_box(&v);
    }

    #[test]
    fn scan_and_read_give_the_same_plan() {
        // A stopped process (nothing changes between the two plans): every VMA classified as
        // a capture would, the plan made both ways.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let dir = crate::procfs::ProcDir::new(pid);
        // After the exec (the comm is sleep's), stop it.
        for _ in 0..200 {
            if dir.stat().is_ok_and(|s| s.comm == "sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .unwrap();
        for _ in 0..200 {
            if dir.stat().is_ok_and(|s| s.state == 'T') {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let layout = collect_vmas(&dir, &mut FileCatalog::new()).unwrap();
        let pm = dir.pagemap().unwrap();
        let scanned = plan_by_scan(&layout.plan_input, &pm).expect("PAGEMAP_SCAN (Linux 6.7)");
        let read = plan_by_read(&layout.plan_input, &pm).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(read.pages() > 0);
        assert_eq!(scanned, read);
    }
}
