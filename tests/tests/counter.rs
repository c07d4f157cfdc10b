//! The counter runs on from where it stopped: its ticks continue without a gap, a repeat or a
//! restart, and the restored process keeps its PID (issue 3).

use std::time::Duration;

use psnc_tests::{assert_consecutive, cases, wait_ticks, Target};

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn counts_on_after_restore() {
    let mut t = Target::start(cases::COUNTER.name, cases::COUNTER.args);
    let ticks_path = t.report.with_extension("ticks");
    wait_ticks(&ticks_path, 5, Duration::from_secs(10));
    t.checkpoint_restore();
    let before = t.ticks().len();
    let after = wait_ticks(&ticks_path, before + 10, Duration::from_secs(20));
    t.verify().assert_passed(cases::COUNTER.expect);
    assert_consecutive(&after);
}

#[test]
#[ignore = "needs psnc-capture and psnc-restore: issue 3"]
fn capture_without_kill_leaves_it_counting() {
    let mut t = Target::start(cases::COUNTER.name, cases::COUNTER.args);
    let ticks_path = t.report.with_extension("ticks");
    wait_ticks(&ticks_path, 3, Duration::from_secs(10));
    let image = t.dir.join("image");
    t.capture(&image, &[]).assert_ok();
    assert!(image.is_file());
    psnc_tests::assert_running_untraced(t.pid());
    let n = t.ticks().len();
    wait_ticks(&ticks_path, n + 5, Duration::from_secs(10));
    t.verify().assert_passed(cases::COUNTER.expect);
    assert_consecutive(&t.ticks());
}
