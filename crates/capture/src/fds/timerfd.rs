//! Timerfds: clock, `timerfd_settime` flags, unread expirations, next expiry and period.
//!
//! The fd's `/proc/PID/fdinfo/N` gives `clockid`, `ticks`, `settime flags` (octal),
//! `it_value` and `it_interval`. A periodic timer that expired is not forwarded by the kernel
//! until someone reads it or asks for its time, so before fdinfo is read the timer's time is
//! asked once through a duplicate of the fd (`pidfd_getfd`, then `timerfd_gettime`): that
//! counts every expiry since into `ticks`, as the program's next read would, and leaves the
//! program's state as it was otherwise. For an absolute timer (`TFD_TIMER_ABSTIME`) the expiry
//! is stored as a time on its clock (now plus the time left), so it keeps its absolute expiry
//! across the restore; a relative one keeps the time left. Model: [`FdKind::TimerFd`] with its
//! [`TimerFdState`] in `psnc_format::model`.

use std::os::fd::AsFd;

use psnc_format::model::{FdKind, TimerFdState};

use crate::error::{CaptureError, Result};
use crate::procfs::{parse_fdinfo, FdInfo, ProcDir};

/// `TFD_TIMER_ABSTIME`.
const ABSTIME: u32 = 1;

/// The [`FdKind::TimerFd`] of timerfd `fd`.
pub(super) fn classify(proc_dir: &ProcDir, fd: i32) -> Result<FdKind> {
    let pid = proc_dir.pid();
    let terr = |e| crate::stop::trace_error(pid, pid, &format!("reading timerfd {fd}"), e);
    let pidfd = psnc_ptrace::sys::pidfd_open(pid).map_err(terr)?;
    let dup = psnc_ptrace::sys::pidfd_getfd(pidfd.as_fd(), pid, fd).map_err(terr)?;
    // Forwards an expired periodic timer; the values themselves come from fdinfo below, with
    // the clock read right after it for absolute timers.
    psnc_ptrace::sys::timerfd_gettime(dup.as_fd()).map_err(terr)?;
    let name = format!("fdinfo/{fd}");
    let text = proc_dir.read_string(&name)?;
    let bad = |d: String| CaptureError::parse(proc_dir.path(&name), d);
    let info = parse_fdinfo(&text).map_err(bad)?;
    let mut state = parse_timerfd(&info).map_err(bad)?;
    if state.settime_flags & ABSTIME != 0 && state.value_ns != 0 {
        let now = psnc_ptrace::sys::clock_gettime_ns(state.clockid).map_err(terr)?;
        state.value_ns = state.value_ns.saturating_add(now);
    }
    Ok(FdKind::TimerFd(state))
}

/// Parses `(sec, nsec)` as fs/timerfd.c prints `it_value` and `it_interval`.
fn parse_pair(v: &str) -> Option<u64> {
    let (s, n) = v.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    let (s, n): (u64, u64) = (s.trim().parse().ok()?, n.trim().parse().ok()?);
    s.checked_mul(1_000_000_000)?.checked_add(n)
}

/// The timer's state as fdinfo shows it: `value_ns` is the time left (relative) here.
fn parse_timerfd(info: &FdInfo) -> std::result::Result<TimerFdState, String> {
    let get = |k: &str| {
        info.extra
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("no {k} line"))
    };
    let bad = |k: &str, v: &str| format!("bad {k} {v:?}");
    let c = get("clockid")?;
    let t = get("ticks")?;
    let f = get("settime flags")?;
    let v = get("it_value")?;
    let i = get("it_interval")?;
    Ok(TimerFdState {
        clockid: c.parse().map_err(|_| bad("clockid", c))?,
        ticks: t.parse().map_err(|_| bad("ticks", t))?,
        settime_flags: u32::from_str_radix(f, 8).map_err(|_| bad("settime flags", f))?,
        value_ns: parse_pair(v).ok_or_else(|| bad("it_value", v))?,
        interval_ns: parse_pair(i).ok_or_else(|| bad("it_interval", i))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timerfd_fdinfo() {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t18\nclockid: 0\nticks: 7\n\
                    settime flags: 03\nit_value: (99, 415364151)\nit_interval: (0, 1000000)\n";
        assert_eq!(
            parse_timerfd(&parse_fdinfo(text).unwrap()),
            Ok(TimerFdState {
                clockid: 0,
                settime_flags: 3,
                ticks: 7,
                value_ns: 99_415_364_151,
                interval_ns: 1_000_000,
            })
        );
        let bad = text.replace("(0, 1000000)", "(0 1000000)");
        assert!(parse_timerfd(&parse_fdinfo(&bad).unwrap())
            .unwrap_err()
            .contains("it_interval"));
    }

    #[test]
    fn an_expired_periodic_timer_counts_every_expiry() {
        let me = ProcDir::new(std::process::id() as i32);
        let t = psnc_ptrace::sys::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC).unwrap();
        psnc_ptrace::sys::timerfd_settime(t.as_fd(), 0, 1_000_000, 1_000_000).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        use std::os::fd::AsRawFd;
        let FdKind::TimerFd(s) = classify(&me, t.as_raw_fd()).unwrap() else {
            panic!()
        };
        assert!(s.ticks >= 25, "{s:?}");
        assert_eq!(
            (s.clockid, s.settime_flags, s.interval_ns),
            (1, 0, 1_000_000)
        );
        assert!(s.value_ns > 0 && s.value_ns <= 1_000_000, "{s:?}");
    }
}
