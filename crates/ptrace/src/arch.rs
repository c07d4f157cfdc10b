//! The two user modes of an x86_64 kernel, their register layouts and syscall conventions.
//!
//! Everything that differs between a 64-bit task and a compat (i386) task is written here, once:
//! the NT_PRSTATUS layout, which register carries the syscall number, arguments and result, the
//! instruction that enters the kernel, and the syscall numbers. The rest of the crate asks an
//! [`Arch`] or a [`Regs`] and never matches on the mode itself.

/// The mode a thread runs in, read from its code segment selector.
///
/// The exe's ELF class and the personality do not tell it: an i386 ELF runs as a compat task
/// without PER_LINUX32, and a 64-bit task can far-jump into 32-bit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 64-bit mode, CS = 0x33.
    X86_64,
    /// 32-bit compat mode, CS = 0x23.
    I386,
}

/// `__USER_CS`: the 64-bit user code segment selector.
pub const USER_CS_64: u64 = 0x33;
/// `__USER32_CS`: the 32-bit user code segment selector.
pub const USER_CS_32: u64 = 0x23;

/// Size of x86_64 `struct user_regs_struct` (27 x u64).
pub const PRSTATUS_LEN_X86_64: usize = 27 * 8;
/// Size of i386 `struct user_regs_struct` (17 x u32), what NT_PRSTATUS gives for a compat task.
pub const PRSTATUS_LEN_I386: usize = 17 * 4;

impl Arch {
    /// The mode a code segment selector stands for, if it is one of the two user selectors.
    pub fn from_cs(cs: u64) -> Option<Arch> {
        match cs {
            USER_CS_64 => Some(Arch::X86_64),
            USER_CS_32 => Some(Arch::I386),
            _ => None,
        }
    }

    /// The mode an NT_PRSTATUS regset of `len` bytes belongs to.
    pub fn from_prstatus_len(len: usize) -> Option<Arch> {
        match len {
            PRSTATUS_LEN_X86_64 => Some(Arch::X86_64),
            PRSTATUS_LEN_I386 => Some(Arch::I386),
            _ => None,
        }
    }

    /// The two bytes of the instruction that enters the kernel in this mode: `syscall` (0f 05)
    /// for x86_64, `int 0x80` (cd 80) for i386. Both are two bytes long, which is why a syscall
    /// restart moves the instruction pointer back by 2 in either mode. `syscall` from compat mode
    /// faults on Intel CPUs, so i386 always uses `int 0x80`.
    pub fn syscall_insn(self) -> [u8; 2] {
        match self {
            Arch::X86_64 => [0x0f, 0x05],
            Arch::I386 => [0xcd, 0x80],
        }
    }

    /// Size of a pointer (and of `long`) in this mode.
    pub fn word_size(self) -> usize {
        match self {
            Arch::X86_64 => 8,
            Arch::I386 => 4,
        }
    }

    /// The largest value a register (and so a syscall argument or address) holds in this mode.
    pub fn word_max(self) -> u64 {
        match self {
            Arch::X86_64 => u64::MAX,
            Arch::I386 => u64::from(u32::MAX),
        }
    }
}

/// Indices into the x86_64 `user_regs_struct`, kernel order.
#[allow(missing_docs)]
pub mod x86_64 {
    pub const R15: usize = 0;
    pub const R14: usize = 1;
    pub const R13: usize = 2;
    pub const R12: usize = 3;
    pub const RBP: usize = 4;
    pub const RBX: usize = 5;
    pub const R11: usize = 6;
    pub const R10: usize = 7;
    pub const R9: usize = 8;
    pub const R8: usize = 9;
    pub const RAX: usize = 10;
    pub const RCX: usize = 11;
    pub const RDX: usize = 12;
    pub const RSI: usize = 13;
    pub const RDI: usize = 14;
    pub const ORIG_RAX: usize = 15;
    pub const RIP: usize = 16;
    pub const CS: usize = 17;
    pub const EFLAGS: usize = 18;
    pub const RSP: usize = 19;
    pub const SS: usize = 20;
    pub const FS_BASE: usize = 21;
    pub const GS_BASE: usize = 22;
    pub const DS: usize = 23;
    pub const ES: usize = 24;
    pub const FS: usize = 25;
    pub const GS: usize = 26;
    /// Registers carrying syscall arguments 1..6.
    pub const ARGS: [usize; 6] = [RDI, RSI, RDX, R10, R8, R9];
}

/// Indices into the i386 `user_regs_struct`, kernel order.
#[allow(missing_docs)]
pub mod i386 {
    pub const EBX: usize = 0;
    pub const ECX: usize = 1;
    pub const EDX: usize = 2;
    pub const ESI: usize = 3;
    pub const EDI: usize = 4;
    pub const EBP: usize = 5;
    pub const EAX: usize = 6;
    pub const DS: usize = 7;
    pub const ES: usize = 8;
    pub const FS: usize = 9;
    pub const GS: usize = 10;
    pub const ORIG_EAX: usize = 11;
    pub const EIP: usize = 12;
    pub const CS: usize = 13;
    pub const EFLAGS: usize = 14;
    pub const ESP: usize = 15;
    pub const SS: usize = 16;
    /// Registers carrying syscall arguments 1..6.
    pub const ARGS: [usize; 6] = [EBX, ECX, EDX, ESI, EDI, EBP];
}

/// General-purpose registers exactly as NT_PRSTATUS gives them, tagged by layout.
///
/// The same shape as `psnc_format::model::Regs`, so converting is a field-for-field move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regs {
    /// x86_64 `struct user_regs_struct`: 27 u64 in kernel order (r15, r14, r13, r12, rbp, rbx,
    /// r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss, fs_base,
    /// gs_base, ds, es, fs, gs); see [`x86_64`] for indices.
    X86_64([u64; 27]),
    /// i386 `struct user_regs_struct`: 17 u32 (ebx, ecx, edx, esi, edi, ebp, eax, xds, xes, xfs,
    /// xgs, orig_eax, eip, xcs, eflags, esp, xss); see [`i386`] for indices.
    I386([u32; 17]),
}

/// The restart codes a syscall interrupted by a signal or a ptrace stop leaves in rax/eax.
pub mod restart {
    /// `-ERESTARTSYS`: restart if the handler has SA_RESTART (or there is no handler).
    pub const ERESTARTSYS: i64 = -512;
    /// `-ERESTARTNOINTR`: always restart.
    pub const ERESTARTNOINTR: i64 = -513;
    /// `-ERESTARTNOHAND`: restart only if no handler runs.
    pub const ERESTARTNOHAND: i64 = -514;
    /// `-ERESTART_RESTARTBLOCK`: restart through `restart_syscall` with state kept in the kernel.
    pub const ERESTART_RESTARTBLOCK: i64 = -516;
}

impl Regs {
    /// The layout of these registers.
    pub fn arch(&self) -> Arch {
        match self {
            Regs::X86_64(_) => Arch::X86_64,
            Regs::I386(_) => Arch::I386,
        }
    }

    /// The instruction pointer, widened.
    pub fn ip(&self) -> u64 {
        match self {
            Regs::X86_64(r) => r[x86_64::RIP],
            Regs::I386(r) => u64::from(r[i386::EIP]),
        }
    }

    /// Sets the instruction pointer (truncated to 32 bits for i386; callers check with
    /// [`Arch::word_max`] first).
    pub fn set_ip(&mut self, ip: u64) {
        match self {
            Regs::X86_64(r) => r[x86_64::RIP] = ip,
            Regs::I386(r) => r[i386::EIP] = ip as u32,
        }
    }

    /// The stack pointer, widened.
    pub fn sp(&self) -> u64 {
        match self {
            Regs::X86_64(r) => r[x86_64::RSP],
            Regs::I386(r) => u64::from(r[i386::ESP]),
        }
    }

    /// rax / eax as a signed value (eax sign-extended), where a syscall leaves its result.
    pub fn syscall_ret(&self) -> i64 {
        match self {
            Regs::X86_64(r) => r[x86_64::RAX] as i64,
            Regs::I386(r) => i64::from(r[i386::EAX] as i32),
        }
    }

    /// orig_rax / orig_eax as a signed value: the number of the syscall the thread is in, or -1.
    pub fn orig_syscall_nr(&self) -> i64 {
        match self {
            Regs::X86_64(r) => r[x86_64::ORIG_RAX] as i64,
            Regs::I386(r) => i64::from(r[i386::ORIG_EAX] as i32),
        }
    }

    /// Code segment selector, widened.
    pub fn cs(&self) -> u64 {
        match self {
            Regs::X86_64(r) => r[x86_64::CS],
            Regs::I386(r) => u64::from(r[i386::CS]),
        }
    }

    /// True when the thread stopped inside a syscall that the kernel will restart (orig_rax >= 0
    /// and rax holds one of the `-ERESTART*` codes).
    pub fn in_restartable_syscall(&self) -> bool {
        self.orig_syscall_nr() >= 0
            && matches!(
                self.syscall_ret(),
                restart::ERESTARTSYS
                    | restart::ERESTARTNOINTR
                    | restart::ERESTARTNOHAND
                    | restart::ERESTART_RESTARTBLOCK
            )
    }

    /// Loads a syscall into the registers: number, six arguments, instruction pointer at `insn`,
    /// and orig_rax = -1 so that the kernel applies no restart logic of an interrupted syscall to
    /// the injected one. Values are truncated to 32 bits for i386 (the caller checks).
    pub fn load_syscall(&mut self, insn: u64, nr: u64, args: &[u64; 6]) {
        match self {
            Regs::X86_64(r) => {
                r[x86_64::RAX] = nr;
                for (&i, &a) in x86_64::ARGS.iter().zip(args) {
                    r[i] = a;
                }
                r[x86_64::ORIG_RAX] = u64::MAX;
                r[x86_64::RIP] = insn;
            }
            Regs::I386(r) => {
                r[i386::EAX] = nr as u32;
                for (&i, &a) in i386::ARGS.iter().zip(args) {
                    r[i] = a as u32;
                }
                r[i386::ORIG_EAX] = u32::MAX;
                r[i386::EIP] = insn as u32;
            }
        }
    }

    /// The registers as the bytes NT_PRSTATUS takes (native endianness).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Regs::X86_64(r) => r.iter().flat_map(|v| v.to_ne_bytes()).collect(),
            Regs::I386(r) => r.iter().flat_map(|v| v.to_ne_bytes()).collect(),
        }
    }

    /// Decodes NT_PRSTATUS bytes; the length selects the layout.
    pub fn from_bytes(b: &[u8]) -> Option<Regs> {
        match Arch::from_prstatus_len(b.len())? {
            Arch::X86_64 => {
                let mut r = [0u64; 27];
                for (v, c) in r.iter_mut().zip(b.chunks_exact(8)) {
                    *v = u64::from_ne_bytes(c.try_into().ok()?);
                }
                Some(Regs::X86_64(r))
            }
            Arch::I386 => {
                let mut r = [0u32; 17];
                for (v, c) in r.iter_mut().zip(b.chunks_exact(4)) {
                    *v = u32::from_ne_bytes(c.try_into().ok()?);
                }
                Some(Regs::I386(r))
            }
        }
    }
}

/// The two feature masks in an XSAVE area as `PTRACE_GETREGSET(NT_X86_XSTATE)` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XstateMasks {
    /// The features the OS enabled (XCR0), which the kernel puts in the first software-usable
    /// word of the FXSAVE area, bytes 464..471 (`USER_XSTATE_XCR0_WORD` in the kernel's
    /// asm/user.h; gdb reads it there too). A restore must find all of them on its CPU.
    pub supported: u64,
    /// XSTATE_BV (bytes 512..519): the components in use (not in their init state) in this
    /// thread.
    pub in_use: u64,
}

/// Reads the two feature masks of an XSAVE area; `None` when it is too short to hold the XSAVE
/// header (an FXSAVE-only area of 512 bytes).
pub fn xstate_masks(xstate: &[u8]) -> Option<XstateMasks> {
    let word = |o: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(xstate.get(o..o + 8)?.try_into().ok()?))
    };
    Some(XstateMasks {
        supported: word(464)?,
        in_use: word(512)?,
    })
}

/// Syscalls this project runs inside a target, with their number in each mode.
///
/// x86_64 numbers come from `libc::SYS_*`. i386 numbers are from the kernel's
/// `arch/x86/entry/syscalls/syscall_32.tbl`, checked by a test against the installed
/// `asm/unistd_32.h`, which is generated from it. Where i386 has several variants, the one listed
/// is the one with wide arguments (`mmap2`, `fcntl64`, `_llseek`, `setresuid32`, ...): see
/// [`Sysno::kernel_name`].
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

    #[test]
    fn regs_round_trip_through_bytes() {
        let mut r = [0u64; 27];
        for (i, v) in r.iter_mut().enumerate() {
            *v = (i as u64) << 40 | 7;
        }
        let regs = Regs::X86_64(r);
        assert_eq!(Regs::from_bytes(&regs.to_bytes()), Some(regs));
        let regs32 = Regs::I386([0xdead_beef; 17]);
        assert_eq!(regs32.to_bytes().len(), PRSTATUS_LEN_I386);
        assert_eq!(Regs::from_bytes(&regs32.to_bytes()), Some(regs32));
        assert_eq!(Regs::from_bytes(&[0u8; 100]), None);
    }

    #[test]
    fn i386_result_is_sign_extended() {
        let mut r = [0u32; 17];
        r[i386::EAX] = (-514i32) as u32;
        r[i386::ORIG_EAX] = 162;
        let regs = Regs::I386(r);
        assert_eq!(regs.syscall_ret(), -514);
        assert!(regs.in_restartable_syscall());
    }

    /// The i386 numbers must match the kernel's table; the uapi header is generated from it.
    #[test]
    fn i386_numbers_match_uapi_header() {
        let Ok(h) = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
            .or_else(|_| std::fs::read_to_string("/usr/include/asm/unistd_32.h"))
        else {
            psnc_testkit::skip!(
                "i386_numbers_match_uapi_header",
                "no asm/unistd_32.h (install linux-libc-dev)"
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
                "no asm/unistd_64.h (install linux-libc-dev)"
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
