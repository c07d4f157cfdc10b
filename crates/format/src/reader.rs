//! The image reader.
//!
//! Opening an image checks, in this order and before decoding anything: the header (magic, major
//! version, class, byte order), the trailer (end magic, table location), every table entry's
//! extent, the whole-image digest over header and table, unknown sections (critical: refuse;
//! ancillary: skip), and the digest of every metadata section. Only then are the metadata sections
//! decoded. The bulk (page and file data) is hashed by [`Image::verify_data`], which restore runs
//! before creating anything.
//!
//! Files are memory-mapped (memmap2, through `crate::mmap`, the crate's only unsafe code). The
//! contract of a mapped file: it must not be modified while the `Image` lives (a truncation would
//! fault). Images come from this tool and are written atomically, so this holds in practice; stdin
//! is spooled to a private memfd first.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use crate::class::{Class, LayoutClass, C32, C64};
use crate::digest::{chunk_digests_on, digest_of_chunks, sha256};
use crate::error::{FormatError, Result};
use crate::layout::{Header, SectionEntry, Trailer, SECTION_CHUNKED};
use crate::mmap::MappedImage;
use crate::model::{Checkpoint, FileId, PageRun};
use crate::sections::{
    decode_metadata, kind_name, postcard_dec, ChunkDigestsV1, MetadataBodies, SectionKind,
};

enum Backing {
    Mapped(MappedImage),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// An opened, structurally verified image.
pub struct Image {
    data: Backing,
    header: Header,
    trailer: Trailer,
    entries: Vec<SectionEntry>,
    pub(crate) checkpoint: Checkpoint,
    page_data: Range<usize>,
    file_data: Range<usize>,
    /// The flattened parent chain of an incremental image ([`Image::with_parents`]): page runs
    /// and stored files at offsets from `parent_bases` on are the parent's.
    pub(crate) parent: Option<Box<Image>>,
    /// Where the parent's page data and file data start in this image's offset space.
    pub(crate) parent_bases: (u64, u64),
    /// The images behind this one, nearest first ([`Image::chain`]).
    pub(crate) chain: Vec<crate::chain::ChainLink>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("header", &self.header)
            .field("sections", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Opens and checks an image file (memory-mapped). The file must not be modified or truncated
    /// while the `Image` lives (see the module doc).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let file = File::open(path.as_ref()).map_err(FormatError::io("opening the image"))?;
        let len = file
            .metadata()
            .map_err(FormatError::io("reading the image size"))?
            .len();
        if len == 0 {
            return Self::from_vec(Vec::new());
        }
        match MappedImage::map_file(&file) {
            Ok(m) => Self::parse(Backing::Mapped(m)),
            // Not mappable (e.g. a special file): read it instead.
            Err(_) => {
                let mut v = Vec::new();
                File::open(path.as_ref())
                    .and_then(|mut f| f.read_to_end(&mut v))
                    .map_err(FormatError::io("reading the image"))?;
                Self::from_vec(v)
            }
        }
    }

    /// Reads an image from a stream (stdin, a pipe, a socket): spools it into an anonymous
    /// memory file, then checks it like [`Image::open`].
    pub fn from_reader(r: impl Read) -> Result<Self> {
        match MappedImage::spool(r)? {
            Some(map) => Self::parse(Backing::Mapped(map)),
            None => Self::from_vec(Vec::new()),
        }
    }

    /// Checks an image held in memory.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Backing::Owned(bytes))
    }

    fn parse(data: Backing) -> Result<Self> {
        let bytes = data.bytes();
        let header = Header::decode(bytes)?;
        let (trailer, entries, checkpoint) = match header.class {
            LayoutClass::Bits32 => parse_class::<C32>(bytes, &header)?,
            LayoutClass::Bits64 => parse_class::<C64>(bytes, &header)?,
        };
        let range = |k: SectionKind| -> Range<usize> {
            entries
                .iter()
                .find(|e| e.kind == k.number())
                .map_or(0..0, |e| e.offset as usize..(e.offset + e.length) as usize)
        };
        let page_data = range(SectionKind::PageData);
        let file_data = range(SectionKind::FileData);
        Ok(Image {
            header,
            trailer,
            entries,
            checkpoint,
            page_data,
            file_data,
            data,
            parent: None,
            parent_bases: (0, 0),
            chain: Vec::new(),
        })
    }

    /// The layout class.
    pub fn class(&self) -> LayoutClass {
        self.header.class
    }

    /// `(major, minor)` format version.
    pub fn version(&self) -> (u16, u16) {
        (self.header.major, self.header.minor)
    }

    /// The header as read.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The trailer as read.
    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    /// The section table, in file order of the table.
    pub fn sections(&self) -> &[SectionEntry] {
        &self.entries
    }

    /// The bytes of section `index` of the table.
    pub fn section_bytes(&self, index: usize) -> Option<&[u8]> {
        let e = self.entries.get(index)?;
        self.data
            .bytes()
            .get(e.offset as usize..(e.offset + e.length) as usize)
    }

    /// The whole image.
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    /// The decoded model.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The page-data section.
    pub fn page_data(&self) -> &[u8] {
        &self.data.bytes()[self.page_data.clone()]
    }

    /// The file-data section.
    pub fn file_data(&self) -> &[u8] {
        &self.data.bytes()[self.file_data.clone()]
    }

    /// The bytes of a page run (zero copy). In the flattened view of an incremental image
    /// ([`Image::with_parents`]), from whichever image of the chain holds them.
    pub fn page_bytes(&self, run: &PageRun) -> Result<&[u8]> {
        if let Some(p) = self.parent.as_deref() {
            if run.data_offset >= self.parent_bases.0 {
                return p.page_bytes(&PageRun {
                    data_offset: run.data_offset - self.parent_bases.0,
                    ..*run
                });
            }
        }
        let data = self.page_data();
        let len = run.pages.checked_mul(4096);
        let end = len.and_then(|l| run.data_offset.checked_add(l));
        match end {
            Some(end) if end <= data.len() as u64 => {
                Ok(&data[run.data_offset as usize..end as usize])
            }
            _ => Err(FormatError::DataOutOfRange {
                what: format!("page run {:#x} ({} pages)", run.addr, run.pages),
                offset: run.data_offset,
                end: end.unwrap_or(u64::MAX),
                len: data.len() as u64,
            }),
        }
    }

    /// The stored contents of a file (zero copy).
    pub fn file_bytes(&self, id: FileId) -> Result<&[u8]> {
        let f = self.checkpoint.files.get(id.0 as usize).ok_or_else(|| {
            FormatError::Invalid(format!("file id {} is not in the stored-file table", id.0))
        })?;
        self.stored_bytes(f, id)
    }

    /// The bytes of stored file `f` (entry `id`), from this image or its flattened parent.
    fn stored_bytes<'a>(&'a self, f: &crate::model::StoredFile, id: FileId) -> Result<&'a [u8]> {
        if let Some(p) = self.parent.as_deref() {
            if f.data_offset >= self.parent_bases.1 {
                let shifted = crate::model::StoredFile {
                    data_offset: f.data_offset - self.parent_bases.1,
                    ..f.clone()
                };
                return p.stored_bytes(&shifted, id);
            }
        }
        let data = self.file_data();
        let end = f.data_offset.checked_add(f.size);
        match end {
            Some(end) if end <= data.len() as u64 => {
                Ok(&data[f.data_offset as usize..end as usize])
            }
            _ => Err(FormatError::DataOutOfRange {
                what: format!("stored file {} ({})", id.0, f.path),
                offset: f.data_offset,
                end: end.unwrap_or(u64::MAX),
                len: data.len() as u64,
            }),
        }
    }

    /// The chunk digest list stored for a chunked section, if the image has one.
    pub fn chunk_digests(&self, kind: SectionKind) -> Option<ChunkDigestsV1> {
        let k = SectionKind::ChunkDigests;
        self.entries.iter().enumerate().find_map(|(i, e)| {
            // A newer version of this ancillary section was skipped at open: its layout is not
            // ChunkDigestsV1, and decoding it as one could succeed with wrong digests.
            if e.kind != k.number() || e.version > k.current_version() {
                return None;
            }
            let list: ChunkDigestsV1 =
                postcard_dec(SectionKind::ChunkDigests, e.offset, self.section_bytes(i)?).ok()?;
            (list.section_kind == kind.number()).then_some(list)
        })
    }

    /// Checks the placement rules no digest covers: raw data sections start 4096-aligned, every
    /// other section 8-aligned, and every byte between header, sections and table is zero.
    pub fn verify_layout(&self) -> Result<()> {
        let bytes = self.data.bytes();
        let mut sorted: Vec<(usize, &SectionEntry)> = self.entries.iter().enumerate().collect();
        sorted.sort_by_key(|(_, e)| e.offset);
        let mut pos = u64::from(self.header.header_size);
        for (index, e) in sorted {
            let raw = SectionKind::from_number(e.kind)
                .is_some_and(|k| k.is_raw() && k != SectionKind::PageIndex);
            let align = if raw {
                crate::layout::PAGE_ALIGN
            } else {
                crate::layout::SECTION_ALIGN
            };
            if e.offset % align != 0 {
                return Err(FormatError::BadSectionExtent {
                    index,
                    kind: kind_name(e.kind),
                    offset: e.offset,
                    length: e.length,
                    why: if raw {
                        "raw data section is not 4096-aligned"
                    } else {
                        "section is not 8-aligned"
                    },
                });
            }
            check_zero(bytes, pos, e.offset)?;
            pos = e.offset + e.length;
        }
        check_zero(bytes, pos, self.trailer.table_offset)
    }

    /// Hashes the bulk data (every chunk of the page- and file-data sections) and compares with
    /// the section table; names the first corrupt chunk when the image carries chunk digests.
    pub fn verify_data(&self) -> Result<()> {
        self.verify_data_except(None)
    }

    /// [`Image::verify_data`] for every section but those of kind `skip`, which the caller
    /// checks apart with [`Image::verify_section_data`] (restore hashes the page data while it
    /// rebuilds the process, and lets nothing run before the check is done).
    pub fn verify_data_except(&self, skip: Option<SectionKind>) -> Result<()> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..self.entries.len() {
            if skip.is_some() && SectionKind::from_number(self.entries[i].kind) == skip {
                continue;
            }
            self.verify_entry(i, threads)?;
        }
        Ok(())
    }

    /// [`Image::verify_data`] for the sections of kind `kind` only, hashing on up to `threads`
    /// threads (the caller's included): restore runs it on one thread beside its own work.
    pub fn verify_section_data(&self, kind: SectionKind, threads: usize) -> Result<()> {
        for i in 0..self.entries.len() {
            if SectionKind::from_number(self.entries[i].kind) == Some(kind) {
                self.verify_entry(i, threads)?;
            }
        }
        Ok(())
    }

    /// A checker of the page data's chunks one by one, for a reader that uses the page data
    /// piecemeal (`psnc-restore --lazy` checks each chunk when a page of it is first needed).
    /// The stored chunk digests are checked against the section table (which the image digest
    /// covers) here; an image without them cannot be checked piecemeal.
    pub fn page_chunks(&self) -> Result<ChunkCheck<'_>> {
        let kind = SectionKind::PageData;
        let Some(e) = self.entries.iter().find(|e| e.kind == kind.number()) else {
            return Err(FormatError::SectionCount {
                kind: kind.name(),
                count: 0,
            });
        };
        let list = self.chunk_digests(kind).ok_or_else(|| {
            FormatError::Invalid("the image has no chunk digests of its page data".into())
        })?;
        let chunk = 1u64 << self.header.chunk_shift;
        if digest_of_chunks(&list.digests) != e.sha256
            || u64::from(list.chunk_size) != chunk
            || list.digests.len() as u64 != e.length.div_ceil(chunk)
        {
            return Err(FormatError::DigestMismatch {
                what: "chunk-digests of section page-data".into(),
                offset: e.offset,
                end: e.offset + e.length,
            });
        }
        Ok(ChunkCheck {
            data: self.page_data(),
            offset: e.offset,
            chunk,
            done: vec![false; list.digests.len()],
            expected: list.digests,
        })
    }

    /// The digest check of section table entry `i`, on up to `threads` threads.
    fn verify_entry(&self, i: usize, threads: usize) -> Result<()> {
        let e = &self.entries[i];
        let chunk = 1usize << self.header.chunk_shift;
        if e.flags & SECTION_CHUNKED == 0 {
            // Known sections were checked at open; an unknown one is checked here, like PNG.
            let body = self.section_bytes(i).unwrap_or_default();
            if sha256(body) != e.sha256 {
                return Err(FormatError::DigestMismatch {
                    what: format!("section {}", kind_name(e.kind)),
                    offset: e.offset,
                    end: e.offset + e.length,
                });
            }
            return Ok(());
        }
        let body = self.section_bytes(i).unwrap_or_default();
        let digests = chunk_digests_on(body, chunk, threads);
        if digest_of_chunks(&digests) == e.sha256 {
            return Ok(());
        }
        let name = kind_name(e.kind);
        if let Some(stored) = SectionKind::from_number(e.kind).and_then(|k| self.chunk_digests(k)) {
            if let Some(bad) = digests
                .iter()
                .zip(&stored.digests)
                .position(|(a, b)| a != b)
            {
                let start = e.offset + (bad * chunk) as u64;
                return Err(FormatError::DigestMismatch {
                    what: format!("section {name}, chunk {bad}"),
                    offset: start,
                    end: (start + chunk as u64).min(e.offset + e.length),
                });
            }
        }
        Err(FormatError::DigestMismatch {
            what: format!("section {name}"),
            offset: e.offset,
            end: e.offset + e.length,
        })
    }
}

fn check_zero(bytes: &[u8], from: u64, to: u64) -> Result<()> {
    let gap = bytes.get(from as usize..to as usize).unwrap_or_default();
    match gap.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(FormatError::Invalid(format!(
            "padding byte at offset {} is not zero",
            from + i as u64
        ))),
    }
}

fn truncated(what: impl Into<String>, offset: u64, end: u64, have: usize) -> FormatError {
    FormatError::Truncated {
        what: what.into(),
        offset,
        end,
        have: have as u64,
    }
}

fn parse_class<C: Class>(
    bytes: &[u8],
    header: &Header,
) -> Result<(Trailer, Vec<SectionEntry>, Checkpoint)> {
    let len = bytes.len();
    let hsize = u64::from(header.header_size);
    let tsize = Trailer::size(C::LAYOUT);
    let min = hsize as usize + tsize;
    if len < min {
        return Err(truncated("header and trailer", 0, min as u64, len));
    }
    let trailer = Trailer::decode::<C>(&bytes[len - tsize..])?;
    let esize = SectionEntry::size(C::LAYOUT) as u64;
    let table_end = trailer
        .table_count
        .checked_mul(esize)
        .and_then(|l| trailer.table_offset.checked_add(l))
        .ok_or_else(|| FormatError::BadHeader("section table size overflows".into()))?;
    let data_end = (len - tsize) as u64;
    if trailer.table_offset < hsize || table_end != data_end {
        return Err(truncated(
            format!("section table ({} entries)", trailer.table_count),
            trailer.table_offset,
            table_end,
            len,
        ));
    }
    if header.table_offset != 0 && header.table_offset != trailer.table_offset {
        return Err(FormatError::BadHeader(format!(
            "header table offset {} disagrees with the trailer's {}",
            header.table_offset, trailer.table_offset
        )));
    }
    let table = &bytes[trailer.table_offset as usize..table_end as usize];
    // The image digest covers header, table and the trailer's two words.
    let mut h = sha2::Sha256::default();
    sha2::Digest::update(&mut h, &bytes[..hsize as usize]);
    sha2::Digest::update(&mut h, table);
    sha2::Digest::update(
        &mut h,
        &bytes[len - tsize..len - tsize + 2 * C::LAYOUT.word_size()],
    );
    let digest: [u8; 32] = sha2::Digest::finalize(h).into();
    if digest != trailer.image_sha256 {
        return Err(FormatError::DigestMismatch {
            what: "header and section table (image digest)".into(),
            offset: 0,
            end: len as u64,
        });
    }

    let mut entries = Vec::with_capacity(table.len() / esize as usize);
    for (index, raw) in table.chunks_exact(esize as usize).enumerate() {
        let e = SectionEntry::decode::<C>(raw);
        let bad = |why| FormatError::BadSectionExtent {
            index,
            kind: kind_name(e.kind),
            offset: e.offset,
            length: e.length,
            why,
        };
        let end = e
            .offset
            .checked_add(e.length)
            .ok_or_else(|| bad("offset + length overflows"))?;
        if e.offset < hsize || end > trailer.table_offset {
            return Err(bad(
                "outside the data area between header and section table",
            ));
        }
        entries.push(e);
    }
    let mut sorted: Vec<&SectionEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.offset);
    for w in sorted.windows(2) {
        if w[0].offset + w[0].length > w[1].offset {
            let index = entries.iter().position(|e| e == w[1]).unwrap_or(0);
            return Err(FormatError::BadSectionExtent {
                index,
                kind: kind_name(w[1].kind),
                offset: w[1].offset,
                length: w[1].length,
                why: "overlaps the previous section",
            });
        }
    }

    let mut bodies = Vec::new();
    for (index, e) in entries.iter().enumerate() {
        let Some(kind) = SectionKind::from_number(e.kind) else {
            if e.is_critical() {
                return Err(FormatError::UnknownCriticalSection {
                    kind: e.kind,
                    index,
                });
            }
            continue;
        };
        // Version 0 is never written; a known kind must carry exactly the flags this version of
        // the format gives it, so a CHUNKED bit cannot smuggle an unverified metadata section in.
        if e.version == 0 || e.version > kind.current_version() {
            if e.is_critical() {
                return Err(FormatError::UnsupportedSectionVersion {
                    kind: kind.name(),
                    found: e.version,
                    supported: kind.current_version(),
                });
            }
            continue;
        }
        if e.flags != kind.flags() {
            return Err(FormatError::BadSectionExtent {
                index,
                kind: kind.name().into(),
                offset: e.offset,
                length: e.length,
                why: "section flags differ from the ones this kind must carry",
            });
        }
        let body = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        if e.flags & SECTION_CHUNKED == 0 && sha256(body) != e.sha256 {
            return Err(FormatError::DigestMismatch {
                what: format!("section {kind}"),
                offset: e.offset,
                end: e.offset + e.length,
            });
        }
        if !kind.is_raw() || kind == SectionKind::PageIndex {
            bodies.push((kind, e.offset, body));
        }
    }
    for kind in SectionKind::ALL.into_iter().filter(|k| k.required()) {
        let count = entries.iter().filter(|e| e.kind == kind.number()).count();
        if count != 1 {
            return Err(FormatError::SectionCount {
                kind: kind.name(),
                count,
            });
        }
    }
    let checkpoint = decode_metadata::<C>(&MetadataBodies { bodies })?;
    Ok((trailer, entries, checkpoint))
}

/// The page data's chunks, each checked against its stored digest when first asked for
/// ([`Image::page_chunks`]).
#[derive(Debug, Clone)]
pub struct ChunkCheck<'a> {
    data: &'a [u8],
    /// The section's offset in the image, for errors.
    offset: u64,
    chunk: u64,
    expected: Vec<[u8; 32]>,
    done: Vec<bool>,
}

impl ChunkCheck<'_> {
    /// Checks every chunk that bytes `[off, off + len)` of the page data touch (each chunk
    /// once); a mismatch names the chunk. Offsets past this image's page data (in the
    /// flattened view of an incremental image, a parent's, verified in full when the chain was
    /// read) are not this checker's and pass.
    pub fn check(&mut self, off: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let first = off / self.chunk;
        let last = (off + len - 1) / self.chunk;
        for i in first..=last {
            let i = i as usize;
            if self.done.get(i).copied().unwrap_or(true) {
                continue;
            }
            let start = i as u64 * self.chunk;
            let end = (start + self.chunk).min(self.data.len() as u64);
            if sha256(&self.data[start as usize..end as usize]) != self.expected[i] {
                return Err(FormatError::DigestMismatch {
                    what: format!("section page-data, chunk {i}"),
                    offset: self.offset + start,
                    end: self.offset + end,
                });
            }
            self.done[i] = true;
        }
        Ok(())
    }

    /// Whether every chunk has been checked.
    pub fn all_done(&self) -> bool {
        self.done.iter().all(|&d| d)
    }
}
