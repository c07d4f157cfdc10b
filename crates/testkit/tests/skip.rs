//! What a skip does in each environment: logged and passing by default, a failure in CI. The
//! skip runs in a child (this test binary again, running only `helper`), so that the environment
//! of the tests that run in parallel here is never changed.

use std::process::{Command, Output};

const HELPER_ENV: &str = "PSNC_TESTKIT_HELPER";

/// Skips when run as the child; does nothing in a normal test run.
#[test]
#[ignore = "helper process for the other tests of this file"]
fn helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    psnc_testkit::skip!("helper check", "the reason: with a colon");
}

/// Runs `helper` in a child with exactly these settings of the variables a skip reads.
fn run_helper(
    ci: Option<&str>,
    require_all: Option<&str>,
    log: Option<&std::path::Path>,
) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--ignored", "--exact", "helper", "--nocapture"])
        .env(HELPER_ENV, "1")
        .env_remove("CI")
        .env_remove(psnc_testkit::REQUIRE_ALL_ENV)
        .env_remove(psnc_testkit::SKIP_LOG_ENV);
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    if let Some(v) = require_all {
        cmd.env(psnc_testkit::REQUIRE_ALL_ENV, v);
    }
    if let Some(p) = log {
        cmd.env(psnc_testkit::SKIP_LOG_ENV, p);
    }
    cmd.output().expect("run the helper")
}

const LINE: &str = "SKIP helper check: the reason: with a colon";

#[test]
fn a_skip_passes_and_is_logged_outside_ci() {
    let dir = tempfile_dir();
    let log = dir.join("skips.log");
    for (ci, require_all) in [
        (None, None),
        (Some(""), None),
        (Some("false"), None),
        (Some("0"), Some("0")),
    ] {
        let out = run_helper(ci, require_all, Some(&log));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "CI={ci:?}: {err}");
        assert!(err.contains(LINE), "CI={ci:?}: {err}");
    }
    let logged = std::fs::read_to_string(&log).expect("read the skip log");
    assert_eq!(logged, format!("{LINE}\n").repeat(4));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_skip_fails_in_ci_and_with_require_all() {
    for (ci, require_all) in [(Some("true"), None), (Some("1"), None), (None, Some("1"))] {
        let out = run_helper(ci, require_all, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "CI={ci:?} PSNC_REQUIRE_ALL={require_all:?}: {err}"
        );
        assert!(err.contains("panicked at"), "{err}");
        assert!(err.contains(LINE), "{err}");
    }
}

/// A fresh directory for the log (no tempfile dependency: this crate has none).
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("psnc-testkit-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create a temporary directory");
    let _ = std::fs::remove_file(d.join("skips.log"));
    d
}
