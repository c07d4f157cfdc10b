//! `--kmod`: the choice of source for the kernel-only state, on a machine without
//! `/dev/checkpoint` (the dev machines cannot load modules; the module path itself is tested in
//! the VM guest by kmod/vm/run-tests.sh).

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use psnc_capture::{capture, CaptureError, KmodMode, Options, Output};
use psnc_format::Image;

const BIN: &str = env!("CARGO_BIN_EXE_psnc-capture");

/// The exact message of `--kmod always` on a machine without the module.
const ALWAYS_WITHOUT_MODULE: &str = "psnc-capture: --kmod always: /dev/checkpoint does not exist \
     (the module is not loaded). Load the module (make -C kmod && insmod \
     kmod/psnc_checkpoint.ko, as root), or capture with --kmod auto or never; the target was not \
     touched\n";

/// Whether the machine has no module; skips the check `what` (see psnc-testkit) when it has one.
fn no_module(what: &str) -> bool {
    if Path::new("/dev/checkpoint").exists() {
        psnc_testkit::skip(
            what,
            "/dev/checkpoint exists here (these cases need a machine without the module)",
        );
        return false;
    }
    true
}

#[test]
fn always_without_the_module_fails_before_touching_the_target() {
    if !no_module("always_without_the_module_fails_before_touching_the_target") {
        return;
    }
    let t = Target::start_plain("sleep", &["1000"]);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("k.img");
    let mut opts = Options::new(Output::Path(img.clone()));
    opts.kmod = KmodMode::Always;
    let e = capture(t.pid(), &opts).unwrap_err();
    assert!(
        matches!(&e, CaptureError::KmodUnavailable { why } if why == "does not exist (the module is not loaded)"),
        "{e:?}"
    );
    assert!(!img.exists());
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
    t.assert_running_untouched();
}

#[test]
fn always_without_the_module_cli_message_and_exit_status() {
    if !no_module("always_without_the_module_cli_message_and_exit_status") {
        return;
    }
    let t = Target::start_plain("sleep", &["1000"]);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("k.img");
    let out = Command::new(BIN)
        .arg(t.pid().to_string())
        .arg("-o")
        .arg(&img)
        .args(["--kmod", "always"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(String::from_utf8_lossy(&out.stderr), ALWAYS_WITHOUT_MODULE);
    assert!(!img.exists());
    t.assert_running_untouched();
}

#[test]
fn auto_and_never_use_remote_syscalls_and_say_so() {
    if !no_module("auto_and_never_use_remote_syscalls_and_say_so") {
        return;
    }
    let t = Target::start_plain("sleep", &["1000"]);
    let dir = tempfile::tempdir().unwrap();
    for (mode, why) in [
        (
            "auto",
            "(/dev/checkpoint does not exist (the module is not loaded))",
        ),
        ("never", "(--kmod never)"),
    ] {
        let img = dir.path().join(format!("{mode}.img"));
        let out = Command::new(BIN)
            .arg(t.pid().to_string())
            .arg("-o")
            .arg(&img)
            .args(["--kmod", mode, "-v"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(&format!(
                "kernel-only state from remote syscalls in the target {why}"
            )),
            "{err}"
        );
        for piece in [
            "handlers: remote rt_sigaction x 64",
            "interval timers: remote getitimer x 3",
            "brk, dumpable, pdeathsig, child_subreaper, securebits: remote brk(0), prctl",
            "1 thread(s): sigaltstack, clear_child_tid: remote sigaltstack",
        ] {
            assert!(err.contains(piece), "no {piece:?} in\n{err}");
        }
        Image::open(&img).unwrap().verify_data().unwrap();
        t.assert_running_untouched();
    }
}

#[test]
fn bad_mode_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["1", "-o", "/nonexistent/x.img", "--kmod", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"sometimes\" is not a --kmod mode; use auto, always or never"),
        "{err}"
    );
}
