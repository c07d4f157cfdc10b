//! The one place psnc-cr parses `/proc`.
//!
//! Capture, restore, the ptrace crate and the end-to-end tests read `/proc` through this crate
//! only (opening `/proc/PID/mem`, fd links or `map_files` as files is I/O and stays with them).
//! Each file has one module: a pure parser of the file's text, unit-tested against samples of the
//! kernel's exact output and against the live file of the test process itself, and a reader on
//! [`ProcDir`] (or in [`system`]) whose [`ProcError`] names the file and, through
//! [`ParseError`], the line or field that did not parse.
//!
//! Where procfs-core (a parsing-only crate, no I/O) gets a file right for psnc-cr it does the
//! parsing; elsewhere the module keeps its own parser and says why in its doc, with a test that
//! shows the gap:
//!
//! ```text
//!  file                       module     parsed by     why
//!  /proc/PID/stat             stat       own           procfs-core panics on a line ending at ')'
//!                                                      and does not name a bad field
//!  /proc/PID/status           status     own           procfs-core cuts `Name: a:b` to "a", has no
//!                                                      Kthread, does not name a missing line
//!  /proc/PID/maps             maps       own           exact path needed; procfs-core trims it,
//!                                                      panics on a short /SYSV path, fails on
//!                                                      non-UTF-8
//!  /proc/PID/smaps (VmFlags)  smaps      own           procfs-core drops mnemonics it does not know
//!  /proc/PID/limits           limits     own           procfs-core does not name a missing line
//!  /proc/PID/fdinfo/FD        fdinfo     own           not in procfs-core (epoll tfd: lines too)
//!  /proc/PID/timers           timers     own           not in procfs-core
//!  /proc/PID/personality      dir        own           one hex number
//!  /proc/PID/task/TID/children dir       own           not in procfs-core; PIDs
//!  /proc/PID/syscall          dir        own           not in procfs-core; first field only
//!  /proc (the PIDs)           system     own           directory listing
//!  /proc/PID/pagemap          pagemap    procfs-core   entry bits (MemoryPageFlags, PageInfo)
//!  /proc/cpuinfo              cpuinfo    procfs-core   CpuInfo, processor 0
//!  /proc/sys/kernel/cap_last_cap system  own           one decimal number
//! ```

#![forbid(unsafe_code)]

pub mod cpuinfo;
mod dir;
pub mod error;
pub mod fdinfo;
pub mod limits;
pub mod maps;
pub mod pagemap;
pub mod smaps;
pub mod stat;
pub mod status;
pub mod system;
pub mod timers;

#[cfg(test)]
mod procfs_core_gaps;

pub use cpuinfo::CpuInfo;
pub use dir::{parse_children, parse_personality, parse_syscall_nr, ProcDir};
pub use error::{ParseError, ProcError, Result};
pub use fdinfo::{EpollTfd, FdInfo};
pub use limits::Limit;
pub use maps::{strip_deleted, MapsEntry};
pub use pagemap::{PageEntry, Pagemap};
pub use smaps::VmFlags;
pub use stat::Stat;
pub use status::Status;
pub use timers::TimerInfo;

/// Size of a page on x86 (the only page size psnc-cr handles; huge pages show as 4 KiB pages in
/// pagemap).
pub const PAGE_SIZE: u64 = 4096;
