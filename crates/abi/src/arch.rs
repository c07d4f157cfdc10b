//! The two user modes of an x86_64 kernel and what tells them apart.
//!
//! Everything that differs between a 64-bit task and a compat (i386) task starts from an
//! [`Arch`]: the NT_PRSTATUS layout ([`crate::Regs`]), the instruction that enters the kernel,
//! the size of a word, and the syscall numbers ([`crate::Sysno`]). Code elsewhere asks an `Arch`
//! and does not match on code selectors or regset sizes itself.

use serde::{Deserialize, Serialize};

/// The mode a thread runs in, read from its code segment selector. Recorded per process in an
/// image, separately from the image's layout class.
///
/// The exe's ELF class and the personality do not tell it: an i386 ELF runs as a compat task
/// without PER_LINUX32, and a 64-bit task can far-jump into 32-bit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Arch {
    /// 64-bit mode, CS = 0x33.
    #[default]
    X86_64,
    /// 32-bit compat mode on an x86_64 kernel, CS = 0x23.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_regset_sizes_name_the_mode() {
        assert_eq!(Arch::from_cs(0x33), Some(Arch::X86_64));
        assert_eq!(Arch::from_cs(0x23), Some(Arch::I386));
        assert_eq!(Arch::from_cs(0x2b), None);
        assert_eq!(Arch::from_prstatus_len(216), Some(Arch::X86_64));
        assert_eq!(Arch::from_prstatus_len(68), Some(Arch::I386));
        assert_eq!(Arch::from_prstatus_len(100), None);
        assert_eq!(Arch::default(), Arch::X86_64);
    }
}
