//! System-wide `/proc` files, not tied to one process.

use crate::cpuinfo::{parse_cpuinfo, CpuInfo};
use crate::error::{ParseError, Result};

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
    fn own_cap_last_cap() {
        // CAP_CHECKPOINT_RESTORE (40) exists since Linux 5.9.
        assert!(cap_last_cap().unwrap() >= 40);
    }
}
