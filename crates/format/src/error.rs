//! The one error type of the format crate.
//!
//! Every variant names what is wrong and where (section, byte offset, field), so a user holding a
//! bad image learns from one line whether it is truncated, corrupt, foreign or too new.

use std::io;

/// An error reading, writing or converting an image.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An I/O error on the image file or stream.
    #[error("image I/O error while {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is shorter than a structure it must contain.
    #[error("image truncated: {what} needs bytes {offset}..{end} but the image has {have} bytes")]
    Truncated {
        /// The structure that does not fit.
        what: String,
        /// Where it starts.
        offset: u64,
        /// Where it would end.
        end: u64,
        /// The image length.
        have: u64,
    },
    /// The file does not start with the psnc-cr magic: not an image, or a foreign one.
    #[error("not a psnc-cr image: magic at byte 0 is {found:02x?}, expected {expected:02x?}")]
    BadMagic {
        /// The first 8 bytes found.
        found: [u8; 8],
        /// The expected magic.
        expected: [u8; 8],
    },
    /// The trailer's end magic is missing: the image was cut short or not finished.
    #[error("image has no valid trailer (end magic {found:02x?} in the last 8 bytes): truncated or not finished")]
    BadTrailer {
        /// The last 8 bytes found.
        found: [u8; 8],
    },
    /// A major version this reader does not support.
    #[error("image format version {found_major}.{found_minor} is not supported: this reader supports major version {supported}; use a newer psnc-cr")]
    UnsupportedMajor {
        /// Major version in the image.
        found_major: u16,
        /// Minor version in the image.
        found_minor: u16,
        /// The major version this reader knows.
        supported: u16,
    },
    /// A layout class byte that is neither 1 (32-bit) nor 2 (64-bit).
    #[error("unknown layout class {0} at byte 12 (expected 1 = 32-bit or 2 = 64-bit)")]
    BadClass(u8),
    /// A byte order other than little endian.
    #[error("byte order {0} at byte 13 is not supported: only little-endian images (1) exist")]
    BadByteOrder(u8),
    /// A header field with an impossible value.
    #[error("invalid header: {0}")]
    BadHeader(String),
    /// A section table entry that points outside the data area or overlaps another one.
    #[error("section {index} ({kind}) has an invalid extent {offset}..+{length}: {why}")]
    BadSectionExtent {
        /// Index in the section table.
        index: usize,
        /// The section kind's name.
        kind: String,
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// A critical section this reader does not know: the image needs a newer reader.
    #[error("image has critical section kind {kind:#x} (table index {index}) that this reader does not know; use a newer psnc-cr")]
    UnknownCriticalSection {
        /// The kind number.
        kind: u32,
        /// Index in the section table.
        index: usize,
    },
    /// A known critical section in a version this reader does not know.
    #[error("section {kind} has version {found}, this reader knows up to {supported}; use a newer psnc-cr")]
    UnsupportedSectionVersion {
        /// The section kind's name.
        kind: &'static str,
        /// The version in the image.
        found: u16,
        /// The newest version this reader decodes.
        supported: u16,
    },
    /// A section that must appear exactly once is missing or repeated.
    #[error("section {kind} appears {count} times; the image needs exactly one")]
    SectionCount {
        /// The section kind's name.
        kind: &'static str,
        /// How many were found.
        count: usize,
    },
    /// A digest does not match: the image is corrupt.
    #[error("digest mismatch in {what} (bytes {offset}..{end}): the image is corrupt")]
    DigestMismatch {
        /// What was checked (a section, a chunk, the image header and table).
        what: String,
        /// Start of the covered bytes.
        offset: u64,
        /// End of the covered bytes.
        end: u64,
    },
    /// A metadata section whose digest matched but whose contents do not decode.
    #[error("section {kind} at offset {offset} does not decode: {detail}")]
    Decode {
        /// The section kind's name.
        kind: &'static str,
        /// The section's offset.
        offset: u64,
        /// The decoder's message.
        detail: String,
    },
    /// A value does not fit the layout class's width.
    #[error("{field} = {value:#x} does not fit in the {bits}-bit layout class")]
    FieldTooWide {
        /// The field, with its owner (e.g. `vma 0x7ffd0000 (pid 42) .end`).
        field: String,
        /// The value.
        value: u64,
        /// The class width in bits.
        bits: u32,
    },
    /// The model breaks an invariant (VMAs overlap, a page run outside its VMAs, ...).
    #[error("invalid model: {0}")]
    Invalid(String),
    /// The writer was used in the wrong order.
    #[error("writer misuse: {0}")]
    WriterState(&'static str),
    /// A reference to data that does not exist (page run or file outside its section).
    #[error("{what} refers to bytes {offset}..{end} outside its section of {len} bytes")]
    DataOutOfRange {
        /// What refers to the data.
        what: String,
        /// Start.
        offset: u64,
        /// End.
        end: u64,
        /// Length of the section.
        len: u64,
    },
    /// An incremental image's parent (section `parent`) is not where the image says, nor
    /// where the reader was told to look.
    #[error("this is an incremental image and its parent is missing: looked for {tried}; give the parent with --parent PATH, or restore from an image made by `psnc-imgtool merge` while the chain was complete")]
    ParentMissing {
        /// The places looked at, joined for the message.
        tried: String,
    },
    /// A file found where the parent should be is another image.
    #[error("{path} is not the parent of this incremental image: its image digest is {found}, the image was captured against {expected} (was the parent replaced, re-captured or converted?); give the right one with --parent PATH")]
    ParentMismatch {
        /// The file found.
        path: String,
        /// The digest the incremental image records, hex.
        expected: String,
        /// The digest of the file found, hex.
        found: String,
    },
    /// The parent of an incremental image (or one further up the chain) is unusable.
    #[error("parent image {path}: {source}")]
    Parent {
        /// The parent's path.
        path: String,
        /// What is wrong with it.
        #[source]
        source: Box<FormatError>,
    },
}

impl FormatError {
    /// Wraps an `io::Error` with what was being done.
    pub fn io(action: &'static str) -> impl FnOnce(io::Error) -> FormatError {
        move |source| FormatError::Io { action, source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
