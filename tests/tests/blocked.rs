//! Processes blocked in a system call at the checkpoint resume it correctly (issue 3): a
//! nanosleep restarts (with its full request: the kernel's restart block is not saved) instead of
//! failing or returning early, and a read() on a pipe whose writer was outside the image gets
//! that pipe back through `--inherit-fd` and wakes on the bytes written to it after restore.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use nix::fcntl::OFlag;
use psnc_tests::{proc_state, wait_for, Bits, RunOpts, Spawn};

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe2")
}

/// Seconds the nanosleep target sleeps; capture and restore must fit well inside it.
const SLEEP: &str = "6";

fn nanosleep_restarts(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "nanosleep restart i386") {
        return;
    }
    let mut t = Spawn::new("blocked")
        .args(&["nanosleep", SLEEP])
        .bits(bits)
        .start();
    // Inside nanosleep before the capture stops it (READY comes just before the call).
    let pid = t.pid();
    // nanosleep, clock_nanosleep; i386: nanosleep, clock_nanosleep, clock_nanosleep_time64.
    let sleeping: Vec<String> = match bits {
        Bits::B64 => vec![35, 230],
        Bits::B32 => vec![162, 267, 407],
    }
    .into_iter()
    .map(|n: i32| n.to_string())
    .collect();
    wait_for(Duration::from_secs(5), || {
        let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
        let nr = s.split_whitespace().next()?.to_string();
        sleeping.contains(&nr).then_some(())
    })
    .expect("the target in nanosleep");
    t.checkpoint_restore();
    // Still inside its sleep: not woken early, not failed.
    std::thread::sleep(Duration::from_millis(300));
    let r = t.report();
    assert!(
        r.passes().is_empty() && r.fails().is_empty(),
        "woke early: {:?}",
        r.lines
    );
    assert_eq!(proc_state(t.pid()), Some('S'), "not sleeping after restore");
    let r = t.wait_done();
    r.assert_passed(&["nanosleep_result", "nanosleep_duration"]);
    // The restored thread re-issued nanosleep itself: the pre-copy's first stop had left it in
    // restart_syscall, which in a restored task has no restart block and fails with EINTR.
    assert!(
        r.lines.iter().any(|l| l.ends_with(" eintr 0")),
        "nanosleep failed with EINTR after restore: {:?}",
        r.lines
    );
}

#[test]
fn nanosleep_restarts_x86_64() {
    nanosleep_restarts(Bits::B64);
}

#[test]
fn nanosleep_restarts_i386() {
    nanosleep_restarts(Bits::B32);
}

fn read_on_inherited_pipe(resource_form: bool) {
    let (r0, w0) = pipe();
    let mut t = Spawn::new("blocked")
        .args(&["read", "0"])
        .stdin(Stdio::from(r0))
        .start();
    let link = std::fs::read_link(format!("/proc/{}/fd/0", t.pid())).expect("fd 0 link");
    let link = link.to_str().expect("utf-8 link").to_string();
    assert!(link.starts_with("pipe:["), "fd 0 is {link}");
    wait_for(Duration::from_secs(5), || {
        (proc_state(t.pid()) == Some('S')).then_some(())
    });
    let image = t.dir.join("image");
    t.capture_kill(&image);
    drop(w0);

    let (r1, w1) = pipe();
    let inherit = if resource_form {
        format!("fd[0]:{link}")
    } else {
        "fd[0]:fd:0".to_string()
    };
    t.restore(
        &image,
        &["--inherit-fd", &inherit],
        RunOpts {
            stdin: Some(Stdio::from(r1)),
            ..RunOpts::default()
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        proc_state(t.pid()),
        Some('S'),
        "not blocked in read after restore"
    );
    assert!(
        t.report().passes().is_empty(),
        "read returned before any byte was written"
    );
    let mut w = std::fs::File::from(w1);
    w.write_all(b"psnc-wakeup\n")
        .expect("write to the inherited pipe");
    t.wait_done()
        .assert_passed(&["pipe_read", "pipe_read_fd_kind"]);
}

#[test]
fn read_on_inherited_pipe_by_fd_number() {
    read_on_inherited_pipe(false);
}

#[test]
fn read_on_inherited_pipe_by_resource_name() {
    read_on_inherited_pipe(true);
}
