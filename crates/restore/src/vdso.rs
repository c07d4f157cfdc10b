//! The vdso rule, written once: a restored process gets this kernel's vdso at the image's address,
//! and only when this kernel's vdso bytes are the image's.
//!
//! glibc caches pointers into the vdso (`clock_gettime` and friends), and a thread stopped in a
//! vdso function has its instruction pointer inside it, so the same size is not enough: the bytes
//! must be identical. The vdso reads the kernel's data pages (`[vvar]`, and `[vvar_vclock]` since 6.13)
//! at fixed offsets from itself, so the whole group moves together and keeps its relative layout.
//! The stub gets a fresh group from exec; the rebuild moves it, member by member, through the
//! restore's parking area to the image's addresses with `mremap` (which keeps the kernel's record
//! of where the vdso is, used for signal return, in step). `arch_prctl(ARCH_MAP_VDSO_*)` is not
//! used: it fails while a vdso is mapped, takes the address as a hint only, and a compat task
//! cannot reach it.
//!
//! A 64-bit image is compared with the restore tool's own vdso before anything is created: the
//! stub will get that same vdso. A compat (i386) task gets the 32-bit vdso, which the tool does not
//! have mapped; it is compared with the stub's right after the exec, before any of the image is
//! built.

use std::os::unix::fs::FileExt;

use psnc_format::model::{Arch, Process, VmaKind};
use psnc_format::Image;

use psnc_ptrace::Sysno;

use crate::error::{RestoreError, Result};
use crate::placement::{Region, PARK_SIZE};
use crate::remote::Task;
use psnc_proc::MapsEntry;

/// One member of a vdso group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `[vvar]`, `[vvar_vclock]` or `[vdso]`.
    pub name: &'static str,
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

/// The `[vvar]`, `[vvar_vclock]` and `[vdso]` mappings of one task, sorted by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdsoGroup {
    /// The members, sorted by address; exactly one is `[vdso]`.
    pub members: Vec<Member>,
}

const VDSO: &str = "[vdso]";
const VVAR: &str = "[vvar]";
const VCLOCK: &str = "[vvar_vclock]";

fn member_name(name: &str) -> Option<&'static str> {
    match name {
        VDSO => Some(VDSO),
        VVAR => Some(VVAR),
        VCLOCK => Some(VCLOCK),
        _ => None,
    }
}

impl VdsoGroup {
    /// The group of a captured process, `None` when it had no vdso.
    pub fn from_process(p: &Process) -> Option<VdsoGroup> {
        let members: Vec<Member> = p
            .vmas
            .iter()
            .filter_map(|v| {
                let name = match v.kind {
                    VmaKind::Vdso => VDSO,
                    VmaKind::Vvar => VVAR,
                    VmaKind::VvarVclock => VCLOCK,
                    _ => return None,
                };
                Some(Member {
                    name,
                    start: v.start,
                    end: v.end,
                })
            })
            .collect();
        Self::from_members(members)
    }

    /// The group in a parsed `/proc/PID/maps`, `None` when the task has no vdso.
    pub fn from_maps(maps: &[MapsEntry]) -> Option<VdsoGroup> {
        let members = maps
            .iter()
            .filter_map(|m| {
                Some(Member {
                    name: member_name(&m.path)?,
                    start: m.start,
                    end: m.end,
                })
            })
            .collect();
        Self::from_members(members)
    }

    fn from_members(mut members: Vec<Member>) -> Option<VdsoGroup> {
        members.sort_by_key(|m| m.start);
        (members.iter().filter(|m| m.name == VDSO).count() == 1).then_some(VdsoGroup { members })
    }

    /// The `[vdso]` member.
    pub fn vdso(&self) -> &Member {
        // from_members guarantees exactly one.
        self.members
            .iter()
            .find(|m| m.name == VDSO)
            .unwrap_or(&self.members[0])
    }

    /// Lowest address of the group.
    pub fn start(&self) -> u64 {
        self.members.first().map_or(0, |m| m.start)
    }

    /// Highest end address of the group.
    pub fn end(&self) -> u64 {
        self.members.iter().map(|m| m.end).max().unwrap_or(0)
    }

    /// The layout relative to the vdso: (name, offset from the vdso start, length) per member.
    pub fn shape(&self) -> Vec<(&'static str, i128, u64)> {
        let base = i128::from(self.vdso().start);
        self.members
            .iter()
            .map(|m| (m.name, i128::from(m.start) - base, m.end - m.start))
            .collect()
    }
}

/// Checks an image's vdso against this machine's and returns its group (`None` without a vdso).
///
/// For a 64-bit image this compares with the restore tool's own vdso; for an i386 image only the
/// presence of the bytes is checked here, and [`compare`] runs against the stub's vdso later.
pub fn check_image_vdso(image: &Image, p: &Process) -> Result<Option<VdsoGroup>> {
    let Some(group) = VdsoGroup::from_process(p) else {
        return Ok(None);
    };
    let stored = stored_vdso_bytes(image, p, &group)?;
    if p.arch == Arch::X86_64 {
        let host = VdsoGroup::from_maps(&own_maps()?);
        let host_bytes = match &host {
            Some(h) => read_own_memory(h.vdso().start, h.vdso().end)?,
            None => Vec::new(),
        };
        compare(
            &group,
            &stored,
            host.as_ref(),
            &host_bytes,
            &image.checkpoint().identity.host.kernel_release,
        )?;
    }
    Ok(Some(group))
}

/// The vdso bytes stored in the image (its pages are stored for exactly this comparison).
pub fn stored_vdso_bytes(image: &Image, p: &Process, group: &VdsoGroup) -> Result<Vec<u8>> {
    let v = group.vdso();
    let mut out = vec![0u8; (v.end - v.start) as usize];
    let mut covered = 0u64;
    for run in &p.pages {
        let run_end = run.addr + run.pages * 4096;
        if run_end <= v.start || run.addr >= v.end {
            continue;
        }
        let bytes = image.page_bytes(run)?;
        let from = run.addr.max(v.start);
        let to = run_end.min(v.end);
        let src = &bytes[(from - run.addr) as usize..(to - run.addr) as usize];
        out[(from - v.start) as usize..(to - v.start) as usize].copy_from_slice(src);
        covered += to - from;
    }
    if covered != v.end - v.start {
        return Err(RestoreError::Inconsistent(format!(
            "the [vdso] at {:#x} is not stored completely ({covered} of {} bytes), so it cannot be \
             compared with this kernel's",
            v.start,
            v.end - v.start
        )));
    }
    Ok(out)
}

/// The restore tool's own `/proc/self/maps`.
fn own_maps() -> Result<Vec<MapsEntry>> {
    psnc_proc::ProcDir::current()
        .maps_lossy()
        .map_err(|e| RestoreError::Io {
            what: "reading".into(),
            path: e.path().display().to_string(),
            source: e.into(),
        })
}

/// Reads `[start, end)` of the restore tool's own address space through `/proc/self/mem`.
fn read_own_memory(start: u64, end: u64) -> Result<Vec<u8>> {
    let io = |source| RestoreError::Io {
        what: "reading".into(),
        path: "/proc/self/mem".into(),
        source,
    };
    let f = std::fs::File::open("/proc/self/mem").map_err(io)?;
    let mut buf = vec![0u8; (end - start) as usize];
    f.read_exact_at(&mut buf, start).map_err(io)?;
    Ok(buf)
}

/// Compares the image's group and vdso bytes with a live task's (`host`, `host_bytes`).
pub fn compare(
    image: &VdsoGroup,
    image_bytes: &[u8],
    host: Option<&VdsoGroup>,
    host_bytes: &[u8],
    kernel: &str,
) -> Result<()> {
    let addr = image.vdso().start;
    let mismatch = |detail: String| RestoreError::VdsoMismatch {
        addr,
        detail,
        kernel: kernel.to_string(),
    };
    let Some(host) = host else {
        return Err(mismatch("this kernel maps no vdso (vdso=0?)".into()));
    };
    if image_bytes.len() != host_bytes.len() {
        return Err(mismatch(format!(
            "{} bytes in the image, {} here",
            image_bytes.len(),
            host_bytes.len()
        )));
    }
    if let Some(off) = image_bytes.iter().zip(host_bytes).position(|(a, b)| a != b) {
        return Err(mismatch(format!("first difference at offset {off:#x}")));
    }
    if image.shape() != host.shape() {
        return Err(mismatch(format!(
            "the data pages around it are laid out differently: image {:?}, here {:?}",
            image.shape(),
            host.shape()
        )));
    }
    Ok(())
}

/// Moves the stub's vdso group to the image's addresses, or unmaps it when the image had no vdso.
/// `image_bytes` are the image's vdso bytes when they still need comparing with the stub's (i386).
pub fn place(
    task: &mut Task,
    stub: Option<&VdsoGroup>,
    image: Option<&VdsoGroup>,
    region: Region,
    image_bytes: Option<&[u8]>,
    kernel: &str,
) -> Result<()> {
    let Some(image) = image else {
        for m in stub.map(|g| g.members.as_slice()).unwrap_or_default() {
            let step = format!("unmapping the stub's {} (the image has no vdso)", m.name);
            task.call(&step, Sysno::Munmap, &[m.start, m.end - m.start])?;
        }
        return Ok(());
    };
    let bytes = match (image_bytes, stub) {
        (Some(_), Some(s)) => {
            let v = s.vdso();
            let mut b = vec![0u8; (v.end - v.start) as usize];
            task.mem
                .read_exact_at(v.start, &mut b)
                .map_err(task.step_err("reading the stub's vdso"))?;
            b
        }
        _ => Vec::new(),
    };
    match image_bytes {
        Some(ib) => compare(image, ib, stub, &bytes, kernel)?,
        None => {
            // Bytes were compared with the tool's own vdso; the stub has the same one, but check
            // the layout it actually got.
            let Some(s) = stub else {
                return Err(RestoreError::VdsoMismatch {
                    addr: image.vdso().start,
                    detail: "the stub has no vdso".into(),
                    kernel: kernel.to_string(),
                });
            };
            if s.shape() != image.shape() {
                return Err(RestoreError::VdsoMismatch {
                    addr: image.vdso().start,
                    detail: format!("layout: image {:?}, stub {:?}", image.shape(), s.shape()),
                    kernel: kernel.to_string(),
                });
            }
        }
    }
    let Some(stub) = stub else { return Ok(()) };
    if stub.members == image.members {
        return Ok(());
    }
    if stub.end() - stub.start() > PARK_SIZE {
        return Err(RestoreError::Stub {
            pid: task.pid as u32,
            why: format!(
                "the vdso group spans {:#x} bytes, more than the parking area",
                stub.end() - stub.start()
            ),
        });
    }
    // Through the parking area, so that no move lands on a member not yet moved.
    let mut parked = Vec::new();
    for m in &stub.members {
        let to = region.park() + (m.start - stub.start());
        mremap(
            task,
            m.start,
            m.end - m.start,
            to,
            &format!("parking the stub's {}", m.name),
        )?;
        parked.push((m, to));
    }
    for (m, from) in parked {
        let Some(dest) = image.members.iter().find(|x| x.name == m.name) else {
            continue;
        };
        task.log(|| format!("moving {} to {:#x}", m.name, dest.start));
        mremap(
            task,
            from,
            m.end - m.start,
            dest.start,
            &format!("moving {} to {:#x}", m.name, dest.start),
        )?;
    }
    Ok(())
}

fn mremap(task: &mut Task, from: u64, len: u64, to: u64, step: &str) -> Result<()> {
    let flags = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
    let got = task.call(step, Sysno::Mremap, &[from, len, len, flags, to])?;
    if got != to {
        return Err(RestoreError::Stub {
            pid: task.pid as u32,
            why: format!("{step}: landed at {got:#x}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(base: u64) -> VdsoGroup {
        VdsoGroup {
            members: vec![
                Member {
                    name: VVAR,
                    start: base,
                    end: base + 0x4000,
                },
                Member {
                    name: VCLOCK,
                    start: base + 0x4000,
                    end: base + 0x6000,
                },
                Member {
                    name: VDSO,
                    start: base + 0x6000,
                    end: base + 0x8000,
                },
            ],
        }
    }

    #[test]
    fn same_bytes_and_shape_at_another_address() {
        let bytes = vec![7u8; 0x2000];
        assert!(compare(
            &group(0x7000_0000),
            &bytes,
            Some(&group(0x1000_0000)),
            &bytes,
            "k"
        )
        .is_ok());
    }

    #[test]
    fn byte_difference_is_named() {
        let a = vec![7u8; 0x2000];
        let mut b = a.clone();
        b[0x123] = 0;
        let err = compare(&group(0), &a, Some(&group(0)), &b, "6.1").unwrap_err();
        assert!(
            matches!(&err, RestoreError::VdsoMismatch { addr: 0x6000, detail, .. } if detail.contains("0x123"))
        );
    }

    #[test]
    fn layout_difference_is_refused() {
        let bytes = vec![7u8; 0x2000];
        let mut other = group(0);
        other.members.remove(1);
        let err = compare(&group(0), &bytes, Some(&other), &bytes, "k").unwrap_err();
        assert!(matches!(err, RestoreError::VdsoMismatch { .. }));
    }

    #[test]
    fn own_vdso_is_found() {
        let g = VdsoGroup::from_maps(&own_maps().unwrap());
        assert!(g.is_some(), "this test process has a [vdso]");
    }
}
