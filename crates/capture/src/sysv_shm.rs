//! System V shared memory (`shmget`/`shmat`): the segments the processes of the tree attach,
//! each stored once however many processes and VMAs attach it.
//!
//! `/proc/PID/maps` shows an attachment as `/SYSV<key in hex> (deleted)`, its inode being the
//! segment's identifier (`shmid`) and its offset the one into the segment (a VMA may be a part
//! of an attachment, split by an `mprotect` or left by an `munmap`). The segment's key, owner,
//! mode, size and state (`SHM_DEST`: removed while attached; `SHM_LOCKED`) come from
//! `shmctl(IPC_STAT)` run by the tool, which must therefore be in the processes' IPC namespace.
//! Its pages are read through `/proc/PID/map_files/START-END`, which opens the segment's shmem
//! file: `SEEK_DATA`/`SEEK_HOLE` give the pages that exist, the rest was never touched and reads
//! as zeros ([`crate::shared_memory::read_object`]). An attachment is read-only when its VMA
//! may never be written (no `mw` in smaps: `shmat(SHM_RDONLY)`).
//!
//! Segments no process of the tree attaches belong to the IPC namespace, not to the processes,
//! and are not captured (CRIU dumps them with the namespace).
//!
//! Model: [`SysvShm`] with its [`SysvAttach`]es; the VMA stays a shared
//! [`psnc_format::model::VmaKind::Anonymous`] one whose `file_offset` is the offset into the
//! segment. Restore: `crates/restore/src/sysv_shm.rs`.

use std::collections::HashMap;
use std::fs::File;

use psnc_format::model::{PageRun, SysvAttach, SysvShm};
use psnc_ptrace::shm;

use crate::error::{CaptureError, Result};
use crate::procfs::{MapsEntry, ProcDir};
use crate::shared_memory::read_object;

/// Whether a maps entry is a System V shared memory attachment.
pub fn is_attachment(entry: &MapsEntry) -> bool {
    entry.shared && entry.path.starts_with("/SYSV")
}

/// The segments met so far in the captured tree, by identifier.
#[derive(Debug, Default)]
pub struct Segments {
    by_id: HashMap<i32, usize>,
    segments: Vec<SysvShm>,
    ipc_ns: Option<String>,
}

impl Segments {
    /// No segment yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that process `proc_dir` attaches a segment with VMA `entry` (`may_write`: its
    /// VMA has `VM_MAYWRITE`); the first time the segment is met, its pages are read and handed
    /// to `store` (offset into the segment, bytes), which returns their run. `check` runs
    /// between buffers (the tool's interrupt check).
    pub fn add(
        &mut self,
        proc_dir: &ProcDir,
        entry: &MapsEntry,
        may_write: bool,
        store: &mut dyn FnMut(u64, &[u8]) -> Result<PageRun>,
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let pid = proc_dir.pid();
        self.check_namespace(proc_dir)?;
        let shmid = i32::try_from(entry.inode).map_err(|_| CaptureError::Unsupported {
            pid,
            what: format!("mapping {:#x}-{:#x}", entry.start, entry.end),
            kind: format!(
                "{} with the identifier {} out of range",
                entry.path, entry.inode
            ),
        })?;
        let attach = SysvAttach {
            pid: pid as u32,
            start: entry.start,
            read_only: !may_write,
        };
        if let Some(&i) = self.by_id.get(&shmid) {
            self.segments[i].attachments.push(attach);
            return Ok(());
        }
        let st = shm::stat(shmid).map_err(|source| CaptureError::Trace {
            pid,
            tid: pid,
            what: format!(
                "reading System V segment {shmid} (attached at {:#x}) with shmctl(IPC_STAT)",
                entry.start
            ),
            source,
        })?;
        let path = proc_dir.path(&entry.map_files_name());
        let io = |e: std::io::Error| CaptureError::File {
            pid,
            what: format!(
                "System V segment {shmid} attached at {:#x}-{:#x}",
                entry.start, entry.end
            ),
            path: path.display().to_string(),
            source: e,
        };
        let file = File::open(&path).map_err(io)?;
        let object = read_object(
            &file,
            psnc_format::model::SharedMemoryKind::Anonymous,
            store,
            check,
        )
        .map_err(|e| e.into_capture(io))?;
        self.by_id.insert(shmid, self.segments.len());
        self.segments.push(SysvShm {
            key: st.key,
            shmid,
            mode: st.mode & 0o777,
            uid: st.uid,
            gid: st.gid,
            cuid: st.cuid,
            cgid: st.cgid,
            size: st.size,
            removed: st.mode & shm::SHM_DEST != 0,
            locked: st.mode & shm::SHM_LOCKED != 0,
            pages: object.pages,
            attachments: vec![attach],
        });
        Ok(())
    }

    /// Refuses a process of another IPC namespace than the tool's.
    fn check_namespace(&mut self, proc_dir: &ProcDir) -> Result<()> {
        let ours = match &self.ipc_ns {
            Some(ns) => ns.clone(),
            None => {
                let ns = ProcDir::new(std::process::id() as i32).read_link("ns/ipc")?;
                self.ipc_ns = Some(ns.clone());
                ns
            }
        };
        let theirs = proc_dir.read_link("ns/ipc")?;
        if theirs != ours {
            return Err(CaptureError::OtherIpcNamespace {
                pid: proc_dir.pid(),
                theirs,
                ours,
            });
        }
        Ok(())
    }

    /// The segments, in the order they were met.
    pub fn into_segments(self) -> Vec<SysvShm> {
        self.segments
    }
}
