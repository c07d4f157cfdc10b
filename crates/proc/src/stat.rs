//! `/proc/PID/stat` (`fs/proc/array.c: do_task_stat`).
//!
//! Own parser. procfs-core's `Stat` reads the same fields, but it slices the text at fixed
//! offsets around the parentheses (a line that ends at the `)` panics) and reports a missing or
//! non-numeric field as an unnamed `NoneError`; capture's messages must say which field of which
//! file, and the parser is twenty lines. See `procfs_core_gaps.rs`.

use crate::error::ParseError;

/// `PF_KTHREAD` in the `flags` field.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of `/proc/PID/stat` psnc-cr uses.
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
    /// Field 7: the controlling terminal's device number (encoded as the kernel's
    /// `new_encode_dev`, as `st_rdev` is), 0 without one.
    pub tty_nr: u64,
    /// Field 8: the foreground process group of the controlling terminal, -1 without one.
    pub tpgid: i32,
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
    /// Field 52 (Linux 3.5+): the exit status in `wait(2)` form, `code << 8` or the killing
    /// signal with `0x80` for a core dump. Final once the task is a zombie, which is how a
    /// zombie's status is read without reaping it; 0 for a live task, and for a task the reader
    /// may not ptrace.
    pub exit_code: i32,
}

impl Stat {
    /// Whether the task is a kernel thread.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Parses `/proc/PID/stat`. The command name is between the first `(` and the *last* `)`, since it
/// may itself contain spaces and parentheses.
pub fn parse_stat(text: &str) -> Result<Stat, ParseError> {
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
        tty_nr: num(7)?,
        tpgid: small(8)?,
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
        exit_code: small(52)?,
    })
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
        assert_eq!((s.tty_nr, s.tpgid), (0, -1));
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.start_code, 94079907299328);
        assert_eq!(s.start_stack, 140724977385376);
        assert_eq!(s.exit_signal, 17);
        assert_eq!(s.start_data, 94079907335216);
        assert_eq!(s.start_brk, 94080580292608);
        assert_eq!(s.env_end, 140724977389547);
        assert_eq!(s.exit_code, 0);
        assert!(!s.is_kernel_thread());
    }

    #[test]
    fn stat_zombie_exit_code() {
        // A child killed by SIGTERM (15) with a core (0x80), as a zombie reports it.
        let text = "4711 (victim) Z 4700 4700 4700 0 -1 4227084 95 0 0 0 0 0 0 0 20 0 1 0 8012 \
                    0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 \
                    0 143\n";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.state, 'Z');
        assert_eq!(s.exit_code, 0x80 | 15);
        let err = parse_stat(&text.replace(" 143", "")).unwrap_err();
        assert_eq!(err.to_string(), "field 52 missing (have 51)");
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
        assert_eq!(err.to_string(), "field 6 missing (have 5)");
        assert_eq!(err.line, None);
    }

    #[test]
    fn stat_bad_field_is_named() {
        let err = parse_stat("1 (x) S 0 0 zz").unwrap_err();
        assert_eq!(err.to_string(), "field 6 is not a number: \"zz\"");
        let err = parse_stat("1 x) S").unwrap_err();
        assert_eq!(err.to_string(), "no '(' before the command name");
    }

    #[test]
    fn own_stat() {
        let me = crate::ProcDir::new(std::process::id() as i32);
        let s = me.stat().unwrap();
        assert_eq!(s.pid, std::process::id() as i32);
        assert!("RSD".contains(s.state), "{}", s.state);
        assert!(s.num_threads >= 1);
        assert!(s.start_time > 0);
        assert!(!s.is_kernel_thread());
        assert!(s.arg_start < s.arg_end && s.env_start < s.env_end);
    }
}
