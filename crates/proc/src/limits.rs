//! `/proc/PID/limits` (`fs/proc/base.c: proc_pid_limits`).
//!
//! Own parser. procfs-core's `Limits` reads the same values, but a missing line fails the whole
//! file with an unnamed `NoneError`, and a line of fewer than three words underflows an index
//! (a panic in debug builds). Capture's message must name the missing resource. See
//! `procfs_core_gaps.rs`.
//!
//! Reading the file needs no ptrace access or injected `prlimit`, and the kernel prints exactly
//! the values `prlimit` would return.

use crate::error::ParseError;

/// One resource limit (`u64::MAX` = `RLIM_INFINITY`, printed `unlimited`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    /// Soft limit (`rlim_cur`).
    pub cur: u64,
    /// Hard limit (`rlim_max`).
    pub max: u64,
}

/// The resource names of `/proc/PID/limits`, in `RLIMIT_*` order (0..15).
pub const LIMIT_NAMES: [&str; 16] = [
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

/// Parses `/proc/PID/limits` into 16 entries indexed by `RLIMIT_*`.
pub fn parse_limits(text: &str) -> Result<Vec<Limit>, ParseError> {
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
        let val = |s: Option<&str>| -> Result<u64, ParseError> {
            match s {
                Some("unlimited") => Ok(u64::MAX),
                Some(v) => v.parse::<u64>().map_err(|_| {
                    ParseError::field(format!("{}: bad value {v:?}", LIMIT_NAMES[idx]))
                }),
                None => Err(ParseError::field(format!(
                    "{}: missing value",
                    LIMIT_NAMES[idx]
                ))),
            }
        };
        let cur = val(fields.next())?;
        let max = val(fields.next())?;
        out[idx] = Some(Limit { cur, max });
    }
    out.into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| ParseError::field(format!("no {:?} line", LIMIT_NAMES[i]))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Limit {
                cur: 8388608,
                max: u64::MAX
            }
        );
        assert_eq!(
            l[libc::RLIMIT_NOFILE as usize],
            Limit {
                cur: 20000,
                max: 20000
            }
        );
        assert_eq!(
            l[libc::RLIMIT_RTTIME as usize],
            Limit {
                cur: u64::MAX,
                max: u64::MAX
            }
        );
        assert_eq!(l[libc::RLIMIT_NICE as usize], Limit { cur: 0, max: 0 });
    }

    #[test]
    fn limits_missing_line_is_named() {
        let err = parse_limits("Limit\nMax cpu time unlimited unlimited seconds\n").unwrap_err();
        assert_eq!(err.to_string(), "no \"Max file size\" line");
    }

    #[test]
    fn limits_bad_value_is_named() {
        let err = parse_limits("Limit\nMax cpu time 12x unlimited seconds\n").unwrap_err();
        assert_eq!(err.to_string(), "Max cpu time: bad value \"12x\"");
    }

    #[test]
    fn own_limits() {
        let me = crate::ProcDir::new(std::process::id() as i32);
        let l = me.limits().unwrap();
        assert_eq!(l.len(), 16);
        assert!(l.iter().all(|r| r.cur <= r.max));
        // This process has fds 0, 1 and 2 open, so its open-files limit is above them.
        assert!(l[libc::RLIMIT_NOFILE as usize].cur > 2);
    }
}
