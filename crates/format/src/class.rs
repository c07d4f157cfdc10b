//! Layout classes: the 32-bit and the 64-bit on-disk layout, like ELFCLASS32 and ELFCLASS64.
//!
//! The class fixes the width of every *class-width* field: addresses and sizes in a process's
//! address space, and offsets and lengths inside the image (including the size of a stored
//! file, which is the length of its bytes inside the image). Such fields are stored as fixed-width
//! little-endian integers (4 or 8 bytes), never as varints, so the two classes really differ on
//! disk. File positions, file sizes and file offsets are *not* class-width: i386 processes use
//! 64-bit file offsets (LFS), so those are always 64-bit (varints in metadata).
//!
//! All on-disk code is written once, generically over [`Class`]; the two impls are thin.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FormatError, Result};

/// The layout class of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutClass {
    /// 32-bit layout: class-width fields are 4 bytes. The default for i386 processes.
    Bits32,
    /// 64-bit layout: class-width fields are 8 bytes. The default for x86_64 processes.
    Bits64,
}

impl LayoutClass {
    /// The class byte in the header (ELF's values: 1 = 32-bit, 2 = 64-bit).
    pub fn to_byte(self) -> u8 {
        match self {
            LayoutClass::Bits32 => 1,
            LayoutClass::Bits64 => 2,
        }
    }

    /// Parses the header's class byte.
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            1 => Ok(LayoutClass::Bits32),
            2 => Ok(LayoutClass::Bits64),
            other => Err(FormatError::BadClass(other)),
        }
    }

    /// Width of a class-width field in bytes.
    pub fn word_size(self) -> usize {
        match self {
            LayoutClass::Bits32 => 4,
            LayoutClass::Bits64 => 8,
        }
    }

    /// Width in bits (32 or 64).
    pub fn bits(self) -> u32 {
        self.word_size() as u32 * 8
    }
}

impl std::fmt::Display for LayoutClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-bit", self.bits())
    }
}

/// A class-width integer as stored on disk: fixed width, little endian.
pub trait Word: Copy + Debug + PartialEq + Serialize + DeserializeOwned + 'static {
    /// Width in bytes.
    const SIZE: usize;
    /// Narrows a model value, naming the field when it does not fit.
    fn narrow(value: u64, field: impl FnOnce() -> String) -> Result<Self>;
    /// Widens to the model's `u64`.
    fn widen(self) -> u64;
    /// Appends the little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
    /// Reads from exactly `SIZE` bytes (the caller checked the length).
    fn get(bytes: &[u8]) -> Self;
}

/// A 4-byte class-width field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct W32(pub u32);

/// An 8-byte class-width field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct W64(pub u64);

// postcard writes a `[u8; N]` as N raw bytes (a tuple, no length prefix), which is exactly the
// fixed-width little-endian encoding we want.
impl Serialize for W32 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.to_le_bytes().serialize(s)
    }
}
impl<'de> Deserialize<'de> for W32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        <[u8; 4]>::deserialize(d).map(|b| W32(u32::from_le_bytes(b)))
    }
}
impl Serialize for W64 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.to_le_bytes().serialize(s)
    }
}
impl<'de> Deserialize<'de> for W64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        <[u8; 8]>::deserialize(d).map(|b| W64(u64::from_le_bytes(b)))
    }
}

impl Word for W32 {
    const SIZE: usize = 4;
    fn narrow(value: u64, field: impl FnOnce() -> String) -> Result<Self> {
        u32::try_from(value)
            .map(W32)
            .map_err(|_| FormatError::FieldTooWide {
                field: field(),
                value,
                bits: 32,
            })
    }
    fn widen(self) -> u64 {
        u64::from(self.0)
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[..4]);
        W32(u32::from_le_bytes(b))
    }
}

impl Word for W64 {
    const SIZE: usize = 8;
    fn narrow(value: u64, _field: impl FnOnce() -> String) -> Result<Self> {
        Ok(W64(value))
    }
    fn widen(self) -> u64 {
        self.0
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[..8]);
        W64(u64::from_le_bytes(b))
    }
}

/// A layout class at the type level, so on-disk code is written once for both.
pub trait Class: Copy + Debug + 'static {
    /// The class-width integer.
    type Word: Word;
    /// The runtime value of this class.
    const LAYOUT: LayoutClass;
}

/// The 32-bit layout class.
#[derive(Debug, Clone, Copy)]
pub enum C32 {}
/// The 64-bit layout class.
#[derive(Debug, Clone, Copy)]
pub enum C64 {}

impl Class for C32 {
    type Word = W32;
    const LAYOUT: LayoutClass = LayoutClass::Bits32;
}
impl Class for C64 {
    type Word = W64;
    const LAYOUT: LayoutClass = LayoutClass::Bits64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_fixed_width_in_postcard() {
        let b = postcard::to_stdvec(&W32(1)).expect("encode");
        assert_eq!(b, [1, 0, 0, 0]);
        let b = postcard::to_stdvec(&W64(0x0102)).expect("encode");
        assert_eq!(b, [2, 1, 0, 0, 0, 0, 0, 0]);
        let w: W64 = postcard::from_bytes(&b).expect("decode");
        assert_eq!(w, W64(0x0102));
    }

    #[test]
    fn narrowing_names_the_field() {
        let e = W32::narrow(1 << 32, || "vma.end".into()).unwrap_err();
        assert!(
            matches!(e, FormatError::FieldTooWide { ref field, value: 0x1_0000_0000, bits: 32 } if field == "vma.end")
        );
        assert_eq!(W32::narrow(7, || unreachable!()).expect("fits"), W32(7));
    }
}
