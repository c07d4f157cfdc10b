//! Pre-copy (issue 11): memory copied while the target runs, with its writes tracked through
//! userfaultfd asynchronous write protection and `PAGEMAP_SCAN`, then only the pages written
//! since copied while it is stopped. The target (tests/targets/scribble.c) writes generation
//! after generation into pseudo-random pages the whole time; after the restore it checks that
//! every page is exactly the replay of the generations done at the stop instant, and that
//! neither the write tracking (`uw` in smaps) nor a descriptor of the tool is left in it.

use std::path::Path;
use std::time::Duration;

use psnc_tests::{alive, Bits, RunOpts, Spawn, Target, Tmpfs};

/// What every run of the target must report.
const CHECKS: &[&str] = &[
    "scribble_ran",
    "scribble_memory",
    "scribble_untracked",
    "scribble_fds",
];

fn start(bits: Bits, mib: &str, rate: &str) -> Target {
    Spawn::new("scribble").args(&[mib, rate]).bits(bits).start()
}

/// `psnc-capture --json` of `t` with `args`; asserts success and returns the summary.
fn capture_json(t: &Target, image: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let r = t.capture(image, &all);
    r.assert_ok();
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// The smaps VmFlags lines of `pid` that show write tracking (`uw`).
fn tracked_vmas(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .expect("read smaps")
        .lines()
        .filter(|l| l.starts_with("VmFlags:") && l.split_whitespace().any(|w| w == "uw"))
        .count()
}

/// The fd numbers of `pid`.
fn fds(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fd dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Starts scribble with `target_args` (MiB, pages per ms, options), captures it with `--kill`
/// and `args` (pre-copy by default), restores, and lets the target check itself: [`CHECKS`] and
/// `extra` must pass. Returns the capture's `memory_copy` object.
fn cycle(bits: Bits, target_args: &[&str], args: &[&str], extra: &[&str]) -> serde_json::Value {
    let mut t = Spawn::new("scribble").args(target_args).bits(bits).start();
    let image = t.dir.join("image");
    let mut all = vec!["--kill"];
    all.extend_from_slice(args);
    let summary = capture_json(&t, &image, &all);
    t.proc
        .reap(Duration::from_secs(10))
        .expect("the target gone after --kill");
    t.restore(&image, &[], RunOpts::default());
    let mut checks = CHECKS.to_vec();
    checks.extend_from_slice(extra);
    t.verify()
        .assert_passed_in(&format!("{bits:?} {target_args:?} {args:?}"), &checks);
    summary["memory_copy"].clone()
}

fn precopied(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "pre-copy i386") {
        return;
    }
    // 2,000 pages per second into 16,384: most pages are not written again between their copy
    // and the stop, however slowly the (debug, loaded) tool copies.
    let m = cycle(bits, &["64", "2"], &[], &[]);
    assert_eq!(m["method"], "pre-copy", "{m}");
    assert!(m["rounds"].as_u64().expect("rounds") >= 1, "{m}");
    // The 64 MiB region was copied while running, and copies of it were used at the stop.
    assert!(
        m["pages_running"].as_u64().expect("pages_running") >= 16384,
        "{m}"
    );
    assert!(m["pages_reused"].as_u64().expect("pages_reused") > 0, "{m}");
}

#[test]
fn memory_is_the_stop_instant_after_pre_copy_x86_64() {
    precopied(Bits::B64);
}

#[test]
fn memory_is_the_stop_instant_after_pre_copy_i386() {
    precopied(Bits::B32);
}

/// A writer as fast as the machine goes dirties more than a round copies: the rounds stop
/// early and the stop copies the rest, still exactly.
fn flat_out(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "pre-copy flat out i386") {
        return;
    }
    let m = cycle(bits, &["32", "0"], &[], &[]);
    assert_eq!(m["method"], "pre-copy", "{m}");
}

#[test]
fn a_target_writing_flat_out_x86_64() {
    flat_out(Bits::B64);
}

#[test]
fn a_target_writing_flat_out_i386() {
    flat_out(Bits::B32);
}

#[test]
fn pre_copy_never_copies_everything_stopped() {
    let m = cycle(Bits::B64, &["16", "20"], &["--pre-copy=never"], &[]);
    assert_eq!(m["method"], "stop", "{m}");
    assert_eq!(m["why_not"], "--pre-copy=never", "{m}");
    assert_eq!(m["pages_running"], 0, "{m}");
}

/// Without --kill the target runs on: right after the capture nothing of the tracking is left
/// (no `uw` VMA, the same fds), and the image restores after the target is gone.
#[test]
fn the_target_left_running_is_unwatched() {
    let mut t = start(Bits::B64, "32", "20");
    let pid = t.pid();
    let before = fds(pid);
    let image = t.dir.join("image");
    let m = capture_json(&t, &image, &[])["memory_copy"].clone();
    assert_eq!(m["method"], "pre-copy", "{m}");
    assert_eq!(tracked_vmas(pid), 0, "write tracking left in PID {pid}");
    assert_eq!(fds(pid), before, "the fds of PID {pid} changed");
    // The running original is consistent in itself, and so is its restored copy.
    t.verify()
        .assert_passed_in("the original after the capture", CHECKS);
    t.proc.kill();
    t.proc.reap(Duration::from_secs(10));
    t.reset_report();
    t.restore(&image, &[], RunOpts::default());
    t.verify()
        .assert_passed_in("restored from a capture that left it running", CHECKS);
}

/// A capture that fails during the pre-copy (the image's file system fills up while the target
/// runs) leaves it running, unwatched and with its fds, and no image.
#[test]
fn a_pre_copy_that_fails_leaves_the_target_unwatched() {
    let mut t = start(Bits::B64, "64", "20");
    let pid = t.pid();
    let before = fds(pid);
    let fs = Tmpfs::mount(&t.dir.join("small"), "8m");
    let image = fs.path.join("image");
    let r = t.capture(&image, &[]);
    r.assert_failed();
    assert!(
        r.stderr.contains("No space left"),
        "the error names the full file system:\n{}",
        r.stderr
    );
    assert!(!image.exists(), "an image appeared after a failed capture");
    assert!(alive(pid), "PID {pid} died");
    assert_eq!(tracked_vmas(pid), 0, "write tracking left in PID {pid}");
    assert_eq!(fds(pid), before, "the fds of PID {pid} changed");
    t.verify()
        .assert_passed_in("after a failed pre-copy", CHECKS);
}

/// The target also drops (MADV_DONTNEED), refills and moves (mremap) a region all the time:
/// a dropped page must read as zeros after the restore, not as its copy, and a moved VMA has
/// lost its write tracking, so its old copies are not used.
fn changing_vmas(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "pre-copy changing VMAs i386") {
        return;
    }
    let m = cycle(bits, &["32", "20", "vmas"], &[], &["scribble_side"]);
    assert_eq!(m["method"], "pre-copy", "{m}");
}

#[test]
fn vmas_dropped_and_moved_during_the_pre_copy_x86_64() {
    changing_vmas(Bits::B64);
}

#[test]
fn vmas_dropped_and_moved_during_the_pre_copy_i386() {
    changing_vmas(Bits::B32);
}

/// Starts `psnc-capture -v` on `t`, waits until the write tracking is armed and the pre-copy
/// has run for a moment, then sends the tool `sig`; returns the tool's exit status and stderr.
fn interrupt_during_pre_copy(
    t: &Target,
    image: &Path,
    sig: nix::sys::signal::Signal,
) -> (std::process::ExitStatus, String) {
    psnc_tests::close_inherited_fds();
    let err_path = t.dir.join("capture.err");
    let err = std::fs::File::create(&err_path).expect("create the stderr file");
    let mut tool = std::process::Command::new(psnc_tests::tool("psnc-capture"))
        .arg(t.pid().to_string())
        .arg("-o")
        .arg(image)
        .arg("-v")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start psnc-capture");
    let armed = psnc_tests::wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&err_path)
            .ok()
            .filter(|s| s.contains("write tracking armed"))
            .map(|_| ())
    });
    assert!(
        armed.is_some(),
        "no pre-copy started:\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(150));
    // Still in the pre-copy: the second stop has not begun (256 MiB take seconds to copy).
    let log = std::fs::read_to_string(&err_path).unwrap_or_default();
    let stops = log
        .lines()
        .filter(|l| l.contains("with PTRACE_SEIZE"))
        .count();
    assert_eq!(
        stops, 1,
        "the pre-copy ended before the signal:
{log}"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(tool.id() as i32), sig).expect("kill");
    let status = tool.wait().expect("wait for psnc-capture");
    (
        status,
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

/// SIGKILL of psnc-capture in the middle of the pre-copy: the kernel closes its userfaultfd, so
/// the target runs on unwatched, with its fds, and no image appears under the name.
#[test]
fn the_tool_killed_during_the_pre_copy_leaves_the_target_unwatched() {
    let mut t = start(Bits::B64, "256", "2");
    let pid = t.pid();
    let before = fds(pid);
    let image = t.dir.join("image");
    let (status, err) = interrupt_during_pre_copy(&t, &image, nix::sys::signal::Signal::SIGKILL);
    assert!(!status.success(), "psnc-capture survived SIGKILL:\n{err}");
    assert!(
        !image.exists(),
        "an image appeared after the tool was killed"
    );
    assert!(alive(pid), "PID {pid} died with the tool");
    let untracked = psnc_tests::wait_for(Duration::from_secs(5), || {
        (tracked_vmas(pid) == 0).then_some(())
    });
    assert!(untracked.is_some(), "write tracking left in PID {pid}");
    assert_eq!(fds(pid), before, "the fds of PID {pid} changed");
    t.verify()
        .assert_passed_in("after the tool was killed", CHECKS);
}

/// SIGTERM of psnc-capture during the pre-copy: a clean stop at the next buffer, the target
/// running and unwatched, no image, and the tool says it was interrupted.
#[test]
fn the_tool_terminated_during_the_pre_copy_stops_cleanly() {
    let mut t = start(Bits::B64, "256", "2");
    let pid = t.pid();
    let before = fds(pid);
    let image = t.dir.join("image");
    let (status, err) = interrupt_during_pre_copy(&t, &image, nix::sys::signal::Signal::SIGTERM);
    assert!(
        !status.success(),
        "psnc-capture succeeded despite SIGTERM:\n{err}"
    );
    assert!(
        err.to_lowercase().contains("interrupt"),
        "no word of the interruption:\n{err}"
    );
    assert!(
        !image.exists(),
        "an image appeared after an interrupted capture"
    );
    assert!(alive(pid), "PID {pid} died");
    assert_eq!(tracked_vmas(pid), 0, "write tracking left in PID {pid}");
    assert_eq!(fds(pid), before, "the fds of PID {pid} changed");
    t.verify()
        .assert_passed_in("after an interrupted capture", CHECKS);
}

/// The fork snapshot (`--pre-copy=fork`): memory read from a copy-on-write child made in the
/// stop, after the target runs on. Right after the capture the target has no child left (the
/// snapshot was killed and reaped through it) and its fds; the image restores to exactly the
/// stop instant of the generations it was writing all along.
fn fork_snapshot(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "fork snapshot i386") {
        return;
    }
    let mut t = start(bits, "64", "2");
    let pid = t.pid();
    let before = fds(pid);
    let image = t.dir.join("image");
    let s = capture_json(&t, &image, &["--pre-copy=fork"]);
    let m = &s["memory_copy"];
    assert_eq!(m["method"], "fork snapshot", "{m}");
    assert!(s["stopped_ms"].as_f64().is_some(), "{s}");
    assert!(
        psnc_tests::children(pid).is_empty(),
        "the snapshot of PID {pid} is still its child: {:?}",
        psnc_tests::children(pid)
    );
    assert_eq!(fds(pid), before, "the fds of PID {pid} changed");
    t.verify()
        .assert_passed_in("the original after a fork snapshot", CHECKS);
    t.proc.kill();
    t.proc.reap(Duration::from_secs(10));
    t.reset_report();
    t.restore(&image, &[], RunOpts::default());
    t.verify()
        .assert_passed_in(&format!("{bits:?} restored from a fork snapshot"), CHECKS);
}

#[test]
fn memory_is_the_stop_instant_from_a_fork_snapshot_x86_64() {
    fork_snapshot(Bits::B64);
}

#[test]
fn memory_is_the_stop_instant_from_a_fork_snapshot_i386() {
    fork_snapshot(Bits::B32);
}

/// Where write tracking cannot be armed (the test-only `PSNC_TEST_NO_WRITE_TRACKING` acts as
/// a kernel before 6.7 would), `auto` falls back to the fork snapshot, and with `--kill` (the
/// target stays stopped anyway) to the plain stop; each capture restores exactly.
#[test]
fn auto_falls_back_to_a_fork_snapshot_then_to_a_stop() {
    let mut t = start(Bits::B64, "32", "2");
    let pid = t.pid();
    let env = [("PSNC_TEST_NO_WRITE_TRACKING", "1")];
    let image = t.dir.join("image");
    let json = |r: &psnc_tests::ToolRun| -> serde_json::Value {
        r.assert_ok();
        serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {r}"))
    };
    let s = json(&psnc_tests::capture_env(pid, &image, &["--json"], &env));
    assert_eq!(s["memory_copy"]["method"], "fork snapshot", "{s}");
    assert!(psnc_tests::children(pid).is_empty(), "a snapshot is left");
    t.verify()
        .assert_passed_in("the original after the fallback", CHECKS);
    t.proc.kill();
    t.proc.reap(Duration::from_secs(10));
    t.reset_report();
    t.restore(&image, &[], RunOpts::default());
    t.verify()
        .assert_passed_in("restored from the fallback's snapshot", CHECKS);

    // A fresh target (the restored one has run its checks already).
    let mut t = start(Bits::B64, "32", "2");
    let again = t.dir.join("again");
    let s = json(&psnc_tests::capture_env(
        t.pid(),
        &again,
        &["--json", "--kill"],
        &env,
    ));
    let m = &s["memory_copy"];
    assert_eq!(m["method"], "stop", "{s}");
    assert!(
        m["why_not"]
            .as_str()
            .is_some_and(|w| w.contains("PSNC_TEST_NO_WRITE_TRACKING")),
        "{s}"
    );
    t.proc
        .reap(Duration::from_secs(10))
        .expect("the target gone after --kill");
    t.restore(&again, &[], RunOpts::default());
    t.verify()
        .assert_passed_in("restored from the fallback's plain stop", CHECKS);
}
