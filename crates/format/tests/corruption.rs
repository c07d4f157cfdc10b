//! Damaged images: every damage is refused with the one error that names it, never a panic.
//!
//! Truncation at every structure boundary and inside each section, a flipped bit in every part
//! of the file (header, each section, table, trailer), bad extents, an empty file, random bytes.
//! Metadata damage is caught at open by its section digest; page and file data damage is caught
//! by `verify_data`, which names the section and the 1 MiB chunk.

mod imagecraft;

use imagecraft::{flip, layout, put_entry, reseal, Layout};
use proptest::prelude::*;
use psnc_format::example::{example_checkpoint, example_runs, page_pattern, write_example};
use psnc_format::layout::{SectionEntry, HEADER_SIZE, SECTION_CHUNKED};
use psnc_format::model::{Arch, Vma, VmaKind};
use psnc_format::sections::{kind_name, SectionKind};
use psnc_format::verify::{verify_image, verify_image_except};
use psnc_format::{FormatError, Image, ImageWriter, LayoutClass, FORMAT_MINOR};

const MIB: usize = 1 << 20;

/// The small example images of both classes.
fn examples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "example-64",
            write_example(Vec::new(), Arch::X86_64, LayoutClass::Bits64).expect("write"),
        ),
        (
            "example-32",
            write_example(Vec::new(), Arch::I386, LayoutClass::Bits32).expect("write"),
        ),
    ]
}

/// An image whose page data spans three 1 MiB chunks (the last one short) and whose file data
/// spans two, so chunk numbers in errors can be checked.
fn multi_chunk_image(class: LayoutClass) -> Vec<u8> {
    let arch = if class == LayoutClass::Bits32 {
        Arch::I386
    } else {
        Arch::X86_64
    };
    let mut ck = example_checkpoint(arch);
    let big = 0x4000_0000u64;
    let p = &mut ck.processes[0];
    p.vmas.push(Vma {
        start: big,
        end: big + 3 * MIB as u64,
        prot: 3,
        kind: VmaKind::Anonymous,
        ..Default::default()
    });
    p.vmas.sort_by_key(|v| v.start);
    let mut w = ImageWriter::new(Vec::new(), class).expect("writer");
    let mut runs: Vec<(u64, u64)> = example_runs(arch);
    runs.push((big, (2 * MIB + MIB / 2) as u64 / 4096));
    runs.sort_unstable();
    for (addr, pages) in runs {
        let run = w
            .write_pages(addr, &page_pattern(addr, pages))
            .expect("pages");
        p.pages.push(run);
    }
    let contents: Vec<u8> = (0..MIB + 5000).map(|i| (i * 31 % 255) as u8).collect();
    let id = w.store_file("/usr/lib/big.so", &contents).expect("file");
    p.exe.stored = Some(id);
    w.finish(ck).expect("finish")
}

fn entry_of(l: &Layout, kind: SectionKind) -> (usize, SectionEntry) {
    l.entries
        .iter()
        .copied()
        .enumerate()
        .find(|(_, e)| e.kind == kind.number())
        .expect("section present")
}

/// The error a prefix of `len` bytes of a valid image must get.
fn assert_truncation_refused(name: &str, img: &[u8], cut: usize, tsize: usize) {
    let r = Image::from_vec(img[..cut].to_vec());
    let ok = match &r {
        Err(FormatError::Truncated {
            what,
            offset: 0,
            end,
            have,
        }) if cut < HEADER_SIZE => {
            what == "header" && *end == HEADER_SIZE as u64 && *have == cut as u64
        }
        Err(FormatError::Truncated {
            what,
            offset: 0,
            end,
            have,
        }) if cut < HEADER_SIZE + tsize => {
            what == "header and trailer"
                && *end == (HEADER_SIZE + tsize) as u64
                && *have == cut as u64
        }
        Err(FormatError::BadTrailer { .. }) => cut >= HEADER_SIZE + tsize,
        _ => false,
    };
    assert!(ok, "{name}: prefix of {cut} bytes: {r:?}");
}

#[test]
fn truncation_at_every_boundary_and_inside_each_section_is_refused() {
    for (name, img) in examples().into_iter().chain([
        ("multi-chunk-64", multi_chunk_image(LayoutClass::Bits64)),
        ("multi-chunk-32", multi_chunk_image(LayoutClass::Bits32)),
    ]) {
        let l = layout(&img).expect("layout");
        let tsize = img.len() - l.trailer_offset;
        let mut cuts = vec![
            0,
            1,
            7,
            8,
            31,
            32,
            33,
            HEADER_SIZE + tsize - 1,
            HEADER_SIZE + tsize,
        ];
        for e in &l.entries {
            let (o, n) = (e.offset as usize, e.length as usize);
            cuts.extend([
                o,
                o + 1,
                o + n / 3,
                o + n / 2,
                o + n.saturating_sub(1),
                o + n,
                o + n + 1,
            ]);
        }
        for i in 0..=l.entries.len() {
            cuts.extend([
                l.table_offset + i * l.entry_size,
                l.table_offset + i * l.entry_size + 5,
            ]);
        }
        let t = l.trailer_offset;
        let w = l.class.word_size();
        cuts.extend([
            t - 1,
            t,
            t + w,
            t + 2 * w,
            t + 2 * w + 32,
            img.len() - 8,
            img.len() - 1,
        ]);
        cuts.extend((0..img.len()).step_by(4093));
        cuts.retain(|&c| c < img.len());
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            assert_truncation_refused(name, &img, cut, tsize);
        }
    }
}

#[test]
fn every_prefix_of_a_small_image_is_refused() {
    let (name, img) = examples().swap_remove(1);
    let tsize = img.len() - layout(&img).expect("layout").trailer_offset;
    for cut in 0..img.len() {
        assert_truncation_refused(name, &img, cut, tsize);
    }
}

#[test]
fn a_section_cut_out_before_an_intact_trailer_is_refused() {
    for (name, img) in examples() {
        let l = layout(&img).expect("layout");
        for e in &l.entries {
            let start = e.offset as usize + e.length as usize / 2;
            let mut cut = img[..start].to_vec();
            cut.extend_from_slice(&img[l.trailer_offset..]);
            let r = Image::from_vec(cut.clone());
            let want = format!("section table ({} entries)", l.entries.len());
            assert!(
                matches!(&r, Err(FormatError::Truncated { what, offset, end, have })
                    if *what == want && *offset == l.table_offset as u64
                        && *end == l.trailer_offset as u64 && *have == cut.len() as u64),
                "{name}: {} cut at {start}: {r:?}",
                kind_name(e.kind)
            );
        }
    }
}

#[test]
fn a_flipped_bit_in_a_metadata_section_is_refused_at_open_naming_the_section() {
    for (name, img) in examples() {
        let l = layout(&img).expect("layout");
        let mut seen = 0;
        for e in l.entries.iter().filter(|e| e.flags & SECTION_CHUNKED == 0) {
            let kind = SectionKind::from_number(e.kind).expect("known kind");
            let (o, n) = (e.offset as usize, e.length as usize);
            for (at, bit) in [(o, 0), (o + n / 2, 3), (o + n - 1, 7)] {
                let r = Image::from_vec(flip(&img, at, bit));
                let want = format!("section {kind}");
                assert!(
                    matches!(&r, Err(FormatError::DigestMismatch { what, offset, end })
                        if *what == want && *offset == e.offset && *end == e.offset + e.length),
                    "{name}: bit {bit} of byte {at} in {kind}: {r:?}"
                );
            }
            seen += 1;
        }
        // identity, processes, threads, vmas, page-index, files, fds, signals, epoll,
        // event-fds, fd-shares, 2 x chunk-digests
        assert_eq!(seen, 13, "{name}");
    }
}

#[test]
fn a_flipped_bit_in_page_or_file_data_opens_but_verify_names_the_section_and_chunk() {
    for class in [LayoutClass::Bits64, LayoutClass::Bits32] {
        let img = multi_chunk_image(class);
        let l = layout(&img).expect("layout");
        Image::from_vec(img.clone())
            .expect("intact")
            .verify_data()
            .expect("intact data");
        for kind in [SectionKind::PageData, SectionKind::FileData] {
            let (_, e) = entry_of(&l, kind);
            let (o, n) = (e.offset as usize, e.length as usize);
            let points = [(0, 0), (MIB - 1, 7), (MIB, 1), (n / 2, 4), (n - 1, 6)];
            for (rel, bit) in points.into_iter().filter(|(rel, _)| *rel < n) {
                let bad = flip(&img, o + rel, bit);
                let image = Image::from_vec(bad).expect("data damage is not seen at open");
                let chunk = rel / MIB;
                let want = format!("section {kind}, chunk {chunk}");
                let start = e.offset + (chunk * MIB) as u64;
                let end = (start + MIB as u64).min(e.offset + e.length);
                for r in [
                    image.verify_data(),
                    verify_image(&image),
                    image.verify_section_data(kind, 1),
                    image.verify_section_data(kind, 4),
                ] {
                    assert!(
                        matches!(&r, Err(FormatError::DigestMismatch { what, offset, end: e })
                            if *what == want && *offset == start && *e == end),
                        "{class:?} {kind} byte {rel}: {r:?}"
                    );
                }
                // Left out, the damaged section is not checked; the others still are.
                let other = if kind == SectionKind::PageData {
                    SectionKind::FileData
                } else {
                    SectionKind::PageData
                };
                image
                    .verify_data_except(Some(kind))
                    .unwrap_or_else(|e| panic!("{class:?} {kind} left out: {e}"));
                image
                    .verify_section_data(other, 1)
                    .expect("the other is intact");
                assert!(
                    verify_image_except(&image, Some(other)).is_err(),
                    "{class:?} {kind}: checked when another kind is left out"
                );
            }
        }
    }
}

#[test]
fn without_chunk_digests_a_data_flip_still_names_the_section() {
    // Drop the ancillary chunk-digest sections from the table: verify can no longer name the
    // chunk but must still refuse, naming the section.
    let img = multi_chunk_image(LayoutClass::Bits64);
    let l = layout(&img).expect("layout");
    let (_, pd) = entry_of(&l, SectionKind::PageData);
    let mut bad = flip(&img, pd.offset as usize + MIB + 10, 2);
    for (i, e) in l.entries.iter().enumerate() {
        if e.kind == SectionKind::ChunkDigests.number() {
            put_entry(
                &mut bad,
                &l,
                i,
                &SectionEntry {
                    kind: 0x7fff_0001,
                    ..*e
                },
            );
        }
    }
    assert!(reseal(&mut bad));
    let image = Image::from_vec(bad).expect("opens");
    assert!(image.chunk_digests(SectionKind::PageData).is_none());
    let r = image.verify_data();
    assert!(
        matches!(&r, Err(FormatError::DigestMismatch { what, offset, end })
            if what == "section page-data" && *offset == pd.offset && *end == pd.offset + pd.length),
        "{r:?}"
    );
}

/// What flipping `bit` of header byte `at` must give, as a predicate on the error.
fn header_flip_ok(class: LayoutClass, at: usize, r: &Result<Image, FormatError>) -> bool {
    let image_digest = |r: &Result<Image, FormatError>| matches!(r, Err(FormatError::DigestMismatch { what, .. }) if what == "header and section table (image digest)");
    match at {
        0..=7 => matches!(r, Err(FormatError::BadMagic { .. })),
        8..=9 => matches!(
            r,
            Err(FormatError::UnsupportedMajor {
                found_minor: FORMAT_MINOR,
                supported: 1,
                ..
            })
        ),
        12 => matches!(r, Err(FormatError::BadClass(_))),
        13 => matches!(r, Err(FormatError::BadByteOrder(_))),
        // The header size: smaller than 32 is refused outright; larger moves the digest cover.
        14..=15 => matches!(r, Err(FormatError::BadHeader(_))) || image_digest(r),
        // The chunk shift: out of range is refused outright, in range is caught by the digest.
        20 => matches!(r, Err(FormatError::BadHeader(_))) || image_digest(r),
        // A streamed image's header table offset is 0: any other value must agree with the
        // trailer. The 32-bit class does not read bytes 28..32, but the digest covers them.
        24..=27 => matches!(r, Err(FormatError::BadHeader(_))),
        28..=31 if class == LayoutClass::Bits64 => matches!(r, Err(FormatError::BadHeader(_))),
        _ => image_digest(r),
    }
}

#[test]
fn every_bit_of_header_table_and_trailer_is_covered() {
    for (name, img) in examples() {
        let l = layout(&img).expect("layout");
        for at in 0..HEADER_SIZE {
            for bit in 0..8 {
                let r = Image::from_vec(flip(&img, at, bit));
                assert!(
                    header_flip_ok(l.class, at, &r),
                    "{name}: header byte {at} bit {bit}: {r:?}"
                );
            }
        }
        for at in l.table_offset..l.trailer_offset {
            for bit in 0..8 {
                let r = Image::from_vec(flip(&img, at, bit));
                assert!(
                    matches!(&r, Err(FormatError::DigestMismatch { what, offset: 0, end })
                        if what == "header and section table (image digest)" && *end == img.len() as u64),
                    "{name}: table byte {at} bit {bit}: {r:?}"
                );
            }
        }
        let w = l.class.word_size();
        for at in l.trailer_offset..img.len() {
            for bit in 0..8 {
                let r = Image::from_vec(flip(&img, at, bit));
                let rel = at - l.trailer_offset;
                let ok = if rel < 2 * w {
                    // Table offset or count: the table no longer ends at the trailer (or its size
                    // overflows).
                    matches!(&r, Err(FormatError::Truncated { what, .. }) if what.starts_with("section table"))
                        || matches!(&r, Err(FormatError::BadHeader(m)) if m == "section table size overflows")
                } else if rel < 2 * w + 32 {
                    matches!(&r, Err(FormatError::DigestMismatch { what, .. }) if what == "header and section table (image digest)")
                } else {
                    matches!(&r, Err(FormatError::BadTrailer { .. }))
                };
                assert!(ok, "{name}: trailer byte {rel} bit {bit}: {r:?}");
            }
        }
    }
}

/// The byte ranges no digest covers: alignment padding between the structures.
fn padding(img: &[u8], l: &Layout) -> Vec<std::ops::Range<usize>> {
    let mut covered: Vec<(usize, usize)> = l
        .entries
        .iter()
        .map(|e| (e.offset as usize, (e.offset + e.length) as usize))
        .collect();
    covered.push((0, l.header_size));
    covered.push((l.table_offset, img.len()));
    covered.sort_unstable();
    let mut gaps = Vec::new();
    let mut at = 0;
    for (s, e) in covered {
        if s > at {
            gaps.push(at..s);
        }
        at = at.max(e);
    }
    gaps
}

#[test]
fn every_single_bit_flip_is_refused_or_caught_by_verify() {
    for (name, img) in examples() {
        let l = layout(&img).expect("layout");
        let good = Image::from_vec(img.clone()).expect("intact");
        let gaps = padding(&img, &l);
        assert!(
            gaps.iter().all(|g| img[g.clone()].iter().all(|&b| b == 0)),
            "{name}: padding is zero"
        );
        let raw: Vec<(usize, usize)> = l
            .entries
            .iter()
            .filter(|e| e.flags & SECTION_CHUNKED != 0)
            .map(|e| (e.offset as usize, (e.offset + e.length) as usize))
            .collect();
        for at in 0..img.len() {
            let in_raw = raw.iter().any(|&(s, e)| s <= at && at < e);
            let in_pad = gaps.iter().any(|g| g.contains(&at));
            // Inside raw data and padding a sample is enough: every byte there takes the same path.
            if (in_raw || in_pad) && at % 61 != 0 {
                continue;
            }
            let bad = flip(&img, at, (at % 8) as u8);
            match Image::from_vec(bad) {
                Err(_) => assert!(
                    !in_raw && !in_pad,
                    "{name}: flip at {at} refused at open but lies in data or padding"
                ),
                Ok(image) => match verify_image(&image) {
                    Err(FormatError::DigestMismatch { .. }) => {
                        assert!(in_raw, "{name}: flip at {at}")
                    }
                    // Padding is covered by no digest; verify checks that it is zero, and the
                    // decoded image is unaffected.
                    Err(FormatError::Invalid(m)) if m.contains("padding") => {
                        assert!(in_pad, "{name}: flip at {at}: {m}");
                        assert_eq!(
                            image.checkpoint(),
                            good.checkpoint(),
                            "{name}: flip at {at}"
                        );
                        assert_eq!(image.page_data(), good.page_data());
                        assert_eq!(image.file_data(), good.file_data());
                    }
                    Err(e) => panic!("{name}: flip at {at}: unexpected {e}"),
                    Ok(()) => panic!("{name}: flip at byte {at} went unnoticed"),
                },
            }
        }
    }
}

/// Rewrites table entry `index` of a copy of `img` and reseals the image digest.
fn with_entry(img: &[u8], index: usize, f: impl FnOnce(&mut SectionEntry)) -> Vec<u8> {
    let l = layout(img).expect("layout");
    let mut e = l.entries[index];
    f(&mut e);
    let mut v = img.to_vec();
    put_entry(&mut v, &l, index, &e);
    assert!(reseal(&mut v));
    v
}

#[test]
fn section_extents_outside_the_data_area_are_refused() {
    for (name, img) in examples() {
        let l = layout(&img).expect("layout");
        let (i, e) = entry_of(&l, SectionKind::Vmas);
        let outside = "outside the data area between header and section table";
        let cases: Vec<(u64, u64, &str)> = vec![
            // Runs into the table.
            (e.offset, l.table_offset as u64 - e.offset + 1, outside),
            // Past the end of the file.
            (img.len() as u64 + 8, 16, outside),
            (e.offset, img.len() as u64 * 2, outside),
            // Over the header.
            (8, 16, outside),
            (0, 0, outside),
        ];
        for (offset, length, why) in cases {
            let bad = with_entry(&img, i, |e| {
                e.offset = offset;
                e.length = length;
            });
            let r = Image::from_vec(bad);
            assert!(
                matches!(&r, Err(FormatError::BadSectionExtent { index, kind, offset: o, length: n, why: w })
                    if *index == i && kind == "vmas" && *o == offset && *n == length && *w == why),
                "{name}: {offset}+{length}: {r:?}"
            );
        }
        if l.class == LayoutClass::Bits64 {
            let bad = with_entry(&img, i, |e| e.length = u64::MAX - 3);
            let r = Image::from_vec(bad);
            assert!(
                matches!(&r, Err(FormatError::BadSectionExtent { index, why: "offset + length overflows", .. }) if *index == i),
                "{name}: overflow: {r:?}"
            );
        }
    }
}

#[test]
fn overlapping_sections_are_refused() {
    for (name, img) in examples() {
        let l = layout(&img).expect("layout");
        let (pi, p) = entry_of(&l, SectionKind::Processes);
        let (ti, t) = entry_of(&l, SectionKind::Threads);
        assert!(p.offset < t.offset);
        // The threads section starts one byte inside the processes section.
        let bad = with_entry(&img, ti, |e| e.offset = p.offset + p.length - 1);
        let r = Image::from_vec(bad);
        assert!(
            matches!(&r, Err(FormatError::BadSectionExtent { index, kind, why: "overlaps the previous section", .. })
                if *index == ti && kind == "threads"),
            "{name}: {r:?}"
        );
        // Two sections at the same place: reported on the later one in file order, whichever it is.
        let bad = with_entry(&img, pi, |e| *e = SectionEntry { kind: e.kind, ..t });
        let r = Image::from_vec(bad);
        assert!(
            matches!(
                &r,
                Err(FormatError::BadSectionExtent {
                    why: "overlaps the previous section",
                    ..
                })
            ),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn a_header_table_offset_that_disagrees_with_the_trailer_is_refused() {
    for (name, img) in examples() {
        let l = layout(&img).expect("layout");
        let mut bad = img.clone();
        let t = (l.table_offset as u32 + 8).to_le_bytes();
        bad[24..28].copy_from_slice(&t);
        assert!(reseal(&mut bad));
        let r = Image::from_vec(bad);
        assert!(
            matches!(&r, Err(FormatError::BadHeader(m)) if m.contains("disagrees with the trailer")),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn wrong_magic_empty_file_and_foreign_files_are_refused() {
    let img = examples().swap_remove(0).1;
    let mut elf = img.clone();
    elf[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\0");
    let r = Image::from_vec(elf);
    assert!(
        matches!(&r, Err(FormatError::BadMagic { found, expected })
            if found == b"\x7fELF\x02\x01\x01\0" && *expected == psnc_format::layout::MAGIC),
        "{r:?}"
    );
    // A PNG: same shape of magic, different letters.
    let r = Image::from_vec(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".repeat(4));
    assert!(matches!(r, Err(FormatError::BadMagic { .. })), "{r:?}");
    let r = Image::from_vec(Vec::new());
    assert!(
        matches!(&r, Err(FormatError::Truncated { what, offset: 0, end: 32, have: 0 }) if what == "header"),
        "{r:?}"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let empty = dir.path().join("empty.psnc");
    std::fs::write(&empty, b"").expect("write");
    let r = Image::open(&empty);
    assert!(
        matches!(&r, Err(FormatError::Truncated { have: 0, .. })),
        "{r:?}"
    );
    let r = Image::open(dir.path().join("missing.psnc"));
    assert!(
        matches!(&r, Err(FormatError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound),
        "{r:?}"
    );
    // A magic and nothing else, and a header with no trailer.
    let r = Image::from_vec(img[..8].to_vec());
    assert!(
        matches!(&r, Err(FormatError::Truncated { what, have: 8, .. }) if what == "header"),
        "{r:?}"
    );
    let mut no_trailer = img[..4096].to_vec();
    no_trailer.extend_from_slice(&[0u8; 64]);
    let r = Image::from_vec(no_trailer);
    assert!(
        matches!(&r, Err(FormatError::BadTrailer { found }) if *found == [0; 8]),
        "{r:?}"
    );
}

#[test]
fn a_file_of_random_bytes_is_refused() {
    // xorshift: reproducible without a dependency.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut bytes = Vec::with_capacity(1 << 16);
    while bytes.len() < 1 << 16 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    assert!(matches!(
        Image::from_vec(bytes.clone()),
        Err(FormatError::BadMagic { .. })
    ));
    // Random bytes behind a valid header: no trailer.
    let img = examples().swap_remove(0).1;
    bytes[..32].copy_from_slice(&img[..32]);
    let r = Image::from_vec(bytes);
    assert!(matches!(r, Err(FormatError::BadTrailer { .. })), "{r:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any overwrite of a valid image, digests resealed or not, is refused or read back; the
    /// reader and the verifier never panic and never trust a length they did not check.
    #[test]
    fn arbitrary_damage_never_panics(
        which in 0usize..2,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        resealed in any::<bool>(),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut img = examples().swap_remove(which).1;
        let l = layout(&img).expect("layout");
        // Aim most edits at the metadata and the table, where the parsing is.
        let meta = l.entries.iter().filter(|e| e.flags & SECTION_CHUNKED == 0).map(|e| e.offset as usize).min().unwrap_or(0);
        for (at, v) in edits {
            let at = meta + at.index(img.len() - meta);
            img[at] = v;
        }
        if let Some(c) = cut {
            img.truncate(c.index(img.len()));
        }
        if resealed {
            imagecraft::reseal_all(&mut img);
        }
        if let Ok(image) = Image::from_vec(img) {
            let _ = verify_image(&image);
            for p in &image.checkpoint().processes {
                for run in &p.pages {
                    let _ = image.page_bytes(run);
                }
            }
            for i in 0..image.checkpoint().files.len() {
                let _ = image.file_bytes(psnc_format::model::FileId(i as u32));
            }
        }
    }
}
