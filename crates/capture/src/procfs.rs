//! Capture's view of `/proc/PID`, over [`psnc_proc`] (where every `/proc` file is parsed).
//!
//! The types and parsers are psnc_proc's; this module keeps the names the rest of capture uses and
//! turns [`psnc_proc::ProcError`] into [`CaptureError`]: a file that vanished because the process
//! exited becomes [`CaptureError::NoSuchProcess`], other read errors [`CaptureError::Proc`], a
//! parse error [`CaptureError::ProcParse`] with the file and the line or field. Two things are
//! capture's own: the image's bits for smaps mnemonics ([`VmFlags::bits`]) and the image's
//! [`Rlimit`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use psnc_format::model::{vm_flags, Rlimit};
use psnc_proc::ProcError;

use crate::error::{CaptureError, Result};

pub use psnc_proc::{
    strip_deleted, EpollTfd, FdInfo, MapsEntry, PageEntry, Stat, Status, TimerInfo, PAGE_SIZE,
};

/// A psnc_proc error as a capture error about process `pid`.
fn from_proc(pid: i32, e: ProcError) -> CaptureError {
    match e {
        ProcError::Open { path, source } | ProcError::Read { path, source } => {
            CaptureError::proc_io(pid, path, source)
        }
        ProcError::Parse { path, detail } => CaptureError::parse(path, detail.to_string()),
    }
}

/// The `/proc/PID` directory of one process (or `/proc/PID/task/TID` of one thread).
#[derive(Debug, Clone)]
pub struct ProcDir {
    inner: psnc_proc::ProcDir,
}

impl ProcDir {
    /// `/proc/PID`.
    pub fn new(pid: i32) -> Self {
        ProcDir {
            inner: psnc_proc::ProcDir::new(pid),
        }
    }

    /// `/proc/PID/task/TID`, for per-thread files.
    pub fn task(&self, tid: i32) -> Self {
        ProcDir {
            inner: self.inner.task(tid),
        }
    }

    /// The PID this directory belongs to (the process, also for a task directory).
    pub fn pid(&self) -> i32 {
        self.inner.pid()
    }

    /// The path of a file inside this directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.inner.path(name)
    }

    /// Whether the directory exists (the process has not been reaped).
    pub fn exists(&self) -> bool {
        self.inner.exists()
    }

    fn lift<T>(&self, r: psnc_proc::Result<T>) -> Result<T> {
        r.map_err(|e| from_proc(self.pid(), e))
    }

    /// Reads a file as bytes.
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>> {
        self.lift(self.inner.read_bytes(name))
    }

    /// Reads a file as text (procfs text is ASCII except for paths and names, which are kept
    /// lossily: a non-UTF-8 path is reported, never silently changed, where it matters).
    pub fn read_string(&self, name: &str) -> Result<String> {
        self.lift(self.inner.read_string(name))
    }

    /// Reads a symbolic link (`exe`, `cwd`, `root`, `fd/N`).
    pub fn read_link(&self, name: &str) -> Result<String> {
        self.lift(self.inner.read_link(name))
    }

    /// `stat`.
    pub fn stat(&self) -> Result<Stat> {
        self.lift(self.inner.stat())
    }

    /// `status`.
    pub fn status(&self) -> Result<Status> {
        self.lift(self.inner.status())
    }

    /// `maps`.
    pub fn maps(&self) -> Result<Vec<MapsEntry>> {
        self.lift(self.inner.maps())
    }

    /// The `VmFlags` of every VMA, from `smaps`, keyed by start address.
    pub fn smaps_vm_flags(&self) -> Result<BTreeMap<u64, VmFlags>> {
        let flags = self.lift(self.inner.smaps_vm_flags())?;
        Ok(flags.into_iter().map(|(k, v)| (k, v.into())).collect())
    }

    /// `limits`, as 16 entries indexed by `RLIMIT_*`.
    pub fn limits(&self) -> Result<Vec<Rlimit>> {
        let limits = self.lift(self.inner.limits())?;
        Ok(limits.into_iter().map(rlimit).collect())
    }

    /// `personality` (readable only by a tracer or the owner with ptrace access).
    pub fn personality(&self) -> Result<u32> {
        self.lift(self.inner.personality())
    }

    /// `fdinfo/FD`.
    pub fn fdinfo(&self, fd: i32) -> Result<FdInfo> {
        self.lift(self.inner.fdinfo(fd))
    }

    /// The `tfd:` lines of `fdinfo/FD` of an epoll fd (for files.rs's epoll watches, which still
    /// parse them themselves until the fds/ split lands).
    pub fn epoll_tfds(&self, fd: i32) -> Result<Vec<EpollTfd>> {
        self.lift(self.inner.epoll_tfds(fd))
    }

    /// `timers` (POSIX timers; empty when there are none).
    pub fn timers(&self) -> Result<Vec<TimerInfo>> {
        self.lift(self.inner.timers())
    }

    /// The numeric entries of a directory (`task`, `fd`), sorted.
    pub fn list_numeric(&self, name: &str) -> Result<Vec<i32>> {
        self.lift(self.inner.list_numeric(name))
    }

    /// Opens `pagemap` for [`Pagemap::read`].
    pub fn pagemap(&self) -> Result<Pagemap> {
        Ok(Pagemap {
            inner: self.lift(self.inner.pagemap())?,
            pid: self.pid(),
        })
    }
}

/// The `VmFlags` line of one smaps entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmFlags {
    /// The flags the model keeps, as [`vm_flags`] bits.
    pub bits: u32,
    /// Every mnemonic as printed, for checks the model has no bit for (`pf`, `sf`, ...).
    pub all: psnc_proc::VmFlags,
}

impl VmFlags {
    /// The flags of these mnemonics.
    pub fn from_mnemonics<'a>(m: impl IntoIterator<Item = &'a str>) -> Self {
        psnc_proc::VmFlags::from_mnemonics(m).into()
    }

    /// Whether the mnemonic is present.
    pub fn has(&self, mnemonic: &str) -> bool {
        self.all.has(mnemonic)
    }
}

impl From<psnc_proc::VmFlags> for VmFlags {
    fn from(f: psnc_proc::VmFlags) -> Self {
        VmFlags {
            bits: f.mnemonics().fold(0, |b, m| b | vm_flag_bit(m)),
            all: f,
        }
    }
}

/// Maps an smaps mnemonic to its [`vm_flags`] bit (0 for the ones the model does not keep).
fn vm_flag_bit(mnemonic: &str) -> u32 {
    match mnemonic {
        "gd" => vm_flags::GROWSDOWN,
        "lo" => vm_flags::LOCKED,
        "dd" => vm_flags::DONTDUMP,
        "dc" => vm_flags::DONTFORK,
        "wf" => vm_flags::WIPEONFORK,
        "hg" => vm_flags::HUGEPAGE,
        "nh" => vm_flags::NOHUGEPAGE,
        "mg" => vm_flags::MERGEABLE,
        "rr" => vm_flags::RANDOM,
        "sr" => vm_flags::SEQUENTIAL,
        "io" => vm_flags::IO,
        "sd" => vm_flags::SOFTDIRTY,
        "ht" => vm_flags::HUGETLB,
        "lf" => vm_flags::LOCKONFAULT,
        _ => 0,
    }
}

fn rlimit(l: psnc_proc::Limit) -> Rlimit {
    Rlimit {
        cur: l.cur,
        max: l.max,
    }
}

/// An open `/proc/PID/pagemap`.
#[derive(Debug)]
pub struct Pagemap {
    inner: psnc_proc::Pagemap,
    pid: i32,
}

impl Pagemap {
    /// Reads the entries of `npages` pages starting at `addr` into `out` (cleared first).
    pub fn read(&self, addr: u64, npages: u64, out: &mut Vec<PageEntry>) -> Result<()> {
        self.inner
            .read(addr, npages, out)
            .map_err(|e| from_proc(self.pid, e))
    }

    /// The path, for messages.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The regions `(start, end, categories)` of `[start, end)` with a category of `any_of`
    /// (`psnc_ptrace::uffd::category`), reporting those of `report`: `PAGEMAP_SCAN`, Linux 6.7.
    pub fn scan(
        &self,
        start: u64,
        end: u64,
        any_of: u64,
        report: u64,
        out: &mut Vec<(u64, u64, u64)>,
    ) -> std::result::Result<(), psnc_ptrace::PtraceError> {
        psnc_ptrace::uffd::scan_pages(self.inner.file(), self.pid, start, end, any_of, report, out)
    }
}

/// Parses `/proc/PID/stat` ([`psnc_proc::stat::parse_stat`]).
pub fn parse_stat(text: &str) -> Result<Stat, String> {
    psnc_proc::stat::parse_stat(text).map_err(|e| e.to_string())
}

/// Parses `/proc/PID/status` ([`psnc_proc::status::parse_status`]).
pub fn parse_status(text: &str) -> Result<Status, String> {
    psnc_proc::status::parse_status(text).map_err(|e| e.to_string())
}

/// Parses `/proc/PID/maps` ([`psnc_proc::maps::parse_maps`]).
pub fn parse_maps(text: &str) -> Result<Vec<MapsEntry>, String> {
    psnc_proc::maps::parse_maps(text).map_err(|e| e.to_string())
}

/// Parses the `VmFlags` of every entry of `/proc/PID/smaps`, keyed by the entry's start address.
pub fn parse_smaps_vm_flags(text: &str) -> Result<BTreeMap<u64, VmFlags>, String> {
    let flags = psnc_proc::smaps::parse_smaps_vm_flags(text).map_err(|e| e.to_string())?;
    Ok(flags.into_iter().map(|(k, v)| (k, v.into())).collect())
}

/// Parses `/proc/PID/limits` into 16 entries indexed by `RLIMIT_*` (`unlimited` = `u64::MAX`).
pub fn parse_limits(text: &str) -> Result<Vec<Rlimit>, String> {
    let limits = psnc_proc::limits::parse_limits(text).map_err(|e| e.to_string())?;
    Ok(limits.into_iter().map(rlimit).collect())
}

/// Parses `/proc/PID/fdinfo/FD` ([`psnc_proc::fdinfo::parse_fdinfo`]).
pub fn parse_fdinfo(text: &str) -> Result<FdInfo, String> {
    psnc_proc::fdinfo::parse_fdinfo(text).map_err(|e| e.to_string())
}

/// Parses `/proc/PID/timers` ([`psnc_proc::timers::parse_timers`]).
pub fn parse_timers(text: &str) -> Result<Vec<TimerInfo>, String> {
    psnc_proc::timers::parse_timers(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The parsers' own tests live in psnc_proc; these cover what capture adds.

    #[test]
    fn smaps_mnemonics_become_model_bits() {
        let text = "5589996e7000-5589996e9000 r--p 00000000 fe:00 247282     /usr/bin/head\n\
            Size:                  8 kB\nKernelPageSize:        4 kB\nVmFlags: rd mr mw me \n\
            7fff0bc76000-7fff0bc97000 rw-p 00000000 00:00 0                          [stack]\n\
            Rss:                   8 kB\nVmFlags: rd wr mr mw me gd ac dd lo wf \n";
        let f = parse_smaps_vm_flags(text).unwrap();
        assert_eq!(f[&0x5589996e7000].bits, 0);
        assert!(f[&0x5589996e7000].has("mr"));
        let st = &f[&0x7fff0bc76000];
        assert_eq!(
            st.bits,
            vm_flags::GROWSDOWN | vm_flags::DONTDUMP | vm_flags::LOCKED | vm_flags::WIPEONFORK
        );
    }

    #[test]
    fn limits_become_model_rlimits() {
        let err = parse_limits("Limit\nMax cpu time unlimited unlimited seconds\n").unwrap_err();
        assert_eq!(err, "no \"Max file size\" line");
        let me = ProcDir::new(std::process::id() as i32);
        let l = me.limits().unwrap();
        assert_eq!(l.len(), 16);
        assert!(l.iter().all(|r: &Rlimit| r.cur <= r.max));
    }

    #[test]
    fn errors_keep_their_capture_meaning() {
        assert_eq!(
            parse_stat("1 (x) S 0 0").unwrap_err(),
            "field 6 missing (have 5)"
        );
        // PID 0 has no /proc directory: reading it is "no such process".
        let err = ProcDir::new(0).stat().unwrap_err();
        assert!(
            matches!(err, CaptureError::NoSuchProcess { pid: 0 }),
            "{err}"
        );
        let err = CaptureError::parse("/proc/1/maps", "line 1: bad start \"zz\"");
        assert_eq!(
            err.to_string(),
            "cannot parse /proc/1/maps: line 1: bad start \"zz\""
        );
    }

    #[test]
    fn own_proc_files_parse() {
        let me = ProcDir::new(std::process::id() as i32);
        let stat = me.stat().unwrap();
        assert_eq!(stat.pid, std::process::id() as i32);
        let status = me.status().unwrap();
        assert_eq!(status.tgid, stat.pid);
        // The test harness's other threads map and unmap memory between the two reads (this
        // process is not stopped, as a target is): read both until they describe one layout.
        let (maps, flags) = (0..50)
            .map(|_| (me.maps().unwrap(), me.smaps_vm_flags().unwrap()))
            .find(|(m, f)| m.len() == f.len() && m.iter().all(|x| f.contains_key(&x.start)))
            .expect("maps and smaps never agreed in 50 reads");
        assert!(!flags.is_empty());
        assert!(maps.iter().any(|m| m.path == "[stack]"));
        me.personality().unwrap();
        assert!(!me.list_numeric("task").unwrap().is_empty());
        // The first page of the stack VMA's top is present (we are running on it).
        let pm = me.pagemap().unwrap();
        let stack = maps.iter().find(|m| m.path == "[stack]").unwrap();
        let mut v = Vec::new();
        pm.read(stack.end - PAGE_SIZE, 1, &mut v).unwrap();
        assert_eq!(v.len(), 1);
        assert!(me.timers().unwrap().is_empty());
        // fd 0 is no epoll fd: its fdinfo has no tfd: lines.
        assert!(me.epoll_tfds(0).unwrap().is_empty());
    }
}
