//! System V shared memory: every segment of the image is made again before any process,
//! with its identifier (`/proc/sys/kernel/shm_next_id`), key, size, owner and mode, and filled
//! with its stored pages through an attachment of the tool's own. Each VMA that attached it, in
//! every process, attaches it again with a remote `shmat` ([`attach`]), so the segment's attach
//! count and `/proc/PID/maps` come back as they were.
//!
//! A VMA that was a whole attachment is attached at its address (`shmat` refuses an address
//! where anything is mapped: never a silent replacement). A VMA that was a part of one (an
//! `munmap` or `mprotect` of some pages) is attached anywhere and the part is moved into place
//! with `mremap`, the rest detached; its protection is then set with `mprotect`.
//!
//! A segment marked for removal at capture (`SHM_DEST`) is marked again once every process has
//! attached it ([`Segments::commit`]). If the restore fails, every segment it made is removed
//! ([`Segments`]'s drop). The creator ids (`cuid`, `cgid`), the times and the creator and last
//! PIDs cannot be set and are the restore tool's.
//!
//! Model: [`SysvShm`] with its [`SysvAttach`]es. Capture: `crates/capture/src/sysv_shm.rs`.

use nix::errno::Errno;
use psnc_format::model::{Checkpoint, SysvAttach, SysvShm, Vma};
use psnc_format::Image;
use psnc_ptrace::shm;
use psnc_ptrace::{PtraceError, Sysno};

use crate::error::{RestoreError, Result};
use crate::remote::Task;

const PAGE: u64 = 4096;

/// The segment and attachment of VMA `v` of process `pid`, if it attaches one.
pub fn attachment<'a>(
    ckpt: &'a Checkpoint,
    pid: u32,
    v: &Vma,
) -> Option<(&'a SysvShm, &'a SysvAttach)> {
    ckpt.sysv_shm.iter().find_map(|s| {
        s.attachments
            .iter()
            .find(|a| a.pid == pid && a.start == v.start)
            .map(|a| (s, a))
    })
}

/// Refuses, before anything is created, a segment whose identifier or key is taken in this IPC
/// namespace.
pub fn check_free(ckpt: &Checkpoint) -> Result<()> {
    for s in &ckpt.sysv_shm {
        let in_use = |why: String| RestoreError::SysvShmInUse {
            shmid: s.shmid,
            key: s.key,
            why,
        };
        if let Ok(st) = shm::stat(s.shmid) {
            if is_leftover(s, &st) {
                continue;
            }
            return Err(in_use(format!(
                "the identifier is taken by a segment of {} bytes (key {:#010x}, owner {}, {} \
                 attachment(s))",
                st.size, st.key, st.uid, st.nattch
            )));
        }
        if s.key != 0 {
            match shm::get(s.key, 0, 0) {
                Err(PtraceError::Syscall {
                    errno: Errno::ENOENT,
                    ..
                }) => {}
                Ok(other) => {
                    return Err(in_use(format!("the key is taken by segment {other}")));
                }
                Err(e) => return Err(in_use(format!("the key is taken ({e})"))),
            }
        }
    }
    Ok(())
}

/// Whether segment `st`, found with the identifier of `s`, is `s` itself left behind by the
/// captured processes (`psnc-capture --kill`: a segment outlives its last detach unless removed):
/// same key, size and owner, attached by no one. Restore replaces it with the image's.
fn is_leftover(s: &SysvShm, st: &shm::ShmStat) -> bool {
    st.key == s.key
        && st.size == s.size
        && st.uid == s.uid
        && st.nattch == 0
        && st.mode & shm::SHM_DEST == 0
}

/// The segments this restore made; removed on drop unless [`Segments::commit`]ted.
#[derive(Debug, Default)]
pub struct Segments {
    made: Vec<(i32, bool)>,
    committed: bool,
}

impl Segments {
    /// Makes every segment of `image`: same identifier, key, size, owner and mode, its stored
    /// pages written, locked when it was.
    pub fn create(image: &Image) -> Result<Segments> {
        let mut made = Segments::default();
        for s in &image.checkpoint().sysv_shm {
            made.create_one(image, s)?;
        }
        Ok(made)
    }

    fn create_one(&mut self, image: &Image, s: &SysvShm) -> Result<()> {
        let in_use = |why: String| RestoreError::SysvShmInUse {
            shmid: s.shmid,
            key: s.key,
            why,
        };
        let what = format!("System V segment {}", s.shmid);
        if let Ok(st) = shm::stat(s.shmid) {
            if is_leftover(s, &st) {
                shm::remove(s.shmid)
                    .map_err(|e| step_err(&format!("removing the leftover {what}"), e))?;
                eprintln!(
                    "psnc-restore: {what} (key {:#010x}), left unattached since the capture, is \
                     replaced by the image's",
                    s.key
                );
            }
        }
        match shm::create_with_id(s.shmid, s.key, s.size, s.mode | 0o600) {
            Ok(()) => {}
            Err(PtraceError::Syscall {
                errno: Errno::EPERM | Errno::EACCES,
                ..
            }) => {
                return Err(RestoreError::NotPermitted {
                    what: format!(
                        "making {what} with its identifier (writing {})",
                        shm::SHM_NEXT_ID
                    ),
                    need: "CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over the IPC namespace: run \
                           psnc-restore as root"
                        .into(),
                });
            }
            Err(PtraceError::Syscall {
                errno: Errno::ENOSPC,
                ..
            }) => {
                return Err(in_use(
                    "its slot is taken by another segment (same index, another sequence number)"
                        .into(),
                ))
            }
            Err(PtraceError::Syscall {
                errno: Errno::EEXIST,
                ..
            }) => return Err(in_use("its key was taken after the checks".into())),
            Err(PtraceError::Syscall {
                errno: Errno::EADDRINUSE,
                ..
            }) => {
                return Err(in_use(
                    "another process made an IPC object in the same instant".into(),
                ))
            }
            Err(e) => return Err(step_err(&format!("making {what}"), e)),
        }
        self.made.push((s.shmid, s.removed));
        {
            let len = s.size.div_ceil(PAGE) * PAGE;
            let mut at = shm::Attached::new(s.shmid, len, false)
                .map_err(|e| step_err(&format!("attaching {what} in the restore tool"), e))?;
            for run in &s.pages {
                let bytes = image.page_bytes(run)?;
                at.write_at(run.addr, bytes)
                    .map_err(|e| step_err(&format!("filling {what}"), e))?;
            }
        }
        shm::set_owner(s.shmid, s.uid, s.gid, s.mode).map_err(|e| match e {
            PtraceError::Syscall {
                errno: Errno::EPERM,
                ..
            } => RestoreError::NotPermitted {
                what: format!("giving {what} its owner {}:{}", s.uid, s.gid),
                need: "root (CAP_SYS_ADMIN) for a segment another user owned".into(),
            },
            e => step_err(&format!("setting the owner and mode of {what}"), e),
        })?;
        if s.locked {
            shm::lock(s.shmid).map_err(|e| match e {
                PtraceError::Syscall {
                    errno: Errno::EPERM | Errno::ENOMEM,
                    ..
                } => RestoreError::NotPermitted {
                    what: format!("locking {what} in memory (SHM_LOCK)"),
                    need: "CAP_IPC_LOCK, or an RLIMIT_MEMLOCK that holds it".into(),
                },
                e => step_err(&format!("locking {what}"), e),
            })?;
        }
        Ok(())
    }

    /// Every process has attached its segments: those removed at capture are marked for
    /// removal again (gone at their last detach); the others stay.
    pub fn commit(mut self) -> Result<()> {
        self.committed = true;
        for (shmid, removed) in std::mem::take(&mut self.made) {
            if removed {
                shm::remove(shmid).map_err(|e| {
                    step_err(&format!("marking System V segment {shmid} removed"), e)
                })?;
            }
        }
        Ok(())
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        if !self.committed {
            for (shmid, _) in &self.made {
                let _ = shm::remove(*shmid);
            }
        }
    }
}

fn step_err(step: &str, source: PtraceError) -> RestoreError {
    RestoreError::Step {
        pid: 0,
        step: step.to_string(),
        source,
    }
}

/// Attaches segment `s` in the task as VMA `v` (attachment `a`) was: at its address, with its
/// offset into the segment, its length and protection.
pub fn attach(task: &mut Task, s: &SysvShm, a: &SysvAttach, v: &Vma) -> Result<()> {
    let step = format!(
        "attaching System V segment {} at {:#x}-{:#x} (offset {:#x})",
        s.shmid, v.start, v.end, v.file_offset
    );
    let seg_len = s.size.div_ceil(PAGE) * PAGE;
    let len = v.end - v.start;
    let mut flags = if a.read_only { shm::SHM_RDONLY } else { 0 };
    if v.prot & libc::PROT_EXEC as u32 != 0 {
        flags |= shm::SHM_EXEC;
    }
    let flags = flags as u64;
    let whole = v.file_offset == 0 && len == seg_len;
    if !v.file_offset.checked_add(len).is_some_and(|e| e <= seg_len) {
        return Err(RestoreError::Inconsistent(format!(
            "{step}: past the segment's {seg_len:#x} bytes"
        )));
    }
    task.log(|| step.clone());
    if whole {
        let addr = task.call(&step, Sysno::Shmat, &[s.shmid as u64, v.start, flags])?;
        if addr != v.start {
            return Err(RestoreError::Inconsistent(format!(
                "{step}: the kernel attached it at {addr:#x}"
            )));
        }
    } else {
        let base = task.call(&step, Sysno::Shmat, &[s.shmid as u64, 0, flags])?;
        let part = base + v.file_offset;
        let moved = task.call(
            &step,
            Sysno::Mremap,
            &[
                part,
                len,
                len,
                (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                v.start,
            ],
        )?;
        if moved != v.start {
            return Err(RestoreError::Inconsistent(format!(
                "{step}: mremap moved it to {moved:#x}"
            )));
        }
        // What is left of the attachment around the moved part.
        if v.file_offset > 0 {
            task.call(&step, Sysno::Munmap, &[base, v.file_offset])?;
        }
        let tail = v.file_offset + len;
        if tail < seg_len {
            task.call(&step, Sysno::Munmap, &[base + tail, seg_len - tail])?;
        }
    }
    let given = if a.read_only {
        libc::PROT_READ as u32
    } else {
        (libc::PROT_READ | libc::PROT_WRITE) as u32
    } | (v.prot & libc::PROT_EXEC as u32);
    if v.prot != given {
        task.call(&step, Sysno::Mprotect, &[v.start, len, u64::from(v.prot)])?;
    }
    Ok(())
}
