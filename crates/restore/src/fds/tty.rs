//! Terminals. A terminal fd of the image comes back as one of three things, as the checks
//! planned it: one of the restore tool's own stdio fds ([`stdio_for`]), handed over as it is
//! (the default); `/dev/null` opened with the fd's flags (`--stdio null`); or, with
//! `--shell-job`, where the process joins the shell's session and job, the terminal reopened by
//! its path.
//!
//! Model: [`psnc_format::model::FdKind::Tty`] (its path and `st_rdev`) and the fd's `flags`.

use std::os::fd::OwnedFd;
use std::path::Path;

use psnc_format::model::Fd;

use crate::error::Result;
use crate::fds::open_with_flags;

/// `/dev/null` in place of terminal fd `f`, with its flags.
pub fn open_null(f: &Fd) -> Result<OwnedFd> {
    open_with_flags(Path::new("/dev/null"), f.flags)
}

/// Terminal fd `f` reopened at `path` with its flags (`--shell-job`). Terminals are not seeked.
pub fn reopen(f: &Fd, path: &Path) -> Result<OwnedFd> {
    open_with_flags(path, f.flags)
}

/// Which of the restore tool's own descriptors stands in for a terminal fd: the same number for
/// 0..=2, else stdin for a read-only fd and stdout otherwise.
pub fn stdio_for(fd: i32, flags: u32) -> i32 {
    match fd {
        0..=2 => fd,
        _ if flags & libc::O_ACCMODE as u32 == libc::O_RDONLY as u32 => 0,
        _ => 1,
    }
}
