//! Capture, kill, restore, continue: a small C program (built with `cc` at test time) that sets up
//! heap, mappings with a PROT_NONE region and a hole, a file with an offset, a pipe with unread
//! bytes, a handler and a blocked pending signal, then counts. After the restore it must count on
//! from where it was (same PID), and on SIGUSR2 it checks its own state and reports.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use psnc_format::Image;
use psnc_proc::ProcDir;
use psnc_restore::{restore, Options};

fn build_target(dir: &Path) -> PathBuf {
    build(dir, &[]).unwrap()
}

/// Compiles the target with extra `cc` flags; `None` when the compiler cannot (no multilib).
fn build(dir: &Path, flags: &[&str]) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/roundtrip.c");
    let exe = dir.join("roundtrip");
    let st = Command::new("cc")
        .args(flags)
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .ok()?;
    st.success().then_some(exe)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reaps the killed original so its PID is free again (the capture, tracing our own child, may
/// have reaped it already).
fn reap(child: &mut std::process::Child) {
    let _ = child.wait();
    let pid = child.id();
    wait_for("the original to be gone", || {
        !ProcDir::new(pid as i32).exists()
    });
}

/// Kills a restored process when a test fails half-way, so it does not outlive the test.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.0), None);
    }
}

fn counter(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("counter"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn counter_continues_after_capture_kill_restore() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_target(dir.path());
    round_trip(dir.path(), &exe);
}

/// The same for an i386 build: an ELF32 stub, `int 0x80`, the 32-bit vdso, TLS entries.
#[test]
fn i386_counter_continues_after_capture_kill_restore() {
    let dir = tempfile::tempdir().unwrap();
    let Some(exe) = build(dir.path(), &["-m32"]) else {
        psnc_testkit::skip!(
            "i386_counter_continues_after_capture_kill_restore",
            psnc_testkit::NO_M32
        );
    };
    round_trip(dir.path(), &exe);
}

fn round_trip(dir: &Path, exe: &Path) {
    let mut child = Command::new(exe)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for("the target to be ready", || {
        dir.join("ready").exists() && counter(dir) > 10
    });

    let image_path = dir.join("image");
    let mut copts = psnc_capture::Options::new(psnc_capture::Output::Path(image_path.clone()));
    copts.kill = true;
    psnc_capture::capture(pid as i32, &copts).unwrap();
    reap(&mut child);
    let at_capture = counter(dir);

    let image = Image::open(&image_path).unwrap();
    let restored = restore(&image, &Options::default()).unwrap();
    let guard = KillOnDrop(restored.pid as i32);
    assert_eq!(restored.pid, pid);
    assert!(!restored.stopped);

    // It counts on from the captured value: not from zero, not stuck.
    wait_for("the restored target to count on", || {
        counter(dir) > at_capture + 20
    });
    let exe_link = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe_link, exe);
    let maps = ProcDir::new(pid as i32).maps().unwrap();
    let mapped = |name: &str| maps.iter().any(|m| m.path.contains(name));
    assert!(!mapped("psnc-stub"), "{maps:#?}");
    assert!(
        mapped("[heap]") && mapped("[stack]") && mapped("[vdso]"),
        "{maps:#?}"
    );

    let p = Pid::from_raw(pid as i32);
    kill(p, Signal::SIGUSR2).unwrap();
    let status = waitpid(p, None).unwrap();
    std::mem::forget(guard); // reaped: its PID may be reused now
    let report = std::fs::read_to_string(dir.join("report")).unwrap_or_default();
    assert_eq!(status, WaitStatus::Exited(p, 0), "report: {report}");
    let (word, n) = report.trim().split_once(' ').unwrap();
    assert_eq!(word, "ok");
    assert!(n.parse::<u64>().unwrap() > at_capture + 20, "{report}");
}

/// `leave_stopped`: the restored process is in a job-control stop, and runs on after SIGCONT.
/// Also `--inherit-fd` for a pipe whose other end was outside the image (its stderr).
#[test]
fn leave_stopped_then_continue() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_target(dir.path());
    // Its stderr is a pipe whose other end stays with us, outside the image.
    let (_rd, wr) = nix::unistd::pipe().unwrap();
    let mut child = Command::new(&exe)
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(wr.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for("the target to be ready", || {
        dir.path().join("ready").exists() && counter(dir.path()) > 5
    });
    let image_path = dir.path().join("image");
    let mut copts = psnc_capture::Options::new(psnc_capture::Output::Path(image_path.clone()));
    copts.kill = true;
    psnc_capture::capture(pid as i32, &copts).unwrap();
    reap(&mut child);
    let at_capture = counter(dir.path());

    let image = Image::open(&image_path).unwrap();
    // With `ExternalMode::Refuse`, refused unless the pipe is handed in.
    let strict = Options {
        external: psnc_restore::ExternalMode::Refuse,
        ..Options::default()
    };
    let err = restore(&image, &strict).unwrap_err();
    assert!(
        matches!(&err, psnc_restore::RestoreError::ExternalFd { fd: 2, end, .. } if end == "write end"),
        "{err:?}"
    );
    use std::os::fd::AsRawFd;
    let opts = Options {
        leave_stopped: true,
        inherit_fds: vec![
            psnc_restore::InheritFd::parse(&format!("fd[{}]:fd:2", wr.as_raw_fd())).unwrap(),
        ],
        // --inherit-fd satisfies the strict mode.
        ..strict
    };
    let restored = restore(&image, &opts).unwrap();
    let guard = KillOnDrop(restored.pid as i32);
    assert!(restored.stopped);
    let proc_dir = ProcDir::new(pid as i32);
    let state = || proc_dir.state().unwrap();
    // Detaching from the group-stop wakes the task for a moment before it stops again.
    wait_for("the restored process to be stopped", || state() == 'T');
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        counter(dir.path()),
        at_capture,
        "a stopped process must not count"
    );

    let p = Pid::from_raw(pid as i32);
    kill(p, Signal::SIGCONT).unwrap();
    wait_for("the target to count on after SIGCONT", || {
        counter(dir.path()) > at_capture + 5
    });
    kill(p, Signal::SIGUSR2).unwrap();
    // The stop and continue are reported to us, the parent, before the exit.
    loop {
        match waitpid(p, None).unwrap() {
            WaitStatus::Exited(_, code) => {
                std::mem::forget(guard); // reaped: its PID may be reused now
                let report = std::fs::read_to_string(dir.path().join("report")).unwrap_or_default();
                assert_eq!(code, 0, "report: {report}");
                break;
            }
            WaitStatus::Signaled(_, sig, _) => {
                std::mem::forget(guard);
                panic!("killed by {sig}")
            }
            _ => continue,
        }
    }
}

/// Rewrites an image with `edit` applied to its model (pages and files copied over).
fn rewrite(image: &Image, edit: impl FnOnce(&mut psnc_format::model::Checkpoint)) -> Image {
    let mut ckpt = image.checkpoint().clone();
    let mut w = psnc_format::ImageWriter::new(Vec::new(), image.class()).unwrap();
    for p in &mut ckpt.processes {
        for run in &mut p.pages {
            let bytes = image.page_bytes(run).unwrap();
            *run = w.write_pages(run.addr, bytes).unwrap();
        }
    }
    for (i, f) in image.checkpoint().files.iter().enumerate() {
        let id = w
            .store_file(
                &f.path,
                image
                    .file_bytes(psnc_format::model::FileId(i as u32))
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(id.0 as usize, i, "stored files keep their ids");
    }
    edit(&mut ckpt);
    Image::from_vec(w.finish(ckpt).unwrap()).unwrap()
}

/// A step that fails after the stub exists (here: an RLIMIT_NOFILE above fs.nr_open, which even
/// root cannot set) kills the half-built process: the error names the step, and nothing is left.
#[test]
fn failed_step_kills_the_half_built_process() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_target(dir.path());
    let mut child = Command::new(&exe)
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for("the target to be ready", || {
        dir.path().join("ready").exists()
    });
    let image_path = dir.path().join("image");
    let mut copts = psnc_capture::Options::new(psnc_capture::Output::Path(image_path.clone()));
    copts.kill = true;
    psnc_capture::capture(pid as i32, &copts).unwrap();
    reap(&mut child);

    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let image = rewrite(&Image::open(&image_path).unwrap(), |c| {
        c.processes[0].rlimits[libc::RLIMIT_NOFILE as usize].max = nr_open + 1;
    });
    let err = restore(&image, &Options::default()).unwrap_err();
    assert!(
        matches!(&err, psnc_restore::RestoreError::RemoteCall { pid: p, call: "prlimit64", errno: nix::errno::Errno::EPERM, step }
            if *p == pid && step.starts_with("setting rlimit 7")),
        "{err:?}"
    );
    assert!(!err.is_refusal());
    assert!(
        !ProcDir::new(pid as i32).exists(),
        "the half-built process is gone"
    );
}
