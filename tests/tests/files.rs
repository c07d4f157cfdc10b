//! Open file descriptors survive capture, kill and restore (issue 3).

use psnc_tests::{cases, roundtrip, Bits};

#[test]
fn regular_file_offset() {
    roundtrip(&cases::FILE_OFFSET, Bits::B64);
}

#[test]
fn append_mode() {
    roundtrip(&cases::FILE_APPEND, Bits::B64);
}

#[test]
fn deleted_open_file() {
    roundtrip(&cases::FILE_DELETED, Bits::B64);
}

#[test]
fn pipe_with_unread_bytes() {
    roundtrip(&cases::FILE_PIPE, Bits::B64);
}

/// Starts a counter whose stdout is a pseudo-terminal (not its controlling tty), captures it with
/// --kill, restores it with `args`; returns the link of the restored fd 1.
fn restore_tty_stdout(args: &[&str]) -> (psnc_tests::Target, String) {
    let (master, slave) = psnc_tests::open_pty();
    let mut t = psnc_tests::Spawn::new("counter").stdout(slave).start();
    let link = std::fs::read_link(format!("/proc/{}/fd/1", t.pid())).expect("fd 1");
    assert!(
        link.to_string_lossy().starts_with("/dev/pts/"),
        "fd 1 is {link:?}"
    );
    let image = t.dir.join("image");
    t.capture_kill(&image);
    drop(master);
    t.restore(&image, args, psnc_tests::RunOpts::default());
    let link = std::fs::read_link(format!("/proc/{}/fd/1", t.pid())).expect("restored fd 1");
    (t, link.to_string_lossy().into_owned())
}

#[test]
fn tty_stdout_becomes_dev_null_with_stdio_null() {
    let (mut t, link) = restore_tty_stdout(&["--stdio", "null"]);
    assert_eq!(link, "/dev/null");
    t.verify().assert_passed(psnc_tests::cases::COUNTER.expect);
}

#[test]
fn tty_stdout_becomes_the_restore_tools_stdout() {
    let (mut t, link) = restore_tty_stdout(&[]);
    // The harness gives every tool a stdout file under /tmp/psnc-e2e-run-*.
    assert!(link.contains("psnc-e2e-run-"), "restored fd 1 is {link}");
    t.verify().assert_passed(psnc_tests::cases::COUNTER.expect);
}

/// Thousands of fds with gaps and mixed close-on-exec flags come back at their numbers, with
/// their offsets and flags, through one batch of predicted `pidfd_getfd` numbers.
#[test]
fn many_fds_x86_64() {
    roundtrip(&cases::MANY_FDS, Bits::B64);
}

#[test]
fn many_fds_i386() {
    if psnc_tests::m32_or_skip(Bits::B32, "many fds i386") {
        roundtrip(&cases::MANY_FDS, Bits::B32);
    }
}
