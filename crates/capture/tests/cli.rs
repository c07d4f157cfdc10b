//! The psnc-capture command: output to stdout, JSON, exit codes, and the tool dying or being
//! interrupted in the middle of a capture.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use psnc_format::Image;

const BIN: &str = env!("CARGO_BIN_EXE_psnc-capture");

fn start_patterns(extra: &[&str]) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.bin");
    fs::write(&data, vec![0x42u8; 4 * 4096]).unwrap();
    let mut args = vec![data.to_str().unwrap().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Target::start(&target("patterns"), &args, dir)
}

#[test]
fn image_to_stdout_and_json_summary_on_stderr() {
    let t = Target::start_plain("sleep", &["1000"]);
    let out = Command::new(BIN)
        .args([&t.pid().to_string(), "-o", "-", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = Image::from_reader(&out.stdout[..]).unwrap();
    img.verify_data().unwrap();
    assert_eq!(img.checkpoint().processes[0].pid as i32, t.pid());
    let json: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(json["pid"], t.pid());
    assert_eq!(json["image"], "-");
    assert_eq!(json["image_bytes"], out.stdout.len() as u64);
    assert_eq!(json["killed"], false);
    t.assert_running_untouched();
}

#[test]
fn json_summary_on_stdout_and_human_line_otherwise() {
    let t = Target::start_plain("sleep", &["1000"]);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("s.img");
    let out = Command::new(BIN)
        .arg(t.pid().to_string())
        .arg("-o")
        .arg(&img)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["image_bytes"], fs::metadata(&img).unwrap().len());
    assert!(json["pages_stored"].as_u64().unwrap() > 0);
    assert!(json["stopped_ms"].as_f64().unwrap() > 0.0);

    let out = Command::new(BIN)
        .arg(t.pid().to_string())
        .arg("-o")
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let line = String::from_utf8(out.stderr).unwrap();
    assert!(
        line.starts_with(&format!(
            "psnc-capture: captured PID {} into {}:",
            t.pid(),
            img.display()
        )),
        "{line}"
    );
    assert!(
        line.contains("target stopped") && line.ends_with("running on\n"),
        "{line}"
    );
}

#[test]
fn exit_codes() {
    let out = Command::new(BIN)
        .args(["1", "-o", "/tmp/x.img", "--layout", "48"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a layout class; use 32 or 64"));

    let out = Command::new(BIN)
        .args([&i32::MAX.to_string(), "-o", "/tmp/never.img"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("psnc-capture: no process with PID {}\n", i32::MAX)
    );

    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit status:")
            && help.contains("--kill")
            && help.contains("--no-store-files"),
        "{help}"
    );
    for code in ["0", "3", "64", "66", "69", "70", "73", "77"] {
        assert!(
            help.lines().any(|l| l.starts_with(&format!("  {code} "))),
            "--help does not list exit status {code}:\n{help}"
        );
    }
}

#[test]
fn permission_denied_for_an_unprivileged_user() {
    let t = Target::start_plain("sleep", &["1000"]);
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let img = dir.path().join("p.img");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .arg(t.pid().to_string())
        .arg("-o")
        .arg(&img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.starts_with(&format!(
            "psnc-capture: permission denied on PID {} (PTRACE_SEIZE)",
            t.pid()
        )),
        "{err}"
    );
    assert!(
        dir_entries(dir.path()).is_empty(),
        "{:?}",
        dir_entries(dir.path())
    );
    t.assert_running_untouched();
}

/// Starts a capture of `t` into DIR/big.img.
fn start_capture(t: &Target, dir: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .arg(t.pid().to_string())
        .arg("-o")
        .arg(dir.join("big.img"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the temporary image has grown past 16 MiB, i.e. while the tool copies memory.
fn wait_until_copying(tool: &mut std::process::Child, dir: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let growing = fs::read_dir(dir).unwrap().filter_map(Result::ok).any(|e| {
            e.file_name().to_string_lossy().starts_with(".big.img")
                && e.metadata().is_ok_and(|m| m.len() > 16 << 20)
        });
        if growing {
            return;
        }
        if Instant::now() > deadline {
            let _ = tool.kill();
            let _ = tool.wait();
            panic!("the capture did not start writing");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn sigkill_of_the_tool_while_it_reads_memory_leaves_the_target_running() {
    let t = start_patterns(&["256"]);
    let dir = tempfile::tempdir().unwrap();
    let mut tool = start_capture(&t, dir.path());
    wait_until_copying(&mut tool, dir.path());
    tool.kill().unwrap();
    tool.wait().unwrap();
    assert!(
        !dir.path().join("big.img").exists(),
        "an image under the final name"
    );
    t.assert_running_untouched();
}

#[test]
fn sigterm_of_the_tool_detaches_and_cleans_up() {
    let t = start_patterns(&["256"]);
    let dir = tempfile::tempdir().unwrap();
    let mut tool = start_capture(&t, dir.path());
    wait_until_copying(&mut tool, dir.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tool.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = tool.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "psnc-capture: interrupted by signal 15; the target was detached and left running\n"
    );
    assert!(
        dir_entries(dir.path()).is_empty(),
        "{:?}",
        dir_entries(dir.path())
    );
    t.assert_running_untouched();
}
