//! Section 16 `zombies` (format 1.3): the zombies of a tree keep their ids and exit status
//! through both layout classes, the section is critical and written only when the tree has a
//! zombie, and a zombie that does not fit the tree is refused.

mod imagecraft;

use imagecraft::write_with;
use psnc_format::example::example_checkpoint;
use psnc_format::layout::{SectionEntry, SECTION_CRITICAL};
use psnc_format::model::{Arch, Checkpoint, ExitStatus, Zombie};
use psnc_format::sections::{ExitStatusV1, SectionKind, ZombieV1};
use psnc_format::{FormatError, Image, LayoutClass};

fn both() -> [(Arch, LayoutClass); 3] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
        (Arch::I386, LayoutClass::Bits64),
    ]
}

/// The example (one process, 42) with two zombie children: one exited, one killed.
fn with_zombies(arch: Arch) -> Checkpoint {
    let mut ck = example_checkpoint(arch);
    let p = &ck.processes[0];
    let (pid, pgid, sid) = (p.pid, p.pgid, p.sid);
    ck.zombies = vec![
        Zombie {
            pid: pid + 1,
            ppid: pid,
            pgid: pid + 1,
            sid,
            status: ExitStatus::Exited(255),
        },
        Zombie {
            pid: pid + 2,
            ppid: pid,
            pgid,
            sid,
            status: ExitStatus::Killed {
                signal: 64,
                core: true,
            },
        },
    ];
    ck
}

#[test]
fn zombies_round_trip_in_every_class() {
    for (arch, class) in both() {
        let (img, want) = write_with(with_zombies(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        assert_eq!(image.checkpoint().zombies.len(), 2);
        let e: Vec<&SectionEntry> = image
            .sections()
            .iter()
            .filter(|e| e.kind == SectionKind::Zombies.number())
            .collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
    }
}

#[test]
fn images_without_zombies_have_no_zombies_section() {
    for (arch, class) in both() {
        let (img, want) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert!(image.sections().iter().all(|e| e.kind != 16));
        assert!(image.checkpoint().zombies.is_empty());
        assert_eq!(image.checkpoint(), &want);
    }
}

#[test]
fn a_zombie_that_does_not_fit_the_tree_is_invalid() {
    let k = SectionKind::Zombies;
    let z = |pid, ppid, status| ZombieV1 {
        pid,
        ppid,
        pgid: 42,
        sid: 42,
        status,
    };
    let exited = ExitStatusV1::Exited { code: 1 };
    for (arch, class) in both() {
        for (records, want) in [
            (
                vec![z(43, 7, exited)],
                "zombie 43 has parent 7, which is not a process of the image",
            ),
            (
                vec![z(42, 42, exited)],
                "the image lists pid 42 twice (as a zombie and a process, or as two zombies)",
            ),
            (
                vec![z(43, 42, exited), z(43, 42, exited)],
                "the image lists pid 43 twice",
            ),
            (
                vec![z(43, 42, ExitStatusV1::Exited { code: 300 })],
                "zombie 43 has exit code 300, which no process can end with",
            ),
            (
                vec![z(
                    43,
                    42,
                    ExitStatusV1::Killed {
                        signal: 65,
                        core: false,
                    },
                )],
                "zombie 43 has signal 65, which no process can end with",
            ),
        ] {
            let b = postcard::to_stdvec(&records).expect("encode");
            let (img, _) = write_with(
                example_checkpoint(arch),
                arch,
                class,
                vec![(k.number(), 1, k.flags(), b)],
            );
            let r = Image::from_vec(img);
            assert!(
                matches!(&r, Err(FormatError::Invalid(m)) if m.contains(want)),
                "{want}: {r:?}"
            );
        }
    }
}

#[test]
fn the_python_readers_zombie_bytes_are_what_the_writer_encodes() {
    // spec/reader/test_reader.py decodes these very bytes (ZOMBIES_BODY).
    let records: Vec<ZombieV1> = [
        Zombie {
            pid: 43,
            ppid: 42,
            pgid: 43,
            sid: 42,
            status: ExitStatus::Exited(7),
        },
        Zombie {
            pid: 44,
            ppid: 42,
            pgid: 42,
            sid: 42,
            status: ExitStatus::Killed {
                signal: 15,
                core: true,
            },
        },
    ]
    .iter()
    .map(ZombieV1::from)
    .collect();
    assert_eq!(
        postcard::to_stdvec(&records).expect("encode"),
        [2, 43, 42, 43, 42, 0, 7, 44, 42, 42, 42, 1, 15, 1]
    );
}
