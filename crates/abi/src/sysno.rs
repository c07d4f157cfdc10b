//! The syscalls the project runs inside a target, numbered for both modes in one table.
//!
//! x86_64 numbers come from `libc::SYS_*`. i386 numbers are from the kernel's
//! `arch/x86/entry/syscalls/syscall_32.tbl`, checked by a test against the installed
//! `asm/unistd_32.h`, which is generated from it. Where i386 has several variants, the one listed
//! is the one with wide arguments (`mmap2`, `fcntl64`, `_llseek`, `setresuid32`, ...): see
//! [`Sysno::kernel_name`]. Capture and restore share the table: a call either side needs is
//! added here, once.

use crate::arch::Arch;

/// Defines [`Sysno`] and its table from one row per syscall: variant, x86_64 `libc::SYS_*` name,
/// i386 number, i386 kernel name.
macro_rules! sysno_table {
    ($( $(#[$doc:meta])* $name:ident = $x64:ident, $i386:literal, $i386name:literal; )*) => {
        /// A syscall the project runs inside a target; see [`Sysno::nr`] for its numbers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Sysno {
            $( $(#[$doc])* $name, )*
        }

        impl Sysno {
            /// Every syscall of the table.
            pub const ALL: &'static [Sysno] = &[$(Sysno::$name),*];

            /// (x86_64 number, i386 number, x86_64 name, i386 name).
            fn row(self) -> (libc::c_long, i64, &'static str, &'static str) {
                match self {
                    $( Sysno::$name => (
                        libc::$x64,
                        $i386,
                        // "SYS_read" -> "read"
                        stringify!($x64).split_at(4).1,
                        $i386name,
                    ), )*
                }
            }
        }
    };
}

sysno_table! {
    /// `read`.
    Read = SYS_read, 3, "read";
    /// `write`.
    Write = SYS_write, 4, "write";
    /// `close`.
    Close = SYS_close, 6, "close";
    /// `dup`.
    Dup = SYS_dup, 41, "dup";
    /// `dup2`.
    Dup2 = SYS_dup2, 63, "dup2";
    /// `dup3`.
    Dup3 = SYS_dup3, 330, "dup3";
    /// `pipe2`.
    Pipe2 = SYS_pipe2, 331, "pipe2";
    /// `epoll_create1`.
    EpollCreate1 = SYS_epoll_create1, 329, "epoll_create1";
    /// `epoll_ctl` (`struct epoll_event` is 12 bytes in both modes: packed on x86_64, 4-byte
    /// aligned u64 on i386).
    EpollCtl = SYS_epoll_ctl, 255, "epoll_ctl";
    /// `openat`.
    Openat = SYS_openat, 295, "openat";
    /// i386: `_llseek` (offset split over two registers, result through a pointer).
    Lseek = SYS_lseek, 140, "_llseek";
    /// i386: `fcntl64`.
    Fcntl = SYS_fcntl, 221, "fcntl64";
    /// `ioctl`.
    Ioctl = SYS_ioctl, 54, "ioctl";
    /// `getpid`.
    Getpid = SYS_getpid, 20, "getpid";
    /// `wait4` (capture reaps a killed child through its stopped parent).
    Wait4 = SYS_wait4, 114, "wait4";
    /// `clone` (capture's fork snapshot: flags 0, no exit signal, every pointer 0).
    Clone = SYS_clone, 120, "clone";
    /// `gettid`.
    Gettid = SYS_gettid, 224, "gettid";
    /// `getppid`.
    Getppid = SYS_getppid, 64, "getppid";
    /// `getpgid`.
    Getpgid = SYS_getpgid, 132, "getpgid";
    /// `getsid`.
    Getsid = SYS_getsid, 147, "getsid";
    /// `setpgid`.
    Setpgid = SYS_setpgid, 57, "setpgid";
    /// `setsid`.
    Setsid = SYS_setsid, 66, "setsid";
    /// `kill`.
    Kill = SYS_kill, 37, "kill";
    /// `tgkill`.
    Tgkill = SYS_tgkill, 270, "tgkill";
    /// i386: `mmap2`, whose offset argument counts 4096-byte pages.
    Mmap = SYS_mmap, 192, "mmap2";
    /// `munmap`.
    Munmap = SYS_munmap, 91, "munmap";
    /// `mprotect`.
    Mprotect = SYS_mprotect, 125, "mprotect";
    /// `mremap`.
    Mremap = SYS_mremap, 163, "mremap";
    /// `shmat` (i386: its own number since Linux 5.1, beside the `ipc` multiplexer).
    Shmat = SYS_shmat, 397, "shmat";
    /// `shmdt` (i386: its own number since Linux 5.1).
    Shmdt = SYS_shmdt, 398, "shmdt";
    /// `io_setup`.
    IoSetup = SYS_io_setup, 245, "io_setup";
    /// `io_destroy`.
    IoDestroy = SYS_io_destroy, 246, "io_destroy";
    /// `io_submit`.
    IoSubmit = SYS_io_submit, 248, "io_submit";
    /// `madvise`.
    Madvise = SYS_madvise, 219, "madvise";
    /// `mlock`.
    Mlock = SYS_mlock, 150, "mlock";
    /// `munlock`.
    Munlock = SYS_munlock, 151, "munlock";
    /// `mincore`.
    Mincore = SYS_mincore, 218, "mincore";
    /// `brk`.
    Brk = SYS_brk, 45, "brk";
    /// `rt_sigaction`.
    RtSigaction = SYS_rt_sigaction, 174, "rt_sigaction";
    /// `rt_sigprocmask`.
    RtSigprocmask = SYS_rt_sigprocmask, 175, "rt_sigprocmask";
    /// `rt_tgsigqueueinfo`.
    RtTgsigqueueinfo = SYS_rt_tgsigqueueinfo, 335, "rt_tgsigqueueinfo";
    /// `sigaltstack`.
    Sigaltstack = SYS_sigaltstack, 186, "sigaltstack";
    /// `getitimer`.
    Getitimer = SYS_getitimer, 105, "getitimer";
    /// `setitimer`.
    Setitimer = SYS_setitimer, 104, "setitimer";
    /// `timer_create`.
    TimerCreate = SYS_timer_create, 259, "timer_create";
    /// `timer_settime`.
    TimerSettime = SYS_timer_settime, 260, "timer_settime";
    /// `timer_gettime`.
    TimerGettime = SYS_timer_gettime, 261, "timer_gettime";
    /// `timer_delete`.
    TimerDelete = SYS_timer_delete, 263, "timer_delete";
    /// `nanosleep`.
    Nanosleep = SYS_nanosleep, 162, "nanosleep";
    /// `prctl`.
    Prctl = SYS_prctl, 172, "prctl";
    /// The i386 number exists, but ARCH_MAP_VDSO_* are 64-bit only.
    ArchPrctl = SYS_arch_prctl, 384, "arch_prctl";
    /// `set_thread_area`.
    SetThreadArea = SYS_set_thread_area, 243, "set_thread_area";
    /// `get_thread_area`.
    GetThreadArea = SYS_get_thread_area, 244, "get_thread_area";
    /// `set_tid_address`.
    SetTidAddress = SYS_set_tid_address, 258, "set_tid_address";
    /// `set_robust_list`.
    SetRobustList = SYS_set_robust_list, 311, "set_robust_list";
    /// `get_robust_list`.
    GetRobustList = SYS_get_robust_list, 312, "get_robust_list";
    /// `rseq`.
    Rseq = SYS_rseq, 386, "rseq";
    /// `umask`.
    Umask = SYS_umask, 60, "umask";
    /// `chdir`.
    Chdir = SYS_chdir, 12, "chdir";
    /// `fchdir`.
    Fchdir = SYS_fchdir, 133, "fchdir";
    /// `prlimit64`.
    Prlimit64 = SYS_prlimit64, 340, "prlimit64";
    /// `personality`.
    Personality = SYS_personality, 136, "personality";
    /// i386: `setresuid32` (32-bit ids).
    Setresuid = SYS_setresuid, 208, "setresuid32";
    /// i386: `setresgid32` (32-bit ids).
    Setresgid = SYS_setresgid, 210, "setresgid32";
    /// i386: `setgroups32` (32-bit ids).
    Setgroups = SYS_setgroups, 206, "setgroups32";
    /// `capget`.
    Capget = SYS_capget, 184, "capget";
    /// `capset`.
    Capset = SYS_capset, 185, "capset";
    /// `seccomp`.
    Seccomp = SYS_seccomp, 354, "seccomp";
    /// `userfaultfd`.
    Userfaultfd = SYS_userfaultfd, 374, "userfaultfd";
    /// `memfd_create`.
    MemfdCreate = SYS_memfd_create, 356, "memfd_create";
    /// `clone3`.
    Clone3 = SYS_clone3, 435, "clone3";
    /// `chroot`.
    Chroot = SYS_chroot, 61, "chroot";
    /// `close_range`.
    CloseRange = SYS_close_range, 436, "close_range";
    /// `pidfd_open`.
    PidfdOpen = SYS_pidfd_open, 434, "pidfd_open";
    /// `pidfd_getfd`.
    PidfdGetfd = SYS_pidfd_getfd, 438, "pidfd_getfd";
    /// `mlock2`.
    Mlock2 = SYS_mlock2, 376, "mlock2";
    /// `rt_sigqueueinfo`.
    RtSigqueueinfo = SYS_rt_sigqueueinfo, 178, "rt_sigqueueinfo";
    /// i386: `setfsuid32` (32-bit ids).
    Setfsuid = SYS_setfsuid, 215, "setfsuid32";
    /// i386: `setfsgid32` (32-bit ids).
    Setfsgid = SYS_setfsgid, 216, "setfsgid32";
    /// `execve`.
    Execve = SYS_execve, 11, "execve";
    /// `exit`.
    Exit = SYS_exit, 1, "exit";
    /// `exit_group`.
    ExitGroup = SYS_exit_group, 252, "exit_group";
    /// `restart_syscall`.
    RestartSyscall = SYS_restart_syscall, 0, "restart_syscall";
}

impl Sysno {
    /// The number of this syscall in `arch`, or `None` when it has none there.
    pub fn nr(self, arch: Arch) -> Option<u64> {
        let (x64, x32, _, _) = self.row();
        let nr = match arch {
            Arch::X86_64 => x64,
            Arch::I386 => x32,
        };
        u64::try_from(nr).ok()
    }

    /// The kernel's name of the syscall in `arch` (`"mmap2"` for [`Sysno::Mmap`] on i386), as it
    /// appears after `__NR_` in the uapi headers.
    pub fn kernel_name(self, arch: Arch) -> &'static str {
        let (_, _, n64, n32) = self.row();
        match arch {
            Arch::X86_64 => n64,
            Arch::I386 => n32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per syscall: no two variants share a number in either mode.
    #[test]
    fn no_syscall_is_listed_twice() {
        for arch in [Arch::X86_64, Arch::I386] {
            let mut seen = std::collections::HashMap::new();
            for &s in Sysno::ALL {
                let nr = s.nr(arch).expect("every row has both numbers");
                if let Some(other) = seen.insert(nr, s) {
                    panic!("{s:?} and {other:?} are both {arch:?} syscall {nr}");
                }
            }
        }
    }

    /// The i386 numbers must match the kernel's table; the uapi header is generated from it.
    #[test]
    fn i386_numbers_match_uapi_header() {
        let Ok(h) = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
            .or_else(|_| std::fs::read_to_string("/usr/include/asm/unistd_32.h"))
        else {
            psnc_testkit::skip!(
                "i386_numbers_match_uapi_header",
                "no asm/unistd_32.h installed (install linux-libc-dev)"
            );
        };
        for &s in Sysno::ALL {
            let name = s.kernel_name(Arch::I386);
            let want = format!("#define __NR_{name} ");
            let line = h.lines().find(|l| l.starts_with(&want));
            let Some(line) = line else {
                panic!("__NR_{name} not in unistd_32.h");
            };
            let nr: u64 = line[want.len()..].trim().parse().expect("number");
            assert_eq!(s.nr(Arch::I386), Some(nr), "{name}");
        }
    }

    #[test]
    fn x86_64_names_match_uapi_header() {
        let Ok(h) = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
            .or_else(|_| std::fs::read_to_string("/usr/include/asm/unistd_64.h"))
        else {
            psnc_testkit::skip!(
                "x86_64_names_match_uapi_header",
                "no asm/unistd_64.h installed (install linux-libc-dev)"
            );
        };
        for &s in Sysno::ALL {
            let name = s.kernel_name(Arch::X86_64);
            let want = format!("#define __NR_{name} ");
            let line = h.lines().find(|l| l.starts_with(&want));
            let Some(line) = line else {
                panic!("__NR_{name} not in unistd_64.h");
            };
            let nr: u64 = line[want.len()..].trim().parse().expect("number");
            assert_eq!(s.nr(Arch::X86_64), Some(nr), "{name}");
        }
    }
}
