//! Fds of files restore reopens by path: regular files (deleted ones too), directories, and the
//! character devices that are not terminals (`/dev/null`, `/dev/urandom`, ...).
//!
//! Their state is the fd's `/proc/PID/fd/N` link and the `stat` of the file it reaches (flags and
//! offset come from `fdinfo`, in [`super`]). A regular file is registered in the
//! [`FileCatalog`]: an open file that still exists is reopened by path and not hashed, a deleted
//! one is stored in the image. Model types: [`FdKind::Regular`] with its
//! [`FileRef`](psnc_format::model::FileRef), [`FdKind::Directory`], [`FdKind::CharDevice`] in
//! `psnc_format::model`.

use std::fs;
use std::path::Path;

use psnc_format::model::FdKind;

use crate::error::Result;
use crate::files::FileCatalog;

/// The [`FdKind::Regular`] of fd `fd` of `pid`, a regular file (`link` as the kernel printed it,
/// reachable through `source`, with metadata `meta`), registered in `catalog`.
pub(super) fn file(
    pid: i32,
    fd: i32,
    link: &str,
    source: &Path,
    meta: &fs::Metadata,
    catalog: &mut FileCatalog,
) -> Result<FdKind> {
    // Open regular files are reopened by path at restore; only deleted ones need contents.
    let r = catalog.add(pid, &format!("fd {fd}"), link, source, meta, false)?;
    Ok(FdKind::Regular(r))
}

/// The [`FdKind::Directory`] of a directory open at `path`.
pub(super) fn directory(path: &str) -> FdKind {
    FdKind::Directory {
        path: path.to_string(),
    }
}

/// The [`FdKind::CharDevice`] of a character device `rdev` (not a terminal) open at `path`.
pub(super) fn char_device(path: &str, rdev: u64) -> FdKind {
    FdKind::CharDevice {
        path: path.to_string(),
        rdev,
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use psnc_format::model::{FileId, Process};
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::fds::classify_fd;
    use crate::files::FilePhase;
    use crate::procfs::ProcDir;

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
            &mut |path, _sha, rd| {
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
}
