//! `/proc/PID/pagemap`: one 64-bit entry per virtual page
//! (`Documentation/admin-guide/mm/pagemap.rst`).
//!
//! The file is binary and read at offsets (`pread`), so the reader here is I/O, not text parsing.
//! The bits of an entry are decoded with procfs-core's `MemoryPageFlags` and `PageInfo`, which
//! follow `fs/proc/task_mmu.c` exactly (checked below against the bit numbers of the kernel
//! documentation).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use procfs_core::process::{MemoryPageFlags, PageInfo};

use crate::error::{ParseError, ProcError, Result};
use crate::PAGE_SIZE;

/// One `/proc/PID/pagemap` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageEntry(pub u64);

impl PageEntry {
    fn flags(self) -> MemoryPageFlags {
        MemoryPageFlags::from_bits_retain(self.0)
    }

    /// Bit 63: the page is present in RAM.
    pub fn present(self) -> bool {
        self.flags().contains(MemoryPageFlags::PRESENT)
    }

    /// Bit 62: the page is swapped out.
    pub fn swapped(self) -> bool {
        matches!(PageInfo::parse_info(self.0), PageInfo::SwapPage(_))
    }

    /// Bit 61: the page is a file page or shared anonymous memory (for a private file mapping: not
    /// yet copied on write).
    pub fn file_or_shared(self) -> bool {
        self.flags().contains(MemoryPageFlags::FILE)
    }

    /// Bit 56: the page is mapped exclusively (by this process only).
    pub fn exclusive(self) -> bool {
        self.flags().contains(MemoryPageFlags::MMAP_EXCLUSIVE)
    }
}

/// An open `/proc/PID/pagemap`.
#[derive(Debug)]
pub struct Pagemap {
    file: fs::File,
    path: PathBuf,
}

impl Pagemap {
    /// Opens the pagemap file at `path` (normally through [`crate::ProcDir::pagemap`]).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let file = fs::File::open(&path).map_err(|source| ProcError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Pagemap { file, path })
    }

    /// Reads the entries of `npages` pages starting at `addr` into `out` (cleared first).
    pub fn read(&self, addr: u64, npages: u64, out: &mut Vec<PageEntry>) -> Result<()> {
        out.clear();
        let too_large = || ParseError::field("range too large").in_file(&self.path);
        let len = usize::try_from(npages)
            .ok()
            .and_then(|n| n.checked_mul(8))
            .ok_or_else(too_large)?;
        let mut buf = vec![0u8; len];
        let offset = (addr / PAGE_SIZE) * 8;
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .file
                .read_at(&mut buf[done..], offset + done as u64)
                .map_err(|source| ProcError::Read {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(ParseError::field(format!(
                    "short read at {:#x}: {} of {} bytes",
                    addr,
                    done,
                    buf.len()
                ))
                .in_file(&self.path));
            }
            done += n;
        }
        out.extend(buf.chunks_exact(8).map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            PageEntry(u64::from_ne_bytes(b))
        }));
        Ok(())
    }

    /// The path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for its ioctls (`PAGEMAP_SCAN`, in psnc-ptrace).
    pub fn file(&self) -> &fs::File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_the_kernel_documentation() {
        let e = PageEntry(1 << 63);
        assert!(e.present() && !e.swapped() && !e.file_or_shared() && !e.exclusive());
        let e = PageEntry(1 << 62);
        assert!(!e.present() && e.swapped());
        let e = PageEntry((1 << 63) | (1 << 61));
        assert!(e.present() && e.file_or_shared());
        let e = PageEntry((1 << 63) | (1 << 56) | 0x1234);
        assert!(e.exclusive() && !e.file_or_shared());
        let e = PageEntry(0);
        assert!(!e.present() && !e.swapped() && !e.file_or_shared() && !e.exclusive());
        // The soft-dirty bit (55) is none of the four.
        let e = PageEntry(1 << 55);
        assert!(!e.present() && !e.swapped() && !e.file_or_shared() && !e.exclusive());
    }

    #[test]
    fn own_pagemap() {
        let me = crate::ProcDir::new(std::process::id() as i32);
        let maps = me.maps().unwrap();
        // The top page of the stack is present (we are running on it).
        let pm = me.pagemap().unwrap();
        let stack = maps.iter().find(|m| m.path == "[stack]").unwrap();
        let mut v = Vec::new();
        pm.read(stack.end - PAGE_SIZE, 1, &mut v).unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0].present(), "{:#x}", v[0].0);
        // Past the end of the user address space: the kernel returns no bytes.
        let err = pm.read(u64::MAX - PAGE_SIZE + 1, 1, &mut v).unwrap_err();
        assert!(err.to_string().contains("short read"), "{err}");
        let err = pm.read(0, u64::MAX, &mut v).unwrap_err();
        assert!(err.to_string().ends_with("range too large"), "{err}");
    }
}
