//! Why some files keep their own parser: each test shows, on procfs-core itself, the gap a module
//! doc names. If an upgrade of procfs-core makes one of them fail, the gap is gone and that module
//! may switch to procfs-core.

use std::panic::catch_unwind;

use procfs_core::process::{Limits, MMapPath, MemoryMaps, Stat, Status, VmFlags};
use procfs_core::{FromBufRead, FromRead};

const STATUS: &str = "Name:\ta:b\nUmask:\t0022\nState:\tR (running)\nTgid:\t5400\nNgid:\t0\n\
    Pid:\t5400\nPPid:\t5398\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
    FDSize:\t256\nGroups:\t\nKthread:\t0\nThreads:\t1\nSigQ:\t0/96365\n\
    SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n\
    SigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\nCapInh:\t0000000000000000\n\
    CapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n\
    CapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n";

#[test]
fn procfs_core_stat_panics_on_a_line_ending_at_the_paren() {
    assert!(catch_unwind(|| Stat::from_read(&b"1 (x)"[..])).is_err());
    assert!(crate::stat::parse_stat("1 (x)").is_err());
}

#[test]
fn procfs_core_stat_does_not_name_the_missing_field() {
    let err = Stat::from_read(&b"1 (x) S 0 0"[..])
        .unwrap_err()
        .to_string();
    // "Internal Unwrap Error: NoneError", with procfs-core's own source line.
    assert!(err.contains("NoneError") && !err.contains("field"), "{err}");
    let ours = crate::stat::parse_stat("1 (x) S 0 0").unwrap_err();
    assert_eq!(ours.to_string(), "field 6 missing (have 5)");
}

#[test]
fn procfs_core_status_cuts_the_name_at_a_colon() {
    let theirs = Status::from_buf_read(STATUS.as_bytes()).unwrap();
    assert_eq!(theirs.name, "a");
    assert_eq!(crate::status::parse_status(STATUS).unwrap().name, "a:b");
}

#[test]
fn procfs_core_status_does_not_name_the_missing_line() {
    let err = Status::from_buf_read(&b"Name:\tx\n"[..])
        .unwrap_err()
        .to_string();
    assert!(!err.contains("Umask") && !err.contains("State"), "{err}");
}

#[test]
fn procfs_core_maps_panics_on_a_short_sysv_path() {
    let text = "7f0000000000-7f0000001000 rw-s 00000000 00:01 5                          /SYSVx\n";
    assert!(catch_unwind(|| MemoryMaps::from_buf_read(text.as_bytes())).is_err());
    assert_eq!(crate::maps::parse_maps(text).unwrap()[0].path, "/SYSVx");
}

#[test]
fn procfs_core_maps_fails_on_a_path_that_is_not_utf8() {
    let text =
        b"7f0000000000-7f0000001000 r--p 00000000 fe:00 5                          /tmp/\xff\n";
    assert!(MemoryMaps::from_buf_read(&text[..]).is_err());
    let lossy = String::from_utf8_lossy(text);
    assert_eq!(
        crate::maps::parse_maps(&lossy).unwrap()[0].path,
        "/tmp/\u{fffd}"
    );
}

#[test]
fn procfs_core_maps_trims_the_path() {
    let text = "7f0000000000-7f0000001000 r--p 00000000 fe:00 5                          /tmp/a \n";
    let theirs = MemoryMaps::from_buf_read(text.as_bytes()).unwrap();
    assert_eq!(theirs.0[0].pathname, MMapPath::Path("/tmp/a".into()));
    assert_eq!(crate::maps::parse_maps(text).unwrap()[0].path, "/tmp/a ");
}

#[test]
fn procfs_core_smaps_drops_unknown_mnemonics() {
    let text = "7f0000000000-7f0000001000 r--p 00000000 00:00 0 \nVmFlags: rd zz \n";
    let theirs = MemoryMaps::from_buf_read(text.as_bytes()).unwrap();
    assert_eq!(theirs.0[0].extension.vm_flags, VmFlags::RD);
    let ours = crate::smaps::parse_smaps_vm_flags(text).unwrap();
    assert!(ours[&0x7f00_0000_0000].has("zz"));
}

#[test]
fn procfs_core_limits_does_not_name_the_missing_line() {
    let err = Limits::from_buf_read(&b"Limit\nMax cpu time unlimited unlimited seconds\n"[..])
        .unwrap_err()
        .to_string();
    assert!(!err.contains("Max file size"), "{err}");
}
