//! Section 14 `fd-shares` (format 1.3): the open file descriptions held by two or more fds come
//! back through both layout classes, the section is critical and written only when some
//! description is shared, a reader that does not know it refuses the image, and a group that
//! cannot be one description is refused with its exact message.

mod imagecraft;

use imagecraft::{layout, put_entry, reseal, write_with};
use psnc_format::example::example_checkpoint;
use psnc_format::layout::{SectionEntry, SECTION_CRITICAL};
use psnc_format::model::{Arch, Checkpoint, FdRef, FdShare};
use psnc_format::sections::{FdRefV1, FdShareV1, SectionKind};
use psnc_format::{FormatError, Image, LayoutClass};

fn both() -> [(Arch, LayoutClass); 2] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
    ]
}

fn unshared(arch: Arch) -> Checkpoint {
    let mut ck = example_checkpoint(arch);
    ck.fd_shares.clear();
    ck
}

fn body(groups: &[&[(u32, i32)]]) -> Vec<u8> {
    let v: Vec<FdShareV1> = groups
        .iter()
        .map(|g| FdShareV1 {
            fds: g.iter().map(|&(pid, fd)| FdRefV1 { pid, fd }).collect(),
        })
        .collect();
    postcard::to_stdvec(&v).expect("encode")
}

#[test]
fn shares_round_trip_in_every_class_as_a_critical_section() {
    for (arch, class) in both() {
        let (img, want) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert_eq!(image.checkpoint(), &want);
        assert_eq!(
            image.checkpoint().fd_shares,
            [FdShare {
                fds: vec![FdRef { pid: 42, fd: 3 }, FdRef { pid: 42, fd: 12 }]
            }]
        );
        let e: Vec<&SectionEntry> = image
            .sections()
            .iter()
            .filter(|e| e.kind == SectionKind::FdShares.number())
            .collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
    }
}

#[test]
fn images_without_shared_descriptions_have_no_fd_shares_section() {
    for (arch, class) in both() {
        let (img, want) = write_with(unshared(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert!(image.sections().iter().all(|e| e.kind != 14));
        assert_eq!(image.checkpoint(), &want);
    }
}

#[test]
fn a_reader_without_kind_14_refuses_an_image_with_shares() {
    // What a 1.2 reader sees: a critical section of a kind it does not know.
    for (arch, class) in both() {
        let (mut img, _) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let l = layout(&img).expect("layout");
        let i = l
            .entries
            .iter()
            .position(|e| e.kind == 14)
            .expect("fd-shares");
        put_entry(
            &mut img,
            &l,
            i,
            &SectionEntry {
                kind: 0x7e14,
                ..l.entries[i]
            },
        );
        assert!(reseal(&mut img));
        let r = Image::from_vec(img);
        assert!(
            matches!(r, Err(FormatError::UnknownCriticalSection { kind: 0x7e14, index }) if index == i),
            "{r:?}"
        );
    }
}

#[test]
fn a_group_that_cannot_be_one_description_is_invalid() {
    let k = SectionKind::FdShares;
    // Example fds: 3 and 12 the log file (one description), 4 and 5 the two ends of a pipe.
    for (groups, want) in [
        (
            &[&[(42, 3)][..]][..],
            "fd-shares group 0 has 1 fd(s); a group has two or more",
        ),
        (
            &[&[(42, 3), (42, 30)][..]][..],
            "fd-shares group 0 names fd 30 of pid 42, which is not in the image",
        ),
        (
            &[&[(42, 3), (43, 3)][..]][..],
            "fd-shares group 0 names fd 3 of pid 43, which is not in the image",
        ),
        (
            &[&[(42, 3), (42, 12)][..], &[(42, 12), (42, 3)][..]][..],
            "fd 12 of pid 42 is in the fd-shares section twice",
        ),
        (
            &[&[(42, 4), (42, 5)][..]][..],
            "fd-shares group 0: fd 4 of pid 42 and fd 5 of pid 42 differ in kind, flags or \
             offset, so they cannot be one open file description",
        ),
    ] {
        for (arch, class) in both() {
            let (img, _) = write_with(
                unshared(arch),
                arch,
                class,
                vec![(k.number(), 1, k.flags(), body(groups))],
            );
            let r = Image::from_vec(img);
            assert!(
                matches!(&r, Err(FormatError::Invalid(m)) if m == want),
                "{groups:?}: {r:?}"
            );
        }
    }
}
