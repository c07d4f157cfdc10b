//! `verify`: is this image intact and sensible?
//!
//! Three checks, in order, stopping at the first failure:
//! 1. structure ([`Image::open`]): magic, format version, class, byte order, trailer, section
//!    table extents, the whole-image digest, unknown critical sections, every metadata section's
//!    digest, decoding;
//! 2. bulk digests: every chunk of the page- and file-data sections (the format crate's
//!    `Image::verify_data`, here in batches so a terminal shows progress);
//! 3. model invariants ([`psnc_format::verify::check_model`]): VMAs sorted and disjoint, page runs
//!    inside VMAs and inside the page data, threads in their process, file references resolve.

use psnc_format::digest::{chunk_digests, digest_of_chunks};
use psnc_format::layout::SECTION_CHUNKED;
use psnc_format::sections::kind_name;
use psnc_format::verify::check_model;
use psnc_format::{FormatError, Image};
use serde::Serialize;

use crate::dump::section_status;
use crate::progress::Progress;
use crate::{open_image, Error, Result};

/// Chunks hashed per batch between progress updates (64 MiB with the default 1 MiB chunks).
const BATCH_CHUNKS: usize = 64;

/// One of verify's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Check {
    /// Header, trailer, section table, image digest, metadata digests, decoding.
    Structure,
    /// Page- and file-data chunk digests.
    BulkDigests,
    /// The model's invariants.
    Invariants,
}

impl Check {
    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::Structure => "structure and metadata digests",
            Check::BulkDigests => "page and file data digests",
            Check::Invariants => "model invariants",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Which check.
    pub check: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was checked, or what failed.
    pub detail: String,
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The image argument.
    pub image: String,
    /// True when every check passed.
    pub valid: bool,
    /// The checks run, in order; the last one failed when `valid` is false.
    pub checks: Vec<CheckResult>,
    /// Sections the reader skipped (unknown or newer ancillary ones).
    pub skipped_sections: Vec<String>,
    /// The first failure, typed (for callers and tests).
    #[serde(skip)]
    pub failure: Option<(Check, FormatError)>,
}

impl Report {
    fn new(image: &str) -> Self {
        Report { image: image.into(), valid: true, checks: Vec::new(), skipped_sections: Vec::new(), failure: None }
    }

    fn pass(&mut self, c: Check, detail: String) {
        self.checks.push(CheckResult { check: c.name(), ok: true, detail });
    }

    fn fail(&mut self, c: Check, e: FormatError) {
        self.valid = false;
        self.checks.push(CheckResult { check: c.name(), ok: false, detail: e.to_string() });
        self.failure = Some((c, e));
    }

    /// The report as text: one verdict line, then each check.
    pub fn render(&self) -> String {
        let mut out = match &self.failure {
            None => format!("{}: valid\n", self.image),
            Some((c, e)) => format!("{}: INVALID: {}: {e}\n", self.image, c.name()),
        };
        for c in &self.checks {
            out.push_str(&format!("  {:<32} {}  {}\n", c.check, if c.ok { "ok    " } else { "FAILED" }, c.detail));
        }
        for s in &self.skipped_sections {
            out.push_str(&format!("  note: {s}\n"));
        }
        out
    }
}

/// Hashes every chunked section in batches, advancing `progress`. On a mismatch the error comes
/// from `Image::verify_data`, which names the first corrupt chunk.
pub fn verify_bulk(img: &Image, progress: &Progress) -> Result<u64, FormatError> {
    let chunk = 1usize << img.header().chunk_shift;
    let mut chunks = 0u64;
    for (i, e) in img.sections().iter().enumerate() {
        if e.flags & SECTION_CHUNKED == 0 {
            continue;
        }
        let body = img.section_bytes(i).unwrap_or_default();
        let mut digests = Vec::with_capacity(body.len().div_ceil(chunk));
        for batch in body.chunks(chunk * BATCH_CHUNKS) {
            digests.extend(chunk_digests(batch, chunk));
            progress.inc(batch.len() as u64);
        }
        chunks += digests.len() as u64;
        if digest_of_chunks(&digests) != e.sha256 {
            return Err(img.verify_data().err().unwrap_or_else(|| FormatError::DigestMismatch {
                what: format!("section {}", kind_name(e.kind)),
                offset: e.offset,
                end: e.offset + e.length,
            }));
        }
    }
    Ok(chunks)
}

/// Total bytes of the chunked sections (the work of [`verify_bulk`]).
pub fn bulk_len(img: &Image) -> u64 {
    img.sections().iter().filter(|e| e.flags & SECTION_CHUNKED != 0).map(|e| e.length).sum()
}

/// Runs checks 2 and 3 on an opened image (check 1 passed when it opened).
pub fn verify_opened(img: &Image, image: &str) -> Report {
    let mut r = Report::new(image);
    r.skipped_sections = img
        .sections()
        .iter()
        .enumerate()
        .filter(|(_, e)| section_status(e.kind, e.version) != "decoded")
        .map(|(i, e)| format!("section {i} ({}, version {}): {}", kind_name(e.kind), e.version, section_status(e.kind, e.version)))
        .collect();
    let (maj, min) = img.version();
    r.pass(
        Check::Structure,
        format!("format {maj}.{min}, {} layout, {} sections, image digest", img.class(), img.sections().len()),
    );
    let progress = Progress::bytes(bulk_len(img), "verifying");
    match verify_bulk(img, &progress) {
        Ok(chunks) => r.pass(
            Check::BulkDigests,
            format!("{} bytes of pages, {} bytes of files, {chunks} chunks", img.page_data().len(), img.file_data().len()),
        ),
        Err(e) => {
            r.fail(Check::BulkDigests, e);
            return r;
        }
    }
    drop(progress);
    let ck = img.checkpoint();
    match check_model(ck, img.page_data().len() as u64, img.file_data().len() as u64) {
        Ok(()) => {
            let threads: usize = ck.processes.iter().map(|p| p.threads.len()).sum();
            let vmas: usize = ck.processes.iter().map(|p| p.vmas.len()).sum();
            let runs: usize = ck.processes.iter().map(|p| p.pages.len()).sum();
            r.pass(
                Check::Invariants,
                format!("{} processes, {threads} threads, {vmas} vmas, {runs} page runs, {} files", ck.processes.len(), ck.files.len()),
            );
        }
        Err(e) => r.fail(Check::Invariants, e),
    }
    r
}

/// Verifies the image named by a command-line argument (`-` = stdin). `Err` only when the image
/// cannot be read at all (I/O); a structurally bad image is an invalid [`Report`].
pub fn verify_arg(image: &str) -> Result<Report> {
    match open_image(image) {
        Ok(img) => Ok(verify_opened(&img, image)),
        Err(Error::Image { source: source @ FormatError::Io { .. }, .. }) => {
            Err(Error::Image { image: image.into(), source })
        }
        Err(Error::Image { source, .. }) => {
            let mut r = Report::new(image);
            r.fail(Check::Structure, source);
            Ok(r)
        }
        Err(e) => Err(e),
    }
}
