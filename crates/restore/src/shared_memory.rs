//! Shared memory objects: each object of the image is recreated once, as a memfd of its size in
//! the restore tool filled with its stored pages, and every VMA that mapped it (in every process
//! of the image) maps that memfd `MAP_SHARED` at its address, protection and offset
//! ([`crate::memory::create_vmas`], the task taking the memfd with `pidfd_getfd`). A write by
//! one process is then seen by the others, as before the checkpoint.
//!
//! A memfd comes back as a memfd of its name and size, with its seals added after the fill; each
//! of its fds opens a description of its own on it ([`crate::fds::memfd`]).
//!
//! What differs: `/proc/PID/maps` shows `/memfd:psnc-shared-anon (deleted)` for shared anonymous
//! memory instead of `/dev/zero (deleted)` (the object is a shmem file either way, with the same
//! semantics), and the inodes are new ones.
//!
//! Model: [`psnc_format::model::SharedMemory`] (the image's `shared_memory`, joined to its VMAs
//! by [`psnc_format::model::SharedMapping`]).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use psnc_format::model::{FdKind, SharedMemoryKind, Vma};
use psnc_format::Image;

use crate::error::{RestoreError, Result};
use crate::fds::{io_err, nix_err};

/// The memfd name of a recreated shared anonymous object, as maps shows it (`/memfd:NAME`).
pub const ANON_NAME: &str = "psnc-shared-anon";

/// The index (into the image's `shared_memory`) of the object VMA `v` of process `pid` maps.
pub fn object_of(image: &Image, pid: u32, v: &Vma) -> Result<usize> {
    image
        .checkpoint()
        .shared_memory
        .iter()
        .position(|o| {
            o.mappings
                .iter()
                .any(|m| m.pid == pid && m.start == v.start)
        })
        .ok_or_else(|| {
            RestoreError::Inconsistent(format!(
                "the shared anonymous mapping {:#x}-{:#x} of pid {pid} has no shared memory object",
                v.start, v.end
            ))
        })
}

/// The byte size memfd fds of object `index` give it, if any fd names it.
fn exact_size(image: &Image, index: usize) -> Option<u64> {
    image
        .checkpoint()
        .processes
        .iter()
        .flat_map(|p| &p.fds)
        .find_map(|f| match f.kind {
            FdKind::MemFdObject { object, size } if object as usize == index => Some(size),
            _ => None,
        })
}

/// Creates object `index` of the image: a memfd of its size holding its stored pages.
pub fn create(image: &Image, index: usize) -> Result<OwnedFd> {
    let o = &image.checkpoint().shared_memory[index];
    let (name, seals) = match &o.kind {
        SharedMemoryKind::Anonymous => (ANON_NAME, 0),
        SharedMemoryKind::Memfd { name, seals } => (name.as_str(), *seals),
    };
    let what = format!("shared memory object {index} ({} bytes)", o.size);
    use nix::sys::memfd::MemFdCreateFlag as F;
    let fd = nix::sys::memfd::memfd_create(
        &std::ffi::CString::new(name.replace('\0', "_")).unwrap_or_default(),
        F::MFD_CLOEXEC | F::MFD_ALLOW_SEALING,
    )
    .map_err(nix_err("creating a memfd for", &what))?;
    let file = File::from(fd);
    file.set_len(o.size)
        .map_err(io_err("setting the size of", &what))?;
    for run in &o.pages {
        let bytes = image.page_bytes(run)?;
        file.write_all_at(bytes, run.addr)
            .map_err(io_err("writing the stored pages of", &what))?;
    }
    // A memfd fd knows the exact size, which the object rounded up to a page (§8.9).
    if let Some(size) = exact_size(image, index) {
        file.set_len(size)
            .map_err(io_err("setting the size of", &what))?;
    }
    // The seals last: they may forbid the writes and the resize above. A memfd made without
    // MFD_ALLOW_SEALING had F_SEAL_SEAL, which this adds too.
    if seals != 0 {
        let seals = nix::fcntl::SealFlag::from_bits_retain(seals as i32);
        nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_ADD_SEALS(seals))
            .map_err(nix_err("sealing", &what))?;
    }
    Ok(OwnedFd::from(file))
}
