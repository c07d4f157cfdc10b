//! Real programs nobody wrote for this project (issue 3): a python3 loop with state, a bash loop,
//! and `sleep 1000`, each captured, killed and restored.

use std::process::Command;
use std::time::Duration;

use psnc_tests::{
    assert_consecutive, assert_running_untraced, capture, capture_kill, proc_state,
    python_log_roundtrip, read_ticks, restore, spawn_program, wait_for, wait_ticks, RunOpts,
    WorkDir,
};

/// Each tick: the counter and the sum of squares kept in a growing list.
const PY_LOOP: &str = r#"
import sys, time
log = sys.argv[1]
state = []
i = 0
while True:
    i += 1
    state.append(i * i)
    with open(log, "a") as f:
        f.write(f"{i} {sum(state)}\n")
    time.sleep(0.05)
"#;

#[test]
fn python3_loop_with_state() {
    for f in python_log_roundtrip("python", PY_LOOP) {
        let i = f[0];
        assert_eq!(
            f[1],
            i * (i + 1) * (2 * i + 1) / 6,
            "state lost at tick {i}: {f:?}"
        );
    }
}

/// A bash loop that forks nothing: arithmetic and a builtin echo with a redirection.
const BASH_LOOP: &str =
    r#"i=0; while :; do i=$((i+1)); if ((i % 5000 == 0)); then echo $((i/5000)) >> "$1"; fi; done"#;

#[test]
fn bash_loop() {
    let dir = WorkDir::new("bash");
    let log = dir.join("log");
    let mut p = spawn_program(
        Command::new("bash")
            .args(["-c", BASH_LOOP, "bash"])
            .arg(&log),
    );
    wait_ticks(&log, 5, Duration::from_secs(20));
    let image = dir.join("image");
    capture_kill(&mut p, &image);
    let before = read_ticks(&log).len();
    let _r = restore(&image, &[], RunOpts::default());
    let ticks = wait_ticks(&log, before + 5, Duration::from_secs(30));
    assert_consecutive(&ticks);
}

#[test]
fn sleep_1000_keeps_sleeping() {
    let dir = WorkDir::new("sleep");
    let mut p = spawn_program(Command::new("sleep").arg("1000"));
    let pid = p.pid;
    wait_for(Duration::from_secs(5), || {
        (proc_state(pid) == Some('S')).then_some(())
    })
    .expect("sleep is not sleeping");
    let image = dir.join("image");
    capture_kill(&mut p, &image);
    let mut r = restore(&image, &[], RunOpts::default());
    std::thread::sleep(Duration::from_secs(2));
    assert!(r.alive(), "sleep 1000 exited after restore");
    assert_running_untraced(pid);
    assert_eq!(proc_state(pid), Some('S'), "not sleeping");
    // In clock_nanosleep (230) or nanosleep (35), not anywhere else.
    let proc_dir = psnc_proc::ProcDir::new(pid as i32);
    let sc = proc_dir.syscall_nr();
    assert!(
        matches!(sc, Ok(Some(230 | 35))),
        "sleep is in syscall {sc:?}, not a sleep"
    );
    let comm = proc_dir.comm().unwrap_or_default();
    assert_eq!(comm, "sleep");
}

/// `sleep` started as `sleep 1000 >LOG 2>&1`, the usual redirect: fds 1 and 2 share one open
/// file description, which restore cannot share yet. Capture says so (a warning naming both
/// fds, also in `--json`) instead of restoring them silently apart; a process without such
/// sharing gets no warning.
#[test]
fn redirect_shared_by_two_fds_is_warned_about() {
    let dir = WorkDir::new("redirect");
    let log = dir.join("log");
    let mut p = spawn_program(
        Command::new("sh")
            .arg("-c")
            .arg("exec sleep 1000 >\"$0\" 2>&1")
            .arg(&log),
    );
    let pid = p.pid;
    wait_for(Duration::from_secs(5), || {
        let comm = psnc_proc::ProcDir::new(pid as i32)
            .comm()
            .unwrap_or_default();
        (comm == "sleep" && proc_state(pid) == Some('S')).then_some(())
    })
    .expect("sleep is not sleeping");
    let image = dir.join("image");
    let r = capture(pid, &image, &["--json"]);
    r.assert_ok();
    let want = format!(
        "psnc-capture: warning: PID {pid}: fds 1 and 2 share one open file description of the \
         regular file {}; restore gives each fd its own description",
        log.display()
    );
    assert!(r.stderr.contains(&want), "expected {want:?} in:\n{r}");
    let summary: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("json");
    let warnings = summary["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{r}");
    assert_running_untraced(pid);
    p.kill();

    let mut q = spawn_program(Command::new("sleep").arg("1000"));
    let r = capture(q.pid, &dir.join("image2"), &["--json"]);
    r.assert_ok();
    assert!(!r.stderr.contains("warning"), "{r}");
    q.kill();
}
