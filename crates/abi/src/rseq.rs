//! A thread's rseq (restartable sequences) registration.

use serde::{Deserialize, Serialize};

use crate::bytes::{u32_at, u64_at};

/// A registered rseq area, as `PTRACE_GET_RSEQ_CONFIGURATION` reports it and `rseq(2)` takes it
/// back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rseq {
    /// Address of the thread's `struct rseq`, 0 when none is registered.
    pub addr: u64,
    /// Its registered length.
    pub len: u32,
    /// The abort signature.
    pub sig: u32,
    /// Registration flags.
    pub flags: u32,
}

impl Rseq {
    /// Size of `struct ptrace_rseq_configuration` (u64 pointer, three u32, u32 padding).
    pub const PTRACE_CONFIG_LEN: usize = 24;

    /// Decodes `struct ptrace_rseq_configuration` as `PTRACE_GET_RSEQ_CONFIGURATION` writes it.
    pub fn from_ptrace_config(b: &[u8; Self::PTRACE_CONFIG_LEN]) -> Rseq {
        Rseq {
            addr: u64_at(b, 0),
            len: u32_at(b, 8),
            sig: u32_at(b, 12),
            flags: u32_at(b, 16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptrace_configuration_layout() {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&0x7f00_1000u64.to_ne_bytes());
        b[8..12].copy_from_slice(&32u32.to_ne_bytes());
        b[12..16].copy_from_slice(&0x5305_3053u32.to_ne_bytes());
        b[16..20].copy_from_slice(&1u32.to_ne_bytes());
        assert_eq!(
            Rseq::from_ptrace_config(&b),
            Rseq {
                addr: 0x7f00_1000,
                len: 32,
                sig: 0x5305_3053,
                flags: 1
            }
        );
    }
}
