//! Restore refuses bad input before creating anything (issue 3): a truncated image, a flipped
//! byte, an image whose PID is in use.

use std::path::Path;

use psnc_tests::{
    assert_running_untraced, cases, comm_of, pids_with_comm, restore_run, ProcGuard, RunOpts,
    Target,
};

/// Captures a counter with --kill; returns the target (process gone) and the image.
fn captured_counter() -> (Target, std::path::PathBuf) {
    let mut t = Target::start(cases::COUNTER.name, cases::COUNTER.args);
    let image = t.dir.join("image");
    t.capture_kill(&image);
    (t, image)
}

/// Restore of `bad` fails as a bad image (65) and leaves no process behind.
fn assert_refused(t: &Target, bad: &Path) {
    let r = restore_run(bad, &[], RunOpts::default());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let left = pids_with_comm(&comm_of(&t.exe));
    // Whatever a wrong restore left behind must not outlive the test.
    let _guards: Vec<ProcGuard> = left.iter().map(|p| ProcGuard::foreign(*p)).collect();
    r.assert_status(65);
    assert!(
        !psnc_tests::alive(t.pid()),
        "a process with the image's PID {} exists after a refused restore",
        t.pid()
    );
    assert!(
        left.is_empty(),
        "processes {left:?} left by a refused restore:\n{r}"
    );
}

#[test]
fn truncated_image() {
    let (t, image) = captured_counter();
    let bytes = std::fs::read(&image).expect("read image");
    for len in [bytes.len() / 2, bytes.len() - 1, 16] {
        let bad = t.dir.join(&format!("truncated-{len}"));
        psnc_tests::write_file(&bad, &bytes[..len]);
        assert_refused(&t, &bad);
    }
}

#[test]
fn flipped_byte() {
    let (t, image) = captured_counter();
    let bytes = std::fs::read(&image).expect("read image");
    for pos in [8, bytes.len() / 3, bytes.len() / 2, bytes.len() - 9] {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        let bad = t.dir.join(&format!("flipped-{pos}"));
        psnc_tests::write_file(&bad, &b);
        assert_refused(&t, &bad);
    }
}

#[test]
fn pid_in_use() {
    let mut t = Target::start(cases::COUNTER.name, cases::COUNTER.args);
    let image = t.dir.join("image");
    t.capture(&image, &[]).assert_ok();
    let r = restore_run(&image, &[], RunOpts::default());
    r.assert_status(69);
    assert!(
        r.stderr.contains(&t.pid().to_string()),
        "the error does not name the PID in use:\n{r}"
    );
    assert_eq!(
        pids_with_comm(&comm_of(&t.exe)),
        vec![t.pid()],
        "a second process appeared"
    );
    assert_running_untraced(t.pid());
    t.verify().assert_passed(cases::COUNTER.expect);
}
