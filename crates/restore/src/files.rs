//! The stored files: replicas of the files whose contents the image carries, and the
//! executable.
//!
//! Deleted files: the replica is created at the original path when that path is free (so the
//! restored `/proc/PID/fd/N` and `/proc/PID/maps` show `PATH (deleted)` as before) and unlinked at
//! once; otherwise it is a memfd (`/memfd:NAME (deleted)`). Files whose stored contents stand in
//! for a changed or missing original (a library replaced by an upgrade) are memfds. One replica is
//! made per stored file and original inode, shared by every fd and mapping (of every process of
//! the image) that refers to that file: two files the capture stored once because their contents
//! were equal (two fresh POSIX semaphores in /dev/shm) stay two files.
//!
//! Model: [`psnc_format::model::StoredFile`] (the image's `files`, named by
//! [`psnc_format::model::FileId`] from a [`psnc_format::model::FileRef`]) and `exe` of
//! [`psnc_format::model::Process`]; which file is taken from disk and which from the image was
//! decided by the checks ([`crate::checks::FileSource`]).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use psnc_format::model::{FileId, Process};
use psnc_format::Image;

use crate::checks::FileSource;
use crate::error::Result;
use crate::fds::{io_err, nix_err, open_with_flags};

/// The replicas of one restore's stored files, one per stored file and original (dev, inode).
#[derive(Debug)]
pub struct Replicas<'a> {
    image: &'a Image,
    replicas: BTreeMap<(FileId, u64, u64), Rc<OwnedFd>>,
    /// The recreated shared memory objects, by index in the image ([`crate::shared_memory`]).
    shared_memory: BTreeMap<usize, Rc<OwnedFd>>,
}

impl<'a> Replicas<'a> {
    /// No replica made yet, of the files of `image`.
    pub fn new(image: &'a Image) -> Replicas<'a> {
        Replicas {
            image,
            replicas: BTreeMap::new(),
            shared_memory: BTreeMap::new(),
        }
    }

    /// The one memfd of the shared memory object that VMA `v` of process `pid` maps, created
    /// and filled on first use, shared by every process of the image that maps it.
    pub fn shared_memory(&mut self, pid: u32, v: &psnc_format::model::Vma) -> Result<Rc<OwnedFd>> {
        let index = crate::shared_memory::object_of(self.image, pid, v)?;
        self.shared_memory_object(index)
    }

    /// Whether VMA `v` of process `pid` attaches a System V segment ([`crate::sysv_shm`]),
    /// which no file of the tool stands for.
    pub fn is_sysv(&self, pid: u32, v: &psnc_format::model::Vma) -> bool {
        crate::sysv_shm::attachment(self.image.checkpoint(), pid, v).is_some()
    }

    /// The one memfd of shared memory object `index` (of the image's `shared_memory`), created
    /// and filled on first use, shared by every fd and mapping of it.
    pub fn shared_memory_object(&mut self, index: usize) -> Result<Rc<OwnedFd>> {
        if let Some(fd) = self.shared_memory.get(&index) {
            return Ok(fd.clone());
        }
        let fd = Rc::new(crate::shared_memory::create(self.image, index)?);
        self.shared_memory.insert(index, fd.clone());
        Ok(fd)
    }

    /// The one replica of stored file `id` standing in for the file that was `inode` (dev,
    /// inode at capture): at the path of `deleted` (path, mode) when given and free, else a
    /// memfd.
    pub fn replica(
        &mut self,
        id: FileId,
        inode: (u64, u64),
        deleted: Option<(&str, u32)>,
    ) -> Result<Rc<OwnedFd>> {
        let key = (id, inode.0, inode.1);
        if let Some(fd) = self.replicas.get(&key) {
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
        let fd = Rc::new(OwnedFd::from(file));
        self.replicas.insert(key, fd.clone());
        Ok(fd)
    }
}

/// The executable, for the exe link: the original file when it is unchanged, else its replica.
pub fn open_exe(src: &FileSource, p: &Process, replicas: &mut Replicas) -> Result<OwnedFd> {
    Ok(match src {
        FileSource::Original(path) => open_with_flags(path, libc::O_RDONLY as u32)?,
        FileSource::Stored(id) => replicas
            .replica(*id, (p.exe.identity.dev, p.exe.identity.ino), None)?
            .try_clone()
            .map_err(io_err("duplicating", &p.exe.path))?,
    })
}

fn basename(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("psnc-file")
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
