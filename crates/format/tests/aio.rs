//! Section 17 `aio` (§8.18): AIO contexts keep their ring address, size, head, tail and
//! completed events through both layout classes, the section is critical and written only when
//! some process has a context, and a record whose fields disagree is refused.

mod imagecraft;

use imagecraft::write_with;
use psnc_format::class::{C32, C64};
use psnc_format::example::example_checkpoint;
use psnc_format::layout::SECTION_CRITICAL;
use psnc_format::model::{AioContext, Arch, Checkpoint};
use psnc_format::sections::{AioContextV1, SectionKind};
use psnc_format::{FormatError, Image, LayoutClass};

fn both() -> [(Arch, LayoutClass); 3] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
        (Arch::I386, LayoutClass::Bits64),
    ]
}

/// A one-page ring (127 slots) with events 5..8 completed and unread, and an idle 16-page one.
fn contexts() -> Vec<AioContext> {
    let events: Vec<u8> = (0..3 * 32).map(|i| i as u8).collect();
    vec![
        AioContext {
            ring: 0x6000_0000,
            ring_len: 4096,
            nr_events: 127,
            head: 5,
            tail: 8,
            events,
        },
        AioContext {
            ring: 0x6001_0000,
            ring_len: 16 * 4096,
            nr_events: 2047,
            head: 2046,
            tail: 2046,
            events: Vec::new(),
        },
    ]
}

fn with_aio(arch: Arch, aio: Vec<AioContext>) -> Checkpoint {
    let mut ck = example_checkpoint(arch);
    ck.processes[0].aio = aio;
    ck
}

#[test]
fn aio_contexts_round_trip_in_every_class() {
    for (arch, class) in both() {
        let (img, want) = write_with(with_aio(arch, contexts()), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        assert_eq!(image.checkpoint().processes[0].aio, contexts());
        let e: Vec<_> = image.sections().iter().filter(|e| e.kind == 17).collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
    }
}

#[test]
fn images_without_aio_contexts_have_no_aio_section() {
    for (arch, class) in both() {
        let (img, _) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert!(image.sections().iter().all(|e| e.kind != 17));
    }
}

/// Writes the example with `record` as its only aio record and returns the reader's error.
fn refused(record: AioContext, arch: Arch, class: LayoutClass) -> String {
    let k = SectionKind::Aio;
    let body = match class {
        LayoutClass::Bits32 => postcard::to_stdvec(&vec![AioContextV1::<C32> {
            pid: 42,
            ring: psnc_format::class::W32(record.ring as u32),
            ring_len: psnc_format::class::W32(record.ring_len as u32),
            nr_events: record.nr_events,
            head: record.head,
            tail: record.tail,
            events: record.events,
        }]),
        LayoutClass::Bits64 => postcard::to_stdvec(&vec![AioContextV1::<C64> {
            pid: 42,
            ring: psnc_format::class::W64(record.ring),
            ring_len: psnc_format::class::W64(record.ring_len),
            nr_events: record.nr_events,
            head: record.head,
            tail: record.tail,
            events: record.events,
        }]),
    }
    .expect("encode");
    let (img, _) = write_with(
        example_checkpoint(arch),
        arch,
        class,
        vec![(k.number(), 1, k.flags(), body)],
    );
    match Image::from_vec(img) {
        Err(FormatError::Invalid(m)) => m,
        r => panic!("not refused as invalid: {r:?}"),
    }
}

#[test]
fn a_record_whose_fields_disagree_is_invalid() {
    let good = contexts().remove(0);
    for (arch, class) in both() {
        let vma = example_checkpoint(arch).processes[0].vmas[0].start;
        let cases = [
        (
            AioContext {
                ring_len: 4000,
                ..good.clone()
            },
            "AIO context 0x60000000 of pid 42: the ring 0x60000000+0xfa0 is not whole pages".to_string(),
        ),
        (
            AioContext {
                nr_events: 128,
                ..good.clone()
            },
            "AIO context 0x60000000 of pid 42: 128 event slots do not fill a 4096-byte ring".to_string(),
        ),
        (
            AioContext {
                tail: 127,
                ..good.clone()
            },
            "AIO context 0x60000000 of pid 42: head 5 or tail 127 is not below nr_events 127".to_string(),
        ),
        (
            AioContext {
                head: 7,
                ..good.clone()
            },
            "AIO context 0x60000000 of pid 42: 96 bytes of events for the 1 slots from head 7 to \
             tail 8".to_string(),
        ),
        (
            AioContext {
                ring: vma,
                ..good.clone()
            },
            format!("AIO context {vma:#x} of pid 42 overlaps another mapping of its process"),
        ),
    ];
        for (record, want) in cases {
            assert_eq!(refused(record, arch, class), want, "{arch:?} {class:?}");
        }
    }
}
