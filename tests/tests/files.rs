//! Open file descriptors survive capture, kill and restore (issue 3).

use psnc_tests::{cases, roundtrip, Bits};

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn regular_file_offset() {
    roundtrip(&cases::FILE_OFFSET, Bits::B64);
}

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn append_mode() {
    roundtrip(&cases::FILE_APPEND, Bits::B64);
}

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn deleted_open_file() {
    roundtrip(&cases::FILE_DELETED, Bits::B64);
}

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn pipe_with_unread_bytes() {
    roundtrip(&cases::FILE_PIPE, Bits::B64);
}
