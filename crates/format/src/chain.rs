//! Incremental images (format 1.4, section `parent`, FORMAT.md §8.24): an image captured with
//! `psnc-capture --parent OLD` stores only the pages and files that differ from `OLD`'s and
//! refers to `OLD` for the rest; `OLD` may be incremental too.
//!
//! [`Image::with_parents`] finds each parent (where the image says it was, then next to the
//! image, or where the caller says), checks that it is the very image the child was captured
//! against (its image digest), verifies all of its digests and its model, and gives back the
//! *flattened* view: one [`Image`] whose model lists every page run and every stored file as a
//! full image would, with [`Image::page_bytes`] and [`Image::file_bytes`] reading each from
//! whichever image of the chain holds it. Restore, `psnc-imgtool merge` and `diff` work on
//! that view and need to know nothing else about chains.
//!
//! In the flattened model the parent's bytes sit at offsets past the image's own data: page
//! data from `parent_bases.0` on, file data from `parent_bases.1` on, each the parent's own
//! offset space shifted (which holds its parent's from its own bases on, and so on).

use std::path::{Path, PathBuf};

use crate::error::{FormatError, Result};
use crate::model::{Checkpoint, PageRun, Parent};
use crate::reader::Image;
use crate::verify::check_model;

/// Chains longer than this are refused (a digest cycle cannot exist; a runaway chain can).
pub const MAX_CHAIN: usize = 64;

/// One image behind an incremental one, as [`Image::chain`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// Where it was found.
    pub path: PathBuf,
    /// Its image digest.
    pub digest: [u8; 32],
    /// Page runs the image in front of it takes from it (its own or its parents').
    pub pages: u64,
}

/// Lower-case hex of a digest.
pub fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Image {
    /// The images behind this one, nearest first, once [`Image::with_parents`] has flattened
    /// the chain (empty for a full image).
    pub fn chain(&self) -> &[ChainLink] {
        &self.chain
    }

    /// The length of the page data in this image's offset space: its own, then its
    /// flattened parent's.
    pub fn page_span(&self) -> u64 {
        match &self.parent {
            Some(p) => self.parent_bases.0 + p.page_span(),
            None => self.page_data().len() as u64,
        }
    }

    /// [`Image::page_span`] for file data.
    pub fn file_span(&self) -> u64 {
        match &self.parent {
            Some(p) => self.parent_bases.1 + p.file_span(),
            None => self.file_data().len() as u64,
        }
    }

    /// For an incremental image, the flattened view of it and its parents (see the module
    /// doc); a full image is given back as it is. `own_path` is where this image was read
    /// from (`None` for a stream), `explicit` the parent the user named (`--parent`), which
    /// replaces the path the image records. Every parent is verified in full (digests and
    /// model) here; the image itself is not (its caller verifies it, as for a full image).
    pub fn with_parents(self, own_path: Option<&Path>, explicit: Option<&Path>) -> Result<Image> {
        self.flatten(own_path, explicit, 0)
    }

    fn flatten(
        mut self,
        own_path: Option<&Path>,
        explicit: Option<&Path>,
        depth: usize,
    ) -> Result<Image> {
        let Some(link) = self.checkpoint.parent.clone() else {
            return Ok(self);
        };
        if depth >= MAX_CHAIN {
            return Err(FormatError::Invalid(format!(
                "the chain of parent images is longer than {MAX_CHAIN}: flatten it with \
                 `psnc-imgtool merge`"
            )));
        }
        let path = locate(&link, own_path, explicit)?;
        let shown = path.display().to_string();
        let wrap = |e: FormatError| FormatError::Parent {
            path: shown.clone(),
            source: Box::new(e),
        };
        let parent = Image::open(&path).map_err(wrap)?;
        if parent.trailer().image_sha256 != link.digest {
            return Err(FormatError::ParentMismatch {
                path: shown,
                expected: hex(&link.digest),
                found: hex(&parent.trailer().image_sha256),
            });
        }
        parent.verify_layout().map_err(wrap)?;
        parent.verify_data().map_err(wrap)?;
        check_model(
            parent.checkpoint(),
            parent.page_data().len() as u64,
            parent.file_data().len() as u64,
        )
        .map_err(wrap)?;
        let parent = parent.flatten(Some(&path), None, depth + 1)?;
        let bases = (
            (self.page_data().len() as u64).next_multiple_of(4096),
            (self.file_data().len() as u64).next_multiple_of(4096),
        );
        let pages = merge_in(&mut self.checkpoint, &link, parent.checkpoint(), bases)?;
        self.checkpoint.parent = None;
        self.chain = std::iter::once(ChainLink {
            path,
            digest: link.digest,
            pages,
        })
        .chain(parent.chain.iter().cloned())
        .collect();
        self.parent_bases = bases;
        self.parent = Some(Box::new(parent));
        Ok(self)
    }
}

/// Where the parent `link` is: `explicit` if given, else the recorded path, else a file of the
/// same name next to the child image.
fn locate(link: &Parent, own_path: Option<&Path>, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.exists() {
            Ok(p.to_path_buf())
        } else {
            Err(FormatError::ParentMissing {
                tried: format!("{} (--parent)", p.display()),
            })
        };
    }
    // A relative recorded path is relative to the image's directory (spec §8.24).
    let dir = own_path.and_then(Path::parent);
    let recorded = match dir {
        Some(d) if Path::new(&link.path).is_relative() => d.join(&link.path),
        _ => PathBuf::from(&link.path),
    };
    let mut tried = vec![recorded.clone()];
    if let (Some(dir), Some(name)) = (dir, recorded.file_name()) {
        let beside = dir.join(name);
        if beside != recorded {
            tried.push(beside);
        }
    }
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| FormatError::ParentMissing {
            tried: tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and "),
        })
}

/// Merges the parent's pages and files that `link` names into `ck`, at the parent's offsets
/// shifted by `bases`; returns the pages taken. A run the parent does not hold, or a file it
/// does not store, is an error naming it.
fn merge_in(
    ck: &mut Checkpoint,
    link: &Parent,
    parent: &Checkpoint,
    bases: (u64, u64),
) -> Result<u64> {
    let mut taken = 0;
    for p in ck.processes.iter_mut() {
        let wanted: Vec<_> = link.pages.iter().filter(|r| r.pid == p.pid).collect();
        if wanted.is_empty() {
            continue;
        }
        let Some(pp) = parent.processes.iter().find(|q| q.pid == p.pid) else {
            return Err(FormatError::Invalid(format!(
                "the image takes pages of pid {} from its parent, which has no such process",
                p.pid
            )));
        };
        for r in wanted {
            let end = r.addr + r.pages * 4096;
            let mut at = r.addr;
            let mut i = pp.pages.partition_point(|q| q.addr + q.pages * 4096 <= at);
            while at < end {
                let Some(q) = pp.pages.get(i).filter(|q| q.addr <= at) else {
                    return Err(FormatError::Invalid(format!(
                        "the image takes page {at:#x} of pid {} from its parent, which does \
                         not store it",
                        p.pid
                    )));
                };
                let stop = end.min(q.addr + q.pages * 4096);
                p.pages.push(PageRun {
                    addr: at,
                    pages: (stop - at) / 4096,
                    data_offset: bases.0 + q.data_offset + (at - q.addr),
                });
                at = stop;
                i += 1;
            }
            taken += r.pages;
        }
        p.pages.sort_by_key(|r| r.addr);
    }
    for id in &link.files {
        let f = &mut ck.files[id.0 as usize];
        let Some(pf) = parent
            .files
            .iter()
            .find(|pf| pf.sha256 == f.sha256 && pf.size == f.size)
        else {
            return Err(FormatError::Invalid(format!(
                "stored file {} ({}) is in the parent image, which does not store it",
                id.0, f.path
            )));
        };
        f.data_offset = bases.1 + pf.data_offset;
    }
    Ok(taken)
}
