//! Memfd fds (`/memfd:NAME (deleted)` links): each names a shared memory object of the image
//! ([`crate::shared_memory`]), the same one as the memfd's mappings in any process, so its name,
//! seals and contents are stored once for every fd and mapping. An object no VMA maps is read
//! through the fd (`/proc/PID/fd/N`, opened anew by the tool: the target's offset stays). The
//! fd keeps its own offset and flags, and the memfd's exact size.
//!
//! Classification gives a placeholder [`FdKind::MemFd`] holding the link; [`resolve`] turns it
//! into [`FdKind::MemFdObject`] once the process's mappings are known. Model:
//! [`FdKind::MemFdObject`] in `psnc_format::model`.

use psnc_format::model::{Fd, FdKind, PageRun};

use crate::error::{CaptureError, Result};
use crate::procfs::ProcDir;
use crate::shared_memory::SharedObjects;

/// The placeholder kind of fd `fd` of `proc_dir` if its link `link` is a memfd's, `None` for
/// another link. A hugetlbfs memfd (`MFD_HUGETLB`) is refused here, before anything is stored:
/// its object is not a shmem file (no `SEEK_DATA`, pages of its own size).
pub(super) fn classify(proc_dir: &ProcDir, fd: i32, link: &str) -> Result<Option<FdKind>> {
    if !is_memfd_link(link) {
        return Ok(None);
    }
    let pid = proc_dir.pid();
    let path = proc_dir.path(&format!("fd/{fd}"));
    let fs = nix::sys::statfs::statfs(&path)
        .map_err(|e| CaptureError::proc_io(pid, &path, std::io::Error::from(e)))?;
    if fs.filesystem_type() == nix::sys::statfs::HUGETLBFS_MAGIC {
        return Err(CaptureError::Unsupported {
            pid,
            what: format!("fd {fd}"),
            kind: format!("a memfd on hugetlbfs (MFD_HUGETLB, {link})"),
        });
    }
    Ok(Some(FdKind::MemFd {
        name: link.to_string(),
    }))
}

fn is_memfd_link(link: &str) -> bool {
    link.starts_with("/memfd:")
}

/// Gives every memfd fd of `fds` (process `proc_dir`) its object in `shared`, adding the object
/// (its pages handed to `store`) when neither a mapping nor an earlier fd did.
pub fn resolve(
    proc_dir: &ProcDir,
    fds: &mut [Fd],
    shared: &mut SharedObjects,
    store: &mut dyn FnMut(u64, &[u8]) -> Result<PageRun>,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<usize> {
    let mut n = 0;
    for f in fds.iter_mut() {
        let FdKind::MemFd { name: link } = &f.kind else {
            continue;
        };
        let (object, size) = shared.add_fd(proc_dir, f.fd, link, store, check)?;
        f.kind = FdKind::MemFdObject { object, size };
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_links() {
        assert!(is_memfd_link("/memfd:buf (deleted)"));
        assert!(!is_memfd_link("/tmp/memfd:buf"));
        assert!(!is_memfd_link("anon_inode:[eventfd]"));
    }
}
