//! [`ProcDir`]: the files of one `/proc/PID` (or `/proc/PID/task/TID`) directory.
//!
//! Each reader opens one file, reads all of it and hands the text to that file's parser; every
//! error names the file. Procfs text is ASCII except for paths and names, which are kept lossily
//! (a path that is not UTF-8 is reported, never silently changed, where it matters).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{ParseError, ProcError, Result};
use crate::fdinfo::{parse_epoll_tfds, parse_fdinfo, EpollTfd, FdInfo};
use crate::limits::{parse_limits, Limit};
use crate::maps::{parse_maps, parse_maps_lossy, MapsEntry};
use crate::pagemap::Pagemap;
use crate::smaps::{read_smaps_vm_flags, SmapsError, VmFlags};
use crate::stat::{parse_stat, Stat};
use crate::status::{parse_status, status_field, Status};
use crate::timers::{parse_timers, TimerInfo};

/// Reads a whole file as bytes.
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut f = fs::File::open(path).map_err(|source| ProcError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    f.read_to_end(&mut buf).map_err(|source| ProcError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(buf)
}

/// Reads a whole file as text, lossily.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    Ok(String::from_utf8_lossy(&read_all(path)?).into_owned())
}

/// Lists the numeric entries of a directory (`/proc`, `task`, `fd`), sorted.
pub(crate) fn list_numeric_in(path: &Path) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    let dir = fs::read_dir(path).map_err(|source| ProcError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    for entry in dir {
        let entry = entry.map_err(|source| ProcError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Parses `/proc/PID/personality`: the persona as hex.
pub fn parse_personality(text: &str) -> std::result::Result<u32, ParseError> {
    u32::from_str_radix(text.trim(), 16)
        .map_err(|_| ParseError::field(format!("not hex: {text:?}")))
}

/// Parses `/proc/PID/task/TID/children`: the PIDs of the thread's children, space-separated, in
/// the kernel's order (empty when it has none).
pub fn parse_children(text: &str) -> std::result::Result<Vec<i32>, ParseError> {
    text.split_ascii_whitespace()
        .map(|s| {
            s.parse::<i32>()
                .map_err(|_| ParseError::field(format!("not a PID: {s:?}")))
        })
        .collect()
}

/// Parses `/proc/PID/syscall` (`fs/proc/base.c: proc_pid_syscall`) down to its first field: the
/// number of the system call the task is blocked in, `Some(-1)` when it is blocked outside one
/// (`-1 SP PC`), `None` when it is running (`running`). The arguments, stack and instruction
/// pointers that follow are not parsed.
pub fn parse_syscall_nr(text: &str) -> std::result::Result<Option<i64>, ParseError> {
    let first = text.split_ascii_whitespace().next().unwrap_or("");
    if first == "running" {
        return Ok(None);
    }
    first
        .parse::<i64>()
        .map(Some)
        .map_err(|_| ParseError::field(format!("not a syscall number: {text:?}")))
}

/// The `/proc/PID` directory of one process (or `/proc/PID/task/TID` of one thread).
#[derive(Debug, Clone)]
pub struct ProcDir {
    pid: i32,
    base: PathBuf,
}

impl ProcDir {
    /// `/proc/PID`.
    pub fn new(pid: i32) -> Self {
        ProcDir {
            pid,
            base: PathBuf::from(format!("/proc/{pid}")),
        }
    }

    /// `/proc/self`: this process, named so in messages.
    pub fn current() -> Self {
        ProcDir {
            pid: std::process::id() as i32,
            base: PathBuf::from("/proc/self"),
        }
    }

    /// `/proc/PID/task/TID`, for per-thread files.
    pub fn task(&self, tid: i32) -> Self {
        ProcDir {
            pid: self.pid,
            base: self.base.join("task").join(tid.to_string()),
        }
    }

    /// The PID this directory belongs to (the process, also for a task directory).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The path of a file inside this directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }

    /// Whether the directory exists (the process has not been reaped).
    pub fn exists(&self) -> bool {
        self.base.exists()
    }

    /// Reads a file as bytes (`auxv`, `cmdline`, ...).
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>> {
        read_all(&self.path(name))
    }

    /// Reads a file as text, lossily.
    pub fn read_string(&self, name: &str) -> Result<String> {
        read_text(&self.path(name))
    }

    /// Reads a symbolic link (`exe`, `cwd`, `root`, `fd/N`).
    pub fn read_link(&self, name: &str) -> Result<String> {
        let path = self.path(name);
        let target = fs::read_link(&path).map_err(|source| ProcError::Read { path, source })?;
        Ok(target.to_string_lossy().into_owned())
    }

    /// The numeric entries of a directory (`task`, `fd`), sorted.
    pub fn list_numeric(&self, name: &str) -> Result<Vec<i32>> {
        list_numeric_in(&self.path(name))
    }

    /// Reads a file and parses it, naming the file in a parse error.
    fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> std::result::Result<T, ParseError>,
    ) -> Result<T> {
        let text = self.read_string(name)?;
        parse(&text).map_err(|e| e.in_file(self.path(name)))
    }

    /// `comm`, without its newline.
    pub fn comm(&self) -> Result<String> {
        let text = self.read_string("comm")?;
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
    }

    /// `stat`.
    pub fn stat(&self) -> Result<Stat> {
        self.parsed("stat", parse_stat)
    }

    /// The scheduler state letter (`R`, `S`, `D`, `T`, `t`, `Z`, ...), field 3 of `stat`.
    pub fn state(&self) -> Result<char> {
        Ok(self.stat()?.state)
    }

    /// `status`.
    pub fn status(&self) -> Result<Status> {
        self.parsed("status", parse_status)
    }

    /// One line of `status` (e.g. `TracerPid`), trimmed; `Ok(None)` when the kernel does not
    /// print it.
    pub fn status_field(&self, key: &str) -> Result<Option<String>> {
        let text = self.read_string("status")?;
        Ok(status_field(&text, key).map(str::to_string))
    }

    /// `maps`, refusing a line that does not parse.
    pub fn maps(&self) -> Result<Vec<MapsEntry>> {
        self.parsed("maps", parse_maps)
    }

    /// `maps`, skipping the lines that do not parse.
    pub fn maps_lossy(&self) -> Result<Vec<MapsEntry>> {
        Ok(parse_maps_lossy(&self.read_string("maps")?))
    }

    /// The `VmFlags` of every VMA, from `smaps`, keyed by start address.
    pub fn smaps_vm_flags(&self) -> Result<BTreeMap<u64, VmFlags>> {
        let path = self.path("smaps");
        let f = fs::File::open(&path).map_err(|source| ProcError::Open {
            path: path.clone(),
            source,
        })?;
        read_smaps_vm_flags(f).map_err(|e| match e {
            SmapsError::Io(source) => ProcError::Read { path, source },
            SmapsError::Parse(p) => p.in_file(path),
        })
    }

    /// `limits`, as 16 entries indexed by `RLIMIT_*`.
    pub fn limits(&self) -> Result<Vec<Limit>> {
        self.parsed("limits", parse_limits)
    }

    /// `personality` (readable only by a tracer or the owner with ptrace access).
    pub fn personality(&self) -> Result<u32> {
        self.parsed("personality", parse_personality)
    }

    /// `children` of a task directory ([`ProcDir::task`]): the PIDs of that thread's children
    /// (the file exists only with `CONFIG_PROC_CHILDREN`).
    pub fn children(&self) -> Result<Vec<i32>> {
        self.parsed("children", parse_children)
    }

    /// The system call the task is blocked in, from `syscall` (see [`parse_syscall_nr`]; readable
    /// only with ptrace access to the task).
    pub fn syscall_nr(&self) -> Result<Option<i64>> {
        self.parsed("syscall", parse_syscall_nr)
    }

    /// `fdinfo/FD`.
    pub fn fdinfo(&self, fd: i32) -> Result<FdInfo> {
        self.parsed(&format!("fdinfo/{fd}"), parse_fdinfo)
    }

    /// The `tfd:` lines of `fdinfo/FD` of an epoll fd.
    pub fn epoll_tfds(&self, fd: i32) -> Result<Vec<EpollTfd>> {
        self.parsed(&format!("fdinfo/{fd}"), parse_epoll_tfds)
    }

    /// `timers` (POSIX timers; empty when there are none).
    pub fn timers(&self) -> Result<Vec<TimerInfo>> {
        self.parsed("timers", parse_timers)
    }

    /// Opens `pagemap` for [`Pagemap::read`].
    pub fn pagemap(&self) -> Result<Pagemap> {
        Pagemap::open(self.path("pagemap"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let d = ProcDir::new(42);
        assert_eq!(d.path("maps"), Path::new("/proc/42/maps"));
        assert_eq!(d.task(43).path("stat"), Path::new("/proc/42/task/43/stat"));
        assert_eq!(d.task(43).pid(), 42);
        assert_eq!(
            ProcDir::current().path("maps"),
            Path::new("/proc/self/maps")
        );
    }

    #[test]
    fn personality() {
        assert_eq!(parse_personality("00400000\n"), Ok(0x40_0000));
        assert_eq!(
            parse_personality("zz\n").unwrap_err().to_string(),
            "not hex: \"zz\\n\""
        );
    }

    #[test]
    fn children() {
        assert_eq!(parse_children(""), Ok(vec![]));
        assert_eq!(parse_children("2939 \n"), Ok(vec![2939]));
        assert_eq!(parse_children("12 7 300 "), Ok(vec![12, 7, 300]));
        assert_eq!(
            parse_children("12 x ").unwrap_err().to_string(),
            "not a PID: \"x\""
        );
    }

    #[test]
    fn syscall_nr() {
        let blocked = "230 0x0 0x0 0x7ffd5e0c1b20 0x7ffd5e0c1b20 0x0 0x0 0x7ffd5e0c1b08 \
                       0x7f80f1ee57fa\n";
        assert_eq!(parse_syscall_nr(blocked), Ok(Some(230)));
        assert_eq!(
            parse_syscall_nr("-1 0x7ffd5e0c1b08 0x401000\n"),
            Ok(Some(-1))
        );
        assert_eq!(parse_syscall_nr("running\n"), Ok(None));
        assert_eq!(
            parse_syscall_nr("").unwrap_err().to_string(),
            "not a syscall number: \"\""
        );
    }

    #[test]
    fn own_children_and_syscall() {
        let me = ProcDir::current();
        // A thread of the test harness may end between the listing and the read.
        let all = |me: &ProcDir| -> Vec<i32> {
            me.list_numeric("task")
                .unwrap()
                .into_iter()
                .flat_map(|t| me.task(t).children().unwrap_or_default())
                .collect()
        };
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let listed = all(&me);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(listed.contains(&(child.id() as i32)), "{listed:?}");
        assert!(!all(&me).contains(&(child.id() as i32)));
        // The reading thread sees itself in read(2); another thread is blocked or running.
        let nr = me.syscall_nr().unwrap();
        assert!(!matches!(nr, Some(n) if n < -1), "{nr:?}");
    }

    #[test]
    fn errors_name_the_file() {
        // PID 0 never has a /proc directory.
        let d = ProcDir::new(0);
        assert!(!d.exists());
        let err = d.stat().unwrap_err();
        assert!(matches!(err, ProcError::Open { .. }), "{err:?}");
        assert_eq!(
            err.io_error().and_then(|e| e.raw_os_error()),
            Some(libc::ENOENT)
        );
        assert!(
            err.to_string().starts_with("cannot open /proc/0/stat: "),
            "{err}"
        );
        assert!(matches!(
            d.list_numeric("task"),
            Err(ProcError::Open { .. })
        ));
        assert!(matches!(d.read_link("exe"), Err(ProcError::Read { .. })));
    }

    #[test]
    fn own_directory() {
        let me = ProcDir::new(std::process::id() as i32);
        assert!(me.exists());
        assert!(!me.comm().unwrap().is_empty());
        assert!(!me.comm().unwrap().ends_with('\n'));
        assert!(me.personality().is_ok());
        assert!(!me.read_bytes("auxv").unwrap().is_empty());
        assert!(me.read_link("exe").unwrap().starts_with('/'));
        let tasks = me.list_numeric("task").unwrap();
        assert!(tasks.contains(&me.pid()));
        // Each task directory parses too.
        assert!("RSD".contains(me.state().unwrap()));
        let t = me.task(me.pid());
        assert_eq!(t.stat().unwrap().pid, me.pid());
        assert_eq!(t.status().unwrap().tgid, me.pid());
    }
}
