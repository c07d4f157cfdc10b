//! Rebuilding the address space: clear the stub, recreate every VMA at its address, fill the
//! stored pages, replay madvise and mlock state, set the mm fields (`PR_SET_MM_MAP`: code, data,
//! brk, stack, arg and env bounds, auxv, the exe link), and finally unmap the restore's scratch
//! area.
//!
//! Model: [`psnc_format::model::Vma`] (with [`VmaKind`] and [`vm_flags`]),
//! [`psnc_format::model::PageRun`], [`psnc_format::model::MmFields`] and `auxv` of
//! [`Process`].
//!
//! Each VMA is created with one `mmap(MAP_FIXED_NOREPLACE)`, so a collision with anything left
//! of the stub is an error (EEXIST), never a silent replacement. The mmaps, the `mprotect`s that
//! lower protections and the madvise/mlock replays each run as one batch
//! ([`Task::batch`]): a resume of the task per 2,047 calls, not ten ptrace round trips per call. File mappings map the file
//! opened in the restore tool by [`open_mapping_files`] (the original when it is unchanged, so
//! `/proc/PID/maps` shows the original path; else the replica of the stored contents, see
//! [`crate::files`]); the task takes the file with `pidfd_getfd` on the restore tool. Pages are written through `/proc/PID/mem`, which writes through protections and
//! COWs private file pages, straight from the image's memory map: no copy in the tool.
//!
//! VMA boundaries: the kernel merges a new mapping into an adjacent one with the same flags, file
//! and offsets, so recreating two VMAs that the original process kept apart can yield one. What
//! kept them apart is usually `VM_ACCOUNT` (smaps `ac`): a private mapping that was writable once
//! (glibc's RELRO, a guard region made PROT_NONE after use) stays accounted when its protection is
//! lowered, while its read-only neighbour never was. Such VMAs are created writable (which makes
//! them accounted) and lowered to their protection after their pages are written, as in the
//! original. Images recording `ac` ([`ACCOUNT`]) say which VMAs were accounted; for older images a
//! private VMA with stored pages is taken as once writable, which covers RELRO.
//!
//! Page runs that fall into a shared mapping are not written: those pages are the file's, and
//! writing them would modify the file. The vdso group is not written either ([`crate::vdso`]).
//! Shared anonymous memory maps the memfd of its object, made and filled once for every process
//! that maps it ([`crate::shared_memory`]). A System V shared memory attachment is attached
//! again with a remote `shmat` of its segment, made before any process ([`crate::sysv_shm`]).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use psnc_format::model::{vm_flags, Checkpoint, Process, Vma, VmaKind};
use psnc_format::sections::maps_shared_memory;
use psnc_format::Image;
use psnc_ptrace::Sysno;

use crate::checks::FileSource;
use crate::error::{RestoreError, Result};
use crate::fds::open_with_flags;
use crate::files::Replicas;
use crate::placement::Region;
use crate::remote::{Call, Task};
use crate::vdso::VdsoGroup;
use crate::LocalFiles;
use psnc_proc::MapsEntry;

/// `VM_ACCOUNT` (smaps `ac`) as a [`vm_flags`] bit, when the capture records it.
pub const ACCOUNT: u32 = vm_flags::ACCOUNT;

const PR_SET_MM: u64 = 35;
const PR_SET_MM_MAP: u64 = 14;
const PR_SET_MM_MAP_SIZE: u64 = 104;

/// Whether `v` was accountable (`VM_ACCOUNT`) in the original: as recorded when the image records
/// the bit (`recorded`), else inferred from stored pages in a private mapping.
pub fn was_accounted(v: &Vma, p: &Process, recorded: bool) -> bool {
    if v.shared {
        return false;
    }
    if recorded {
        return v.vm_flags & ACCOUNT != 0;
    }
    // The runs are sorted by address (verified): the first at or after the VMA's start.
    let first = p.pages.partition_point(|r| r.addr < v.start);
    v.prot & libc::PROT_WRITE as u32 != 0 || p.pages.get(first).is_some_and(|r| r.addr < v.end)
}

/// Whether the image records `VM_ACCOUNT` (every live process has accounted mappings: its stack,
/// heap or data; an image without a single one predates the bit).
pub fn records_account(p: &Process) -> bool {
    p.vmas.iter().any(|v| v.vm_flags & ACCOUNT != 0)
}

/// A VMA created with more protection than it ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lowered {
    /// First address.
    pub start: u64,
    /// Length.
    pub len: u64,
    /// Its final protection.
    pub prot: u32,
}

/// Whether the VMA is one the kernel provides (and the restore moves or leaves), not one it maps.
pub fn is_special(v: &Vma) -> bool {
    matches!(
        v.kind,
        VmaKind::Vdso | VmaKind::Vvar | VmaKind::VvarVclock | VmaKind::Vsyscall
    )
}

/// Reads the task's maps.
pub fn task_maps(task: &Task) -> Result<Vec<MapsEntry>> {
    psnc_proc::ProcDir::new(task.pid).maps_lossy().map_err(|e| {
        let e = std::io::Error::from(e);
        RestoreError::Stub {
            pid: task.pid as u32,
            why: format!("reading /proc/{}/maps: {e}", task.pid),
        }
    })
}

/// Unmaps every mapping of the stub except the restore's region and the vdso group, and returns
/// the stub's vdso group.
pub fn clear_stub(task: &mut Task, region: Region) -> Result<Option<VdsoGroup>> {
    let maps = task_maps(task)?;
    let group = VdsoGroup::from_maps(&maps);
    for m in &maps {
        let in_group = group
            .as_ref()
            .is_some_and(|g| g.members.iter().any(|x| x.start == m.start));
        if m.path == "[vsyscall]" || in_group {
            if region.overlaps(m.start, m.end) {
                return Err(RestoreError::Stub {
                    pid: task.pid as u32,
                    why: format!(
                        "the kernel put {} at {:#x}, inside the restore's region",
                        m.path, m.start
                    ),
                });
            }
            continue;
        }
        if region.base <= m.start && m.end <= region.end() {
            continue; // the stub code and the scratch area
        }
        task.log(|| {
            format!(
                "unmapping stub mapping {:#x}-{:#x} {}",
                m.start, m.end, m.path
            )
        });
        task.call(
            &format!(
                "unmapping stub mapping {:#x}-{:#x} {}",
                m.start, m.end, m.path
            ),
            Sysno::Munmap,
            &[m.start, m.end - m.start],
        )?;
    }
    Ok(group)
}

/// The remote fd numbers of local files already handed to the task.
#[derive(Debug, Default)]
pub struct Transferred {
    by_local: BTreeMap<i32, u64>,
}

impl Transferred {
    /// The task's number for local fd `local`, taking it over with `pidfd_getfd` on first use.
    pub fn get(&mut self, task: &mut Task, pidfd: u64, local: i32, what: &str) -> Result<u64> {
        if let Some(&r) = self.by_local.get(&local) {
            return Ok(r);
        }
        let r = task.call(
            &format!("taking over the file of {what}"),
            Sysno::PidfdGetfd,
            &[pidfd, local as u64, 0],
        )?;
        self.by_local.insert(local, r);
        Ok(r)
    }

    /// Closes every transferred fd in the task.
    pub fn close_all(&mut self, task: &mut Task) -> Result<()> {
        for (_, r) in std::mem::take(&mut self.by_local) {
            task.call("closing a transferred file", Sysno::Close, &[r])?;
        }
        Ok(())
    }
}

/// For each VMA of `p` (same index as `sources`, the plan), the file it is mapped from, opened
/// in the restore tool: the original (one description per path and sharing), or the replica of
/// its stored contents.
pub fn open_mapping_files(
    p: &Process,
    sources: &[Option<FileSource>],
    replicas: &mut Replicas,
) -> Result<Vec<Option<Rc<OwnedFd>>>> {
    let mut originals = BTreeMap::new();
    let mut vmas = Vec::with_capacity(p.vmas.len());
    for (v, src) in p.vmas.iter().zip(sources) {
        let fd = match src {
            None if maps_shared_memory(v) && replicas.is_sysv(p.pid, v) => None,
            None if maps_shared_memory(v) => Some(replicas.shared_memory(p.pid, v)?),
            None => None,
            Some(FileSource::Original(path)) => Some(original(&mut originals, path, v.shared)?),
            Some(FileSource::Stored(id)) => {
                let deleted = v
                    .file
                    .as_ref()
                    .filter(|f| f.deleted)
                    .map(|f| (f.path.as_str(), f.identity.mode));
                let inode = v
                    .file
                    .as_ref()
                    .map_or((0, 0), |f| (f.identity.dev, f.identity.ino));
                Some(replicas.replica(*id, inode, deleted)?)
            }
        };
        vmas.push(fd);
    }
    Ok(vmas)
}

/// An original file for mapping; writable when a shared mapping may need it.
fn original(
    originals: &mut BTreeMap<(PathBuf, bool), Rc<OwnedFd>>,
    path: &Path,
    shared: bool,
) -> Result<Rc<OwnedFd>> {
    let key = (path.to_path_buf(), shared);
    if let Some(fd) = originals.get(&key) {
        return Ok(fd.clone());
    }
    let fd = if shared {
        open_with_flags(path, libc::O_RDWR as u32)
            .or_else(|_| open_with_flags(path, libc::O_RDONLY as u32))?
    } else {
        open_with_flags(path, libc::O_RDONLY as u32)?
    };
    let fd = Rc::new(fd);
    originals.insert(key, fd.clone());
    Ok(fd)
}

/// Recreates every VMA of `p` (except the kernel-provided ones) at its address. Returns the VMAs
/// created writable for accounting, whose protection [`lower_protections`] sets after the fill.
pub fn create_vmas(
    task: &mut Task,
    ckpt: &Checkpoint,
    p: &Process,
    local: &LocalFiles,
    pidfd: u64,
) -> Result<Vec<Lowered>> {
    let mut transferred = Transferred::default();
    let recorded = records_account(p);
    let mut lowered = Vec::new();
    // One mmap per VMA, run as one batch (crate::remote): only the fds of the files are taken
    // over one by one before, once per file.
    let mut calls = Vec::with_capacity(p.vmas.len());
    let mut wanted = Vec::with_capacity(p.vmas.len());
    for (i, v) in p.vmas.iter().enumerate() {
        if is_special(v) {
            continue;
        }
        if maps_shared_memory(v) {
            if let Some((s, a)) = crate::sysv_shm::attachment(ckpt, p.pid, v) {
                crate::sysv_shm::attach(task, s, a, v)?;
                continue;
            }
        }
        let step = format!("recreating mapping {:#x}-{:#x}", v.start, v.end);
        let mut flags = libc::MAP_FIXED_NOREPLACE
            | if v.shared {
                libc::MAP_SHARED
            } else {
                libc::MAP_PRIVATE
            };
        if v.vm_flags & vm_flags::GROWSDOWN != 0 {
            flags |= libc::MAP_GROWSDOWN;
        }
        let accounted = was_accounted(v, p, recorded);
        let mut prot = v.prot;
        if !v.shared && accounted && prot & libc::PROT_WRITE as u32 == 0 {
            prot |= libc::PROT_WRITE as u32;
            lowered.push(Lowered {
                start: v.start,
                len: v.end - v.start,
                prot: v.prot,
            });
        }
        if !v.shared && !accounted && prot & libc::PROT_WRITE as u32 != 0 {
            flags |= libc::MAP_NORESERVE;
        }
        let (fd, off) = match (v.kind, local.vmas.get(i).and_then(|f| f.as_ref())) {
            (VmaKind::File, Some(file)) => (
                transferred.get(task, pidfd, file.as_raw_fd(), &step)?,
                v.file_offset,
            ),
            // Shared anonymous memory maps its object's memfd (crate::shared_memory).
            (VmaKind::Anonymous, Some(file)) if v.shared => (
                transferred.get(task, pidfd, file.as_raw_fd(), &step)?,
                v.file_offset,
            ),
            (VmaKind::File, None) => {
                return Err(RestoreError::Inconsistent(format!(
                    "{step}: no file was prepared for it"
                )))
            }
            _ => {
                flags |= libc::MAP_ANONYMOUS;
                (u64::MAX, 0)
            }
        };
        task.log(|| format!("{step} prot {prot:#x} flags {flags:#x}"));
        let off = match task.arch {
            // mmap2 counts the offset in pages.
            psnc_ptrace::Arch::I386 => off / 4096,
            psnc_ptrace::Arch::X86_64 => off,
        };
        let args = [
            v.start,
            v.end - v.start,
            u64::from(prot),
            flags as u32 as u64,
            fd,
            off,
        ];
        calls.push(Call::new(step, Sysno::Mmap, &args));
        wanted.push(v.start);
    }
    let got = task.batch(&calls)?;
    for ((c, want), addr) in calls.iter().zip(wanted).zip(got) {
        if addr != want {
            return Err(RestoreError::Inconsistent(format!(
                "{}: the kernel mapped it at {addr:#x}",
                c.step
            )));
        }
    }
    transferred.close_all(task)?;
    Ok(lowered)
}

/// Lowers the VMAs created writable for accounting to their real protection.
pub fn lower_protections(task: &mut Task, lowered: &[Lowered]) -> Result<()> {
    let calls: Vec<Call> = lowered
        .iter()
        .map(|l| {
            let step = format!(
                "setting protection {:#x} on {:#x}-{:#x}",
                l.prot,
                l.start,
                l.start + l.len
            );
            Call::new(step, Sysno::Mprotect, &[l.start, l.len, u64::from(l.prot)])
        })
        .collect();
    task.batch(&calls)?;
    Ok(())
}

/// Writes every stored page run into the task; returns the number of bytes written.
///
/// Pieces in VMAs that are writable now (their protection, or created writable for
/// accounting: `lowered`) go with `process_vm_writev`, 1,024 pieces per call, which matters
/// when memory is many small runs (60,000 one-page VMAs: 60,000 writes otherwise); the rest,
/// and whatever that could not write, through `/proc/PID/mem`, which writes through
/// protections. Either way the cost is mostly that of faulting in fresh memory.
pub fn fill_pages(task: &mut Task, image: &Image, p: &Process, lowered: &[Lowered]) -> Result<u64> {
    fill(task, image, p, lowered, None)
}

/// [`fill_pages`] for a lazy restore: the pages `lazy` leaves to the server are not written,
/// and every chunk of the page data a written piece comes from is checked first (`chunks`).
pub fn fill_pages_except(
    task: &mut Task,
    image: &Image,
    p: &Process,
    lowered: &[Lowered],
    lazy: &crate::lazy::Plan,
    chunks: &mut psnc_format::reader::ChunkCheck<'_>,
) -> Result<u64> {
    fill(task, image, p, lowered, Some((lazy, chunks)))
}

fn fill(
    task: &mut Task,
    image: &Image,
    p: &Process,
    lowered: &[Lowered],
    mut lazy: Option<(&crate::lazy::Plan, &mut psnc_format::reader::ChunkCheck<'_>)>,
) -> Result<u64> {
    let writable = |v: &Vma| {
        v.prot & libc::PROT_WRITE as u32 != 0
            || lowered.binary_search_by_key(&v.start, |l| l.start).is_ok()
    };
    let mut total = 0;
    let mut batch: Vec<(u64, &[u8])> = Vec::new();
    let mut batch_bytes = 0usize;
    for run in &p.pages {
        let bytes = image.page_bytes(run)?;
        // A run may span adjacent VMAs (spec 8.5): each piece goes where its VMA says.
        for (v, start, end) in run_pieces(&p.vmas, run.addr, run.addr + bytes.len() as u64)? {
            if v.shared || is_special(v) {
                continue;
            }
            let parts = match lazy.as_mut() {
                None => vec![(start, end)],
                Some((plan, chunks)) => {
                    let parts = plan.eager_parts(start, end);
                    for &(a, b) in &parts {
                        chunks.check(run.data_offset + (a - run.addr), b - a)?;
                    }
                    parts
                }
            };
            for (start, end) in parts {
                let piece = &bytes[(start - run.addr) as usize..(end - run.addr) as usize];
                total += piece.len() as u64;
                if !writable(v) {
                    task.write(
                        &format!("writing {} pages at {start:#x}", piece.len() / 4096),
                        start,
                        piece,
                    )?;
                    continue;
                }
                batch.push((start, piece));
                batch_bytes += piece.len();
                if batch.len() >= 1024 || batch_bytes >= 16 << 20 {
                    write_batch(task, &batch)?;
                    batch.clear();
                    batch_bytes = 0;
                }
            }
        }
    }
    write_batch(task, &batch)?;
    Ok(total)
}

/// Writes `pieces` with `process_vm_writev`, and what it could not write through
/// `/proc/PID/mem`.
fn write_batch(task: &Task, pieces: &[(u64, &[u8])]) -> Result<()> {
    let mut done = psnc_ptrace::vm_write_many(task.pid, pieces).unwrap_or(0);
    for &(addr, bytes) in pieces {
        if done >= bytes.len() {
            done -= bytes.len();
            continue;
        }
        let skip = std::mem::take(&mut done);
        let at = addr + skip as u64;
        task.write(
            &format!("writing {} bytes at {at:#x}", bytes.len() - skip),
            at,
            &bytes[skip..],
        )?;
    }
    Ok(())
}

/// The VMAs (sorted, disjoint) that `[start, end)` lies in, each with the part of the range
/// inside it; an error when some of the range is in none.
pub fn run_pieces(vmas: &[Vma], start: u64, end: u64) -> Result<Vec<(&Vma, u64, u64)>> {
    let mut out = Vec::new();
    let mut at = start;
    let first = vmas.partition_point(|v| v.end <= start);
    for v in &vmas[first..] {
        if at >= end {
            break;
        }
        if v.start > at {
            break;
        }
        let e = v.end.min(end);
        out.push((v, at, e));
        at = e;
    }
    if at < end || start >= end {
        return Err(RestoreError::Inconsistent(format!(
            "page run at {start:#x} ({} pages) lies outside every mapping",
            end.saturating_sub(start) / 4096
        )));
    }
    Ok(out)
}

/// The madvise advice that reproduces each `vm_flags` bit, in the order it is applied.
const ADVICE: &[(u32, i32, &str)] = &[
    (vm_flags::DONTDUMP, libc::MADV_DONTDUMP, "MADV_DONTDUMP"),
    (vm_flags::DONTFORK, libc::MADV_DONTFORK, "MADV_DONTFORK"),
    (
        vm_flags::WIPEONFORK,
        libc::MADV_WIPEONFORK,
        "MADV_WIPEONFORK",
    ),
    (vm_flags::HUGEPAGE, libc::MADV_HUGEPAGE, "MADV_HUGEPAGE"),
    (
        vm_flags::NOHUGEPAGE,
        libc::MADV_NOHUGEPAGE,
        "MADV_NOHUGEPAGE",
    ),
    (vm_flags::MERGEABLE, libc::MADV_MERGEABLE, "MADV_MERGEABLE"),
    (vm_flags::RANDOM, libc::MADV_RANDOM, "MADV_RANDOM"),
    (
        vm_flags::SEQUENTIAL,
        libc::MADV_SEQUENTIAL,
        "MADV_SEQUENTIAL",
    ),
];

/// Replays madvise advice and mlock state, after the pages are in (mlock populates the rest).
/// The calls run as one batch.
pub fn advise(task: &mut Task, p: &Process) -> Result<()> {
    let mut calls = Vec::new();
    // Whether an EINVAL of each call is harmless: THP or KSM may be compiled out or disabled
    // here, and the advice is then meaningless.
    let mut optional = Vec::new();
    for v in p.vmas.iter().filter(|v| !is_special(v)) {
        let len = v.end - v.start;
        for &(bit, advice, name) in ADVICE {
            if v.vm_flags & bit == 0 {
                continue;
            }
            let step = format!("{name} on {:#x}-{:#x}", v.start, v.end);
            calls.push(Call::new(
                step,
                Sysno::Madvise,
                &[v.start, len, advice as u64],
            ));
            optional.push(matches!(
                advice,
                libc::MADV_HUGEPAGE | libc::MADV_NOHUGEPAGE | libc::MADV_MERGEABLE
            ));
        }
        if v.vm_flags & vm_flags::LOCKONFAULT != 0 {
            let step = format!("mlock2(MLOCK_ONFAULT) on {:#x}-{:#x}", v.start, v.end);
            calls.push(Call::new(step, Sysno::Mlock2, &[v.start, len, 1]));
            optional.push(false);
        } else if v.vm_flags & vm_flags::LOCKED != 0 {
            let step = format!("mlock on {:#x}-{:#x}", v.start, v.end);
            calls.push(Call::new(step, Sysno::Mlock, &[v.start, len]));
            optional.push(false);
        }
    }
    let results = task.batch_raw(&calls)?;
    for ((c, r), optional) in calls.iter().zip(results).zip(optional) {
        if !(optional && r == -i64::from(libc::EINVAL)) {
            task.checked(&c.step, c.sysno, r)?;
        }
    }
    Ok(())
}

/// Finds a system-call instruction of the task's mode inside the image's own executable
/// mappings (the vdso first, it is small and always has one), outside the restore's region.
pub fn find_image_syscall(task: &Task, p: &Process, region: Region) -> Result<u64> {
    let pat = task.arch.syscall_insn();
    let mut vmas: Vec<&Vma> = p
        .vmas
        .iter()
        .filter(|v| {
            v.prot & libc::PROT_EXEC as u32 != 0
                && v.kind != VmaKind::Vsyscall
                && !region.overlaps(v.start, v.end)
        })
        .collect();
    vmas.sort_by_key(|v| v.kind != VmaKind::Vdso);
    const CHUNK: u64 = 1 << 20;
    let mut buf = vec![0u8; CHUNK as usize];
    for v in vmas {
        let mut addr = v.start;
        while addr < v.end {
            let len = (v.end - addr).min(CHUNK) as usize;
            let n = task
                .mem
                .read_at(addr, &mut buf[..len])
                .map_err(task.step_err("searching for a syscall instruction"))?;
            if let Some(i) = buf[..n].windows(2).position(|w| w == pat) {
                return Ok(addr + i as u64);
            }
            if n < 2 || n < len {
                break;
            }
            addr += n as u64 - 1;
        }
    }
    Err(RestoreError::Inconsistent(format!(
        "no executable mapping of the image holds a {:?} system-call instruction",
        task.arch
    )))
}

/// Sets the mm fields, brk and auxv with `PR_SET_MM_MAP`, and the exe link when `exe_fd` is given.
pub fn set_mm(task: &mut Task, p: &Process, exe_fd: Option<u64>) -> Result<()> {
    let step = if exe_fd.is_some() {
        "setting the executable (PR_SET_MM_MAP)"
    } else {
        "setting the mm fields (PR_SET_MM_MAP)"
    };
    let m = &p.mm;
    let auxv_addr = task.put(step, 4096, &p.auxv)?;
    let mut map = Vec::with_capacity(PR_SET_MM_MAP_SIZE as usize);
    for v in [
        m.start_code,
        m.end_code,
        m.start_data,
        m.end_data,
        m.start_brk,
        m.brk,
        m.start_stack,
        m.arg_start,
        m.arg_end,
        m.env_start,
        m.env_end,
        auxv_addr,
    ] {
        map.extend_from_slice(&v.to_le_bytes());
    }
    map.extend_from_slice(&(p.auxv.len() as u32).to_le_bytes());
    map.extend_from_slice(&exe_fd.map_or(u32::MAX, |f| f as u32).to_le_bytes());
    let addr = task.put(step, 0, &map)?;
    task.log(|| {
        format!(
            "{step}: brk {:#x}..{:#x}, {} auxv bytes",
            m.start_brk,
            m.brk,
            p.auxv.len()
        )
    });
    task.call(
        step,
        Sysno::Prctl,
        &[PR_SET_MM, PR_SET_MM_MAP, addr, PR_SET_MM_MAP_SIZE, 0],
    )?;
    Ok(())
}

/// Unmaps the scratch area: the last remote call of the rebuild.
pub fn unmap_scratch(task: &mut Task) -> Result<()> {
    let (addr, len) = task.scratch;
    // The batch loop's page lies right below the scratch area: one munmap takes both.
    let (addr, len) = match task.batch.take() {
        Some(code) if code + crate::stub::PAGE_SIZE == addr => (code, len + crate::stub::PAGE_SIZE),
        _ => (addr, len),
    };
    task.call("unmapping the scratch area", Sysno::Munmap, &[addr, len])?;
    task.scratch = (0, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use psnc_format::model::PageRun;

    fn vma(start: u64, prot: i32, shared: bool, flags: u32) -> Vma {
        Vma {
            start,
            end: start + 0x1000,
            prot: prot as u32,
            shared,
            vm_flags: flags,
            ..Vma::default()
        }
    }

    #[test]
    fn accounting_inferred_without_the_recorded_bit() {
        let relro = vma(0x2000, libc::PROT_READ, false, 0);
        let text = vma(0x1000, libc::PROT_READ, false, 0);
        let data = vma(0x3000, libc::PROT_READ | libc::PROT_WRITE, false, 0);
        let shared = vma(0x4000, libc::PROT_READ | libc::PROT_WRITE, true, 0);
        let p = Process {
            vmas: vec![text.clone(), relro.clone(), data.clone(), shared.clone()],
            pages: vec![PageRun {
                addr: 0x2000,
                pages: 1,
                data_offset: 0,
            }],
            ..Process::default()
        };
        assert!(!records_account(&p));
        assert!(
            was_accounted(&relro, &p, false),
            "read-only with COWed pages was writable"
        );
        assert!(!was_accounted(&text, &p, false));
        assert!(was_accounted(&data, &p, false));
        assert!(!was_accounted(&shared, &p, false));
    }

    #[test]
    fn a_run_over_adjacent_vmas_is_cut_at_their_bounds_and_a_gap_refused() {
        let a = vma(0x1000, libc::PROT_NONE, false, 0);
        let b = Vma {
            end: 0x4000,
            ..vma(0x2000, libc::PROT_READ | libc::PROT_WRITE, false, 0)
        };
        let far = vma(0x6000, libc::PROT_READ, false, 0);
        let vmas = vec![a, b, far];
        let pieces: Vec<(u64, u64, u64)> = run_pieces(&vmas, 0x1000, 0x3000)
            .unwrap()
            .into_iter()
            .map(|(v, s, e)| (v.start, s, e))
            .collect();
        assert_eq!(
            pieces,
            vec![(0x1000, 0x1000, 0x2000), (0x2000, 0x2000, 0x3000)]
        );
        assert!(
            run_pieces(&vmas, 0x3000, 0x5000).is_err(),
            "a run into the gap"
        );
        assert!(
            run_pieces(&vmas, 0x5000, 0x7000).is_err(),
            "a run from the gap"
        );
        assert!(run_pieces(&vmas, 0x6000, 0x7000).is_ok());
        assert!(
            run_pieces(&vmas, 0x8000, 0x9000).is_err(),
            "a run past every VMA"
        );
    }

    #[test]
    fn recorded_bit_wins() {
        let guard = vma(0x1000, libc::PROT_NONE, false, ACCOUNT);
        let noreserve = vma(0x2000, libc::PROT_READ | libc::PROT_WRITE, false, 0);
        let p = Process {
            vmas: vec![guard.clone(), noreserve.clone()],
            ..Process::default()
        };
        assert!(records_account(&p));
        assert!(was_accounted(&guard, &p, true));
        assert!(!was_accounted(&noreserve, &p, true));
    }
}
