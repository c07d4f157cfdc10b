//! The stored-file catalog: every file the image refers to by identity (the executable, mapped
//! files, regular files behind fds), each hashed and, where needed, stored in the image.
//!
//! Two phases, because the image writer takes all page runs before the first stored file:
//!
//! 1. While collecting, every file the process refers to gets a [`FileRef`] with its identity
//!    (dev, inode, size, mtime, mode) and is registered once, by (dev, inode), in a
//!    [`FileCatalog`] together with a path capture can read it through (`/proc/PID/map_files/..`,
//!    `/proc/PID/exe`, `/proc/PID/fd/N`: these reach the very file even when it was unlinked).
//! 2. After the pages, [`FileCatalog::store`] reads each file once, hashes it (SHA-256, into
//!    [`FileIdentity::sha256`]) and, unless `--no-store-files` applies, stores its contents with
//!    [`ImageWriter::store_file_from`](psnc_format::ImageWriter) (deduplicated by content there);
//!    [`FileCatalog::fill_refs`] then writes the hashes and [`FileId`]s into every `FileRef` of
//!    the process. Deleted files are always stored: nothing else could bring them back.
//!
//! The state comes from procfs: the `/proc/PID/exe`, `map_files` and `fd` links, the metadata
//! and contents of the files they reach. Model types: [`FileRef`] with its [`FileIdentity`], and
//! the [`FileId`] of a stored content, in `psnc_format::model`. The fds themselves are classified
//! in [`crate::fds`].

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use psnc_format::model::{FdKind, FileId, FileIdentity, FileRef, Process};
use sha2::{Digest, Sha256};

use crate::error::{CaptureError, Result};
use crate::procfs::{strip_deleted, MapsEntry, ProcDir};

/// Where [`FileCatalog::store`] puts a file's contents: given its path, its SHA-256 and a
/// reader of it, returns its stored id.
pub type StoreFn<'a> = dyn FnMut(&str, &[u8; 32], &mut dyn Read) -> Result<FileId> + 'a;

/// The identity of a file from its metadata (the hash is filled in later).
pub fn identity_of(meta: &fs::Metadata) -> FileIdentity {
    FileIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        mode: meta.mode(),
        sha256: [0; 32],
    }
}

/// One distinct file the image refers to.
#[derive(Debug)]
struct CatalogEntry {
    /// What it is, for messages ("the executable", "mapped file", "fd 4").
    what: String,
    /// The path at capture (without ` (deleted)`).
    path: String,
    /// The very same file, opened through a `/proc` link while the target was stopped (so it
    /// stays reachable when the target exits or unmaps it).
    file: fs::File,
    /// Deleted files are stored even with `--no-store-files`.
    must_store: bool,
    /// Whether to hash the contents (files that restore may reuse from disk); open regular files
    /// that are neither mapped nor deleted are reopened by path and not hashed.
    hash: bool,
    sha256: [u8; 32],
    id: Option<FileId>,
}

/// Every distinct file a process refers to, keyed by (dev, inode).
#[derive(Debug, Default)]
pub struct FileCatalog {
    entries: HashMap<(u64, u64), CatalogEntry>,
    /// Keys in the order first seen, so the image's file order is stable.
    order: Vec<(u64, u64)>,
    /// Stored contents, by SHA-256.
    by_sha: HashMap<[u8; 32], FileId>,
}

/// Which files [`FileCatalog::store`] handles. Deleted files can still change through the
/// target's fds, so they are read while the target is stopped; the others (the executable,
/// libraries, files on disk) are read through handles opened while it was stopped, which may
/// happen after it runs on, to keep the stop short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilePhase {
    /// Deleted files: before the target runs on.
    Volatile,
    /// Every other file.
    Stable,
}

impl FileCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct files.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Registers a file: `path` as the kernel printed it (maybe with ` (deleted)`), `source` a
    /// path to reach it (opened now, when first seen). Returns its [`FileRef`] without hash and
    /// stored id.
    pub fn add(
        &mut self,
        pid: i32,
        what: &str,
        path: &str,
        source: &Path,
        meta: &fs::Metadata,
        hash: bool,
    ) -> Result<FileRef> {
        let (clean, deleted) = strip_deleted(path);
        // A file unlinked from its directory keeps nlink 0; " (deleted)" alone could be part of a
        // real file name.
        let deleted = deleted && meta.nlink() == 0;
        let clean = if deleted { clean } else { path };
        let identity = identity_of(meta);
        let key = (identity.dev, identity.ino);
        if !self.entries.contains_key(&key) {
            // Only regular files are registered, so this never blocks (FIFOs are not).
            let file = fs::File::open(source).map_err(|e| CaptureError::File {
                pid,
                what: what.to_string(),
                path: clean.to_string(),
                source: e,
            })?;
            self.order.push(key);
            self.entries.insert(
                key,
                CatalogEntry {
                    what: what.to_string(),
                    path: clean.to_string(),
                    file,
                    must_store: deleted,
                    hash,
                    sha256: [0; 32],
                    id: None,
                },
            );
        }
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.must_store |= deleted;
            entry.hash |= hash;
        }
        Ok(FileRef {
            path: clean.to_string(),
            deleted,
            identity,
            stored: None,
        })
    }

    /// Hashes the registered files of `phase` (SHA-256, for their identity) and, if
    /// `store_files` or the file is deleted, hands them to `store` (path, hash, reader) for the
    /// image (which an incremental capture may find in the parent instead),
    /// once per distinct content. Each stored file is read twice (hash, then copy; the second
    /// read comes from the page cache), so a content already stored under another inode costs no
    /// image bytes. `check` runs between files.
    pub fn store(
        &mut self,
        pid: i32,
        phase: FilePhase,
        store_files: bool,
        store: &mut StoreFn<'_>,
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        for key in &self.order {
            check()?;
            let Some(e) = self.entries.get_mut(key) else {
                continue;
            };
            if (phase == FilePhase::Volatile) != e.must_store {
                continue;
            }
            let wanted = e.must_store || (store_files && e.hash);
            if !wanted && !e.hash {
                continue;
            }
            let file_err = |source: io::Error| CaptureError::File {
                pid,
                what: e.what.clone(),
                path: e.path.clone(),
                source,
            };
            e.file.seek(SeekFrom::Start(0)).map_err(file_err)?;
            let mut reader = HashingReader {
                inner: &mut e.file,
                hasher: Sha256::new(),
            };
            io::copy(&mut reader, &mut io::sink()).map_err(file_err)?;
            e.sha256 = reader.hasher.finalize().into();
            if !wanted {
                continue;
            }
            if let Some(id) = self.by_sha.get(&e.sha256) {
                e.id = Some(*id);
                continue;
            }
            e.file.seek(SeekFrom::Start(0)).map_err(file_err)?;
            let id = store(&e.path, &e.sha256, &mut e.file)?;
            self.by_sha.insert(e.sha256, id);
            e.id = Some(id);
        }
        Ok(())
    }

    /// How many distinct contents were stored so far.
    pub fn stored(&self) -> usize {
        self.by_sha.len()
    }

    /// Writes the hashes and stored ids into every [`FileRef`] of `process`.
    pub fn fill_refs(&self, process: &mut Process) {
        let fill = |r: &mut FileRef| {
            if let Some(e) = self.entries.get(&(r.identity.dev, r.identity.ino)) {
                r.identity.sha256 = e.sha256;
                r.stored = e.id;
            }
        };
        fill(&mut process.exe);
        for vma in &mut process.vmas {
            if let Some(f) = vma.file.as_mut() {
                fill(f);
            }
        }
        for fd in &mut process.fds {
            if let FdKind::Regular(f) = &mut fd.kind {
                fill(f);
            }
        }
    }
}

/// Hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The executable's [`FileRef`], read through `/proc/PID/exe`.
pub fn exe_ref(proc_dir: &ProcDir, catalog: &mut FileCatalog) -> Result<FileRef> {
    let pid = proc_dir.pid();
    let link = proc_dir.read_link("exe")?;
    let source = proc_dir.path("exe");
    let meta = fs::metadata(&source).map_err(|e| CaptureError::proc_io(pid, &source, e))?;
    catalog.add(pid, "the executable", &link, &source, &meta, true)
}

/// The [`FileRef`] of a file mapping. Reads through `/proc/PID/map_files/START-END` (which needs
/// CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN); without that capability falls back to the path when
/// it still names the mapped inode.
pub fn mapping_ref(
    proc_dir: &ProcDir,
    entry: &MapsEntry,
    catalog: &mut FileCatalog,
) -> Result<FileRef> {
    let pid = proc_dir.pid();
    let map_files = proc_dir.path(&entry.map_files_name());
    let what = format!("mapped file at {:#x}", entry.start);
    let (source, meta) = match fs::metadata(&map_files) {
        Ok(m) => (map_files, m),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
            let (clean, _) = strip_deleted(&entry.path);
            let meta = fs::metadata(clean).ok().filter(|m| m.ino() == entry.inode);
            match meta {
                Some(m) => (PathBuf::from(clean), m),
                None => {
                    return Err(CaptureError::File {
                        pid,
                        what,
                        path: entry.path.clone(),
                        source: io::Error::new(
                            e.kind(),
                            format!(
                                "the file was deleted or replaced and {} is not readable without \
                                 CAP_CHECKPOINT_RESTORE ({e})",
                                map_files.display()
                            ),
                        ),
                    })
                }
            }
        }
        Err(e) => return Err(CaptureError::proc_io(pid, &map_files, e)),
    };
    if !meta.is_file() {
        return Err(CaptureError::Unsupported {
            pid,
            what: format!("mapping {:#x}-{:#x}", entry.start, entry.end),
            kind: format!("a mapping of a non-regular file ({})", entry.path),
        });
    }
    catalog.add(pid, &what, &entry.path, &source, &meta, true)
}
