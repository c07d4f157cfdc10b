//! Native-endian reads out of the fixed-size buffers the kernel structs of this crate are
//! decoded from. Every caller reads at constant offsets inside a buffer whose length its type
//! fixes, so the slicing cannot go out of bounds.

/// The `u64` at byte `o` of `b`.
pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_ne_bytes(a)
}

/// The `u32` at byte `o` of `b`.
pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[o..o + 4]);
    u32::from_ne_bytes(a)
}
