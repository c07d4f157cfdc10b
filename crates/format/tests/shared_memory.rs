//! Section 15 `shared-memory` (format 1.3): shared memory objects keep their pages and mappings
//! through both layout classes, the section is critical and written only when needed, and a
//! record that names no shared anonymous VMA, two records for one VMA, or a run outside its
//! object are refused.

use psnc_format::example::{example_checkpoint, page_pattern};
use psnc_format::layout::SECTION_CRITICAL;
use psnc_format::model::{
    Arch, Checkpoint, Fd, FdKind, SharedMapping, SharedMemory, SharedMemoryKind, Vma, VmaKind,
};
use psnc_format::sections::SectionKind;
use psnc_format::{FormatError, Image, ImageWriter, LayoutClass};

fn both() -> [(Arch, LayoutClass); 3] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
        (Arch::I386, LayoutClass::Bits64),
    ]
}

/// The example process with one shared anonymous VMA of 4 pages at `at`, mapped from offset
/// 0x1000 of an 8-page object whose pages 1, 2 and 6 are stored.
fn with_object(arch: Arch, class: LayoutClass, at: u64) -> (Vec<u8>, Checkpoint) {
    let mut ck = example_checkpoint(arch);
    ck.processes[0].vmas.push(Vma {
        start: at,
        end: at + 0x4000,
        prot: 3,
        shared: true,
        kind: VmaKind::Anonymous,
        file_offset: 0x1000,
        ..Vma::default()
    });
    ck.processes[0].vmas.sort_by_key(|v| v.start);
    let mut w = ImageWriter::new(Vec::new(), class).expect("writer");
    let pages = vec![
        w.write_pages(0x1000, &page_pattern(0x1000, 2))
            .expect("pages"),
        w.write_pages(0x6000, &page_pattern(0x6000, 1))
            .expect("pages"),
    ];
    ck.shared_memory.push(SharedMemory {
        kind: SharedMemoryKind::Anonymous,
        dev: 1,
        ino: 4242,
        size: 0x8000,
        pages,
        mappings: vec![SharedMapping {
            pid: ck.processes[0].pid,
            start: at,
        }],
    });
    let (bytes, want) = w.finish_with_model(ck).expect("finish");
    (bytes, want)
}

fn at(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => 0x7f00_0000_0000,
        Arch::I386 => 0xb000_0000,
    }
}

#[test]
fn objects_round_trip_in_every_class() {
    for (arch, class) in both() {
        let (bytes, want) = with_object(arch, class, at(arch));
        let image = Image::from_vec(bytes).expect("open");
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        psnc_format::verify::verify_image(&image).expect("verify");
        let o = &image.checkpoint().shared_memory[0];
        assert_eq!(o.size, 0x8000);
        assert_eq!(
            image.page_bytes(&o.pages[1]).expect("bytes"),
            &page_pattern(0x6000, 1)[..]
        );
        let e: Vec<_> = image.sections().iter().filter(|e| e.kind == 15).collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
        assert_eq!(
            SectionKind::from_number(15),
            Some(SectionKind::SharedMemory)
        );
    }
}

#[test]
fn memfd_objects_keep_name_and_seals() {
    for (arch, class) in both() {
        let (_, mut ck) = with_object(arch, class, at(arch));
        ck.shared_memory[0].kind = SharedMemoryKind::Memfd {
            name: "wayland-shm".into(),
            seals: 0x7,
        };
        let mut w = ImageWriter::new(Vec::new(), class).expect("writer");
        w.write_pages(0x1000, &page_pattern(0x1000, 2))
            .expect("pages");
        w.write_pages(0x6000, &page_pattern(0x6000, 1))
            .expect("pages");
        let (bytes, want) = w.finish_with_model(ck).expect("finish");
        let image = Image::from_vec(bytes).expect("open");
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
    }
}

#[test]
fn images_without_shared_memory_have_no_section_15() {
    for (arch, class) in both() {
        let mut w = ImageWriter::new(Vec::new(), class).expect("writer");
        w.write_pages(0x1000, &page_pattern(0x1000, 1)).ok();
        let (bytes, _) = w
            .finish_with_model(example_checkpoint(arch))
            .expect("finish");
        let image = Image::from_vec(bytes).expect("open");
        assert!(image.sections().iter().all(|e| e.kind != 15));
    }
}

fn refused(mutate: impl Fn(&mut Checkpoint)) -> String {
    let (arch, class) = (Arch::X86_64, LayoutClass::Bits64);
    let (_, mut ck) = with_object(arch, class, at(arch));
    mutate(&mut ck);
    let mut w = ImageWriter::new(Vec::new(), class).expect("writer");
    // Same page-data layout as `with_object`.
    w.write_pages(0x1000, &page_pattern(0x1000, 2))
        .expect("pages");
    w.write_pages(0x6000, &page_pattern(0x6000, 1))
        .expect("pages");
    let (bytes, _) = w.finish_with_model(ck).expect("finish");
    match Image::from_vec(bytes) {
        Err(FormatError::Invalid(m)) => m,
        other => panic!("not refused as invalid: {:?}", other.map(|_| ())),
    }
}

#[test]
fn bad_records_are_refused() {
    let a = at(Arch::X86_64);
    assert_eq!(
        refused(|ck| ck.shared_memory[0].mappings[0].start = a + 0x1000),
        format!(
            "shared memory object 0 is mapped at {:#x} of pid 42, which is not a shared \
             anonymous vma",
            a + 0x1000
        )
    );
    assert_eq!(
        refused(|ck| {
            let m = ck.shared_memory[0].mappings[0];
            ck.shared_memory[0].mappings.push(m);
        }),
        format!("the vma {a:#x} of pid 42 maps two shared memory objects")
    );
    assert_eq!(
        refused(|ck| ck.shared_memory[0].size = 0x4000),
        "page run 0x6000 of shared memory object 0 ends past its size 0x4000"
    );
    assert_eq!(
        refused(|ck| ck.shared_memory[0].mappings[0].pid = 7),
        "a mapping of shared memory object 0 belongs to pid 7, which is not in the image"
    );
}

/// A memfd fd (format 1.3, `FdKindV1::MemFdObject`, §8.9) naming a memfd object.
fn memfd_fd(ck: &mut Checkpoint, object: u32, size: u64) {
    ck.shared_memory[0].kind = SharedMemoryKind::Memfd {
        name: "buf".into(),
        seals: 0,
    };
    ck.processes[0].fds.push(Fd {
        fd: 9,
        flags: 2, // O_RDWR
        cloexec: false,
        pos: 1234,
        kind: FdKind::MemFdObject { object, size },
    });
}

#[test]
fn memfd_fds_name_their_object_in_every_class() {
    for (arch, class) in both() {
        let (_, mut ck) = with_object(arch, class, at(arch));
        memfd_fd(&mut ck, 0, 0x7f01);
        let mut w = ImageWriter::new(Vec::new(), class).expect("writer");
        w.write_pages(0x1000, &page_pattern(0x1000, 2))
            .expect("pages");
        w.write_pages(0x6000, &page_pattern(0x6000, 1))
            .expect("pages");
        let (bytes, want) = w.finish_with_model(ck).expect("finish");
        let image = Image::from_vec(bytes).expect("open");
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        let f = image.checkpoint().processes[0].fds.last().expect("fd");
        assert_eq!(
            f.kind,
            FdKind::MemFdObject {
                object: 0,
                size: 0x7f01
            }
        );
    }
}

#[test]
fn bad_memfd_fds_are_refused() {
    assert_eq!(
        refused(|ck| memfd_fd(ck, 1, 0x8000)),
        "the memfd fd 9 of pid 42 names shared memory object 1, but the image has 1"
    );
    assert_eq!(
        refused(|ck| memfd_fd(ck, 0, 0x7000)),
        "the memfd fd 9 of pid 42 has a size of 28672 bytes, which does not round up to the \
         size 0x8000 of its shared memory object 0"
    );
    assert_eq!(
        refused(|ck| {
            memfd_fd(ck, 0, 0x8000);
            ck.shared_memory[0].kind = SharedMemoryKind::Anonymous;
        }),
        "the memfd fd 9 of pid 42 names shared memory object 0, which is not a memfd"
    );
}
