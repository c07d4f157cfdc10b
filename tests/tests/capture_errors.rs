//! Capture's bad paths (issue 3): a clear error, the target still running and unchanged, and no
//! image under the final name.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use psnc_tests::{
    assert_running_untraced, capture, cases, m32_or_skip, run, status_field, tool, wait_for, Bits,
    RunOpts, Spawn, Target, Tmpfs, ToolRun,
};

fn assert_no_image(image: &Path) {
    assert!(
        !image.exists(),
        "an image exists at {} after a failed capture",
        image.display()
    );
}

/// The target runs on its own and its state is intact.
fn assert_untouched(t: &mut Target, expect: &[&str]) {
    assert_running_untraced(t.pid());
    t.verify().assert_passed(expect);
}

fn assert_names_pid(r: &ToolRun, pid: u32) {
    assert!(
        r.stderr.contains(&pid.to_string()),
        "the error does not name PID {pid}:\n{r}"
    );
}

#[test]
fn pid_that_does_not_exist() {
    let dir = psnc_tests::WorkDir::new("nopid");
    // A PID that just became free.
    let mut c = Command::new("true").spawn().expect("spawn true");
    let pid = c.id();
    c.wait().expect("wait true");
    let image = dir.join("image");
    let r = capture(pid, &image, &[]);
    r.assert_status(66);
    assert_names_pid(&r, pid);
    assert_no_image(&image);
}

#[test]
fn kernel_thread() {
    let dir = psnc_tests::WorkDir::new("kthread");
    let comm = psnc_proc::ProcDir::new(2).comm().unwrap_or_default();
    assert_eq!(comm, "kthreadd", "PID 2 is not kthreadd here");
    let image = dir.join("image");
    let r = capture(2, &image, &[]);
    r.assert_status(69);
    assert_names_pid(&r, 2);
    assert_no_image(&image);
}

#[test]
fn unprivileged_user_against_root_process() {
    assert!(
        psnc_tests::is_root(),
        "this test needs root (it runs the tool as nobody)"
    );
    let mut t = Target::start(cases::COUNTER.name, cases::COUNTER.args);
    // A copy nobody can surely execute, in the 0777 work directory.
    let exe = t.dir.join("psnc-capture");
    std::fs::copy(tool("psnc-capture"), &exe).expect("copy psnc-capture");
    psnc_tests::wait_executable(&exe);
    let image = t.dir.join("image");
    let pid = t.pid().to_string();
    let r = run(
        &exe,
        &[&pid, "-o", image.to_str().expect("utf-8")],
        RunOpts {
            as_user: Some((65534, 65534)),
            ..RunOpts::default()
        },
    );
    r.assert_status(77);
    assert_names_pid(&r, t.pid());
    assert_no_image(&image);
    assert_untouched(&mut t, cases::COUNTER.expect);
}

#[test]
fn output_directory_missing() {
    let mut t = Target::start(cases::MEM_ANON.name, cases::MEM_ANON.args);
    let image = t.dir.join("missing/dir/image");
    let r = t.capture(&image, &[]);
    r.assert_status(73);
    assert!(
        r.stderr.contains("missing/dir"),
        "the error does not name the path:\n{r}"
    );
    assert_no_image(&image);
    assert_untouched(&mut t, cases::MEM_ANON.expect);
}

#[test]
fn disk_full() {
    assert!(
        psnc_tests::is_root(),
        "this test needs root (it mounts a tmpfs)"
    );
    let mut t = Spawn::new("memory").args(&["fill", "32"]).start();
    let small = Tmpfs::mount(&t.dir.join("small"), "1m");
    let image = small.path.join("image");
    let r = t.capture(&image, &[]);
    r.assert_status(73);
    assert_no_image(&image);
    assert_untouched(&mut t, &["fill"]);
}

/// Largest file in `dir` other than the target's own files: the image being written.
fn biggest_new_file(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| !n.starts_with('t') && !n.starts_with("report"))
                })
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
fn tool_killed_while_reading_memory() {
    let mut t = Spawn::new("memory").args(&["fill", "1024"]).start();
    let pid = t.pid();
    let image = t.dir.join("image");
    let mut tool_proc = Command::new(tool("psnc-capture"))
        .arg(pid.to_string())
        .arg("-o")
        .arg(&image)
        // The memory of a stopped target (with pre-copy it is read while the target runs:
        // tests/pre_copy.rs kills the tool there).
        .arg("--pre-copy=never")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start psnc-capture");
    let tool_pid = tool_proc.id().to_string();
    // Wait until it traces the target, then until it wrote some memory (or 300 ms passed).
    wait_for(Duration::from_secs(20), || {
        (status_field(pid, "TracerPid").as_deref() == Some(tool_pid.as_str())).then_some(())
    })
    .expect("psnc-capture never attached to the target");
    let t0 = Instant::now();
    while biggest_new_file(t.dir.path()) < 8 << 20 && t0.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        matches!(tool_proc.try_wait(), Ok(None)),
        "psnc-capture finished before it could be killed: the test needs a bigger target"
    );
    tool_proc.kill().expect("SIGKILL psnc-capture");
    let _ = tool_proc.wait();
    wait_for(Duration::from_secs(5), || {
        (status_field(pid, "TracerPid").as_deref() == Some("0")).then_some(())
    })
    .expect("the target stays traced after the tool died");
    assert_no_image(&image);
    assert_untouched(&mut t, &["fill"]);
}

/// Kinds of state capture does not support yet are refused (69) with an error naming them, and
/// the target runs on unchanged (the `what` string must appear in the error).
fn refused(mode: &str, what: &str) {
    let mut t = Spawn::new("unsupported").args(&[mode]).start();
    let image = t.dir.join("image");
    let r = t.capture(&image, &[]);
    r.assert_status(69);
    assert!(
        r.stderr.contains(what),
        "the error does not name {what:?}:\n{r}"
    );
    assert_no_image(&image);
    assert_untouched(&mut t, &[mode]);
}

#[test]
fn socket_refused() {
    refused("socket", "fd 5");
}

/// A socket of a family, type or protocol no section describes: refused with the exact message
/// naming the PID, the fd and the socket by family, type and protocol names.
/// 64-bit and i386.
fn socket_refused_by_name(mode: &str, kind: &str) {
    for bits in [Bits::B64, Bits::B32] {
        if !m32_or_skip(bits, mode) {
            continue;
        }
        let mut t = Spawn::new("unsupported").bits(bits).args(&[mode]).start();
        let image = t.dir.join("image");
        let r = t.capture(&image, &[]);
        r.assert_status(69);
        let want = format!(
            "PID {}: fd 5 is {kind}: not supported; close it in the process or leave the \
             process out of the capture",
            t.pid()
        );
        assert!(r.stderr.contains(&want), "{bits:?}: want {want:?}:\n{r}");
        assert_no_image(&image);
        assert_untouched(&mut t, &[mode]);
    }
}

#[test]
fn packet_socket_refused_by_name() {
    socket_refused_by_name("packet", "a packet socket (AF_PACKET, SOCK_RAW)");
}

#[test]
fn raw_ipv4_socket_refused_by_name() {
    socket_refused_by_name(
        "raw4",
        "an IPv4 socket (AF_INET, SOCK_RAW, protocol IPPROTO_ICMP)",
    );
}

#[test]
fn raw_ipv6_socket_refused_by_name() {
    socket_refused_by_name(
        "raw6",
        "an IPv6 socket (AF_INET6, SOCK_RAW, protocol IPPROTO_ICMPV6)",
    );
}

/// An anonymous-inode kind capture does not support: refused with the exact message naming the
/// PID, the fd, the kind and the link.
fn anon_refused(mode: &str, kind: &str, link: &str) {
    let mut t = Spawn::new("unsupported").args(&[mode]).start();
    let image = t.dir.join("image");
    let r = t.capture(&image, &[]);
    r.assert_failed();
    let want = format!(
        "PID {}: fd 5 is {kind} ({link}), which psnc-capture does not support yet",
        t.pid()
    );
    assert!(r.stderr.contains(&want), "want {want:?}:\n{r}");
    assert_no_image(&image);
    assert_untouched(&mut t, &[mode]);
}

#[test]
fn io_uring_refused() {
    anon_refused("io_uring", "an io_uring instance", "anon_inode:[io_uring]");
}

#[test]
fn perf_event_refused() {
    anon_refused("perf_event", "a perf_event fd", "anon_inode:[perf_event]");
}

#[test]
fn userfaultfd_refused() {
    anon_refused("userfaultfd", "a userfaultfd", "anon_inode:[userfaultfd]");
}

#[test]
fn fanotify_refused() {
    anon_refused("fanotify", "a fanotify instance", "anon_inode:[fanotify]");
}

/// A memfd fd is captured (memfd_fds.rs), but not one on hugetlbfs.
#[test]
fn hugetlb_memfd_refused() {
    refused(
        "memfd",
        "fd 5 is a memfd on hugetlbfs (MFD_HUGETLB, /memfd:psnc-test (deleted)), which \
         psnc-capture does not support yet",
    );
}

#[test]
fn sysv_shared_memory_of_another_ipc_namespace_refused() {
    refused(
        "sysv",
        "attaches System V shared memory of another IPC namespace",
    );
}

#[test]
fn seccomp_refused() {
    refused("seccomp", "seccomp");
}
