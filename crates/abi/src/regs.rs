//! General-purpose registers of both modes, the syscall-restart codes they carry, and the two
//! feature masks of an XSAVE area.
//!
//! [`Regs`] is NT_PRSTATUS exactly as the kernel gives it, tagged by layout; the index modules
//! [`x86_64`] and [`i386`] name its slots. Its methods are the register conventions of a syscall
//! (number, arguments, result, restart state), written once for both modes.

use serde::{Deserialize, Serialize};

use crate::arch::Arch;

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

/// General-purpose registers exactly as NT_PRSTATUS gives them, tagged by layout. An image stores
/// them with syscall restart already resolved (see the capture crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// All zero in the x86_64 layout: the placeholder of a thread that was not filled in.
impl Default for Regs {
    fn default() -> Self {
        Regs::X86_64([0; 27])
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::PRSTATUS_LEN_I386;

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

    #[test]
    fn restart_state_and_syscall_loading() {
        let mut r = [0u64; 27];
        r[x86_64::RAX] = (-516i64) as u64;
        r[x86_64::ORIG_RAX] = 35;
        let mut regs = Regs::X86_64(r);
        assert!(regs.in_restartable_syscall());
        regs.load_syscall(0x1000, 39, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(regs.ip(), 0x1000);
        assert_eq!(regs.orig_syscall_nr(), -1);
        assert!(!regs.in_restartable_syscall());
        let Regs::X86_64(r) = regs else {
            unreachable!()
        };
        assert_eq!(x86_64::ARGS.map(|i| r[i]), [1, 2, 3, 4, 5, 6]);
        assert_eq!(Regs::default(), Regs::X86_64([0; 27]));
    }

    #[test]
    fn xstate_masks_need_the_xsave_header() {
        let mut x = vec![0u8; 576];
        x[464..472].copy_from_slice(&0x2e7u64.to_ne_bytes());
        x[512..520].copy_from_slice(&0x3u64.to_ne_bytes());
        assert_eq!(
            xstate_masks(&x),
            Some(XstateMasks {
                supported: 0x2e7,
                in_use: 0x3
            })
        );
        assert_eq!(xstate_masks(&x[..512]), None);
    }
}
