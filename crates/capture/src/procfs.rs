//! Parsers for the `/proc/PID` files capture reads.
//!
//! Each parser is a pure function of the file's text (unit-tested against samples of the kernel's
//! exact output) plus a thin reader on [`ProcDir`] that names the file in its errors. Only what
//! capture uses is parsed. Formats follow `fs/proc/` of Linux 6.x; where a field is missing on an
//! older kernel the parser says which field and which file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use psnc_format::model::{vm_flags, Rlimit};

use crate::error::{CaptureError, Result};

/// Size of a page on x86 (the only page size capture handles; huge pages show as 4 KiB pages in
/// pagemap).
pub const PAGE_SIZE: u64 = 4096;

/// `PF_KTHREAD` in the `flags` field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

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

    /// Reads a file as bytes.
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path(name);
        let mut buf = Vec::new();
        fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| CaptureError::proc_io(self.pid, &path, e))?;
        Ok(buf)
    }

    /// Reads a file as text (procfs text is ASCII except for paths and names, which are kept
    /// lossily: a non-UTF-8 path is reported, never silently changed, where it matters).
    pub fn read_string(&self, name: &str) -> Result<String> {
        let bytes = self.read_bytes(name)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Reads a symbolic link (`exe`, `cwd`, `root`, `fd/N`).
    pub fn read_link(&self, name: &str) -> Result<String> {
        let path = self.path(name);
        let target = fs::read_link(&path).map_err(|e| CaptureError::proc_io(self.pid, &path, e))?;
        Ok(target.to_string_lossy().into_owned())
    }

    /// `stat`.
    pub fn stat(&self) -> Result<Stat> {
        let text = self.read_string("stat")?;
        parse_stat(&text).map_err(|d| CaptureError::parse(self.path("stat"), d))
    }

    /// `status`.
    pub fn status(&self) -> Result<Status> {
        let text = self.read_string("status")?;
        parse_status(&text).map_err(|d| CaptureError::parse(self.path("status"), d))
    }

    /// `maps`.
    pub fn maps(&self) -> Result<Vec<MapsEntry>> {
        let text = self.read_string("maps")?;
        parse_maps(&text).map_err(|d| CaptureError::parse(self.path("maps"), d))
    }

    /// The `VmFlags` of every VMA, from `smaps`, keyed by start address.
    pub fn smaps_vm_flags(&self) -> Result<BTreeMap<u64, VmFlags>> {
        let text = self.read_string("smaps")?;
        parse_smaps_vm_flags(&text).map_err(|d| CaptureError::parse(self.path("smaps"), d))
    }

    /// `limits`, as 16 entries indexed by `RLIMIT_*`.
    pub fn limits(&self) -> Result<Vec<Rlimit>> {
        let text = self.read_string("limits")?;
        parse_limits(&text).map_err(|d| CaptureError::parse(self.path("limits"), d))
    }

    /// `personality` (readable only by a tracer or the owner with ptrace access).
    pub fn personality(&self) -> Result<u32> {
        let text = self.read_string("personality")?;
        u32::from_str_radix(text.trim(), 16).map_err(|_| {
            CaptureError::parse(self.path("personality"), format!("not hex: {text:?}"))
        })
    }

    /// `fdinfo/FD`.
    pub fn fdinfo(&self, fd: i32) -> Result<FdInfo> {
        let name = format!("fdinfo/{fd}");
        let text = self.read_string(&name)?;
        parse_fdinfo(&text).map_err(|d| CaptureError::parse(self.path(&name), d))
    }

    /// `timers` (POSIX timers; empty when there are none).
    pub fn timers(&self) -> Result<Vec<TimerInfo>> {
        let text = self.read_string("timers")?;
        parse_timers(&text).map_err(|d| CaptureError::parse(self.path("timers"), d))
    }

    /// The numeric entries of a directory (`task`, `fd`), sorted.
    pub fn list_numeric(&self, name: &str) -> Result<Vec<i32>> {
        let path = self.path(name);
        let mut out = Vec::new();
        let dir = fs::read_dir(&path).map_err(|e| CaptureError::proc_io(self.pid, &path, e))?;
        for entry in dir {
            let entry = entry.map_err(|e| CaptureError::proc_io(self.pid, &path, e))?;
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

    /// Opens `pagemap` for [`Pagemap::read`].
    pub fn pagemap(&self) -> Result<Pagemap> {
        let path = self.path("pagemap");
        let file = fs::File::open(&path).map_err(|e| CaptureError::proc_io(self.pid, &path, e))?;
        Ok(Pagemap {
            file,
            path,
            pid: self.pid,
        })
    }
}

/// The fields of `/proc/PID/stat` capture uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// Field 1.
    pub pid: i32,
    /// Field 2, without the parentheses.
    pub comm: String,
    /// Field 3: R, S, D, T, t, Z, X, I, ...
    pub state: char,
    /// Field 4.
    pub ppid: i32,
    /// Field 5.
    pub pgrp: i32,
    /// Field 6.
    pub session: i32,
    /// Field 9: `PF_*` flags.
    pub flags: u64,
    /// Field 20.
    pub num_threads: i64,
    /// Field 22, in clock ticks since boot.
    pub start_time: u64,
    /// Fields 26, 27, 28.
    pub start_code: u64,
    /// Field 27.
    pub end_code: u64,
    /// Field 28.
    pub start_stack: u64,
    /// Field 38: the signal sent to the parent at exit.
    pub exit_signal: i32,
    /// Fields 45..51.
    pub start_data: u64,
    /// Field 46.
    pub end_data: u64,
    /// Field 47.
    pub start_brk: u64,
    /// Field 48.
    pub arg_start: u64,
    /// Field 49.
    pub arg_end: u64,
    /// Field 50.
    pub env_start: u64,
    /// Field 51.
    pub env_end: u64,
}

impl Stat {
    /// Whether the task is a kernel thread.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Parses `/proc/PID/stat`. The command name is between the first `(` and the *last* `)`, since it
/// may itself contain spaces and parentheses.
pub fn parse_stat(text: &str) -> Result<Stat, String> {
    let open = text.find('(').ok_or("no '(' before the command name")?;
    let close = text.rfind(')').ok_or("no ')' after the command name")?;
    if close < open {
        return Err("')' before '('".into());
    }
    let pid = text[..open]
        .trim()
        .parse::<i32>()
        .map_err(|_| format!("bad pid {:?}", &text[..open]))?;
    let comm = text[open + 1..close].to_string();
    // Fields from 3 on; index 0 here is field 3.
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize| -> Result<&str, String> {
        rest.get(n - 3)
            .copied()
            .ok_or_else(|| format!("field {n} missing (have {})", rest.len() + 2))
    };
    let num = |n: usize| -> Result<u64, String> {
        let s = field(n)?;
        s.parse::<u64>()
            .map_err(|_| format!("field {n} is not a number: {s:?}"))
    };
    let int = |n: usize| -> Result<i64, String> {
        let s = field(n)?;
        s.parse::<i64>()
            .map_err(|_| format!("field {n} is not a number: {s:?}"))
    };
    let small = |n: usize| -> Result<i32, String> {
        let v = int(n)?;
        i32::try_from(v).map_err(|_| format!("field {n} out of range: {v}"))
    };
    let state = field(3)?.chars().next().ok_or("empty state field")?;
    Ok(Stat {
        pid,
        comm,
        state,
        ppid: small(4)?,
        pgrp: small(5)?,
        session: small(6)?,
        flags: num(9)?,
        num_threads: int(20)?,
        start_time: num(22)?,
        start_code: num(26)?,
        end_code: num(27)?,
        start_stack: num(28)?,
        exit_signal: small(38)?,
        start_data: num(45)?,
        end_data: num(46)?,
        start_brk: num(47)?,
        arg_start: num(48)?,
        arg_end: num(49)?,
        env_start: num(50)?,
        env_end: num(51)?,
    })
}

/// The fields of `/proc/PID/status` capture uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name`.
    pub name: String,
    /// `Umask`.
    pub umask: u32,
    /// First character of `State`.
    pub state: char,
    /// `Tgid`.
    pub tgid: i32,
    /// `TracerPid` (0 when not traced).
    pub tracer_pid: i32,
    /// `Uid`: real, effective, saved, filesystem.
    pub uids: [u32; 4],
    /// `Gid`: real, effective, saved, filesystem.
    pub gids: [u32; 4],
    /// `Groups`.
    pub groups: Vec<u32>,
    /// `Kthread` (6.x; false when the line is absent).
    pub kthread: bool,
    /// `Threads`.
    pub threads: u32,
    /// `SigPnd` (thread-private pending set).
    pub sig_pnd: u64,
    /// `ShdPnd` (process-wide pending set).
    pub shd_pnd: u64,
    /// `SigBlk`.
    pub sig_blk: u64,
    /// `SigIgn`.
    pub sig_ign: u64,
    /// `SigCgt`.
    pub sig_cgt: u64,
    /// `CapInh`.
    pub cap_inh: u64,
    /// `CapPrm`.
    pub cap_prm: u64,
    /// `CapEff`.
    pub cap_eff: u64,
    /// `CapBnd`.
    pub cap_bnd: u64,
    /// `CapAmb`.
    pub cap_amb: u64,
    /// `NoNewPrivs`.
    pub no_new_privs: bool,
    /// `Seccomp`: 0 disabled, 1 strict, 2 filter.
    pub seccomp: u32,
}

/// Parses `/proc/PID/status`. Lines capture needs are required; the others are ignored.
pub fn parse_status(text: &str) -> Result<Status, String> {
    let mut map: BTreeMap<&str, &str> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            map.insert(k, v.trim());
        }
    }
    let get = |k: &str| -> Result<&str, String> {
        map.get(k).copied().ok_or_else(|| format!("no {k} line"))
    };
    let hex = |k: &str| -> Result<u64, String> {
        let v = get(k)?;
        u64::from_str_radix(v, 16).map_err(|_| format!("{k} is not hex: {v:?}"))
    };
    let dec = |k: &str| -> Result<u32, String> {
        let v = get(k)?;
        v.parse::<u32>()
            .map_err(|_| format!("{k} is not a number: {v:?}"))
    };
    let four = |k: &str| -> Result<[u32; 4], String> {
        let v = get(k)?;
        let nums: Vec<u32> = v
            .split_ascii_whitespace()
            .map(|s| s.parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{k} is not four numbers: {v:?}"))?;
        nums.try_into()
            .map_err(|_| format!("{k} is not four numbers: {v:?}"))
    };
    let umask_text = get("Umask")?;
    let umask = u32::from_str_radix(umask_text, 8)
        .map_err(|_| format!("Umask is not octal: {umask_text:?}"))?;
    let groups_text = get("Groups")?;
    let groups = groups_text
        .split_ascii_whitespace()
        .map(|s| s.parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("Groups is not a list of numbers: {groups_text:?}"))?;
    Ok(Status {
        name: get("Name")?.to_string(),
        umask,
        state: get("State")?.chars().next().ok_or("empty State")?,
        tgid: dec("Tgid")? as i32,
        tracer_pid: dec("TracerPid")? as i32,
        uids: four("Uid")?,
        gids: four("Gid")?,
        groups,
        kthread: map.get("Kthread").is_some_and(|v| *v == "1"),
        threads: dec("Threads")?,
        sig_pnd: hex("SigPnd")?,
        shd_pnd: hex("ShdPnd")?,
        sig_blk: hex("SigBlk")?,
        sig_ign: hex("SigIgn")?,
        sig_cgt: hex("SigCgt")?,
        cap_inh: hex("CapInh")?,
        cap_prm: hex("CapPrm")?,
        cap_eff: hex("CapEff")?,
        cap_bnd: hex("CapBnd")?,
        cap_amb: hex("CapAmb")?,
        no_new_privs: dec("NoNewPrivs")? != 0,
        seccomp: dec("Seccomp")?,
    })
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapsEntry {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `r`.
    pub read: bool,
    /// `w`.
    pub write: bool,
    /// `x`.
    pub exec: bool,
    /// `s` (MAP_SHARED) rather than `p`.
    pub shared: bool,
    /// File offset in bytes.
    pub offset: u64,
    /// Device major number.
    pub dev_major: u32,
    /// Device minor number.
    pub dev_minor: u32,
    /// Inode number (0 for anonymous memory).
    pub inode: u64,
    /// The path or pseudo-name (`[heap]`, `[vdso]`, ...) as printed, including any ` (deleted)`
    /// suffix; empty for anonymous memory.
    pub path: String,
}

impl MapsEntry {
    /// `PROT_*` bits.
    pub fn prot(&self) -> u32 {
        let mut p = 0;
        if self.read {
            p |= libc::PROT_READ as u32;
        }
        if self.write {
            p |= libc::PROT_WRITE as u32;
        }
        if self.exec {
            p |= libc::PROT_EXEC as u32;
        }
        p
    }

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        (self.end - self.start) / PAGE_SIZE
    }

    /// The `/proc/PID/map_files` name of this mapping.
    pub fn map_files_name(&self) -> String {
        format!("map_files/{:x}-{:x}", self.start, self.end)
    }
}

/// Parses `/proc/PID/maps`. The path is everything after the inode and its padding, so paths with
/// spaces survive.
pub fn parse_maps(text: &str) -> Result<Vec<MapsEntry>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        out.push(parse_maps_line(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 1))?);
    }
    Ok(out)
}

fn parse_maps_line(line: &str) -> Result<MapsEntry, String> {
    // "start-end perms offset major:minor inode   path"
    let mut rest = line;
    let mut next = || -> Result<&str, String> {
        let trimmed = rest.trim_start_matches(' ');
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (tok, r) = trimmed.split_at(end);
        rest = r;
        if tok.is_empty() {
            Err("too few fields".into())
        } else {
            Ok(tok)
        }
    };
    let range = next()?;
    let perms = next()?;
    let offset = next()?;
    let dev = next()?;
    let inode = next()?;
    let path = rest.trim_start_matches(' ').to_string();

    let (s, e) = range.split_once('-').ok_or("no '-' in the address range")?;
    let hex =
        |s: &str, what: &str| u64::from_str_radix(s, 16).map_err(|_| format!("bad {what} {s:?}"));
    let (major, minor) = dev.split_once(':').ok_or("no ':' in the device")?;
    let pb = perms.as_bytes();
    if pb.len() != 4 {
        return Err(format!("bad permissions {perms:?}"));
    }
    let start = hex(s, "start")?;
    let end = hex(e, "end")?;
    if end <= start || start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 {
        return Err(format!("bad range {range:?}"));
    }
    Ok(MapsEntry {
        start,
        end,
        read: pb[0] == b'r',
        write: pb[1] == b'w',
        exec: pb[2] == b'x',
        shared: pb[3] == b's',
        offset: hex(offset, "offset")?,
        dev_major: u32::from_str_radix(major, 16).map_err(|_| format!("bad device {dev:?}"))?,
        dev_minor: u32::from_str_radix(minor, 16).map_err(|_| format!("bad device {dev:?}"))?,
        inode: inode
            .parse::<u64>()
            .map_err(|_| format!("bad inode {inode:?}"))?,
        path,
    })
}

/// The `VmFlags` line of one smaps entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmFlags {
    /// The flags the model keeps, as [`vm_flags`] bits.
    pub bits: u32,
    /// Every mnemonic as printed, for checks the model has no bit for (`pf`, `sf`, ...).
    pub mnemonics: Vec<String>,
}

impl VmFlags {
    /// Whether the mnemonic is present.
    pub fn has(&self, mnemonic: &str) -> bool {
        self.mnemonics.iter().any(|m| m == mnemonic)
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

/// Parses the `VmFlags` of every entry of `/proc/PID/smaps`, keyed by the entry's start address.
pub fn parse_smaps_vm_flags(text: &str) -> Result<BTreeMap<u64, VmFlags>, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<u64> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            let start = current
                .take()
                .ok_or_else(|| format!("line {}: VmFlags before any mapping", n + 1))?;
            let mnemonics: Vec<String> =
                flags.split_ascii_whitespace().map(str::to_string).collect();
            let bits = mnemonics.iter().fold(0, |b, m| b | vm_flag_bit(m));
            out.insert(start, VmFlags { bits, mnemonics });
            continue;
        }
        // A mapping header starts with "start-end "; field lines start with "Name:".
        let first = line.split(' ').next().unwrap_or("");
        if let Some((s, _)) = first.split_once('-') {
            if !first.contains(':') {
                let start = u64::from_str_radix(s, 16)
                    .map_err(|_| format!("line {}: bad start {s:?}", n + 1))?;
                current = Some(start);
            }
        }
    }
    Ok(out)
}

/// The resource names of `/proc/PID/limits`, in `RLIMIT_*` order (0..15).
const LIMIT_NAMES: [&str; 16] = [
    "Max cpu time",
    "Max file size",
    "Max data size",
    "Max stack size",
    "Max core file size",
    "Max resident set",
    "Max processes",
    "Max open files",
    "Max locked memory",
    "Max address space",
    "Max file locks",
    "Max pending signals",
    "Max msgqueue size",
    "Max nice priority",
    "Max realtime priority",
    "Max realtime timeout",
];

/// Parses `/proc/PID/limits` into 16 entries indexed by `RLIMIT_*` (`unlimited` = `u64::MAX`).
/// Reading the file needs no ptrace access or injected `prlimit`, and the kernel prints exactly
/// the values `prlimit` would return.
pub fn parse_limits(text: &str) -> Result<Vec<Rlimit>, String> {
    let mut out = vec![None; LIMIT_NAMES.len()];
    for line in text.lines().skip(1) {
        let Some(idx) = LIMIT_NAMES.iter().position(|name| {
            line.strip_prefix(name)
                .is_some_and(|r| r.starts_with("  ") || r.starts_with(' '))
        }) else {
            continue;
        };
        let rest = &line[LIMIT_NAMES[idx].len()..];
        let mut fields = rest.split_ascii_whitespace();
        let val = |s: Option<&str>| -> Result<u64, String> {
            match s {
                Some("unlimited") => Ok(u64::MAX),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| format!("{}: bad value {v:?}", LIMIT_NAMES[idx])),
                None => Err(format!("{}: missing value", LIMIT_NAMES[idx])),
            }
        };
        let cur = val(fields.next())?;
        let max = val(fields.next())?;
        out[idx] = Some(Rlimit { cur, max });
    }
    out.into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| format!("no {:?} line", LIMIT_NAMES[i])))
        .collect()
}

/// The fields of `/proc/PID/fdinfo/FD` capture uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdInfo {
    /// `pos`.
    pub pos: u64,
    /// `flags` (octal in the file), including `O_CLOEXEC`.
    pub flags: u32,
    /// `mnt_id`.
    pub mnt_id: u64,
    /// `ino` (5.x+).
    pub ino: u64,
    /// Every other line, kind-specific (`eventfd-count`, `tfd`, `sigmask`, ...).
    pub extra: Vec<(String, String)>,
}

/// Parses `/proc/PID/fdinfo/FD`.
pub fn parse_fdinfo(text: &str) -> Result<FdInfo, String> {
    let mut info = FdInfo::default();
    let mut have_pos = false;
    let mut have_flags = false;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "pos" => {
                info.pos = v.parse().map_err(|_| format!("bad pos {v:?}"))?;
                have_pos = true;
            }
            "flags" => {
                info.flags = u32::from_str_radix(v, 8).map_err(|_| format!("bad flags {v:?}"))?;
                have_flags = true;
            }
            "mnt_id" => info.mnt_id = v.parse().map_err(|_| format!("bad mnt_id {v:?}"))?,
            "ino" => info.ino = v.parse().map_err(|_| format!("bad ino {v:?}"))?,
            _ => info.extra.push((k.trim().to_string(), v.to_string())),
        }
    }
    if !have_pos || !have_flags {
        return Err("no pos or flags line".into());
    }
    Ok(info)
}

/// One POSIX timer from `/proc/PID/timers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerInfo {
    /// `ID`.
    pub id: u32,
    /// Signal number from `signal: N/value`.
    pub signo: u32,
    /// `sigev_value` from `signal: N/value` (printed as a pointer).
    pub sigev_value: u64,
    /// `SIGEV_*`, with `SIGEV_THREAD_ID` (4) or'ed in for `tid` notification.
    pub notify: u32,
    /// The PID or TID from `notify: kind/pid.N`.
    pub notify_pid: u32,
    /// `ClockID`.
    pub clock: u32,
}

/// Parses `/proc/PID/timers` (`fs/proc/base.c: show_timer`).
pub fn parse_timers(text: &str) -> Result<Vec<TimerInfo>, String> {
    let mut out: Vec<TimerInfo> = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k == "ID" {
            out.push(TimerInfo {
                id: v.parse().map_err(|_| format!("bad ID {v:?}"))?,
                ..Default::default()
            });
            continue;
        }
        let t = out.last_mut().ok_or_else(|| format!("{k} before any ID"))?;
        match k {
            "signal" => {
                let (sig, val) = v
                    .split_once('/')
                    .ok_or_else(|| format!("bad signal {v:?}"))?;
                t.signo = sig.parse().map_err(|_| format!("bad signal {v:?}"))?;
                let val = val.trim_start_matches("0x");
                t.sigev_value =
                    u64::from_str_radix(val, 16).map_err(|_| format!("bad signal value {v:?}"))?;
            }
            "notify" => {
                // "signal/pid.123", "thread/tid.123", "none/pid.123"
                let (kind, who) = v
                    .split_once('/')
                    .ok_or_else(|| format!("bad notify {v:?}"))?;
                let base = match kind {
                    "signal" => libc::SIGEV_SIGNAL,
                    "none" => libc::SIGEV_NONE,
                    "thread" => libc::SIGEV_THREAD,
                    _ => return Err(format!("unknown notify kind {v:?}")),
                } as u32;
                let (id_kind, n) = who
                    .split_once('.')
                    .ok_or_else(|| format!("bad notify {v:?}"))?;
                t.notify = if id_kind == "tid" {
                    base | libc::SIGEV_THREAD_ID as u32
                } else {
                    base
                };
                t.notify_pid = n.parse().map_err(|_| format!("bad notify {v:?}"))?;
            }
            "ClockID" => t.clock = v.parse().map_err(|_| format!("bad ClockID {v:?}"))?,
            _ => {}
        }
    }
    Ok(out)
}

/// One `/proc/PID/pagemap` entry (`Documentation/admin-guide/mm/pagemap.rst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageEntry(pub u64);

impl PageEntry {
    /// Bit 63: the page is present in RAM.
    pub fn present(self) -> bool {
        self.0 & (1 << 63) != 0
    }

    /// Bit 62: the page is swapped out.
    pub fn swapped(self) -> bool {
        self.0 & (1 << 62) != 0
    }

    /// Bit 61: the page is a file page or shared anonymous memory (for a private file mapping: not
    /// yet copied on write).
    pub fn file_or_shared(self) -> bool {
        self.0 & (1 << 61) != 0
    }

    /// Bit 56: the page is mapped exclusively (by this process only).
    pub fn exclusive(self) -> bool {
        self.0 & (1 << 56) != 0
    }
}

/// An open `/proc/PID/pagemap`.
#[derive(Debug)]
pub struct Pagemap {
    file: fs::File,
    path: PathBuf,
    pid: i32,
}

impl Pagemap {
    /// Reads the entries of `npages` pages starting at `addr` into `out` (cleared first).
    pub fn read(&self, addr: u64, npages: u64, out: &mut Vec<PageEntry>) -> Result<()> {
        out.clear();
        let npages = usize::try_from(npages)
            .map_err(|_| CaptureError::parse(&self.path, "range too large"))?;
        let mut buf = vec![0u8; npages * 8];
        let offset = (addr / PAGE_SIZE) * 8;
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .file
                .read_at(&mut buf[done..], offset + done as u64)
                .map_err(|e| CaptureError::proc_io(self.pid, &self.path, e))?;
            if n == 0 {
                return Err(CaptureError::parse(
                    &self.path,
                    format!("short read at {:#x}: {} of {} bytes", addr, done, buf.len()),
                ));
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
}

/// Strips the ` (deleted)` suffix the kernel appends to unlinked files' paths.
pub fn strip_deleted(path: &str) -> (&str, bool) {
    match path.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (path, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let text = "5402 (a (b) c) R 5398 5398 3166 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 34459 \
                    3133440 416 18446744073709551615 94079907299328 94079907319209 140724977385376 \
                    0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94079907335216 94079907336832 94080580292608 \
                    140724977388255 140724977388275 140724977388275 140724977389547 0\n";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.pid, 5402);
        assert_eq!(s.comm, "a (b) c");
        assert_eq!(s.state, 'R');
        assert_eq!(s.ppid, 5398);
        assert_eq!(s.session, 3166);
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.start_code, 94079907299328);
        assert_eq!(s.start_stack, 140724977385376);
        assert_eq!(s.exit_signal, 17);
        assert_eq!(s.start_data, 94079907335216);
        assert_eq!(s.start_brk, 94080580292608);
        assert_eq!(s.env_end, 140724977389547);
        assert!(!s.is_kernel_thread());
    }

    #[test]
    fn stat_kernel_thread() {
        let text = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0 \
                    18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
        assert!(parse_stat(text).unwrap().is_kernel_thread());
    }

    #[test]
    fn stat_truncated_names_the_field() {
        let err = parse_stat("1 (x) S 0 0").unwrap_err();
        assert_eq!(err, "field 6 missing (have 5)");
    }

    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t5400\nNgid:\t0\n\
        Pid:\t5400\nPPid:\t5398\nTracerPid:\t0\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\t0\t0\t0\n\
        FDSize:\t256\nGroups:\t4 27 \nKthread:\t0\nThreads:\t1\nSigQ:\t0/96365\n\
        SigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\nSigBlk:\t0000000000010000\n\
        SigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\nCapInh:\t0000000000000000\n\
        CapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n\
        CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";

    #[test]
    fn status_fields() {
        let s = parse_status(STATUS).unwrap();
        assert_eq!(s.name, "cat");
        assert_eq!(s.umask, 0o022);
        assert_eq!(s.uids, [1000, 1001, 1002, 1003]);
        assert_eq!(s.groups, vec![4, 27]);
        assert_eq!(s.shd_pnd, 0x100);
        assert_eq!(s.sig_blk, 0x10000);
        assert_eq!(s.sig_cgt, 0x4002);
        assert_eq!(s.cap_prm, 0x1fffeffffff);
        assert!(s.no_new_privs);
        assert_eq!(s.seccomp, 2);
        assert!(!s.kthread);
    }

    #[test]
    fn status_missing_line_is_named() {
        let err = parse_status("Name:\tx\n").unwrap_err();
        assert_eq!(err, "no Umask line");
    }

    #[test]
    fn maps_lines() {
        let text = "55fd40dbb000-55fd40dbd000 r--p 00000000 fe:00 247030                     /usr/bin/cat\n\
            7f58b5d4f000-7f58b5d56000 r--s 00001000 fe:00 325745                     /tmp/a b (deleted)\n\
            7f58b5d59000-7f58b5d5d000 r--p 00000000 00:00 0                          [vvar]\n\
            7f58b5ae7000-7f58b5b09000 rw-p 00000000 00:00 0 \n\
            ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";
        let m = parse_maps(text).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].start, 0x55fd40dbb000);
        assert_eq!(m[0].end, 0x55fd40dbd000);
        assert!(m[0].read && !m[0].write && !m[0].exec && !m[0].shared);
        assert_eq!(m[0].dev_major, 0xfe);
        assert_eq!(m[0].inode, 247030);
        assert_eq!(m[0].path, "/usr/bin/cat");
        assert!(m[1].shared);
        assert_eq!(m[1].offset, 0x1000);
        assert_eq!(m[1].path, "/tmp/a b (deleted)");
        assert_eq!(strip_deleted(&m[1].path), ("/tmp/a b", true));
        assert_eq!(m[2].path, "[vvar]");
        assert_eq!(m[3].path, "");
        assert_eq!(m[4].start, 0xffffffffff600000);
        assert_eq!(m[4].prot(), libc::PROT_EXEC as u32);
        assert_eq!(m[0].map_files_name(), "map_files/55fd40dbb000-55fd40dbd000");
    }

    #[test]
    fn maps_bad_line_is_quoted() {
        let err = parse_maps("zz-10 r--p 0 0:0 0\n").unwrap_err();
        assert!(err.starts_with("line 1: bad start \"zz\""), "{err}");
    }

    #[test]
    fn smaps_vm_flags() {
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
    fn limits_in_rlimit_order() {
        let text =
            "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max cpu time              unlimited            unlimited            seconds   \n\
            Max file size             unlimited            unlimited            bytes     \n\
            Max data size             unlimited            unlimited            bytes     \n\
            Max stack size            8388608              unlimited            bytes     \n\
            Max core file size        0                    unlimited            bytes     \n\
            Max resident set          unlimited            unlimited            bytes     \n\
            Max processes             96365                96365                processes \n\
            Max open files            20000                20000                files     \n\
            Max locked memory         8388608              8388608              bytes     \n\
            Max address space         unlimited            unlimited            bytes     \n\
            Max file locks            unlimited            unlimited            locks     \n\
            Max pending signals       96365                96365                signals   \n\
            Max msgqueue size         819200               819200               bytes     \n\
            Max nice priority         0                    0                    \n\
            Max realtime priority     0                    0                    \n\
            Max realtime timeout      unlimited            unlimited            us        \n";
        let l = parse_limits(text).unwrap();
        assert_eq!(l.len(), 16);
        assert_eq!(
            l[libc::RLIMIT_STACK as usize],
            Rlimit {
                cur: 8388608,
                max: u64::MAX
            }
        );
        assert_eq!(
            l[libc::RLIMIT_NOFILE as usize],
            Rlimit {
                cur: 20000,
                max: 20000
            }
        );
        assert_eq!(
            l[libc::RLIMIT_RTTIME as usize],
            Rlimit {
                cur: u64::MAX,
                max: u64::MAX
            }
        );
        assert_eq!(l[libc::RLIMIT_NICE as usize], Rlimit { cur: 0, max: 0 });
    }

    #[test]
    fn limits_missing_line_is_named() {
        let err = parse_limits("Limit\nMax cpu time unlimited unlimited seconds\n").unwrap_err();
        assert_eq!(err, "no \"Max file size\" line");
    }

    #[test]
    fn fdinfo_fields() {
        let f =
            parse_fdinfo("pos:\t12\nflags:\t02100002\nmnt_id:\t24\nino:\t3\neventfd-count:  5\n")
                .unwrap();
        assert_eq!(f.pos, 12);
        assert_eq!(f.flags, 0o2100002);
        assert_eq!(f.flags & libc::O_CLOEXEC as u32, libc::O_CLOEXEC as u32);
        assert_eq!(f.mnt_id, 24);
        assert_eq!(f.ino, 3);
        assert_eq!(
            f.extra,
            vec![("eventfd-count".to_string(), "5".to_string())]
        );
    }

    #[test]
    fn timers() {
        let text = "ID: 0\nsignal: 14/0000000000000000\nnotify: signal/pid.1234\nClockID: 1\n\
                    ID: 1\nsignal: 10/00000000deadbeef\nnotify: thread/tid.99\nClockID: 0\n";
        let t = parse_timers(text).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0],
            TimerInfo {
                id: 0,
                signo: 14,
                sigev_value: 0,
                notify: 0,
                notify_pid: 1234,
                clock: 1
            }
        );
        assert_eq!(t[1].sigev_value, 0xdeadbeef);
        assert_eq!(
            t[1].notify,
            (libc::SIGEV_THREAD | libc::SIGEV_THREAD_ID) as u32
        );
        assert_eq!(t[1].notify_pid, 99);
    }

    #[test]
    fn own_proc_files_parse() {
        let me = ProcDir::new(std::process::id() as i32);
        let stat = me.stat().unwrap();
        assert_eq!(stat.pid, std::process::id() as i32);
        let status = me.status().unwrap();
        assert_eq!(status.tgid, stat.pid);
        let maps = me.maps().unwrap();
        let flags = me.smaps_vm_flags().unwrap();
        assert_eq!(maps.len(), flags.len());
        assert!(maps.iter().any(|m| m.path == "[stack]"));
        assert_eq!(me.limits().unwrap().len(), 16);
        me.personality().unwrap();
        assert!(!me.list_numeric("task").unwrap().is_empty());
        // The first page of the stack VMA's top is present (we are running on it).
        let pm = me.pagemap().unwrap();
        let stack = maps.iter().find(|m| m.path == "[stack]").unwrap();
        let mut v = Vec::new();
        pm.read(stack.end - PAGE_SIZE, 1, &mut v).unwrap();
        assert_eq!(v.len(), 1);
    }
}
