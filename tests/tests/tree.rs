//! Process trees (issue 9): a PID and its descendants captured together and restored with their
//! PIDs, parents, groups, sessions and the pipes between them; the refusals that leave the whole
//! tree running.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use psnc_tests::{
    alive, assert_running_untraced, capture, capture_env, children, restore, spawn_program,
    status_field, wait_for, Bits, ProcGuard, Report, RunOpts, Spawn, Target, WorkDir,
};

fn gone(pids: &[u32]) {
    let left = wait_for(Duration::from_secs(10), || {
        pids.iter().all(|&p| !alive(p)).then_some(())
    });
    assert!(left.is_some(), "some of {pids:?} still run after --kill");
}

/// The ring of `tree.c`: S (session leader), A (background job) with A2 in its group, B in S's
/// group, pipes S->A->B->S holding unread bytes. Captured from S with --kill, restored, checked
/// by every process; all of them ran again within a few milliseconds of each other.
fn ring(bits: Bits) {
    ring_with(bits, &[]);
}

/// The ring with `restore_args` for psnc-restore (`--lazy`: one lazy server for all four).
fn ring_with(bits: Bits, restore_args: &[&str]) {
    if !psnc_tests::m32_or_skip(bits, "tree ring i386") {
        return;
    }
    let mut t = Spawn::new("tree").args(&["ring"]).bits(bits).start();
    let r = t.report();
    // The originals, should the test fail before the capture kills them (R's guard is `t`).
    let _originals = ring_guards(&r);
    let s = r.pid_after("TREE ");
    let kids = [
        r.pid_after("UP A "),
        r.pid_after("UP A2 "),
        r.pid_after("UP B "),
    ];
    let image = t.dir.join("image");
    let run = capture(s, &image, &["--kill", "--json"]);
    run.assert_ok();
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
    assert_eq!(summary["processes"], 4, "{run}");
    let mut all = vec![s];
    all.extend(kids);
    gone(&all);
    // imgtool reads the tree: verify, and info lists every process under its parent.
    let imgtool = |args: &[&str]| {
        let r = psnc_tests::run(&psnc_tests::tool("psnc-imgtool"), args, RunOpts::default());
        r.assert_ok();
        r.stdout
    };
    let img = image.to_str().expect("utf-8 path");
    assert!(imgtool(&["verify", img]).contains("4 processes"));
    let info = imgtool(&["info", img]);
    for p in &all[1..] {
        assert!(
            info.contains(&format!("└─ {p}")),
            "{p} not in the tree:\n{info}"
        );
    }

    let root = restore(&image, restore_args, RunOpts::default());
    assert_eq!(root.pid, s);
    let _guards: Vec<ProcGuard> = kids.iter().map(|&p| ProcGuard::foreign(p)).collect();
    for &p in &all {
        assert_running_untraced(p);
    }
    // The shape, as the kernel sees it: A and B children of S, A2 of A.
    let stat = |pid: u32| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let rest = text.rsplit_once(") ").expect("stat").1.to_string();
        let f: Vec<u32> = rest
            .split_whitespace()
            .skip(1)
            .take(3)
            .map(|x| x.parse().expect("a number in stat"))
            .collect();
        (f[0], f[1], f[2])
    };
    let (a, a2, b) = (kids[0], kids[1], kids[2]);
    assert_eq!(stat(a), (s, a, s), "A: ppid, pgid, sid");
    assert_eq!(stat(a2), (a, a, s), "A2: ppid, pgid, sid");
    assert_eq!(stat(b), (s, s, s), "B: ppid, pgid, sid");
    assert_eq!((stat(s).1, stat(s).2), (s, s), "S: pgid, sid");

    let report = t.verify();
    let expect = ring_checks();
    let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
    report.assert_passed(&expect);

    if !restore_args.is_empty() {
        // Lazily, a process's first pages wait for the server, and one that finds the go file
        // before its next tick reports its last pause before the capture: the moments below
        // say nothing about the release.
        return;
    }
    // Released together: the moments each process ran again after its longest pause.
    let resumed: Vec<f64> = report
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("INFO resumed "))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert_eq!(resumed.len(), 4, "{:?}", report.lines);
    let spread = resumed.iter().cloned().fold(f64::MIN, f64::max)
        - resumed.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        spread < 0.05,
        "the processes ran again {:.1} ms apart: {:?}",
        spread * 1e3,
        report.lines
    );
}

/// Every PASS line the ring's processes report.
fn ring_checks() -> Vec<String> {
    let mut expect = vec!["S:children_reported".to_string()];
    for n in ["S", "A", "A2", "B"] {
        for what in ["pid", "pgid", "sid"] {
            expect.push(format!("{n}:{what}"));
        }
        if n != "S" {
            expect.push(format!("{n}:ppid"));
        }
        if n != "A2" {
            for what in ["buffered_bytes", "pipe_write", "pipe_read"] {
                expect.push(format!("{n}:{what}"));
            }
        }
    }
    expect
}

/// The ring passes its own checks without a checkpoint (the target and the harness are right).
#[test]
fn ring_passes_without_a_checkpoint() {
    for bits in [Bits::B64, Bits::B32] {
        if !psnc_tests::m32_or_skip(bits, "tree ring i386 native") {
            continue;
        }
        let mut t = Spawn::new("tree").args(&["ring"]).bits(bits).start();
        let _tree = ring_guards(&t.report());
        let expect = ring_checks();
        let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
        t.verify().assert_passed(&expect);
    }
}

#[test]
fn ring_of_pipes_session_and_groups() {
    ring(Bits::B64);
}

#[test]
fn ring_of_pipes_session_and_groups_i386() {
    ring(Bits::B32);
}

/// The ring restored with --lazy: one server fills the memory of all four processes, each
/// with its own userfaultfd, while they run and check themselves.
#[test]
fn ring_restored_lazily() {
    ring_with(Bits::B64, &["--lazy"]);
}

/// `--no-children` takes the one process; its pipes to the children become external.
/// Guards on every process of a `ring` tree (S and its descendants, which outlive R).
fn ring_guards(r: &Report) -> Vec<ProcGuard> {
    ["TREE ", "UP A ", "UP A2 ", "UP B "]
        .iter()
        .map(|p| ProcGuard::foreign(r.pid_after(p)))
        .collect()
}

#[test]
fn no_children_takes_one_process() {
    let t = Spawn::new("tree").args(&["ring"]).start();
    let _tree = ring_guards(&t.report());
    let s = t.report().pid_after("TREE ");
    let image = t.dir.join("image");
    let run = capture(s, &image, &["--no-children", "--json"]);
    run.assert_ok();
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
    assert_eq!(summary["processes"], 1, "{run}");
    let info = psnc_tests::run(
        &psnc_tests::tool("psnc-imgtool"),
        &["info", image.to_str().unwrap()],
        RunOpts::default(),
    );
    info.assert_ok();
    assert!(info.stdout.contains("processes"), "{info}");
    // The lone process's pipes to the others are external: --external=refuse names them (the
    // default would recreate them, but the original still holds its PID here).
    let r = psnc_tests::restore_run(&image, &["--external=refuse"], RunOpts::default());
    r.assert_status(69);
    assert!(
        r.stderr.contains("whose other end was outside the image"),
        "{r}"
    );
    assert!(!r.stderr.contains(&format!("process {s}: fd")), "{r}");
    assert_running_untraced(s);
}

/// Refusals: the exact error, and the whole tree running on untouched.
/// `min_kids`: the children the target must have before the capture.
fn refused(
    mode: &str,
    args: &[&str],
    env: &[(&'static str, &str)],
    min_kids: usize,
) -> (Target, Vec<u32>, String) {
    let mut a = vec![mode];
    a.extend_from_slice(args);
    let t = Spawn::new("tree").args(&a).start();
    let root = t.pid();
    let kids = wait_for(Duration::from_secs(5), || {
        let k = children(root);
        (k.len() >= min_kids).then_some(k)
    })
    .expect("the target has children");
    let image = t.dir.join("image");
    let run = capture_env(root, &image, &["--kill"], env);
    run.assert_status(69);
    assert!(!image.exists(), "an image after a failed capture");
    assert_running_untraced(root);
    for &k in children(root).iter() {
        if status_field(k, "State").is_some_and(|s| s.starts_with('Z')) {
            continue;
        }
        assert_running_untraced(k);
    }
    (t, kids, run.stderr)
}

/// The zombies an image holds.
fn zombies_of(image: &Path) -> Vec<psnc_format::model::Zombie> {
    let bytes = std::fs::read(image).expect("the image");
    let img = psnc_format::Image::from_vec(bytes).expect("a valid image");
    img.checkpoint().zombies.clone()
}

/// An unreaped child is no refusal any more: the image holds it as a zombie with its status
/// (tests/zombies.rs restores such trees).
#[test]
fn zombie_child_is_captured_as_a_zombie() {
    let t = Spawn::new("tree").args(&["zombie"]).start();
    let root = t.pid();
    let kid = wait_for(Duration::from_secs(5), || {
        children(root)
            .into_iter()
            .find(|&k| status_field(k, "State").is_some_and(|s| s.starts_with('Z')))
    })
    .expect("a zombie child");
    let image = t.dir.join("image");
    capture(root, &image, &[]).assert_ok();
    assert_running_untraced(root);
    let z = zombies_of(&image);
    assert_eq!(z.len(), 1, "{z:?}");
    assert_eq!((z[0].pid, z[0].ppid), (kid, root));
    assert_eq!(z[0].status, psnc_format::model::ExitStatus::Exited(7));
}

#[test]
fn unsupported_fd_in_a_child_is_refused() {
    let (_t, kids, err) = refused("socket", &[], &[], 1);
    let msg = format!(
        "PID {}: fd 3 is a packet socket (AF_PACKET, SOCK_DGRAM)",
        kids[0]
    );
    assert!(err.contains(&msg), "expected {msg:?} in:\n{err}");
}

/// Captures the tree of `mode` (a parent R and one child C), restores it, and asserts that fd 3
/// of R and of C are one open file description again; returns R's fdinfo of fd 3.
fn restored_shared(mode: &str) -> String {
    let mut t = Spawn::new("tree").args(&[mode]).start();
    let r = t.pid();
    let kids = wait_for(Duration::from_secs(5), || {
        let k = children(r);
        (!k.is_empty()).then_some(k)
    })
    .expect("the target has a child");
    let image = t.dir.join("image");
    let run = t.capture_kill(&image);
    assert!(!run.stderr.contains("share"), "{run}");
    gone(&kids);
    t.restore(&image, &[], RunOpts::default());
    let _child = ProcGuard::foreign(kids[0]);
    let same = psnc_ptrace::sys::kcmp_file(r as i32, 3, kids[0] as i32, 3).expect("kcmp");
    assert!(
        same,
        "fd 3 of PID {r} and PID {} are two descriptions",
        kids[0]
    );
    std::fs::read_to_string(format!("/proc/{r}/fdinfo/3")).expect("fdinfo")
}

/// A regular file opened before a fork (format 1.3: one description, one offset): restored as
/// one description, at its offset.
#[test]
fn file_description_shared_across_fork_is_restored_shared() {
    let info = restored_shared("sharedfd");
    assert!(info.starts_with("pos:\t1\n"), "{info}");
}

/// An eventfd inherited over fork: one counter for both processes, restored as one eventfd.
#[test]
fn eventfd_shared_across_fork_is_restored_shared() {
    let info = restored_shared("sharedevfd");
    let count = info
        .lines()
        .find_map(|l| l.strip_prefix("eventfd-count:"))
        .map(str::trim);
    assert_eq!(count, Some("5"), "{info}");
}

/// A tree that forks while it is seized: past the bound, refused; every process runs on.
#[test]
fn forking_tree_past_the_bound_is_refused() {
    let (t, _kids, err) = refused("forker", &["200"], &[("PSNC_TREE_MAX", "3")], 5);
    let msg = format!(
        "the process tree of PID {} did not settle: it grew past 3 processes ($PSNC_TREE_MAX)",
        t.pid()
    );
    assert!(err.contains(&msg), "expected {msg:?} in:\n{err}");
}

/// A tree that forks while it is seized, within the bound: captured whole (the processes seized
/// first can fork no more), and left running.
#[test]
fn forking_tree_is_captured_whole() {
    let t = Spawn::new("tree").args(&["forker", "100"]).start();
    let root = t.pid();
    wait_for(Duration::from_secs(5), || {
        (children(root).len() >= 3).then_some(())
    })
    .expect("children");
    let image = t.dir.join("image");
    let run = capture(root, &image, &["--json"]);
    run.assert_ok();
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
    let n = summary["processes"].as_u64().expect("processes");
    assert!(n >= 4, "{run}");
    assert_running_untraced(root);
    for k in children(root) {
        assert_running_untraced(k);
    }
    for k in children(root) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(k as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A real program: a bash pipeline. Every stage keeps working after the restore: the output
/// file is complete and correct once the pipeline ends.
#[test]
fn bash_pipeline() {
    let dir = WorkDir::new("pipeline");
    let out = dir.join("out");
    let script = "seq 1 20000000 | awk '$1 % 1000000 == 0' | cat > \"$1\"";
    let mut bash = spawn_program(
        Command::new("bash")
            .args(["-c", script, "bash"])
            .arg(&out)
            .current_dir(dir.path()),
    );
    let stages = wait_for(Duration::from_secs(10), || {
        let k = children(bash.pid);
        (k.len() == 3).then_some(k)
    })
    .expect("three stages");
    std::thread::sleep(Duration::from_millis(500));
    let image = dir.join("image");
    let run = capture(bash.pid, &image, &["--kill", "--json"]);
    run.assert_ok();
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
    assert_eq!(summary["processes"], 4, "{run}");
    assert!(bash.reap(Duration::from_secs(10)).is_some());
    gone(&stages);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap_or_default(),
        "",
        "the pipeline finished before the capture; make it longer"
    );
    let root = restore(&image, &[], RunOpts::default());
    let _guards: Vec<ProcGuard> = stages.iter().map(|&p| ProcGuard::foreign(p)).collect();
    let ended = wait_for(Duration::from_secs(120), || {
        (!alive(root.pid)).then_some(())
    });
    assert!(ended.is_some(), "the restored pipeline did not finish");
    let expected: String = (1..=20).map(|i| format!("{}\n", i * 1_000_000)).collect();
    assert_eq!(std::fs::read_to_string(&out).expect("out"), expected);
}

/// A real program: python3 `multiprocessing.Pool(2)`: pipes between the pool and its workers,
/// POSIX semaphores in deleted /dev/shm files mapped shared by all three processes (one replica
/// per original file, shared by every process that mapped it), worker threads in the parent.
const POOL: &str = r#"
import multiprocessing as mp, sys, time
def work(i):
    time.sleep(0.02)
    return i * i
if __name__ == "__main__":
    out = sys.argv[1]
    with mp.Pool(2) as pool:
        total = 0
        for i, r in enumerate(pool.imap(work, range(300))):
            total += r
            with open(out, "a") as f:
                f.write(f"{i} {total}\n")
    with open(out, "a") as f:
        f.write("END\n")
"#;

#[test]
fn python3_multiprocessing_pool() {
    let dir = WorkDir::new("pool");
    let out = dir.join("out");
    let mut py = spawn_program(
        Command::new("python3")
            .args(["-c", POOL])
            .arg(&out)
            .current_dir(dir.path()),
    );
    psnc_tests::wait_ticks(&out, 5, Duration::from_secs(30));
    let workers = children(py.pid);
    assert_eq!(workers.len(), 2, "{workers:?}");
    let image = dir.join("image");
    let run = capture(py.pid, &image, &["--kill", "--json"]);
    run.assert_ok();
    assert!(py.reap(Duration::from_secs(10)).is_some());
    gone(&workers);
    let before = std::fs::read_to_string(&out).expect("out");
    assert!(
        !before.contains("END"),
        "the pool finished before the capture"
    );
    let root = restore(&image, &[], RunOpts::default());
    let _guards: Vec<ProcGuard> = workers.iter().map(|&p| ProcGuard::foreign(p)).collect();
    let ended = wait_for(Duration::from_secs(120), || {
        (!alive(root.pid)).then_some(())
    });
    assert!(ended.is_some(), "the restored pool did not finish");
    let text = std::fs::read_to_string(&out).expect("out");
    let mut total = 0u64;
    let mut lines = text.lines();
    for i in 0..300u64 {
        total += i * i;
        assert_eq!(
            lines.next(),
            Some(format!("{i} {total}").as_str()),
            "{text}"
        );
    }
    assert_eq!(lines.next(), Some("END"));
}

/// A child that exits while the tree is seized becomes a zombie (its parent, stopped, cannot
/// reap it): the capture records it as one, with its status, and the tree runs on (the parent
/// reaps it after the detach). Children live about a millisecond, so some capture hits one.
#[test]
fn child_exiting_during_the_capture_is_captured_as_a_zombie() {
    let t = Spawn::new("tree").args(&["exiter"]).start();
    let root = t.pid();
    let image = t.dir.join("image");
    for _ in 0..50 {
        let run = capture(root, &image, &[]);
        assert_running_untraced(root);
        run.assert_ok();
        let z = zombies_of(&image);
        let Some(z) = z.first() else { continue };
        assert_eq!(z.ppid, root, "{z:?}");
        assert_eq!(z.status, psnc_format::model::ExitStatus::Exited(0));
        return;
    }
    panic!("no capture of 50 met an exiting child");
}

/// A process in another PID namespace (the child of `unshare --pid --fork`): refused, naming it.
#[test]
fn child_in_another_pid_namespace_is_refused() {
    let dir = WorkDir::new("pidns");
    let mut u = spawn_program(Command::new("unshare").args(["--pid", "--fork", "sleep", "1000"]));
    let child = wait_for(Duration::from_secs(10), || children(u.pid).first().copied())
        .expect("unshare's child");
    let image = dir.join("image");
    let run = capture(u.pid, &image, &[]);
    run.assert_status(69);
    assert!(
        run.stderr
            .contains(&format!("PID {child} is in another PID namespace (pid:[")),
        "{run}"
    );
    assert_running_untraced(u.pid);
    assert_running_untraced(child);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    u.kill();
}

/// A process whose group leader is outside the image: captured, but restore refuses it before
/// creating anything.
#[test]
fn group_leader_outside_the_image_is_refused_at_restore() {
    let t = Spawn::new("tree").args(&["outsidegroup"]).start();
    let r = t.report();
    let (y, z) = (r.pid_after("TREE "), r.pid_after("UP Z "));
    let image = t.dir.join("image");
    capture(y, &image, &["--kill"]).assert_ok();
    gone(&[y, z]);
    let run = psnc_tests::restore_run(&image, &[], RunOpts::default());
    run.assert_status(69);
    let msg = format!(
        "cannot restore process {z} in process group {}, whose leader is not in the image",
        t.pid()
    );
    assert!(run.stderr.contains(&msg), "expected {msg:?} in:\n{run}");
    assert!(
        !alive(y) && !alive(z),
        "a refused restore created a process"
    );
}

/// A tree mixing modes (an x86_64 process whose child runs i386 code): refused, naming the child.
#[test]
fn tree_mixing_modes_is_refused() {
    if !psnc_tests::m32_or_skip(Bits::B32, "tree mixing modes") {
        return;
    }
    let m32 = psnc_tests::target_binary("tree", Bits::B32);
    let m32 = m32.to_str().expect("utf-8 path").to_string();
    let (t, kids, err) = refused("mixed", &[&m32], &[], 1);
    let msg = format!(
        "PID {}: this descendant of PID {} is an i386 process under an x86_64 root (a tree \
         mixing modes)",
        kids[0],
        t.pid()
    );
    assert!(err.contains(&msg), "expected {msg:?} in:\n{err}");
}

/// A FIFO held by two processes of the tree, each with its own open, with bytes in it: restored
/// once, not once per process.
#[test]
fn fifo_between_two_processes_keeps_its_bytes_once() {
    let mut t = Spawn::new("tree").args(&["fifo"]).start();
    let c = t.report().pid_after("UP C ");
    let image = t.dir.join("image");
    t.capture_kill(&image);
    gone(&[c]);
    t.restore(&image, &[], RunOpts::default());
    let _child = ProcGuard::foreign(c);
    t.verify()
        .assert_passed(&["C:fifo_bytes_once", "R:child_reported"]);
}

/// A pipe from outside the tree (the test's, as every process's stdin): the restore refusal
/// names the process as well as the fd.
#[test]
fn external_pipe_in_a_tree_is_recreated_or_refused_naming_the_process() {
    // Close-on-exec: no target (of this test or another) may inherit the write end.
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let mut t = Spawn::new("tree")
        .args(&["ring"])
        .stdin(std::process::Stdio::from(rd))
        .start();
    let _tree = ring_guards(&t.report());
    let root = t.pid();
    let ino = std::fs::read_link(format!("/proc/{root}/fd/0")).expect("fd 0");
    let image = t.dir.join("image");
    t.capture_kill(&image);
    drop(wr);
    // --external=refuse: refused before anything exists, naming the process.
    let r = psnc_tests::restore_run(&image, &["--external=refuse"], RunOpts::default());
    r.assert_status(69);
    let msg = format!(
        "process {root}: fd 0 is {} (read end), whose other end was outside the image",
        ino.display()
    );
    assert!(r.stderr.contains(&msg), "expected {msg:?} in:\n{r}");
    assert!(!alive(root), "PID {root} is taken after a refusal");
    // The default: the tree comes back, and restore says what the root's stdin became.
    let r = psnc_tests::restore_run(&image, &[], RunOpts::default());
    r.assert_ok();
    let line = format!(
        "psnc-restore: process {root}: fd 0: {} (read end, 0 buffered bytes) had its writer \
         outside the image; restored as a new pipe holding those bytes, its other end closed",
        ino.display()
    );
    assert!(r.stderr.contains(&line), "expected {line:?} in:\n{r}");
}
