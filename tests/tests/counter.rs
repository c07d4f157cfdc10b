//! The counter runs on from where it stopped: its ticks continue without a gap, a repeat or a
//! restart, and the restored process keeps its PID (issue 3).

use std::time::Duration;

use psnc_tests::{assert_consecutive, cases, wait_ticks, Target};

#[test]
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

#[test]
fn json_summary() {
    let mut t = Target::start(cases::COUNTER.name, cases::COUNTER.args);
    let image = t.dir.join("image");
    let r = t.capture(&image, &["--json"]);
    r.assert_ok();
    let line = r.stdout.trim().lines().last().unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{r}"));
    let size = std::fs::metadata(&image).expect("image").len();
    assert_eq!(v["pid"].as_u64(), Some(u64::from(t.pid())), "{v}");
    assert_eq!(v["image_bytes"].as_u64(), Some(size), "{v}");
    assert!(v["stopped_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{v}");
    t.verify().assert_passed(cases::COUNTER.expect);
}

#[test]
fn image_through_a_pipe() {
    let mut t = Target::start(cases::COUNTER.name, cases::COUNTER.args);
    let ticks_path = t.report.with_extension("ticks");
    wait_ticks(&ticks_path, 3, Duration::from_secs(10));
    // psnc-capture PID -o - --kill | psnc-restore -, in the background: the killed original is
    // our child, and its zombie holds the PID until we reap it, which must happen while the
    // pipeline runs.
    let script = format!(
        "set -o pipefail; '{}' {} -o - --kill | '{}' -",
        psnc_tests::tool("psnc-capture").display(),
        t.pid(),
        psnc_tests::tool("psnc-restore").display()
    );
    let out = t.dir.join("pipeline.out");
    let err = t.dir.join("pipeline.err");
    let mut pipeline = std::process::Command::new("/bin/bash")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).expect("create pipeline.out"))
        .stderr(std::fs::File::create(&err).expect("create pipeline.err"))
        .spawn()
        .expect("start the pipeline");
    assert!(
        t.proc.reap(Duration::from_secs(60)).is_some(),
        "the original was not killed"
    );
    let st = psnc_tests::wait_for(Duration::from_secs(60), || {
        pipeline.try_wait().ok().flatten()
    })
    .expect("the pipeline did not finish");
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(st.success(), "the pipeline failed ({st:?}):\n{stderr}");
    let pid: u32 = stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no PID printed: {stdout:?}\n{stderr}"));
    t.proc = psnc_tests::ProcGuard::foreign(pid);
    let n = t.ticks().len();
    wait_ticks(&ticks_path, n + 5, Duration::from_secs(10));
    t.verify().assert_passed(cases::COUNTER.expect);
    assert_consecutive(&t.ticks());
}

#[test]
fn foreground_forwards_sigterm() {
    use std::process::{Command, Stdio};
    let mut t = Target::start(cases::COUNTER.name, cases::COUNTER.args);
    let ticks_path = t.report.with_extension("ticks");
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let mut fg = Command::new(psnc_tests::tool("psnc-restore"))
        .arg(&image)
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start psnc-restore --foreground");
    let fg_guard = psnc_tests::ProcGuard::foreign(fg.id());
    let n = t.ticks().len();
    wait_ticks(&ticks_path, n + 5, Duration::from_secs(20));
    t.proc = psnc_tests::ProcGuard::foreign(t.pid());
    assert!(
        matches!(fg.try_wait(), Ok(None)),
        "--foreground returned while the process runs"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fg.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .expect("SIGTERM");
    let st = psnc_tests::wait_for(Duration::from_secs(10), || fg.try_wait().ok().flatten())
        .expect("psnc-restore --foreground did not exit after SIGTERM");
    drop(fg_guard);
    assert!(
        !st.success(),
        "exit status {st:?} does not tell the process was terminated"
    );
    let pid = t.pid();
    psnc_tests::wait_for(Duration::from_secs(5), || {
        (!psnc_tests::alive(pid)).then_some(())
    })
    .expect("the restored process survived the forwarded SIGTERM");
}
