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
