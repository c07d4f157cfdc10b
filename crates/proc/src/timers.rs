//! `/proc/PID/timers`: the process's POSIX timers (`fs/proc/base.c: show_timer`).
//!
//! Own parser: neither procfs-core nor procfs reads this file. It lists each timer's ID, signal,
//! notification and clock, not its value or interval (capture reads those with a remote
//! `timer_gettime` or from the kernel module).

use crate::error::ParseError;

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

/// Parses `/proc/PID/timers`.
pub fn parse_timers(text: &str) -> Result<Vec<TimerInfo>, ParseError> {
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
                    _ => return Err(format!("unknown notify kind {v:?}").into()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn timers_errors_name_the_field() {
        assert_eq!(
            parse_timers("signal: 1/0\n").unwrap_err().to_string(),
            "signal before any ID"
        );
        assert_eq!(
            parse_timers("ID: 0\nnotify: bogus/pid.1\n")
                .unwrap_err()
                .to_string(),
            "unknown notify kind \"bogus/pid.1\""
        );
    }

    #[test]
    fn own_timers() {
        // The test harness creates no POSIX timer, so the file is empty but readable.
        let me = crate::ProcDir::new(std::process::id() as i32);
        assert_eq!(me.timers().unwrap(), Vec::new());
    }
}
