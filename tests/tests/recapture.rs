//! Restore with --leave-stopped, capture the stopped process again: the two images differ only in
//! the documented fields (issue 3).

use psnc_tests::{assert_running_untraced, cases, proc_state, run, tool, RunOpts, Spawn};

#[test]
fn leave_stopped_then_capture_again_gives_the_same_image() {
    let mut t = Spawn::new("memory").args(&["all"]).start();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    t.restore(&image, &["--leave-stopped"], RunOpts::default());
    let pid = t.pid();
    assert_eq!(proc_state(pid), Some('T'), "not left stopped");
    let image2 = t.dir.join("image2");
    t.capture(&image2, &[]).assert_ok();
    assert_eq!(
        proc_state(pid),
        Some('T'),
        "capture changed the stopped state"
    );
    let diff = run(
        &tool("psnc-imgtool"),
        &[
            "diff",
            // What a restore changes by design: the parent, session and process group (a new
            // session), the timers' remaining time, how a stopped syscall is recorded, and the
            // CPU number the kernel writes into each thread's rseq area.
            "--ignore=identity,ppid,sid,pgid,itimers,restart,rseq",
            image.to_str().expect("utf-8"),
            image2.to_str().expect("utf-8"),
        ],
        RunOpts::default(),
    );
    diff.assert_ok();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGCONT,
    )
    .expect("SIGCONT");
    psnc_tests::wait_for(std::time::Duration::from_secs(5), || {
        (proc_state(pid) != Some('T')).then_some(())
    });
    assert_running_untraced(pid);
    let mut expect: Vec<&str> = Vec::new();
    for c in [
        cases::MEM_HEAP,
        cases::MEM_BSS,
        cases::MEM_ANON,
        cases::MEM_GUARD,
        cases::MEM_FILE_PRIVATE,
        cases::MEM_FILE_SHARED,
    ] {
        expect.extend_from_slice(c.expect);
    }
    t.verify().assert_passed(&expect);
}
