//! Thread-local storage descriptors of compat (i386) tasks.

use serde::{Deserialize, Serialize};

use crate::bytes::u32_at;

/// An i386 `struct user_desc`: one GDT TLS entry (12..14) of a compat task, as
/// `PTRACE_GET_THREAD_AREA` reports it and `PTRACE_SET_THREAD_AREA` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserDesc {
    /// GDT entry number (12..14).
    pub entry_number: u32,
    /// Segment base address.
    pub base_addr: u32,
    /// Segment limit.
    pub limit: u32,
    /// The flag bits seg_32bit:1, contents:2, read_exec_only:1, limit_in_pages:1,
    /// seg_not_present:1, useable:1, lm:1, packed as the kernel packs the bitfield.
    pub flags: u32,
}

impl UserDesc {
    /// Size of `struct user_desc`: four u32, the same in both modes.
    pub const LEN: usize = 16;

    /// The struct as `PTRACE_SET_THREAD_AREA` reads it.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        for (i, v) in [self.entry_number, self.base_addr, self.limit, self.flags]
            .iter()
            .enumerate()
        {
            b[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }

    /// Decodes what `PTRACE_GET_THREAD_AREA` wrote.
    pub fn from_bytes(b: &[u8; Self::LEN]) -> UserDesc {
        UserDesc {
            entry_number: u32_at(b, 0),
            base_addr: u32_at(b, 4),
            limit: u32_at(b, 8),
            flags: u32_at(b, 12),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_desc_round_trips() {
        let d = UserDesc {
            entry_number: 12,
            base_addr: 0xf7d0_0000,
            limit: 0xfffff,
            flags: 0x51,
        };
        let b = d.to_bytes();
        assert_eq!(&b[..4], &12u32.to_ne_bytes());
        assert_eq!(UserDesc::from_bytes(&b), d);
    }
}
