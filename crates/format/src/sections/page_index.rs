//! Section kind 5, `page-index` (FORMAT.md §8.5): not postcard but an array of the fixed
//! [`PageIndexEntry`] (version 1; the struct and its class-width byte layout live in `layout`),
//! and the conversions between it and each process's [`model::PageRun`]s.

use super::{owner, SectionKind};
use crate::class::Class;
use crate::error::{FormatError, Result};
use crate::layout::PageIndexEntry;
use crate::model;

/// Appends one entry per page run of process `pid` to the section body `out`.
pub(super) fn encode_runs<C: Class>(
    pid: u32,
    runs: &[model::PageRun],
    out: &mut Vec<u8>,
) -> Result<()> {
    for r in runs {
        PageIndexEntry {
            pid,
            flags: 0,
            addr: r.addr,
            pages: r.pages,
            data_offset: r.data_offset,
        }
        .encode::<C>(out)?;
    }
    Ok(())
}

/// Decodes the section body found at image offset `offset` and gives each run to its process.
pub(super) fn decode_into<C: Class>(
    offset: u64,
    body: &[u8],
    processes: &mut [model::Process],
) -> Result<()> {
    let esz = PageIndexEntry::size(C::LAYOUT);
    if body.len() % esz != 0 {
        return Err(FormatError::Decode {
            kind: SectionKind::PageIndex.name(),
            offset,
            detail: format!(
                "length {} is not a multiple of the entry size {esz}",
                body.len()
            ),
        });
    }
    for chunk in body.chunks_exact(esz) {
        let e = PageIndexEntry::decode::<C>(chunk);
        owner(processes, e.pid, &format!("page run {:#x}", e.addr))?
            .pages
            .push(model::PageRun {
                addr: e.addr,
                pages: e.pages,
                data_offset: e.data_offset,
            });
    }
    Ok(())
}
