//! Where the restore puts its own pages inside the task it rebuilds.
//!
//! The stub code, a scratch area for the arguments of remote system calls, and a parking area the
//! stub's vdso group passes through on its way to the image's vdso address all live in one region
//! the restore owns. That region must not touch any address the image uses, so it is chosen inside
//! a hole of the image's address space, with a guard gap on both sides (a `MAP_GROWSDOWN` stack
//! below it may grow into the gap in the original process, and adjacent anonymous VMAs would merge
//! with ours in `/proc/PID/maps`).
//!
//! ```text
//!   region (REGION_SIZE, aligned to REGION_ALIGN)
//!   +0          code page (the stub ELF's PT_LOAD)
//!   +1 MiB - 4K the batch loop (read-execute), until the scratch area goes
//!   +1 MiB      scratch (SCRATCH_SIZE), argument memory for remote syscalls and batch tables
//!   +2 MiB      park: the stub's [vvar]/[vvar_vclock]/[vdso] pass through here
//! ```

use psnc_format::model::Vma;

use crate::stub::PAGE_SIZE;

/// Size of the region the restore owns in the rebuilt task.
pub const REGION_SIZE: u64 = 4 << 20;
/// Alignment of that region (a huge-page boundary: no THP of the image's straddles it).
pub const REGION_ALIGN: u64 = 2 << 20;
/// Offset of the scratch area inside the region.
pub const SCRATCH_OFFSET: u64 = 1 << 20;
/// Size of the scratch area.
pub const SCRATCH_SIZE: u64 = 256 << 10;
/// Offset of the parking area inside the region.
pub const PARK_OFFSET: u64 = 2 << 20;
/// Size of the parking area (the vdso group is 8 pages on 6.18; this leaves ample room).
pub const PARK_SIZE: u64 = 2 << 20;
/// Gap kept between the region and any VMA of the image.
pub const GUARD: u64 = 1 << 20;
/// Lowest address the search starts at: above the traditional non-PIE load address (0x400000) and
/// the first gigabyte-ish of small binaries, far below the kernel's stack and mmap base.
pub const SEARCH_START: u64 = 0x1000_0000;

/// The addresses of the restore's own region inside the rebuilt task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First address of the region; the stub's load address.
    pub base: u64,
}

impl Region {
    /// Load address of the stub.
    pub fn code(&self) -> u64 {
        self.base
    }

    /// First address of the scratch area.
    pub fn scratch(&self) -> u64 {
        self.base + SCRATCH_OFFSET
    }

    /// The page right below the scratch area: the batch loop ([`psnc_ptrace::batch`]), mapped
    /// read-execute for as long as the scratch area is.
    pub fn batch_code(&self) -> u64 {
        self.scratch() - PAGE_SIZE
    }

    /// First address of the parking area.
    pub fn park(&self) -> u64 {
        self.base + PARK_OFFSET
    }

    /// One past the region's last address.
    pub fn end(&self) -> u64 {
        self.base + REGION_SIZE
    }

    /// Whether `[start, end)` overlaps the region.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        start < self.end() && self.base < end
    }
}

/// Finds the lowest `align`-aligned address `a` in `[lo, hi)` such that `[a, a + size)` keeps
/// `guard` bytes of distance from every range of `occupied` (`[start, end)` pairs, any order,
/// possibly overlapping). Returns `None` when no such hole exists.
pub fn find_hole(
    occupied: &[(u64, u64)],
    size: u64,
    align: u64,
    guard: u64,
    lo: u64,
    hi: u64,
) -> Option<u64> {
    let align = align.max(1);
    let align_up = |v: u64| v.checked_add(align - 1).map(|v| v / align * align);
    let mut ranges: Vec<(u64, u64)> = occupied.iter().copied().filter(|(s, e)| s < e).collect();
    ranges.sort_unstable();
    let mut cand = align_up(lo)?;
    for (start, end) in ranges {
        let fence = start.saturating_sub(guard);
        if cand.checked_add(size)? <= fence {
            break;
        }
        cand = cand.max(align_up(end.saturating_add(guard))?);
    }
    (cand.checked_add(size)? <= hi).then_some(cand)
}

/// Chooses the restore's region for an image whose VMAs are `vmas`, below `limit` (the mode's
/// address-space end).
pub fn choose_region(vmas: &[Vma], limit: u64) -> Option<Region> {
    let occupied: Vec<(u64, u64)> = vmas.iter().map(|v| (v.start, v.end)).collect();
    // Keep clear of the top of the address space, where the kernel puts the stub's stack.
    let hi = limit.saturating_sub(1 << 30);
    let base = find_hole(
        &occupied,
        REGION_SIZE,
        REGION_ALIGN,
        GUARD,
        SEARCH_START,
        hi,
    )
    .or_else(|| {
        find_hole(
            &occupied,
            REGION_SIZE,
            REGION_ALIGN,
            GUARD,
            16 * PAGE_SIZE,
            hi,
        )
    })?;
    Some(Region { base })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_space_gives_lo() {
        assert_eq!(
            find_hole(&[], 0x1000, 0x1000, 0, 0x10000, 0x20000),
            Some(0x10000)
        );
        assert_eq!(
            find_hole(&[], 0x1000, 0x10000, 0, 0x10001, 0x40000),
            Some(0x20000)
        );
    }

    #[test]
    fn skips_occupied_with_guard() {
        let occ = [(0x20000, 0x30000), (0x10000, 0x12000)];
        // 0x12000 + guard 0x1000 = 0x13000; 0x13000 + 0x2000 <= 0x20000 - 0x1000: fits.
        assert_eq!(
            find_hole(&occ, 0x2000, 0x1000, 0x1000, 0x10000, 0x100000),
            Some(0x13000)
        );
        // Too big for the gap below 0x20000: goes above 0x30000 + guard.
        assert_eq!(
            find_hole(&occ, 0xd000, 0x1000, 0x1000, 0x10000, 0x100000),
            Some(0x31000)
        );
    }

    #[test]
    fn overlapping_and_unsorted_ranges() {
        let occ = [(0x50000, 0x60000), (0x10000, 0x40000), (0x30000, 0x55000)];
        assert_eq!(
            find_hole(&occ, 0x1000, 0x1000, 0, 0x10000, 0x100000),
            Some(0x60000)
        );
    }

    #[test]
    fn no_room() {
        let occ = [(0x10000, 0x100000)];
        assert_eq!(find_hole(&occ, 0x1000, 0x1000, 0, 0x10000, 0x100000), None);
        assert_eq!(
            find_hole(&[], 0x1000, 0x1000, 0, u64::MAX - 0x10, u64::MAX),
            None
        );
    }

    #[test]
    fn region_avoids_typical_layout() {
        let vma = |start, end| Vma {
            start,
            end,
            ..Vma::default()
        };
        // A non-PIE binary at 0x400000 and a big mapping right where the search starts.
        let vmas = [
            vma(0x400000, 0x401000),
            vma(0x1000_0000, 0x1050_0000),
            vma(0x7fff_f7fc_0000, 0x7fff_f7fc_8000),
        ];
        let r = choose_region(&vmas, 0x7fff_ffff_f000).unwrap_or_else(|| panic!("no region"));
        assert_eq!(r.base, 0x1060_0000);
        assert!(vmas
            .iter()
            .all(|v| !r.overlaps(v.start - GUARD, v.end + GUARD)));
    }
}
