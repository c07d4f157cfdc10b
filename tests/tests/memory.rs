//! Memory of every kind survives capture, kill and restore (issue 3).

use psnc_tests::{cases, roundtrip, Bits};

#[test]
fn heap() {
    roundtrip(&cases::MEM_HEAP, Bits::B64);
}

#[test]
fn stack() {
    roundtrip(&cases::MEM_STACK, Bits::B64);
}

#[test]
fn bss_and_data() {
    roundtrip(&cases::MEM_BSS, Bits::B64);
}

#[test]
fn anonymous_mapping_with_holes() {
    roundtrip(&cases::MEM_ANON, Bits::B64);
}

#[test]
fn prot_none_guard() {
    roundtrip(&cases::MEM_GUARD, Bits::B64);
}

#[test]
fn private_file_mapping_dirtied() {
    roundtrip(&cases::MEM_FILE_PRIVATE, Bits::B64);
}

#[test]
fn shared_file_mapping() {
    roundtrip(&cases::MEM_FILE_SHARED, Bits::B64);
}

/// Every VMA is recreated with its protection and pages by the batched remote calls, across
/// several batches.
#[test]
fn many_vmas_x86_64() {
    roundtrip(&cases::MANY_VMAS, Bits::B64);
}

#[test]
fn many_vmas_i386() {
    if psnc_tests::m32_or_skip(Bits::B32, "many VMAs i386") {
        roundtrip(&cases::MANY_VMAS, Bits::B32);
    }
}
