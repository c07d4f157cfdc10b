//! Terminals: fds of a tty character device (a virtual console, a serial line, `/dev/tty`, a pty
//! slave), which restore reopens by path.
//!
//! A terminal is told apart from other character devices by its device number, from the `stat` of
//! the file behind `/proc/PID/fd/N`; the image keeps its path and device number only. A pty
//! master is refused: reopening `/dev/ptmx` by path would make a new pty pair, not the one the
//! process holds. Model type: [`FdKind::Tty`] in `psnc_format::model`.

use psnc_format::model::FdKind;

use crate::error::Result;

/// Tty character-device majors: 4 (virtual consoles, serial), 5 (/dev/tty, console, ptmx),
/// 136..=143 (Unix98 pty slaves).
fn is_tty_major(major: u32) -> bool {
    major == 4 || major == 5 || (136..=143).contains(&major)
}

/// The [`FdKind::Tty`] of fd `fd` of `pid`, a character device `rdev` open at `path` (`link` as
/// the kernel printed it); `None` when the device is not a terminal. A pseudo-terminal master is
/// refused.
pub(super) fn classify(
    pid: i32,
    fd: i32,
    rdev: u64,
    path: &str,
    link: &str,
) -> Result<Option<FdKind>> {
    let major = nix::sys::stat::major(rdev) as u32;
    let minor = nix::sys::stat::minor(rdev) as u32;
    if major == 5 && minor == 2 {
        return Err(super::unsupported(
            pid,
            fd,
            format!("a pseudo-terminal master ({link})"),
        ));
    }
    Ok(is_tty_major(major).then(|| FdKind::Tty {
        path: path.to_string(),
        rdev,
    }))
}
