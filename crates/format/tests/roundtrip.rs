//! Model -> bytes -> model round trips through the real writer and reader, both layout classes,
//! file and stream.

use psnc_format::example::{example_checkpoint, example_runs, page_pattern, write_example};
use psnc_format::model::{Arch, VmaKind};
use psnc_format::verify::verify_image;
use psnc_format::{FormatError, Image, ImageWriter, LayoutClass};

fn both() -> [(Arch, LayoutClass); 3] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
        (Arch::I386, LayoutClass::Bits64),
    ]
}

#[test]
fn example_round_trips_in_every_class() {
    for (arch, class) in both() {
        let bytes = write_example(Vec::new(), arch, class).expect("write");
        let img = Image::from_vec(bytes).expect("read");
        assert_eq!(img.class(), class);
        verify_image(&img).expect("verify");
        let ck = img.checkpoint();
        let mut want = example_checkpoint(arch);
        // The writer fills in what capture leaves to it.
        want.files = ck.files.clone();
        let p = &mut want.processes[0];
        p.pages = ck.processes[0].pages.clone();
        p.exe = ck.processes[0].exe.clone();
        for v in p.vmas.iter_mut().filter(|v| v.kind == VmaKind::File) {
            v.file = Some(p.exe.clone());
        }
        assert_eq!(ck, &want, "{arch:?} {class:?}");
        for (run, (addr, pages)) in ck.processes[0].pages.iter().zip(example_runs(arch)) {
            assert_eq!((run.addr, run.pages), (addr, pages));
            assert_eq!(
                img.page_bytes(run).expect("pages"),
                page_pattern(addr, pages)
            );
        }
        let exe = img
            .file_bytes(ck.processes[0].exe.stored.expect("stored"))
            .expect("file");
        assert_eq!(exe.len(), 8192);
        assert_eq!(
            img.file_data().as_ptr() as usize % 4096,
            img.bytes().as_ptr() as usize % 4096
        );
    }
}

#[test]
fn classes_differ_on_disk_and_x86_64_does_not_fit_32() {
    let a = write_example(Vec::new(), Arch::I386, LayoutClass::Bits32).expect("write");
    let b = write_example(Vec::new(), Arch::I386, LayoutClass::Bits64).expect("write");
    assert_ne!(a.len(), b.len());
    let e = write_example(Vec::new(), Arch::X86_64, LayoutClass::Bits32).expect_err("must not fit");
    assert!(
        matches!(&e, FormatError::FieldTooWide { field, bits: 32, .. } if field.contains("start_stack") || field.contains("page run")),
        "{e}"
    );
}

#[test]
fn seekable_file_gets_the_table_offset_in_its_header_and_reads_the_same() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("img.psnc");
    let mut ck = example_checkpoint(Arch::X86_64);
    let f = psnc_format::AtomicFile::create(&path).expect("create");
    let mut w = ImageWriter::new(f, LayoutClass::Bits64).expect("writer");
    for (addr, pages) in example_runs(Arch::X86_64) {
        let run = w
            .write_pages(addr, &page_pattern(addr, pages))
            .expect("pages");
        ck.processes[0].pages.push(run);
    }
    w.finish_seekable(ck.clone())
        .expect("finish")
        .commit()
        .expect("commit");
    let img = Image::open(&path).expect("open");
    assert_ne!(img.header().table_offset, 0);
    assert_eq!(img.header().table_offset, img.trailer().table_offset);
    assert_eq!(img.checkpoint().processes, ck.processes);
    let streamed = {
        let mut w = ImageWriter::new(Vec::new(), LayoutClass::Bits64).expect("writer");
        for (addr, pages) in example_runs(Arch::X86_64) {
            w.write_pages(addr, &page_pattern(addr, pages))
                .expect("pages");
        }
        w.finish(ck).expect("finish")
    };
    let s = Image::from_reader(&streamed[..]).expect("stream");
    assert_eq!(s.header().table_offset, 0);
    assert_eq!(s.checkpoint(), img.checkpoint());
}

#[test]
fn files_are_deduplicated_by_content() {
    let mut w = ImageWriter::new(Vec::new(), LayoutClass::Bits64).expect("writer");
    let a = w.store_file("/lib/a.so", b"same bytes").expect("a");
    let b = w.store_file("/lib/b.so", b"same bytes").expect("b");
    let c = w.store_file("/lib/c.so", b"other").expect("c");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let e = w
        .write_pages(0x1000, &[0u8; 4096])
        .expect("pages after files");
    assert_eq!(e.data_offset, 0);
    assert!(matches!(
        w.store_file("/x", b"late"),
        Err(FormatError::WriterState(_))
    ));
}
