//! System-wide `/proc` files, not tied to one process.

use crate::cpuinfo::{parse_cpuinfo, CpuInfo};
use crate::error::{ParseError, Result};

/// The PIDs in `/proc`, sorted: every process of this PID namespace (thread-group leaders; a
/// thread's TID is not listed, though `/proc/TID` can be opened).
pub fn pids() -> Result<Vec<i32>> {
    crate::dir::list_numeric_in("/proc".as_ref())
}

/// Reads and parses `/proc/cpuinfo`.
pub fn cpuinfo() -> Result<CpuInfo> {
    let path = "/proc/cpuinfo";
    let text = crate::dir::read_text(path.as_ref())?;
    parse_cpuinfo(&text).map_err(|e| e.in_file(path))
}

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub fn cap_last_cap() -> Result<u32> {
    let path = "/proc/sys/kernel/cap_last_cap";
    let text = crate::dir::read_text(path.as_ref())?;
    parse_decimal(&text).map_err(|e| e.in_file(path))
}

/// Parses a file holding one decimal number and a newline (the `/proc/sys` integers).
pub fn parse_decimal(text: &str) -> std::result::Result<u32, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| ParseError::field(format!("not a number: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal() {
        assert_eq!(parse_decimal("40\n"), Ok(40));
        assert_eq!(
            parse_decimal("x\n").unwrap_err().to_string(),
            "not a number: \"x\\n\""
        );
    }

    #[test]
    fn own_pid_is_listed() {
        let pids = pids().unwrap();
        assert!(pids.contains(&(std::process::id() as i32)));
        assert!(pids.contains(&1));
        assert!(pids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn own_cap_last_cap() {
        // CAP_CHECKPOINT_RESTORE (40) exists since Linux 5.9.
        assert!(cap_last_cap().unwrap() >= 40);
    }
}
