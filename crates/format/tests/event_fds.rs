//! Section 13 `event-fds` (format 1.2): eventfds, timerfds, signalfds and inotify instances keep
//! their state through both layout classes, the section is critical and written only when
//! needed, and a record that does not match its fd, or an event fd without a record, is refused.

mod imagecraft;

use imagecraft::{layout, put_entry, reseal, write_with};
use psnc_format::example::example_checkpoint;
use psnc_format::layout::{SectionEntry, SECTION_CRITICAL};
use psnc_format::model::{Arch, Checkpoint, Fd, FdKind, InotifyWatch, TimerFdState};
use psnc_format::sections::{EventFdStateV1, EventFdV1, SectionKind};
use psnc_format::{FormatError, Image, LayoutClass, FORMAT_MINOR};

fn both() -> [(Arch, LayoutClass); 3] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
        (Arch::I386, LayoutClass::Bits64),
    ]
}

fn is_event_fd(k: &FdKind) -> bool {
    matches!(
        k,
        FdKind::EventFd { .. }
            | FdKind::TimerFd(_)
            | FdKind::SignalFd { .. }
            | FdKind::Inotify { .. }
    )
}

/// The example without its event fds, and without its dup'ed fd (format 1.3).
fn without_event_fds(arch: Arch) -> Checkpoint {
    let mut ck = example_checkpoint(arch);
    ck.fd_shares.clear();
    ck.processes[0].fds.retain(|f| f.fd != 12);
    ck.processes[0].fds.retain(|f| !is_event_fd(&f.kind));
    ck
}

fn body(records: &[EventFdV1]) -> Vec<u8> {
    postcard::to_stdvec(records).expect("encode")
}

#[test]
fn event_fds_round_trip_in_every_class() {
    for (arch, class) in both() {
        let mut ck = example_checkpoint(arch);
        // A periodic monotonic timer near the top of the range, an empty inotify instance.
        ck.processes[0].fds.push(Fd {
            fd: 20,
            flags: 0o4002,
            cloexec: false,
            pos: 0,
            kind: FdKind::TimerFd(TimerFdState {
                clockid: 1,
                settime_flags: 0,
                ticks: u64::MAX,
                value_ns: 999_999_999,
                interval_ns: u64::MAX,
            }),
        });
        ck.processes[0].fds.push(Fd {
            fd: 21,
            flags: 0,
            cloexec: true,
            pos: 0,
            kind: FdKind::Inotify {
                watches: Vec::new(),
            },
        });
        let (img, want) = write_with(ck, arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert_eq!(image.version(), (1, FORMAT_MINOR));
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        let got = &image.checkpoint().processes[0].fds;
        let inotify = got.iter().find(|f| f.fd == 11).expect("fd 11");
        assert_eq!(
            inotify.kind,
            FdKind::Inotify {
                watches: vec![
                    InotifyWatch {
                        wd: 1,
                        mask: 0x100,
                        path: "/home/example".into(),
                        ino: 0x2a3,
                        dev: 0xfe00
                    },
                    InotifyWatch {
                        wd: 3,
                        mask: 0x2,
                        path: "/tmp/example.log".into(),
                        ino: 0x2a4,
                        dev: 0xfe00
                    },
                ]
            }
        );
        let e: Vec<&SectionEntry> = image
            .sections()
            .iter()
            .filter(|e| e.kind == SectionKind::EventFds.number())
            .collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
    }
}

#[test]
fn images_without_event_fds_have_no_event_fds_section() {
    assert_eq!(FORMAT_MINOR, 4);
    for (arch, class) in both() {
        let (img, want) = write_with(without_event_fds(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        // Every section it holds is one a 1.1 reader knows.
        assert!(image.sections().iter().all(|e| e.kind <= 12));
        assert_eq!(image.checkpoint(), &want);
    }
}

#[test]
fn a_reader_that_does_not_know_section_13_refuses_the_image() {
    // Seen from a 1.1 reader, kind 13 is an unknown critical section: relabelling it to a kind
    // this reader does not know either shows what that reader does.
    for (arch, class) in both() {
        let (img, _) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let l = layout(&img).expect("layout");
        let i = l
            .entries
            .iter()
            .position(|e| e.kind == 13)
            .expect("event-fds section");
        let mut old = img.clone();
        put_entry(
            &mut old,
            &l,
            i,
            &SectionEntry {
                kind: 0x7e13,
                ..l.entries[i]
            },
        );
        assert!(reseal(&mut old));
        let r = Image::from_vec(old);
        assert!(
            matches!(r, Err(FormatError::UnknownCriticalSection { kind: 0x7e13, index }) if index == i),
            "{r:?}"
        );
    }
}

#[test]
fn a_record_that_does_not_match_its_fd_is_invalid() {
    let k = SectionKind::EventFds;
    for (arch, class) in both() {
        // fd 4 is a pipe, fd 30 does not exist.
        for (fd, want) in [
            (4, "pid 42 fd 4, which is not a signalfd fd"),
            (30, "pid 42 fd 30, which is not an event fd"),
        ] {
            let b = body(&[EventFdV1 {
                pid: 42,
                fd,
                state: EventFdStateV1::SignalFd { mask: 1 },
            }]);
            let (img, _) = write_with(
                without_event_fds(arch),
                arch,
                class,
                vec![(k.number(), 1, k.flags(), b)],
            );
            let r = Image::from_vec(img);
            assert!(
                matches!(&r, Err(FormatError::Invalid(m)) if m.contains(want)),
                "fd {fd}: {r:?}"
            );
        }
    }
}

#[test]
fn an_event_fd_without_its_record_is_invalid() {
    // The writer's own section is relabelled as an unknown ancillary kind (skipped), so the
    // reader sees the event fds of the fds section without their state.
    for (arch, class) in both() {
        let (mut img, _) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let l = layout(&img).expect("layout");
        let i = l
            .entries
            .iter()
            .position(|e| e.kind == 13)
            .expect("event-fds section");
        put_entry(
            &mut img,
            &l,
            i,
            &SectionEntry {
                kind: 0x7e13,
                flags: 0,
                ..l.entries[i]
            },
        );
        assert!(reseal(&mut img));
        let r = Image::from_vec(img);
        assert!(
            matches!(&r, Err(FormatError::Invalid(m))
                if m == "fd 8 of pid 42 is an eventfd, timerfd, signalfd or inotify fd without its event-fds record"),
            "{r:?}"
        );
    }
}
