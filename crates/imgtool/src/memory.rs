//! The stored memory of one process: what the image holds at an address, and why it holds nothing
//! where it holds nothing.
//!
//! An image stores only the pages a process had touched (present or swapped); everything else in
//! its address space is either never touched (anonymous memory that reads as zero), file-backed
//! (the file's contents apply), provided by the kernel ([vvar], [vsyscall]) or not mapped at all.
//! The hex dump and the search say which, instead of inventing bytes.

use std::fmt;

use psnc_format::model::{PageRun, Process, Vma, VmaKind};
use psnc_format::Image;
use serde::Serialize;

use crate::{Error, Result};

const PAGE: u64 = 4096;

/// Why the image holds no bytes for an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Missing {
    /// No VMA covers the address.
    Unmapped,
    /// Anonymous memory (heap, stack, anonymous mapping) the process never touched.
    NeverTouched,
    /// A file mapping whose page was not modified: the file's bytes at `offset` apply.
    FileBacked {
        /// The mapped file.
        path: String,
        /// Offset in the file of the first missing byte.
        offset: u64,
    },
    /// Memory the kernel provides ([vdso], [vvar], [vsyscall]).
    Kernel(&'static str),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Unmapped => f.write_str("not mapped"),
            Missing::NeverTouched => f.write_str("not stored: never touched (reads as zero)"),
            Missing::FileBacked { path, offset } => {
                write!(f, "not stored: file-backed ({path} at offset {offset:#x})")
            }
            Missing::Kernel(name) => write!(f, "not stored: provided by the kernel ({name})"),
        }
    }
}

/// A piece of an address range: stored bytes, or a reason for their absence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Bytes stored in the image.
    Stored {
        /// Address of the first byte.
        start: u64,
        /// The bytes (borrowed from the image).
        bytes: &'a [u8],
    },
    /// No bytes stored.
    Missing {
        /// First address.
        start: u64,
        /// One past the last address.
        end: u64,
        /// Why.
        why: Missing,
    },
}

impl Segment<'_> {
    /// First address.
    pub fn start(&self) -> u64 {
        match self {
            Segment::Stored { start, .. } | Segment::Missing { start, .. } => *start,
        }
    }

    /// One past the last address.
    pub fn end(&self) -> u64 {
        match self {
            Segment::Stored { start, bytes } => start + bytes.len() as u64,
            Segment::Missing { end, .. } => *end,
        }
    }
}

/// A VMA as `/proc/PID/maps` would show it: `start-end perms name[+offset]`.
pub fn describe_vma(v: &Vma) -> String {
    let perm = |bit: u32, c: char| if v.prot & bit != 0 { c } else { '-' };
    let perms = format!(
        "{}{}{}{}",
        perm(1, 'r'),
        perm(2, 'w'),
        perm(4, 'x'),
        if v.shared { 's' } else { 'p' }
    );
    let name = match v.kind {
        VmaKind::Anonymous => "anonymous".to_string(),
        VmaKind::Heap => "[heap]".into(),
        VmaKind::Stack => "[stack]".into(),
        VmaKind::Vdso => "[vdso]".into(),
        VmaKind::Vvar => "[vvar]".into(),
        VmaKind::VvarVclock => "[vvar_vclock]".into(),
        VmaKind::Vsyscall => "[vsyscall]".into(),
        VmaKind::File => {
            let path = v.file.as_ref().map_or("<no file>", |f| f.path.as_str());
            format!("{path}+{:#x}", v.file_offset)
        }
    };
    format!("{:#x}-{:#x} {perms} {name}", v.start, v.end)
}

/// One search hit.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// The process.
    pub pid: u32,
    /// Address of the first matching byte.
    pub addr: u64,
    /// The VMA holding it, as `describe_vma` prints it.
    pub vma: Option<String>,
    /// Address of the first context byte.
    pub context_start: u64,
    /// Context bytes around the hit as hex; `--` where the image stores nothing.
    pub context_hex: String,
    /// The same context as printable ASCII (`.` for other bytes, space for missing ones).
    pub context_ascii: String,
}

/// The stored memory of one process of an image.
#[derive(Debug)]
pub struct ProcessMemory<'a> {
    img: &'a Image,
    /// The process.
    pub process: &'a Process,
    runs: Vec<PageRun>,
}

fn run_end(r: &PageRun) -> u64 {
    r.addr.saturating_add(r.pages.saturating_mul(PAGE))
}

impl<'a> ProcessMemory<'a> {
    /// The memory of the process with `pid`, or of the first process when `pid` is `None`.
    pub fn new(img: &'a Image, image: &str, pid: Option<u32>) -> Result<Self> {
        let procs = &img.checkpoint().processes;
        let found = match pid {
            Some(pid) => procs.iter().find(|p| p.pid == pid),
            None => procs.first(),
        };
        match found {
            Some(p) => Ok(Self::of(img, p)),
            None => Err(Error::NoSuchPid {
                image: image.into(),
                pid: pid.unwrap_or(0),
                available: procs.iter().map(|p| p.pid).collect(),
            }),
        }
    }

    /// The memory of `process`, which must belong to `img`.
    pub fn of(img: &'a Image, process: &'a Process) -> Self {
        let mut runs = process.pages.clone();
        // Runs are sorted in a valid image; sorting keeps lookups right in an invalid one too.
        runs.sort_by_key(|r| r.addr);
        ProcessMemory { img, process, runs }
    }

    /// The VMA containing `addr`.
    pub fn vma_at(&self, addr: u64) -> Option<&'a Vma> {
        self.process
            .vmas
            .iter()
            .find(|v| v.start <= addr && addr < v.end)
    }

    fn missing_reason(&self, v: &Vma, addr: u64) -> Missing {
        match v.kind {
            VmaKind::File => Missing::FileBacked {
                path: v
                    .file
                    .as_ref()
                    .map_or_else(|| "<no file>".into(), |f| f.path.clone()),
                offset: v.file_offset.saturating_add(addr - v.start),
            },
            VmaKind::Vdso => Missing::Kernel("[vdso]"),
            VmaKind::Vvar => Missing::Kernel("[vvar]"),
            VmaKind::VvarVclock => Missing::Kernel("[vvar_vclock]"),
            VmaKind::Vsyscall => Missing::Kernel("[vsyscall]"),
            VmaKind::Anonymous | VmaKind::Heap | VmaKind::Stack => Missing::NeverTouched,
        }
    }

    fn map_err(&self, source: psnc_format::FormatError) -> Error {
        Error::Image {
            image: format!("pid {}", self.process.pid),
            source,
        }
    }

    /// Every stored run with its bytes, in address order.
    pub fn runs(&self) -> Result<Vec<(u64, &'a [u8])>> {
        self.runs
            .iter()
            .map(|r| {
                self.img
                    .page_bytes(r)
                    .map(|b| (r.addr, b))
                    .map_err(|e| self.map_err(e))
            })
            .collect()
    }

    /// Splits `[start, end)` into stored and missing segments, in order.
    pub fn segments(&self, start: u64, end: u64) -> Result<Vec<Segment<'a>>> {
        let mut out: Vec<Segment<'a>> = Vec::new();
        let mut a = start;
        while a < end {
            let idx = self.runs.partition_point(|r| r.addr <= a);
            let containing = idx
                .checked_sub(1)
                .map(|i| &self.runs[i])
                .filter(|r| a < run_end(r));
            if let Some(r) = containing {
                let bytes = self.img.page_bytes(r).map_err(|e| self.map_err(e))?;
                let seg_end = end.min(run_end(r));
                let lo = (a - r.addr) as usize;
                let hi = (seg_end - r.addr) as usize;
                out.push(Segment::Stored {
                    start: a,
                    bytes: &bytes[lo..hi],
                });
                a = seg_end;
                continue;
            }
            let next_run = self.runs.get(idx).map_or(u64::MAX, |r| r.addr);
            let (seg_end, why) = match self.vma_at(a) {
                Some(v) => (end.min(v.end).min(next_run), self.missing_reason(v, a)),
                None => {
                    let next_vma = self
                        .process
                        .vmas
                        .iter()
                        .map(|v| v.start)
                        .filter(|&s| s > a)
                        .min();
                    (
                        end.min(next_vma.unwrap_or(u64::MAX)).min(next_run),
                        Missing::Unmapped,
                    )
                }
            };
            out.push(Segment::Missing {
                start: a,
                end: seg_end,
                why,
            });
            a = seg_end;
        }
        Ok(out)
    }

    /// The bytes of `[start, start + len)`, `None` where the image stores nothing.
    pub fn read(&self, start: u64, len: u64) -> Result<Vec<Option<u8>>> {
        let end = start
            .checked_add(len)
            .ok_or(Error::AddressOverflow { addr: start, len })?;
        let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
        for s in self.segments(start, end)? {
            match s {
                Segment::Stored { bytes, .. } => out.extend(bytes.iter().map(|b| Some(*b))),
                Segment::Missing { start, end, .. } => out.extend((start..end).map(|_| None)),
            }
        }
        Ok(out)
    }

    /// Finds `needle` in the stored memory, also across adjacent runs; at most `max_hits` hits,
    /// each with `context` bytes on either side.
    pub fn search(&self, needle: &[u8], max_hits: usize, context: u64) -> Result<Vec<Hit>> {
        if needle.is_empty() {
            return Err(Error::EmptyPattern);
        }
        let m = needle.len();
        let mut addrs = Vec::new();
        // `carry` holds the last m-1 bytes of the contiguous stored memory before the current
        // run (empty after a gap), so a match crossing a run boundary is found once, in the run
        // where it ends.
        let mut carry: Vec<u8> = Vec::new();
        let mut carry_end = 0u64;
        for (addr, bytes) in self.runs()? {
            if addr != carry_end {
                carry.clear();
            }
            if !carry.is_empty() {
                let mut window = carry.clone();
                window.extend_from_slice(&bytes[..bytes.len().min(m - 1)]);
                let base = addr - carry.len() as u64;
                find_all(&window, needle, |i| {
                    if i < carry.len() {
                        addrs.push(base + i as u64);
                    }
                    addrs.len() < max_hits
                });
            }
            if addrs.len() < max_hits {
                find_all(bytes, needle, |i| {
                    addrs.push(addr + i as u64);
                    addrs.len() < max_hits
                });
            }
            if addrs.len() >= max_hits {
                break;
            }
            if bytes.len() >= m - 1 {
                carry = bytes[bytes.len() - (m - 1)..].to_vec();
            } else {
                carry.extend_from_slice(bytes);
                let drop = carry.len().saturating_sub(m - 1);
                carry.drain(..drop);
            }
            carry_end = addr + bytes.len() as u64;
        }
        addrs.sort_unstable();
        addrs.truncate(max_hits);
        addrs
            .into_iter()
            .map(|addr| {
                let cstart = addr.saturating_sub(context);
                let cend = addr.saturating_add(m as u64).saturating_add(context);
                let bytes = self.read(cstart, cend - cstart)?;
                Ok(Hit {
                    pid: self.process.pid,
                    addr,
                    vma: self.vma_at(addr).map(describe_vma),
                    context_start: cstart,
                    context_hex: hex_with_gaps(&bytes),
                    context_ascii: ascii_with_gaps(&bytes),
                })
            })
            .collect()
    }
}

/// Calls `f` with each start index of `needle` in `hay` until `f` returns false.
fn find_all(hay: &[u8], needle: &[u8], mut f: impl FnMut(usize) -> bool) {
    let m = needle.len();
    if m == 0 || hay.len() < m {
        return;
    }
    let last = hay.len() - m;
    let mut i = 0;
    while i <= last {
        let Some(p) = hay[i..=last].iter().position(|&b| b == needle[0]) else {
            return;
        };
        let s = i + p;
        if &hay[s..s + m] == needle && !f(s) {
            return;
        }
        i = s + 1;
    }
}

/// Bytes as space-separated hex, `--` for missing ones.
pub fn hex_with_gaps(bytes: &[Option<u8>]) -> String {
    let v: Vec<String> = bytes
        .iter()
        .map(|b| b.map_or_else(|| "--".into(), |b| format!("{b:02x}")))
        .collect();
    v.join(" ")
}

/// Bytes as printable ASCII: `.` for unprintable, space for missing.
pub fn ascii_with_gaps(bytes: &[Option<u8>]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            Some(c) if c.is_ascii_graphic() || *c == b' ' => *c as char,
            Some(_) => '.',
            None => ' ',
        })
        .collect()
}

/// An `xxd`/`hexdump -C` style dump of `[start, start + bytes.len())`: 16 bytes a line, lines
/// aligned to 16, `--` where nothing is stored, blanks outside the range.
pub fn hexdump(start: u64, bytes: &[Option<u8>]) -> String {
    let end = start + bytes.len() as u64;
    let mut out = String::new();
    let mut line = start & !15;
    while line < end {
        let cells: Vec<Option<Option<u8>>> = (line..line + 16)
            .map(|a| (a >= start && a < end).then(|| bytes[(a - start) as usize]))
            .collect();
        let hex: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = match c {
                    None => "  ".to_string(),
                    Some(None) => "--".to_string(),
                    Some(Some(b)) => format!("{b:02x}"),
                };
                if i == 8 {
                    format!(" {s}")
                } else {
                    s
                }
            })
            .collect();
        let ascii: String = cells
            .iter()
            .map(|c| match c {
                Some(Some(b)) if b.is_ascii_graphic() || *b == b' ' => *b as char,
                Some(Some(_)) => '.',
                _ => ' ',
            })
            .collect();
        out.push_str(&format!("{line:08x}: {}  |{ascii}|\n", hex.join(" ")));
        line += 16;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_all_finds_overlapping_hits() {
        let mut hits = Vec::new();
        find_all(b"aaaa", b"aa", |i| {
            hits.push(i);
            true
        });
        assert_eq!(hits, [0, 1, 2]);
        hits.clear();
        find_all(b"xabxab", b"ab", |i| {
            hits.push(i);
            false
        });
        assert_eq!(hits, [1]);
    }

    #[test]
    fn hexdump_marks_missing_bytes() {
        let bytes = [Some(b'H'), Some(b'i'), None, None];
        let d = hexdump(0x1002, &bytes);
        assert_eq!(d.lines().count(), 1);
        assert!(d.starts_with("00001000:       48 69 -- --"), "{d}");
        assert!(d.contains("|  Hi  "), "{d}");
    }
}
