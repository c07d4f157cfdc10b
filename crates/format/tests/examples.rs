//! The example images of spec/examples/ and the golden images of every released format version.
//!
//! `spec/examples/*.psnc` are what the current writer produces from the synthetic example
//! ([`psnc_format::example::write_example`]); the spec's hex walkthrough and the independent Python
//! reader (spec/reader/) are checked against them. When the writer's output changes, the first test
//! fails: that is a format change, and the spec, the walkthrough and the CHANGELOG must follow.
//! `PSNC_UPDATE_EXAMPLES=1` rewrites the examples after such a deliberate change.
//!
//! `tests/golden/vMAJOR.MINOR/` holds the examples as released with that version. They are never
//! regenerated: every later reader must still open, verify and decode them.

use std::path::{Path, PathBuf};

use psnc_format::example::{example_runs, page_pattern, write_example, write_incremental_example};
use psnc_format::model::{Arch, EpollWatch, FdKind, InotifyWatch, Regs, TimerFdState, VmaKind};
use psnc_format::verify::verify_image;
use psnc_format::{FormatError, Image, LayoutClass};

/// The committed example images: file name, task architecture, layout class.
const EXAMPLES: [(&str, Arch, LayoutClass); 2] = [
    ("example-64.psnc", Arch::X86_64, LayoutClass::Bits64),
    ("example-32.psnc", Arch::I386, LayoutClass::Bits32),
];

/// Every released format version with golden images.
const GOLDEN_VERSIONS: [&str; 5] = ["v1.0", "v1.1", "v1.2", "v1.3", "v1.4"];

/// The incremental examples (format 1.4), each next to its parent, the example of its class.
const INCREMENTAL: [(&str, Arch, LayoutClass); 2] = [
    (
        "example-incremental-64.psnc",
        Arch::X86_64,
        LayoutClass::Bits64,
    ),
    (
        "example-incremental-32.psnc",
        Arch::I386,
        LayoutClass::Bits32,
    ),
];

const UPDATE_VAR: &str = "PSNC_UPDATE_EXAMPLES";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples_dir() -> PathBuf {
    repo_root().join("spec/examples")
}

fn golden_dir(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(version)
}

/// Describes where two byte strings first differ, for a failure message that points at the
/// section that drifted.
fn first_difference(want: &[u8], have: &[u8]) -> String {
    match want.iter().zip(have).position(|(a, b)| a != b) {
        Some(i) => format!(
            "first difference at byte {i:#x} (generated {:#04x}, committed {:#04x})",
            want[i], have[i]
        ),
        None => format!(
            "generated {} bytes, committed {} bytes",
            want.len(),
            have.len()
        ),
    }
}

#[test]
fn committed_examples_match_the_writer() {
    let update = std::env::var_os(UPDATE_VAR).is_some_and(|v| v == "1");
    let mut drifted = Vec::new();
    let full = EXAMPLES.map(|(name, arch, class)| {
        let bytes = write_example(Vec::new(), arch, class).expect("the example must encode");
        (name, bytes)
    });
    let incremental = INCREMENTAL
        .iter()
        .zip(&full)
        .map(|(&(name, arch, class), (_, parent))| {
            let bytes = write_incremental_example(Vec::new(), parent, arch, class)
                .expect("the incremental example must encode");
            (name, bytes)
        });
    for (name, generated) in full.clone().into_iter().chain(incremental) {
        let path = examples_dir().join(name);
        if update {
            std::fs::create_dir_all(examples_dir()).expect("create spec/examples");
            std::fs::write(&path, &generated).expect("write the example image");
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; generate it with {UPDATE_VAR}=1",
                path.display()
            )
        });
        if committed != generated {
            drifted.push(format!(
                "{name}: {}",
                first_difference(&generated, &committed)
            ));
        }
    }
    assert!(
        drifted.is_empty(),
        "the writer's output no longer matches spec/examples/ (format drift):\n  {}\n\
         If this change is deliberate it is a format change: bump the section version or the \
         format minor, update spec/FORMAT.md (and its hex walkthrough) and the CHANGELOG, then \
         regenerate with\n  {UPDATE_VAR}=1 cargo test -p psnc-format --test examples\n\
         Never regenerate tests/golden/: released images must keep decoding.",
        drifted.join("\n  ")
    );
}

/// Opens, verifies and spot-checks one image of the example checkpoint.
fn check_example_image(path: &Path, arch: Arch, class: LayoutClass) {
    let what = path.display();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {what}: {e}"));
    let img = Image::from_vec(bytes).unwrap_or_else(|e| panic!("{what} does not open: {e}"));
    verify_image(&img).unwrap_or_else(|e| panic!("{what} does not verify: {e}"));
    assert_eq!(img.class(), class, "{what}");
    assert_eq!(img.version().0, 1, "{what}");
    // The examples are written as a stream: the trailer is authoritative.
    assert_eq!(img.header().table_offset, 0, "{what}");

    let ck = img.checkpoint();
    assert_eq!(ck.processes.len(), 1, "{what}");
    let p = &ck.processes[0];
    assert_eq!(
        (p.pid, p.comm.as_str(), p.arch),
        (42, "example", arch),
        "{what}"
    );
    assert_eq!(p.vmas.len(), 7, "{what}");
    assert_eq!(p.threads.len(), 1, "{what}");
    let pc = match (&p.threads[0].regs, arch) {
        (Regs::X86_64(r), Arch::X86_64) => r[16],
        (Regs::I386(r), Arch::I386) => u64::from(r[12]),
        (regs, _) => panic!("{what}: registers {regs:?} do not match {arch:?}"),
    };
    let base = p.vmas[0].start;
    assert_eq!(pc, base + 0x1000, "{what}: instruction pointer");
    // From 1.1 on the example has an epoll fd (section 12); the 1.0 golden images have none.
    let has_epoll = img.version() >= (1, 1);
    // From 1.2 on it has an eventfd, a timerfd, a signalfd and an inotify fd (section 13).
    let has_event_fds = img.version() >= (1, 2);
    // From 1.3 on fd 12 is a dup of fd 3, one description (section 14).
    let has_fd_shares = img.version() >= (1, 3);
    assert_eq!(
        p.fds.len(),
        6 + usize::from(has_epoll) + 4 * usize::from(has_event_fds) + usize::from(has_fd_shares),
        "{what}"
    );
    if has_fd_shares {
        let share = |fd: i32| psnc_format::model::FdRef { pid: 42, fd };
        assert_eq!(ck.fd_shares.len(), 1, "{what}");
        assert_eq!(ck.fd_shares[0].fds, [share(3), share(12)], "{what}");
        let pos = |n: i32| p.fds.iter().find(|f| f.fd == n).map(|f| (f.pos, f.flags));
        assert_eq!(pos(12), pos(3), "{what}");
    } else {
        assert!(ck.fd_shares.is_empty(), "{what}");
    }
    if has_event_fds {
        let kinds: Vec<&FdKind> = p
            .fds
            .iter()
            .filter(|f| (8..12).contains(&f.fd))
            .map(|f| &f.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                &FdKind::EventFd {
                    count: 5,
                    semaphore: true
                },
                &FdKind::TimerFd(TimerFdState {
                    clockid: 0,
                    settime_flags: 3,
                    ticks: 1,
                    value_ns: 1_767_225_700_000_000_000,
                    interval_ns: 0,
                }),
                &FdKind::SignalFd {
                    mask: 0x8_0000_0200
                },
                &FdKind::Inotify {
                    watches: vec![
                        InotifyWatch {
                            wd: 1,
                            mask: 0x100,
                            path: "/home/example".into(),
                            ino: 0x2a3,
                            dev: 0xfe00,
                        },
                        InotifyWatch {
                            wd: 3,
                            mask: 0x2,
                            path: "/tmp/example.log".into(),
                            ino: 0x2a4,
                            dev: 0xfe00,
                        },
                    ]
                },
            ],
            "{what}"
        );
    }
    if has_epoll {
        let ep = p
            .fds
            .iter()
            .find(|f| f.fd == 7)
            .unwrap_or_else(|| panic!("{what}: no fd 7"));
        assert_eq!(
            ep.kind,
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
            },
            "{what}"
        );
    }
    assert_eq!(p.signals.actions.len(), 64, "{what}");

    let runs = example_runs(arch);
    assert_eq!(p.pages.len(), runs.len(), "{what}");
    for (run, (addr, pages)) in p.pages.iter().zip(runs) {
        assert_eq!((run.addr, run.pages), (addr, pages), "{what}");
        let stored = img.page_bytes(run).expect("page run inside the page data");
        assert!(
            stored == page_pattern(addr, pages),
            "{what}: page run {addr:#x} holds other bytes"
        );
    }

    let exe = p
        .exe
        .stored
        .unwrap_or_else(|| panic!("{what}: the executable is not stored"));
    let exe_bytes = img.file_bytes(exe).expect("stored executable");
    assert_eq!(exe_bytes.len(), 8192, "{what}");
    assert_eq!(
        p.exe.identity.sha256,
        psnc_format::digest::sha256(exe_bytes),
        "{what}"
    );
    for v in p.vmas.iter().filter(|v| v.kind == VmaKind::File) {
        assert_eq!(
            v.file.as_ref().and_then(|f| f.stored),
            Some(exe),
            "{what}: vma {:#x}",
            v.start
        );
    }
}

#[test]
fn committed_examples_decode_and_verify() {
    for (name, arch, class) in EXAMPLES {
        check_example_image(&examples_dir().join(name), arch, class);
    }
}

#[test]
fn golden_images_of_every_released_version_still_decode() {
    for version in GOLDEN_VERSIONS {
        for (name, arch, class) in EXAMPLES {
            check_example_image(&golden_dir(version).join(name), arch, class);
        }
    }
    for (name, arch, class) in INCREMENTAL {
        check_incremental_image(&golden_dir("v1.4").join(name), arch, class);
    }
}

/// Opens the incremental example with its parent (beside it) and checks that the flattened
/// view holds the full example's pages, the changed run inverted, and its executable.
fn check_incremental_image(path: &Path, arch: Arch, class: LayoutClass) {
    let what = path.display();
    let img = Image::open(path).unwrap_or_else(|e| panic!("{what} does not open: {e}"));
    verify_image(&img).unwrap_or_else(|e| panic!("{what} does not verify alone: {e}"));
    assert_eq!(img.class(), class, "{what}");
    let parent = img.checkpoint().parent.clone().expect("a parent record");
    assert_eq!(parent.pages.len(), example_runs(arch).len() - 1, "{what}");
    assert_eq!(img.checkpoint().files.len(), 1, "{what}");
    assert_eq!(parent.files.len(), 1, "{what}");
    let flat = img
        .with_parents(Some(path), None)
        .unwrap_or_else(|e| panic!("{what} does not flatten: {e}"));
    verify_image(&flat).unwrap_or_else(|e| panic!("{what} flattened does not verify: {e}"));
    assert!(flat.checkpoint().parent.is_none(), "{what}");
    assert_eq!(flat.chain().len(), 1, "{what}");
    let p = &flat.checkpoint().processes[0];
    let runs = example_runs(arch);
    assert_eq!(p.pages.len(), runs.len(), "{what}");
    for (i, (r, &(addr, pages))) in p.pages.iter().zip(&runs).enumerate() {
        assert_eq!((r.addr, r.pages), (addr, pages), "{what}: run {i}");
        let mut want = page_pattern(addr, pages);
        if i == 1 {
            want.iter_mut().for_each(|b| *b = !*b);
        }
        assert!(
            flat.page_bytes(r).expect("page bytes") == want.as_slice(),
            "{what}: run {i}"
        );
    }
    let exe = flat
        .file_bytes(p.exe.stored.expect("stored exe"))
        .expect("exe bytes");
    assert_eq!(exe.len(), 8192, "{what}");
    assert!(
        exe.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8),
        "{what}"
    );
}

#[test]
fn committed_incremental_examples_flatten_with_their_parents() {
    for (name, arch, class) in INCREMENTAL {
        check_incremental_image(&examples_dir().join(name), arch, class);
    }
}

#[test]
fn an_incremental_example_without_its_parent_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, _, _) in INCREMENTAL {
        let lone = dir.path().join(name);
        std::fs::copy(examples_dir().join(name), &lone).expect("copy");
        let img = Image::open(&lone).expect("opens alone");
        let e = img.with_parents(Some(&lone), None).unwrap_err();
        assert!(matches!(e, FormatError::ParentMissing { .. }), "{e}");
        // Another image in the parent's place: refused by its digest.
        let other = if name.contains("64") {
            "example-32.psnc"
        } else {
            "example-64.psnc"
        };
        let parent_name = if name.contains("64") {
            "example-64.psnc"
        } else {
            "example-32.psnc"
        };
        std::fs::copy(examples_dir().join(other), dir.path().join(parent_name)).expect("copy");
        let img = Image::open(&lone).expect("opens alone");
        let e = img.with_parents(Some(&lone), None).unwrap_err();
        assert!(matches!(e, FormatError::ParentMismatch { .. }), "{e}");
        // The right parent, damaged in its page data: refused, naming it.
        let mut bad = std::fs::read(examples_dir().join(parent_name)).expect("read");
        let off = Image::from_vec(bad.clone())
            .expect("open")
            .sections()
            .iter()
            .find(|e| e.kind == psnc_format::SectionKind::PageData.number())
            .expect("page data")
            .offset as usize;
        bad[off + 5] ^= 1;
        std::fs::write(dir.path().join(parent_name), &bad).expect("write");
        let img = Image::open(&lone).expect("opens alone");
        let e = img.with_parents(Some(&lone), None).unwrap_err();
        assert!(
            matches!(&e, FormatError::Parent { source, .. } if matches!(**source, FormatError::DigestMismatch { .. })),
            "{e}"
        );
        std::fs::remove_file(dir.path().join(parent_name)).expect("rm");
    }
}

#[test]
fn a_flipped_byte_in_an_example_is_detected() {
    let bytes = std::fs::read(examples_dir().join("example-32.psnc")).expect("read the example");
    let img = Image::from_vec(bytes.clone()).expect("open");
    // One byte inside every section: metadata sections fail at open, bulk data at verify, and
    // both name the damaged section.
    for (i, e) in img.sections().iter().enumerate() {
        if e.length == 0 {
            continue;
        }
        let mut bad = bytes.clone();
        let at = e.offset + e.length / 2;
        bad[at as usize] ^= 0x01;
        let name = psnc_format::sections::kind_name(e.kind);
        let err = Image::from_vec(bad)
            .and_then(|img| verify_image(&img))
            .err();
        assert!(
            matches!(&err, Some(FormatError::DigestMismatch { what, offset, end })
                if what.contains(&name) && *offset <= at && at < *end),
            "a flipped byte at {at:#x} in section {i} ({name}) gave {err:?}"
        );
    }
}
