//! The psnc_imgtool library: typed results and errors that the binary's text hides.

mod common;

use common::*;
use psnc_format::layout::{HEADER_FLAG_STREAMED, SECTION_SAFE_TO_COPY};
use psnc_format::model::{Arch, Regs};
use psnc_format::{FormatError, Image, ImageWriter, LayoutClass, SectionKind};
use psnc_imgtool::convert::{check_fits, convert_to_path, convert_to_writer};
use psnc_imgtool::diff::{
    diff_images, diff_models, parse_ignore, DiffOptions, IgnoreRule, PatternPart,
};
use psnc_imgtool::memory::{Missing, ProcessMemory, Segment};
use psnc_imgtool::progress::Progress;
use psnc_imgtool::verify::{verify_arg, verify_opened, Check};
use psnc_imgtool::{dump, Error};

fn section_offset(bytes: &[u8], kind: SectionKind) -> usize {
    let img = Image::from_vec(bytes.to_vec()).expect("open");
    let e = img
        .sections()
        .iter()
        .find(|e| e.kind == kind.number())
        .copied()
        .expect("section");
    (e.offset + e.length / 2) as usize
}

#[test]
fn verify_reports_the_first_failure_typed() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = example(Arch::I386, LayoutClass::Bits32);
    let r = verify_opened(&Image::from_vec(good.clone()).expect("open"), "good");
    assert!(r.valid && r.failure.is_none(), "{}", r.render());

    let mut bad = good.clone();
    bad[section_offset(&good, SectionKind::PageData)] ^= 1;
    let r = verify_arg(
        save(dir.path(), "p.psnc", &bad).to_str().expect("utf8"),
        None,
    )
    .expect("readable");
    assert!(!r.valid);
    assert!(
        matches!(&r.failure, Some((Check::BulkDigests, FormatError::DigestMismatch { what, .. })) if what == "section page-data, chunk 0"),
        "{:?}",
        r.failure
    );

    let mut bad = good.clone();
    bad[section_offset(&good, SectionKind::Identity)] ^= 1;
    let r = verify_arg(
        save(dir.path(), "i.psnc", &bad).to_str().expect("utf8"),
        None,
    )
    .expect("readable");
    assert!(
        matches!(&r.failure, Some((Check::Structure, FormatError::DigestMismatch { what, .. })) if what == "section identity"),
        "{:?}",
        r.failure
    );

    let missing = dir.path().join("missing");
    assert!(matches!(
        verify_arg(missing.to_str().expect("utf8"), None),
        Err(Error::Image {
            source: FormatError::Io { .. },
            ..
        })
    ));
}

#[test]
fn convert_refusal_is_typed_and_names_the_first_field() {
    let dir = tempfile::tempdir().expect("tmp");
    let img = Image::from_vec(example(Arch::X86_64, LayoutClass::Bits64)).expect("open");
    let fits = check_fits(&img, LayoutClass::Bits32);
    assert!(
        matches!(&fits, Err(FormatError::FieldTooWide { field, value: 0x7ffc_0000_0f00, bits: 32 }) if field == "process 42 mm.start_stack"),
        "{fits:?}"
    );
    assert!(check_fits(&img, LayoutClass::Bits64).is_ok());
    let out = dir.path().join("out.psnc");
    let r = convert_to_path(&img, "x64", LayoutClass::Bits32, &out);
    assert!(
        matches!(&r, Err(Error::DoesNotFit { to: LayoutClass::Bits32, source: FormatError::FieldTooWide { field, .. }, .. }) if field == "process 42 mm.start_stack"),
        "{r:?}"
    );
    assert_eq!(
        r.map(|_| ()).map_err(|e| e.exit_status()),
        Err(psnc_cli::Exit::Refused)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        0,
        "nothing may be left behind"
    );
}

fn with_unknown_sections(safe_only: bool) -> Vec<u8> {
    let w = ImageWriter::new(Vec::new(), LayoutClass::Bits32).expect("writer");
    let (mut w, ck) = fill_example(w, Arch::I386, |_, _| {});
    w.copy_unknown_section(0x1000, 3, SECTION_SAFE_TO_COPY, b"carry me over".to_vec());
    if !safe_only {
        w.copy_unknown_section(0x1001, 1, 0, b"drop me".to_vec());
    }
    w.finish(ck).expect("finish")
}

#[test]
fn convert_carries_unknown_sections_only_when_safe_to_copy() {
    let input = Image::from_vec(with_unknown_sections(false))
        .expect("ancillary unknown sections are skipped");
    let (out, report) =
        convert_to_writer(&input, "in", LayoutClass::Bits64, Vec::new()).expect("convert");
    // The unknown sections follow the known ones, whose count depends on the example's contents.
    let known = input.sections().len() - 2;
    assert_eq!(
        report.copied_sections,
        [format!("section {known} (unknown kind 0x1000, version 3)")]
    );
    assert_eq!(
        report.dropped_sections,
        [format!(
            "section {} (unknown kind 0x1001, version 1): unknown and not safe to copy",
            known + 1
        )]
    );
    let out = Image::from_vec(out).expect("open converted");
    let kinds: Vec<u32> = out.sections().iter().map(|e| e.kind).collect();
    assert!(!kinds.contains(&0x1001));
    let i = kinds
        .iter()
        .position(|k| *k == 0x1000)
        .expect("carried over");
    assert_eq!(out.section_bytes(i), Some(&b"carry me over"[..]));
    assert_eq!(
        (out.sections()[i].version, out.sections()[i].flags),
        (3, SECTION_SAFE_TO_COPY)
    );
    // The regenerated chunk digests are there, once per chunked section.
    let digests = kinds
        .iter()
        .filter(|k| **k == SectionKind::ChunkDigests.number())
        .count();
    assert_eq!(digests, 2);

    // With only a safe-to-copy section, the round trip is still byte-identical.
    let original = with_unknown_sections(true);
    let img = Image::from_vec(original.clone()).expect("open");
    let (wide, _) = convert_to_writer(&img, "in", LayoutClass::Bits64, Vec::new()).expect("to 64");
    let (back, _) = convert_to_writer(
        &Image::from_vec(wide).expect("open"),
        "wide",
        LayoutClass::Bits32,
        Vec::new(),
    )
    .expect("to 32");
    assert!(
        back == original,
        "round trip with an unknown section changed the bytes"
    );
}

#[test]
fn verify_and_convert_check_the_digest_of_unknown_sections() {
    let mut bytes = with_unknown_sections(true);
    let img = Image::from_vec(bytes.clone()).expect("open");
    let e = img
        .sections()
        .iter()
        .find(|e| e.kind == 0x1000)
        .copied()
        .expect("unknown section");
    bytes[e.offset as usize] ^= 1;
    let img = Image::from_vec(bytes).expect("an unknown ancillary section is not checked at open");
    let r = verify_opened(&img, "x");
    assert!(
        matches!(&r.failure, Some((Check::BulkDigests, FormatError::DigestMismatch { what, .. })) if what == "section unknown kind 0x1000"),
        "{:?}",
        r.failure
    );
    let c = convert_to_writer(&img, "x", LayoutClass::Bits64, Vec::new());
    assert!(
        matches!(
            c,
            Err(Error::InvalidInput {
                source: FormatError::DigestMismatch { .. },
                ..
            })
        ),
        "{c:?}"
    );
}

#[test]
fn convert_keeps_a_seekable_image_seekable_and_round_trips_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let original = example_seekable(Arch::I386, LayoutClass::Bits32);
    let img = Image::from_vec(original.clone()).expect("open");
    assert_eq!(img.header().flags & HEADER_FLAG_STREAMED, 0);
    let wide = dir.path().join("wide.psnc");
    let report = convert_to_path(&img, "in", LayoutClass::Bits64, &wide).expect("to 64");
    assert!(!report.streamed);
    let w = Image::open(&wide).expect("open");
    assert_eq!(w.header().flags & HEADER_FLAG_STREAMED, 0);
    assert_eq!(w.header().table_offset, w.trailer().table_offset);
    let back = dir.path().join("back.psnc");
    convert_to_path(&w, "wide", LayoutClass::Bits32, &back).expect("to 32");
    assert!(std::fs::read(&back).expect("read") == original);
}

#[test]
fn memory_segments_say_what_is_stored_and_why_not() {
    let img = Image::from_vec(example(Arch::X86_64, LayoutClass::Bits64)).expect("open");
    let mem = ProcessMemory::new(&img, "x", None).expect("first process");
    let segs = mem.segments(0x40_2000, 0x40_6000).expect("segments");
    let shape: Vec<(u64, u64, Option<Missing>)> = segs
        .iter()
        .map(|s| match s {
            Segment::Stored { start, bytes } => (*start, start + bytes.len() as u64, None),
            Segment::Missing { start, end, why } => (*start, *end, Some(why.clone())),
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                0x40_2000,
                0x40_3000,
                Some(Missing::FileBacked {
                    path: "/usr/bin/example".into(),
                    offset: 0x2000
                })
            ),
            (0x40_3000, 0x40_4000, None),
            (0x40_4000, 0x40_5000, Some(Missing::Unmapped)),
            (0x40_5000, 0x40_6000, None),
        ]
    );
    let bytes = mem.read(0x40_2fff, 2).expect("read");
    assert_eq!(
        bytes,
        [
            None,
            Some(psnc_format::example::page_pattern(0x40_3000, 1)[0])
        ]
    );
    assert!(matches!(
        ProcessMemory::new(&img, "x", Some(7)),
        Err(Error::NoSuchPid { pid: 7, ref available, .. }) if available == &[42]
    ));
    assert!(matches!(mem.search(b"", 10, 16), Err(Error::EmptyPattern)));
    assert_eq!(mem.search(b"pqrs", 1, 16).expect("search").len(), 1);
    assert!(matches!(
        dump::addr_dump(&img, "x", None, u64::MAX - 1, 4),
        Err(Error::AddressOverflow { .. })
    ));
    assert!(matches!(
        dump::parse_hex_pattern("0x4g"),
        Err(Error::BadHex { .. })
    ));
    assert_eq!(
        dump::parse_hex_pattern("7f 45:4c_46").expect("hex"),
        b"\x7fELF"
    );
}

#[test]
fn diff_reports_paths_and_byte_buffers_precisely() {
    let a = Image::from_vec(example(Arch::X86_64, LayoutClass::Bits64)).expect("open");
    let b = Image::from_vec(example_with(Arch::X86_64, LayoutClass::Bits64, |ck, _| {
        let t = &mut ck.processes[0].threads[0];
        if let Regs::X86_64(r) = &mut t.regs {
            r[10] = 7; // rax
        }
        t.xsave[0x10] = 1;
    }))
    .expect("open");
    let d = diff_models(a.checkpoint(), b.checkpoint(), &DiffOptions::default());
    let lines: Vec<(String, String)> = d
        .iter()
        .map(|f| (f.path.clone(), f.detail.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (
                "processes[0].threads[0].regs.rax".to_string(),
                "0x0 -> 0x7".to_string()
            ),
            (
                "processes[0].threads[0].xsave".to_string(),
                "1 of 576 bytes differ, first at offset 0x10: 0x00 -> 0x01".to_string()
            ),
        ]
    );
    let r = diff_images(&a, &a, &DiffOptions::default()).expect("diff");
    assert!(r.is_equal() && r.render().is_empty());
}

#[test]
fn ignore_rules_parse_and_refuse_nonsense() {
    let key = |s: &str| PatternPart::Key(s.into());
    assert_eq!(
        parse_ignore("ppid").expect("key"),
        IgnoreRule::Key("ppid".into())
    );
    assert_eq!(parse_ignore("memory").expect("memory"), IgnoreRule::Memory);
    assert_eq!(
        parse_ignore("identity").expect("identity"),
        IgnoreRule::Path(vec![key("identity")])
    );
    assert_eq!(
        parse_ignore("processes[*].threads[0].regs").expect("path"),
        IgnoreRule::Path(vec![
            key("processes"),
            PatternPart::AnyIndex,
            key("threads"),
            PatternPart::Index(0),
            key("regs")
        ])
    );
    for bad in ["", "a[", "[0]", "a[x]", "a..b", "a[0]b"] {
        assert!(
            matches!(parse_ignore(bad), Err(Error::BadIgnore { .. })),
            "{bad:?} accepted"
        );
    }
    let opts = DiffOptions::from_args(&["identity,ppid", "itimers"]).expect("rules");
    assert_eq!(opts.ignore.len(), 3);
}

#[test]
fn progress_bars_stay_hidden_for_small_work_and_off_a_terminal() {
    use std::io::IsTerminal;
    assert!(!Progress::bytes(4096, "small").is_visible());
    if !std::io::stderr().is_terminal() {
        assert!(!Progress::bytes(1 << 40, "huge").is_visible());
    }
}

#[test]
fn rseq_rule_masks_only_the_kernel_written_rseq_fields() {
    use psnc_format::example::example_checkpoint;
    use psnc_format::model::Arch;
    let ck = example_checkpoint(Arch::X86_64);
    let p = &ck.processes[0];
    let masks = psnc_imgtool::diff::rseq_masks(&[p]);
    let r = p.threads[0].rseq.expect("example registers rseq").addr;
    assert_eq!(masks, vec![(r, r + 8), (r + 20, r + 28)]);
    assert_eq!(parse_ignore("rseq").expect("rseq"), IgnoreRule::Rseq);
}

/// The example with two zombie children of its process 42.
fn example_with_zombies(arch: Arch, class: LayoutClass) -> Vec<u8> {
    use psnc_format::model::{ExitStatus, Zombie};
    example_with(arch, class, |ck, _| {
        let p = &ck.processes[0];
        let (pid, pgid, sid) = (p.pid, p.pgid, p.sid);
        ck.zombies = vec![
            Zombie {
                pid: pid + 1,
                ppid: pid,
                pgid,
                sid,
                status: ExitStatus::Exited(7),
            },
            Zombie {
                pid: pid + 2,
                ppid: pid,
                pgid: pid + 2,
                sid,
                status: ExitStatus::Killed {
                    signal: 15,
                    core: false,
                },
            },
        ];
    })
}

#[test]
fn zombies_show_in_info_dump_and_diff_and_survive_convert() {
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = example_with_zombies(Arch::I386, LayoutClass::Bits32);
    let img = Image::from_vec(bytes.clone()).expect("open");
    let pid = img.checkpoint().processes[0].pid;

    // info: a `<defunct>` row under the parent, with the status, and a count.
    let info = psnc_imgtool::info::info(&img, "z.psnc");
    assert_eq!(info.counts.zombies, 2);
    let text = info.render();
    assert!(text.contains("<defunct> (exit 7)"), "{text}");
    assert!(text.contains("<defunct> (killed by signal 15)"), "{text}");
    let z = &info.tree[1];
    assert_eq!((z.depth, z.pid, z.ppid), (1, pid + 1, pid));
    let json = serde_json::to_value(&info).expect("json");
    assert_eq!(json["tree"][2]["zombie"], "killed by signal 15");
    assert_eq!(json["tree"][0].get("zombie"), None);
    // Without zombies, info says nothing about them.
    let plain = Image::from_vec(example(Arch::I386, LayoutClass::Bits32)).expect("open");
    let plain_info = psnc_imgtool::info::info(&plain, "p.psnc");
    assert!(!plain_info.render().contains("zombies"));
    assert_eq!(
        serde_json::to_value(&plain_info).expect("json")["counts"].get("zombies"),
        None
    );

    // dump --section zombies, and --pid selects the zombies of a parent.
    let v = dump::section_view(&img, SectionKind::Zombies, None);
    assert_eq!(v[0]["pid"], pid + 1);
    assert_eq!(v[0]["status_text"], "exit 7");
    assert_eq!(v[0]["wait_status"], 7 << 8);
    assert_eq!(v[1]["wait_status"], 15);
    let none = dump::section_view(&img, SectionKind::Zombies, Some(pid + 100));
    assert_eq!(none, serde_json::json!([]));

    // convert carries them (both ways), and diff sees them.
    let wide = dir.path().join("wide.psnc");
    convert_to_path(&img, "z", LayoutClass::Bits64, &wide).expect("to 64");
    let w = Image::open(&wide).expect("open");
    assert_eq!(w.checkpoint().zombies, img.checkpoint().zombies);
    assert!(diff_images(&img, &w, &DiffOptions::default())
        .expect("diff")
        .fields
        .is_empty());
    let d = diff_models(
        plain.checkpoint(),
        img.checkpoint(),
        &DiffOptions::default(),
    );
    assert!(d.iter().any(|f| f.path.starts_with("zombies")), "{d:?}");
}

/// The example with a pty pair: process 42 (made a session leader) holds the master at fd 40
/// and the slave at fds 41 and 42, the pair its controlling terminal.
fn example_with_pty(arch: Arch, class: LayoutClass) -> Vec<u8> {
    use psnc_format::model::{Fd, FdKind, FdRef, Pty};
    use psnc_format::sections::pts_rdev;
    example_with(arch, class, |ck, _| {
        let p = &mut ck.processes[0];
        p.sid = p.pid;
        let pid = p.pid;
        let fd = |fd, kind| Fd {
            fd,
            flags: 2, // O_RDWR
            cloexec: false,
            pos: 0,
            kind,
        };
        p.fds.push(fd(40, FdKind::PtyMaster { index: 7 }));
        for n in [41, 42] {
            p.fds.push(fd(
                n,
                FdKind::Tty {
                    path: "/dev/pts/7".into(),
                    rdev: pts_rdev(7),
                },
            ));
        }
        let r = |fd| FdRef { pid, fd };
        ck.ptys = vec![Pty {
            index: 7,
            locked: false,
            packet: true,
            termios: vec![0; 36],
            winsize: vec![37, 0, 101, 0, 0, 0, 0, 0],
            masters: vec![r(40)],
            slaves: vec![r(41), r(42)],
            session: pid,
            foreground: pid,
        }];
    })
}

#[test]
fn ptys_show_in_info_and_dump_and_survive_convert() {
    let dir = tempfile::tempdir().expect("tmp");
    let img = Image::from_vec(example_with_pty(Arch::I386, LayoutClass::Bits32)).expect("open");
    let pid = img.checkpoint().processes[0].pid;
    let info = psnc_imgtool::info::info(&img, "t.psnc");
    assert_eq!(info.counts.ptys, 1);
    assert!(info.render().contains("ptys"), "{}", info.render());
    let plain = Image::from_vec(example(Arch::I386, LayoutClass::Bits32)).expect("open");
    let plain_info = psnc_imgtool::info::info(&plain, "p.psnc");
    assert_eq!(
        serde_json::to_value(&plain_info).expect("json")["counts"].get("ptys"),
        None
    );

    let v = dump::section_view(&img, SectionKind::Ttys, None);
    assert_eq!(v[0]["index"], 7);
    assert_eq!(v[0]["packet"], true);
    assert_eq!(v[0]["winsize"], "2500650000000000");
    assert_eq!(v[0]["masters"][0]["fd"], 40);
    assert_eq!(v[0]["slaves"][1]["fd"], 42);
    assert_eq!(v[0]["session"], pid);
    let none = dump::section_view(&img, SectionKind::Ttys, Some(pid + 100));
    assert_eq!(none, serde_json::json!([]));

    let wide = dir.path().join("wide.psnc");
    convert_to_path(&img, "t", LayoutClass::Bits64, &wide).expect("to 64");
    let w = Image::open(&wide).expect("open");
    assert_eq!(w.checkpoint().ptys, img.checkpoint().ptys);
}
