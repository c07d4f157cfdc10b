//! Section 12 `epoll` (format 1.1): epoll fds keep their interest list through both layout
//! classes, the section is critical and written only when needed, and a record that does not
//! match an epoll fd is refused.

mod imagecraft;

use imagecraft::{layout, put_entry, reseal, write_with};
use psnc_format::example::example_checkpoint;
use psnc_format::layout::{SectionEntry, SECTION_CRITICAL};
use psnc_format::model::{Arch, Checkpoint, EpollWatch, Fd, FdKind};
use psnc_format::sections::{EpollV1, EpollWatchV1, SectionKind};
use psnc_format::verify::verify_image;
use psnc_format::{FormatError, Image, LayoutClass, FORMAT_MINOR};

fn both() -> [(Arch, LayoutClass); 3] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
        (Arch::I386, LayoutClass::Bits64),
    ]
}

/// The example without its epoll fd, and without its event fds (format 1.2) and its dup'ed fd
/// (format 1.3), so that it holds only 1.0 kinds.
fn without_epoll(arch: Arch) -> Checkpoint {
    let mut ck = example_checkpoint(arch);
    ck.fd_shares.clear();
    ck.processes[0].fds.retain(|f| f.fd != 12);
    ck.processes[0].fds.retain(|f| {
        !matches!(
            f.kind,
            FdKind::Epoll { .. }
                | FdKind::EventFd { .. }
                | FdKind::TimerFd(_)
                | FdKind::SignalFd { .. }
                | FdKind::Inotify { .. }
        )
    });
    ck
}

fn epoll_body(records: &[EpollV1]) -> Vec<u8> {
    postcard::to_stdvec(records).expect("encode")
}

#[test]
fn epoll_watches_round_trip_in_every_class() {
    for (arch, class) in both() {
        let mut ck = example_checkpoint(arch);
        // A second epoll fd with no watches, and one watching the first epoll fd.
        let fds = &mut ck.processes[0].fds;
        fds.push(Fd {
            fd: 20,
            flags: 2,
            cloexec: false,
            pos: 0,
            kind: FdKind::Epoll {
                watches: Vec::new(),
            },
        });
        fds.push(Fd {
            fd: 21,
            flags: 2,
            cloexec: true,
            pos: 0,
            kind: FdKind::Epoll {
                watches: vec![EpollWatch {
                    tfd: 7,
                    events: 0x4000_0001,
                    data: u64::MAX,
                }],
            },
        });
        let (img, want) = write_with(ck, arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        verify_image(&image).expect("verify");
        assert_eq!(image.version(), (1, FORMAT_MINOR));
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        let got = &image.checkpoint().processes[0].fds;
        let fd7 = got.iter().find(|f| f.fd == 7).expect("fd 7");
        assert_eq!(
            fd7.kind,
            FdKind::Epoll {
                watches: vec![
                    EpollWatch {
                        tfd: 4,
                        events: 0x1,
                        data: 0x1122_3344_5566_7788
                    },
                    EpollWatch {
                        tfd: 3,
                        events: 0x8000_0005,
                        data: 3
                    },
                ]
            }
        );
        let e: Vec<&SectionEntry> = image
            .sections()
            .iter()
            .filter(|e| e.kind == SectionKind::Epoll.number())
            .collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
    }
}

#[test]
fn images_without_epoll_fds_have_no_epoll_section() {
    assert_eq!(FORMAT_MINOR, 4);
    for (arch, class) in both() {
        let (img, want) = write_with(without_epoll(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert!(image
            .sections()
            .iter()
            .all(|e| e.kind != SectionKind::Epoll.number()));
        // Every section it holds is one a 1.0 reader knows.
        assert!(image.sections().iter().all(|e| e.kind <= 11));
        assert_eq!(image.checkpoint(), &want);
    }
}

#[test]
fn a_reader_that_does_not_know_section_12_refuses_the_image() {
    // A 1.0 reader does not know kind 12: seen from it, the section is an unknown critical one.
    // Relabelling it to a kind this reader does not know either shows what that reader does.
    for (arch, class) in both() {
        let (img, _) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let l = layout(&img).expect("layout");
        let i = l
            .entries
            .iter()
            .position(|e| e.kind == 12)
            .expect("epoll section");
        assert!(
            l.entries[i].flags & SECTION_CRITICAL != 0,
            "the epoll section must be critical"
        );
        let mut old = img.clone();
        put_entry(
            &mut old,
            &l,
            i,
            &SectionEntry {
                kind: 0x7e11,
                ..l.entries[i]
            },
        );
        assert!(reseal(&mut old));
        let r = Image::from_vec(old);
        assert!(
            matches!(r, Err(FormatError::UnknownCriticalSection { kind: 0x7e11, index }) if index == i),
            "{r:?}"
        );
    }
}

#[test]
fn an_epoll_record_for_a_fd_that_is_not_epoll_is_invalid() {
    let k = SectionKind::Epoll;
    for (arch, class) in both() {
        // fd 4 is a pipe, fd 30 does not exist.
        for fd in [4, 30] {
            let body = epoll_body(&[EpollV1 {
                pid: 42,
                fd,
                watches: vec![EpollWatchV1 {
                    tfd: 3,
                    events: 1,
                    data: 0,
                }],
            }]);
            let (img, _) = write_with(
                without_epoll(arch),
                arch,
                class,
                vec![(k.number(), 1, k.flags(), body)],
            );
            let r = Image::from_vec(img);
            assert!(
                matches!(&r, Err(FormatError::Invalid(m)) if m.contains(&format!("pid 42 fd {fd}, which is not an epoll fd"))),
                "fd {fd}: {r:?}"
            );
        }
        // A record for a process that is not in the image.
        let body = epoll_body(&[EpollV1 {
            pid: 43,
            fd: 7,
            watches: Vec::new(),
        }]);
        let (img, _) = write_with(
            without_epoll(arch),
            arch,
            class,
            vec![(k.number(), 1, k.flags(), body)],
        );
        let r = Image::from_vec(img);
        assert!(
            matches!(&r, Err(FormatError::Invalid(m)) if m.contains("pid 43")),
            "{r:?}"
        );
    }
}

#[test]
fn two_records_or_two_sections_for_one_epoll_fd_are_refused() {
    let k = SectionKind::Epoll;
    for (arch, class) in both() {
        let mut ck = without_epoll(arch);
        ck.processes[0].fds.push(Fd {
            fd: 7,
            flags: 2,
            cloexec: false,
            pos: 0,
            kind: FdKind::Epoll {
                watches: Vec::new(),
            },
        });
        let rec = EpollV1 {
            pid: 42,
            fd: 7,
            watches: Vec::new(),
        };
        // The writer emits a record for fd 7 itself: a copied second section makes two.
        let (img, _) = write_with(
            ck.clone(),
            arch,
            class,
            vec![(
                k.number(),
                1,
                k.flags(),
                epoll_body(std::slice::from_ref(&rec)),
            )],
        );
        let r = Image::from_vec(img);
        assert!(
            matches!(
                r,
                Err(FormatError::SectionCount {
                    kind: "epoll",
                    count: 2
                })
            ),
            "{r:?}"
        );

        // One section with two records for fd 7: the writer's own section is relabelled as an
        // unknown ancillary kind (skipped), the copied one holds the two records.
        let body = epoll_body(&[rec.clone(), rec]);
        let (mut img, _) = write_with(ck, arch, class, vec![(k.number(), 1, k.flags(), body)]);
        let l = layout(&img).expect("layout");
        let own = l
            .entries
            .iter()
            .position(|e| e.kind == k.number())
            .expect("epoll section");
        put_entry(
            &mut img,
            &l,
            own,
            &SectionEntry {
                kind: 0x1ee,
                flags: 0,
                ..l.entries[own]
            },
        );
        assert!(reseal(&mut img));
        let r = Image::from_vec(img);
        assert!(
            matches!(&r, Err(FormatError::Invalid(m)) if m.contains("two records for pid 42 fd 7")),
            "{r:?}"
        );
    }
}
