//! Incremental images (issue 11): `psnc-capture --parent OLD` stores only the pages and files
//! that differ from OLD's, restore follows the chain, and `psnc-imgtool merge` flattens it.
//!
//! The target (tests/targets/scribble.c) writes generation after generation into pseudo-random
//! pages all the time, also between and during the captures, and after the restore checks that
//! every page is exactly the replay of the generations done at the stop instant: a page taken
//! from the wrong image of the chain, or one the comparison with the parent got wrong, fails
//! it. The broken chains (a parent missing, replaced, damaged) must be refused before anything
//! is created.

use std::path::{Path, PathBuf};
use std::time::Duration;

use psnc_tests::{alive, tool, Bits, RunOpts, Spawn, Target};

/// What every run of the target must report.
const CHECKS: &[&str] = &[
    "scribble_ran",
    "scribble_memory",
    "scribble_untracked",
    "scribble_fds",
];

/// `psnc-capture --json` of `t` into `image` with `args`; asserts success, returns the summary.
fn capture_json(t: &Target, image: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let r = t.capture(image, &all);
    r.assert_ok();
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).expect("image size").len()
}

/// A chain of three: a full image, one incremental on it (both leaving the target running),
/// and one on that with `--kill`. Returns the paths, oldest first, and the last summary.
fn chain(t: &mut Target, extra: &[&str]) -> (Vec<PathBuf>, serde_json::Value) {
    let a = t.dir.join("a.img");
    let b = t.dir.join("b.img");
    let c = t.dir.join("c.img");
    let mut args: Vec<&str> = extra.to_vec();
    let full = capture_json(t, &a, &args);
    assert!(full["parent"].is_null(), "{full}");
    std::thread::sleep(Duration::from_millis(200));
    let (pa, pb) = (
        a.to_string_lossy().into_owned(),
        b.to_string_lossy().into_owned(),
    );
    args.extend(["--parent", &pa]);
    let mid = capture_json(t, &b, &args);
    assert_eq!(mid["parent"]["depth"], 1, "{mid}");
    std::thread::sleep(Duration::from_millis(200));
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["--parent", &pb, "--kill"]);
    let last = capture_json(t, &c, &args);
    t.proc
        .reap(Duration::from_secs(10))
        .expect("the target gone after --kill");
    assert_eq!(last["parent"]["depth"], 2, "{last}");
    (vec![a, b, c], last)
}

/// The chain restores exactly, and its incremental images hold only what changed.
fn three_images(bits: Bits, extra: &[&str]) {
    if !psnc_tests::m32_or_skip(bits, "incremental images i386") {
        return;
    }
    // 16,384 pages, 1,000 written per second: between two captures a few thousand change.
    let mut t = Spawn::new("scribble").args(&["64", "1"]).bits(bits).start();
    let (imgs, last) = chain(&mut t, extra);
    let from_parent = last["parent"]["pages"].as_u64().expect("parent pages");
    let stored = last["pages_stored"].as_u64().expect("pages stored");
    assert!(
        from_parent >= 8192,
        "most of the 64 MiB is unchanged: {last}"
    );
    assert!(stored < from_parent, "{last}");
    assert!(
        last["parent"]["files"].as_u64().expect("parent files") >= 1,
        "the executable and libraries are the parent's: {last}"
    );
    assert!(
        size(&imgs[2]) * 2 < size(&imgs[0]),
        "the incremental image ({} bytes) is not much smaller than the full one ({} bytes)",
        size(&imgs[2]),
        size(&imgs[0])
    );
    t.restore(&imgs[2], &[], RunOpts::default());
    t.verify()
        .assert_passed_in(&format!("{bits:?} chain of 3 {extra:?}"), CHECKS);
}

#[test]
fn a_chain_of_three_restores_exactly_x86_64() {
    three_images(Bits::B64, &[]);
}

#[test]
fn a_chain_of_three_restores_exactly_i386() {
    three_images(Bits::B32, &[]);
}

#[test]
fn a_chain_captured_stopped_restores_exactly() {
    three_images(Bits::B64, &["--pre-copy=never"]);
}

fn imgtool(args: &[&str]) -> psnc_tests::ToolRun {
    psnc_tests::run(&tool("psnc-imgtool"), args, RunOpts::default())
}

fn restore_run(image: &Path, args: &[&str]) -> psnc_tests::ToolRun {
    psnc_tests::restore_run(image, args, RunOpts::default())
}

/// Restores `image` expecting a refusal with `status` whose message holds every one of
/// `words`, and no process `pid` created.
fn refused(image: &Path, pid: u32, status: i32, words: &[&str]) {
    let r = restore_run(image, &[]);
    r.assert_status(status);
    assert!(
        words.iter().all(|w| r.stderr.contains(w)),
        "want {words:?}: {r}"
    );
    assert!(!alive(pid), "a process was created by a refused restore");
}

/// Broken chains are refused before anything is created, each with its own reason; the
/// right parent named with --parent, or the merged image, restores.
#[test]
fn broken_chains_are_refused_and_merge_flattens() {
    let mut t = Spawn::new("scribble").args(&["16", "1"]).start();
    let pid = t.pid();
    let (imgs, _) = chain(&mut t, &[]);
    let (a, b, c) = (&imgs[0], &imgs[1], &imgs[2]);
    let stem = |p: &Path| p.to_string_lossy().into_owned();

    // verify follows the chain.
    let v = imgtool(&["verify", &stem(c)]);
    v.assert_ok();
    assert!(v.stdout.contains("parent chain"), "{v}");

    // The grandparent missing: the refusal names where it looked and what to do.
    let moved = t.dir.join("elsewhere-a.img");
    std::fs::rename(a, &moved).expect("move a");
    refused(c, pid, 66, &["parent is missing", &stem(a)]);
    // A file of the same name next to the image is another image: refused by its digest.
    std::fs::copy(c, a).expect("copy c over a");
    refused(c, pid, 65, &["is not the parent"]);
    std::fs::rename(&moved, a).expect("move a back");

    // A damaged byte in the grandparent's page data: refused, naming it.
    let mut bytes = std::fs::read(a).expect("read a");
    let saved = bytes.clone();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(a, &bytes).expect("damage a");
    refused(c, pid, 65, &["parent image", &stem(a), "corrupt"]);
    let v = imgtool(&["verify", &stem(c)]);
    assert_eq!(v.code, Some(65), "{v}");
    assert!(
        v.stdout.contains("parent chain") && v.stdout.contains("FAILED"),
        "{v}"
    );
    std::fs::write(a, &saved).expect("repair a");

    // The parent moved: --parent names it (its own parent is found beside it... or where
    // recorded, as here).
    let moved_b = t.dir.join("moved-b.img");
    std::fs::rename(b, &moved_b).expect("move b");
    restore_run(c, &[]).assert_status(66);
    t.restore(c, &["--parent", &stem(&moved_b)], RunOpts::default());
    t.verify()
        .assert_passed_in("restored with --parent", CHECKS);
    t.proc.kill();
    t.proc.reap(Duration::from_secs(10));
    std::fs::rename(&moved_b, b).expect("move b back");

    // merge: one full image, which restores with the chain gone.
    let m = t.dir.join("merged.img");
    imgtool(&["merge", &stem(c), "-o", &stem(&m)]).assert_ok();
    let d = imgtool(&["diff", &stem(c), &stem(&m)]);
    d.assert_ok();
    for p in &imgs[..2] {
        std::fs::remove_file(p).expect("remove a parent");
    }
    let i = imgtool(&["info", "--json", &stem(&m)]);
    i.assert_ok();
    assert!(!i.stdout.contains("\"parent\": {"), "{i}");
    t.reset_report();
    t.restore(&m, &[], RunOpts::default());
    t.verify()
        .assert_passed_in("restored from the merged image", CHECKS);
}

/// A bad parent is refused before the target is touched, and no image appears.
#[test]
fn a_bad_parent_leaves_the_target_untouched() {
    let mut t = Spawn::new("scribble").args(&["16", "1"]).start();
    let pid = t.pid();
    let not_an_image = t.dir.join("junk.img");
    std::fs::write(&not_an_image, b"not an image at all").expect("write junk");
    let out = t.dir.join("out.img");
    let r = t.capture(&out, &["--parent", &not_an_image.to_string_lossy()]);
    r.assert_status(65);
    assert!(r.stderr.contains("--parent"), "{r}");
    let r = t.capture(&out, &["--parent", "/nonexistent/parent.img"]);
    r.assert_status(66);
    // The parent as its own output: the new image would replace the one it needs.
    let parent = t.dir.join("parent.img");
    capture_json(&t, &parent, &[]);
    let r = t.capture(&parent, &["--parent", &parent.to_string_lossy()]);
    r.assert_status(64);
    assert!(r.stderr.contains("also the output"), "{r}");
    psnc_format::Image::open(&parent).expect("the parent is still there and intact");
    assert!(!out.exists(), "an image appeared after a refused capture");
    psnc_tests::assert_running_untraced(pid);
    t.verify()
        .assert_passed_in("after refused captures", CHECKS);
}

/// The counter's ticks run on from the last capture of a chain, not from an earlier one: its
/// counter pages changed between the captures, so they must come from the last image, the
/// unchanged ones from the parents.
fn counts_on(bits: Bits) {
    counts_on_with(bits, &[]);
}

fn counts_on_with(bits: Bits, restore_args: &[&str]) {
    if !psnc_tests::m32_or_skip(bits, "incremental counter i386") {
        return;
    }
    let case = psnc_tests::cases::COUNTER;
    let mut t = Spawn::new(case.name).args(case.args).bits(bits).start();
    let ticks = t.report.with_extension("ticks");
    psnc_tests::wait_ticks(&ticks, 3, Duration::from_secs(10));
    let a = t.dir.join("a.img");
    let b = t.dir.join("b.img");
    capture_json(&t, &a, &[]);
    let n = t.ticks().len();
    psnc_tests::wait_ticks(&ticks, n + 5, Duration::from_secs(10));
    let s = capture_json(&t, &b, &["--parent", &a.to_string_lossy(), "--kill"]);
    assert!(
        s["parent"]["pages"].as_u64().expect("parent pages") > 0,
        "{s}"
    );
    t.proc.reap(Duration::from_secs(10)).expect("killed");
    let before = t.ticks().len();
    t.restore(&b, restore_args, RunOpts::default());
    let after = psnc_tests::wait_ticks(&ticks, before + 5, Duration::from_secs(20));
    t.verify().assert_passed(case.expect);
    psnc_tests::assert_consecutive(&after);
}

#[test]
fn the_counter_counts_on_from_the_last_image_x86_64() {
    counts_on(Bits::B64);
}

#[test]
fn the_counter_counts_on_from_the_last_image_i386() {
    counts_on(Bits::B32);
}

/// A lazy restore of an incremental image: the pages come from the whole chain.
#[test]
fn a_chain_restores_lazily() {
    counts_on_with(Bits::B64, &["--lazy"]);
}
