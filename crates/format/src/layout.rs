//! Fixed structures of the file: header, section table entries, trailer, page index entries.
//!
//! These are plain little-endian structs of the class's width, encoded and decoded by hand (no
//! serde), so that their bytes are exactly what spec/FORMAT.md draws.

use crate::class::{Class, LayoutClass, Word};
use crate::error::{FormatError, Result};

/// The magic at byte 0: `\x89PSNC\r\n\x1a`. Like PNG's, the high byte and the CR LF / ^Z catch
/// 7-bit and newline-translating transfers.
pub const MAGIC: [u8; 8] = [0x89, b'P', b'S', b'N', b'C', b'\r', b'\n', 0x1a];
/// The magic in the last 8 bytes of every complete image.
pub const END_MAGIC: [u8; 8] = *b"PSNCEND\n";
/// The format major version this crate writes and reads.
pub const FORMAT_MAJOR: u16 = 1;
/// The format minor version this crate writes.
pub const FORMAT_MINOR: u16 = 4;
/// Size of the header in both classes.
pub const HEADER_SIZE: usize = 32;
/// log2 of the digest chunk size of chunked sections (1 MiB).
pub const CHUNK_SHIFT: u8 = 20;
/// Alignment of raw data sections and of every run inside them.
pub const PAGE_ALIGN: u64 = 4096;
/// Alignment of every section's start.
pub const SECTION_ALIGN: u64 = 8;

/// Header flag: the image was written as a stream; `table_offset` in the header is 0 and the
/// trailer is authoritative.
pub const HEADER_FLAG_STREAMED: u32 = 1 << 0;

/// Section flag: a reader that does not know the kind must refuse the image.
pub const SECTION_CRITICAL: u16 = 1 << 0;
/// Section flag: an editor that does not know the kind may copy it into a rewritten image.
pub const SECTION_SAFE_TO_COPY: u16 = 1 << 1;
/// Section flag: the digest is the SHA-256 of the list of per-chunk SHA-256 digests.
pub const SECTION_CHUNKED: u16 = 1 << 2;

/// The fixed header at byte 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format major version.
    pub major: u16,
    /// Format minor version.
    pub minor: u16,
    /// Layout class.
    pub class: LayoutClass,
    /// Header size (32).
    pub header_size: u16,
    /// `HEADER_FLAG_*` bits.
    pub flags: u32,
    /// log2 of the chunk size of chunked digests.
    pub chunk_shift: u8,
    /// Offset of the section table, or 0 in a streamed image.
    pub table_offset: u64,
}

impl Header {
    /// A header for a new image.
    pub fn new(class: LayoutClass, streamed: bool) -> Self {
        Header {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            class,
            header_size: HEADER_SIZE as u16,
            flags: if streamed { HEADER_FLAG_STREAMED } else { 0 },
            chunk_shift: CHUNK_SHIFT,
            table_offset: 0,
        }
    }

    /// Encodes the 32 header bytes.
    pub fn encode(&self) -> Result<[u8; HEADER_SIZE]> {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        b[12] = self.class.to_byte();
        b[13] = 1; // little endian
        b[14..16].copy_from_slice(&self.header_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[20] = self.chunk_shift;
        match self.class {
            LayoutClass::Bits32 => {
                let t =
                    u32::try_from(self.table_offset).map_err(|_| FormatError::FieldTooWide {
                        field: "header.table_offset".into(),
                        value: self.table_offset,
                        bits: 32,
                    })?;
                b[24..28].copy_from_slice(&t.to_le_bytes());
            }
            LayoutClass::Bits64 => b[24..32].copy_from_slice(&self.table_offset.to_le_bytes()),
        }
        Ok(b)
    }

    /// Decodes and checks a header (magic, byte order, class, major version).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER_SIZE {
            return Err(FormatError::Truncated {
                what: "header".into(),
                offset: 0,
                end: HEADER_SIZE as u64,
                have: bytes.len() as u64,
            });
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&bytes[0..8]);
        if magic != MAGIC {
            return Err(FormatError::BadMagic {
                found: magic,
                expected: MAGIC,
            });
        }
        let major = u16::from_le_bytes([bytes[8], bytes[9]]);
        let minor = u16::from_le_bytes([bytes[10], bytes[11]]);
        if major != FORMAT_MAJOR {
            return Err(FormatError::UnsupportedMajor {
                found_major: major,
                found_minor: minor,
                supported: FORMAT_MAJOR,
            });
        }
        let class = LayoutClass::from_byte(bytes[12])?;
        if bytes[13] != 1 {
            return Err(FormatError::BadByteOrder(bytes[13]));
        }
        let header_size = u16::from_le_bytes([bytes[14], bytes[15]]);
        if usize::from(header_size) < HEADER_SIZE {
            return Err(FormatError::BadHeader(format!(
                "header size {header_size} at byte 14 is below the minimum {HEADER_SIZE}"
            )));
        }
        let flags = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let chunk_shift = bytes[20];
        if !(12..=30).contains(&chunk_shift) {
            return Err(FormatError::BadHeader(format!(
                "chunk shift {chunk_shift} at byte 20 is outside 12..=30"
            )));
        }
        let table_offset = match class {
            LayoutClass::Bits32 => u64::from(u32::from_le_bytes([
                bytes[24], bytes[25], bytes[26], bytes[27],
            ])),
            LayoutClass::Bits64 => {
                let mut w = [0u8; 8];
                w.copy_from_slice(&bytes[24..32]);
                u64::from_le_bytes(w)
            }
        };
        Ok(Header {
            major,
            minor,
            class,
            header_size,
            flags,
            chunk_shift,
            table_offset,
        })
    }
}

/// One entry of the section table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionEntry {
    /// Section kind number (see [`crate::sections::SectionKind`]).
    pub kind: u32,
    /// Version of the section's encoding.
    pub version: u16,
    /// `SECTION_*` flags.
    pub flags: u16,
    /// Byte offset of the section's data in the image.
    pub offset: u64,
    /// Length of the section's data.
    pub length: u64,
    /// SHA-256 of the data, or of the chunk digest list for chunked sections.
    pub sha256: [u8; 32],
}

impl SectionEntry {
    /// Size of an encoded entry in class `C`: kind, version, flags, offset, length, sha256.
    pub fn size(class: LayoutClass) -> usize {
        8 + 2 * class.word_size() + 32
    }

    /// Whether a reader that does not know this kind must refuse the image.
    pub fn is_critical(&self) -> bool {
        self.flags & SECTION_CRITICAL != 0
    }

    /// Appends the encoded entry.
    pub fn encode<C: Class>(&self, index: usize, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        C::Word::narrow(self.offset, || format!("section[{index}].offset"))?.put(out);
        C::Word::narrow(self.length, || format!("section[{index}].length"))?.put(out);
        out.extend_from_slice(&self.sha256);
        Ok(())
    }

    /// Decodes one entry from exactly `size(C)` bytes.
    pub fn decode<C: Class>(b: &[u8]) -> Self {
        let w = C::Word::SIZE;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&b[8 + 2 * w..8 + 2 * w + 32]);
        SectionEntry {
            kind: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            version: u16::from_le_bytes([b[4], b[5]]),
            flags: u16::from_le_bytes([b[6], b[7]]),
            offset: C::Word::get(&b[8..8 + w]).widen(),
            length: C::Word::get(&b[8 + w..8 + 2 * w]).widen(),
            sha256,
        }
    }
}

/// The fixed trailer at the end of every image: where the table is, and the image digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the section table.
    pub table_offset: u64,
    /// Number of entries in the table.
    pub table_count: u64,
    /// SHA-256 over the header, the section table and the two words above.
    pub image_sha256: [u8; 32],
}

impl Trailer {
    /// Size of the trailer: two class-width words, the digest, the end magic.
    pub fn size(class: LayoutClass) -> usize {
        2 * class.word_size() + 32 + 8
    }

    /// The two words the image digest covers.
    pub fn words<C: Class>(table_offset: u64, table_count: u64) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(16);
        C::Word::narrow(table_offset, || "trailer.table_offset".into())?.put(&mut out);
        C::Word::narrow(table_count, || "trailer.table_count".into())?.put(&mut out);
        Ok(out)
    }

    /// Encodes the whole trailer.
    pub fn encode<C: Class>(&self) -> Result<Vec<u8>> {
        let mut out = Self::words::<C>(self.table_offset, self.table_count)?;
        out.extend_from_slice(&self.image_sha256);
        out.extend_from_slice(&END_MAGIC);
        Ok(out)
    }

    /// Decodes a trailer from exactly `size(C)` bytes, checking the end magic.
    pub fn decode<C: Class>(b: &[u8]) -> Result<Self> {
        let w = C::Word::SIZE;
        let mut end = [0u8; 8];
        end.copy_from_slice(&b[b.len() - 8..]);
        if end != END_MAGIC {
            return Err(FormatError::BadTrailer { found: end });
        }
        let mut image_sha256 = [0u8; 32];
        image_sha256.copy_from_slice(&b[2 * w..2 * w + 32]);
        Ok(Trailer {
            table_offset: C::Word::get(&b[0..w]).widen(),
            table_count: C::Word::get(&b[w..2 * w]).widen(),
            image_sha256,
        })
    }
}

/// One entry of the page index: a run of pages of one process and where its bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageIndexEntry {
    /// Owning process.
    pub pid: u32,
    /// Reserved flags, 0.
    pub flags: u32,
    /// Virtual address of the first page.
    pub addr: u64,
    /// Number of pages.
    pub pages: u64,
    /// Offset of the bytes inside the page-data section.
    pub data_offset: u64,
}

impl PageIndexEntry {
    /// Encoded size: pid, flags, then three class-width words.
    pub fn size(class: LayoutClass) -> usize {
        8 + 3 * class.word_size()
    }

    /// Appends the encoded entry.
    pub fn encode<C: Class>(&self, out: &mut Vec<u8>) -> Result<()> {
        let at = || format!("page run {:#x} (pid {})", self.addr, self.pid);
        out.extend_from_slice(&self.pid.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        C::Word::narrow(self.addr, || format!("{}.addr", at()))?.put(out);
        C::Word::narrow(self.pages, || format!("{}.pages", at()))?.put(out);
        C::Word::narrow(self.data_offset, || format!("{}.data_offset", at()))?.put(out);
        Ok(())
    }

    /// Decodes one entry from exactly `size(C)` bytes.
    pub fn decode<C: Class>(b: &[u8]) -> Self {
        let w = C::Word::SIZE;
        PageIndexEntry {
            pid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            flags: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            addr: C::Word::get(&b[8..8 + w]).widen(),
            pages: C::Word::get(&b[8 + w..8 + 2 * w]).widen(),
            data_offset: C::Word::get(&b[8 + 2 * w..8 + 3 * w]).widen(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::{C32, C64};

    #[test]
    fn header_round_trip_both_classes() {
        for class in [LayoutClass::Bits32, LayoutClass::Bits64] {
            let mut h = Header::new(class, false);
            h.table_offset = 0x1234;
            let b = h.encode().expect("encode");
            assert_eq!(Header::decode(&b).expect("decode"), h);
        }
    }

    #[test]
    fn header_refusals_name_the_problem() {
        let mut b = Header::new(LayoutClass::Bits64, true)
            .encode()
            .expect("encode");
        b[8] = 2;
        assert!(matches!(
            Header::decode(&b),
            Err(FormatError::UnsupportedMajor {
                found_major: 2,
                supported: 1,
                ..
            })
        ));
        b[8] = 1;
        b[13] = 2;
        assert!(matches!(
            Header::decode(&b),
            Err(FormatError::BadByteOrder(2))
        ));
        b[13] = 1;
        b[12] = 3;
        assert!(matches!(Header::decode(&b), Err(FormatError::BadClass(3))));
        b[0] = b'E';
        assert!(matches!(
            Header::decode(&b),
            Err(FormatError::BadMagic { .. })
        ));
        assert!(matches!(
            Header::decode(&b[..10]),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn entry_sizes_follow_the_class() {
        assert_eq!(SectionEntry::size(LayoutClass::Bits32), 48);
        assert_eq!(SectionEntry::size(LayoutClass::Bits64), 56);
        assert_eq!(Trailer::size(LayoutClass::Bits32), 48);
        assert_eq!(Trailer::size(LayoutClass::Bits64), 56);
        assert_eq!(PageIndexEntry::size(LayoutClass::Bits32), 20);
        assert_eq!(PageIndexEntry::size(LayoutClass::Bits64), 32);
        let e = SectionEntry {
            kind: 5,
            version: 1,
            flags: 3,
            offset: 64,
            length: 9,
            sha256: [7; 32],
        };
        let mut v = Vec::new();
        e.encode::<C32>(0, &mut v).expect("encode");
        assert_eq!(v.len(), 48);
        assert_eq!(SectionEntry::decode::<C32>(&v), e);
        v.clear();
        e.encode::<C64>(0, &mut v).expect("encode");
        assert_eq!(SectionEntry::decode::<C64>(&v), e);
    }
}
