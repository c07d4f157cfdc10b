//! Restore refuses bad input before creating anything (issue 3): a truncated image, a flipped
//! byte, an image whose PID is in use, more fds than the tool may hold open. Whatever byte
//! `psnc-imgtool verify` refuses when damaged, restore refuses too (the header's padding
//! included, which no digest covers).

use std::path::Path;

use psnc_tests::{
    assert_running_untraced, cases, comm_of, pids_with_comm, restore_run, Bits, ProcGuard, RunOpts,
    Spawn, Target,
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

/// An image with more than 64 MiB of pages has their digests checked while the process is
/// rebuilt (restore's `PageDigests::Later`): a flipped byte in the pages is still refused as a
/// bad image naming the chunk, the half-built process is gone, and the intact image restores.
fn flipped_page_byte_of_a_big_image(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "big image with a flipped page byte, i386") {
        return;
    }
    let mut t = Spawn::new("memory")
        .args(&["fill", "96"])
        .bits(bits)
        .start();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let bytes = std::fs::read(&image).expect("read image");
    // 96 of the image's ~100 MiB are the fill's pages: the middle is one of them.
    let mut b = bytes.clone();
    b[bytes.len() / 2] ^= 0x10;
    let bad = t.dir.join("flipped-page");
    psnc_tests::write_file(&bad, &b);
    let r = restore_run(&bad, &[], RunOpts::default());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let left = pids_with_comm(&comm_of(&t.exe));
    let _guards: Vec<ProcGuard> = left.iter().map(|p| ProcGuard::foreign(*p)).collect();
    r.assert_status(65);
    assert!(
        r.stderr.contains("page-data, chunk"),
        "the refusal does not name the damaged chunk:\n{r}"
    );
    assert!(left.is_empty(), "processes {left:?} left behind:\n{r}");
    assert!(
        !psnc_tests::alive(t.pid()),
        "a process with the image's PID {} exists after the refusal",
        t.pid()
    );
    t.restore(&image, &[], RunOpts::default());
    t.verify().assert_passed(&["fill"]);
}

#[test]
fn flipped_page_byte_of_a_big_image_x86_64() {
    flipped_page_byte_of_a_big_image(Bits::B64);
}

#[test]
fn flipped_page_byte_of_a_big_image_i386() {
    flipped_page_byte_of_a_big_image(Bits::B32);
}

/// Every damaged byte of the header, the first bytes after it and a spread over the rest of the
/// image: when `psnc-imgtool verify` refuses the copy, restore must refuse it as a bad image
/// before creating anything. Bytes the spec says readers ignore (reserved header bits) verify
/// accepts; those are not restored here.
#[test]
fn restore_refuses_what_verify_refuses() {
    let (t, image) = captured_counter();
    let bytes = std::fs::read(&image).expect("read image");
    let mut positions: Vec<usize> = (0..64).collect();
    positions.extend((1..12).map(|k| k * bytes.len() / 12));
    positions.extend((bytes.len() - 56..bytes.len()).step_by(4));
    let (mut refused, mut ignored) = (0, Vec::new());
    for pos in positions {
        let mut b = bytes.clone();
        b[pos] ^= 0x41;
        let bad = t.dir.join("damaged");
        psnc_tests::write_file(&bad, &b);
        let v = psnc_tests::run(
            &psnc_tests::tool("psnc-imgtool"),
            &["verify", bad.to_str().expect("utf-8 path")],
            RunOpts::default(),
        );
        if v.ok() {
            ignored.push(pos);
            continue;
        }
        refused += 1;
        assert_refused(&t, &bad);
    }
    eprintln!(
        "{refused} damaged copies refused by verify and restore; verify accepted {ignored:?}"
    );
    assert!(
        refused >= 70,
        "only {refused} damaged copies were refused by verify"
    );
    assert!(
        ignored.iter().all(|p| (16..24).contains(p)),
        "verify accepted damage outside the header's flags and reserved bytes: {ignored:?}"
    );
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

/// The restore tool holds every fd of the image at once: under an RLIMIT_NOFILE it cannot
/// raise (hard 40, no CAP_SYS_RESOURCE) it refuses (69) before creating anything, naming the
/// limit and what to do; the same image restores under the usual limit.
#[test]
fn fd_limit_too_low_for_the_image() {
    let (mut t, image) = captured_counter();
    let restore = psnc_tests::tool("psnc-restore");
    let r = psnc_tests::run(
        Path::new("prlimit"),
        &[
            "--nofile=40:40",
            "setpriv",
            "--bounding-set",
            "-sys_resource",
            restore.to_str().expect("utf-8"),
            image.to_str().expect("utf-8"),
        ],
        RunOpts::default(),
    );
    r.assert_status(69);
    assert!(
        r.stderr.contains("RLIMIT_NOFILE is 40 (hard 40)") && r.stderr.contains("ulimit -n"),
        "the refusal does not name the limit and the remedy:\n{r}"
    );
    assert!(
        !psnc_tests::alive(t.pid()),
        "a process exists after the refusal"
    );
    t.restore(&image, &[], RunOpts::default());
    t.verify().assert_passed(cases::COUNTER.expect);
}

/// A PID no process has can still be taken: a process group (and session) keeps its leader's
/// PID while any member lives. `sleep 1000` is a session leader whose group holds a `sleep 60`
/// that is not its child (its parent exited), so it stays outside the capture. After a kill the
/// image's PID has no /proc entry but clone3 refuses it: the restore names the session and the
/// process holding it (69), and succeeds once that process is gone.
#[test]
fn pid_held_as_the_session_of_a_process_outside() {
    let dir = psnc_tests::WorkDir::new("pid-held-as-session");
    let child = std::process::Command::new("setsid")
        .args(["sh", "-c", "(sleep 60 &); exec sleep 1000"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("setsid");
    let mut leader = ProcGuard::child(child);
    let pid = leader.pid;
    let member = psnc_tests::wait_for(std::time::Duration::from_secs(5), || {
        let pids = pids_with_comm("sleep");
        let m = pids.into_iter().find(|p| {
            *p != pid && psnc_tests::status_field(*p, "NSsid").as_deref() == Some(&pid.to_string())
        });
        m.filter(|_| comm_of_pid(pid) == "sleep")
    })
    .expect("the session's second sleep");
    let mut member = ProcGuard::foreign(member);
    let image = dir.join("image");
    psnc_tests::capture(pid, &image, &["--kill"]).assert_ok();
    leader.reap(std::time::Duration::from_secs(5));
    let r = restore_run(&image, &[], RunOpts::default());
    r.assert_status(69);
    assert!(
        r.stderr.contains(&format!("PID {pid} is in use"))
            && r.stderr
                .contains(&format!("session ID of sleep (PID {})", member.pid)),
        "the refusal does not name the session and its holder:\n{r}"
    );
    assert!(
        !psnc_tests::alive(pid),
        "a process exists after the refusal"
    );
    member.kill();
    // Killed is not enough: the zombie holds the session until its new parent reaps it.
    let gone = Path::new("/proc").join(member.pid.to_string());
    psnc_tests::wait_for(std::time::Duration::from_secs(10), || {
        (!gone.exists()).then_some(())
    })
    .expect("the holder reaped");
    let mut restored = psnc_tests::restore(&image, &[], RunOpts::default());
    assert_eq!(comm_of_pid(pid), "sleep");
    assert_running_untraced(pid);
    restored.kill();
}

fn comm_of_pid(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}
