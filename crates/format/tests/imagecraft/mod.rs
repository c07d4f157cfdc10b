//! Crafting unusual images for the corruption, versioning and fuzz tests.
//!
//! A test that wants a *valid* but unusual image (a newer minor version, a section table entry
//! pointing somewhere odd) edits the bytes and then reseals them: recomputes the whole-image digest
//! over header, table and trailer words (and, with [`reseal_all`], every section's digest), so
//! the reader gets past its digest checks to the check the test is about.
//!
//! Everything here is defensive: the fuzz target runs [`reseal_all`] on arbitrary bytes, so no
//! input may make it panic; it leaves bytes it cannot make sense of alone.

#![allow(dead_code)]

use psnc_format::class::{Class, LayoutClass, C32, C64};
use psnc_format::digest::{chunk_digests, digest_of_chunks, sha256};
use psnc_format::example::{example_runs, page_pattern};
use psnc_format::layout::{SectionEntry, Trailer, HEADER_SIZE, SECTION_CHUNKED};
use psnc_format::model::{Arch, Checkpoint};
use psnc_format::ImageWriter;

/// A section a reader may not know: kind, version, flags, body.
pub type Extra = (u32, u16, u16, Vec<u8>);

/// Writes `ck` with the example's page runs and a small stored executable, plus `extra`
/// sections after the known ones; returns the bytes and the model as written.
pub fn write_with(
    mut ck: Checkpoint,
    arch: Arch,
    class: LayoutClass,
    extra: Vec<Extra>,
) -> (Vec<u8>, Checkpoint) {
    let mut w = ImageWriter::new(Vec::new(), class).expect("writer");
    let p = &mut ck.processes[0];
    for (addr, pages) in example_runs(arch) {
        p.pages.push(
            w.write_pages(addr, &page_pattern(addr, pages))
                .expect("pages"),
        );
    }
    let id = w.store_file(&p.exe.path, b"\x7fELF example").expect("file");
    p.exe.stored = Some(id);
    for (kind, version, flags, body) in extra {
        w.copy_unknown_section(kind, version, flags, body);
    }
    w.finish_with_model(ck).expect("finish")
}

/// Where the fixed structures of an image are, read without checking any digest.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The layout class from the header.
    pub class: LayoutClass,
    /// log2 of the digest chunk size.
    pub chunk_shift: u8,
    /// Header size from the header.
    pub header_size: usize,
    /// Section table offset from the trailer.
    pub table_offset: usize,
    /// Size of one table entry.
    pub entry_size: usize,
    /// Offset of the trailer (image length minus trailer size).
    pub trailer_offset: usize,
    /// The decoded table.
    pub entries: Vec<SectionEntry>,
}

/// Reads header, trailer and table positions; `None` when they are not where they must be.
/// Only the class, header size and chunk shift of the header are read (not its magic, version
/// or byte order), so an image whose version a test changed can still be resealed.
pub fn layout(img: &[u8]) -> Option<Layout> {
    let header = img.get(..HEADER_SIZE)?;
    let header_size = usize::from(u16::from_le_bytes([header[14], header[15]]));
    let chunk_shift = header[20];
    match LayoutClass::from_byte(header[12]).ok()? {
        LayoutClass::Bits32 => layout_class::<C32>(img, header_size, chunk_shift),
        LayoutClass::Bits64 => layout_class::<C64>(img, header_size, chunk_shift),
    }
}

fn layout_class<C: Class>(img: &[u8], header_size: usize, chunk_shift: u8) -> Option<Layout> {
    let tsize = Trailer::size(C::LAYOUT);
    let trailer_offset = img.len().checked_sub(tsize)?;
    if trailer_offset < header_size {
        return None;
    }
    let trailer = Trailer::decode::<C>(&img[trailer_offset..]).ok()?;
    let entry_size = SectionEntry::size(C::LAYOUT);
    let table_offset = usize::try_from(trailer.table_offset).ok()?;
    let count = usize::try_from(trailer.table_count).ok()?;
    let table_end = count.checked_mul(entry_size)?.checked_add(table_offset)?;
    if table_offset < header_size || table_end != trailer_offset {
        return None;
    }
    let entries = img[table_offset..table_end]
        .chunks_exact(entry_size)
        .map(SectionEntry::decode::<C>)
        .collect();
    Some(Layout {
        class: C::LAYOUT,
        chunk_shift,
        header_size,
        table_offset,
        entry_size,
        trailer_offset,
        entries,
    })
}

/// Overwrites table entry `index` with `e` (no reseal). Panics on a value the class cannot hold:
/// only tests call it, with values they chose.
pub fn put_entry(img: &mut [u8], l: &Layout, index: usize, e: &SectionEntry) {
    let mut b = Vec::new();
    match l.class {
        LayoutClass::Bits32 => e.encode::<C32>(index, &mut b),
        LayoutClass::Bits64 => e.encode::<C64>(index, &mut b),
    }
    .expect("entry fits the class");
    let at = l.table_offset + index * l.entry_size;
    img[at..at + l.entry_size].copy_from_slice(&b);
}

/// Recomputes the image digest in the trailer (header, table, trailer words). Returns false and
/// leaves the bytes alone when the layout cannot be found.
pub fn reseal(img: &mut [u8]) -> bool {
    let Some(l) = layout(img) else { return false };
    let words = 2 * l.class.word_size();
    let mut h = Vec::with_capacity(l.header_size + (l.trailer_offset - l.table_offset) + words);
    h.extend_from_slice(&img[..l.header_size]);
    h.extend_from_slice(&img[l.table_offset..l.trailer_offset]);
    h.extend_from_slice(&img[l.trailer_offset..l.trailer_offset + words]);
    let d = sha256(&h);
    img[l.trailer_offset + words..l.trailer_offset + words + 32].copy_from_slice(&d);
    true
}

/// Recomputes every section's digest whose extent lies inside the image (plain SHA-256, or the
/// chunked digest for `CHUNKED` sections), then the image digest. Sections whose extent is
/// outside the image keep their digest, so the reader still reports the bad extent.
pub fn reseal_all(img: &mut [u8]) -> bool {
    let Some(l) = layout(img) else { return false };
    if !(12..=30).contains(&l.chunk_shift) {
        return false;
    }
    let chunk = 1usize << l.chunk_shift;
    for (i, e) in l.entries.iter().enumerate() {
        let (Ok(start), Ok(len)) = (usize::try_from(e.offset), usize::try_from(e.length)) else {
            continue;
        };
        let Some(body) = start.checked_add(len).and_then(|end| img.get(start..end)) else {
            continue;
        };
        let sha256 = if e.flags & SECTION_CHUNKED != 0 {
            digest_of_chunks(&chunk_digests(body, chunk))
        } else {
            sha256(body)
        };
        let mut fixed = *e;
        fixed.sha256 = sha256;
        // Entries decoded from the image always fit its class again.
        let mut b = Vec::new();
        let ok = match l.class {
            LayoutClass::Bits32 => fixed.encode::<C32>(i, &mut b),
            LayoutClass::Bits64 => fixed.encode::<C64>(i, &mut b),
        };
        if ok.is_ok() {
            let at = l.table_offset + i * l.entry_size;
            img[at..at + l.entry_size].copy_from_slice(&b);
        }
    }
    reseal(img)
}

/// Flips bit `bit` of byte `at`.
pub fn flip(img: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut v = img.to_vec();
    v[at] ^= 1 << bit;
    v
}
