//! The versioning rules: what a 1.x reader accepts and what it refuses, with the exact error.
//!
//! - every minor of major 1 is read; a newer minor is read when every section this reader does
//!   not know is ancillary (unknown ancillary sections are skipped, the model is unchanged);
//! - an unknown critical section, or a known critical section in a newer section version, makes
//!   the reader refuse the image, naming the section;
//! - another major version is refused with both versions in the error.

mod imagecraft;

use imagecraft::{layout, put_entry, reseal, reseal_all, write_with, Extra};
use psnc_format::example::example_checkpoint;
use psnc_format::layout::{SectionEntry, SECTION_CHUNKED, SECTION_CRITICAL, SECTION_SAFE_TO_COPY};
use psnc_format::model::{Arch, Checkpoint};
use psnc_format::sections::SectionKind;
use psnc_format::verify::verify_image;
use psnc_format::{FormatError, Image, LayoutClass, FORMAT_MAJOR, FORMAT_MINOR};

/// The example image with `extra` sections appended after the known ones; returns the bytes and
/// the model as written.
fn build(arch: Arch, class: LayoutClass, extra: Vec<Extra>) -> (Vec<u8>, Checkpoint) {
    write_with(example_checkpoint(arch), arch, class, extra)
}

fn both() -> [(Arch, LayoutClass); 2] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
    ]
}

/// Sets the header's version and reseals the image digest.
fn set_version(img: &mut [u8], major: u16, minor: u16) {
    img[8..10].copy_from_slice(&major.to_le_bytes());
    img[10..12].copy_from_slice(&minor.to_le_bytes());
    assert!(reseal(img));
}

fn index_of(img: &[u8], kind: u32) -> usize {
    layout(img)
        .expect("layout")
        .entries
        .iter()
        .position(|e| e.kind == kind)
        .expect("section present")
}

#[test]
fn this_reader_reads_what_it_writes_and_every_older_minor() {
    for (arch, class) in both() {
        let (img, want) = build(arch, class, Vec::new());
        assert_eq!(
            Image::from_vec(img.clone()).expect("open").version(),
            (FORMAT_MAJOR, FORMAT_MINOR)
        );
        for minor in 0..=FORMAT_MINOR {
            let mut old = img.clone();
            set_version(&mut old, FORMAT_MAJOR, minor);
            assert_eq!(
                Image::from_vec(old).expect("older minor").checkpoint(),
                &want
            );
        }
    }
}

#[test]
fn another_major_is_refused_with_both_versions() {
    for (arch, class) in both() {
        let (img, _) = build(arch, class, Vec::new());
        for (major, minor) in [(2u16, 0u16), (2, 7), (0, 9), (u16::MAX, u16::MAX)] {
            let mut bad = img.clone();
            // Resealed or not: the major is checked before anything else in the header.
            set_version(&mut bad, major, minor);
            let r = Image::from_vec(bad);
            assert!(
                matches!(r, Err(FormatError::UnsupportedMajor { found_major, found_minor, supported: 1 })
                    if found_major == major && found_minor == minor),
                "{major}.{minor}: {r:?}"
            );
        }
        let mut bad = img.clone();
        bad[8] = 2;
        let e = Image::from_vec(bad).expect_err("2.x unresealed");
        assert_eq!(
            e.to_string(),
            format!(
                "image format version 2.{FORMAT_MINOR} is not supported: this reader supports major version 1; use a newer psnc-cr"
            )
        );
    }
}

#[test]
fn a_newer_minor_with_only_known_sections_is_read() {
    for (arch, class) in both() {
        let (mut img, want) = build(arch, class, Vec::new());
        set_version(&mut img, 1, 3);
        let image = Image::from_vec(img).expect("1.3 opens");
        assert_eq!(image.version(), (1, 3));
        assert_eq!(image.checkpoint(), &want);
        verify_image(&image).expect("verifies");
    }
}

#[test]
fn unknown_ancillary_sections_are_skipped_in_this_and_newer_minors() {
    for (arch, class) in both() {
        let (plain, want) = build(arch, class, Vec::new());
        let plain = Image::from_vec(plain).expect("plain");
        let extra = vec![
            (0x100, 1, 0, b"an ancillary note".to_vec()),
            (0x101, 9, SECTION_SAFE_TO_COPY, vec![0xff; 1000]),
            // An empty one, and one with a chunked digest (fixed below by reseal_all).
            (0x102, 1, 0, Vec::new()),
            (
                0x103,
                2,
                SECTION_CHUNKED | SECTION_SAFE_TO_COPY,
                vec![7; 3000],
            ),
        ];
        let (mut img, written) = build(arch, class, extra);
        assert_eq!(written, want);
        assert!(reseal_all(&mut img));
        for minor in [0, 1, 0x7fff] {
            let mut img = img.clone();
            set_version(&mut img, 1, minor);
            let image = Image::from_vec(img).expect("unknown ancillary sections are skipped");
            assert_eq!(image.checkpoint(), plain.checkpoint(), "1.{minor}");
            assert_eq!(image.page_data(), plain.page_data());
            assert_eq!(image.file_data(), plain.file_data());
            assert_eq!(image.sections().len(), plain.sections().len() + 4);
            verify_image(&image).expect("verifies, the chunked unknown section included");
        }
    }
}

#[test]
fn an_unknown_ancillary_chunked_section_is_still_verified() {
    let (mut img, _) = build(
        Arch::X86_64,
        LayoutClass::Bits64,
        vec![(0x103, 1, SECTION_CHUNKED, vec![7; 3000])],
    );
    assert!(reseal_all(&mut img));
    let i = index_of(&img, 0x103);
    let e = layout(&img).expect("layout").entries[i];
    img[e.offset as usize + 100] ^= 1;
    let image =
        Image::from_vec(img).expect("opens: data of chunked sections is checked by verify_data");
    let r = image.verify_data();
    assert!(
        matches!(&r, Err(FormatError::DigestMismatch { what, offset, .. }) if what == "section unknown kind 0x103" && *offset == e.offset),
        "{r:?}"
    );
}

#[test]
fn an_unknown_critical_section_is_refused_naming_it() {
    for (arch, class) in both() {
        for minor in [0u16, 1] {
            let extra = vec![
                (0x100, 1, 0, b"skippable".to_vec()),
                (
                    0x2a5,
                    1,
                    SECTION_CRITICAL | SECTION_SAFE_TO_COPY,
                    b"must understand".to_vec(),
                ),
            ];
            let (mut img, _) = build(arch, class, extra);
            set_version(&mut img, 1, minor);
            let want = index_of(&img, 0x2a5);
            let r = Image::from_vec(img);
            assert!(
                matches!(r, Err(FormatError::UnknownCriticalSection { kind: 0x2a5, index }) if index == want),
                "1.{minor}: {r:?}"
            );
        }
    }
}

#[test]
fn a_known_critical_section_in_a_newer_version_is_refused() {
    for (arch, class) in both() {
        let (img, _) = build(arch, class, Vec::new());
        for kind in [
            SectionKind::Vmas,
            SectionKind::Threads,
            SectionKind::PageData,
            SectionKind::PageIndex,
        ] {
            let l = layout(&img).expect("layout");
            let i = index_of(&img, kind.number());
            let mut bad = img.clone();
            put_entry(
                &mut bad,
                &l,
                i,
                &SectionEntry {
                    version: 2,
                    ..l.entries[i]
                },
            );
            assert!(reseal(&mut bad));
            let r = Image::from_vec(bad);
            assert!(
                matches!(r, Err(FormatError::UnsupportedSectionVersion { kind: k, found: 2, supported: 1 }) if k == kind.name()),
                "{kind}: {r:?}"
            );
        }
    }
}

#[test]
fn a_known_ancillary_section_in_a_newer_version_is_skipped() {
    // A future chunk-digests v2 must not be decoded as v1: the image opens, the data still
    // verifies (through the section digests), the v2 list is simply not used.
    for (arch, class) in both() {
        let (img, want) = build(arch, class, Vec::new());
        let l = layout(&img).expect("layout");
        let mut newer = img.clone();
        for (i, e) in l.entries.iter().enumerate() {
            if e.kind == SectionKind::ChunkDigests.number() {
                put_entry(&mut newer, &l, i, &SectionEntry { version: 2, ..*e });
            }
        }
        assert!(reseal(&mut newer));
        let image = Image::from_vec(newer).expect("opens");
        assert_eq!(image.checkpoint(), &want);
        assert!(
            image.chunk_digests(SectionKind::PageData).is_none(),
            "a v2 list must not be read as v1"
        );
        verify_image(&image).expect("verifies");
        assert!(Image::from_vec(img)
            .expect("v1")
            .chunk_digests(SectionKind::PageData)
            .is_some());
    }
}

#[test]
fn a_required_section_missing_or_repeated_is_refused() {
    for (arch, class) in both() {
        let (img, _) = build(arch, class, Vec::new());
        // Missing: relabel the fds section as an unknown ancillary kind.
        let l = layout(&img).expect("layout");
        let i = index_of(&img, SectionKind::Fds.number());
        let mut bad = img.clone();
        put_entry(
            &mut bad,
            &l,
            i,
            &SectionEntry {
                kind: 0x1fd,
                flags: 0,
                ..l.entries[i]
            },
        );
        assert!(reseal(&mut bad));
        let r = Image::from_vec(bad);
        assert!(
            matches!(
                r,
                Err(FormatError::SectionCount {
                    kind: "fds",
                    count: 0
                })
            ),
            "{r:?}"
        );

        // Repeated: a second identity section, valid in itself.
        let image = Image::from_vec(img.clone()).expect("open");
        let body = image
            .section_bytes(index_of(&img, SectionKind::Identity.number()))
            .expect("body")
            .to_vec();
        let k = SectionKind::Identity;
        let (bad, _) = build(arch, class, vec![(k.number(), 1, k.flags(), body)]);
        let r = Image::from_vec(bad);
        assert!(
            matches!(
                r,
                Err(FormatError::SectionCount {
                    kind: "identity",
                    count: 2
                })
            ),
            "{r:?}"
        );
    }
}

#[test]
fn a_big_endian_or_unknown_class_image_is_refused() {
    let (img, _) = build(Arch::X86_64, LayoutClass::Bits64, Vec::new());
    let mut bad = img.clone();
    bad[13] = 2;
    assert!(reseal(&mut bad));
    assert!(matches!(
        Image::from_vec(bad),
        Err(FormatError::BadByteOrder(2))
    ));
    let mut bad = img.clone();
    bad[12] = 3;
    assert!(matches!(
        Image::from_vec(bad),
        Err(FormatError::BadClass(3))
    ));
    // A 64-bit image relabelled 32-bit: the trailer is read at the wrong width and does not fit.
    let mut bad = img;
    bad[12] = 1;
    let r = Image::from_vec(bad);
    assert!(
        matches!(&r, Err(FormatError::Truncated { what, .. }) if what.starts_with("section table")),
        "{r:?}"
    );
}
