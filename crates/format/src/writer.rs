//! The streaming image writer.
//!
//! Writes front to back without seeking, so the output may be a pipe or a socket: header (table
//! offset 0, `STREAMED` flag), the raw data sections as the caller produces them, then the
//! metadata sections, the section table and the trailer. When the output can seek (a file),
//! [`ImageWriter::finish_seekable`] also writes the table offset into the header.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::class::{Class, LayoutClass, C32, C64};
use crate::digest::{digest_of_chunks, sha256, ChunkHasher};
use crate::error::{FormatError, Result};
use crate::layout::{
    Header, SectionEntry, Trailer, HEADER_FLAG_STREAMED, HEADER_SIZE, PAGE_ALIGN, SECTION_ALIGN,
};
use crate::model::{Checkpoint, FileId, PageRun, StoredFile};
use crate::sections::{encode_metadata, ChunkDigestsV1, SectionKind};

const PAGE: u64 = 4096;
const ZEROS: [u8; 4096] = [0; 4096];

/// Counts bytes so the writer knows every offset without seeking.
struct Counting<W> {
    inner: W,
    pos: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.inner
            .write_all(b)
            .map_err(FormatError::io("writing the image"))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, align: u64) -> Result<()> {
        let pad = self.pos.next_multiple_of(align) - self.pos;
        // pad < 4096 for every alignment this format uses.
        self.put(&ZEROS[..pad as usize])
    }
}

/// A raw data section being written.
struct OpenRaw {
    kind: SectionKind,
    start: u64,
    len: u64,
    hasher: ChunkHasher,
}

/// Writes one image. See the module doc and [`crate::ImageWriter::new`].
pub struct ImageWriter<W: Write> {
    out: Counting<W>,
    class: LayoutClass,
    header: Header,
    chunk_size: usize,
    entries: Vec<SectionEntry>,
    chunk_lists: Vec<ChunkDigestsV1>,
    open: Option<OpenRaw>,
    files: Vec<StoredFile>,
    by_sha: HashMap<[u8; 32], FileId>,
    /// Entries of `files` whose contents are the parent's ([`ImageWriter::file_in_parent`]).
    parent_files: Vec<FileId>,
    extra: Vec<(u32, u16, u16, Vec<u8>)>,
}

impl<W: Write> ImageWriter<W> {
    /// Starts an image of the given layout class: writes the header at once.
    pub fn new(out: W, class: LayoutClass) -> Result<Self> {
        let header = Header::new(class, true);
        let mut out = Counting { inner: out, pos: 0 };
        out.put(&header.encode()?)?;
        Ok(ImageWriter {
            out,
            class,
            chunk_size: 1usize << header.chunk_shift,
            header,
            entries: Vec::new(),
            chunk_lists: Vec::new(),
            open: None,
            files: Vec::new(),
            by_sha: HashMap::new(),
            parent_files: Vec::new(),
            extra: Vec::new(),
        })
    }

    /// The layout class being written.
    pub fn class(&self) -> LayoutClass {
        self.class
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.out.pos
    }

    fn done(&self, kind: SectionKind) -> bool {
        self.entries.iter().any(|e| e.kind == kind.number())
    }

    /// Makes `kind` the open raw section, closing another one. A raw kind can be open only once.
    fn open_raw(&mut self, kind: SectionKind) -> Result<&mut OpenRaw> {
        if self.open.as_ref().map(|o| o.kind) != Some(kind) {
            if self.done(kind) {
                return Err(FormatError::WriterState(match kind {
                    SectionKind::PageData => {
                        "page runs must all be written before the first file or after the last one"
                    }
                    _ => "files must all be stored before the first page run or after the last one",
                }));
            }
            self.close_raw()?;
            self.out.pad_to(PAGE_ALIGN)?;
            self.open = Some(OpenRaw {
                kind,
                start: self.out.pos,
                len: 0,
                hasher: ChunkHasher::new(self.chunk_size),
            });
        }
        self.open
            .as_mut()
            .ok_or(FormatError::WriterState("no open section"))
    }

    fn raw_put(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Err(FormatError::WriterState("no open section"));
        };
        open.hasher.update(bytes);
        open.len += bytes.len() as u64;
        self.out.put(bytes)
    }

    fn close_raw(&mut self) -> Result<()> {
        if let Some(open) = self.open.take() {
            let digests = open.hasher.finish();
            self.entries.push(SectionEntry {
                kind: open.kind.number(),
                version: open.kind.current_version(),
                flags: open.kind.flags(),
                offset: open.start,
                length: open.len,
                sha256: digest_of_chunks(&digests),
            });
            self.chunk_lists.push(ChunkDigestsV1 {
                section_kind: open.kind.number(),
                chunk_size: self.chunk_size as u32,
                digests,
            });
        }
        Ok(())
    }

    /// Appends a run of page contents at `addr`; `bytes.len()` must be a non-zero multiple of 4096.
    /// Returns the [`PageRun`] to put into `Process::pages`.
    pub fn write_pages(&mut self, addr: u64, bytes: &[u8]) -> Result<PageRun> {
        if bytes.is_empty() || bytes.len() as u64 % PAGE != 0 || addr % PAGE != 0 {
            return Err(FormatError::Invalid(format!(
                "page run at {addr:#x} of {} bytes is not page-aligned",
                bytes.len()
            )));
        }
        let offset = self.open_raw(SectionKind::PageData)?.len;
        self.raw_put(bytes)?;
        Ok(PageRun {
            addr,
            pages: bytes.len() as u64 / PAGE,
            data_offset: offset,
        })
    }

    /// A buffer of `len` bytes to fill with page contents for [`ImageWriter::write_page_buffer`]:
    /// recycled from the hashing thread when one is free (stale contents), else new.
    pub fn page_buffer(&mut self, len: usize) -> Result<Vec<u8>> {
        Ok(self.open_raw(SectionKind::PageData)?.hasher.buffer(len))
    }

    /// Appends page runs whose contents lie back to back in `buf` (`runs`: address and page
    /// count each), without copying it: one write, then the buffer's chunks are hashed where
    /// they are. Returns one [`PageRun`] per run. Buffers of a multiple of the chunk size
    /// (1 MiB) keep every chunk inside one buffer; others cost a copy of their partial chunks.
    pub fn write_page_buffer(&mut self, runs: &[(u64, u64)], buf: Vec<u8>) -> Result<Vec<PageRun>> {
        let total: u64 = runs.iter().map(|r| r.1).sum();
        if total * PAGE != buf.len() as u64 {
            return Err(FormatError::Invalid(format!(
                "{} page runs of {total} pages in a buffer of {} bytes",
                runs.len(),
                buf.len()
            )));
        }
        if let Some((addr, pages)) = runs.iter().find(|(a, p)| *p == 0 || a % PAGE != 0) {
            return Err(FormatError::Invalid(format!(
                "page run at {addr:#x} of {pages} pages is empty or not page-aligned"
            )));
        }
        let mut offset = self.open_raw(SectionKind::PageData)?.len;
        let out = runs
            .iter()
            .map(|&(addr, pages)| {
                let run = PageRun {
                    addr,
                    pages,
                    data_offset: offset,
                };
                offset += pages * PAGE;
                run
            })
            .collect();
        self.out.put(&buf)?;
        let open = self
            .open
            .as_mut()
            .ok_or(FormatError::WriterState("no open section"))?;
        open.len += buf.len() as u64;
        open.hasher.update_owned(buf);
        Ok(out)
    }

    /// Stores a file's contents, once per distinct content; returns its id.
    pub fn store_file(&mut self, path: &str, contents: &[u8]) -> Result<FileId> {
        let sha = sha256(contents);
        if let Some(id) = self.by_sha.get(&sha) {
            return Ok(*id);
        }
        let data_offset = self.begin_file()?;
        self.raw_put(contents)?;
        Ok(self.add_file(sha, contents.len() as u64, path, data_offset))
    }

    /// Stores a file's contents read from `src` (streamed, not held in memory). Deduplication
    /// happens after the fact: a duplicate still costs its bytes in the image, so prefer
    /// [`ImageWriter::store_file`] when the contents are at hand.
    pub fn store_file_from(&mut self, path: &str, src: &mut impl Read) -> Result<FileId> {
        let data_offset = self.begin_file()?;
        let mut h = sha2::Sha256::default();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(FormatError::Io {
                        action: "reading a file to store",
                        source: e,
                    })
                }
            };
            sha2::Digest::update(&mut h, &buf[..n]);
            self.raw_put(&buf[..n])?;
            size += n as u64;
        }
        let sha: [u8; 32] = sha2::Digest::finalize(h).into();
        if let Some(id) = self.by_sha.get(&sha) {
            return Ok(*id);
        }
        Ok(self.add_file(sha, size, path, data_offset))
    }

    /// Records a file of an incremental image whose contents (`sha`, `size` bytes) the parent
    /// chain stores already: a stored-file entry without data here, listed in the parent record
    /// (`Checkpoint::parent` must be set when the image is finished). Deduplicated like
    /// [`ImageWriter::store_file`].
    pub fn file_in_parent(&mut self, path: &str, sha: [u8; 32], size: u64) -> FileId {
        if let Some(id) = self.by_sha.get(&sha) {
            return *id;
        }
        let id = self.add_file(sha, size, path, 0);
        self.parent_files.push(id);
        id
    }

    fn begin_file(&mut self) -> Result<u64> {
        let open = self.open_raw(SectionKind::FileData)?;
        let pad = open.len.next_multiple_of(PAGE_ALIGN) - open.len;
        self.raw_put(&ZEROS[..pad as usize])?;
        Ok(self.open.as_ref().map_or(0, |o| o.len))
    }

    fn add_file(&mut self, sha: [u8; 32], size: u64, path: &str, data_offset: u64) -> FileId {
        let id = FileId(self.files.len() as u32);
        self.files.push(StoredFile {
            sha256: sha,
            size,
            path: path.to_string(),
            data_offset,
        });
        self.by_sha.insert(sha, id);
        id
    }

    /// Carries a section this crate does not know into the image unchanged (used by `convert`
    /// for unknown ancillary sections marked safe to copy).
    pub fn copy_unknown_section(&mut self, kind: u32, version: u16, flags: u16, body: Vec<u8>) {
        self.extra.push((kind, version, flags, body));
    }

    fn put_section(&mut self, kind: u32, version: u16, flags: u16, body: &[u8]) -> Result<()> {
        self.out.pad_to(SECTION_ALIGN)?;
        let offset = self.out.pos;
        self.out.put(body)?;
        self.entries.push(SectionEntry {
            kind,
            version,
            flags,
            offset,
            length: body.len() as u64,
            sha256: sha256(body),
        });
        Ok(())
    }

    /// Writes the metadata, the table and the trailer. `ck.files` is replaced by the table of
    /// files stored through this writer (so `FileRef::stored` ids stay valid).
    /// Returns the output and the finished model.
    fn finish_inner(
        mut self,
        mut ck: Checkpoint,
        final_header: Option<&mut Header>,
    ) -> Result<(W, Checkpoint)> {
        self.close_raw()?;
        for kind in [SectionKind::PageData, SectionKind::FileData] {
            if !self.done(kind) {
                self.open_raw(kind)?;
                self.close_raw()?;
            }
        }
        ck.files = std::mem::take(&mut self.files);
        match ck.parent.as_mut() {
            Some(p) => p.files = std::mem::take(&mut self.parent_files),
            None if !self.parent_files.is_empty() => {
                return Err(FormatError::WriterState(
                    "files were recorded as the parent's in an image without a parent",
                ))
            }
            None => {}
        }
        let meta = match self.class {
            LayoutClass::Bits32 => encode_metadata::<C32>(&ck)?,
            LayoutClass::Bits64 => encode_metadata::<C64>(&ck)?,
        };
        for (kind, body) in &meta.sections {
            self.put_section(kind.number(), kind.current_version(), kind.flags(), body)?;
        }
        for list in std::mem::take(&mut self.chunk_lists) {
            let body = postcard::to_stdvec(&list)
                .map_err(|e| FormatError::Invalid(format!("cannot encode chunk digests: {e}")))?;
            let k = SectionKind::ChunkDigests;
            self.put_section(k.number(), k.current_version(), k.flags(), &body)?;
        }
        for (kind, version, flags, body) in std::mem::take(&mut self.extra) {
            self.put_section(kind, version, flags, &body)?;
        }
        self.out.pad_to(SECTION_ALIGN)?;
        let table_offset = self.out.pos;
        let mut header = self.header;
        if let Some(h) = final_header {
            header.table_offset = table_offset;
            header.flags &= !HEADER_FLAG_STREAMED;
            *h = header;
        }
        let (table, words) = match self.class {
            LayoutClass::Bits32 => self.table::<C32>(table_offset)?,
            LayoutClass::Bits64 => self.table::<C64>(table_offset)?,
        };
        let mut h = sha2::Sha256::default();
        sha2::Digest::update(&mut h, header.encode()?);
        sha2::Digest::update(&mut h, &table);
        sha2::Digest::update(&mut h, &words);
        let digest: [u8; 32] = sha2::Digest::finalize(h).into();
        self.out.put(&table)?;
        self.out.put(&words)?;
        self.out.put(&digest)?;
        self.out.put(&crate::layout::END_MAGIC)?;
        let mut inner = self.out.inner;
        inner
            .flush()
            .map_err(FormatError::io("flushing the image"))?;
        Ok((inner, ck))
    }

    fn table<C: Class>(&self, table_offset: u64) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut table = Vec::with_capacity(self.entries.len() * SectionEntry::size(self.class));
        for (i, e) in self.entries.iter().enumerate() {
            e.encode::<C>(i, &mut table)?;
        }
        let words = Trailer::words::<C>(table_offset, self.entries.len() as u64)?;
        Ok((table, words))
    }

    /// Finishes a streamed image (header table offset stays 0; the trailer is authoritative).
    pub fn finish(self, ck: Checkpoint) -> Result<W> {
        self.finish_inner(ck, None).map(|(w, _)| w)
    }

    /// Like [`ImageWriter::finish`], and also returns the model as written (with the stored-file
    /// table and data offsets filled in).
    pub fn finish_with_model(self, ck: Checkpoint) -> Result<(W, Checkpoint)> {
        self.finish_inner(ck, None)
    }
}

impl<W: Write + Seek> ImageWriter<W> {
    /// Finishes the image and, the output being seekable, writes the table offset into the
    /// header (a non-streamed image).
    pub fn finish_seekable(self, ck: Checkpoint) -> Result<W> {
        let mut header = Header::new(self.class, false);
        let (mut w, _) = self.finish_inner(ck, Some(&mut header))?;
        let end = w
            .stream_position()
            .map_err(FormatError::io("seeking in the image"))?;
        w.seek(SeekFrom::Start(0))
            .map_err(FormatError::io("seeking in the image"))?;
        w.write_all(&header.encode()?)
            .map_err(FormatError::io("writing the header"))?;
        w.seek(SeekFrom::Start(end))
            .map_err(FormatError::io("seeking in the image"))?;
        debug_assert_eq!(HEADER_SIZE, header.encode()?.len());
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::{example_checkpoint, example_runs, page_pattern, write_example};
    use crate::model::{Arch, VmaKind};

    /// The example image written through `write_page_buffer` (runs grouped `split` at a time
    /// into one buffer) instead of `write_pages`.
    fn example_by_buffers(split: usize) -> Vec<u8> {
        let mut ck = example_checkpoint(Arch::X86_64);
        let mut w = ImageWriter::new(Vec::new(), LayoutClass::Bits64).expect("writer");
        let p = &mut ck.processes[0];
        for group in example_runs(Arch::X86_64).chunks(split) {
            let len: u64 = group.iter().map(|r| r.1 * PAGE).sum();
            let mut buf = w.page_buffer(len as usize).expect("buffer");
            let mut at = 0;
            for &(addr, pages) in group {
                let bytes = page_pattern(addr, pages);
                buf[at..at + bytes.len()].copy_from_slice(&bytes);
                at += bytes.len();
            }
            p.pages
                .extend(w.write_page_buffer(group, buf).expect("pages"));
        }
        let exe_bytes: Vec<u8> = (0..8192u32).map(|i| (i % 253) as u8).collect();
        let id = w.store_file(&p.exe.path, &exe_bytes).expect("file");
        p.exe.stored = Some(id);
        p.exe.identity.sha256 = sha256(&exe_bytes);
        let exe = p.exe.clone();
        for v in p.vmas.iter_mut().filter(|v| v.kind == VmaKind::File) {
            v.file = Some(exe.clone());
        }
        w.finish(ck).expect("finish")
    }

    #[test]
    fn page_buffers_write_the_same_image_as_page_runs() {
        let reference =
            write_example(Vec::new(), Arch::X86_64, LayoutClass::Bits64).expect("example");
        for split in [1, 2, 100] {
            assert!(
                example_by_buffers(split) == reference,
                "runs {split} per buffer"
            );
        }
    }

    #[test]
    fn page_buffer_must_match_its_runs() {
        let mut w = ImageWriter::new(Vec::new(), LayoutClass::Bits64).expect("writer");
        let buf = w.page_buffer(8192).expect("buffer");
        let e = w.write_page_buffer(&[(0x1000, 1)], buf).unwrap_err();
        assert!(
            matches!(e, FormatError::Invalid(ref m) if m.contains("buffer of 8192 bytes")),
            "{e}"
        );
        let buf = w.page_buffer(4096).expect("buffer");
        let e = w.write_page_buffer(&[(0x1001, 1)], buf).unwrap_err();
        assert!(
            matches!(e, FormatError::Invalid(ref m) if m.contains("not page-aligned")),
            "{e}"
        );
    }
}
