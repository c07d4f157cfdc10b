//! Shared memory objects: the shmem object behind `MAP_SHARED | MAP_ANONYMOUS` mappings (maps
//! shows `/dev/zero (deleted)`, or `[anon_shmem:NAME]` when named) and shared memfd mappings
//! (`/memfd:NAME (deleted)`, with the memfd's seals), stored once however many processes and
//! VMAs map it. An open memfd fd names its object too ([`SharedObjects::add_fd`]): the object
//! its mappings gave, or one read through the fd when nothing maps it.
//!
//! The object is identified by the device and inode `/proc/PID/maps` shows for the VMA: a fork
//! copies the mapping but not the object, so a parent and its children show the same inode.
//! Its contents are read through `/proc/PID/map_files/START-END` (root, or
//! `CAP_CHECKPOINT_RESTORE`), which opens the object itself: its size is the object's, which may
//! exceed any one mapping of it (a process that unmapped part of it, or other sharers that
//! exited), and `SEEK_DATA`/`SEEK_HOLE` give the pages that exist (resident or swapped; a hole
//! was never touched by anyone and reads as zeros). Model: [`SharedMemory`] with its
//! [`SharedMapping`]s; the VMA itself stays a shared [`psnc_format::model::VmaKind::Anonymous`]
//! one whose `file_offset` is the offset into the object.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use psnc_format::model::{PageRun, SharedMapping, SharedMemory, SharedMemoryKind};

use crate::error::{CaptureError, Result};
use crate::memory::COPY_BUFFER;
use crate::procfs::{MapsEntry, ProcDir, PAGE_SIZE};

/// The shared memory objects met so far in the captured tree, by inode.
#[derive(Debug, Default)]
pub struct SharedObjects {
    by_inode: HashMap<(u32, u32, u64), usize>,
    objects: Vec<SharedMemory>,
}

impl SharedObjects {
    /// No object yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that process `proc_dir` maps the object of shared anonymous VMA `entry`; the first
    /// time the object is met, its pages are read and handed to `store` (offset into the object,
    /// bytes) which returns their run. `check` runs between buffers (the tool's interrupt check).
    pub fn add(
        &mut self,
        proc_dir: &ProcDir,
        entry: &MapsEntry,
        store: &mut dyn FnMut(u64, &[u8]) -> Result<PageRun>,
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let pid = proc_dir.pid();
        let key = (entry.dev_major, entry.dev_minor, entry.inode);
        let mapping = SharedMapping {
            pid: pid as u32,
            start: entry.start,
        };
        if let Some(&i) = self.by_inode.get(&key) {
            check_writable(pid, entry, &self.objects[i].kind)?;
            self.objects[i].mappings.push(mapping);
            return Ok(());
        }
        let path = proc_dir.path(&entry.map_files_name());
        let io = |e: std::io::Error| CaptureError::File {
            pid,
            what: format!(
                "shared anonymous memory at {:#x}-{:#x}",
                entry.start, entry.end
            ),
            path: path.display().to_string(),
            source: e,
        };
        let file = File::open(&path).map_err(io)?;
        let kind = match entry.path.strip_prefix("/memfd:") {
            None => SharedMemoryKind::Anonymous,
            Some(rest) => memfd_kind(rest, &file).map_err(io)?,
        };
        check_writable(pid, entry, &kind)?;
        let mut object = read_object(&file, kind, store, check).map_err(|e| e.into_capture(io))?;
        object.dev = libc::makedev(entry.dev_major, entry.dev_minor);
        object.ino = entry.inode;
        object.mappings.push(mapping);
        self.by_inode.insert(key, self.objects.len());
        self.objects.push(object);
        Ok(())
    }

    /// The object of memfd fd `fd` of process `proc_dir` (`link`: its `/proc/PID/fd` link),
    /// as `(index, size in bytes)`: the object its mappings (of any process met so far) or an
    /// earlier fd added, or else a new one read through the fd, whose pages go to `store`.
    pub fn add_fd(
        &mut self,
        proc_dir: &ProcDir,
        fd: i32,
        link: &str,
        store: &mut dyn FnMut(u64, &[u8]) -> Result<PageRun>,
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<(u32, u64)> {
        use std::os::unix::fs::MetadataExt;
        let pid = proc_dir.pid();
        let path = proc_dir.path(&format!("fd/{fd}"));
        let io = |e: std::io::Error| CaptureError::File {
            pid,
            what: format!("the memfd of fd {fd}"),
            path: path.display().to_string(),
            source: e,
        };
        // The fd's own file, opened anew: reading it moves no offset of the target's.
        let file = File::open(&path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let dev = meta.dev();
        let key = (libc::major(dev), libc::minor(dev), meta.ino());
        let index = match self.by_inode.get(&key) {
            Some(&i) => i,
            None => {
                let rest = link.strip_prefix("/memfd:").unwrap_or(link);
                let kind = memfd_kind(rest, &file).map_err(io)?;
                let mut object =
                    read_object(&file, kind, store, check).map_err(|e| e.into_capture(io))?;
                object.dev = dev;
                object.ino = meta.ino();
                self.by_inode.insert(key, self.objects.len());
                self.objects.push(object);
                self.objects.len() - 1
            }
        };
        let index = u32::try_from(index).map_err(|_| CaptureError::Unsupported {
            pid,
            what: format!("fd {fd}"),
            kind: "a memfd beyond the 2^32nd shared memory object".into(),
        })?;
        Ok((index, meta.len()))
    }

    /// The objects, in the order they were met.
    pub fn into_objects(self) -> Vec<SharedMemory> {
        self.objects
    }
}

/// A failure while reading an object: of the file (given its context by the caller) or of the
/// tool (the store or the interrupt check).
pub(crate) enum ReadError {
    Io(std::io::Error),
    Capture(CaptureError),
}

impl ReadError {
    pub(crate) fn into_capture(
        self,
        io: impl FnOnce(std::io::Error) -> CaptureError,
    ) -> CaptureError {
        match self {
            ReadError::Io(e) => io(e),
            ReadError::Capture(e) => e,
        }
    }
}

/// Reads the object open as `file`: its size (rounded up to a page: a shmem object's is
/// page-aligned once mapped, and its last page is stored whole) and the pages that hold data,
/// handed to `store`. No mapping, dev 0, inode 0: the caller fills them.
pub(crate) fn read_object(
    file: &File,
    kind: SharedMemoryKind,
    store: &mut dyn FnMut(u64, &[u8]) -> Result<PageRun>,
    check: &mut dyn FnMut() -> Result<()>,
) -> std::result::Result<SharedMemory, ReadError> {
    let meta = file.metadata().map_err(ReadError::Io)?;
    let size = meta.len().div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let mut pages = Vec::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    for (start, end) in data_extents(file, size).map_err(ReadError::Io)? {
        let mut at = start;
        while at < end {
            check().map_err(ReadError::Capture)?;
            let n = (end - at).min(COPY_BUFFER as u64) as usize;
            // Past the file's end (inside its last page) reads as zeros.
            buf[..n].fill(0);
            let mut got = 0;
            while got < n {
                match file.read_at(&mut buf[got..n], at + got as u64) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ReadError::Io(e)),
                }
            }
            let run = store(at, &buf[..n]).map_err(ReadError::Capture)?;
            match pages.last_mut() {
                Some(PageRun {
                    addr,
                    pages: p,
                    data_offset,
                }) if *addr + *p * PAGE_SIZE == at
                    && *data_offset + *p * PAGE_SIZE == run.data_offset =>
                {
                    *p += run.pages
                }
                _ => pages.push(run),
            }
            at += n as u64;
        }
    }
    Ok(SharedMemory {
        kind,
        dev: 0,
        ino: 0,
        size,
        pages,
        mappings: Vec::new(),
    })
}

/// F_SEAL_WRITE and F_SEAL_FUTURE_WRITE: no new writable shared mapping.
const WRITE_SEALS: i32 = 0x8 | 0x10;

/// The [`SharedMemoryKind::Memfd`] of the memfd `file` (`rest`: its maps name after
/// `/memfd:`): its name and seals.
fn memfd_kind(rest: &str, file: &File) -> std::io::Result<SharedMemoryKind> {
    let name = rest.strip_suffix(" (deleted)").unwrap_or(rest).to_string();
    let seals = nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_GET_SEALS)?;
    Ok(SharedMemoryKind::Memfd {
        name,
        seals: seals as u32,
    })
}

/// Refuses a writable mapping of a memfd sealed against writes: restore could not map it again
/// (the seal forbids new writable shared mappings; the original one predated the seal).
fn check_writable(pid: i32, entry: &MapsEntry, kind: &SharedMemoryKind) -> Result<()> {
    match kind {
        SharedMemoryKind::Memfd { seals, .. }
            if *seals as i32 & WRITE_SEALS != 0 && entry.write =>
        {
            Err(CaptureError::Unsupported {
                pid,
                what: format!("mapping {:#x}-{:#x}", entry.start, entry.end),
                kind: format!(
                    "a writable mapping of a memfd sealed against writes (seals {seals:#x}, {})",
                    entry.path
                ),
            })
        }
        _ => Ok(()),
    }
}

/// The page-aligned ranges of `file` (of `size` bytes) that hold data, by `SEEK_DATA` and
/// `SEEK_HOLE` (tmpfs answers them from its page cache and swap entries).
fn data_extents(file: &File, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    use nix::unistd::{lseek, Whence};
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut at = 0u64;
    while at < size {
        let data = match lseek(file.as_raw_fd(), at as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(nix::errno::Errno::ENXIO) => break, // no data past `at`
            Err(e) => return Err(e.into()),
        };
        let hole = lseek(file.as_raw_fd(), data as i64, Whence::SeekHole)? as u64;
        let start = data / PAGE_SIZE * PAGE_SIZE;
        let end = (hole.div_ceil(PAGE_SIZE) * PAGE_SIZE).min(size);
        if start >= end {
            break;
        }
        match out.last_mut() {
            Some(last) if last.1 >= start => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_mappings_of_write_sealed_memfds_are_refused() {
        let entry = MapsEntry {
            start: 0x1000,
            end: 0x3000,
            read: true,
            write: true,
            shared: true,
            path: "/memfd:ro (deleted)".into(),
            ..Default::default()
        };
        let sealed = |seals| SharedMemoryKind::Memfd {
            name: "ro".into(),
            seals,
        };
        let err = check_writable(7, &entry, &sealed(0x8 | 0x1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PID 7: mapping 0x1000-0x3000 is a writable mapping of a memfd sealed against writes \
             (seals 0x9, /memfd:ro (deleted)), which psnc-capture does not support yet"
        );
        assert!(check_writable(7, &entry, &sealed(0x6)).is_ok());
        let read_only = MapsEntry {
            write: false,
            ..entry.clone()
        };
        assert!(check_writable(7, &read_only, &sealed(0x10)).is_ok());
        assert!(check_writable(7, &entry, &SharedMemoryKind::Anonymous).is_ok());
    }

    #[test]
    fn extents_of_a_sparse_memfd() {
        let fd =
            nix::sys::memfd::memfd_create(c"psnc-test", nix::sys::memfd::MemFdCreateFlag::empty())
                .unwrap();
        let f = File::from(fd);
        f.set_len(16 * PAGE_SIZE).unwrap();
        f.write_all_at(b"x", PAGE_SIZE + 7).unwrap();
        f.write_all_at(b"y", 2 * PAGE_SIZE).unwrap();
        f.write_all_at(b"z", 9 * PAGE_SIZE).unwrap();
        assert_eq!(
            data_extents(&f, 16 * PAGE_SIZE).unwrap(),
            vec![(PAGE_SIZE, 3 * PAGE_SIZE), (9 * PAGE_SIZE, 10 * PAGE_SIZE)]
        );
    }
}
