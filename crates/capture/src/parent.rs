//! Incremental capture (`--parent OLD`): pages and stored files that are the same as in an
//! earlier image of the tree are not stored again, only referenced (format 1.4, section
//! `parent`; see `psnc_format::chain`).
//!
//! Which pages changed is decided by content, not by tracking: every page the capture copies
//! (while the target runs, with pre-copy, or stopped) is compared with the parent's page at the
//! same address of the process with the same PID, and only the differing ones are written. So
//! nothing has to stay armed in the target between captures, any earlier image of the tree can
//! be the parent (also one whose capture left it running), and a page is referenced only when
//! its bytes are the parent's exactly: the restored memory is the same as a full image's. The
//! cost is that of a full capture's read of memory plus a `memcmp` per page; the writes and the
//! image shrink to what changed.
//!
//! A referenced page travels through the copy loop as a [`PageRun`] whose `data_offset` is
//! [`IN_PARENT`] plus its address, which keeps runs contiguous the way the loop, the pre-copy's
//! copies and the coalescing expect; [`split`] takes them out of each process's runs at the
//! end. Stored files are referenced by SHA-256 (the files of a program rarely change between
//! captures). Shared memory (anonymous, memfd, System V) is stored in full.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use psnc_format::model::{PageRun, Parent, ParentRun, Process};
use psnc_format::verify::verify_image;
use psnc_format::{FormatError, Image};

use crate::error::{CaptureError, Result};

/// `data_offset` of a run taken from the parent: this plus the run's address.
pub const IN_PARENT: u64 = 1 << 63;

/// The parent image of an incremental capture, opened, verified and flattened.
pub struct Baseline {
    image: Image,
    /// Its absolute path, as the child records it.
    path: PathBuf,
    /// Process index by PID.
    by_pid: HashMap<u32, usize>,
    /// Stored files by (SHA-256), with their size.
    files: HashMap<[u8; 32], u64>,
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Baseline {
    /// Opens `path` as the parent: verifies it in full (digests and model, like `psnc-imgtool
    /// verify`) and its own parents, if any. Runs before the target is stopped, so a bad parent
    /// costs nothing but the refusal.
    pub fn open(path: &Path) -> Result<Baseline> {
        let err = |source: FormatError| CaptureError::Parent {
            path: path.to_path_buf(),
            source,
        };
        let abs = std::fs::canonicalize(path).map_err(|e| {
            err(FormatError::Io {
                action: "opening the parent image",
                source: e,
            })
        })?;
        let image = Image::open(&abs).map_err(err)?;
        verify_image(&image).map_err(err)?;
        let image = image.with_parents(Some(&abs), None).map_err(err)?;
        let ck = image.checkpoint();
        let by_pid = ck
            .processes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.pid, i))
            .collect();
        let files = ck.files.iter().map(|f| (f.sha256, f.size)).collect();
        Ok(Baseline {
            image,
            path: abs,
            by_pid,
            files,
        })
    }

    /// The parent's bytes of the page at `addr` of process `pid`, if it stores that page.
    fn page(&self, pid: u32, addr: u64) -> Option<&[u8]> {
        let p = &self.image.checkpoint().processes[*self.by_pid.get(&pid)?];
        let i = p.pages.partition_point(|r| r.addr + r.pages * 4096 <= addr);
        let run = p.pages.get(i).filter(|r| r.addr <= addr)?;
        let bytes = self.image.page_bytes(run).ok()?;
        let at = (addr - run.addr) as usize;
        bytes.get(at..at + 4096)
    }

    /// Whether the page at `addr` of `pid` holds `bytes` in the parent too.
    pub fn same_page(&self, pid: u32, addr: u64, bytes: &[u8]) -> bool {
        self.page(pid, addr) == Some(bytes)
    }

    /// The size of the parent chain's stored file with this SHA-256, if it stores one.
    pub fn stored_file(&self, sha: &[u8; 32]) -> Option<u64> {
        self.files.get(sha).copied()
    }

    /// The record the child image carries; its `pages` and `files` are filled in later.
    pub fn record(&self) -> Parent {
        Parent {
            digest: self.image.trailer().image_sha256,
            path: self.path.to_string_lossy().into_owned(),
            pages: Vec::new(),
            files: Vec::new(),
        }
    }

    /// The path of the parent.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many images the chain holds behind the child (the parent and its own parents).
    pub fn depth(&self) -> usize {
        1 + self.image.chain().len()
    }
}

/// What [`compact`] gives back: the runs to store, `(address, pages)`, and every piece of the
/// input runs, `(address, pages, in_parent)`.
pub type Compacted = (Vec<(u64, u64)>, Vec<(u64, u64, bool)>);

/// Compares the pages of `buf` (which holds `runs`, address and page count each, back to back)
/// with the parent's pages of `pid`, moves the differing ones to the front of `buf` and
/// truncates it to them. Returns the runs to store (of the compacted `buf`) and, per input run
/// and in address order, its pieces: `(address, pages, in_parent)`. The runs to store are
/// exactly the pieces not in the parent, in the same order.
pub fn compact(base: &Baseline, pid: u32, runs: &[(u64, u64)], buf: &mut Vec<u8>) -> Compacted {
    let mut keep: Vec<(u64, u64)> = Vec::new();
    let mut pieces: Vec<(u64, u64, bool)> = Vec::new();
    let (mut read, mut write) = (0usize, 0usize);
    for &(addr, pages) in runs {
        let first_piece = pieces.len();
        for i in 0..pages {
            let a = addr + i * 4096;
            let same = base.same_page(pid, a, &buf[read..read + 4096]);
            if !same {
                if write != read {
                    buf.copy_within(read..read + 4096, write);
                }
                write += 4096;
                match keep.last_mut() {
                    Some(k) if i > 0 && k.0 + k.1 * 4096 == a => k.1 += 1,
                    _ => keep.push((a, 1)),
                }
            }
            let in_run = pieces.len() > first_piece;
            match pieces.last_mut() {
                Some(p) if in_run && p.2 == same => p.1 += 1,
                _ => pieces.push((a, 1, same)),
            }
            read += 4096;
        }
    }
    buf.truncate(write);
    (keep, pieces)
}

/// Takes the runs of `p` that point into the parent ([`IN_PARENT`]) out of its page runs.
pub fn split(p: &mut Process) -> Vec<ParentRun> {
    let (parent, own): (Vec<PageRun>, Vec<PageRun>) = std::mem::take(&mut p.pages)
        .into_iter()
        .partition(|r| r.data_offset >= IN_PARENT);
    p.pages = own;
    let mut out: Vec<ParentRun> = Vec::with_capacity(parent.len());
    for r in parent {
        match out.last_mut() {
            Some(l) if l.addr + l.pages * 4096 == r.addr => l.pages += r.pages,
            _ => out.push(ParentRun {
                pid: p.pid,
                addr: r.addr,
                pages: r.pages,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use psnc_format::example::{example_runs, page_pattern, write_example};
    use psnc_format::model::Arch;
    use psnc_format::LayoutClass;

    /// The example image as a parent, in a temporary directory.
    fn baseline() -> (tempfile::TempDir, Baseline) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("parent.psnc");
        let bytes = write_example(Vec::new(), Arch::X86_64, LayoutClass::Bits64).expect("example");
        std::fs::write(&path, bytes).expect("write");
        let b = Baseline::open(&path).expect("open the parent");
        (dir, b)
    }

    #[test]
    fn only_the_pages_that_differ_are_kept_and_the_rest_points_at_the_parent() {
        let (_dir, base) = baseline();
        // The example's 2-page run, then its 1-page run: the first page of the 2-page run
        // changed, and one page the parent does not store at all.
        let runs = example_runs(Arch::X86_64);
        let (two, one) = (runs.iter().find(|r| r.1 == 2).unwrap().0, runs[0].0);
        let mut buf = page_pattern(two, 2);
        buf[10] ^= 1;
        buf.extend(page_pattern(one, 1));
        buf.extend(vec![7u8; 4096]);
        let input = [(two, 2), (one, 1), (0x1000_0000, 1)];
        let (keep, pieces) = compact(&base, 42, &input, &mut buf);
        assert_eq!(keep, vec![(two, 1), (0x1000_0000, 1)]);
        assert_eq!(
            pieces,
            vec![
                (two, 1, false),
                (two + 4096, 1, true),
                (one, 1, true),
                (0x1000_0000, 1, false),
            ]
        );
        let apart: Vec<(u64, u64)> = pieces.iter().filter(|p| !p.2).map(|p| (p.0, p.1)).collect();
        assert_eq!(
            apart, keep,
            "the runs kept are the pieces not in the parent"
        );
        assert_eq!(buf.len(), 2 * 4096);
        assert_eq!(buf[10], page_pattern(two, 1)[10] ^ 1);
        assert!(buf[4096..].iter().all(|&b| b == 7));
        // Another PID has nothing in the parent.
        let mut buf = page_pattern(one, 1);
        let (keep, _) = compact(&base, 43, &[(one, 1)], &mut buf);
        assert_eq!(keep, vec![(one, 1)]);
    }

    #[test]
    fn split_takes_the_parent_runs_out_and_joins_neighbours() {
        let mut p = Process {
            pid: 7,
            ..Default::default()
        };
        let run = |addr: u64, pages: u64, data_offset: u64| PageRun {
            addr,
            pages,
            data_offset,
        };
        p.pages = vec![
            run(0x1000, 1, IN_PARENT + 0x1000),
            run(0x2000, 2, IN_PARENT + 0x2000),
            run(0x4000, 1, 0),
            run(0x6000, 1, IN_PARENT + 0x6000),
        ];
        let parent = split(&mut p);
        assert_eq!(p.pages, vec![run(0x4000, 1, 0)]);
        let got: Vec<(u32, u64, u64)> = parent.iter().map(|r| (r.pid, r.addr, r.pages)).collect();
        assert_eq!(got, vec![(7, 0x1000, 3), (7, 0x6000, 1)]);
    }
}
