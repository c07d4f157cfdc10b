//! Memory-mapped images: the only `unsafe` code of this crate.
//!
//! memmap2 makes mapping a file `unsafe` because safe Rust assumes the bytes behind a `&[u8]`
//! never change, while the bytes of a shared file map change when anyone writes the file, and
//! reading a map past the end of a truncated file faults (SIGBUS). [`MappedImage`] is the safe
//! wrapper the reader uses; each of its two constructors holds one `unsafe` call.
//!
//! The contract: **the mapped file must not be modified or truncated while the map lives** (like
//! ripgrep's mmap searcher). This module does not seal or check the file; it meets the contract
//! this way, per source:
//!
//! - a file opened by path ([`MappedImage::map_file`]): the contract passes to the caller of
//!   `Image::open` (stated there and in the reader's doc). It holds in practice because images
//!   come from this tool and are written through `AtomicFile`: a complete image is renamed into
//!   place, and a later image replaces the directory entry, not the mapped inode. When the file
//!   cannot be mapped the reader reads it into memory instead.
//! - a stream ([`MappedImage::spool`]): the bytes are copied into an anonymous memfd created here
//!   and private to this process (`MFD_CLOEXEC`, never handed out); nothing writes it after the
//!   copy, so the map cannot change.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;

use memmap2::Mmap;

use crate::error::{FormatError, Result};

/// A read-only, private map of a whole image, under the contract of the module doc.
pub(crate) struct MappedImage(Mmap);

impl MappedImage {
    /// Maps `file`, an image opened by path. The caller carries the contract of the module doc:
    /// nobody modifies the file while the map lives. An error means the file cannot be mapped
    /// (e.g. a special file); the caller then reads it instead.
    pub(crate) fn map_file(file: &File) -> io::Result<Self> {
        // SAFETY: mapping a file is sound as long as nobody truncates or modifies it while the map
        // lives; that is the documented contract of `Image::open` (see this module's doc). The map
        // is read-only and private to this process.
        unsafe { Mmap::map(file) }.map(MappedImage)
    }

    /// Copies the stream `r` (stdin, a pipe, a socket) into a private memfd and maps it. `None`
    /// when the stream is empty: there is nothing to map.
    pub(crate) fn spool(mut r: impl Read) -> Result<Option<Self>> {
        let fd = nix::sys::memfd::memfd_create(
            c"psnc-image",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )
        .map_err(|e| FormatError::Io {
            action: "creating a memfd to spool the image",
            source: e.into(),
        })?;
        let mut file = File::from(fd);
        let n = io::copy(&mut r, &mut file).map_err(FormatError::io("spooling the image"))?;
        if n == 0 {
            return Ok(None);
        }
        // SAFETY: the memfd is private to this process and nothing else holds it; it is never
        // written again after this point, so the mapping cannot change underneath.
        let map =
            unsafe { Mmap::map(&file) }.map_err(FormatError::io("mapping the spooled image"))?;
        Ok(Some(MappedImage(map)))
    }
}

impl Deref for MappedImage {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}
