//! `verify`: is this image intact and sensible?
//!
//! The checks are the format crate's own, in the order of `psnc_format::verify::verify_image`,
//! each reported by name, stopping at the first failure:
//! 1. structure ([`Image::open`]): magic, format version, class, byte order, trailer, section
//!    table extents, the whole-image digest, unknown critical sections, every known section's
//!    flags and digest, decoding;
//! 2. layout ([`Image::verify_layout`]): section alignment, zero padding (no digest covers it);
//! 3. data digests ([`Image::verify_data`]): every chunk of the page- and file-data sections and
//!    the digest of every unknown section;
//! 4. model invariants ([`psnc_format::verify::check_model`]): VMAs sorted and disjoint, page runs
//!    inside VMAs and inside the page data, threads in their process, file references resolve.
//!
//! imgtool calls these rather than re-implementing any of them, so `verify` never accepts what
//! restore would refuse. `verify_data` reports no progress, so a terminal shows a spinner.

use psnc_format::sections::kind_name;
use std::path::Path;

use psnc_format::verify::check_model;
use psnc_format::{FormatError, Image};
use serde::Serialize;

use crate::dump::section_status;
use crate::progress::with_spinner;
use crate::{open_image, Error, Result};

/// One of verify's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Check {
    /// Header, trailer, section table, image digest, metadata digests, decoding.
    Structure,
    /// Section alignment and zero padding.
    Layout,
    /// Page- and file-data chunk digests, unknown sections' digests.
    BulkDigests,
    /// The model's invariants.
    Invariants,
    /// An incremental image's parents: found, the very images it was captured against, and
    /// each valid in full.
    Chain,
}

impl Check {
    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::Structure => "structure and metadata digests",
            Check::Layout => "alignment and padding",
            Check::BulkDigests => "data digests",
            Check::Invariants => "model invariants",
            Check::Chain => "parent chain",
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
        Report {
            image: image.into(),
            valid: true,
            checks: Vec::new(),
            skipped_sections: Vec::new(),
            failure: None,
        }
    }

    fn pass(&mut self, c: Check, detail: String) {
        self.checks.push(CheckResult {
            check: c.name(),
            ok: true,
            detail,
        });
    }

    fn fail(&mut self, c: Check, e: FormatError) {
        self.valid = false;
        self.checks.push(CheckResult {
            check: c.name(),
            ok: false,
            detail: e.to_string(),
        });
        self.failure = Some((c, e));
    }

    /// The report as text: one verdict line, then each check.
    pub fn render(&self) -> String {
        let mut out = match &self.failure {
            None => format!("{}: valid\n", self.image),
            Some((c, e)) => format!("{}: INVALID: {}: {e}\n", self.image, c.name()),
        };
        for c in &self.checks {
            out.push_str(&format!(
                "  {:<32} {}  {}\n",
                c.check,
                if c.ok { "ok    " } else { "FAILED" },
                c.detail
            ));
        }
        for s in &self.skipped_sections {
            out.push_str(&format!("  note: {s}\n"));
        }
        out
    }
}

/// Bytes the digest check hashes: every section but the metadata, which was hashed at open.
pub fn bulk_len(img: &Image) -> u64 {
    img.page_data().len() as u64 + img.file_data().len() as u64
}

/// Runs checks 2 and 3 on an opened image (check 1 passed when it opened).
pub fn verify_opened(img: &Image, image: &str) -> Report {
    let mut r = Report::new(image);
    r.skipped_sections = img
        .sections()
        .iter()
        .enumerate()
        .filter(|(_, e)| section_status(e.kind, e.version) != "decoded")
        .map(|(i, e)| {
            format!(
                "section {i} ({}, version {}): {}",
                kind_name(e.kind),
                e.version,
                section_status(e.kind, e.version)
            )
        })
        .collect();
    let (maj, min) = img.version();
    r.pass(
        Check::Structure,
        format!(
            "format {maj}.{min}, {} layout, {} sections, image digest",
            img.class(),
            img.sections().len()
        ),
    );
    if let Err(e) = img.verify_layout() {
        r.fail(Check::Layout, e);
        return r;
    }
    r.pass(Check::Layout, "sections aligned, padding zero".into());
    match with_spinner(bulk_len(img), "verifying", || img.verify_data()) {
        Ok(()) => r.pass(
            Check::BulkDigests,
            format!(
                "{} bytes of pages, {} bytes of files",
                img.page_data().len(),
                img.file_data().len()
            ),
        ),
        Err(e) => {
            r.fail(Check::BulkDigests, e);
            return r;
        }
    }
    let ck = img.checkpoint();
    match check_model(ck, img.page_span(), img.file_span()) {
        Ok(()) => {
            let threads: usize = ck.processes.iter().map(|p| p.threads.len()).sum();
            let vmas: usize = ck.processes.iter().map(|p| p.vmas.len()).sum();
            let runs: usize = ck.processes.iter().map(|p| p.pages.len()).sum();
            r.pass(
                Check::Invariants,
                format!(
                    "{} processes, {threads} threads, {vmas} vmas, {runs} page runs, {} files",
                    ck.processes.len(),
                    ck.files.len()
                ),
            );
        }
        Err(e) => r.fail(Check::Invariants, e),
    }
    r
}

/// For a valid incremental image: check 5, its parent chain ([`Image::with_parents`], which
/// verifies every parent in full), with `parent` in place of the recorded parent path.
pub fn verify_chain(img: Image, image: &str, parent: Option<&Path>, r: &mut Report) {
    if !r.valid || img.checkpoint().parent.is_none() {
        return;
    }
    let own = (image != "-").then(|| Path::new(image));
    match img.with_parents(own, parent) {
        Ok(flat) => {
            let links: Vec<String> = flat
                .chain()
                .iter()
                .map(|l| {
                    format!(
                        "{} ({}…, {} pages)",
                        l.path.display(),
                        &psnc_format::chain::hex(&l.digest)[..16],
                        l.pages
                    )
                })
                .collect();
            r.pass(
                Check::Chain,
                format!("{} image(s): {}", links.len(), links.join(" <- ")),
            );
        }
        Err(e) => r.fail(Check::Chain, e),
    }
}

/// Verifies the image named by a command-line argument (`-` = stdin), and the parent chain of
/// an incremental one (`parent` replaces the recorded parent path). `Err` only when the image
/// cannot be read at all (I/O); a structurally bad image is an invalid [`Report`].
pub fn verify_arg(image: &str, parent: Option<&Path>) -> Result<Report> {
    match open_image(image) {
        Ok(img) => {
            let mut r = verify_opened(&img, image);
            verify_chain(img, image, parent, &mut r);
            Ok(r)
        }
        Err(Error::Image {
            source: source @ FormatError::Io { .. },
            ..
        }) => Err(Error::Image {
            image: image.into(),
            source,
        }),
        Err(Error::Image { source, .. }) => {
            let mut r = Report::new(image);
            r.fail(Check::Structure, source);
            Ok(r)
        }
        Err(e) => Err(e),
    }
}
