//! Memfd fds (issue 9): an open memfd names its shared memory object (section 15, FdKindV1
//! `MemFdObject`), mapped or not; after restore the fd is that object's memfd again, with its
//! own offset and flags, its exact size and its seals.

use psnc_tests::{Bits, RunOpts, Spawn};

/// `psnc-imgtool dump IMAGE --section SECTION --json`.
fn dump(image: &std::path::Path, section: &str) -> serde_json::Value {
    let r = psnc_tests::run(
        &psnc_tests::tool("psnc-imgtool"),
        &[
            "dump",
            image.to_str().expect("utf-8"),
            "--section",
            section,
            "--json",
        ],
        RunOpts::default(),
    );
    r.assert_ok();
    serde_json::from_str(&r.stdout).expect("json")
}

/// The Python reader's summary of `image`.
fn python_reader(image: &std::path::Path) -> serde_json::Value {
    let reader = psnc_tests::package_dir().join("../spec/reader/psnc_reader.py");
    let r = psnc_tests::run(
        std::path::Path::new("python3"),
        &[
            reader.to_str().expect("utf-8"),
            "--json",
            image.to_str().expect("utf-8"),
        ],
        RunOpts::default(),
    );
    r.assert_ok();
    serde_json::from_str(&r.stdout).expect("json")
}

/// The fd numbers of the target's `FDS a b` line.
fn fds_of(t: &psnc_tests::Target) -> Vec<i32> {
    let r = t.report();
    r.lines
        .iter()
        .find_map(|l| l.strip_prefix("FDS "))
        .unwrap_or_else(|| panic!("no FDS line in:\n{}", r.lines.join("\n")))
        .split_whitespace()
        .map(|w| w.parse().expect("an fd"))
        .collect()
}

/// Captures `mode` with `--kill`, restores it, and checks that every memfd fd names object 0
/// of `size` bytes with `mappings` mappings, in the Rust and the Python reader.
fn cycle(bits: Bits, mode: &str, size: u64, mappings: usize) -> psnc_tests::Target {
    let mut t = Spawn::new("memfd").args(&[mode]).bits(bits).start();
    let fds = fds_of(&t);
    let image = t.dir.join("image");
    t.capture_kill(&image);
    t.restore(&image, &[], RunOpts::default());

    let objects = dump(&image, "shared-memory");
    let objects = objects["shared-memory"].as_array().expect("objects");
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(
        objects[0]["size"],
        size.div_ceil(4096) * 4096,
        "{objects:?}"
    );
    assert_eq!(
        objects[0]["mappings"].as_array().map(Vec::len),
        Some(mappings),
        "{objects:?}"
    );
    let summary = python_reader(&image);
    let listed = summary["processes"][0]["fds"].as_array().expect("fds");
    for fd in fds {
        let f = listed
            .iter()
            .find(|f| f["fd"] == fd)
            .unwrap_or_else(|| panic!("no fd {fd} in {listed:?}"));
        assert_eq!(
            (&f["kind"], &f["object"], f["size"].as_u64()),
            (
                &serde_json::json!("MemFdObject"),
                &serde_json::json!(0),
                Some(size)
            ),
            "{f}"
        );
    }
    t
}

/// A sealed memfd kept open (two descriptions) and mapped: one file after restore.
fn mapped(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "memfd mapped i386") {
        return;
    }
    let mut t = cycle(bits, "mapped", 2 * 4096 + 100, 1);
    t.verify().assert_passed(&[
        "mapped:size",
        "mapped:offset",
        "mapped:second_offset",
        "mapped:rdwr",
        "mapped:second_rdonly_cloexec",
        "mapped:name",
        "mapped:seals",
        "mapped:grow_refused",
        "mapped:sealed_seals",
        "mapped:contents",
        "mapped:pwrite_seen_in_mapping",
        "mapped:mapping_seen_by_fd",
        "mapped:one_file",
    ]);
}

#[test]
fn sealed_memfd_open_and_mapped_64() {
    mapped(Bits::B64);
}

#[test]
fn sealed_memfd_open_and_mapped_32() {
    mapped(Bits::B32);
}

/// A memfd only open, never mapped: its object is read through the fd.
fn unmapped(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "memfd unmapped i386") {
        return;
    }
    let mut t = cycle(bits, "unmapped", 20000, 0);
    t.verify().assert_passed(&[
        "unmapped:size",
        "unmapped:offset",
        "unmapped:seals",
        "unmapped:contents",
        "unmapped:zero_tail",
        "unmapped:write",
    ]);
}

#[test]
fn memfd_open_without_mapping_64() {
    unmapped(Bits::B64);
}

#[test]
fn memfd_open_without_mapping_32() {
    unmapped(Bits::B32);
}

/// A memfd fd and mapping inherited across fork: after restore the parent and the child hold one
/// open file description (the image groups their fds; the child's write moves the parent's
/// offset) and one object (written through the child's mapping, seen through the parent's),
/// with its seals.
fn forked(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "memfd forked i386") {
        return;
    }
    let mut t = Spawn::new("memfd").args(&["forked"]).bits(bits).start();
    let pid = t.pid();
    let kid = t.report().pid_after("UP C ");
    let _kid = psnc_tests::ProcGuard::foreign(kid);
    let fd = fds_of(&t)[0];
    let image = t.dir.join("image");
    t.capture_kill(&image);

    let objects = dump(&image, "shared-memory");
    let objects = objects["shared-memory"].as_array().expect("objects");
    assert_eq!(
        objects.len(),
        1,
        "one object for both processes: {objects:?}"
    );
    let shares = psnc_format::Image::open(&image)
        .expect("image")
        .checkpoint()
        .fd_shares
        .clone();
    let want = [(pid, fd), (kid, fd)];
    assert!(
        shares.iter().any(|g| {
            want.iter()
                .all(|&(p, f)| g.fds.iter().any(|r| r.pid == p && r.fd == f))
        }),
        "no fd-shares group holds {want:?}: {shares:?}"
    );

    t.restore(&image, &[], RunOpts::default());
    assert!(
        psnc_ptrace::sys::kcmp_file(pid as i32, fd, kid as i32, fd).expect("kcmp"),
        "fd {fd} of {pid} and {kid} are two descriptions after restore"
    );
    t.verify().assert_passed(&[
        "forked:child_reported",
        "forked:offset_shared",
        "forked:mapping_shared",
        "forked:fd_sees_child",
        "forked:contents",
        "forked:one_file",
        "forked:seals",
    ]);
    let r = t.report();
    assert!(
        r.lines.iter().any(|l| l == "KID C fails=0"),
        "the child reported failures:\n{}",
        r.lines.join("\n")
    );
}

#[test]
fn memfd_shared_across_fork_64() {
    forked(Bits::B64);
}

#[test]
fn memfd_shared_across_fork_32() {
    forked(Bits::B32);
}
