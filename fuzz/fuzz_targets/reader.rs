//! Fuzzes the image reader: open, verify, and touch every page run and stored file.
//!
//! Each input is tried twice: as given, which exercises the checks on header, trailer, table and
//! digests; and with every digest recomputed (the tests' `imagecraft::reseal_all`), so mutations
//! of the metadata get past the digests into the postcard decoders, the page index and the
//! model invariants. Any panic, overflow or out-of-bounds slice is a bug: the reader must
//! return an error for every input.

#![no_main]

#[path = "../../crates/format/tests/imagecraft/mod.rs"]
mod imagecraft;

use libfuzzer_sys::fuzz_target;
use psnc_format::model::FileId;
use psnc_format::sections::SectionKind;
use psnc_format::verify::verify_image;
use psnc_format::Image;

/// `verify_data` hashes on several threads when a section has enough chunks. The first thread
/// spawned makes glibc allocate the main thread's list of thread-local destructors, which is
/// only freed at exit: LeakSanitizer would blame whichever input first spawned a thread. Spawn
/// one before fuzzing starts (lsan.supp covers the same allocation for the script's runs).
fn warm_up_threads() {
    std::thread::scope(|s| {
        s.spawn(|| ());
    });
}

fn exercise(bytes: Vec<u8>) {
    let Ok(img) = Image::from_vec(bytes) else { return };
    let _ = verify_image(&img);
    let ck = img.checkpoint();
    for p in &ck.processes {
        for run in &p.pages {
            if let Ok(b) = img.page_bytes(run) {
                assert_eq!(b.len() as u64, run.pages * 4096);
            }
        }
    }
    for (i, f) in ck.files.iter().enumerate() {
        if let Ok(b) = img.file_bytes(FileId(i as u32)) {
            assert_eq!(b.len() as u64, f.size);
        }
    }
    let _ = img.file_bytes(FileId(u32::MAX));
    for i in 0..img.sections().len() {
        assert!(img.section_bytes(i).is_some(), "a checked extent must slice");
    }
    let _ = img.chunk_digests(SectionKind::PageData);
    let _ = img.chunk_digests(SectionKind::FileData);
}

fuzz_target!(init: warm_up_threads(), |data: &[u8]| {
    exercise(data.to_vec());
    let mut resealed = data.to_vec();
    if imagecraft::reseal_all(&mut resealed) && resealed != data {
        exercise(resealed);
    }
});
