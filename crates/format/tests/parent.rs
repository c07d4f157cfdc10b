//! The `parent` section of incremental images (format 1.4, spec 8.24): what a reader refuses
//! in it, and the section's round trip in both layout classes.

use psnc_format::example::{example_checkpoint, example_runs, page_pattern};
use psnc_format::model::{Arch, Checkpoint, Parent, ParentRun};
use psnc_format::{FormatError, Image, ImageWriter, LayoutClass};

/// The example with only its first run stored and `runs` as the parent's.
fn with_parent(arch: Arch, class: LayoutClass, runs: Vec<ParentRun>) -> Vec<u8> {
    let mut ck: Checkpoint = example_checkpoint(arch);
    let mut w = ImageWriter::new(Vec::new(), class).expect("writer");
    let (addr, pages) = example_runs(arch)[0];
    let run = w
        .write_pages(addr, &page_pattern(addr, pages))
        .expect("pages");
    ck.processes[0].pages.push(run);
    ck.parent = Some(Parent {
        digest: [7; 32],
        path: "/images/parent.psnc".into(),
        pages: runs,
        files: Vec::new(),
    });
    w.finish(ck).expect("finish")
}

fn run(addr: u64, pages: u64) -> ParentRun {
    ParentRun {
        pid: 42,
        addr,
        pages,
    }
}

#[test]
fn the_parent_section_round_trips_in_both_classes() {
    for (arch, class) in [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
    ] {
        let rest: Vec<ParentRun> = example_runs(arch)[1..]
            .iter()
            .map(|&(a, p)| run(a, p))
            .collect();
        let img = Image::from_vec(with_parent(arch, class, rest.clone())).expect("open");
        let p = img.checkpoint().parent.clone().expect("parent");
        assert_eq!(p.pages, rest);
        assert_eq!(p.digest, [7; 32]);
        assert_eq!(p.path, "/images/parent.psnc");
        assert_eq!(img.version(), (1, 4));
    }
}

#[test]
fn bad_parent_runs_are_refused_at_open() {
    let arch = Arch::X86_64;
    let runs = example_runs(arch);
    let own = runs[0].0;
    let other = runs[1].0;
    let cases: Vec<(Vec<ParentRun>, &str)> = vec![
        (vec![run(own, 1)], "overlaps a page run stored in the image"),
        (vec![run(0x10, 1)], "empty or not page-aligned"),
        (vec![run(other, 0)], "empty or not page-aligned"),
        (vec![run(0x1000, 1)], "lies in no vma"),
        (
            vec![run(other, 1), run(other, 1)],
            "overlaps or is out of order",
        ),
        (
            vec![ParentRun {
                pid: 9,
                addr: other,
                pages: 1,
            }],
            "not in the image",
        ),
    ];
    for (bad, want) in cases {
        let e = Image::from_vec(with_parent(arch, LayoutClass::Bits64, bad.clone())).unwrap_err();
        assert!(
            matches!(&e, FormatError::Invalid(m) if m.contains(want)),
            "{bad:?}: {e}"
        );
    }
}

/// Found by the fuzzer: an own run whose end overflows must be refused, not panic, while the
/// parent runs are checked against it (the model check that refuses it comes later).
#[test]
fn an_own_run_that_overflows_is_refused_without_a_panic() {
    let arch = Arch::X86_64;
    let mut ck: Checkpoint = example_checkpoint(arch);
    let mut w = ImageWriter::new(Vec::new(), LayoutClass::Bits64).expect("writer");
    let (addr, pages) = example_runs(arch)[0];
    let mut run = w
        .write_pages(addr, &page_pattern(addr, pages))
        .expect("pages");
    run.pages = u64::MAX / 2;
    ck.processes[0].pages.push(run);
    ck.parent = Some(Parent {
        digest: [7; 32],
        path: "p".into(),
        pages: vec![ParentRun {
            pid: 42,
            addr: u64::MAX - 4095,
            pages: 1,
        }],
        files: Vec::new(),
    });
    let bytes = w.finish(ck).expect("finish");
    assert!(Image::from_vec(bytes).is_err());
}
