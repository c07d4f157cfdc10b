//! The psnc-cr checkpoint image format.
//!
//! One image holds one checkpoint: a process tree with its memory, files and kernel state. The
//! contract is spec/FORMAT.md; this crate implements it and the two must change together.
//!
//! ```text
//!  offset                          contents
//!  ┌───────────────────────────┐
//!  │ 0    header (32 bytes)    │  magic \x89PSNC\r\n\x1a, major.minor, class (1=32, 2=64),
//!  │                           │  byte order (1=LE), header size, flags, chunk shift,
//!  │                           │  table offset (class width; 0 in a streamed image)
//!  ├───────────────────────────┤  ── 4096-aligned ──
//!  │ page-data    (raw)        │  page runs, each a multiple of 4096 bytes
//!  ├───────────────────────────┤  ── 4096-aligned ──
//!  │ file-data    (raw)        │  stored files, each 4096-aligned, deduplicated by SHA-256
//!  ├───────────────────────────┤  ── 8-aligned, each ──
//!  │ identity, processes,      │  metadata: postcard, frozen per section version;
//!  │ threads, vmas, page-index,│  class-width fields fixed 4 or 8 bytes LE, other
//!  │ files, fds, signals,      │  integers varints; page-index is fixed structs;
//!  │ epoll (1.1, if needed),   │  epoll only when some fd is an epoll fd
//!  │ chunk-digests ...         │
//!  ├───────────────────────────┤  ── 8-aligned ──
//!  │ section table             │  N × {kind u32, version u16, flags u16,
//!  │                           │       offset W, length W, sha256[32]}
//!  ├───────────────────────────┤
//!  │ trailer                   │  table offset W, table count W, image sha256[32],
//!  │                           │  end magic "PSNCEND\n"
//!  └───────────────────────────┘
//!  W = 4 bytes in the 32-bit layout class, 8 in the 64-bit one.
//! ```
//!
//! The writer goes front to back with no seek (pipes work); a reader starts at the trailer.
//! Section flags: CRITICAL (an unknown critical section makes a reader refuse), SAFE_TO_COPY
//! (an editor may carry an unknown section over), CHUNKED (the digest is the SHA-256 of the
//! list of 1 MiB chunk digests). The image digest in the trailer covers header, table and the
//! trailer's two words; the table holds every section's digest, so it covers everything.
//!
//! Layers: [`model`] (what a checkpoint is) — [`sections`] (frozen on-disk structs and the
//! conversions) — [`layout`] (fixed structs) — [`writer`] / [`reader`].
//!
//! | module       | owns                                                                         |
//! |--------------|------------------------------------------------------------------------------|
//! | [`model`]    | the in-memory checkpoint that capture fills and restore reads                |
//! | [`sections`] | `sections/`: `mod.rs` the kind table and the metadata encode/decode dispatch; |
//! |              | one file per section kind (`identity.rs` ... `epoll.rs`) with its frozen     |
//! |              | `*V1` structs and their model conversions; `shared.rs` (FORMAT.md §8.12);    |
//! |              | `codec.rs` (postcard and class-width helpers)                                |
//! | [`layout`]   | the fixed structs: header, section table entry, trailer, page-index entry    |
//! | [`class`]    | the 32- and 64-bit layout classes and their class-width word                 |
//! | [`writer`]   | the streaming writer (file or pipe)                                          |
//! | [`reader`]   | [`Image`]: open, check and decode an image; zero-copy access to its data     |
//! | `mmap`       | private, the crate's only `unsafe` (denied everywhere else): the reader's    |
//! |              | memory map and its contract, the file must not change under the map          |
//! | [`digest`]   | whole-section and chunked SHA-256 digests                                    |
//! | [`verify`]   | the model's invariants, checked before every restore                         |
//! | [`chain`]    | incremental images: finding, checking and flattening the parent chain        |
//! | [`atomic`]   | [`AtomicFile`]: an image appears under its name only when complete           |
//! | [`example`]  | the synthetic checkpoint behind spec/examples and the golden images          |
//! | [`error`]    | [`FormatError`], the one error type                                          |

#![deny(unsafe_code)]

pub mod atomic;
pub mod chain;
pub mod class;
pub mod digest;
pub mod error;
pub mod example;
pub mod layout;
// Mapping a file is unsafe in memmap2 (the map changes if the file does); this module is the one
// place that does it, behind the safe `MappedImage` whose doc states the contract.
#[allow(unsafe_code)]
mod mmap;
pub mod model;
pub mod reader;
pub mod sections;
pub mod verify;
pub mod writer;

pub use atomic::AtomicFile;
pub use class::LayoutClass;
pub use error::{FormatError, Result};
pub use layout::{FORMAT_MAJOR, FORMAT_MINOR};
pub use reader::Image;
pub use sections::SectionKind;
pub use writer::ImageWriter;
