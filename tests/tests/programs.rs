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
/// file description (format 1.3 records it), and the restored sleep has them as one again, at
/// the offset the shell's `echo` left, with no warning from capture.
#[test]
fn redirect_shared_by_two_fds_stays_shared() {
    let dir = WorkDir::new("redirect");
    let log = dir.join("log");
    let mut p = spawn_program(
        Command::new("sh")
            .arg("-c")
            .arg("exec >\"$0\" 2>&1; echo started; exec sleep 1000")
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
    let r = capture(pid, &image, &["--kill", "--json"]);
    r.assert_ok();
    assert!(!r.stderr.contains("warning"), "{r}");
    let summary: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("json");
    assert_eq!(summary["warnings"], serde_json::json!([]), "{r}");
    assert!(p.reap(Duration::from_secs(10)).is_some());
    let img = psnc_format::Image::open(&image).expect("image");
    let fds: Vec<(u32, i32)> = img.checkpoint().fd_shares[0]
        .fds
        .iter()
        .map(|f| (f.pid, f.fd))
        .collect();
    assert_eq!(fds, [(pid, 1), (pid, 2)]);
    let restored = restore(&image, &[], RunOpts::default());
    assert_eq!(restored.pid, pid);
    assert!(psnc_ptrace::sys::kcmp_file(pid as i32, 1, pid as i32, 2).expect("kcmp"));
    // One offset: where the shell's `echo started` left it, the same through both fds.
    for fd in [1, 2] {
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
        assert!(info.starts_with("pos:\t8\n"), "fd {fd}: {info}");
    }
}

/// The shell's redirect handed to a program of either word size: `sh -c 'exec >LOG 2>&1; echo
/// started; exec counter REPORT'` leaves fds 1 and 2 of the counter (x86_64 or i386) one open
/// file description; the image groups them and the restored counter has them as one again, at
/// the offset the shell's `echo` left, ticking on without a gap.
fn redirect_into(bits: psnc_tests::Bits) {
    if !psnc_tests::m32_or_skip(bits, "shell redirect into an i386 program") {
        return;
    }
    let dir = WorkDir::new("redirect-exec");
    let log = dir.join("log");
    let report = dir.join("report");
    let counter = psnc_tests::target_binary("counter", bits);
    let mut p = spawn_program(
        Command::new("sh")
            .arg("-c")
            .arg("exec >\"$0\" 2>&1; echo started; exec \"$1\" \"$2\"")
            .arg(&log)
            .arg(&counter)
            .arg(&report),
    );
    let pid = p.pid;
    wait_for(Duration::from_secs(30), || {
        psnc_tests::Report::read(&report)
            .lines
            .iter()
            .any(|l| l.starts_with("READY "))
            .then_some(())
    })
    .expect("the counter did not report READY");
    let ticks = report.with_extension("ticks");
    wait_ticks(&ticks, 2, Duration::from_secs(10));
    let image = dir.join("image");
    capture_kill(&mut p, &image);
    let img = psnc_format::Image::open(&image).expect("image");
    let fds: Vec<(u32, i32)> = img.checkpoint().fd_shares[0]
        .fds
        .iter()
        .map(|f| (f.pid, f.fd))
        .collect();
    assert_eq!(fds, [(pid, 1), (pid, 2)]);
    let before = read_ticks(&ticks).len();
    let restored = restore(&image, &[], RunOpts::default());
    assert_eq!(restored.pid, pid);
    assert!(psnc_ptrace::sys::kcmp_file(pid as i32, 1, pid as i32, 2).expect("kcmp"));
    for fd in [1, 2] {
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
        assert!(info.starts_with("pos:\t8\n"), "fd {fd}: {info}");
    }
    let after = wait_ticks(&ticks, before + 5, Duration::from_secs(20));
    assert_consecutive(&after);
}

#[test]
fn shell_redirect_into_a_program_stays_shared_x86_64() {
    redirect_into(psnc_tests::Bits::B64);
}

#[test]
fn shell_redirect_into_a_program_stays_shared_i386() {
    redirect_into(psnc_tests::Bits::B32);
}
