//! `/proc/PID/status` (`fs/proc/array.c: proc_pid_status`).
//!
//! Own parser. procfs-core's `Status` splits each line at *every* `:`, so a command name with a
//! colon (`Name: a:b`) comes back cut to `a`; it has no `Kthread` field; it requires lines psnc-cr
//! does not use (`FDSize`, `SigQ`, `PPid`) and reports a missing one as an unnamed `NoneError`.
//! Capture needs the exact name, the kthread line and an error that names the missing line. See
//! `procfs_core_gaps.rs`.
//!
//! [`status_field`] is the lenient one-line lookup for callers that need one value and must not
//! fail on an older kernel's missing lines (the ptrace crate's `Tgid`, the tests' `TracerPid`).

use std::collections::BTreeMap;

use crate::error::ParseError;

/// The fields of `/proc/PID/status` psnc-cr uses.
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

/// Parses `/proc/PID/status`. The lines of [`Status`] are required (except `Kthread`); the
/// others are ignored.
pub fn parse_status(text: &str) -> Result<Status, ParseError> {
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

/// The value of the first line `key:` of a status text, trimmed; `None` without such a line.
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(err.to_string(), "no Umask line");
    }

    #[test]
    fn status_name_keeps_its_colons() {
        let text = STATUS.replace("Name:\tcat", "Name:\ta:b");
        assert_eq!(parse_status(&text).unwrap().name, "a:b");
    }

    #[test]
    fn one_field() {
        assert_eq!(status_field(STATUS, "TracerPid"), Some("0"));
        assert_eq!(status_field(STATUS, "Uid"), Some("1000\t1001\t1002\t1003"));
        assert_eq!(status_field(STATUS, "Seccomp"), Some("2"));
        assert_eq!(status_field(STATUS, "Tgi"), None);
        assert_eq!(status_field(STATUS, "Nope"), None);
    }

    #[test]
    fn own_status() {
        let me = crate::ProcDir::new(std::process::id() as i32);
        let s = me.status().unwrap();
        assert_eq!(s.tgid, std::process::id() as i32);
        assert!("RSD".contains(s.state), "{}", s.state);
        assert!(s.threads >= 1);
        assert!(!s.kthread);
        let tgid = me.status_field("Tgid").unwrap();
        assert_eq!(tgid, Some(std::process::id().to_string()));
    }
}
