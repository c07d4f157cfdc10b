//! Files for the rebuilt task, prepared in the restore tool and then handed over.
//!
//! Every file the restored process will hold, as an fd or behind a mapping, is opened here first,
//! by the restore tool: regular files reopened by path with their flags and offset, deleted files
//! recreated from their stored contents, pipes recreated with their buffered bytes, devices by
//! path, terminals replaced by the tool's own stdio or `/dev/null`. The task then takes each one
//! with a remote `pidfd_getfd` on the tool (same open file description, so offset and status flags
//! come along) and `dup3`s it to its number; see [`crate::fds`]. Opening here rather than
//! remotely keeps errors local and named, and lets one open description serve several fds and
//! mappings of the same file.
//!
//! Deleted files: the replica is created at the original path when that path is free (so the
//! restored `/proc/PID/fd/N` and `/proc/PID/maps` show `PATH (deleted)` as before) and unlinked at
//! once; otherwise it is a memfd (`/memfd:NAME (deleted)`). Files whose stored contents stand in
//! for a changed or missing original (a library replaced by an upgrade) are memfds. One replica is
//! made per stored file, shared by every fd and mapping that refers to it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag};
use psnc_format::model::{Fd, FdKind, FileId, PipeEnd, Process};
use psnc_format::Image;

use crate::checks::{FdSource, FileSource, Plan};
use crate::error::{RestoreError, Result};

/// Status flags that are restored on an open file description; creation flags (`O_CREAT`,
/// `O_EXCL`, `O_TRUNC`) are never replayed, and close-on-exec is per fd.
const REOPEN_FLAGS: u32 = (libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_NOATIME
    | libc::O_DIRECTORY
    | libc::O_LARGEFILE) as u32;

/// An fd of the restore tool that the task takes over.
#[derive(Debug)]
pub enum LocalFd {
    /// Opened for the restore, closed once the task holds it.
    Owned(OwnedFd),
    /// One of the tool's own fds (stdio, `--inherit-fd`), left open in the tool.
    Borrowed(i32),
    /// Nothing local: the fd is created inside the task (an epoll instance, whose watches are
    /// keyed by the task's own fd numbers).
    InTask,
}

impl LocalFd {
    /// The descriptor number in the restore tool, if the task takes one over.
    pub fn raw(&self) -> Option<i32> {
        match self {
            LocalFd::Owned(fd) => Some(fd.as_raw_fd()),
            LocalFd::Borrowed(fd) => Some(*fd),
            LocalFd::InTask => None,
        }
    }
}

/// Everything opened for one restore.
#[derive(Debug, Default)]
pub struct LocalFiles {
    /// For each fd of the process (same index as `Process::fds`).
    pub fds: Vec<LocalFd>,
    /// For each file-backed VMA (same index as `Process::vmas`), the fd it is mapped from.
    pub vmas: Vec<Option<std::rc::Rc<OwnedFd>>>,
    /// The executable, for `PR_SET_MM_EXE_FILE`.
    pub exe: Option<OwnedFd>,
    /// The working directory, entered with `fchdir`.
    pub cwd: Option<OwnedFd>,
}

fn io_err(what: &str, path: &str) -> impl FnOnce(std::io::Error) -> RestoreError {
    let (what, path) = (what.to_string(), path.to_string());
    move |source| RestoreError::Io { what, path, source }
}

fn nix_err(what: &str, path: &str) -> impl FnOnce(nix::errno::Errno) -> RestoreError {
    let (what, path) = (what.to_string(), path.to_string());
    move |e| RestoreError::Io {
        what,
        path,
        source: e.into(),
    }
}

/// Opens `path` with the status flags `flags` (creation flags masked off), close-on-exec in the
/// tool and without making a terminal the tool's controlling one.
pub fn open_with_flags(path: &Path, flags: u32) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let acc = flags & libc::O_ACCMODE as u32;
    let shown = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(acc == libc::O_RDONLY as u32 || acc == libc::O_RDWR as u32)
        .write(acc == libc::O_WRONLY as u32 || acc == libc::O_RDWR as u32)
        .custom_flags(((flags & REOPEN_FLAGS) as i32 & !libc::O_ACCMODE) | libc::O_NOCTTY)
        .open(path)
        .map_err(io_err("opening", &shown))?;
    Ok(OwnedFd::from(file))
}

/// Sets the file status flags of an open description (`F_SETFL` changes only O_APPEND,
/// O_NONBLOCK, O_ASYNC, O_DIRECT, O_NOATIME).
fn set_status_flags(fd: &OwnedFd, flags: u32, what: &str) -> Result<()> {
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags as i32)),
    )
    .map_err(nix_err("setting the status flags of", what))?;
    Ok(())
}

fn basename(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("psnc-file")
}

/// Prepares every file of `plan` in the restore tool.
pub fn prepare(image: &Image, plan: &Plan) -> Result<LocalFiles> {
    let p = plan.process(image.checkpoint());
    let mut prep = Preparer {
        image,
        replicas: BTreeMap::new(),
        originals: BTreeMap::new(),
        pipes: BTreeMap::new(),
    };
    let cwd = open_with_flags(
        Path::new(&p.cwd),
        (libc::O_RDONLY | libc::O_DIRECTORY) as u32,
    )
    .map_err(|e| match e {
        RestoreError::Io { source, .. } => RestoreError::MissingFile {
            path: p.cwd.clone(),
            used_by: "the working directory".into(),
            reason: format!("not openable ({source})"),
        },
        other => other,
    })?;
    let exe = match &plan.exe {
        FileSource::Original(path) => open_with_flags(path, libc::O_RDONLY as u32)?,
        FileSource::Stored(id) => prep
            .replica(*id, None)?
            .try_clone()
            .map_err(io_err("duplicating", &p.exe.path))?,
    };
    let mut vmas = Vec::with_capacity(p.vmas.len());
    for (v, src) in p.vmas.iter().zip(&plan.vma_files) {
        let fd = match src {
            None => None,
            Some(FileSource::Original(path)) => Some(prep.original(path, v.shared)?),
            Some(FileSource::Stored(id)) => {
                let deleted = v
                    .file
                    .as_ref()
                    .filter(|f| f.deleted)
                    .map(|f| (f.path.as_str(), f.identity.mode));
                Some(prep.replica(*id, deleted)?)
            }
        };
        vmas.push(fd);
    }
    let mut fds = Vec::with_capacity(p.fds.len());
    for (f, src) in p.fds.iter().zip(&plan.fds) {
        fds.push(prep.fd(f, src)?);
    }
    Ok(LocalFiles {
        fds,
        vmas,
        exe: Some(exe),
        cwd: Some(cwd),
    })
}

struct Preparer<'a> {
    image: &'a Image,
    replicas: BTreeMap<FileId, std::rc::Rc<OwnedFd>>,
    originals: BTreeMap<(std::path::PathBuf, bool), std::rc::Rc<OwnedFd>>,
    /// Pipe inode -> (read end, write end, buffered bytes put back).
    pipes: BTreeMap<u64, (OwnedFd, OwnedFd, bool)>,
}

impl Preparer<'_> {
    /// An original file for mapping; writable when a shared mapping may need it.
    fn original(&mut self, path: &Path, shared: bool) -> Result<std::rc::Rc<OwnedFd>> {
        let key = (path.to_path_buf(), shared);
        if let Some(fd) = self.originals.get(&key) {
            return Ok(fd.clone());
        }
        let fd = if shared {
            open_with_flags(path, libc::O_RDWR as u32)
                .or_else(|_| open_with_flags(path, libc::O_RDONLY as u32))?
        } else {
            open_with_flags(path, libc::O_RDONLY as u32)?
        };
        let fd = std::rc::Rc::new(fd);
        self.originals.insert(key, fd.clone());
        Ok(fd)
    }

    /// The one replica of stored file `id`: at the path of `deleted` (path, mode) when given and
    /// free, else a memfd.
    fn replica(
        &mut self,
        id: FileId,
        deleted: Option<(&str, u32)>,
    ) -> Result<std::rc::Rc<OwnedFd>> {
        if let Some(fd) = self.replicas.get(&id) {
            return Ok(fd.clone());
        }
        let stored = &self.image.checkpoint().files[id.0 as usize];
        let bytes = self.image.file_bytes(id)?;
        let name = deleted.map_or(stored.path.as_str(), |(p, _)| p).to_string();
        let mut file = match deleted.and_then(|(p, mode)| create_at_and_unlink(p, mode)) {
            Some(f) => f,
            None => {
                // A memfd in the original was "/memfd:NAME": keep NAME, not "memfd:NAME".
                let base = basename(&name);
                let base = base.strip_prefix("memfd:").unwrap_or(base);
                let cname = CString::new(base.replace('\0', "_"))
                    .unwrap_or_else(|_| CString::from(c"psnc-file"));
                let fd = nix::sys::memfd::memfd_create(
                    &cname,
                    nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
                )
                .map_err(nix_err("creating a memfd for", &name))?;
                File::from(fd)
            }
        };
        file.write_all(bytes)
            .map_err(io_err("writing the stored contents of", &name))?;
        let fd = std::rc::Rc::new(OwnedFd::from(file));
        self.replicas.insert(id, fd.clone());
        Ok(fd)
    }

    fn fd(&mut self, f: &Fd, src: &FdSource) -> Result<LocalFd> {
        let what = format!("fd {}", f.fd);
        Ok(match (src, &f.kind) {
            (FdSource::Ours(n), _) => LocalFd::Borrowed(*n),
            (FdSource::Epoll, _) => LocalFd::InTask,
            (FdSource::Null, _) => {
                LocalFd::Owned(open_with_flags(Path::new("/dev/null"), f.flags)?)
            }
            (FdSource::Path(path), FdKind::Fifo { buffered, .. }) => {
                LocalFd::Owned(open_fifo(path, f.flags, buffered)?)
            }
            (FdSource::Path(path), kind) => {
                let fd = open_with_flags(path, f.flags)?;
                if matches!(kind, FdKind::Regular(_) | FdKind::Directory { .. }) {
                    seek(&fd, f.pos, matches!(kind, FdKind::Directory { .. }), &what)?;
                }
                LocalFd::Owned(fd)
            }
            (FdSource::Deleted { id, path }, kind) => {
                let mode = match kind {
                    FdKind::Regular(r) => r.identity.mode,
                    _ => 0o600,
                };
                let replica = self.replica(*id, Some((path, mode)))?;
                // A description of its own, with this fd's flags and offset.
                let link = format!("/proc/self/fd/{}", replica.as_raw_fd());
                let fd = open_with_flags(Path::new(&link), f.flags)?;
                seek(&fd, f.pos, false, &what)?;
                LocalFd::Owned(fd)
            }
            (FdSource::Pipe(pe), _) => {
                let (rd, wr) = self.pipe(pe)?;
                let end = if pe.write_end { wr } else { rd };
                let fd = end.try_clone().map_err(io_err("duplicating", &what))?;
                set_status_flags(&fd, f.flags, &what)?;
                LocalFd::Owned(fd)
            }
        })
    }

    /// The pipe of inode `pe.ino`, created (with its capacity and buffered bytes) on first use.
    fn pipe(&mut self, pe: &PipeEnd) -> Result<(&OwnedFd, &OwnedFd)> {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.pipes.entry(pe.ino) {
            let what = format!("pipe:[{}]", pe.ino);
            let (rd, wr) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(nix_err("creating", &what))?;
            if pe.capacity > 0 {
                // Best effort: an unprivileged user's limit may be lower than the original's.
                let _ =
                    nix::fcntl::fcntl(wr.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(pe.capacity as i32));
            }
            slot.insert((rd, wr, false));
        }
        let Some((rd, wr, filled)) = self.pipes.get_mut(&pe.ino) else {
            return Err(RestoreError::Inconsistent(format!(
                "pipe:[{}] vanished",
                pe.ino
            )));
        };
        if !pe.buffered.is_empty() && !*filled {
            fill_pipe(wr, &pe.buffered, &format!("pipe:[{}]", pe.ino))?;
            *filled = true;
        }
        Ok((rd, wr))
    }
}

/// Writes `bytes` into a pipe that has room for them (capacity was set first); never blocks.
fn fill_pipe(wr: &OwnedFd, bytes: &[u8], what: &str) -> Result<()> {
    let old = nix::fcntl::fcntl(wr.as_raw_fd(), FcntlArg::F_GETFL)
        .map_err(nix_err("reading the flags of", what))?;
    nix::fcntl::fcntl(
        wr.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(old) | OFlag::O_NONBLOCK),
    )
    .map_err(nix_err("setting the flags of", what))?;
    let mut done = 0;
    while done < bytes.len() {
        match nix::unistd::write(wr.as_fd(), &bytes[done..]) {
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(RestoreError::Io {
                    what: format!(
                        "refilling {} buffered bytes ({done} written) into",
                        bytes.len()
                    ),
                    path: what.to_string(),
                    source: e.into(),
                })
            }
        }
    }
    nix::fcntl::fcntl(
        wr.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(old)),
    )
    .map_err(nix_err("setting the flags of", what))?;
    Ok(())
}

fn seek(fd: &OwnedFd, pos: u64, best_effort: bool, what: &str) -> Result<()> {
    let Ok(off) = i64::try_from(pos) else {
        return Err(RestoreError::Inconsistent(format!(
            "{what}: offset {pos} is out of range"
        )));
    };
    match nix::unistd::lseek(fd.as_raw_fd(), off, nix::unistd::Whence::SeekSet) {
        Ok(_) => Ok(()),
        Err(_) if best_effort => Ok(()),
        Err(e) => Err(RestoreError::Io {
            what: format!("seeking to {pos} in"),
            path: what.to_string(),
            source: e.into(),
        }),
    }
}

/// Opens a FIFO without blocking (a keeper read-write end exists while the real one opens), puts
/// back its buffered bytes, then gives the description its real flags.
fn open_fifo(path: &Path, flags: u32, buffered: &[u8]) -> Result<OwnedFd> {
    let shown = path.display().to_string();
    let keeper = open_with_flags(path, (libc::O_RDWR | libc::O_NONBLOCK) as u32)?;
    let fd = open_with_flags(path, flags | libc::O_NONBLOCK as u32)?;
    if !buffered.is_empty() {
        fill_pipe(&keeper, buffered, &shown)?;
    }
    set_status_flags(&fd, flags, &shown)?;
    Ok(fd)
}

/// Creates a file at `path` (which must not exist), opens it read-write and unlinks it at once,
/// then gives it the permission bits of `mode`; `None` when that is not possible (the path
/// exists, its directory is gone, no permission).
fn create_at_and_unlink(path: &str, mode: u32) -> Option<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .ok()?;
    std::fs::remove_file(path).ok()?;
    if mode & 0o7777 != 0 {
        // Best effort: the contents matter, the mode only to fstat.
        let _ = f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777));
    }
    Some(f)
}

/// The fds of `p` in installation order, paired with their local fds.
pub fn install_order<'a>(
    p: &'a Process,
    local: &'a LocalFiles,
) -> impl Iterator<Item = (&'a Fd, &'a LocalFd)> {
    p.fds.iter().zip(&local.fds)
}
