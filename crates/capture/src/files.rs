//! Files: the executable, mapped files and open file descriptors.
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
//! Open fds are classified by their `/proc/PID/fd/N` link and `stat`: regular files, directories,
//! character devices, ttys, pipes and FIFOs are captured; every other kind is refused with a
//! message naming the fd and its kind.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use psnc_format::model::{EpollWatch, Fd, FdKind, FileId, FileIdentity, FileRef, PipeEnd, Process};
use sha2::{Digest, Sha256};

use crate::error::{CaptureError, Result};
use crate::procfs::{strip_deleted, FdInfo, MapsEntry, ProcDir};

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
    /// `store_files` or the file is deleted, hands them to `store` (path, reader) for the image,
    /// once per distinct content. Each stored file is read twice (hash, then copy; the second
    /// read comes from the page cache), so a content already stored under another inode costs no
    /// image bytes. `check` runs between files.
    pub fn store(
        &mut self,
        pid: i32,
        phase: FilePhase,
        store_files: bool,
        store: &mut dyn FnMut(&str, &mut dyn Read) -> Result<FileId>,
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
            let id = store(&e.path, &mut e.file)?;
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

/// Reads a pipe's buffered bytes without consuming them.
pub trait PipePeek {
    /// The bytes buffered in the pipe behind the target's `fd`, and the pipe's capacity.
    fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)>;
}

/// A pipe-buffer reader for processes without pipes (and tests): refuses to read.
#[derive(Debug)]
pub struct NoPipePeek;

impl PipePeek for NoPipePeek {
    fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)> {
        Err(CaptureError::Unsupported {
            pid: 0,
            what: format!("fd {fd}"),
            kind: "a pipe".into(),
        })
    }
}

/// Tty character-device majors: 4 (virtual consoles, serial), 5 (/dev/tty, console, ptmx),
/// 136..=143 (Unix98 pty slaves).
fn is_tty_major(major: u32) -> bool {
    major == 4 || major == 5 || (136..=143).contains(&major)
}

/// What the kind of an fd link like `anon_inode:[eventfd]` or `socket:[123]` is, for refusals.
fn special_kind(link: &str) -> Option<String> {
    let kind = if link.starts_with("socket:") {
        "a socket"
    } else if link == "anon_inode:[eventfd]" {
        "an eventfd"
    } else if link == "anon_inode:[eventpoll]" {
        "an epoll instance"
    } else if link == "anon_inode:[timerfd]" {
        "a timerfd"
    } else if link == "anon_inode:[signalfd]" {
        "a signalfd"
    } else if link == "anon_inode:inotify" {
        "an inotify instance"
    } else if link == "anon_inode:[fanotify]" {
        "a fanotify instance"
    } else if link == "anon_inode:[pidfd]" || link.starts_with("pidfd:") {
        "a pidfd"
    } else if link.starts_with("anon_inode:") {
        "an anonymous-inode file"
    } else if link.starts_with("/memfd:") {
        "a memfd"
    } else if link.starts_with("net:")
        || link.ends_with("]") && link.contains(":[") && !link.starts_with('/')
    {
        "a namespace or other kernel object"
    } else {
        return None;
    };
    Some(format!("{kind} ({link})"))
}

/// Collects every open fd of the process, sorted by number, with pipes' buffered bytes read
/// through `peek`. Regular files go into `catalog`.
pub fn collect_fds(
    proc_dir: &ProcDir,
    catalog: &mut FileCatalog,
    peek: &mut dyn PipePeek,
) -> Result<Vec<Fd>> {
    let pid = proc_dir.pid();
    let mut fds = Vec::new();
    for n in proc_dir.list_numeric("fd")? {
        let link = match proc_dir.read_link(&format!("fd/{n}")) {
            Ok(l) => l,
            // Closed between listing and reading: only possible if the target runs; skip.
            Err(CaptureError::NoSuchProcess { .. }) if proc_dir.exists() => continue,
            Err(e) => return Err(e),
        };
        let info = proc_dir.fdinfo(n)?;
        fds.push(classify_fd(proc_dir, n, &link, &info, catalog)?);
    }
    mark_pipes(pid, &mut fds, peek)?;
    Ok(fds)
}

/// Classifies one fd.
fn classify_fd(
    proc_dir: &ProcDir,
    fd: i32,
    link: &str,
    info: &FdInfo,
    catalog: &mut FileCatalog,
) -> Result<Fd> {
    let pid = proc_dir.pid();
    let unsupported = |kind: String| CaptureError::Unsupported {
        pid,
        what: format!("fd {fd}"),
        kind,
    };
    let cloexec = info.flags & libc::O_CLOEXEC as u32 != 0;
    let flags = info.flags & !(libc::O_CLOEXEC as u32);
    let mk = |kind: FdKind| Fd {
        fd,
        flags,
        cloexec,
        pos: info.pos,
        kind,
    };

    if let Some(ino) = link
        .strip_prefix("pipe:[")
        .and_then(|s| s.strip_suffix(']'))
    {
        let ino = ino
            .parse::<u64>()
            .map_err(|_| CaptureError::parse(proc_dir.path(&format!("fd/{fd}")), link))?;
        let write_end = flags & libc::O_ACCMODE as u32 == libc::O_WRONLY as u32;
        return Ok(mk(FdKind::Pipe(PipeEnd {
            ino,
            write_end,
            ..Default::default()
        })));
    }
    if link == "anon_inode:[eventpoll]" {
        let name = format!("fdinfo/{fd}");
        let text = proc_dir.read_string(&name)?;
        let watches =
            parse_epoll_watches(&text).map_err(|d| CaptureError::parse(proc_dir.path(&name), d))?;
        for w in &watches {
            check_watched_fd(proc_dir, fd, w)?;
        }
        return Ok(mk(FdKind::Epoll {
            watches: watches.iter().map(|w| w.watch).collect(),
        }));
    }
    if let Some(kind) = special_kind(link) {
        return Err(unsupported(kind));
    }
    let source = proc_dir.path(&format!("fd/{fd}"));
    let meta = fs::metadata(&source).map_err(|e| CaptureError::proc_io(pid, &source, e))?;
    let ft = meta.file_type();
    let (clean, _) = strip_deleted(link);
    if ft.is_file() {
        // Open regular files are reopened by path at restore; only deleted ones need contents.
        let r = catalog.add(pid, &format!("fd {fd}"), link, &source, &meta, false)?;
        Ok(mk(FdKind::Regular(r)))
    } else if ft.is_dir() {
        Ok(mk(FdKind::Directory {
            path: clean.to_string(),
        }))
    } else if ft.is_char_device() {
        let rdev = meta.rdev();
        let major = nix::sys::stat::major(rdev) as u32;
        let minor = nix::sys::stat::minor(rdev) as u32;
        if major == 5 && minor == 2 {
            return Err(unsupported(format!("a pseudo-terminal master ({link})")));
        }
        if is_tty_major(major) {
            Ok(mk(FdKind::Tty {
                path: clean.to_string(),
                rdev,
            }))
        } else {
            Ok(mk(FdKind::CharDevice {
                path: clean.to_string(),
                rdev,
            }))
        }
    } else if ft.is_fifo() {
        Ok(mk(FdKind::Fifo {
            path: clean.to_string(),
            buffered: Vec::new(),
        }))
    } else if ft.is_block_device() {
        Err(unsupported(format!("a block device ({link})")))
    } else if ft.is_socket() {
        Err(unsupported(format!("a socket ({link})")))
    } else {
        Err(unsupported(format!("an unknown file type ({link})")))
    }
}

/// One `tfd:` line of an epoll fd's fdinfo: the watch and the identity of the watched file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EpollFdinfoWatch {
    watch: EpollWatch,
    /// Inode number of the watched file.
    ino: u64,
    /// Its superblock's device in the kernel's internal encoding (major << 20 | minor).
    sdev: u64,
}

/// Parses the watch lines of an epoll fd's fdinfo, as fs/eventpoll.c prints them:
/// `tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x`.
fn parse_epoll_watches(text: &str) -> std::result::Result<Vec<EpollFdinfoWatch>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("tfd:")) {
        let bad = || format!("bad epoll watch line {line:?}");
        // Pairs of `key:` and value; `pos:0` and `ino:5` carry the value in the same token.
        let mut fields = HashMap::new();
        let mut tokens = line.split_whitespace().peekable();
        while let Some(tok) = tokens.next() {
            let (k, v) = tok.split_once(':').ok_or_else(bad)?;
            let v = if v.is_empty() {
                tokens.next().ok_or_else(bad)?
            } else {
                v
            };
            fields.insert(k, v);
        }
        let get = |k: &str| fields.get(k).copied().ok_or_else(bad);
        let hex = |k: &str| get(k).and_then(|v| u64::from_str_radix(v, 16).map_err(|_| bad()));
        out.push(EpollFdinfoWatch {
            watch: EpollWatch {
                tfd: get("tfd")?.parse().map_err(|_| bad())?,
                events: u32::try_from(hex("events")?).map_err(|_| bad())?,
                data: hex("data")?,
            },
            ino: hex("ino")?,
            sdev: hex("sdev")?,
        });
    }
    Ok(out)
}

/// Checks that the watched fd number still names the watched file: restore re-adds the watch
/// through that number.
fn check_watched_fd(proc_dir: &ProcDir, epfd: i32, w: &EpollFdinfoWatch) -> Result<()> {
    let pid = proc_dir.pid();
    let tfd = w.watch.tfd;
    let refuse = |why: String| CaptureError::EpollWatchUnreachable {
        pid,
        epfd,
        tfd,
        why,
    };
    let source = proc_dir.path(&format!("fd/{tfd}"));
    let meta = match fs::metadata(&source) {
        Ok(m) => m,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && proc_dir.exists() => {
            return Err(refuse(format!("fd {tfd} is closed")));
        }
        Err(e) => return Err(CaptureError::proc_io(pid, &source, e)),
    };
    let (major, minor) = (w.sdev >> 20, w.sdev & 0xf_ffff);
    let dev = meta.dev();
    let same_dev = nix::sys::stat::major(dev) == major && nix::sys::stat::minor(dev) == minor;
    if meta.ino() != w.ino || !same_dev {
        return Err(refuse(format!(
            "fd {tfd} now refers to another file (inode {} on device {:#x}, the watch is on inode {} \
             on device {major}:{minor})",
            meta.ino(),
            dev,
            w.ino
        )));
    }
    Ok(())
}

/// Fills pipes' and FIFOs' buffered bytes and capacity, and marks pipes whose other end is not in
/// the process as external. A pipe's bytes are read once, through a read end when the process
/// holds one, and stored with the pipe's lowest fd.
fn mark_pipes(pid: i32, fds: &mut [Fd], peek: &mut dyn PipePeek) -> Result<()> {
    // Per pipe inode: (has read end, has write end, lowest fd, lowest read-end fd).
    let mut pipes: HashMap<u64, (bool, bool, i32, Option<i32>)> = HashMap::new();
    for fd in fds.iter() {
        if let FdKind::Pipe(p) = &fd.kind {
            let e = pipes.entry(p.ino).or_insert((false, false, fd.fd, None));
            e.2 = e.2.min(fd.fd);
            if p.write_end {
                e.1 = true;
            } else {
                e.0 = true;
                e.3 = Some(e.3.map_or(fd.fd, |r| r.min(fd.fd)));
            }
        }
    }
    let mut peeked: HashMap<u64, (Vec<u8>, u32)> = HashMap::new();
    for (ino, (_, _, lowest, read_fd)) in &pipes {
        let via = read_fd.unwrap_or(*lowest);
        peeked.insert(*ino, peek.peek(via).map_err(|e| with_pid(e, pid))?);
    }
    for fd in fds.iter_mut() {
        let n = fd.fd;
        match &mut fd.kind {
            FdKind::Pipe(p) => {
                let (r, w, lowest, _) = pipes.get(&p.ino).copied().unwrap_or_default();
                p.external = !(r && w);
                if let Some((bytes, cap)) = peeked.get_mut(&p.ino) {
                    p.capacity = *cap;
                    if n == lowest {
                        p.buffered = std::mem::take(bytes);
                    }
                }
            }
            FdKind::Fifo { buffered, .. } => {
                let (bytes, _) = peek.peek(n).map_err(|e| with_pid(e, pid))?;
                *buffered = bytes;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads pipe buffers of a stopped target: a duplicate of the target's fd with `pidfd_getfd`
/// (the same pipe), then `tee` into a pipe of our own, which copies the buffered bytes without
/// consuming them, then a read of our copy. `tee` needs a readable source: for a write end the
/// pipe is opened again for reading through `/proc/PID/fd/N` (non-blocking, so it never waits
/// for a writer), which adds a reader only for the moment of the copy.
#[derive(Debug)]
pub struct TeePipePeek {
    pid: i32,
    pidfd: OwnedFd,
}

impl TeePipePeek {
    /// Opens a pidfd for `pid`.
    pub fn new(pid: i32) -> Result<Self> {
        let pidfd = psnc_ptrace::sys::pidfd_open(pid)
            .map_err(|e| crate::stop::trace_error(pid, pid, "pidfd_open", e))?;
        Ok(TeePipePeek { pid, pidfd })
    }
}

impl PipePeek for TeePipePeek {
    fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)> {
        let pid = self.pid;
        let what = format!("reading the buffer of the pipe behind fd {fd}");
        let terr = |e| crate::stop::trace_error(pid, pid, &what, e);
        let ioerr = |e: io::Error| CaptureError::File {
            pid,
            what: format!("fd {fd}"),
            path: "pipe".into(),
            source: e,
        };
        let dup = psnc_ptrace::sys::pidfd_getfd(self.pidfd.as_fd(), pid, fd).map_err(terr)?;
        let capacity = nix::fcntl::fcntl(dup.as_raw_fd(), nix::fcntl::FcntlArg::F_GETPIPE_SZ)
            .map_err(|e| ioerr(e.into()))?;
        let accmode = nix::fcntl::fcntl(dup.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| ioerr(e.into()))?
            & libc::O_ACCMODE;
        let source: OwnedFd = if accmode == libc::O_WRONLY {
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(format!("/proc/{pid}/fd/{fd}"))
                .map_err(ioerr)?
                .into()
        } else {
            dup
        };
        let (copy_r, copy_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| ioerr(e.into()))?;
        nix::fcntl::fcntl(
            copy_w.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(capacity),
        )
        .map_err(|e| ioerr(e.into()))?;
        let n = match psnc_ptrace::sys::tee(source.as_fd(), copy_w.as_fd(), capacity as usize, true)
        {
            Ok(n) => n,
            // Empty pipe with a writer.
            Err(psnc_ptrace::PtraceError::Syscall {
                errno: nix::errno::Errno::EAGAIN,
                ..
            }) => 0,
            Err(e) => return Err(terr(e)),
        };
        drop(copy_w);
        let mut bytes = Vec::with_capacity(n);
        fs::File::from(copy_r)
            .read_to_end(&mut bytes)
            .map_err(ioerr)?;
        Ok((bytes, u32::try_from(capacity).unwrap_or(0)))
    }
}

fn with_pid(e: CaptureError, pid: i32) -> CaptureError {
    match e {
        CaptureError::Unsupported { pid: 0, what, kind } => {
            CaptureError::Unsupported { pid, what, kind }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_fdinfo_watch_lines() {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\n\
                    tfd:        5 events:       19 data:     1122334455667788  pos:0 ino:2a3 sdev:e\n\
                    tfd:       12 events: 80000005 data:                3  pos:0 ino:7 sdev:800001\n";
        let w = parse_epoll_watches(text).unwrap();
        assert_eq!(
            w,
            vec![
                EpollFdinfoWatch {
                    watch: EpollWatch {
                        tfd: 5,
                        events: 0x19,
                        data: 0x1122_3344_5566_7788
                    },
                    ino: 0x2a3,
                    sdev: 0xe
                },
                EpollFdinfoWatch {
                    watch: EpollWatch {
                        tfd: 12,
                        events: 0x8000_0005,
                        data: 3
                    },
                    ino: 7,
                    sdev: 0x80_0001
                },
            ]
        );
        assert!(parse_epoll_watches("tfd: x events: 1 data: 0 pos:0 ino:1 sdev:1\n").is_err());
        assert!(parse_epoll_watches("tfd: 3 events: 1\n").is_err());
    }

    #[test]
    fn special_kinds() {
        assert_eq!(
            special_kind("socket:[123]").unwrap(),
            "a socket (socket:[123])"
        );
        assert_eq!(
            special_kind("anon_inode:[eventfd]").unwrap(),
            "an eventfd (anon_inode:[eventfd])"
        );
        assert_eq!(
            special_kind("anon_inode:[eventpoll]").unwrap(),
            "an epoll instance (anon_inode:[eventpoll])"
        );
        assert_eq!(
            special_kind("/memfd:x (deleted)").unwrap(),
            "a memfd (/memfd:x (deleted))"
        );
        assert_eq!(
            special_kind("net:[4026531840]").unwrap(),
            "a namespace or other kernel object (net:[4026531840])"
        );
        assert_eq!(special_kind("/tmp/a:[b]"), None);
        assert_eq!(special_kind("/dev/null"), None);
    }

    #[test]
    fn own_fds_classify() {
        let me = ProcDir::new(std::process::id() as i32);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"hello").unwrap();
        let f = fs::OpenOptions::new().append(true).open(&p).unwrap();
        let d = fs::File::open(dir.path()).unwrap();
        let null = fs::File::open("/dev/null").unwrap();
        let mut cat = FileCatalog::new();
        use std::os::fd::AsRawFd;
        let info = |fd: i32| me.fdinfo(fd).unwrap();
        let link = |fd: i32| me.read_link(&format!("fd/{fd}")).unwrap();

        let n = f.as_raw_fd();
        let fd = classify_fd(&me, n, &link(n), &info(n), &mut cat).unwrap();
        assert!(fd.cloexec);
        assert_eq!(fd.flags & libc::O_APPEND as u32, libc::O_APPEND as u32);
        let FdKind::Regular(r) = &fd.kind else {
            panic!("{fd:?}")
        };
        assert_eq!(Path::new(&r.path), p.as_path());
        assert!(!r.deleted);
        assert_eq!(r.identity.size, 5);

        let n = d.as_raw_fd();
        let fd = classify_fd(&me, n, &link(n), &info(n), &mut cat).unwrap();
        assert!(matches!(fd.kind, FdKind::Directory { .. }));

        let n = null.as_raw_fd();
        let fd = classify_fd(&me, n, &link(n), &info(n), &mut cat).unwrap();
        assert_eq!(
            fd.kind,
            FdKind::CharDevice {
                path: "/dev/null".into(),
                rdev: libc::makedev(1, 3)
            }
        );

        // A deleted file is registered as deleted and must be stored, even without store_files.
        fs::remove_file(&p).unwrap();
        let n = f.as_raw_fd();
        let fd = classify_fd(&me, n, &link(n), &info(n), &mut cat).unwrap();
        let FdKind::Regular(r) = &fd.kind else {
            panic!("{fd:?}")
        };
        assert!(r.deleted);
        assert_eq!(Path::new(&r.path), p.as_path());
        let mut stored = Vec::new();
        cat.store(
            1,
            FilePhase::Volatile,
            false,
            &mut |path, rd| {
                let mut v = Vec::new();
                rd.read_to_end(&mut v).unwrap();
                stored.push((path.to_string(), v));
                Ok(FileId(7))
            },
            &mut || Ok(()),
        )
        .unwrap();
        assert_eq!(
            stored,
            vec![(p.to_string_lossy().into_owned(), b"hello".to_vec())]
        );
        let mut proc_ = Process {
            fds: vec![fd],
            ..Default::default()
        };
        cat.fill_refs(&mut proc_);
        let FdKind::Regular(r) = &proc_.fds[0].kind else {
            panic!()
        };
        assert_eq!(r.stored, Some(FileId(7)));
        assert_eq!(
            r.identity.sha256,
            <[u8; 32]>::from(Sha256::digest(b"hello"))
        );
    }

    #[test]
    fn socket_fd_is_refused_by_number() {
        let me = ProcDir::new(std::process::id() as i32);
        let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
        use std::os::fd::AsRawFd;
        let n = sock.as_raw_fd();
        let link = me.read_link(&format!("fd/{n}")).unwrap();
        let err = classify_fd(
            &me,
            n,
            &link,
            &me.fdinfo(n).unwrap(),
            &mut FileCatalog::new(),
        )
        .unwrap_err();
        let CaptureError::Unsupported { what, kind, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(what, &format!("fd {n}"));
        assert!(kind.starts_with("a socket (socket:["), "{kind}");
    }

    struct FakePeek;
    impl PipePeek for FakePeek {
        fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)> {
            Ok((vec![fd as u8], 65536))
        }
    }

    #[test]
    fn pipes_buffer_once_and_external() {
        let pipe = |fd: i32, ino: u64, write_end: bool| Fd {
            fd,
            flags: 0,
            cloexec: false,
            pos: 0,
            kind: FdKind::Pipe(PipeEnd {
                ino,
                write_end,
                ..Default::default()
            }),
        };
        let mut fds = vec![pipe(3, 10, false), pipe(4, 10, true), pipe(5, 11, false)];
        mark_pipes(1, &mut fds, &mut FakePeek).unwrap();
        let ends: Vec<&PipeEnd> = fds
            .iter()
            .map(|f| match &f.kind {
                FdKind::Pipe(p) => p,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ends[0].buffered, vec![3]);
        assert!(ends[1].buffered.is_empty());
        assert_eq!(ends[1].capacity, 65536);
        assert!(!ends[0].external && !ends[1].external);
        assert!(ends[2].external);
        assert_eq!(ends[2].buffered, vec![5]);
    }
}
