//! Lazy restore (issue 11): `psnc-restore --lazy` lets the process run before its private
//! anonymous memory is filled; pages come on first touch through a userfaultfd and in the
//! background from a server process the tool leaves behind.
//!
//! The targets check their own memory after the restore: scribble every page of its region
//! against the replay of its generations, and lazy.c what a process does to memory that may
//! not be filled yet: reads and writes of untouched pages, a fork whose child reads pages the
//! parent never touched, MADV_DONTNEED (zeros, not the image's bytes), mremap (the contents
//! move), munmap, and a read() into a page not filled yet (a fault from kernel mode).

use std::time::Duration;

use psnc_tests::{alive, Bits, RunOpts, Spawn};

const SCRIBBLE: &[&str] = &[
    "scribble_ran",
    "scribble_memory",
    "scribble_untracked",
    "scribble_fds",
];

fn scribble(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "lazy restore i386") {
        return;
    }
    let mut t = Spawn::new("scribble").args(&["64", "1"]).bits(bits).start();
    let image = t.dir.join("image");
    t.capture(&image, &["--kill"]).assert_ok();
    t.proc.reap(Duration::from_secs(10)).expect("killed");
    let r = t.restore_with_output(&image, &["--lazy", "-v"], RunOpts::default());
    assert!(r.stderr.contains("lazy:"), "{r}");
    t.verify()
        .assert_passed_in(&format!("{bits:?} lazy"), SCRIBBLE);
    // Once every page is there the server closes its userfaultfd: no range stays registered.
    let pid = t.pid();
    let clean = psnc_tests::wait_for(Duration::from_secs(20), || {
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        (!smaps
            .lines()
            .any(|l| l.starts_with("VmFlags:") && l.split_whitespace().any(|w| w == "um")))
        .then_some(())
    });
    assert!(
        clean.is_some(),
        "PID {pid} still has ranges registered for missing pages"
    );
}

#[test]
fn memory_comes_on_first_touch_x86_64() {
    scribble(Bits::B64);
}

#[test]
fn memory_comes_on_first_touch_i386() {
    scribble(Bits::B32);
}

/// A corrupt chunk is found when its page is first needed: the process is killed before it can
/// read it, with the reason on stderr.
#[test]
fn a_corrupt_chunk_kills_the_process_before_it_sees_it() {
    let mut t = Spawn::new("scribble").args(&["64", "1"]).start();
    let pid = t.pid();
    let image = t.dir.join("image");
    t.capture(&image, &["--kill"]).assert_ok();
    t.proc.reap(Duration::from_secs(10)).expect("killed");
    let img = psnc_format::Image::open(&image).expect("open");
    let e = img
        .sections()
        .iter()
        .find(|e| e.kind == psnc_format::SectionKind::PageData.number())
        .copied()
        .expect("page data");
    drop(img);
    let mut bytes = std::fs::read(&image).expect("read");
    // In the middle of the page data: the 64 MiB region, left to the lazy server.
    bytes[(e.offset + e.length / 2) as usize] ^= 0x10;
    std::fs::write(&image, &bytes).expect("write");
    let r = psnc_tests::restore_run(&image, &["--lazy"], RunOpts::default());
    r.assert_ok();
    let gone = psnc_tests::wait_for(Duration::from_secs(20), || (!alive(pid)).then_some(()));
    assert!(gone.is_some(), "PID {pid} still runs on a corrupt image");
    // It never got as far as its checks (it was killed, not failed).
    assert!(
        t.report().passes().is_empty() && t.report().fails().is_empty(),
        "the target ran its checks on a corrupt image"
    );
}

const LAZY: &[&str] = &[
    "lazy_fork",
    "lazy_dontneed",
    "lazy_mremap",
    "lazy_munmap",
    "lazy_kernel",
    "lazy_write",
    "lazy_big",
];

/// Fork, MADV_DONTNEED, mremap, munmap, a kernel-mode fault and a first write, each on memory
/// not filled yet: the target checks each (tests/targets/lazy.c). The server is slowed down
/// (`PSNC_LAZY_PAUSE_MS`, a test-only delay before each background step) so that the checks
/// run while the regions are still unfilled.
fn events(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "lazy restore events i386") {
        return;
    }
    let mut t = Spawn::new("lazy").bits(bits).start();
    let image = t.dir.join("image");
    t.capture(&image, &["--kill"]).assert_ok();
    t.proc.reap(Duration::from_secs(10)).expect("killed");
    let r = t.restore_with_output(
        &image,
        &["--lazy", "-v"],
        RunOpts {
            env: vec![("PSNC_LAZY_PAUSE_MS", "50".into())],
            ..RunOpts::default()
        },
    );
    assert!(r.stderr.contains("lazy:"), "{r}");
    t.verify()
        .assert_passed_in(&format!("{bits:?} lazy events"), LAZY);
}

#[test]
fn fork_madvise_mremap_munmap_on_unfilled_memory_x86_64() {
    events(Bits::B64);
}

#[test]
fn fork_madvise_mremap_munmap_on_unfilled_memory_i386() {
    events(Bits::B32);
}

/// Where the kernel will not give a userfaultfd that takes kernel-mode faults (here: an
/// ordinary user, with vm.unprivileged_userfaultfd 0), --lazy is refused before anything is
/// created, saying what it needs.
#[test]
fn lazy_without_the_privilege_is_refused_first() {
    let setting =
        std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd").unwrap_or_default();
    if setting.trim() != "0" {
        println!("SKIP lazy refusal: vm.unprivileged_userfaultfd is {setting:?}, not 0");
        return;
    }
    let mut t = Spawn::new("counter").start();
    let image = t.dir.join("image");
    t.capture(&image, &["--kill"]).assert_ok();
    t.proc.reap(Duration::from_secs(10)).expect("killed");
    // Readable by the user (the image is written 0600 for root).
    let copy = std::env::temp_dir().join(format!("psnc-lazy-refusal-{}", std::process::id()));
    std::fs::copy(&image, &copy).expect("copy");
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let r = psnc_tests::restore_run(
        &copy,
        &["--lazy"],
        RunOpts {
            as_user: Some((65534, 65534)),
            ..RunOpts::default()
        },
    );
    let _ = std::fs::remove_file(&copy);
    r.assert_status(69);
    assert!(r.stderr.contains("--lazy cannot work here"), "{r}");
    assert!(
        !alive(t.pid()),
        "a process was created by a refused restore"
    );
}
