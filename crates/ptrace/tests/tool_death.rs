//! A tool that dies (SIGKILL) while it holds a target stopped, outside the windows in which the
//! target's registers are borrowed, must leave the target running and unchanged.
//!
//! The tracer has to be another process: the test re-runs its own binary with one `#[ignore]`d
//! helper test selected and an environment variable naming the target.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{slept, Target};
use psnc_ptrace::{Arch, OnSignal, Options, RemoteSyscaller, Tracee};

const ENV: &str = "PSNC_PTRACE_TRACER_TARGET";
const SLEEP_MS: u64 = 1500;

/// The tracer: seize, stop, run remote syscalls, report, then wait to be killed.
#[test]
#[ignore = "helper process for tracer_killed_after_remote_syscalls_leaves_target_intact"]
fn tracer_helper() {
    let Ok(pid) = std::env::var(ENV) else { return };
    let pid: i32 = pid.parse().expect("pid");
    let mut t = Tracee::seize(pid, Options::empty()).expect("seize");
    t.stop(OnSignal::Deliver).expect("stop");
    {
        let mut sc = RemoteSyscaller::find(&mut t).expect("syscaller");
        sc.getpid().expect("getpid");
        sc.brk(0).expect("brk");
        sc.get_sigaltstack().expect("sigaltstack");
        sc.finish().expect("finish");
    }
    println!("STOPPED {:?}", t.current_stop());
    std::thread::sleep(std::time::Duration::from_secs(100));
}

fn tracer_killed(a: Arch) {
    let Some(tgt) = Target::start(a, SLEEP_MS) else {
        psnc_testkit::skip!(format!("tracer_killed {a:?}"), psnc_testkit::NO_M32);
    };
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut helper = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "tracer_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, tgt.pid().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn helper");
    let mut out = BufReader::new(helper.stdout.take().expect("stdout"));
    let mut helper = KillOnDrop(helper);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read helper") > 0,
            "helper ended without stopping the target"
        );
        if line.contains("STOPPED") {
            break;
        }
    }
    let parked = line.contains("Interrupt");
    helper.0.kill().expect("SIGKILL helper");
    helper.0.wait().expect("reap helper");

    let (out, code) = tgt.finish();
    assert_eq!(code, 0, "target died after the tool's death: {out}");
    let (ret, errno, ms) = slept(&out);
    assert_eq!((ret, errno), (0, 0), "{out}");
    assert!(ms + 20 >= SLEEP_MS, "{out}");
    assert!(parked, "parked in {line}");
}

#[test]
fn x86_64_tracer_killed_after_remote_syscalls_leaves_target_intact() {
    tracer_killed(Arch::X86_64);
}

#[test]
fn i386_tracer_killed_after_remote_syscalls_leaves_target_intact() {
    tracer_killed(Arch::I386);
}
